//! Residual-guided correction (after TapLab's RGC): where the carried class map is likely
//! wrong, re-segment just that region of the current frame.
//!
//! The evidence is free: the keyframe's luma carried along the same accumulated field as its
//! class map should look like the current frame wherever the field explains the motion.
//! Where it does not (objects that move on their own, occlusions, light changes, a wrong
//! vector) the two differ. The frame is cut into square tiles; each tile scores the mean
//! absolute difference of the two lumas after a 4x4 box average (so a one- or two-pixel
//! misalignment of fine texture counts little, content that is not there counts fully); the
//! worst tiles above `threshold` are re-segmented, each with a margin of context, as long as
//! the crops' pixels stay within `budget` (a share of the frame's pixels, so roughly a share
//! of one full inference's time per frame). No GStreamer or libtorch here.

/// How much correction a frame may have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrectionConfig {
    /// The most crop pixels (context included) per frame, as a share of the frame's: 0 = off.
    pub budget: f64,
    /// Mean absolute luma difference (0..255, after the 4x4 average) under which a tile is
    /// explained by the field and left alone.
    pub threshold: f32,
}

impl CorrectionConfig {
    pub const OFF: CorrectionConfig = CorrectionConfig {
        budget: 0.0,
        threshold: DEFAULT_THRESHOLD,
    };

    pub fn enabled(&self) -> bool {
        self.budget > 0.0
    }
}

pub const DEFAULT_THRESHOLD: f32 = 8.0;

/// Side of the box average, in map pixels.
const BOX: usize = 4;

/// A rectangle in map pixels, `x0..x1` by `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Rect {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    pub fn area(&self) -> u64 {
        u64::from(self.width()) * u64::from(self.height())
    }
}

/// One region to re-segment: the network sees `crop`, its result is pasted over `tile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    pub tile: Rect,
    pub crop: Rect,
    /// The tile's score (mean absolute luma difference).
    pub score: u32,
}

/// The tiling of a `width` x `height` map: square tiles of a third of the shorter side
/// (rounded to `multiple`), and the context margin around each crop (a fifth of a tile). More
/// context makes each crop agree better with the whole frame (camvid-espnet on CamVid val:
/// 92.7% at a fifth, 96.0% at two fifths; models/tools/crop_context.py) but costs more per
/// crop, and on camvid-real the two came out even per unit of time (eval_motion, budgets 0.3
/// and 0.5), so the cheaper crop stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    pub width: u32,
    pub height: u32,
    pub tile: u32,
    pub margin: u32,
    /// Crop sides are multiples of this (the bundle's `size_multiple`).
    pub multiple: u32,
}

impl Tiling {
    pub fn new(width: u32, height: u32, multiple: u32) -> Tiling {
        let multiple = multiple.max(1);
        let round = |v: u32| v.div_ceil(multiple).max(1) * multiple;
        let tile = round(width.min(height) / 3).min(width.max(height));
        let margin = round(tile / 5);
        Tiling {
            width,
            height,
            tile,
            margin,
            multiple,
        }
    }

    pub fn cols(&self) -> u32 {
        self.width.div_ceil(self.tile)
    }

    pub fn rows(&self) -> u32 {
        self.height.div_ceil(self.tile)
    }

    pub fn tile_rect(&self, col: u32, row: u32) -> Rect {
        Rect {
            x0: col * self.tile,
            y0: row * self.tile,
            x1: ((col + 1) * self.tile).min(self.width),
            y1: ((row + 1) * self.tile).min(self.height),
        }
    }

    /// `tile` grown by the margin, then to sides that are multiples of `multiple`, kept
    /// inside the map (sides up to the map's own, which the bundle accepts).
    pub fn crop_for(&self, tile: Rect) -> Rect {
        let grow = |lo: u32, hi: u32, limit: u32| {
            let lo = lo.saturating_sub(self.margin);
            let hi = (hi + self.margin).min(limit);
            let side = (hi - lo).div_ceil(self.multiple) * self.multiple;
            if side >= limit {
                return (0, limit);
            }
            // Extend to the right/bottom, or to the left/top at the border.
            let hi = (lo + side).min(limit);
            (hi - side, hi)
        };
        let (x0, x1) = grow(tile.x0, tile.x1, self.width);
        let (y0, y1) = grow(tile.y0, tile.y1, self.height);
        Rect { x0, y0, x1, y1 }
    }
}

