//! Per-frame segmentation: schedule keyframes, run the model on them and carry the result to
//! the frames between along the motion field. No GStreamer here; `vsssegment` calls `process`.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use tch::Tensor;

use crate::meta::Branch;
use crate::model::{
    Bundle, FrameLayout, MANIFEST_FILE, Manifest, ModelError, RawFrame, Scheme, YuvColorimetry,
    class_map, class_map_bilinear, executor, frame_to_rgb, resolve_bundle, to_vec_u8,
};
use crate::motion::{
    EstimatorConfig, FieldStats, LumaPlane, MotionEstimator, MotionTrack, MotionVector,
    PictureType, cell_for_map,
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
            // A tdnet bundle's `forward` is one step from a reset: sub-network 0 alone.
            Mode::Full | Mode::LowRes | Mode::Warp => {
                &[Scheme::Image, Scheme::Arseg, Scheme::Tdnet]
            }
            Mode::Fusion => &[Scheme::Arseg],
            Mode::Distributed => &[Scheme::Tdnet],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    pub mode: Mode,
    pub policy: KeyframePolicy,
    /// Side scale of the `lowres` mode (0 < s <= 1). `fusion` runs its low-res branch at the
    /// scale the bundle was trained at (manifest `lowres_scale`).
    pub lowres_scale: f64,
    /// `warp` only: run keyframe inference in the background (on the libtorch executor). The frame that starts it, and
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
    /// `fusion`: the last keyframe's feature map, and a reused buffer for its warp grid.
    key_features: Option<Tensor>,
    grid: Vec<f32>,
    /// Frames processed since the last reset, and the index of the frame `key_map` shows.
    frame_index: u64,
    key_index: u64,
    /// With `async_keyframes`: the inference in flight, with the motion accumulated since its
    /// frame. Dropping it (reset) throws its result away.
    pending: Option<Pending>,
    /// `distributed`: what the previous frame's step left for this one (empty after a reset).
    memory: Vec<Tensor>,
}

type KeyframeResult = std::thread::Result<Result<Arc<[u8]>, SegmentError>>;

struct Pending {
    frame: u64,
    track: MotionTrack,
    result: KeyframeJob,
}

/// A background keyframe's result, waited for when abandoned (reset, mode switch, stop).
/// An abandoned job would otherwise still be running when the application exits, and
/// libtorch's static destructors (oneDNN's primitive cache) would tear its kernels down under
/// it: gst-launch crashed with SIGSEGV at exit after an async-keyframes run. Waiting (at most
/// one keyframe's time) also keeps stale keyframes from piling up on the executor.
struct KeyframeJob(Receiver<KeyframeResult>);

