//! Label-free accuracy for clips without labels (the shipped dashcam clip, any user file): per
//! distance from the keyframe, the share of pixels where a cheap mode's class map equals
//! `full`'s on the same frame. Two reference rows frame it: `full` against its own previous
//! frame (how much `full` itself changes from one frame to the next: a cheap mode that agrees
//! with `full` this well is as stable as it can be), and the keyframe's map held unchanged (what
//! carrying it along the motion must beat).

use std::path::Path;

use anyhow::{Result, bail};

use super::motion_eval::{SegmentSettings, Segmented, segment};

/// Agreeing and total pixels per distance.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub label: String,
    pub per_distance: Vec<(u64, u64)>,
    pub mean_ms: f64,
}

impl Tally {
    fn new(label: String) -> Self {
        Tally {
            label,
            ..Default::default()
        }
    }

    fn add(&mut self, d: usize, a: &[u8], b: &[u8]) {
        while self.per_distance.len() <= d {
            self.per_distance.push((0, 0));
        }
        let same = a.iter().zip(b).filter(|(x, y)| x == y).count() as u64;
        let t = &mut self.per_distance[d];
        t.0 += same;
        t.1 += a.len().min(b.len()) as u64;
    }

    pub fn share(&self, d: usize) -> Option<f64> {
        self.per_distance
            .get(d)
            .filter(|t| t.1 > 0)
            .map(|t| t.0 as f64 / t.1 as f64)
    }

    pub fn overall(&self) -> Option<f64> {
        let (a, n) = self
            .per_distance
            .iter()
            .fold((0, 0), |(a, n), t| (a + t.0, n + t.1));
        (n > 0).then(|| a as f64 / n as f64)
    }
}

fn mean_ms(s: &Segmented) -> f64 {
    s.frames
        .iter()
        .map(|f| f.compute.as_secs_f64() * 1e3)
        .sum::<f64>()
        / s.frames.len().max(1) as f64
}

/// `full` and each of `modes` on `video`; the distances are those of the first cheap mode's
/// schedule (the segmentation meta's), which the reference rows use too.
pub fn agreement(settings: &SegmentSettings, video: &Path, modes: &[String]) -> Result<Vec<Tally>> {
    let full = segment(settings, video, "full")?;
    let mut runs = Vec::new();
    for mode in modes.iter().filter(|m| m.as_str() != "full") {
        runs.push((mode.clone(), segment(settings, video, mode)?));
    }
    let Some((_, schedule)) = runs.first() else {
        bail!("no mode other than full to compare");
    };
    for (mode, run) in &runs {
        if run.frames.len() != full.frames.len() {
            bail!(
                "{mode}: {} frames, full {}",
                run.frames.len(),
                full.frames.len()
            );
        }
    }
    let distances: Vec<usize> = schedule
        .frames
        .iter()
        .map(|f| f.meta_distance as usize)
        .collect();
    let mut ceiling = Tally::new("full vs its previous frame".into());
    let mut held = Tally::new("keyframe map held (no motion)".into());
    held.mean_ms = 0.0;
    ceiling.mean_ms = mean_ms(&full);
    for (i, &d) in distances.iter().enumerate() {
        let now = &full.frames[i].class_map;
        if i > 0 {
            ceiling.add(d, now, &full.frames[i - 1].class_map);
        }
        if let Some(key) = i.checked_sub(d) {
            held.add(d, now, &full.frames[key].class_map);
        }
    }
    let mut out = vec![ceiling, held];
    for (mode, run) in &runs {
        let mut t = Tally::new(mode.clone());
        t.mean_ms = mean_ms(run);
        for (i, &d) in distances.iter().enumerate() {
            t.add(d, &run.frames[i].class_map, &full.frames[i].class_map);
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_per_distance_and_overall() {
        let mut t = Tally::new("x".into());
        t.add(0, &[1, 2, 3, 4], &[1, 2, 3, 4]);
        t.add(2, &[1, 2, 3, 4], &[1, 0, 0, 4]);
        assert_eq!(t.share(0), Some(1.0));
        assert_eq!(t.share(1), None);
        assert_eq!(t.share(2), Some(0.5));
        assert_eq!(t.overall(), Some(0.75));
    }
}
