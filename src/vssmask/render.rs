//! Class map -> mask pixels: a lookup table per class id and nearest scaling to the output size.

use crate::model::ClassInfo;

/// The class id a `class-ids` mask carries where a frame had no segmentation (no meta), the
/// "ignore" value of segmentation datasets; no bundle class can have it (see [`check_classes`]).
pub const CLASS_NONE: u8 = 255;

/// What a pixel of the mask says about its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// The class id itself (GRAY8).
    ClassIds,
    /// The class's palette colour with this alpha (RGBA); ids outside the table are transparent.
    Color { alpha: u8 },
    /// 255 where the id is `class`, 0 elsewhere (GRAY8).
    Matte { class: u8 },
}

impl Paint {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Paint::Color { .. } => 4,
            Paint::ClassIds | Paint::Matte { .. } => 1,
        }
    }
}

/// The mask bytes of each of the 256 possible ids, and of "no segmentation".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLut {
    bytes_per_pixel: usize,
    table: [[u8; 4]; 256],
    blank: [u8; 4],
}

impl ClassLut {
    pub fn new(paint: Paint, classes: &[ClassInfo]) -> ClassLut {
        let mut table = [[0u8; 4]; 256];
        for (id, entry) in table.iter_mut().enumerate() {
            *entry = match paint {
                Paint::ClassIds => [id as u8, 0, 0, 0],
                Paint::Matte { class } => [if id == usize::from(class) { 255 } else { 0 }, 0, 0, 0],
                Paint::Color { alpha } => match classes.get(id) {
                    Some(c) => [c.color[0], c.color[1], c.color[2], alpha],
                    None => [0; 4],
                },
            };
        }
        let blank = match paint {
            Paint::ClassIds => [CLASS_NONE, 0, 0, 0],
            Paint::Matte { .. } | Paint::Color { .. } => [0; 4],
        };
        ClassLut {
            bytes_per_pixel: paint.bytes_per_pixel(),
            table,
            blank,
        }
    }

    pub fn bytes_per_pixel(&self) -> usize {
        self.bytes_per_pixel
    }

    /// The bytes of one pixel of class `id`.
    pub fn pixel(&self, id: u8) -> &[u8] {
        &self.table[usize::from(id)][..self.bytes_per_pixel]
    }

    /// The bytes of one pixel of a frame without segmentation.
    pub fn blank(&self) -> &[u8] {
        &self.blank[..self.bytes_per_pixel]
    }
}

/// Which class-map pixel each output pixel reads: nearest neighbour with pixel centres aligned,
/// the rule of `Segmentation::class_at` and `model::resize_nearest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearestGrid {
    pub map_width: u32,
    pub map_height: u32,
    pub width: u32,
    pub height: u32,
    xs: Vec<usize>,
    ys: Vec<usize>,
}

impl NearestGrid {
    pub fn new(map_width: u32, map_height: u32, width: u32, height: u32) -> NearestGrid {
        NearestGrid {
            map_width,
            map_height,
            width,
            height,
            xs: (0..width).map(|x| nearest(x, map_width, width)).collect(),
            ys: (0..height)
                .map(|y| nearest(y, map_height, height))
                .collect(),
        }
    }

    pub fn fits(&self, map_width: u32, map_height: u32, width: u32, height: u32) -> bool {
        (self.map_width, self.map_height, self.width, self.height)
            == (map_width, map_height, width, height)
    }
}

/// Why a mask cannot be rendered, or its class table or `class` property does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("class map has {len} bytes, not {width}x{height}")]
    MapSize { len: usize, width: u32, height: u32 },
    #[error(
        "output of {len} bytes with stride {stride} cannot hold {width}x{height} pixels of \
         {bytes_per_pixel} bytes"
    )]
    OutputSize {
        len: usize,
        stride: usize,
        width: u32,
        height: u32,
        bytes_per_pixel: usize,
    },
    #[error("class={spec:?} is not a class of this bundle: {names}")]
    UnknownClass { spec: String, names: String },
    #[error("{count} classes: masks hold at most {none} (id {none} means no segmentation)", none = CLASS_NONE)]
    TooManyClasses { count: usize },
    #[error("output=matte needs the class property (a class name such as Car, or an id)")]
    NoMatteClass,
}

