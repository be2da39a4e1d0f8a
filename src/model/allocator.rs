//! glibc malloc settings for inference-sized buffers.
//!
//! A forward pass allocates and frees tens of megabytes of activations. With glibc's defaults
//! the blocks above the (adaptive) mmap threshold go back to the kernel on every free and the
//! heap top is trimmed whenever 2x that threshold is free, so each frame pays page faults for
//! memory it had a moment ago: ESPNet at 360x480 on 2 cores took 42-50 ms a frame instead of
//! 26-29 ms (`examples/bench_segment`). Fixing both thresholds keeps those blocks in the
//! process: at most [`TRIM_THRESHOLD`] of free heap stays resident.
//!
//! That covers the main heap. vss's inference runs on its own thread, whose blocks come from a
//! secondary arena built of 64 MiB heaps; glibc unmaps such a heap as soon as everything in it
//! is free, whatever the trim threshold, so a forward pass that grows the arena by a heap maps,
//! faults in and unmaps it again every frame. A [`TOP_PAD`] of a whole heap keeps them: 884
//! ESPNet forward passes at 360x480 (`examples/bench_segment`'s bare loop, under `perf stat -e
//! page-faults`) took 1,800-3,500 page faults a pass before, almost none after, and 6-7% less
//! CPU time.
//!
//! The settings are process-wide, so they are applied once, when the first bundle loads, and
//! can be refused with `VSS_MALLOC_TUNING=0` (an application that tunes malloc itself, or links
//! jemalloc or tcmalloc, which ignore them anyway).

use std::sync::OnceLock;

/// Blocks up to this size come from the heap rather than their own mapping (glibc's maximum).
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of a heap kept before it is returned to the kernel.
pub const TRIM_THRESHOLD: usize = 64 << 20;
/// Free memory a trim leaves at the top of a heap; at this size it also keeps a secondary
/// arena's emptied heaps mapped, being one such heap (glibc's `HEAP_MAX_SIZE` on 64-bit, twice
/// the largest mmap threshold).
pub const TOP_PAD: usize = 64 << 20;
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
    // SAFETY: mallopt only changes allocator parameters; the values are within glibc's limits.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TOP_PAD, TOP_PAD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Minor page faults taken by the calling thread so far.
    fn minor_faults() -> i64 {
        // SAFETY: getrusage writes into the zeroed struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
            0
        );
        usage.ru_minflt
    }

    #[test]
    fn an_inference_threads_freed_memory_is_reused_without_page_faults() {
        if std::env::var(MALLOC_TUNING_ENV).is_ok_and(|v| v.trim() == "0") {
            assert!(!tune_malloc(), "refused by {MALLOC_TUNING_ENV}=0");
            return;
        }
        assert!(tune_malloc());
        // A thread of its own gets a secondary arena, as the libtorch executor does. Each round
        // fills 100 MiB in 1 MiB blocks (more than one 64 MiB heap) and frees it all, as a
        // forward pass does with its activations.
        let faults = std::thread::spawn(|| {
            let round = || {
                let blocks: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; 1 << 20]).collect();
                std::hint::black_box(&blocks);
            };
            round();
            let before = minor_faults();
            for _ in 0..3 {
                round();
            }
            minor_faults() - before
        })
        .join()
        .unwrap();
        // Unmapped and mapped again, each round would fault in every page past the first heap
        // (~9,000 pages a round).
        assert!(faults < 1000, "{faults} page faults in 3 rounds");
    }
}
