//! Per-frame segmentation: schedule keyframes, run the model on them and carry the result to
//! the frames between along the motion field. No GStreamer here; `vsssegment` calls `process`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::Tensor;

use crate::meta::Branch;
use crate::model::{
    Bundle, MANIFEST_FILE, Manifest, ModelError, RawFrame, Scheme, YuvColorimetry, class_map,
    class_map_bilinear, frame_to_rgb, resolve_bundle, to_vec_u8,
};
use crate::motion::{
    DEFAULT_CELL_SIZE, EstimatorConfig, FieldStats, LumaPlane, MotionEstimator, MotionTrack,
    MotionVector, PictureType,
};
use crate::schedule::{Decision, FrameFacts, KeyframePolicy, KeyframeReason, Scheduler};

/// What runs on a non-keyframe (DESIGN.md, "Scheduling and propagation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The model at full resolution on every frame: the baseline.
    Full,
    /// The model on a downscaled frame.
    LowRes,
    /// AR-Seg: low-resolution branch fused with warped keyframe features.
    Fusion,
    /// The keyframe's class map warped along the accumulated motion; no network.
    #[default]
    Warp,
    /// TDNet: shallow sub-networks round robin with attention propagation.
    Distributed,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::LowRes => "lowres",
            Mode::Fusion => "fusion",
            Mode::Warp => "warp",
            Mode::Distributed => "distributed",
        }
    }

    /// The bundle schemes that can serve this mode.
    pub fn schemes(self) -> &'static [Scheme] {
        match self {
            Mode::Full | Mode::LowRes | Mode::Warp => &[Scheme::Image, Scheme::Arseg],
            Mode::Fusion => &[Scheme::Arseg],
            Mode::Distributed => &[Scheme::Tdnet],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    pub mode: Mode,
    pub policy: KeyframePolicy,
    /// Side scale of the low-resolution branch (0 < s <= 1).
    pub lowres_scale: f64,
    /// `warp` only: run keyframe inference on a worker thread. The frame that starts it, and
    /// those after it, are warped from the previous keyframe until the result is ready; then
    /// the new result, warped along the motion since its own frame, takes over. Every frame
    /// costs about the same; results are up to one inference time older.
    pub async_keyframes: bool,
}

/// What the codec (through vssdec's meta) says about a frame's motion.
#[derive(Debug, Clone, Copy)]
pub struct CodecMotion<'a> {
    pub vectors: &'a [MotionVector],
    /// False when the codec exports no vectors (e.g. HEVC): estimate instead.
    pub available: bool,
    pub keyframe: bool,
    pub picture_type: PictureType,
}

/// One frame to segment.
pub struct FrameInput<'a> {
    pub frame: RawFrame<'a>,
    pub colorimetry: YuvColorimetry,
    /// None when no vssdec upstream: motion is estimated from luma.
    pub codec: Option<CodecMotion<'a>>,
    /// Flush, seek, discont, gap or caps change since the previous frame.
    pub reset: bool,
}

