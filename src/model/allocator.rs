//! glibc malloc settings for inference-sized buffers.
//!
//! A forward pass allocates and frees tens of megabytes of activations. With glibc's defaults
//! the blocks above the (adaptive) mmap threshold go back to the kernel on every free and the
//! heap top is trimmed whenever 2x that threshold is free, so each frame pays page faults for
//! memory it had a moment ago: ESPNet at 360x480 on 2 cores took 42-50 ms a frame instead of
//! 26-29 ms (`examples/bench_segment`). Fixing both thresholds keeps those blocks in the
//! process: at most [`TRIM_THRESHOLD`] of free heap stays resident.
//!
//! The setting is process-wide, so it is applied once, when the first bundle loads, and can be
//! refused with `VSS_MALLOC_TUNING=0` (an application that tunes malloc itself, or links
//! jemalloc or tcmalloc, which ignore it anyway).

use std::sync::OnceLock;

/// Blocks up to this size come from the heap rather than their own mapping (glibc's maximum).
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of a heap kept before it is returned to the kernel.
pub const TRIM_THRESHOLD: usize = 64 << 20;
/// Set to `0` to leave malloc's settings alone.
pub const MALLOC_TUNING_ENV: &str = "VSS_MALLOC_TUNING";

static APPLIED: OnceLock<bool> = OnceLock::new();

/// Applies the thresholds once per process unless `VSS_MALLOC_TUNING=0`. Returns whether this
/// process runs with them (false where refused, or not glibc).
pub fn tune_malloc() -> bool {
    *APPLIED.get_or_init(|| {
        let refused = std::env::var(MALLOC_TUNING_ENV).is_ok_and(|v| v.trim() == "0");
        !refused && apply()
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes allocator parameters; both values are within glibc's limits.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}
