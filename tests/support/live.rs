//! Watching a running pipeline from a test: every frame that reaches `appsink name=sink` with its
//! metas and latency, and the bus's warnings, errors and EOS, with waits that fail instead of
//! hanging. Test crates that include it also declare `mod common`.
#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstvss::meta::{MotionMeta, Segmentation, SegmentationMeta};
use gstvss::motion::PictureType;

/// One frame as it reached the appsink.
#[derive(Debug, Clone)]
pub struct Received {
    pub arrived: Instant,
    pub pts: Option<gst::ClockTime>,
    /// Pipeline running time at the sink minus the buffer's running time: what the jitter
    /// buffer, depayloading, decoding and segmentation added (live pipelines only).
    pub latency: Option<gst::ClockTime>,
    pub width: u32,
    pub height: u32,
    /// From vssdec's MotionMeta, if present.
    pub picture_type: Option<PictureType>,
    pub codec_keyframe: bool,
    pub vectors: usize,
    pub discont: bool,
    /// FNV-1a of the whole buffer, to compare pixels with another decode.
    pub checksum: u64,
    /// From vsssegment's SegmentationMeta, if present.
    pub segmentation: Option<Segmentation>,
}

impl Received {
    pub fn seg(&self) -> &Segmentation {
        self.segmentation
            .as_ref()
            .unwrap_or_else(|| panic!("frame at {:?} without SegmentationMeta", self.pts))
    }
}

/// Everything observed so far.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub frames: Vec<Received>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub eos: bool,
}

impl Observed {
    /// Frames after index `from` (exclusive of earlier ones).
    pub fn since(&self, from: usize) -> &[Received] {
        &self.frames[from.min(self.frames.len())..]
    }
}

type Shared = Arc<(Mutex<Observed>, Condvar)>;

/// Locks what was observed; a test that failed while holding the lock must not turn the
/// streaming threads' callbacks into aborts.
fn lock(shared: &Shared) -> MutexGuard<'_, Observed> {
    shared.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pipeline ending in `appsink name=sink`, observed; set to NULL when dropped.
pub struct Watched {
    pub pipeline: gst::Pipeline,
    shared: Shared,
    description: String,
}

impl Watched {
    /// Parses `description` (which must contain `appsink name=sink`); not started yet.
    pub fn new(description: &str) -> Watched {
        let pipeline = gst::parse::launch(description)
            .unwrap_or_else(|e| panic!("{description}: {e}"))
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let shared: Shared = Arc::default();
        let sink = pipeline
            .by_name("sink")
            .expect("appsink named sink")
            .downcast::<gst_app::AppSink>()
            .expect("appsink");
        // The test reads frames as fast as they come; a live source paces the pipeline.
        sink.set_property("sync", false);
        let frames = shared.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let received = receive(sink, &sample);
                    lock(&frames).frames.push(received);
                    frames.1.notify_all();
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let messages = shared.clone();
        pipeline
            .bus()
            .expect("bus")
            .set_sync_handler(move |_, message| {
                let mut observed = lock(&messages);
                match message.view() {
                    gst::MessageView::Warning(w) => observed.warnings.push(format!(
                        "{}: {} ({})",
                        w.src().map(|s| s.name().to_string()).unwrap_or_default(),
                        w.error(),
                        w.debug().unwrap_or_default()
                    )),
                    gst::MessageView::Error(e) => observed.errors.push(format!(
                        "{}: {} ({})",
                        e.src().map(|s| s.name().to_string()).unwrap_or_default(),
                        e.error(),
                        e.debug().unwrap_or_default()
                    )),
                    gst::MessageView::Eos(_) => observed.eos = true,
                    _ => return gst::BusSyncReply::Drop,
                }
                messages.1.notify_all();
                gst::BusSyncReply::Drop
            });
        Watched {
            pipeline,
            shared,
            description: description.to_string(),
        }
    }