/// Per tile (row-major over the tiling), the mean absolute difference of the 4x4 box averages
/// of `current` and `carried` (both `width * height` luma bytes, row-major).
pub fn tile_scores(tiling: &Tiling, current: &[u8], carried: &[u8]) -> Vec<f32> {
    let (w, h) = (tiling.width as usize, tiling.height as usize);
    assert_eq!(current.len(), w * h, "current luma size");
    assert_eq!(carried.len(), w * h, "carried luma size");
    let (bw, bh) = (w.div_ceil(BOX), h.div_ceil(BOX));
    // Box sums of the difference of the two images: sum(a) - sum(b) per box.
    let mut diff = vec![0i32; bw * bh];
    for y in 0..h {
        let row = (y / BOX) * bw;
        let (a, b) = (&current[y * w..(y + 1) * w], &carried[y * w..(y + 1) * w]);
        for x in 0..w {
            diff[row + x / BOX] += i32::from(a[x]) - i32::from(b[x]);
        }
    }
    let (cols, rows) = (tiling.cols() as usize, tiling.rows() as usize);
    let mut sum = vec![0f64; cols * rows];
    let mut count = vec![0u32; cols * rows];
    let tile = tiling.tile as usize;
    for by in 0..bh {
        let box_h = (h - by * BOX).min(BOX);
        for bx in 0..bw {
            let box_w = (w - bx * BOX).min(BOX);
            let mean = f64::from(diff[by * bw + bx]).abs() / (box_w * box_h) as f64;
            let t = ((by * BOX) / tile) * cols + (bx * BOX) / tile;
            sum[t] += mean;
            count[t] += 1;
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(&s, &n)| {
            if n > 0 {
                (s / f64::from(n)) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// The tiles to re-segment: worst first, scores above the threshold, crops within the budget.
/// A tile whose crop would overrun the budget is skipped for a smaller one behind it.
pub fn plan(tiling: &Tiling, scores: &[f32], config: &CorrectionConfig) -> Vec<Patch> {
    if !config.enabled() {
        return Vec::new();
    }
    let cols = tiling.cols();
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] > config.threshold)
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let allowed = config.budget * f64::from(tiling.width) * f64::from(tiling.height);
    let mut spent = 0.0;
    let mut patches = Vec::new();
    for i in order {
        let tile = tiling.tile_rect(i as u32 % cols, i as u32 / cols);
        let crop = tiling.crop_for(tile);
        if spent + crop.area() as f64 > allowed {
            continue;
        }
        spent += crop.area() as f64;
        patches.push(Patch {
            tile,
            crop,
            score: scores[i].round() as u32,
        });
    }
    patches
}

/// Copies `tile` of a crop's class map (`crop.width() x crop.height()`, row-major) into `map`
/// (`width` wide).
pub fn paste(map: &mut [u8], width: u32, patch: &Patch, crop_map: &[u8]) {
    let (crop, tile) = (patch.crop, patch.tile);
    let cw = crop.width() as usize;
    assert_eq!(crop_map.len(), cw * crop.height() as usize, "crop map size");
    let (tx0, tx1) = (tile.x0 as usize, tile.x1 as usize);
    for y in tile.y0..tile.y1 {
        let src = (y - crop.y0) as usize * cw + (tile.x0 - crop.x0) as usize;
        let dst = y as usize * width as usize;
        map[dst + tx0..dst + tx1].copy_from_slice(&crop_map[src..src + (tx1 - tx0)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 480;
    const H: u32 = 360;

    #[test]
    fn tiles_cover_the_map_and_crops_keep_to_the_multiple() {
        let t = Tiling::new(W, H, 8);
        assert_eq!((t.tile, t.margin, t.cols(), t.rows()), (120, 24, 4, 3));
        for row in 0..t.rows() {
            for col in 0..t.cols() {
                let tile = t.tile_rect(col, row);
                let crop = t.crop_for(tile);
                assert!(
                    crop.x0 <= tile.x0 && crop.x1 >= tile.x1,
                    "{tile:?} {crop:?}"
                );
                assert!(
                    crop.y0 <= tile.y0 && crop.y1 >= tile.y1,
                    "{tile:?} {crop:?}"
                );
                assert!(crop.x1 <= W && crop.y1 <= H, "{crop:?}");
                assert_eq!(crop.width() % 8, 0, "{crop:?}");
                assert_eq!(crop.height() % 8, 0, "{crop:?}");
            }
        }
        // An odd size: the last tiles are cut at the border, crops still fit.
        let t = Tiling::new(250, 130, 8);
        let last = t.tile_rect(t.cols() - 1, t.rows() - 1);
        assert_eq!((last.x1, last.y1), (250, 130));
        let crop = t.crop_for(last);
        assert!(
            crop.x1 <= 250 && crop.y1 <= 130 && crop.width() % 8 == 0,
            "{crop:?}"
        );
    }

    /// A luma image with fine texture (a 4-pixel period) everywhere, over a gentle ramp.
    fn textured() -> Vec<u8> {
        (0..W * H)
            .map(|i| {
                let (x, y) = (i % W, i / W);
                ((x % 4) * 40 + (y % 4) * 10 + x / 8) as u8
            })
            .collect()
    }

    #[test]
    fn an_unexplained_region_is_chosen_and_explained_ones_are_left_alone() {
        let t = Tiling::new(W, H, 8);
        let carried = textured();
        let mut current = carried.clone();
        // Something the field did not carry: a bright object in tile (col 2, row 1).
        for y in 130..220 {
            for x in 250..350 {
                current[(y * W + x) as usize] = 250;
            }
        }
        let scores = tile_scores(&t, &current, &carried);
        let config = CorrectionConfig {
            budget: 0.5,
            threshold: DEFAULT_THRESHOLD,
        };
        let patches = plan(&t, &scores, &config);
        assert_eq!(patches.len(), 1, "{scores:?}");
        assert_eq!(patches[0].tile, t.tile_rect(2, 1));
        // Explained everywhere: nothing to do.
        assert!(plan(&t, &tile_scores(&t, &carried, &carried), &config).is_empty());
    }

    #[test]
    fn a_one_pixel_shift_of_texture_is_explained() {
        let t = Tiling::new(W, H, 8);
        let carried = textured();
        let mut shifted = carried.clone();
        shifted.rotate_right(1);
        let scores = tile_scores(&t, &shifted, &carried);
        assert!(scores.iter().all(|&s| s < DEFAULT_THRESHOLD), "{scores:?}");
    }

    #[test]
    fn the_budget_bounds_the_crops_worst_first() {
        let t = Tiling::new(W, H, 8);
        // Every tile unexplained, tile i worse than tile i-1.
        let scores: Vec<f32> = (0..t.cols() * t.rows()).map(|i| 20.0 + i as f32).collect();
        let frame = f64::from(W * H);
        for budget in [0.0, 0.1, 0.2, 0.35, 1.0] {
            let config = CorrectionConfig {
                budget,
                threshold: DEFAULT_THRESHOLD,
            };
            let patches = plan(&t, &scores, &config);
            let spent: u64 = patches.iter().map(|p| p.crop.area()).sum();
            assert!(spent as f64 <= budget * frame, "budget {budget}: {spent}");
            if budget >= 0.2 {
                assert!(!patches.is_empty(), "budget {budget}");
                // The worst tile is the last one, a corner.
                assert_eq!(patches[0].tile, t.tile_rect(t.cols() - 1, t.rows() - 1));
            }
        }
        assert!(plan(&t, &scores, &CorrectionConfig::OFF).is_empty());
    }

    #[test]
    fn paste_writes_the_tile_only() {
        let t = Tiling::new(W, H, 8);
        let tile = t.tile_rect(1, 1);
        let patch = Patch {
            tile,
            crop: t.crop_for(tile),
            score: 30,
        };
        let mut map = vec![0u8; (W * H) as usize];
        let crop_map = vec![7u8; patch.crop.area() as usize];
        paste(&mut map, W, &patch, &crop_map);
        for y in 0..H {
            for x in 0..W {
                let inside = (tile.x0..tile.x1).contains(&x) && (tile.y0..tile.y1).contains(&y);
                assert_eq!(
                    map[(y * W + x) as usize],
                    if inside { 7 } else { 0 },
                    "({x}, {y})"
                );
            }
        }
    }
}
