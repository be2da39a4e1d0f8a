//! Refinement of a frame's codec vectors against its decoded pixels.
//!
//! An encoder picks the vector that codes a block cheapest, not the one that follows the
//! content, and FFmpeg does not say which reference picture a vector uses. Both errors show in
//! the pixels: the block, moved back along its vector, does not match its reference. For each
//! 8x8 block, refinement tries every integer offset within `radius` pixels of the displacement
//! of the cell at its centre and keeps the one whose block matches the reference best (sum of
//! absolute differences on every other pixel row), with a cost per pixel of offset so that a
//! flat area keeps the codec's vector. Each cell adds its block's offset to its own
//! displacement, so the codec's sub-pixel part is kept.
//!
//! Why and how much, on CamVid 0016E5 (camvid-real) encoded with B-frames (x264 `bframes=2`,
//! B-pyramid, `ref=3`), interval 12: the B-frame encode's anchors are P-frames three frames
//! apart whose vectors span those three frames, and its `warp` lost 2.2 mIoU more than the
//! P-only encode's (camvid-espnet 63.36 vs 65.54). Choosing each block's reference by its
//! pixels among the last 4-6 frames, or chaining future vectors exactly to the next anchor (as
//! decode order would allow), changed the keyframe-warp error by under 2%
//! (`models/tools/bframe_chaining.py`); refining the vectors cut it from 10.5 to 9.2 (P-only
//! encode: 8.6) and gave `warp` +0.53 mIoU on the B-frame encode, while the P-only encode
//! gained nothing (-0.07), so the track refines only streams with B-frames
//! ([`MotionTrack::advance_refined`](super::field::MotionTrack::advance_refined)).

use super::estimate::LumaPlane;
use super::field::MotionField;

/// Default search radius in pixels (`motion-refine` on vsssegment).
pub const DEFAULT_RADIUS: u32 = 2;
/// The largest radius accepted.
pub const MAX_RADIUS: u32 = 8;
/// Cost of one pixel of offset (|ox| + |oy|), in mean absolute luma difference.
const OFFSET_PENALTY: u32 = 1;
/// Side in pixels of the blocks matched (FFmpeg's common smallest partition); each cell takes
/// the offset of the block holding its centre.
const BLOCK: usize = 8;
/// Pixel rows of each block that are compared: every `ROW_STEP`th.
const ROW_STEP: usize = 2;

/// What one refinement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefineReport {
    /// Cells searched.
    pub cells: usize,
    /// Cells whose displacement changed.
    pub moved: usize,
}

/// Scratch buffers of [`refine`], kept between frames.
#[derive(Debug, Default, Clone)]
pub struct RefineScratch {
    /// The chosen offset per block, row-major.
    offsets: Vec<(i8, i8)>,
    /// One block's reference window.
    window: Vec<u8>,
    /// One block's difference per offset.
    costs: Vec<u32>,
}

