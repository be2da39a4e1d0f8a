//! Raw video frames (YUV or packed RGB planes) to the model's uint8 RGB input, with tensor ops.
//!
//! Order of work: wrap each plane in a tensor (one copy, strides honoured), move it to the
//! device, resize luma and chroma separately straight to the model size (bilinear; antialiased
//! when shrinking), convert YUV to RGB there with [`yuv_to_rgb`], round and clamp to uint8.
//! Resizing before converting is exact because both are linear; only the final clamp of
//! out-of-gamut values differs, by design. Chroma samples are taken as centred on their 2x2
//! luma block (JPEG/MPEG-1 siting); MPEG-2's left-cosited chroma is off by a quarter chroma
//! sample horizontally, invisible at the model's resolution.

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind, Tensor};

use super::error::{ModelError, TchContext};

/// Raw video formats the element accepts, named as GStreamer names them.
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
}

impl FrameLayout {
    pub const ALL: [FrameLayout; 14] = [
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
        }
    }

    /// How many planes a frame of this layout has.
    pub fn planes(self) -> usize {
        match self {
            FrameLayout::I420 | FrameLayout::Yv12 => 3,
            FrameLayout::Nv12 | FrameLayout::Nv21 => 2,
            _ => 1,
        }
    }

    pub fn is_yuv(self) -> bool {
        self.planes() > 1
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

/// The YUV -> RGB matrix (ITU-R BT.601 for SD, BT.709 for HD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum YuvMatrix {
    #[default]
    Bt601,
    Bt709,
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

    /// `rgb = M * (yuv - offset)`, in 0..255 code values, as `(M, offset)`.
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
        let (kr, kb) = match self.matrix {
            YuvMatrix::Bt601 => (0.299f64, 0.114f64),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
        };
        let kg = 1.0 - kr - kb;
        let (ys, cs, y0) = match self.range {
            YuvRange::Limited => (255.0 / 219.0, 255.0 / 224.0, 16.0),
            YuvRange::Full => (1.0, 1.0, 0.0),
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
        (m.map(|row| row.map(|v| v as f32)), [y0, 128.0, 128.0])
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
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));

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

    let y = plane(0, h, w)?;
    let chroma = match frame.layout {
        FrameLayout::I420 | FrameLayout::Yv12 => {
            let (u, v) = (plane(1, ch, cw)?, plane(2, ch, cw)?);
            let (u, v) = if frame.layout == FrameLayout::I420 {
                (u, v)
            } else {
                (v, u)
            };
            Tensor::f_stack(&[u, v], 0).context("stacking chroma")?
        }
        FrameLayout::Nv12 | FrameLayout::Nv21 => {
            let uv = plane(1, ch, 2 * cw)?
                .f_reshape([ch as i64, cw as i64, 2])
                .and_then(|t| t.f_permute([2, 0, 1]))
                .context("splitting interleaved chroma")?;
            if frame.layout == FrameLayout::Nv12 {
                uv
            } else {
                uv.f_flip([0]).context("swapping V and U")?
            }
        }
        _ => unreachable!("packed layouts handled above"),
    };
    let to_float = |t: Tensor| {
        t.f_to_device(device)
            .and_then(|t| t.f_to_kind(Kind::Float))
            .and_then(|t| t.f_unsqueeze(0))
            .context("copying the frame to the device")
    };
    let luma = resize(&to_float(y.f_unsqueeze(0).context("luma")?)?, size)?;
    let chroma = resize(&to_float(chroma)?, size)?;
    let yuv = Tensor::f_cat(&[luma, chroma], 1).context("joining luma and chroma")?;
    yuv_to_rgb(&yuv, colorimetry)
}

/// THE YUV -> RGB conversion: float `[N, 3, H, W]` Y, U, V code values (0..255) to uint8 RGB
/// `[N, 3, H, W]`, rounded and clamped. See [`YuvColorimetry::rgb_matrix`] for the math.
pub fn yuv_to_rgb(yuv: &Tensor, colorimetry: YuvColorimetry) -> Result<Tensor, ModelError> {
    let (m, offset) = colorimetry.rgb_matrix();
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

/// A `[rows, row_bytes]` uint8 tensor holding a copy of one plane's rows (padding skipped).
fn plane_tensor(
    data: &[u8],
    stride: usize,
    rows: usize,
    row_bytes: usize,
) -> Result<Tensor, String> {
    if stride < row_bytes {
        return Err(format!("stride {stride} < {row_bytes} bytes per row"));
    }
    // The last row may stop at its last pixel rather than at a full stride.
    let needed = (rows - 1) * stride + row_bytes;
    if data.len() < needed {
        return Err(format!(
            "{} bytes, need at least {needed} ({rows} rows of {row_bytes} bytes, stride {stride})",
            data.len()
        ));
    }
    let flat = Tensor::f_from_slice(&data[..needed]).map_err(|e| e.to_string())?;
    if stride == row_bytes {
        return flat
            .f_view([rows as i64, row_bytes as i64])
            .map_err(|e| e.to_string());
    }
    flat.f_as_strided([rows as i64, row_bytes as i64], [stride as i64, 1], 0)
        .map_err(|e| e.to_string())
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