/// The segmentation of one frame.
pub struct FrameResult {
    /// Class ids at the bundle's native size, row-major.
    pub class_map: Arc<[u8]>,
    pub width: u32,
    pub height: u32,
    pub keyframe: bool,
    pub reason: Option<KeyframeReason>,
    pub distance: u32,
    pub branch: Branch,
    pub compute_time: Duration,
    /// Statistics of the motion field accumulated back to the keyframe, where one was kept.
    pub field: Option<FieldStats>,
    /// With `async_keyframes`: this frame started a keyframe inference in the background.
    pub keyframe_started: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("mode {mode} needs a bundle of scheme {wanted}; {bundle} is scheme {got} ({serving})")]
    Unsupported {
        mode: &'static str,
        wanted: String,
        bundle: String,
        got: &'static str,
        /// Which bundles can, for the user: see [`shipped_serving`].
        serving: String,
    },
    #[error("motion: {0}")]
    Motion(String),
    #[error("async-keyframes needs mode warp, not {0}")]
    AsyncMode(&'static str),
    #[error("cannot switch to mode {0}: the bundle cannot serve it, or async-keyframes is on")]
    ModeSwitch(&'static str),
    #[error("keyframe worker: {0}")]
    Worker(String),
}

pub struct Segmenter {
    bundle: Arc<Bundle>,
    config: SegmenterConfig,
    scheduler: Scheduler,
    track: Option<MotionTrack>,
    estimator: MotionEstimator,
    estimated: Vec<MotionVector>,
    /// The last keyframe's class map at native size, row-major, for `warp`.
    key_map: Option<Arc<[u8]>>,
    /// Frames processed since the last reset, and the index of the frame `key_map` shows.
    frame_index: u64,
    key_index: u64,
    /// With `async_keyframes`: the worker, and the inference in flight with the motion
    /// accumulated since its frame.
    worker: Option<KeyframeWorker>,
    pending: Option<Pending>,
    /// Bumped by `reset`, so that a result started before it is thrown away.
    generation: u64,
}

struct Pending {
    frame: u64,
    track: MotionTrack,
}

impl Segmenter {
    pub fn new(bundle: Bundle, config: SegmenterConfig) -> Result<Self, SegmentError> {
        let scheme = bundle.manifest().scheme;
        if !config.mode.schemes().contains(&scheme) {
            return Err(SegmentError::Unsupported {
                mode: config.mode.as_str(),
                wanted: config
                    .mode
                    .schemes()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                bundle: bundle.name().to_string(),
                got: scheme.as_str(),
                serving: shipped_serving(config.mode),
            });
        }
        if config.async_keyframes && config.mode != Mode::Warp {
            return Err(SegmentError::AsyncMode(config.mode.as_str()));
        }
        let estimator = MotionEstimator::new(EstimatorConfig::default())
            .map_err(|e| SegmentError::Motion(e.to_string()))?;
        let bundle = Arc::new(bundle);
        let worker = if config.async_keyframes {
            Some(KeyframeWorker::spawn(bundle.clone())?)
        } else {
            None
        };
        Ok(Segmenter {
            bundle,
            scheduler: Scheduler::new(config.policy),
            config,
            track: None,
            estimator,
            estimated: Vec::new(),
            key_map: None,
            frame_index: 0,
            key_index: 0,
            worker,
            pending: None,
            generation: 0,
        })
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn config(&self) -> SegmenterConfig {
        self.config
    }

    /// Changes the keyframe policy from the next frame on (a property set while playing).
    pub fn set_policy(&mut self, policy: KeyframePolicy) {
        if policy != self.config.policy {
            self.config.policy = policy;
            self.scheduler.set_policy(policy);
        }
    }

    /// Switches what runs on non-keyframes from the next frame on (QoS degradation). Modes the
    /// bundle cannot serve are refused; async keyframes stay with `warp`. Switching forgets the
    /// keyframe map, whose motion was not followed meanwhile, so `warp` restarts with a
    /// keyframe.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), SegmentError> {
        if mode == self.config.mode {
            return Ok(());
        }
        let scheme = self.bundle.manifest().scheme;
        if !mode.schemes().contains(&scheme) || (self.worker.is_some() && mode != Mode::Warp) {
            return Err(SegmentError::ModeSwitch(mode.as_str()));
        }
        self.config.mode = mode;
        self.key_map = None;
        self.pending = None;
        self.generation += 1;
        Ok(())
    }

    /// Forgets all temporal state: the next frame is a keyframe.
    pub fn reset(&mut self) {
        self.scheduler.reset();
        self.estimator.reset();
        self.key_map = None;
        self.pending = None;
        self.generation += 1;
        self.frame_index = 0;
        if let Some(track) = self.track.as_mut() {
            track.restart();
        }
    }

    fn needs_motion(&self) -> bool {
        self.config.mode == Mode::Warp
            || matches!(self.config.policy, KeyframePolicy::Adaptive { .. })
    }

    pub fn process(&mut self, input: &FrameInput) -> Result<FrameResult, SegmentError> {
        let start = Instant::now();
        if input.reset {
            self.reset();
        }
        let (width, height) = (input.frame.width, input.frame.height);
        let mut no_motion = false;
        let mut stats = None;
        if self.needs_motion() {
            let vectors = self.frame_motion(input)?;
            // Codec vectors point to the picture type's reference; our estimate to the
            // previous frame.
            let picture = input
                .codec
                .filter(|c| c.available)
                .map_or(PictureType::Unknown, |c| c.picture_type);
            match vectors {
                Some(vectors) => {
                    let track = self.track_for(width, height)?;
                    track.advance_picture(vectors.as_slice(), picture);
                    stats = Some(track.accumulated().stats());
                    if let Some(pending) = self.pending.as_mut() {
                        pending.track.advance_picture(vectors.as_slice(), picture);
                    }
                    self.estimated = vectors;
                }
                None => {
                    no_motion = true;
                    // The in-flight result could not be carried to this frame.
                    self.pending = None;
                }
            }
        }
        self.adopt_finished_keyframe()?;
        let facts = FrameFacts {
            codec_keyframe: input.codec.is_some_and(|c| c.keyframe),
            picture_type: input.codec.map_or(PictureType::Unknown, |c| c.picture_type),
            reset: input.reset,
            no_motion,
            field: stats,
        };
        let mut decision = self.scheduler.decide(&facts);
        if self.config.mode == Mode::Warp && self.key_map.is_none() && !decision.is_keyframe() {
            // Nothing to warp from (e.g. after a failed keyframe): start afresh.
            self.scheduler.reset();
            decision = self.scheduler.decide(&FrameFacts {
                reset: true,
                ..facts
            });
        }

        let (h, w) = self.bundle.manifest().native_size();
        let native = (h, w);
        let mut keyframe_started = false;
        let (map, branch, keyframe, reason, distance) = match (self.config.mode, decision) {
            (Mode::Full, d) => {
                // The model runs on every frame, so each is a keyframe at distance 0 (the
                // meta's contract); the reason is the schedule's where it had one.
                let logits = self.run_model(input, native)?;
                let reason = match d {
                    Decision::Keyframe { reason } => Some(reason),
                    Decision::NonKeyframe { .. } => None,
                };
                (
                    to_arc(&class_map(&logits, h, w)?)?,
                    Branch::Full,
                    true,
                    reason,
                    0,
                )
            }
            (Mode::Warp, Decision::Keyframe { .. })
                if self.worker.is_some() && self.key_map.is_some() =>
            {
                // Asynchronous keyframe: start it (unless one is in flight) and keep flowing
                // on the previous result meanwhile.
                if self.pending.is_none() {
                    let image = frame_to_rgb(
                        &input.frame,
                        native,
                        input.colorimetry,
                        self.bundle.device(),
                    )?;
                    let track = self.new_track()?;
                    self.worker.as_ref().expect("checked").submit(Job {
                        generation: self.generation,
                        frame: self.frame_index,
                        image,
                    })?;
                    self.pending = Some(Pending {
                        frame: self.frame_index,
                        track,
                    });
                    keyframe_started = true;
                }
                let map = self.warp_key_map(w, h)?;
                (map, Branch::Warp, false, None, self.key_distance())
            }
            (_, Decision::Keyframe { reason }) => {
                let logits = self.run_model(input, native)?;
                let map = to_arc(&class_map(&logits, h, w)?)?;
                if self.config.mode == Mode::Warp {
                    // The class map, not the logits, is what travels: nearest warping of one u8
                    // channel costs 4 ms a frame against 12 for 11 bilinear logit channels, for
                    // -0.07 mIoU on camvid-motion (eval_motion, P and B encodes).
                    self.key_map = Some(map.clone());
                    self.key_index = self.frame_index;
                }
                if let Some(track) = self.track.as_mut() {
                    track.restart();
                }
                (map, Branch::Full, true, Some(reason), 0)
            }
            (Mode::LowRes, Decision::NonKeyframe { distance }) => {
                let size = self.bundle.manifest().scaled_size(self.config.lowres_scale);
                let logits = self.run_model(input, size)?;
                (
                    to_arc(&class_map_bilinear(&logits, h, w)?)?,
                    Branch::LowRes,
                    false,
                    None,
                    distance,
                )
            }
            (Mode::Warp, Decision::NonKeyframe { distance }) => {
                let distance = if self.worker.is_some() {
                    self.key_distance()
                } else {
                    distance
                };
                (
                    self.warp_key_map(w, h)?,
                    Branch::Warp,
                    false,
                    None,
                    distance,
                )
            }
            (mode @ (Mode::Fusion | Mode::Distributed), _) => {
                return Err(SegmentError::Unsupported {
                    mode: mode.as_str(),
                    wanted: "a trained temporal bundle".into(),
                    bundle: self.bundle.name().to_string(),
                    got: self.bundle.manifest().scheme.as_str(),
                    serving: "this build cannot run temporal bundles yet".into(),
                });
            }
        };
        self.frame_index += 1;
        Ok(FrameResult {
            class_map: map,
            width: w,
            height: h,
            keyframe,
            reason,
            distance,
            branch,
            compute_time: start.elapsed(),
            field: stats,
            keyframe_started,
        })
    }

    /// Frames from the one `key_map` shows to the current one.
    fn key_distance(&self) -> u32 {
        u32::try_from(self.frame_index - self.key_index).unwrap_or(u32::MAX)
    }

    /// The keyframe's class map warped to the current frame along the accumulated motion.
    fn warp_key_map(&self, w: u32, h: u32) -> Result<Arc<[u8]>, SegmentError> {
        let key = self.key_map.as_ref().expect("warp needs a keyframe map");
        let track = self.track.as_ref().expect("motion kept in warp mode");
        // Straight from the field to the map: the same result as building the grid and
        // running `model::warp` with WarpMode::Nearest (tested), without the grid.
        let mut warped = vec![0u8; key.len()];
        track
            .accumulated()
            .warp_class_map(key, w, h, &mut warped)
            .map_err(|e| SegmentError::Motion(e.to_string()))?;
        Ok(Arc::from(warped))
    }

    /// A fresh track with the current track's geometry, at identity from this frame on.
    fn new_track(&self) -> Result<MotionTrack, SegmentError> {
        let g = self
            .track
            .as_ref()
            .expect("motion kept in warp mode")
            .geometry();
        MotionTrack::new(g.width, g.height, g.cell).map_err(|e| SegmentError::Motion(e.to_string()))
    }

    /// Takes over a finished background keyframe: its map, and the motion accumulated since
    /// its frame. Results from before a reset are dropped.
    fn adopt_finished_keyframe(&mut self) -> Result<(), SegmentError> {
        let Some(worker) = self.worker.as_ref() else {
            return Ok(());
        };
        while let Some(done) = worker.poll()? {
            let current = self
                .pending
                .as_ref()
                .is_some_and(|p| done.generation == self.generation && p.frame == done.frame);
            if !current {
                continue;
            }
            let pending = self.pending.take().expect("checked above");
            let map = done.map.map_err(SegmentError::Worker)?;
            if self
                .track
                .as_ref()
                .is_some_and(|t| t.geometry() == pending.track.geometry())
            {
                self.track = Some(pending.track);
                self.key_map = Some(map);
                self.key_index = pending.frame;
            }
        }
        Ok(())
    }

    fn run_model(&self, input: &FrameInput, size: (u32, u32)) -> Result<Tensor, SegmentError> {
        let image = frame_to_rgb(&input.frame, size, input.colorimetry, self.bundle.device())?;
        let (logits, _features) = self.bundle.forward(&image)?;
        Ok(logits)
    }

    fn track_for(&mut self, width: u32, height: u32) -> Result<&mut MotionTrack, SegmentError> {
        let stale = self
            .track
            .as_ref()
            .is_none_or(|t| (t.geometry().width, t.geometry().height) != (width, height));
        if stale {
            self.track = Some(
                MotionTrack::new(width, height, DEFAULT_CELL_SIZE)
                    .map_err(|e| SegmentError::Motion(e.to_string()))?,
            );
        }
        Ok(self.track.as_mut().expect("set above"))
    }

    /// This frame's vectors: the codec's when it exports them, else our own estimate from luma.
    /// None when there is no motion to be had (the estimator's first frame).
    fn frame_motion(
        &mut self,
        input: &FrameInput,
    ) -> Result<Option<Vec<MotionVector>>, SegmentError> {
        if let Some(codec) = input.codec.filter(|c| c.available) {
            let mut v = std::mem::take(&mut self.estimated);
            v.clear();
            v.extend_from_slice(codec.vectors);
            return Ok(Some(v));
        }
        let frame = &input.frame;
        let computed;
        let (data, stride) = if frame.layout.is_yuv() {
            (frame.planes[0], frame.strides[0])
        } else {
            computed = rgb_luma(frame)?;
            (computed.as_slice(), frame.width as usize)
        };
        let plane = LumaPlane::new(data, frame.width, frame.height, stride)
            .map_err(|e| SegmentError::Motion(e.to_string()))?;
        let mut out = std::mem::take(&mut self.estimated);
        if self.estimator.push(&plane, &mut out) {
            Ok(Some(out))
        } else {
            self.estimated = out;
            Ok(None)
        }
    }
}

fn to_arc(map: &Tensor) -> Result<Arc<[u8]>, SegmentError> {
    Ok(Arc::from(to_vec_u8(map)?))
}

/// A keyframe inference for the worker: the model input of frame `frame`.
struct Job {
    generation: u64,
    frame: u64,
    image: Tensor,
}

struct JobDone {
    generation: u64,
    frame: u64,
    map: Result<Arc<[u8]>, String>,
}

/// One thread that runs keyframe inference for `async_keyframes`, a job at a time.
struct KeyframeWorker {
    jobs: Option<Sender<Job>>,
    done: Receiver<JobDone>,
    thread: Option<JoinHandle<()>>,
}

impl KeyframeWorker {
    fn spawn(bundle: Arc<Bundle>) -> Result<Self, SegmentError> {
        let (jobs, job_rx) = channel::<Job>();
        let (done_tx, done) = channel();
        let thread = std::thread::Builder::new()
            .name("vss-keyframe".into())
            .spawn(move || {
                let (h, w) = bundle.manifest().native_size();
                for job in job_rx {
                    let run = || -> Result<Arc<[u8]>, SegmentError> {
                        let (logits, _) = bundle.forward(&job.image)?;
                        to_arc(&class_map(&logits, h, w)?)
                    };
                    let map = match catch_unwind(AssertUnwindSafe(run)) {
                        Ok(result) => result.map_err(|e| e.to_string()),
                        Err(_) => Err("keyframe inference panicked".to_string()),
                    };
                    let reply = JobDone {
                        generation: job.generation,
                        frame: job.frame,
                        map,
                    };
                    if done_tx.send(reply).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| SegmentError::Worker(format!("cannot start the thread: {e}")))?;
        Ok(KeyframeWorker {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    fn submit(&self, job: Job) -> Result<(), SegmentError> {
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| SegmentError::Worker("the thread has stopped".into()))
    }

    /// A finished job, if any.
    fn poll(&self) -> Result<Option<JobDone>, SegmentError> {
        match self.done.try_recv() {
            Ok(done) => Ok(Some(done)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                Err(SegmentError::Worker("the thread has stopped".into()))
            }
        }
    }
}

impl Drop for KeyframeWorker {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the job in hand.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The shipped bundles that can serve `mode`, as a sentence for errors.
pub fn shipped_serving(mode: Mode) -> String {
    let names: Vec<String> = Bundle::list_shipped()
        .into_iter()
        .filter(|name| {
            resolve_bundle(name)
                .ok()
                .and_then(|dir| Manifest::read(&dir.join(MANIFEST_FILE)).ok())
                .is_some_and(|m| mode.schemes().contains(&m.scheme))
        })
        .collect();
    if names.is_empty() {
        format!("no shipped bundle can serve {} yet", mode.as_str())
    } else {
        format!("shipped bundles that can: {}", names.join(", "))
    }
}

/// The luma of an RGB frame, `width` bytes per row, for the motion estimator.
fn rgb_luma(frame: &RawFrame) -> Result<Vec<u8>, SegmentError> {
    let rgb = frame_to_rgb(
        frame,
        (frame.height, frame.width),
        YuvColorimetry::BT601,
        tch::Device::Cpu,
    )?;
    // BT.601 luma weights; one definition with the YUV conversion's Kr, Kb.
    let weights = Tensor::from_slice(&[0.299f32, 0.587, 0.114]).view([1, 3, 1, 1]);
    let y = (rgb.to_kind(tch::Kind::Float) * weights)
        .sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(tch::Kind::Uint8);
    Ok(to_vec_u8(&y)?)
}