/// Moves each cell of `step` (this frame's displacement to `reference`) by the integer offset
/// within `radius` that best explains `current` from `reference`. Nothing happens when the
/// planes' sizes differ from the field's frame or `radius` is 0.
pub fn refine(
    step: &mut MotionField,
    current: &LumaPlane,
    reference: &LumaPlane,
    radius: u32,
    scratch: &mut RefineScratch,
) -> RefineReport {
    let g = step.geometry();
    let sized = |p: &LumaPlane| p.width() == g.width && p.height() == g.height;
    if radius == 0 || !sized(current) || !sized(reference) {
        return RefineReport::default();
    }
    let radius = radius.min(MAX_RADIUS) as usize;
    let (cols, rows, cell) = (g.cols(), g.rows(), g.cell as usize);
    let (width, height) = (g.width as usize, g.height as usize);
    let (bcols, brows) = (width.div_ceil(BLOCK), height.div_ceil(BLOCK));
    let side = 2 * radius + 1;
    let span = BLOCK + 2 * radius;
    scratch.offsets.clear();
    scratch.window.clear();
    scratch.window.resize(span * span, 0);
    scratch.costs.clear();
    scratch.costs.resize(side * side, 0);
    let (w, h) = (width as i64, height as i64);
    for brow in 0..brows {
        let y0 = brow * BLOCK;
        let y1 = (y0 + BLOCK).min(height);
        for bcol in 0..bcols {
            let x0 = bcol * BLOCK;
            let x1 = (x0 + BLOCK).min(width);
            // The displacement of the cell at the block's centre, in whole pixels.
            let row = ((y0 + y1) / 2 / cell).min(rows - 1);
            let col = ((x0 + x1) / 2 / cell).min(cols - 1);
            let i = row * cols + col;
            let (rx, ry) = (step.dx()[i].round() as i64, step.dy()[i].round() as i64);
            // The reference window that every offset reads, clamped at the frame's edges.
            let (wx0, wy0) = (
                x0 as i64 + rx - radius as i64,
                y0 as i64 + ry - radius as i64,
            );
            let inside = wx0 >= 0 && wy0 >= 0 && wx0 + span as i64 <= w && wy0 + span as i64 <= h;
            for k in 0..span {
                let line = &mut scratch.window[k * span..(k + 1) * span];
                if inside {
                    line.copy_from_slice(&reference.row(wy0 as usize + k)[wx0 as usize..][..span]);
                } else {
                    let src = reference.row((wy0 + k as i64).clamp(0, h - 1) as usize);
                    for (j, v) in line.iter_mut().enumerate() {
                        *v = src[(wx0 + j as i64).clamp(0, w - 1) as usize];
                    }
                }
            }
            scratch.costs.fill(0);
            let bw = x1 - x0;
            let mut pixels = 0u32;
            for y in (y0..y1).step_by(ROW_STEP) {
                let a = &current.row(y)[x0..x1];
                pixels += bw as u32;
                for oy in 0..side {
                    let line = &scratch.window[(y - y0 + oy) * span..][..span];
                    for ox in 0..side {
                        scratch.costs[oy * side + ox] += row_difference(a, &line[ox..ox + bw]);
                    }
                }
            }
            // The centre (no offset) first, so that a tie keeps the codec's vector.
            let mut best = (scratch.costs[radius * side + radius], 0i32, 0i32);
            for oy in 0..side {
                for ox in 0..side {
                    let (dx, dy) = (ox as i32 - radius as i32, oy as i32 - radius as i32);
                    let steps = dx.unsigned_abs() + dy.unsigned_abs();
                    let cost = scratch.costs[oy * side + ox] + OFFSET_PENALTY * pixels * steps;
                    if cost < best.0 {
                        best = (cost, dx, dy);
                    }
                }
            }
            scratch.offsets.push((best.1 as i8, best.2 as i8));
        }
    }
    // Each cell takes the offset of the block holding its centre.
    let (dx, dy) = step.displacements_mut();
    let mut moved = 0;
    for row in 0..rows {
        let brow = ((row * cell + cell / 2) / BLOCK).min(brows - 1);
        for col in 0..cols {
            let bcol = ((col * cell + cell / 2) / BLOCK).min(bcols - 1);
            let (ox, oy) = scratch.offsets[brow * bcols + bcol];
            if (ox, oy) != (0, 0) {
                dx[row * cols + col] += f32::from(ox);
                dy[row * cols + col] += f32::from(oy);
                moved += 1;
            }
        }
    }
    RefineReport {
        cells: cols * rows,
        moved,
    }
}

/// Sum of absolute differences of two rows of equal length, eight bytes at a time.
fn row_difference(a: &[u8], b: &[u8]) -> u32 {
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: u32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&p, &q)| u32::from(p.abs_diff(q)))
        .sum();
    ac.zip(bc).fold(rest, |total, (x, y)| {
        total
            + sad8(
                x.try_into().expect("chunks of 8"),
                y.try_into().expect("chunks of 8"),
            )
    })
}

