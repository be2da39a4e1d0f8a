//! Fuzz body: arbitrary codec vectors and geometries through the motion field
//! (`MotionField::paint`, `accumulate`, `sample`, `stats`, `warp_class_map`, `MotionTrack`),
//! checked against the contracts documented in `src/motion/field.rs`. Shared by the cargo-fuzz
//! target `motion_field` and the seeded run in `tests/fuzz.rs`; panics on a violation.

use gstvss::motion::{FieldError, MotionField, MotionTrack, MotionVector, PictureType};

/// Reads fuzz bytes as numbers; zeroes once exhausted, so every input is valid.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn i16(&mut self) -> i16 {
        self.u16() as i16
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Frames up to this size keep an iteration in the milliseconds (filling intra cells costs
/// cells x rings; see `tests/fuzz.rs`, `almost_all_intra_p_frame_paints_in_linear_time`).
const MAX_SIDE: u32 = 256;
const MAX_VECTORS: usize = 96;

/// One vector: mostly plausible (blocks of 4..16 px inside or near the frame, quarter-pel
/// motion), sometimes anything at all.
fn vector(b: &mut Bytes, width: u32, height: u32) -> MotionVector {
    let kind = b.u8();
    if kind < 32 {
        // Raw: every field from the input, including sizes 0 and 255, scale 0, any source.
        return MotionVector {
            source: i32::from(b.i16()),
            w: b.u8(),
            h: b.u8(),
            src_x: b.i16(),
            src_y: b.i16(),
            dst_x: b.i16(),
            dst_y: b.i16(),
            motion_x: i32::from(b.i16()) * i32::from(b.u8()),
            motion_y: i32::from(b.i16()) * i32::from(b.u8()),
            motion_scale: b.u16(),
        };
    }
    let sizes = [4u8, 8, 16];
    let w = sizes[usize::from(b.u8() % 3)];
    let h = sizes[usize::from(b.u8() % 3)];
    let dst_x = (u32::from(b.u16()) % (width + 32)) as i16 - 8;
    let dst_y = (u32::from(b.u16()) % (height + 32)) as i16 - 8;
    let motion_x = i32::from(b.i16() % 512);
    let motion_y = i32::from(b.i16() % 512);
    MotionVector {
        source: if kind & 1 == 0 { -1 } else { 1 },
        w,
        h,
        src_x: dst_x.wrapping_add((motion_x / 4) as i16),
        src_y: dst_y.wrapping_add((motion_y / 4) as i16),
        dst_x,
        dst_y,
        motion_x,
        motion_y,
        motion_scale: 4,
    }
}

fn picture_type(byte: u8) -> PictureType {
    match byte % 5 {
        0 => PictureType::I,
        1 => PictureType::P,
        2 => PictureType::B,
        3 => PictureType::Unknown,
        _ => PictureType::Other,
    }
}

/// Whether `centre` (in doubled pixel units) lies in the block of `size` pixels centred on
/// `dst`: the block is `[dst - size/2, dst - size/2 + size)` (FFmpeg's block centre).
fn in_block(centre2: i64, dst: i16, size: u8) -> bool {
    let start = i64::from(dst) - i64::from(size / 2);
    2 * start <= centre2 && centre2 < 2 * (start + i64::from(size))
}

/// The displacement a vector paints: its own for past references, negated for future ones.
fn painted(mv: &MotionVector) -> (f32, f32) {
    let (dx, dy) = mv.displacement();
    if mv.source <= 0 { (dx, dy) } else { (-dx, -dy) }
}

/// The cells along one axis whose centre may lie in a block (a superset, checked exactly by
/// `in_block`): `start / cell - 1 ..= end / cell + 1`, clipped to the grid.
fn candidate_cells(dst: i16, size: u8, cell: i64, n: usize) -> std::ops::Range<usize> {
    let start = i64::from(dst) - i64::from(size / 2);
    let end = start + i64::from(size);
    let clip = |c: i64| c.clamp(0, n as i64) as usize;
    clip(start.div_euclid(cell) - 1)..clip(end.div_euclid(cell) + 2)
}

/// `paint`'s contract, cell by cell: a cell is uncovered iff no block contains its centre; a
/// covered cell holds the displacement of a block containing it, a past one if any; filled
/// cells stay within the range of the painted ones; the report adds up.
fn check_paint(field: &MotionField, vectors: &[MotionVector], ignored: usize) {
    let g = field.geometry();
    let cell = i64::from(g.cell);
    let (cols, rows) = (field.cols(), field.rows());
    assert_eq!(field.dx().len(), cols * rows);
    // The vectors whose block contains each cell's centre.
    let mut containing: Vec<Vec<usize>> = vec![Vec::new(); cols * rows];
    let mut ignored_here = 0;
    for (k, v) in vectors.iter().enumerate() {
        let mut used = false;
        for row in candidate_cells(v.dst_y, v.h, cell, rows) {
            if !in_block((2 * row as i64 + 1) * cell, v.dst_y, v.h) {
                continue;
            }
            for col in candidate_cells(v.dst_x, v.w, cell, cols) {
                if in_block((2 * col as i64 + 1) * cell, v.dst_x, v.w) {
                    containing[row * cols + col].push(k);
                    used = true;
                }
            }
        }
        ignored_here += usize::from(!used);
    }
    assert_eq!(
        ignored, ignored_here,
        "ignored vectors: those whose block holds no cell centre"
    );
    let (mut lo, mut hi) = (
        (f32::INFINITY, f32::INFINITY),
        (f32::NEG_INFINITY, f32::NEG_INFINITY),
    );
    let mut covered_any = false;
    for row in 0..rows {
        for col in 0..cols {
            let containing = &containing[row * cols + col];
            let got = field.displacement(col, row).expect("cell in the grid");
            let uncovered = field.is_uncovered(col, row).expect("cell in the grid");
            assert!(
                got.0.is_finite() && got.1.is_finite(),
                "cell ({col}, {row}): {got:?}"
            );
            assert_eq!(
                uncovered,
                containing.is_empty(),
                "cell ({col}, {row}) of {g}: uncovered {uncovered}, {} blocks contain it",
                containing.len()
            );
            if containing.is_empty() {
                continue;
            }
            covered_any = true;
            lo = (lo.0.min(got.0), lo.1.min(got.1));
            hi = (hi.0.max(got.0), hi.1.max(got.1));
            let any_past = containing.iter().any(|&k| vectors[k].source <= 0);
            let candidates: Vec<(f32, f32)> = containing
                .iter()
                .filter(|&&k| !any_past || vectors[k].source <= 0)
                .map(|&k| painted(&vectors[k]))
                .collect();
            assert!(
                candidates.contains(&got),
                "cell ({col}, {row}) of {g} holds {got:?}, not one of {candidates:?}"
            );
        }
    }
    for row in 0..rows {
        for col in 0..cols {
            if field.is_uncovered(col, row) != Some(true) {
                continue;
            }
            let got = field.displacement(col, row).expect("cell");
            if !covered_any {
                assert_eq!(got, (0.0, 0.0), "no vectors: cell ({col}, {row}) not zero");
                continue;
            }
            // Means of neighbours' values stay within their range (f32 rounding aside).
            let tol = |v: f32| 1e-3 * v.abs().max(1.0);
            assert!(
                got.0 >= lo.0 - tol(lo.0)
                    && got.0 <= hi.0 + tol(hi.0)
                    && got.1 >= lo.1 - tol(lo.1)
                    && got.1 <= hi.1 + tol(hi.1),
                "filled cell ({col}, {row}) {got:?} outside the painted range {lo:?}..{hi:?}"
            );
        }
    }
}

/// `accumulate`'s formula, cell by cell: `A(p) = D(p) + sample(A_prev, p + D(p))`, and a cell
/// uncovered in the step stays uncovered.
fn check_accumulate(acc: &MotionField, previous: &MotionField, step: &MotionField) {
    let cell = step.geometry().cell as f32;
    for row in 0..step.rows() {
        let cy = (row as f32 + 0.5) * cell;
        for col in 0..step.cols() {
            let cx = (col as f32 + 0.5) * cell;
            let d = step.displacement(col, row).expect("cell");
            let a = previous.sample(cx + d.0, cy + d.1);
            let want = (d.0 + a.0, d.1 + a.1);
            let got = acc.displacement(col, row).expect("cell");
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1.0);
            assert!(
                close(got.0, want.0) && close(got.1, want.1),
                "accumulated cell ({col}, {row}): {got:?}, formula gives {want:?}"
            );
            if step.is_uncovered(col, row) == Some(true) {
                assert_eq!(
                    acc.is_uncovered(col, row),
                    Some(true),
                    "cell ({col}, {row})"
                );
            }
        }
    }
}

