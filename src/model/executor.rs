//! The one thread that runs libtorch's CPU work in this process.
//!
//! libtorch's CPU kernels run in OpenMP parallel regions, and GNU OpenMP gives every thread
//! that starts one a team of its own. Its idle team threads wait by spinning only while the
//! process has no more OpenMP threads than cores; past that it "throttles" them to sleep, and
//! every one of the hundreds of small parallel regions in a forward pass then pays a futex
//! wake-up. A GStreamer pipeline runs the model from a streaming thread after the application
//! thread loaded it (a second team), so ESPNet took 37-43 ms a frame there against 20-22 ms
//! from a single thread (2 cores, `examples/bench_segment`). Running every libtorch call of
//! the crate here keeps one team per process.
//!
//! [`run`] blocks until its closure has run on the executor (inline when already there);
//! [`spawn`] queues one and returns at once. Jobs run one at a time, in order.
//!
//! The executor also flushes denormal floats to zero ([`flush_denormals`]) before its first
//! job: the OpenMP team it starts inherits the setting, and no other thread is touched.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::sync::{Mutex, OnceLock};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

thread_local! {
    static ON_EXECUTOR: Cell<bool> = const { Cell::new(false) };
}

/// The executor's name, as threads are listed (`top -H`, gdb).
pub const THREAD_NAME: &str = "vss-torch";

fn queue() -> Sender<Job> {
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || {
                    ON_EXECUTOR.set(true);
                    flush_denormals();
                    // Jobs catch their own panics, so this loop only ends with the process.
                    for job in rx {
                        job();
                    }
                })
                .expect("cannot start the libtorch executor thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Sets flush-to-zero and denormals-are-zero for the calling thread (and the threads it starts
/// later, which inherit the floating-point environment). Activations of frozen networks drift
/// into the denormal range (|x| < 1.2e-38), and on Intel cores every such operand takes a slow
/// microcode path: camvid-espnet's forward at 360x480 took 186 ms a frame on a 2-core Xeon
/// instead of 54 ms with them flushed (`torch.set_flush_denormal`, the same bits). Values that
/// small change no class map. Returns whether the bits are set (false on other targets).
pub fn flush_denormals() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // MXCSR bit 15 = flush to zero, bit 6 = denormals are zero.
        const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr only read and write this thread's SSE control register; the
        // value written is the current one with two mode bits set.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
        }
        true
    }
    #[cfg(target_arch = "aarch64")]
    {
        // FPCR bit 24 (FZ): denormal inputs and results are flushed to zero.
        // SAFETY: reads and writes this thread's floating-point control register only.
        unsafe {
            let mut fpcr: u64;
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
            fpcr |= 1 << 24;
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
        }
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Whether the current thread is the executor.
pub fn on_executor() -> bool {
    ON_EXECUTOR.get()
}

/// Runs `f` on the executor and returns its result; a panic in `f` resumes in the caller.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if on_executor() {
        return f();
    }
    let (tx, rx) = sync_channel(1);
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    // SAFETY: `f` may borrow from the caller's stack, so the job is not really 'static. It is
    // made so only to cross the queue: this function does not return before the job has run
    // (the reply arrives) or has been dropped unrun (the reply sender, owned by the job, is
    // gone), so nothing it borrows is used after the borrow ends.
    let job: Job = unsafe { std::mem::transmute(job) };
    if queue().send(job).is_err() {
        unreachable!("the executor thread never stops");
    }
    match rx.recv() {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => unreachable!("executor jobs always reply"),
    }
}

/// Queues `f` on the executor; its result (or panic) arrives on the returned receiver.
pub fn spawn<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Receiver<thread::Result<R>> {
    let (tx, rx) = sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    if queue().send(job).is_err() {
        unreachable!("the executor thread never stops");
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_borrowing_closures_on_one_thread_in_order() {
        let data = [1, 2, 3];
        let here = thread::current().id();
        let (sum, id) = run(|| (data.iter().sum::<i32>(), thread::current().id()));
        assert_eq!(sum, 6);
        assert_ne!(id, here);
        assert_eq!(run(|| thread::current().id()), id);
        // Nested calls run inline instead of deadlocking.
        assert_eq!(run(|| run(|| thread::current().id())), id);
        assert_eq!(
            thread::spawn(|| run(|| thread::current().name().map(String::from)))
                .join()
                .unwrap()
                .as_deref(),
            Some(THREAD_NAME)
        );
    }

    #[test]
    fn the_executor_and_its_openmp_team_flush_denormals() {
        if !run(|| cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))) {
            return;
        }
        // Large enough for libtorch to split the multiply over its OpenMP threads.
        let n = 1 << 22;
        let (nonzero, threads) = run(|| {
            let tiny = tch::Tensor::full([n], 1e-39f64, (tch::Kind::Float, tch::Device::Cpu));
            let product = &tiny * 1.0f64;
            (
                i64::try_from(product.count_nonzero(None::<i64>)).unwrap(),
                tch::get_num_threads(),
            )
        });
        assert_eq!(
            nonzero, 0,
            "denormals survived on {threads} libtorch thread(s)"
        );
        // Elsewhere the same value is representable.
        assert!(1e-39f32 * std::hint::black_box(1.0f32) != 0.0);
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_executor_survives() {
        let caught = catch_unwind(|| run(|| panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(run(|| 7), 7);
        let rx = spawn(|| -> u8 { panic!("later") });
        assert!(rx.recv().unwrap().is_err());
        assert_eq!(spawn(|| 8).recv().unwrap().unwrap(), 8);
    }
}