/// Sum of absolute differences of 8 bytes: one `psadbw` on x86_64 (SSE2 is part of its
/// baseline).
#[cfg(target_arch = "x86_64")]
fn sad8(a: &[u8; 8], b: &[u8; 8]) -> u32 {
    use std::arch::x86_64::{_mm_cvtsi128_si32, _mm_sad_epu8, _mm_set_epi64x};
    // SAFETY: these intrinsics need SSE2, which every x86_64 processor has; they read only
    // their register arguments.
    unsafe {
        let x = _mm_set_epi64x(0, i64::from_le_bytes(*a));
        let y = _mm_set_epi64x(0, i64::from_le_bytes(*b));
        _mm_cvtsi128_si32(_mm_sad_epu8(x, y)) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn sad8(a: &[u8; 8], b: &[u8; 8]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| u32::from(p.abs_diff(q)))
        .sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::motion::MotionVector;

    /// A textured frame: a hash of the position, so that every offset matches somewhere else
    /// worse than at the true one.
    pub(crate) fn texture(width: usize, height: usize, shift: (i32, i32)) -> Vec<u8> {
        let mut data = vec![0u8; width * height];
        for y in 0..height {
            for x in 0..width {
                let (sx, sy) = (x as i32 + shift.0, y as i32 + shift.1);
                let h = (sx.wrapping_mul(73_856_093) ^ sy.wrapping_mul(19_349_663)) as u32;
                data[y * width + x] = (h.wrapping_mul(2_654_435_761) >> 24) as u8;
            }
        }
        data
    }

    fn vector(dst: (i16, i16), motion: (i32, i32)) -> MotionVector {
        MotionVector {
            source: -1,
            w: 16,
            h: 16,
            src_x: dst.0 + motion.0 as i16,
            src_y: dst.1 + motion.1 as i16,
            dst_x: dst.0,
            dst_y: dst.1,
            motion_x: motion.0,
            motion_y: motion.1,
            motion_scale: 1,
        }
    }

    /// Every 16x16 block of a 64x64 frame with the same vector.
    fn field_of(motion: (i32, i32)) -> MotionField {
        let mut field = MotionField::new(64, 64, 4).unwrap();
        let vectors: Vec<_> = (0..4)
            .flat_map(|r| (0..4).map(move |c| vector((c * 16 + 8, r * 16 + 8), motion)))
            .collect();
        field.paint(&vectors);
        field
    }

    #[test]
    fn a_vector_off_by_two_pixels_is_put_back_on_the_content() {
        // The frame is the reference moved by (3, -1): content at p was at p + (3, -1).
        let reference = texture(64, 64, (0, 0));
        let current = texture(64, 64, (3, -1));
        let (cur, refp) = (
            LumaPlane::new(&current, 64, 64, 64).unwrap(),
            LumaPlane::new(&reference, 64, 64, 64).unwrap(),
        );
        // The codec said (1, 1): two pixels off in each direction.
        let mut step = field_of((1, 1));
        let report = refine(&mut step, &cur, &refp, 2, &mut RefineScratch::default());
        assert_eq!(report.cells, 256);
        // Blocks whose window reads past the reference's edge may keep a clamped match; the
        // interior ones all land on the true motion.
        for row in 2..14 {
            for col in 2..14 {
                assert_eq!(
                    step.displacement(col, row),
                    Some((3.0, -1.0)),
                    "cell {col},{row}"
                );
            }
        }
    }

    #[test]
    fn a_right_vector_and_a_flat_area_are_left_alone() {
        let reference = texture(64, 64, (0, 0));
        let current = texture(64, 64, (2, 0));
        let (cur, refp) = (
            LumaPlane::new(&current, 64, 64, 64).unwrap(),
            LumaPlane::new(&reference, 64, 64, 64).unwrap(),
        );
        let mut step = field_of((2, 0));
        let before = step.clone();
        let report = refine(&mut step, &cur, &refp, 2, &mut RefineScratch::default());
        assert_eq!(report.moved, 0);
        assert_eq!(step, before);

        // Flat frames: every offset matches equally, the penalty keeps the codec's vector.
        let flat = vec![90u8; 64 * 64];
        let plane = LumaPlane::new(&flat, 64, 64, 64).unwrap();
        let mut step = field_of((1, -2));
        let before = step.clone();
        assert_eq!(
            refine(&mut step, &plane, &plane, 2, &mut RefineScratch::default()).moved,
            0
        );
        assert_eq!(step, before);
    }

    #[test]
    fn the_sub_pixel_part_is_kept_and_mismatched_planes_change_nothing() {
        let reference = texture(64, 64, (0, 0));
        let current = texture(64, 64, (2, 0));
        let (cur, refp) = (
            LumaPlane::new(&current, 64, 64, 64).unwrap(),
            LumaPlane::new(&reference, 64, 64, 64).unwrap(),
        );
        // Quarter-pel vector 0.25 px: rounds to 0, two pixels short of the content.
        let mut step = MotionField::new(64, 64, 4).unwrap();
        let quarter: Vec<_> = (0..4)
            .flat_map(|r| {
                (0..4).map(move |c| MotionVector {
                    motion_scale: 4,
                    ..vector((c * 16 + 8, r * 16 + 8), (1, 0))
                })
            })
            .collect();
        step.paint(&quarter);
        refine(&mut step, &cur, &refp, 2, &mut RefineScratch::default());
        assert_eq!(step.displacement(8, 8), Some((2.25, 0.0)));

        let small = vec![0u8; 32 * 32];
        let other = LumaPlane::new(&small, 32, 32, 32).unwrap();
        let mut step = field_of((1, 1));
        let before = step.clone();
        let report = refine(&mut step, &cur, &other, 2, &mut RefineScratch::default());
        assert_eq!(report, RefineReport::default());
        assert_eq!(step, before);
    }
}
