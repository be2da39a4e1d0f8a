//! Raw video frames (YUV or packed RGB planes) to the model's uint8 RGB input, with tensor ops.
//!
//! Order of work: wrap each plane in a tensor (one copy, strides honoured), move it to the
//! device, resize luma and chroma separately straight to the model size (bilinear; antialiased
//! when shrinking), convert YUV to RGB there with [`yuv_to_rgb`], round and clamp to uint8.
//! Resizing before converting is exact because both are linear; only the final clamp of
//! out-of-gamut values differs, by design. Chroma samples are taken as centred on the luma
//! samples they cover (JPEG/MPEG-1 siting); MPEG-2's left-cosited chroma is off by a quarter
//! chroma sample horizontally, invisible at the model's resolution. 10-bit samples go through
//! the same steps as int16 and meet the 8-bit scale in the conversion matrix, which is free.

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind, Tensor};

use super::error::{ModelError, TchContext};

/// Raw video formats the element accepts, named as GStreamer names them: every format `vssdec`
/// outputs, and the 8-bit YUV and RGB formats cameras and `videoconvert` give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameLayout {
    /// Planar 4:2:0: Y, then U (Cb), then V (Cr), chroma at half width and height.
    I420,
    /// Planar 4:2:0 with V before U.
    Yv12,
    /// Semi-planar 4:2:0: Y, then interleaved U, V.
    Nv12,
    /// Semi-planar 4:2:0: Y, then interleaved V, U.
    Nv21,
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Rgba,
    Bgra,
    Argb,
    Abgr,
    /// Planar 4:2:2: chroma at half width, full height.
    Y42b,
    /// Planar 4:4:4.
    Y444,
    /// Luma only (4:0:0).
    Gray8,
    /// I420 with 10-bit samples in 16-bit little-endian words.
    I420_10le,
    /// Y42B with 10-bit samples in 16-bit little-endian words.
    I422_10le,
    /// Y444 with 10-bit samples in 16-bit little-endian words.
    Y444_10le,
}

/// How a YUV layout stores its chroma.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chroma {
    /// U and V planes, in this order unless `vu`.
    Planar { vu: bool },
    /// One plane of U, V pairs (V, U if `vu`).
    Interleaved { vu: bool },
    /// None: every pixel is neutral grey's chroma.
    Grey,
}

/// The sample layout of a YUV format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct YuvPlanes {
    chroma: Chroma,
    /// log2 of the chroma subsampling: (horizontal, vertical).
    shift: (u32, u32),
    /// Bits per sample: 8 (one byte each) or 10 (the low bits of a little-endian 16-bit word).
    bits: u32,
}

impl FrameLayout {
    /// In the order the sink pad template lists them (upstream's preference when it can choose):
    /// the 4:2:0 and RGB formats first, as before the others were accepted.
    pub const ALL: [FrameLayout; 20] = [
        FrameLayout::I420,
        FrameLayout::Yv12,
        FrameLayout::Nv12,
        FrameLayout::Nv21,
        FrameLayout::Rgb,
        FrameLayout::Bgr,
        FrameLayout::Rgbx,
        FrameLayout::Bgrx,
        FrameLayout::Xrgb,
        FrameLayout::Xbgr,
        FrameLayout::Rgba,
        FrameLayout::Bgra,
        FrameLayout::Argb,
        FrameLayout::Abgr,
        FrameLayout::Y42b,
        FrameLayout::Y444,
        FrameLayout::Gray8,
        FrameLayout::I420_10le,
        FrameLayout::I422_10le,
        FrameLayout::Y444_10le,
    ];