fn check_stats(field: &MotionField) {
    let s = field.stats();
    assert!((0.0..=1.0).contains(&s.uncovered_share), "{s:?}");
    assert!((0.0..=1.0).contains(&s.outside_share), "{s:?}");
    assert!(
        s.mean_magnitude >= 0.0 && s.mean_magnitude.is_finite(),
        "{s:?}"
    );
}

/// Warping a class map: sizes are checked, every output value comes from the map, and a zero
/// field is the identity whatever the map's size.
fn check_warp(field: &MotionField, b: &mut Bytes) {
    let (mw, mh) = (1 + u32::from(b.u8() % 96), 1 + u32::from(b.u8() % 96));
    let map: Vec<u8> = (0..mw * mh).map(|i| (i % 251) as u8 ^ b.u8()).collect();
    let mut out = vec![0u8; map.len()];
    let mut short = vec![0u8; map.len().saturating_sub(1)];
    assert!(matches!(
        field.warp_class_map(&map, mw, mh, &mut short),
        Err(FieldError::ClassMapSize { .. })
    ));
    field
        .warp_class_map(&map, mw, mh, &mut out)
        .expect("warp with matching sizes");
    let mut present = [false; 256];
    for &v in &map {
        present[usize::from(v)] = true;
    }
    assert!(
        out.iter().all(|&v| present[usize::from(v)]),
        "warp invented a class"
    );
    let g = field.geometry();
    let zero = MotionField::new(g.width, g.height, g.cell).expect("geometry");
    zero.warp_class_map(&map, mw, mh, &mut out)
        .expect("warp with matching sizes");
    assert_eq!(
        out, map,
        "a zero field must warp a {mw}x{mh} map onto itself ({g})"
    );
}

