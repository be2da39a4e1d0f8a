//! Segmentation scores from a confusion matrix (rows = ground truth, columns = prediction).
//!
//! The Rust twin of `models/vss_models/metrics.py`: pixels whose label is not a class (CamVid's
//! void = 11) are ignored; IoU per class = TP / (TP + FP + FN), undefined (NaN) for a class
//! neither labelled nor predicted; mIoU = mean over the classes with a defined IoU.

use anyhow::{Result, bail};

/// `classes x classes` pixel counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    classes: usize,
    counts: Vec<u64>,
}

/// What [`Confusion::scores`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Per class; NaN where the class is neither labelled nor predicted.
    pub iou: Vec<f64>,
    pub miou: f64,
    pub pixel_accuracy: f64,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Confusion {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds one frame: `label` and `prediction` are class ids of the same pixels.
    pub fn add(&mut self, label: &[u8], prediction: &[u8]) -> Result<()> {
        if label.len() != prediction.len() {
            bail!(
                "label ({} pixels) and prediction ({} pixels) differ in size",
                label.len(),
                prediction.len()
            );
        }
        let n = self.classes;
        for (&gt, &pr) in label.iter().zip(prediction) {
            let (gt, pr) = (usize::from(gt), usize::from(pr));
            if gt >= n {
                continue;
            }
            if pr >= n {
                bail!("prediction id {pr} outside 0..{}", n - 1);
            }
            self.counts[gt * n + pr] += 1;
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &Confusion) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Row-major counts, `classes * classes`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn scores(&self) -> Scores {
        let n = self.classes;
        let at = |r: usize, c: usize| self.counts[r * n + c] as f64;
        let iou: Vec<f64> = (0..n)
            .map(|k| {
                let tp = at(k, k);
                let labelled: f64 = (0..n).map(|c| at(k, c)).sum();
                let predicted: f64 = (0..n).map(|r| at(r, k)).sum();
                let denom = labelled + predicted - tp;
                if denom > 0.0 { tp / denom } else { f64::NAN }
            })
            .collect();
        let defined: Vec<f64> = iou.iter().copied().filter(|v| !v.is_nan()).collect();
        let miou = if defined.is_empty() {
            f64::NAN
        } else {
            defined.iter().sum::<f64>() / defined.len() as f64
        };
        let total = self.total() as f64;
        let correct: f64 = (0..n).map(|k| at(k, k)).sum();
        Scores {
            iou,
            miou,
            pixel_accuracy: if total > 0.0 {
                correct / total
            } else {
                f64::NAN
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_metrics_py() {
        // label: 0 0 1 1 2 void; prediction: 0 1 1 1 0 2 (class 3 never appears)
        let mut m = Confusion::new(4);
        m.add(&[0, 0, 1, 1, 2, 11], &[0, 1, 1, 1, 0, 2]).unwrap();
        let s = m.scores();
        // class 0: tp 1, fn 1, fp 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 0 -> 0
        assert!((s.iou[0] - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.iou[1] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.iou[2], 0.0);
        assert!(s.iou[3].is_nan());
        assert!((s.miou - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.pixel_accuracy - 3.0 / 5.0).abs() < 1e-12);
        assert!(m.add(&[0], &[4]).is_err());
    }
}
