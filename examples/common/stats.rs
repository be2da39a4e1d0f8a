//! Summaries of per-frame timings for the benchmark tables.

/// Mean, p50, p99 and max of `v` (NaN for an empty slice); percentiles by nearest rank.
pub fn summary(v: &[f64]) -> (f64, f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    (
        s.iter().sum::<f64>() / s.len() as f64,
        q(0.5),
        q(0.99),
        s[s.len() - 1],
    )
}