    pub fn play(&self) {
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            panic!(
                "{}: cannot start: {:?}",
                self.description,
                self.observed().errors
            );
        }
    }

    pub fn element(&self, name: &str) -> gst::Element {
        self.pipeline
            .by_name(name)
            .unwrap_or_else(|| panic!("no element {name} in {}", self.description))
    }

    /// A copy of everything observed so far.
    pub fn observed(&self) -> Observed {
        lock(&self.shared).clone()
    }

    /// Frames observed so far.
    pub fn frame_count(&self) -> usize {
        lock(&self.shared).frames.len()
    }

    /// The errors posted since the last call, forgotten.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut lock(&self.shared).errors)
    }

    /// Forgets an EOS, before playing again.
    pub fn clear_eos(&self) {
        lock(&self.shared).eos = false;
    }

    /// Waits until `done` holds, woken by every frame and bus message; panics on a pipeline
    /// error or after `timeout`, saying what it waited for and what it saw.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Observed) -> bool,
    ) -> Observed {
        let deadline = Instant::now() + timeout;
        let mut observed = lock(&self.shared);
        let failure = loop {
            if !observed.errors.is_empty() {
                break format!("{what}: pipeline error: {:?}", observed.errors);
            }
            if done(&observed) {
                return observed.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                break format!(
                    "{what}: not within {timeout:?}; {} frames, eos {}, warnings {:?}\n{}",
                    observed.frames.len(),
                    observed.eos,
                    observed.warnings,
                    self.description
                );
            }
            observed = self
                .shared
                .1
                .wait_timeout(observed, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(observed);
        panic!("{failure}");
    }

    /// Keeps watching for `duration` (a fault that lasts that long), failing at once on a
    /// pipeline error; returns what was observed by then.
    pub fn hold(&self, what: &str, duration: Duration) -> Observed {
        let until = Instant::now() + duration;
        let mut observed = lock(&self.shared);
        let failure = loop {
            if !observed.errors.is_empty() {
                break format!("{what}: pipeline error: {:?}", observed.errors);
            }
            let now = Instant::now();
            if now >= until {
                return observed.clone();
            }
            observed = self
                .shared
                .1
                .wait_timeout(observed, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(observed);
        panic!("{failure}");
    }

    /// Waits for `n` more frames than have been seen at `from`.
    pub fn wait_frames(&self, what: &str, from: usize, n: usize, timeout: Duration) -> Observed {
        self.wait_for(what, timeout, |o| o.frames.len() >= from + n)
    }

    /// Sets NULL within `timeout` or panics (a stuck streaming thread would block it forever,
    /// so it runs on a helper thread).
    pub fn stop(&self, timeout: Duration) {
        let pipeline = self.pipeline.clone();
        within("setting the pipeline to NULL", timeout, move || {
            pipeline.set_state(gst::State::Null).expect("NULL");
        });
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn receive(sink: &gst_app::AppSink, sample: &gst::Sample) -> Received {
    let arrived = Instant::now();
    let buffer = sample.buffer().expect("sample without buffer");
    let info = sample
        .caps()
        .and_then(|c| gst_video::VideoInfo::from_caps(c).ok());
    let running = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .zip(buffer.pts())
        .and_then(|(segment, pts)| segment.to_running_time(pts));
    let latency = sink
        .current_running_time()
        .zip(running)
        .and_then(|(now, running)| now.checked_sub(running));
    let motion = buffer.meta::<MotionMeta>();
    let checksum = buffer
        .map_readable()
        .map_or(0, |m| crate::common::fnv1a(m.as_slice()));
    Received {
        arrived,
        pts: buffer.pts(),
        latency,
        width: info.as_ref().map_or(0, |i| i.width()),
        height: info.as_ref().map_or(0, |i| i.height()),
        picture_type: motion.as_ref().map(|m| m.picture_type()),
        codec_keyframe: motion.as_ref().is_some_and(|m| m.is_keyframe()),
        vectors: motion.as_ref().map_or(0, |m| m.vectors().len()),
        discont: buffer.flags().contains(gst::BufferFlags::DISCONT),
        checksum,
        segmentation: buffer
            .meta::<SegmentationMeta>()
            .map(|m| m.segmentation().clone()),
    }
}

/// Runs `f` on a helper thread and fails the test if it does not return within `limit`: a
/// deadlock fails instead of hanging the test run (the stuck thread dies with the process).
pub fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(format!("within: {what}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = done.send(outcome);
        })
        .expect("spawning a watchdog thread");
    match result.recv_timeout(limit) {
        Ok(Ok(value)) => {
            let _ = worker.join();
            value
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: did not finish within {limit:?} (deadlock?)"),
    }
}

/// Threads of this process whose name starts with `prefix`, from /proc. GStreamer names a
/// streaming thread after its pad (`element:pad`), and threads started from it (libavcodec's)
/// inherit the name: name the elements of a pipeline to count its threads alone.
pub fn thread_count(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// A small deterministic generator (xorshift64*), so that fault patterns repeat run to run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}
