//! Per-frame segmentation: schedule keyframes, run the model on them and carry the result to
//! the frames between along the motion field. No GStreamer here; `vsssegment` calls `process`.
//!
//! [`Segmenter`] keeps what every mode shares (the schedule, the motion track, the frame
//! counter); each mode's state and steps are in its own file, listed in [`mode`].

pub mod correction;
mod distributed;
mod full;
mod fusion;
mod lowres;
pub mod mode;
mod warp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::Tensor;

use crate::meta::Branch;
use crate::model::{
    Bundle, MANIFEST_FILE, Manifest, ModelError, RawFrame, Scheme, YuvColorimetry, class_map,
    class_map_bilinear, executor, frame_to_rgb, resolve_bundle, to_vec_u8,
};
use crate::motion::{
    EstimateError, EstimatorConfig, FieldError, FieldStats, LumaPlane, MotionEstimator,
    MotionTrack, MotionVector, PictureType, cell_for_map,
};
use crate::schedule::{Decision, FrameFacts, KeyframePolicy, KeyframeReason, Scheduler};

use correction::CorrectionConfig;
use mode::ModeState;
pub use mode::{Mode, ModeSpec};

/// The modes that only call `forward` serve every scheme: each has one that segments a whole
/// frame (a tdnet bundle's is one step from a reset: sub-network 0 alone).
const EVERY_SCHEME: &[Scheme] = Scheme::ALL;

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
    /// `warp` only: re-segment the regions the carried map gets wrong, within a budget
    /// ([`correction`]).
    pub correction: CorrectionConfig,
    /// Search radius in pixels for refining the codec's vectors against the decoded luma
    /// ([`crate::motion::refine`]); 0 = the vectors as the codec gave them.
    pub motion_refine: u32,
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
    Motion(#[from] FieldError),
    #[error("motion: {0}")]
    Estimate(#[from] EstimateError),
    #[error("async-keyframes needs mode warp, not {0}")]
    AsyncMode(&'static str),
    #[error("cannot switch to mode {0}: the bundle cannot serve it, or async-keyframes is on")]
    ModeSwitch(&'static str),
    #[error("keyframe worker: {0}")]
    Worker(String),
}

/// What every mode's step reads and updates: the bundle, the configuration, the motion
/// accumulated back to the last keyframe, and the frame counter.
pub(crate) struct Context {
    bundle: Arc<Bundle>,
    config: SegmenterConfig,
    /// Kept while the mode or the policy reads motion; sized on the first frame.
    track: Option<MotionTrack>,
    /// Frames processed since the last reset: the current frame's index.
    frame_index: u64,
}

impl Context {
    /// The bundle's native size, (height, width).
    fn native(&self) -> (u32, u32) {
        self.bundle.manifest().native_size()
    }

    /// The motion accumulated from this frame on starts afresh (a new keyframe).
    fn restart_track(&mut self) {
        if let Some(track) = self.track.as_mut() {
            track.restart();
        }
    }

    fn track(&self) -> &MotionTrack {
        self.track
            .as_ref()
            .expect("the track is kept for modes that need motion")
    }

    /// A fresh track with the current track's geometry, at identity from this frame on.
    fn new_track(&self) -> Result<MotionTrack, SegmentError> {
        let g = self.track().geometry();
        Ok(MotionTrack::new(g.width, g.height, g.cell)?)
    }

    fn track_for(&mut self, width: u32, height: u32) -> Result<&mut MotionTrack, SegmentError> {
        let stale = self
            .track
            .as_ref()
            .is_none_or(|t| (t.geometry().width, t.geometry().height) != (width, height));
        if stale {
            let (map_height, map_width) = self.native();
            let cell = cell_for_map(width, height, map_width, map_height);
            self.track = Some(MotionTrack::new(width, height, cell)?);
        }
        Ok(self.track.as_mut().expect("set above"))
    }
}

/// One frame's motion, as it was accumulated into the track.
pub(crate) struct FrameMotion<'a> {
    vectors: &'a [MotionVector],
    picture: PictureType,
}

pub struct Segmenter {
    ctx: Context,
    scheduler: Scheduler,
    estimator: MotionEstimator,
    /// The last frame's vectors, kept for their allocation.
    vectors: Vec<MotionVector>,
    /// The current mode's state.
    state: Box<dyn ModeState>,
}

impl Segmenter {
    /// A segmenter over `bundle`, which may be shared with other streams
    /// ([`crate::model::instances`]).
    pub fn new(bundle: Arc<Bundle>, config: SegmenterConfig) -> Result<Self, SegmentError> {
        let scheme = bundle.manifest().scheme;
        let spec = config.mode.spec();
        if !spec.schemes.contains(&scheme) {
            return Err(SegmentError::Unsupported {
                mode: spec.name,
                wanted: spec
                    .schemes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                bundle: bundle.name().to_string(),
                got: scheme.as_str(),
                serving: shipped_serving(config.mode),
            });
        }
        if config.async_keyframes && !spec.async_keyframes {
            return Err(SegmentError::AsyncMode(spec.name));
        }
        let estimator = MotionEstimator::new(EstimatorConfig::default())?;
        Ok(Segmenter {
            state: (spec.start)(&bundle),
            scheduler: Scheduler::new(config.policy),
            ctx: Context {
                bundle,
                config,
                track: None,
                frame_index: 0,
            },
            estimator,
            vectors: Vec::new(),
        })
    }

    pub fn bundle(&self) -> &Bundle {
        &self.ctx.bundle
    }

    pub fn config(&self) -> SegmenterConfig {
        self.ctx.config
    }

    /// Changes the keyframe policy from the next frame on (a property set while playing).
    pub fn set_policy(&mut self, policy: KeyframePolicy) {
        if policy != self.ctx.config.policy {
            self.ctx.config.policy = policy;
            self.scheduler.set_policy(policy);
        }
    }

    /// Switches what runs on non-keyframes from the next frame on (QoS degradation). Modes the
    /// bundle cannot serve are refused, and so are modes without background keyframes while
    /// `async_keyframes` is on. Switching starts the mode afresh: what it carries was not
    /// followed meanwhile, so it begins with a keyframe.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), SegmentError> {
        if mode == self.ctx.config.mode {
            return Ok(());
        }
        let spec = mode.spec();
        let scheme = self.ctx.bundle.manifest().scheme;
        if !spec.schemes.contains(&scheme)
            || (self.ctx.config.async_keyframes && !spec.async_keyframes)
        {
            return Err(SegmentError::ModeSwitch(spec.name));
        }
        self.ctx.config.mode = mode;
        self.state = (spec.start)(&self.ctx.bundle);
        Ok(())
    }

    /// Right after a keyframe: the next one comes `frames` frames later instead of at the
    /// policy's interval (streams sharing a model spread their keyframes this way).
    pub fn next_keyframe_in(&mut self, frames: u32) {
        self.scheduler.next_keyframe_in(frames);
    }

    /// Forgets all temporal state: the next frame is a keyframe.
    pub fn reset(&mut self) {
        self.scheduler.reset();
        self.estimator.reset();
        self.state = (self.ctx.config.mode.spec().start)(&self.ctx.bundle);
        self.ctx.frame_index = 0;
        self.ctx.restart_track();
    }

    fn needs_motion(&self) -> bool {
        self.ctx.config.mode.spec().needs_motion
            || matches!(self.ctx.config.policy, KeyframePolicy::Adaptive { .. })
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
        let mut no_motion = false;
        let mut stats = None;
        if self.needs_motion() {
            self.follow_motion(input, &mut no_motion, &mut stats)?;
        }
        self.state.poll(&mut self.ctx)?;
        let decision = self.scheduler.decide(&FrameFacts {
            codec_keyframe: input.codec.is_some_and(|c| c.keyframe),
            picture_type: input.codec.map_or(PictureType::Unknown, |c| c.picture_type),
            reset: input.reset,
            no_motion,
            no_reference: !self.state.has_reference(),
            field: stats,
        });
        let step = match decision {
            Decision::Keyframe { .. } => self.state.keyframe(&mut self.ctx, input)?,
            Decision::NonKeyframe { distance } => {
                self.state.nonkeyframe(&mut self.ctx, input, distance)?
            }
        };
        let reason = match decision {
            Decision::Keyframe { reason } if step.keyframe => Some(reason),
            _ => None,
        };
        self.ctx.frame_index += 1;
        let (height, width) = self.ctx.native();
        Ok(FrameResult {
            class_map: step.map,
            width,
            height,
            keyframe: step.keyframe,
            reason,
            distance: step.distance,
            branch: step.branch,
            compute_time: start.elapsed(),
            field: stats,
            keyframe_started: step.keyframe_started,
        })
    }

    /// Accumulates this frame's motion into the track (and the mode's work in flight).
    fn follow_motion(
        &mut self,
        input: &FrameInput,
        no_motion: &mut bool,
        stats: &mut Option<FieldStats>,
    ) -> Result<(), SegmentError> {
        let Some(vectors) = self.frame_motion(input)? else {
            *no_motion = true;
            self.state.follow_motion(None);
            return Ok(());
        };
        // Codec vectors point to the picture type's reference; our estimate to the previous
        // frame.
        let picture = input
            .codec
            .filter(|c| c.available)
            .map_or(PictureType::Unknown, |c| c.picture_type);
        // Refinement reads this frame's luma: the Y plane itself when there is one; from RGB
        // only once the stream has shown B-frames (the only streams refined).
        let radius = self.ctx.config.motion_refine;
        let frame = &input.frame;
        let yuv = frame.layout.is_yuv() && frame.layout.bits() == 8;
        let b_frames = picture == PictureType::B
            || self
                .ctx
                .track
                .as_ref()
                .is_some_and(MotionTrack::has_b_frames);
        let luma_owned;
        let luma = if radius == 0 || picture == PictureType::Unknown {
            None
        } else if yuv {
            Some(LumaPlane::new(
                frame.planes[0],
                frame.width,
                frame.height,
                frame.strides[0],
            )?)
        } else if b_frames {
            luma_owned = rgb_luma(frame)?;
            Some(LumaPlane::new(
                &luma_owned,
                frame.width,
                frame.height,
                frame.width as usize,
            )?)
        } else {
            None
        };
        let track = self.ctx.track_for(input.frame.width, input.frame.height)?;
        match luma {
            Some(luma) => {
                track.advance_refined(vectors.as_slice(), picture, &luma, radius);
            }
            None => {
                track.advance_picture(vectors.as_slice(), picture);
            }
        }
        *stats = Some(track.accumulated().stats());
        self.state.follow_motion(Some(&FrameMotion {
            vectors: &vectors,
            picture,
        }));
        self.vectors = vectors;
        Ok(())
    }

    /// This frame's vectors: the codec's when it exports them, else our own estimate from luma.
    /// None when there is no motion to be had (the estimator's first frame).
    fn frame_motion(
        &mut self,
        input: &FrameInput,
    ) -> Result<Option<Vec<MotionVector>>, SegmentError> {
        if let Some(codec) = input.codec.filter(|c| c.available) {
            let mut v = std::mem::take(&mut self.vectors);
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
        let plane = LumaPlane::new(data, frame.width, frame.height, stride)?;
        let mut out = std::mem::take(&mut self.vectors);
        if self.estimator.push(&plane, &mut out) {
            Ok(Some(out))
        } else {
            self.vectors = out;
            Ok(None)
        }
    }
}

/// The model on `input` at `size`, as a class map at native size (bilinear logits when `size`
/// is smaller), on the libtorch executor.
fn infer(
    bundle: &Bundle,
    input: &FrameInput,
    size: (u32, u32),
    bilinear: bool,
) -> Result<Arc<[u8]>, SegmentError> {
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

/// The model on `input` at native size, and the frame's luma at native size (the evidence
/// [`correction`] compares later frames with), on the libtorch executor.
fn infer_with_luma(
    bundle: &Bundle,
    input: &FrameInput,
) -> Result<(Arc<[u8]>, Arc<[u8]>), SegmentError> {
    executor::run(|| {
        let (h, w) = bundle.manifest().native_size();
        let image = frame_to_rgb(&input.frame, (h, w), input.colorimetry, bundle.device())?;
        let (logits, _features) = bundle.forward(&image)?;
        let map = to_arc(&class_map(&logits, h, w)?)?;
        Ok((map, Arc::from(luma_of_rgb(&image)?)))
    })
}

/// BT.601 luma of a uint8 RGB `[1, 3, H, W]` tensor, `H * W` bytes row-major.
fn luma_of_rgb(rgb: &Tensor) -> Result<Vec<u8>, SegmentError> {
    // One definition with the YUV conversion's Kr, Kb.
    let weights = Tensor::from_slice(&[0.299f32, 0.587, 0.114])
        .view([1, 3, 1, 1])
        .to_device(rgb.device());
    let y = (rgb.to_kind(tch::Kind::Float) * weights)
        .sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(tch::Kind::Uint8);
    Ok(to_vec_u8(&y)?)
}

fn to_arc(map: &Tensor) -> Result<Arc<[u8]>, SegmentError> {
    Ok(Arc::from(to_vec_u8(map)?))
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
    luma_of_rgb(&rgb)
}