    /// The GStreamer format name (`video/x-raw,format=...`).
    pub fn name(self) -> &'static str {
        match self {
            FrameLayout::I420 => "I420",
            FrameLayout::Yv12 => "YV12",
            FrameLayout::Nv12 => "NV12",
            FrameLayout::Nv21 => "NV21",
            FrameLayout::Rgb => "RGB",
            FrameLayout::Bgr => "BGR",
            FrameLayout::Rgbx => "RGBx",
            FrameLayout::Bgrx => "BGRx",
            FrameLayout::Xrgb => "xRGB",
            FrameLayout::Xbgr => "xBGR",
            FrameLayout::Rgba => "RGBA",
            FrameLayout::Bgra => "BGRA",
            FrameLayout::Argb => "ARGB",
            FrameLayout::Abgr => "ABGR",
            FrameLayout::Y42b => "Y42B",
            FrameLayout::Y444 => "Y444",
            FrameLayout::Gray8 => "GRAY8",
            FrameLayout::I420_10le => "I420_10LE",
            FrameLayout::I422_10le => "I422_10LE",
            FrameLayout::Y444_10le => "Y444_10LE",
        }
    }

    /// How many planes a frame of this layout has.
    pub fn planes(self) -> usize {
        match self.yuv().map(|y| y.chroma) {
            Some(Chroma::Planar { .. }) => 3,
            Some(Chroma::Interleaved { .. }) => 2,
            Some(Chroma::Grey) | None => 1,
        }
    }

    /// Y'CbCr (or luma only), as opposed to packed RGB.
    pub fn is_yuv(self) -> bool {
        self.yuv().is_some()
    }

    /// Bits per sample: 8, or 10 for the `_10LE` formats (two bytes per sample).
    pub fn bits(self) -> u32 {
        self.yuv().map_or(8, |y| y.bits)
    }

    fn yuv(self) -> Option<YuvPlanes> {
        let (chroma, shift, bits) = match self {
            FrameLayout::I420 => (Chroma::Planar { vu: false }, (1, 1), 8),
            FrameLayout::Yv12 => (Chroma::Planar { vu: true }, (1, 1), 8),
            FrameLayout::Nv12 => (Chroma::Interleaved { vu: false }, (1, 1), 8),
            FrameLayout::Nv21 => (Chroma::Interleaved { vu: true }, (1, 1), 8),
            FrameLayout::Y42b => (Chroma::Planar { vu: false }, (1, 0), 8),
            FrameLayout::Y444 => (Chroma::Planar { vu: false }, (0, 0), 8),
            FrameLayout::Gray8 => (Chroma::Grey, (0, 0), 8),
            FrameLayout::I420_10le => (Chroma::Planar { vu: false }, (1, 1), 10),
            FrameLayout::I422_10le => (Chroma::Planar { vu: false }, (1, 0), 10),
            FrameLayout::Y444_10le => (Chroma::Planar { vu: false }, (0, 0), 10),
            _ => return None,
        };
        Some(YuvPlanes {
            chroma,
            shift,
            bits,
        })
    }

    /// Packed RGB: bytes per pixel and the byte offsets of R, G, B within a pixel.
    fn packed(self) -> Option<(usize, [i64; 3])> {
        Some(match self {
            FrameLayout::Rgb => (3, [0, 1, 2]),
            FrameLayout::Bgr => (3, [2, 1, 0]),
            FrameLayout::Rgbx | FrameLayout::Rgba => (4, [0, 1, 2]),
            FrameLayout::Bgrx | FrameLayout::Bgra => (4, [2, 1, 0]),
            FrameLayout::Xrgb | FrameLayout::Argb => (4, [1, 2, 3]),
            FrameLayout::Xbgr | FrameLayout::Abgr => (4, [3, 2, 1]),
            _ => return None,
        })
    }
}

impl fmt::Display for FrameLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FrameLayout {
    type Err = String;

    /// GStreamer's format name, exactly (case matters: `RGBx` vs `RGBX` do not both exist).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FrameLayout::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unsupported raw video format {s:?}"))
    }
}

/// The YUV -> RGB matrix (ITU-R BT.601 for SD, BT.709 for HD, BT.2020 for UHD/HDR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum YuvMatrix {
    #[default]
    Bt601,
    Bt709,
    Bt2020,
}

/// Code range of Y'CbCr samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum YuvRange {
    /// Y in 16..235, Cb/Cr in 16..240 (video, "limited", "TV").
    #[default]
    Limited,
    /// All of 0..255 (JPEG, "full", "PC").
    Full,
}

/// How a YUV frame's samples map to RGB; ignored for RGB layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct YuvColorimetry {
    pub matrix: YuvMatrix,
    pub range: YuvRange,
}

impl YuvColorimetry {
    pub const BT601: YuvColorimetry = YuvColorimetry {
        matrix: YuvMatrix::Bt601,
        range: YuvRange::Limited,
    };
    pub const BT709: YuvColorimetry = YuvColorimetry {
        matrix: YuvMatrix::Bt709,
        range: YuvRange::Limited,
    };

    /// `rgb = M * (yuv - offset)`, for 8-bit code values, as `(M, offset)`.
    ///
    /// With luma weights Kr, Kb (Kg = 1 - Kr - Kb; BT.601: 0.299, 0.114; BT.709: 0.2126,
    /// 0.0722), luma scale `ys` and chroma scale `cs` (limited: 255/219 and 255/224, offsets
    /// 16 and 128; full: 1 and 1, offsets 0 and 128):
    ///
    /// ```text
    /// R = ys*(Y-16) + cs*2(1-Kr)*(V-128)
    /// G = ys*(Y-16) - cs*2Kb(1-Kb)/Kg*(U-128) - cs*2Kr(1-Kr)/Kg*(V-128)
    /// B = ys*(Y-16) + cs*2(1-Kb)*(U-128)
    /// ```
    ///
    /// BT.601 limited gives the familiar 1.164, 1.596, -0.392, -0.813, 2.017.
    pub fn rgb_matrix(self) -> ([[f32; 3]; 3], [f32; 3]) {
        self.rgb_matrix_for_bits(8)
    }