/// Output position `p` of `out` pixels reads map position `floor((p + 0.5) * map / out)`.
fn nearest(p: u32, map: u32, out: u32) -> usize {
    ((2 * u64::from(p) + 1) * u64::from(map) / (2 * u64::from(out))) as usize
}

/// Writes the mask of `map` (row-major, `grid.map_width x grid.map_height` ids) into `out`, rows
/// `stride` bytes apart.
pub fn render(
    map: &[u8],
    grid: &NearestGrid,
    lut: &ClassLut,
    out: &mut [u8],
    stride: usize,
) -> Result<(), MaskError> {
    let map_w = grid.map_width as usize;
    if map.len() != map_w * grid.map_height as usize {
        return Err(MaskError::MapSize {
            len: map.len(),
            width: grid.map_width,
            height: grid.map_height,
        });
    }
    let row_bytes = check_size(out, stride, grid.width, grid.height, lut)?;
    let bpp = lut.bytes_per_pixel();
    let mut previous: Option<(usize, usize)> = None;
    for (y, &my) in grid.ys.iter().enumerate() {
        let start = y * stride;
        // Upscaled rows repeat: copy the row already written from the same map row.
        if let Some((prev_my, prev_start)) = previous
            && prev_my == my
        {
            out.copy_within(prev_start..prev_start + row_bytes, start);
            continue;
        }
        let src = &map[my * map_w..(my + 1) * map_w];
        let dst = &mut out[start..start + row_bytes];
        for (pixel, &mx) in dst.chunks_exact_mut(bpp).zip(&grid.xs) {
            pixel.copy_from_slice(lut.pixel(src[mx]));
        }
        previous = Some((my, start));
    }
    Ok(())
}

/// Writes the "no segmentation" mask of a `width x height` frame into `out`.
pub fn render_blank(
    lut: &ClassLut,
    out: &mut [u8],
    stride: usize,
    width: u32,
    height: u32,
) -> Result<(), MaskError> {
    let row_bytes = check_size(out, stride, width, height, lut)?;
    for row in out.chunks_mut(stride).take(height as usize) {
        for pixel in row[..row_bytes].chunks_exact_mut(lut.bytes_per_pixel()) {
            pixel.copy_from_slice(lut.blank());
        }
    }
    Ok(())
}

fn check_size(
    out: &[u8],
    stride: usize,
    width: u32,
    height: u32,
    lut: &ClassLut,
) -> Result<usize, MaskError> {
    let row_bytes = width as usize * lut.bytes_per_pixel();
    let needed = match height as usize {
        0 => 0,
        h => (h - 1) * stride + row_bytes,
    };
    if stride < row_bytes || out.len() < needed {
        return Err(MaskError::OutputSize {
            len: out.len(),
            stride,
            width,
            height,
            bytes_per_pixel: lut.bytes_per_pixel(),
        });
    }
    Ok(row_bytes)
}