/// One fuzz input: a geometry, then frames of vectors through a field and a track.
pub fn run(data: &[u8]) {
    let mut b = Bytes::new(data);
    let width = 1 + u32::from(b.u16()) % MAX_SIDE;
    let height = 1 + u32::from(b.u16()) % MAX_SIDE;
    let cell = 1 + u32::from(b.u8() % 16);
    for (w, h, c) in [(0, height, cell), (width, 0, cell), (width, height, 0)] {
        assert!(matches!(
            MotionField::new(w, h, c),
            Err(FieldError::InvalidGeometry { .. })
        ));
    }
    let mut track = MotionTrack::new(width, height, cell).expect("valid geometry");
    let mut previous = MotionField::new(width, height, cell).expect("valid geometry");
    let mut step = previous.clone();
    let mut acc = previous.clone();
    let mut frames = 0u32;
    while !b.is_empty() {
        match b.u8() % 16 {
            0 => {
                track.restart();
                assert_eq!(track.frames(), 0);
                let a = track.accumulated();
                assert!(a.dx().iter().chain(a.dy()).all(|&v| v == 0.0));
                assert!(a.uncovered().iter().all(|&u| !u));
                frames = 0;
            }
            1 => {
                // A caps change: new geometry for the track.
                let (w, h) = (
                    1 + u32::from(b.u16()) % MAX_SIDE,
                    1 + u32::from(b.u16()) % MAX_SIDE,
                );
                let c = 1 + u32::from(b.u8() % 16);
                track.resize(w, h, c).expect("valid geometry");
                let g = track.geometry();
                assert_eq!((g.width, g.height, g.cell), (w, h, c));
                assert_eq!(track.frames(), 0);
                frames = 0;
            }
            2 => check_warp(track.accumulated(), &mut b),
            3 => {
                // Sampling anywhere, NaN and infinities included, never panics.
                let x = f32::from_bits(u32::from(b.u16()) << 16 | u32::from(b.u16()));
                let y = f32::from_bits(u32::from(b.u16()) << 16 | u32::from(b.u16()));
                let (dx, dy) = track.accumulated().sample(x, y);
                if x.is_finite() && y.is_finite() {
                    assert!(dx.is_finite() && dy.is_finite(), "sample({x}, {y})");
                }
            }
            _ => {
                let g = track.geometry();
                let n = usize::from(b.u8()) % (MAX_VECTORS + 1);
                let vectors: Vec<MotionVector> =
                    (0..n).map(|_| vector(&mut b, g.width, g.height)).collect();
                let picture = picture_type(b.u8());

                // The field alone: paint, then one accumulation step onto the last result.
                if step.geometry() != g {
                    step = MotionField::new(g.width, g.height, g.cell).expect("geometry");
                    previous = step.clone();
                }
                let report = step.paint(&vectors);
                assert_eq!(
                    report.past_vectors + report.future_vectors + report.ignored_vectors,
                    vectors.len(),
                    "{report:?}"
                );
                assert_eq!(
                    report.uncovered_cells,
                    step.uncovered().iter().filter(|&&u| u).count()
                );
                check_paint(&step, &vectors, report.ignored_vectors);
                acc.accumulate(&previous, &step).expect("same geometry");
                check_accumulate(&acc, &previous, &step);
                check_stats(&acc);
                std::mem::swap(&mut previous, &mut acc);
                let other = MotionField::new(g.width + 1, g.height, g.cell).expect("geometry");
                assert!(matches!(
                    acc.accumulate(&other, &step),
                    Err(FieldError::GeometryMismatch { .. })
                ));

                // The track: one more frame, finite, the same geometry.
                let track_report = track.advance_picture(&vectors, picture);
                assert_eq!(track_report, report, "the track paints like the field");
                frames += 1;
                assert_eq!(track.frames(), frames);
                let a = track.accumulated();
                assert_eq!(a.geometry(), g);
                assert!(a.dx().iter().chain(a.dy()).all(|v| v.is_finite()));
                check_stats(a);
                let grid = a.to_grid(1 + usize::from(b.u8() % 40), 1 + usize::from(b.u8() % 40));
                assert!(grid.iter().all(|v| v.is_finite()));
            }
        }
    }
}
