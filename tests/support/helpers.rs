//! Small helpers shared by the tests (through `tests/common`) and the examples (through
//! `examples/common`, or a `#[path]` include in the examples without it): one definition each.

#![allow(dead_code)]

use std::path::PathBuf;

/// Whether this runs in CI (`CI=true` or `CI=1`), where a missing tool or data set fails
/// instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `target/<profile>`: the folder above this binary's `deps/` (tests) or `examples/`.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

/// `target/<profile>` holding the built plugin, libgstvss.so.
pub fn plugin_dir() -> PathBuf {
    let dir = build_dir();
    for plugin in ["libgstvss.so", "libgstvsscodec.so"] {
        assert!(
            dir.join(plugin).exists(),
            "{} has no {plugin} (cargo build --release --workspace builds it)",
            dir.display()
        );
    }
    dir
}

/// `dir`, emptied and created.
pub fn fresh_dir(dir: PathBuf) -> PathBuf {
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating scratch dir {}: {e}", dir.display()));
    dir
}

/// A scratch folder for one test, `target/<profile>/test-scratch/<name>`, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    fresh_dir(build_dir().join("test-scratch").join(name))
}

/// Share of equal bytes (0 for empty slices).
pub fn agreement(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

/// Mean absolute difference of two equally long byte slices.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.len().max(1) as f64
}

/// The middle value (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A clock time in milliseconds.
pub fn ms(t: gst::ClockTime) -> f64 {
    t.nseconds() as f64 / 1e6
}

/// The first error waiting on the bus, described.
pub fn bus_error(bus: &gst::Bus) -> Option<String> {
    bus.pop_filtered(&[gst::MessageType::Error])
        .map(|m| describe_message(&m))
}

/// "element: message\n  debug" for an error or warning message; `Debug` for others.
pub fn describe_message(msg: &gst::Message) -> String {
    use gst::prelude::*;
    let src = msg
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    let (text, debug) = match msg.view() {
        gst::MessageView::Error(e) => (e.error().to_string(), e.debug()),
        gst::MessageView::Warning(w) => (w.error().to_string(), w.debug()),
        _ => return format!("{msg:?}"),
    };
    match debug {
        Some(d) => format!("{src}: {text}\n  {d}"),
        None => format!("{src}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn agreement_and_mean_abs_diff() {
        assert_eq!(agreement(&[1, 2, 3, 4], &[1, 2, 0, 0]), 0.5);
        assert_eq!(agreement(&[], &[]), 0.0);
        assert_eq!(mean_abs_diff(&[0, 10, 255], &[2, 10, 0]), 257.0 / 3.0);
    }
}