impl Drop for KeyframeJob {
    fn drop(&mut self) {
        if !executor::on_executor() {
            // Ok: the result, discarded; Err: it was already taken or the job was dropped.
            let _ = self.0.recv();
        }
    }
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
        Ok(Segmenter {
            bundle,
            scheduler: Scheduler::new(config.policy),
            config,
            track: None,
            estimator,
            estimated: Vec::new(),
            key_map: None,
            key_features: None,
            grid: Vec::new(),
            frame_index: 0,
            key_index: 0,
            pending: None,
            memory: Vec::new(),
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
        if !mode.schemes().contains(&scheme) || (self.config.async_keyframes && mode != Mode::Warp)
        {
            return Err(SegmentError::ModeSwitch(mode.as_str()));
        }
        self.config.mode = mode;
        self.key_map = None;
        self.key_features = None;
        self.pending = None;
        self.memory.clear();
        Ok(())
    }

    /// Forgets all temporal state: the next frame is a keyframe.
    pub fn reset(&mut self) {
        self.scheduler.reset();
        self.estimator.reset();
        self.key_map = None;
        self.key_features = None;
        self.pending = None;
        self.memory.clear();
        self.frame_index = 0;
        if let Some(track) = self.track.as_mut() {
            track.restart();
        }
    }

    fn needs_motion(&self) -> bool {
        matches!(self.config.mode, Mode::Warp | Mode::Fusion)
            || matches!(self.config.policy, KeyframePolicy::Adaptive { .. })
    }

    /// Segments one frame. libtorch work runs on the executor ([`executor`]); the rest
    /// (motion, warp) stays on the calling thread, so a non-keyframe in `warp` mode costs no
    /// thread hop, and with `async_keyframes` frames keep flowing while a keyframe's inference
    /// runs there.
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
        let nothing_to_carry = match self.config.mode {
            Mode::Warp => self.key_map.is_none(),
            Mode::Fusion => self.key_features.is_none(),
            _ => false,
        };
        if nothing_to_carry && !decision.is_keyframe() {
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
            (Mode::Distributed, _) => {
                // No keyframes: every frame runs one sub-network and attends to the previous
                // frame's memory; `distance` counts frames since that memory was reset.
                let distance = u32::try_from(self.frame_index).unwrap_or(u32::MAX);
                (
                    self.step(input, native)?,
                    Branch::Distributed,
                    false,
                    None,
                    distance,
                )
            }
            (Mode::Full, d) => {
                // The model runs on every frame, so each is a keyframe at distance 0 (the
                // meta's contract); the reason is the schedule's where it had one.
                let map = self.infer(input, native, false)?;
                let reason = match d {
                    Decision::Keyframe { reason } => Some(reason),
                    Decision::NonKeyframe { .. } => None,
                };
                (map, Branch::Full, true, reason, 0)
            }
            (Mode::Warp, Decision::Keyframe { .. })
                if self.config.async_keyframes && self.key_map.is_some() =>
            {
                // Asynchronous keyframe: start it (unless one is in flight) and keep flowing
                // on the previous result meanwhile.
                if self.pending.is_none() {
                    let track = self.new_track()?;
                    let frame = OwnedFrame::copy(&input.frame);
                    let (bundle, colorimetry) = (self.bundle.clone(), input.colorimetry);
                    let result = executor::spawn(move || {
                        let raw = frame.raw();
                        let image = frame_to_rgb(&raw.get(), native, colorimetry, bundle.device())?;
                        let (logits, _) = bundle.forward(&image)?;
                        to_arc(&class_map(&logits, h, w)?)
                    });
                    self.pending = Some(Pending {
                        frame: self.frame_index,
                        track,
                        result: KeyframeJob(result),
                    });
                    keyframe_started = true;
                }
                let map = self.warp_key_map(w, h)?;
                (map, Branch::Warp, false, None, self.key_distance())
            }
            (Mode::Fusion, Decision::Keyframe { reason }) => {
                let (map, features) = self.infer_keyframe(input, native)?;
                self.key_features = Some(features);
                self.key_index = self.frame_index;
                if let Some(track) = self.track.as_mut() {
                    track.restart();
                }
                (map, Branch::Full, true, Some(reason), 0)
            }
            (Mode::Fusion, Decision::NonKeyframe { distance }) => (
                self.fuse(input, native)?,
                Branch::Fusion,
                false,
                None,
                distance,
            ),
            (_, Decision::Keyframe { reason }) => {
                let map = self.infer(input, native, false)?;
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
                (
                    self.infer(input, size, true)?,
                    Branch::LowRes,
                    false,
                    None,
                    distance,
                )
            }
            (Mode::Warp, Decision::NonKeyframe { distance }) => {
                let distance = if self.config.async_keyframes {
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
    /// its frame.
    fn adopt_finished_keyframe(&mut self) -> Result<(), SegmentError> {
        let Some(pending) = self.pending.as_ref() else {
            return Ok(());
        };
        let map = match pending.result.0.try_recv() {
            Err(TryRecvError::Empty) => return Ok(()),
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SegmentError::Worker("keyframe inference panicked".into())),
            Err(TryRecvError::Disconnected) => Err(SegmentError::Worker("no result".into())),
        };
        let pending = self.pending.take().expect("checked above");
        let map = map?;
        if self
            .track
            .as_ref()
            .is_some_and(|t| t.geometry() == pending.track.geometry())
        {
            self.track = Some(pending.track);
            self.key_map = Some(map);
            self.key_index = pending.frame;
        }
        Ok(())
    }

    /// The model on `input` at `size`, as a class map at native size (bilinear logits when
    /// `size` is smaller), on the libtorch executor.
    fn infer(
        &self,
        input: &FrameInput,
        size: (u32, u32),
        bilinear: bool,
    ) -> Result<Arc<[u8]>, SegmentError> {
        let bundle = &self.bundle;
        executor::run(|| {
            let (h, w) = bundle.manifest().native_size();
            let image = frame_to_rgb(&input.frame, size, input.colorimetry, bundle.device())?;
            let (logits, _features) = bundle.forward(&image)?;
            let map = if bilinear {
                class_map_bilinear(&logits, h, w)?
            } else {
                class_map(&logits, h, w)?
            };
            to_arc(&map)
        })
    }

    /// `distributed`: sub-network `frames since reset % N` on `input` with the previous
    /// frame's memory, on the libtorch executor; keeps the memory it returns.
    fn step(&mut self, input: &FrameInput, size: (u32, u32)) -> Result<Arc<[u8]>, SegmentError> {
        let bundle = &self.bundle;
        let subnetworks = u64::from(bundle.manifest().subnetworks());
        let slot = u32::try_from(self.frame_index % subnetworks).unwrap_or(0);
        // Taken, not borrowed (tensors cross to the executor by value); after a failed step
        // the next frame runs without a memory, as the first frame after a reset does.
        let memory = std::mem::take(&mut self.memory);
        let (map, memory) = executor::run(move || -> Result<_, SegmentError> {
            let (h, w) = bundle.manifest().native_size();
            let image = frame_to_rgb(&input.frame, size, input.colorimetry, bundle.device())?;
            let (logits, _features, memory) = bundle.step(&image, slot, &memory)?;
            Ok((to_arc(&class_map(&logits, h, w)?)?, memory))
        })?;
        self.memory = memory;
        Ok(map)
    }

    /// The keyframe branch: the class map and the feature map that later frames fuse.
    fn infer_keyframe(
        &self,
        input: &FrameInput,
        size: (u32, u32),
    ) -> Result<(Arc<[u8]>, Tensor), SegmentError> {
        let bundle = &self.bundle;
        executor::run(|| {
            let image = frame_to_rgb(&input.frame, size, input.colorimetry, bundle.device())?;
            let (logits, features) = bundle.keyframe(&image)?;
            Ok((to_arc(&class_map(&logits, size.0, size.1)?)?, features))
        })
    }

    /// AR-Seg on a non-keyframe: the keyframe features warped along the motion accumulated
    /// since the keyframe (the grid at the feature map's size, warped inside the module), the
    /// frame at the bundle's low-res scale, fused by the module's `nonkeyframe`.
    fn fuse(&mut self, input: &FrameInput, native: (u32, u32)) -> Result<Arc<[u8]>, SegmentError> {
        let features = self
            .key_features
            .as_ref()
            .expect("fusion keeps keyframe features")
            .shallow_clone();
        let size = features.size();
        let (fh, fw) = (size[2] as usize, size[3] as usize);
        let track = self.track.as_ref().expect("motion kept in fusion mode");
        track.accumulated().write_grid(fh, fw, &mut self.grid);
        let bundle = &self.bundle;
        let grid = &self.grid;
        let lowres = bundle.manifest().scaled_size(bundle.lowres_scale());
        executor::run(move || {
            let warped = bundle.warp_features(&features, grid)?;
            let image = frame_to_rgb(&input.frame, lowres, input.colorimetry, bundle.device())?;
            let (logits, _fused) = bundle.nonkeyframe(&image, &warped)?;
            to_arc(&class_map(&logits, native.0, native.1)?)
        })
    }

    fn track_for(&mut self, width: u32, height: u32) -> Result<&mut MotionTrack, SegmentError> {
        let stale = self
            .track
            .as_ref()
            .is_none_or(|t| (t.geometry().width, t.geometry().height) != (width, height));
        if stale {
            let (map_height, map_width) = self.bundle.manifest().native_size();
            let cell = cell_for_map(width, height, map_width, map_height);
            self.track = Some(
                MotionTrack::new(width, height, cell)
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
        // The estimator reads 8-bit luma: the Y plane itself when the frame has one.
        let (data, stride) = if frame.layout.is_yuv() && frame.layout.bits() == 8 {
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

/// A frame's planes copied, for work that outlives the buffer.
struct OwnedFrame {
    layout: FrameLayout,
    width: u32,
    height: u32,
    planes: Vec<Vec<u8>>,
    strides: Vec<usize>,
}

impl OwnedFrame {
    fn copy(frame: &RawFrame) -> Self {
        OwnedFrame {
            layout: frame.layout,
            width: frame.width,
            height: frame.height,
            planes: frame.planes.iter().map(|p| p.to_vec()).collect(),
            strides: frame.strides.to_vec(),
        }
    }

    /// The copy, ready to be seen as a frame.
    fn raw(&self) -> OwnedRaw<'_> {
        OwnedRaw {
            planes: self.planes.iter().map(Vec::as_slice).collect(),
            frame: self,
        }
    }
}

/// [`OwnedFrame`] lent as a [`RawFrame`].
struct OwnedRaw<'a> {
    planes: Vec<&'a [u8]>,
    frame: &'a OwnedFrame,
}

impl<'a> OwnedRaw<'a> {
    fn get(&'a self) -> RawFrame<'a> {
        RawFrame {
            layout: self.frame.layout,
            width: self.frame.width,
            height: self.frame.height,
            planes: &self.planes,
            strides: &self.frame.strides,
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
    executor::run(|| rgb_luma_here(frame))
}

fn rgb_luma_here(frame: &RawFrame) -> Result<Vec<u8>, SegmentError> {
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