    /// [`Self::rgb_matrix`] for `bits`-bit code values (ITU-T H.273): limited range scales the
    /// 8-bit levels by 2^(bits-8) (10-bit black is 64, white 940); full range spans
    /// 0..2^bits-1 with chroma centred on 2^(bits-1), so `ys = cs = 255/(2^bits-1)`.
    pub fn rgb_matrix_for_bits(self, bits: u32) -> ([[f32; 3]; 3], [f32; 3]) {
        let bits = bits.clamp(8, 16);
        let (kr, kb) = match self.matrix {
            YuvMatrix::Bt601 => (0.299f64, 0.114f64),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
        };
        let kg = 1.0 - kr - kb;
        let step = f64::from(1u32 << (bits - 8));
        let half = f64::from(1u32 << (bits - 1));
        let (ys, cs, y0, c0) = match self.range {
            YuvRange::Limited => (
                255.0 / (219.0 * step),
                255.0 / (224.0 * step),
                16.0 * step,
                half,
            ),
            YuvRange::Full => {
                let top = f64::from((1u32 << bits) - 1);
                (255.0 / top, 255.0 / top, 0.0, half)
            }
        };
        let m = [
            [ys, 0.0, cs * 2.0 * (1.0 - kr)],
            [
                ys,
                -cs * 2.0 * kb * (1.0 - kb) / kg,
                -cs * 2.0 * kr * (1.0 - kr) / kg,
            ],
            [ys, cs * 2.0 * (1.0 - kb), 0.0],
        ];
        (
            m.map(|row| row.map(|v| v as f32)),
            [y0 as f32, c0 as f32, c0 as f32],
        )
    }
}

/// One raw frame as the element maps it: plane slices and their strides in bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    pub layout: FrameLayout,
    pub width: u32,
    pub height: u32,
    /// One slice per plane (Y, U, V / Y, UV / packed), each starting at the plane's first row.
    pub planes: &'a [&'a [u8]],
    /// Bytes from one row to the next, per plane.
    pub strides: &'a [usize],
}