/// The id of the class `spec` names: a class name (case-insensitive) or a numeric id.
pub fn resolve_class(spec: &str, classes: &[ClassInfo]) -> Result<u8, MaskError> {
    let spec = spec.trim();
    let names = || {
        classes
            .iter()
            .map(|c| format!("{} ({})", c.name, c.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let index = match spec.parse::<usize>() {
        Ok(id) => (id < classes.len()).then_some(id),
        Err(_) => classes
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(spec)),
    };
    index
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| MaskError::UnknownClass {
            spec: spec.to_owned(),
            names: names(),
        })
}

/// A class table a mask can carry: every id must differ from [`CLASS_NONE`].
pub fn check_classes(classes: &[ClassInfo]) -> Result<(), MaskError> {
    if classes.len() > usize::from(CLASS_NONE) {
        return Err(MaskError::TooManyClasses {
            count: classes.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::meta::Segmentation;

    fn classes(n: u32) -> Vec<ClassInfo> {
        (0..n)
            .map(|id| ClassInfo {
                id,
                name: format!("Class{id}"),
                color: [id as u8 * 10, id as u8 * 20, id as u8 * 30],
            })
            .collect()
    }

    fn segmentation(width: u32, height: u32, k: u32) -> Segmentation {
        let map: Vec<u8> = (0..width * height)
            .map(|i| ((i * 7 + i / 5) % k) as u8)
            .collect();
        Segmentation {
            width,
            height,
            class_map: Arc::from(map),
            classes: Arc::from(classes(k)),
            ..Default::default()
        }
    }

    #[test]
    fn scaling_reads_the_pixel_class_at_reads() {
        // Upscaling, downscaling and mixed; every output pixel against the meta's own lookup.
        for (mw, mh, w, h) in [(7, 5, 20, 11), (16, 9, 5, 4), (3, 8, 9, 2), (6, 4, 6, 4)] {
            let seg = segmentation(mw, mh, 5);
            let grid = NearestGrid::new(mw, mh, w, h);
            let lut = ClassLut::new(Paint::ClassIds, &seg.classes);
            let stride = w as usize + 3;
            let mut out = vec![0xAAu8; stride * h as usize];
            render(&seg.class_map, &grid, &lut, &mut out, stride).unwrap();
            for y in 0..h {
                for x in 0..w {
                    assert_eq!(
                        Some(out[y as usize * stride + x as usize]),
                        seg.class_at(x, y, w, h),
                        "{mw}x{mh} -> {w}x{h} at ({x}, {y})"
                    );
                }
                // Row padding is left alone.
                assert!(
                    out[y as usize * stride + w as usize..][..3]
                        .iter()
                        .all(|&b| b == 0xAA)
                );
            }
        }
    }

    #[test]
    fn colour_matte_and_blank_pixels() {
        let table = classes(4);
        let color = ClassLut::new(Paint::Color { alpha: 128 }, &table);
        assert_eq!(color.pixel(2), &[20, 40, 60, 128]);
        assert_eq!(
            color.pixel(4),
            &[0, 0, 0, 0],
            "ids outside the table are transparent"
        );
        assert_eq!(color.blank(), &[0, 0, 0, 0]);
        let matte = ClassLut::new(Paint::Matte { class: 3 }, &table);
        assert_eq!((matte.pixel(3), matte.pixel(2)), (&[255u8][..], &[0u8][..]));
        assert_eq!(matte.blank(), &[0]);
        let ids = ClassLut::new(Paint::ClassIds, &table);
        assert_eq!((ids.pixel(3), ids.blank()), (&[3u8][..], &[CLASS_NONE][..]));

        let mut out = vec![1u8; 2 * 8 + 4 * 4];
        render_blank(&color, &mut out, 16, 3, 2).unwrap();
        assert!(out[..12].iter().all(|&b| b == 0) && out[12..16] == [1; 4]);
        assert!(out[16..28].iter().all(|&b| b == 0));
    }

    #[test]
    fn render_rejects_wrong_sizes() {
        let lut = ClassLut::new(Paint::Color { alpha: 255 }, &classes(2));
        let grid = NearestGrid::new(2, 2, 4, 4);
        let mut out = vec![0u8; 4 * 4 * 4];
        let e = render(&[0; 3], &grid, &lut, &mut out, 16).unwrap_err();
        assert!(e.to_string().contains("3 bytes, not 2x2"), "{e}");
        let e = render(&[0; 4], &grid, &lut, &mut out, 12).unwrap_err();
        assert!(e.to_string().contains("stride 12"), "{e}");
        let e = render(&[0; 4], &grid, &lut, &mut out[..60], 16).unwrap_err();
        assert!(e.to_string().contains("60 bytes"), "{e}");
    }

    #[test]
    fn classes_resolve_by_name_or_id() {
        let mut table = classes(3);
        table[2].name = "Traffic light".into();
        assert_eq!(resolve_class("class1", &table), Ok(1));
        assert_eq!(resolve_class(" traffic LIGHT ", &table), Ok(2));
        assert_eq!(resolve_class("2", &table), Ok(2));
        let e = resolve_class("3", &table).unwrap_err();
        assert!(
            e.to_string()
                .contains("Class0 (0), Class1 (1), Traffic light (2)"),
            "{e}"
        );
        assert!(resolve_class("Car", &table).is_err());
        assert!(check_classes(&classes(255)).is_ok());
        assert!(
            check_classes(&classes(256))
                .unwrap_err()
                .to_string()
                .contains("256 classes")
        );
    }
}