/// The model input for `frame`: uint8 RGB `[1, 3, size.0, size.1]` on `device`, where `size`
/// is `(height, width)`. YUV frames are converted with `colorimetry`; RGB frames ignore it.
/// The result owns its memory (nothing refers to the frame afterwards) and may have
/// channels-last strides, which the bundle's module accepts.
pub fn frame_to_rgb(
    frame: &RawFrame<'_>,
    size: (u32, u32),
    colorimetry: YuvColorimetry,
    device: Device,
) -> Result<Tensor, ModelError> {
    let bad = |problem: String| ModelError::Frame {
        layout: frame.layout,
        width: frame.width,
        height: frame.height,
        problem,
    };
    let (w, h) = (frame.width as usize, frame.height as usize);
    if w == 0 || h == 0 {
        return Err(bad("empty frame".into()));
    }
    if size.0 == 0 || size.1 == 0 {
        return Err(bad(format!("model size {}x{} is empty", size.1, size.0)));
    }
    let n = frame.layout.planes();
    if frame.planes.len() < n || frame.strides.len() < n {
        return Err(bad(format!(
            "{n} plane(s) expected, got {} plane(s) and {} stride(s)",
            frame.planes.len(),
            frame.strides.len()
        )));
    }
    let size = [i64::from(size.0), i64::from(size.1)];
    let plane = |i: usize, rows: usize, row_bytes: usize| {
        plane_tensor(frame.planes[i], frame.strides[i], rows, row_bytes)
            .map_err(|p| bad(format!("plane {i}: {p}")))
    };

    if let Some((bpp, rgb)) = frame.layout.packed() {
        let packed = plane(0, h, w * bpp)?
            .f_to_device(device)
            .context("copying the frame to the device")?;
        let order = Tensor::from_slice(&rgb[..]).to_device(device);
        // [h, w*bpp] -> [h, w, bpp] -> pick R, G, B -> [1, 3, h, w] (channels-last strides).
        let image = packed
            .f_reshape([h as i64, w as i64, bpp as i64])
            .and_then(|t| t.f_index_select(2, &order))
            .and_then(|t| t.f_permute([2, 0, 1]))
            .and_then(|t| t.f_unsqueeze(0))
            .context("unpacking RGB")?;
        if size == [h as i64, w as i64] {
            return Ok(image);
        }
        let resized = resize(&image.f_to_kind(Kind::Float).context("RGB to float")?, size)?;
        return to_u8(resized);
    }

    let yuv = frame
        .layout
        .yuv()
        .ok_or_else(|| bad("neither packed RGB nor YUV".into()))?;
    // Samples of one plane: `[rows, count]` uint8, or int16 for 10-bit layouts.
    let bytes = if yuv.bits > 8 { 2 } else { 1 };
    let samples = |i: usize, rows: usize, count: usize| -> Result<Tensor, ModelError> {
        let t = plane(i, rows, count * bytes)?;
        if bytes == 1 {
            return Ok(t);
        }
        // Two bytes per sample, little endian like the formats (every supported target is).
        // A view needs an even row stride; a copy makes one.
        let t = if frame.strides[i].is_multiple_of(2) {
            t
        } else {
            t.f_contiguous().context("aligning 16-bit samples")?
        };
        t.f_view_dtype(Kind::Int16)
            .context("reading 16-bit samples")
    };
    let (cw, ch) = (w.div_ceil(1 << yuv.shift.0), h.div_ceil(1 << yuv.shift.1));
    let y = samples(0, h, w)?;
    let chroma = match yuv.chroma {
        Chroma::Planar { vu } => {
            let (u, v) = (samples(1, ch, cw)?, samples(2, ch, cw)?);
            let (u, v) = if vu { (v, u) } else { (u, v) };
            Some(Tensor::f_stack(&[u, v], 0).context("stacking chroma")?)
        }
        Chroma::Interleaved { vu } => {
            let uv = samples(1, ch, 2 * cw)?
                .f_reshape([ch as i64, cw as i64, 2])
                .and_then(|t| t.f_permute([2, 0, 1]))
                .context("splitting interleaved chroma")?;
            Some(if vu {
                uv.f_flip([0]).context("swapping V and U")?
            } else {
                uv
            })
        }
        Chroma::Grey => None,
    };
    let to_float = |t: Tensor| {
        t.f_to_device(device)
            .and_then(|t| t.f_to_kind(Kind::Float))
            .and_then(|t| t.f_unsqueeze(0))
            .context("copying the frame to the device")
    };
    let luma = resize(&to_float(y.f_unsqueeze(0).context("luma")?)?, size)?;
    let chroma = match chroma {
        Some(c) => resize(&to_float(c)?, size)?,
        // Neutral chroma: the centre code value, at the model size directly.
        None => Tensor::f_full(
            [1, 2, size[0], size[1]],
            f64::from(1u32 << (yuv.bits - 1)),
            (Kind::Float, device),
        )
        .context("neutral chroma")?,
    };
    let yuv_image = Tensor::f_cat(&[luma, chroma], 1).context("joining luma and chroma")?;
    yuv_to_rgb_for_bits(&yuv_image, colorimetry, yuv.bits)
}

/// THE YUV -> RGB conversion: float `[N, 3, H, W]` Y, U, V code values (0..255) to uint8 RGB
/// `[N, 3, H, W]`, rounded and clamped. See [`YuvColorimetry::rgb_matrix`] for the math.
pub fn yuv_to_rgb(yuv: &Tensor, colorimetry: YuvColorimetry) -> Result<Tensor, ModelError> {
    yuv_to_rgb_for_bits(yuv, colorimetry, 8)
}

/// [`yuv_to_rgb`] for `bits`-bit code values: the scale to 8-bit RGB is folded into the matrix,
/// so deeper samples cost no extra pass.
fn yuv_to_rgb_for_bits(
    yuv: &Tensor,
    colorimetry: YuvColorimetry,
    bits: u32,
) -> Result<Tensor, ModelError> {
    let (m, offset) = colorimetry.rgb_matrix_for_bits(bits);
    let device = yuv.device();
    let weight: Vec<f32> = m.iter().flatten().copied().collect();
    // bias = -M * offset, so that M * yuv + bias = M * (yuv - offset).
    let bias: Vec<f32> = m
        .iter()
        .map(|row| -row.iter().zip(&offset).map(|(a, b)| a * b).sum::<f32>())
        .collect();
    let weight = Tensor::from_slice(&weight)
        .f_view([3, 3])
        .and_then(|t| t.f_to_device(device))
        .and_then(|t| t.f_to_kind(yuv.kind()))
        .context("YUV matrix")?;
    let bias = Tensor::from_slice(&bias)
        .f_view([3, 1])
        .and_then(|t| t.f_to_device(device))
        .and_then(|t| t.f_to_kind(yuv.kind()))
        .context("YUV offsets")?;
    let shape = yuv.size();
    if shape.len() != 4 || shape[1] != 3 {
        return Err(ModelError::Shape {
            what: "yuv_to_rgb",
            problem: format!("expected [N, 3, H, W], got {shape:?}"),
        });
    }
    // A matrix product over [N, 3, H*W]: on CPU a 1x1 convolution costs several times more
    // (oneDNN's reorders for three channels).
    let rgb = weight
        .f_matmul(&yuv.f_reshape([shape[0], 3, -1]).context("YUV to RGB")?)
        .and_then(|mut t| t.f_add_(&bias))
        .and_then(|t| t.f_view(shape.as_slice()))
        .context("YUV to RGB")?;
    to_u8(rgb)
}

/// Float 0..255 values to uint8: round half to even, clamp.
fn to_u8(mut t: Tensor) -> Result<Tensor, ModelError> {
    // In place: the float frame is ours, and two fewer frame-sized passes through memory.
    t.f_round_()
        .and_then(|mut t| t.f_clamp_(0.0, 255.0))
        .and_then(|t| t.f_to_kind(Kind::Uint8))
        .context("rounding to uint8")
}

/// Bilinear resize of a float `[N, C, h, w]` to `size` (`align_corners=False`), antialiased
/// when either side shrinks (the same filter as PIL's bilinear `resize`).
pub fn resize(t: &Tensor, size: [i64; 2]) -> Result<Tensor, ModelError> {
    let shape = t.size();
    if shape.len() != 4 {
        return Err(ModelError::Shape {
            what: "resize",
            problem: format!("expected [N, C, H, W], got {shape:?}"),
        });
    }
    let (h, w) = (shape[2], shape[3]);
    if [h, w] == size {
        return Ok(t.shallow_clone());
    }
    if size[0] < h || size[1] < w {
        t.f_internal_upsample_bilinear2d_aa(size, false, None, None)
    } else {
        t.f_upsample_bilinear2d(size, false, None, None)
    }
    .context("resizing")
}

/// Why a plane's bytes cannot be read as rows.
#[derive(Debug, thiserror::Error)]
enum PlaneError {
    #[error("stride {stride} < {row_bytes} bytes per row")]
    Stride { stride: usize, row_bytes: usize },
    #[error(
        "{len} bytes, need at least {needed} ({rows} rows of {row_bytes} bytes, stride {stride})"
    )]
    Short {
        len: usize,
        needed: usize,
        rows: usize,
        row_bytes: usize,
        stride: usize,
    },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// A `[rows, row_bytes]` uint8 tensor holding a copy of one plane's rows (padding skipped).
fn plane_tensor(
    data: &[u8],
    stride: usize,
    rows: usize,
    row_bytes: usize,
) -> Result<Tensor, PlaneError> {
    if stride < row_bytes {
        return Err(PlaneError::Stride { stride, row_bytes });
    }
    // The last row may stop at its last pixel rather than at a full stride.
    let needed = (rows - 1) * stride + row_bytes;
    if data.len() < needed {
        return Err(PlaneError::Short {
            len: data.len(),
            needed,
            rows,
            row_bytes,
            stride,
        });
    }
    let flat = Tensor::f_from_slice(&data[..needed])?;
    if stride == row_bytes {
        return Ok(flat.f_view([rows as i64, row_bytes as i64])?);
    }
    Ok(flat.f_as_strided([rows as i64, row_bytes as i64], [stride as i64, 1], 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb_of(frame: &RawFrame<'_>, size: (u32, u32)) -> Vec<u8> {
        let t = frame_to_rgb(frame, size, YuvColorimetry::BT601, Device::Cpu).unwrap();
        assert_eq!(t.size(), [1, 3, size.0 as i64, size.1 as i64]);
        assert_eq!(t.kind(), Kind::Uint8);
        super::super::postprocess::to_vec_u8(&t).unwrap()
    }

    #[test]
    fn bt601_limited_matrix_is_the_textbook_one() {
        let (m, offset) = YuvColorimetry::BT601.rgb_matrix();
        let close = |a: f32, b: f32| (a - b).abs() < 1e-3;
        assert!(close(m[0][0], 1.164) && close(m[0][2], 1.596));
        assert!(close(m[1][1], -0.392) && close(m[1][2], -0.813));
        assert!(close(m[2][1], 2.017));
        assert_eq!(offset, [16.0, 128.0, 128.0]);
        let (m, _) = YuvColorimetry::BT709.rgb_matrix();
        assert!(close(m[0][2], 1.793) && close(m[1][1], -0.213) && close(m[2][1], 2.112));
    }

    #[test]
    fn limited_range_extremes_map_to_black_and_white() {
        for (y, want) in [(16u8, 0u8), (235, 255), (0, 0), (255, 255)] {
            let (w, h) = (4u32, 2u32);
            let luma = vec![y; 8];
            let chroma = vec![128u8; 2];
            let planes: [&[u8]; 3] = [&luma, &chroma, &chroma];
            let frame = RawFrame {
                layout: FrameLayout::I420,
                width: w,
                height: h,
                planes: &planes,
                strides: &[4, 2, 2],
            };
            assert!(rgb_of(&frame, (2, 4)).iter().all(|&v| v == want), "Y={y}");
        }
    }

    #[test]
    fn packed_layouts_pick_the_right_bytes() {
        // One pixel per layout with R=10, G=20, B=30, pad/alpha=99.
        for layout in FrameLayout::ALL.into_iter().filter(|l| !l.is_yuv()) {
            let (bpp, [r, g, b]) = layout.packed().unwrap();
            let mut px = vec![99u8; bpp];
            px[r as usize] = 10;
            px[g as usize] = 20;
            px[b as usize] = 30;
            let data: Vec<u8> = px.iter().copied().cycle().take(bpp * 6).collect();
            let planes: [&[u8]; 1] = [&data];
            let frame = RawFrame {
                layout,
                width: 3,
                height: 2,
                planes: &planes,
                strides: &[bpp * 3],
            };
            let out = rgb_of(&frame, (2, 3));
            assert_eq!(out, [[10u8; 6], [20; 6], [30; 6]].concat(), "{layout}");
            assert_eq!(layout.name().parse::<FrameLayout>(), Ok(layout));
        }
    }

    /// Plane bytes for `samples`: one byte each at 8 bits, 16-bit little endian above.
    fn plane_bytes(samples: &[u16], bits: u32) -> Vec<u8> {
        if bits == 8 {
            samples.iter().map(|&s| s as u8).collect()
        } else {
            samples.iter().flat_map(|s| s.to_le_bytes()).collect()
        }
    }

    /// A planar frame from its Y, U, V samples (rows packed, no padding) through
    /// `frame_to_rgb` at `size`.
    fn planar_rgb(
        layout: FrameLayout,
        (w, h): (usize, usize),
        [y, u, v]: [&[u16]; 3],
        size: (u32, u32),
        colorimetry: YuvColorimetry,
    ) -> Vec<u8> {
        let bits = layout.bits();
        let bytes = if bits > 8 { 2 } else { 1 };
        let chroma_w = w.div_ceil(1 << layout.yuv().unwrap().shift.0);
        let (yb, ub, vb) = (
            plane_bytes(y, bits),
            plane_bytes(u, bits),
            plane_bytes(v, bits),
        );
        let planes: [&[u8]; 3] = [&yb, &ub, &vb];
        let frame = RawFrame {
            layout,
            width: w as u32,
            height: h as u32,
            planes: &planes,
            strides: &[w * bytes, chroma_w * bytes, chroma_w * bytes],
        };
        let t = frame_to_rgb(&frame, size, colorimetry, Device::Cpu).unwrap();
        super::super::postprocess::to_vec_u8(&t).unwrap()
    }

    fn max_abs_diff(a: &[u8], b: &[u8]) -> u8 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    /// Limited-range 8-bit samples over most of the code range: luma 16..=235, chroma 16..=240.
    fn limited_pattern(n: usize, seed: usize, chroma: bool) -> Vec<u16> {
        let span = if chroma { 225 } else { 220 };
        (0..n)
            .map(|i| 16 + ((i * 37 + seed * 101 + (i / 7) * 13) % span) as u16)
            .collect()
    }

    #[test]
    fn every_layout_round_trips_its_name() {
        for layout in FrameLayout::ALL {
            assert_eq!(layout.name().parse::<FrameLayout>(), Ok(layout));
            assert_eq!(layout.is_yuv(), layout.packed().is_none(), "{layout}");
        }
        assert_eq!(FrameLayout::Gray8.planes(), 1);
        assert_eq!(FrameLayout::Y42b.planes(), 3);
        assert_eq!(FrameLayout::I422_10le.bits(), 10);
        assert_eq!(FrameLayout::Nv12.bits(), 8);
    }

    /// A full-range frame and its limited-range equivalent (the same colours) give the same
    /// RGB, at 8 and 10 bits, up to the rounding of the samples themselves.
    #[test]
    fn full_range_frame_matches_its_limited_equivalent() {
        let (w, h) = (16usize, 8usize);
        let (cw, ch) = (w / 2, h / 2);
        let y8 = limited_pattern(w * h, 0, false);
        let u8_ = limited_pattern(cw * ch, 1, true);
        let v8 = limited_pattern(cw * ch, 2, true);
        for (layout, bits) in [(FrameLayout::I420, 8u32), (FrameLayout::I420_10le, 10)] {
            let top = f64::from((1u32 << bits) - 1);
            let half = f64::from(1u32 << (bits - 1));
            let step = f64::from(1u32 << (bits - 8));
            let limited = |s: &[u16]| s.iter().map(|&v| v * step as u16).collect::<Vec<_>>();
            let full_luma = |s: &[u16]| {
                s.iter()
                    .map(|&v| {
                        ((f64::from(v) - 16.0) / 219.0 * top)
                            .round()
                            .clamp(0.0, top) as u16
                    })
                    .collect::<Vec<_>>()
            };
            let full_chroma = |s: &[u16]| {
                s.iter()
                    .map(|&v| {
                        ((f64::from(v) - 128.0) / 224.0 * top + half)
                            .round()
                            .clamp(0.0, top) as u16
                    })
                    .collect::<Vec<_>>()
            };
            for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709, YuvMatrix::Bt2020] {
                let lim = YuvColorimetry {
                    matrix,
                    range: YuvRange::Limited,
                };
                let full = YuvColorimetry {
                    matrix,
                    range: YuvRange::Full,
                };
                for size in [(h as u32, w as u32), (4, 8)] {
                    let (ly, lu, lv) = (limited(&y8), limited(&u8_), limited(&v8));
                    let a = planar_rgb(layout, (w, h), [&ly, &lu, &lv], size, lim);
                    let (fy, fu, fv) = (full_luma(&y8), full_chroma(&u8_), full_chroma(&v8));
                    let b = planar_rgb(layout, (w, h), [&fy, &fu, &fv], size, full);
                    let d = max_abs_diff(&a, &b);
                    assert!(d <= 2, "{layout} {matrix:?} {size:?}: max |diff| {d}");
                    // Reading the full-range frame as limited would be far off.
                    let wrong = planar_rgb(layout, (w, h), [&fy, &fu, &fv], size, lim);
                    assert!(max_abs_diff(&a, &wrong) > 10, "{layout} {matrix:?}");
                }
            }
        }
    }

    /// Limited-range 10-bit samples are the 8-bit ones times four: the same RGB.
    #[test]
    fn ten_bit_frames_match_their_eight_bit_equivalent() {
        let (w, h) = (12usize, 6usize);
        for (narrow, deep, (cw, ch)) in [
            (FrameLayout::I420, FrameLayout::I420_10le, (w / 2, h / 2)),
            (FrameLayout::Y42b, FrameLayout::I422_10le, (w / 2, h)),
            (FrameLayout::Y444, FrameLayout::Y444_10le, (w, h)),
        ] {
            let y = limited_pattern(w * h, 3, false);
            let u = limited_pattern(cw * ch, 4, true);
            let v = limited_pattern(cw * ch, 5, true);
            let times4 = |s: &[u16]| s.iter().map(|&v| v * 4).collect::<Vec<_>>();
            for size in [(h as u32, w as u32), (4, 6), (9, 15)] {
                let a = planar_rgb(narrow, (w, h), [&y, &u, &v], size, YuvColorimetry::BT709);
                let (y4, u4, v4) = (times4(&y), times4(&u), times4(&v));
                let b = planar_rgb(deep, (w, h), [&y4, &u4, &v4], size, YuvColorimetry::BT709);
                let d = max_abs_diff(&a, &b);
                assert!(d <= 1, "{narrow} vs {deep} {size:?}: max |diff| {d}");
            }
        }
    }

    /// With flat chroma every subsampling, plane order and depth must give I420's RGB; the
    /// chroma values differ so that a swapped U and V would show.
    #[test]
    fn chroma_layouts_agree_on_flat_chroma() {
        let (w, h) = (10usize, 6usize);
        let y = limited_pattern(w * h, 6, false);
        let yb = plane_bytes(&y, 8);
        let size = (3u32, 5u32);
        let frame_rgb = |layout: FrameLayout, planes: &[&[u8]], strides: &[usize]| {
            let frame = RawFrame {
                layout,
                width: w as u32,
                height: h as u32,
                planes,
                strides,
            };
            rgb_of(&frame, size)
        };
        let (u0, v0) = (90u16, 200u16);
        let flat = |n: usize, value: u16, bits: u32| plane_bytes(&vec![value; n], bits);
        let reference = frame_rgb(
            FrameLayout::I420,
            &[&yb, &flat(15, u0, 8), &flat(15, v0, 8)],
            &[w, 5, 5],
        );
        let yv = frame_rgb(
            FrameLayout::Yv12,
            &[&yb, &flat(15, v0, 8), &flat(15, u0, 8)],
            &[w, 5, 5],
        );
        assert_eq!(yv, reference);
        let uv: Vec<u8> = [u0 as u8, v0 as u8].repeat(15);
        let vu: Vec<u8> = [v0 as u8, u0 as u8].repeat(15);
        assert_eq!(
            frame_rgb(FrameLayout::Nv12, &[&yb, &uv], &[w, 10]),
            reference
        );
        assert_eq!(
            frame_rgb(FrameLayout::Nv21, &[&yb, &vu], &[w, 10]),
            reference
        );
        for (layout, cw, ch) in [
            (FrameLayout::Y42b, 5, 6),
            (FrameLayout::Y444, 10, 6),
            (FrameLayout::I420_10le, 5, 3),
            (FrameLayout::I422_10le, 5, 6),
            (FrameLayout::Y444_10le, 10, 6),
        ] {
            let bits = layout.bits();
            let k = 1u16 << (bits - 8);
            let luma = plane_bytes(&y.iter().map(|&s| s * k).collect::<Vec<_>>(), bits);
            let bytes = if bits > 8 { 2 } else { 1 };
            let out = frame_rgb(
                layout,
                &[
                    &luma,
                    &flat(cw * ch, u0 * k, bits),
                    &flat(cw * ch, v0 * k, bits),
                ],
                &[w * bytes, cw * bytes, cw * bytes],
            );
            assert!(max_abs_diff(&out, &reference) <= 1, "{layout}");
        }
        let grey_reference = frame_rgb(
            FrameLayout::I420,
            &[&yb, &flat(15, 128, 8), &flat(15, 128, 8)],
            &[w, 5, 5],
        );
        assert_eq!(frame_rgb(FrameLayout::Gray8, &[&yb], &[w]), grey_reference);
    }

    /// 4:4:4 at its own size: every pixel converted with its own chroma, as the matrix says.
    #[test]
    fn y444_converts_each_pixel_with_its_own_chroma() {
        let (w, h) = (7usize, 5usize);
        let y = limited_pattern(w * h, 7, false);
        let u = limited_pattern(w * h, 8, true);
        let v = limited_pattern(w * h, 9, true);
        let c = YuvColorimetry::BT709;
        let out = planar_rgb(
            FrameLayout::Y444,
            (w, h),
            [&y, &u, &v],
            (h as u32, w as u32),
            c,
        );
        let (m, off) = c.rgb_matrix();
        for i in 0..w * h {
            let s = [y[i], u[i], v[i]].map(f32::from);
            for (ch, row) in m.iter().enumerate() {
                let want = row
                    .iter()
                    .zip(s.iter().zip(&off))
                    .map(|(k, (x, o))| k * (x - o))
                    .sum::<f32>()
                    .round()
                    .clamp(0.0, 255.0);
                let got = f32::from(out[ch * w * h + i]);
                assert!(
                    (got - want).abs() <= 1.0,
                    "pixel {i} channel {ch}: {got} vs {want}"
                );
            }
        }
    }

    /// 10-bit planes with padded rows, even or odd, read like packed ones.
    #[test]
    fn ten_bit_strides_are_honoured() {
        let (w, h) = (6usize, 4usize);
        let y: Vec<u16> = limited_pattern(w * h, 10, false)
            .iter()
            .map(|s| s * 4)
            .collect();
        let u: Vec<u16> = limited_pattern(9, 11, true).iter().map(|s| s * 4).collect();
        let v: Vec<u16> = limited_pattern(9, 12, true).iter().map(|s| s * 4).collect();
        let size = (h as u32, w as u32);
        let packed = planar_rgb(
            FrameLayout::I420_10le,
            (w, h),
            [&y, &u, &v],
            size,
            YuvColorimetry::BT601,
        );
        for pad in [4usize, 3] {
            let padded = |s: &[u16], row: usize| -> (Vec<u8>, usize) {
                let stride = row * 2 + pad;
                let mut out = Vec::new();
                for r in s.chunks(row) {
                    out.extend(plane_bytes(r, 10));
                    out.extend(std::iter::repeat_n(0xEEu8, pad));
                }
                (out, stride)
            };
            let ((yb, ys), (ub, us), (vb, vs)) = (padded(&y, w), padded(&u, 3), padded(&v, 3));
            let planes: [&[u8]; 3] = [&yb, &ub, &vb];
            let frame = RawFrame {
                layout: FrameLayout::I420_10le,
                width: w as u32,
                height: h as u32,
                planes: &planes,
                strides: &[ys, us, vs],
            };
            assert_eq!(rgb_of(&frame, size), packed, "row padding {pad}");
        }
    }

    #[test]
    fn short_planes_and_strides_are_errors() {
        let data = vec![0u8; 10];
        let planes: [&[u8]; 1] = [&data];
        let frame = RawFrame {
            layout: FrameLayout::Rgb,
            width: 2,
            height: 2,
            planes: &planes,
            strides: &[6],
        };
        let e = frame_to_rgb(&frame, (2, 2), YuvColorimetry::BT601, Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("need at least 12"), "{e}");
        let frame = RawFrame {
            strides: &[5],
            ..frame
        };
        let e = frame_to_rgb(&frame, (2, 2), YuvColorimetry::BT601, Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("RGB 2x2") && e.to_string().contains("stride 5"));
        let frame = RawFrame {
            layout: FrameLayout::Nv12,
            ..frame
        };
        let e = frame_to_rgb(&frame, (2, 2), YuvColorimetry::BT601, Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("2 plane(s) expected"), "{e}");
    }
}
