//! vsssegment: the element glue around `Segmenter` (properties, caps, metas in and out, overlay).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use once_cell::sync::Lazy;

#[cfg(feature = "analytics-v1_26")]
use super::analytics::AnalyticsLabels;
use super::mode_type::ModeValue;
use super::overlay::Palette;
use crate::meta::{MotionMeta, Segmentation, SegmentationMeta};
use crate::model::instances::{self, Membership};
use crate::model::{
    Bundle, ClassInfo, DEFAULT_BUNDLE, FrameLayout, RawFrame, YuvColorimetry, YuvMatrix, YuvRange,
    parse_device, set_threads,
};
use crate::motion::refine;
use crate::qos::{LatencyEstimate, QosConfig, QosLadder, QosReport};
use crate::schedule::{
    DEFAULT_MOTION_THRESHOLD, DEFAULT_UNCOVERED_THRESHOLD, KeyframePolicy, frames_to_slot,
};
use crate::segmenter::correction::{self, CorrectionConfig};
use crate::segmenter::{CodecMotion, FrameInput, Mode, Segmenter, SegmenterConfig};

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "vsssegment",
        gst::DebugColorFlags::empty(),
        Some("semantic segmentation along codec motion"),
    )
});

const DEFAULT_DEVICE: &str = "cpu";
const DEFAULT_THREADS: u32 = 0;
const DEFAULT_POLICY: Policy = Policy::Interval;
const DEFAULT_INTERVAL: u32 = 12;
const DEFAULT_MODE: Mode = Mode::Warp;
const DEFAULT_LOWRES_SCALE: f64 = 0.5;
const DEFAULT_OVERLAY: Overlay = Overlay::Auto;
const DEFAULT_ALPHA: f64 = 0.5;
const DEFAULT_STATS: bool = false;
const DEFAULT_ASYNC: bool = false;
const DEFAULT_QOS_DEGRADE: bool = true;
const DEFAULT_CORRECTION_BUDGET: f64 = 0.0;

/// The `mode` property's blurb, naming every mode.
static MODE_BLURB: Lazy<String> = Lazy::new(|| {
    let names: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
    format!("What runs on non-keyframes: {}", names.join(", "))
});

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVssKeyframePolicy")]
pub enum Policy {
    #[enum_value(
        name = "The stream's own I-frames (bounded by keyframe-interval x 5)",
        nick = "codec"
    )]
    Codec = 0,
    #[enum_value(name = "Every keyframe-interval frames", nick = "interval")]
    Interval = 1,
    #[enum_value(
        name = "When accumulated motion or uncovered area says the result is stale, at most keyframe-interval apart",
        nick = "adaptive"
    )]
    Adaptive = 2,
}

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstVssOverlay")]
pub enum Overlay {
    #[enum_value(name = "No overlay: segmentation meta only", nick = "none")]
    None = 0,
    #[enum_value(name = "Attach GstVideoOverlayCompositionMeta", nick = "meta")]
    Meta = 1,
    #[enum_value(name = "Blend the coloured map into the frame", nick = "blend")]
    Blend = 2,
    #[enum_value(
        name = "Attach the meta if downstream supports it, else blend",
        nick = "auto"
    )]
    Auto = 3,
}

#[derive(Debug, Clone)]
struct Settings {
    model: String,
    model_instance_id: Option<String>,
    device: String,
    threads: u32,
    policy: Policy,
    interval: u32,
    mode: Mode,
    lowres_scale: f64,
    overlay: Overlay,
    alpha: f64,
    stats: bool,
    async_keyframes: bool,
    qos_degrade: bool,
    adaptive_uncovered: f64,
    adaptive_motion: f64,
    correction_budget: f64,
    correction_threshold: f64,
    motion_refine: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_BUNDLE.to_string(),
            model_instance_id: None,
            device: DEFAULT_DEVICE.to_string(),
            threads: DEFAULT_THREADS,
            policy: DEFAULT_POLICY,
            interval: DEFAULT_INTERVAL,
            mode: DEFAULT_MODE,
            lowres_scale: DEFAULT_LOWRES_SCALE,
            overlay: DEFAULT_OVERLAY,
            alpha: DEFAULT_ALPHA,
            stats: DEFAULT_STATS,
            async_keyframes: DEFAULT_ASYNC,
            qos_degrade: DEFAULT_QOS_DEGRADE,
            adaptive_uncovered: f64::from(DEFAULT_UNCOVERED_THRESHOLD),
            adaptive_motion: f64::from(DEFAULT_MOTION_THRESHOLD),
            correction_budget: DEFAULT_CORRECTION_BUDGET,
            correction_threshold: f64::from(correction::DEFAULT_THRESHOLD),
            motion_refine: refine::DEFAULT_RADIUS,
        }
    }
}

/// The settings a frame reads, all changeable while playing; copied once per frame without the
/// strings the other settings hold.
#[derive(Debug, Clone, Copy)]
struct FrameSettings {
    policy: KeyframePolicy,
    async_keyframes: bool,
    overlay: Overlay,
    alpha: f64,
    stats: bool,
}

impl Settings {
    fn frame(&self) -> FrameSettings {
        FrameSettings {
            policy: self.keyframe_policy(),
            async_keyframes: self.async_keyframes,
            overlay: self.overlay,
            alpha: self.alpha,
            stats: self.stats,
        }
    }

    fn keyframe_policy(&self) -> KeyframePolicy {
        let n = self.interval.max(1);
        match self.policy {
            Policy::Codec => KeyframePolicy::Codec {
                max_interval: n.saturating_mul(5),
            },
            Policy::Interval => KeyframePolicy::Interval(n),
            Policy::Adaptive => KeyframePolicy::Adaptive {
                max_interval: n,
                uncovered_threshold: self.adaptive_uncovered as f32,
                motion_threshold: self.adaptive_motion as f32,
            },
        }
    }
}

/// What the streaming thread works with. Locked for a whole frame, inference included: only
/// the streaming thread (frames, caps) and start/stop take it.
struct State {
    segmenter: Segmenter,
    /// The shared model this element uses (`model-instance-id`), and its slot there.
    membership: Option<Membership>,
    /// From the caps' frame rate; staggering keyframes needs it.
    frame_duration: Option<std::time::Duration>,
    classes: Arc<[ClassInfo]>,
    model_name: Arc<str>,
    palette: Palette,
    info: Option<gst_video::VideoInfo>,
    layout: Option<FrameLayout>,
    colorimetry: YuvColorimetry,
    frames: u64,
    /// The standard analytics metas (GStreamer >= 1.26), and whether attaching them failed yet.
    #[cfg(feature = "analytics-v1_26")]
    analytics: (AnalyticsLabels, bool),
}

/// What events, queries and the streaming thread share. Locked only for a few field reads or
/// writes, never across inference: a QoS event or a latency query never waits for a frame.
struct Control {
    /// Downstream takes GstVideoOverlayCompositionMeta: the overlay caps feature was
    /// negotiated and its allocation query lists the meta (decided in `decide_allocation`).
    downstream_overlay_meta: bool,
    /// Flush, segment, gap, stream start or caps since the last frame.
    pending_reset: bool,
    /// The processing time this element declares in the latency query: the slowest frame
    /// expected (a keyframe's inference, measured at start), raised when slower frames recur.
    latency: LatencyEstimate,
    /// QoS degradation: where on the ladder, and the clock its reports are timed on.
    qos: QosLadder,
    started: std::time::Instant,
}

#[derive(Default)]
pub struct VssSegment {
    settings: Mutex<Settings>,
    control: Mutex<Option<Control>>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for VssSegment {
    const NAME: &'static str = "GstVssSegment";
    type Type = super::VssSegment;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for VssSegment {
    fn constructed(&self) {
        self.parent_constructed();
        // GstVideoFilter turns on BaseTransform's QoS, which drops every frame that a QoS
        // event says is late. A dropped frame breaks the motion chain (the next one is a
        // keyframe, the costliest frame there is), so lateness is answered by the ladder
        // (`qos-degrade`) instead. The inherited `qos` property can turn dropping back on.
        self.obj().set_qos(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model bundle")
                    .blurb("Bundle folder, its manifest.json, or a bundle name found in VSS_MODEL_PATH or ~/.local/share/vss/models (scripts/install.sh installs the shipped ones: camvid-espnet, camvid-cgnet, ...)")
                    .default_value(Some(DEFAULT_BUNDLE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model-instance-id")
                    .nick("Model instance id")
                    .blurb("Elements of this process with the same id share one loaded model (same model and device): loaded once, freed with its last user, keyframes spread over the interval between them. Unset: a model of its own")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("Where the model runs: cpu, cuda or cuda:N (CUDA is loaded only when asked)")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("libtorch intra-op threads (0 = libtorch's default, one per core); process-wide")
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("keyframe-policy", DEFAULT_POLICY)
                    .nick("Keyframe policy")
                    .blurb("Which frames run the full model")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("keyframe-interval")
                    .nick("Keyframe interval")
                    .blurb("Frames between keyframes for the interval policy; the upper bound for adaptive (codec: bound x 5)")
                    .minimum(1)
                    .default_value(DEFAULT_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("adaptive-uncovered")
                    .nick("Adaptive: uncovered share")
                    .blurb("Adaptive policy: start a keyframe when this share of the frame has no motion back to the keyframe (intra blocks, content from outside)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(f64::from(DEFAULT_UNCOVERED_THRESHOLD))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("adaptive-motion")
                    .nick("Adaptive: accumulated motion")
                    .blurb("Adaptive policy: start a keyframe when the mean motion accumulated since the keyframe reaches this many pixels")
                    .minimum(0.0)
                    .default_value(f64::from(DEFAULT_MOTION_THRESHOLD))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mode", ModeValue(DEFAULT_MODE))
                    .nick("Mode")
                    .blurb(&MODE_BLURB)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("lowres-scale")
                    .nick("Low-resolution scale")
                    .blurb("Side scale of the low-resolution branch (lowres mode; fusion runs at its bundle's trained scale)")
                    .minimum(0.1)
                    .maximum(1.0)
                    .default_value(DEFAULT_LOWRES_SCALE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("correction-budget")
                    .nick("Correction budget")
                    .blurb("warp mode: re-segment the tiles where the keyframe's image, carried along the motion, no longer matches the frame (objects moving on their own, occlusions), on crops with context, within this share of the frame's pixels per frame; 0 = off. Small crops cost more than their share of pixels: at 0.3 a frame took about half of mode=full's time on camvid-real")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_CORRECTION_BUDGET)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("correction-threshold")
                    .nick("Correction threshold")
                    .blurb("Mean absolute luma difference (0-255, over 4x4 averages) between a tile and the carried keyframe image under which the tile is left as carried")
                    .minimum(0.0)
                    .maximum(255.0)
                    .default_value(f64::from(correction::DEFAULT_THRESHOLD))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("motion-refine")
                    .nick("Motion refinement")
                    .blurb("Streams with B-frames: search radius in pixels for refining the codec's motion vectors against the decoded frames (each 8x8 block moved to the integer offset that matches its reference best); 0 = use the vectors as the codec gave them. Corrects vectors the encoder chose for cost rather than motion and references FFmpeg does not name; P-only streams are left as they are (nothing to gain there)")
                    .maximum(refine::MAX_RADIUS)
                    .default_value(refine::DEFAULT_RADIUS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("overlay", DEFAULT_OVERLAY)
                    .nick("Overlay")
                    .blurb("How the coloured class map is shown: none, meta (GstVideoOverlayCompositionMeta), blend, or auto")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("overlay-alpha")
                    .nick("Overlay alpha")
                    .blurb("Opacity of the coloured class map")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_ALPHA)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("async-keyframes")
                    .nick("Asynchronous keyframes")
                    .blurb("mode=warp: run keyframe inference on a worker thread while frames keep flowing on the previous result, so no frame waits for the model (live sources)")
                    .default_value(DEFAULT_ASYNC)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("qos-degrade")
                    .nick("Degrade on QoS")
                    .blurb("When downstream's QoS events say frames are late, lower the cost step by step (mode full -> lowres -> warp, then keyframe interval x2, x4, x8) and recover when there is headroom; posts vss-qos messages. Frames are never dropped (motion needs every frame)")
                    .default_value(DEFAULT_QOS_DEGRADE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("stats")
                    .nick("Statistics")
                    .blurb("Post a vss-segment element message per frame (keyframe, branch, timing, class shares)")
                    .default_value(DEFAULT_STATS)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => {
                s.model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_BUNDLE.to_string())
            }
            "device" => {
                s.device = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_DEVICE.to_string())
            }
            "model-instance-id" => {
                s.model_instance_id = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|id| !id.is_empty())
            }
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "keyframe-policy" => s.policy = value.get().expect("type checked upstream"),
            "keyframe-interval" => s.interval = value.get().expect("type checked upstream"),
            "mode" => s.mode = value.get::<ModeValue>().expect("type checked upstream").0,
            "lowres-scale" => s.lowres_scale = value.get().expect("type checked upstream"),
            "correction-budget" => {
                s.correction_budget = value.get().expect("type checked upstream")
            }
            "motion-refine" => s.motion_refine = value.get().expect("type checked upstream"),
            "correction-threshold" => {
                s.correction_threshold = value.get().expect("type checked upstream")
            }
            "overlay" => s.overlay = value.get().expect("type checked upstream"),
            "overlay-alpha" => s.alpha = value.get().expect("type checked upstream"),
            "stats" => s.stats = value.get().expect("type checked upstream"),
            "async-keyframes" => s.async_keyframes = value.get().expect("type checked upstream"),
            "qos-degrade" => s.qos_degrade = value.get().expect("type checked upstream"),
            "adaptive-uncovered" => {
                s.adaptive_uncovered = value.get().expect("type checked upstream")
            }
            "adaptive-motion" => s.adaptive_motion = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => s.model.to_value(),
            "device" => s.device.to_value(),
            "model-instance-id" => s.model_instance_id.to_value(),
            "threads" => s.threads.to_value(),
            "keyframe-policy" => s.policy.to_value(),
            "keyframe-interval" => s.interval.to_value(),
            "mode" => ModeValue(s.mode).to_value(),
            "lowres-scale" => s.lowres_scale.to_value(),
            "correction-budget" => s.correction_budget.to_value(),
            "correction-threshold" => s.correction_threshold.to_value(),
            "motion-refine" => s.motion_refine.to_value(),
            "overlay" => s.overlay.to_value(),
            "overlay-alpha" => s.alpha.to_value(),
            "stats" => s.stats.to_value(),
            "async-keyframes" => s.async_keyframes.to_value(),
            "qos-degrade" => s.qos_degrade.to_value(),
            "adaptive-uncovered" => s.adaptive_uncovered.to_value(),
            "adaptive-motion" => s.adaptive_motion.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for VssSegment {}

impl ElementImpl for VssSegment {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "VSS semantic segmentation",
                "Filter/Analyzer/Video",
                "Segments video (a class per pixel), running the model on keyframes and carrying \
                 its result along codec motion vectors (vssdec's meta) or its own motion \
                 estimate; attaches VssSegmentationMeta and a coloured overlay",
                "vss developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            let plain = gst_video::VideoCapsBuilder::new()
                .format_list(
                    FrameLayout::ALL
                        .iter()
                        .filter_map(|l| gst_video::VideoFormat::from_string(l.name()).into()),
                )
                .build();
            // The same formats with the overlay composition feature: downstream that renders
            // the meta itself negotiates it (see `transform_caps`).
            let mut caps = plain.clone();
            caps.merge(with_overlay_feature(&plain));
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid sink template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid src template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for VssSegment {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::Both;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    /// The overlay composition feature is offered downstream first, as GStreamer's overlay
    /// elements do: a sink that renders GstVideoOverlayCompositionMeta takes it and gets the
    /// map as a meta; others get plain caps and (overlay=auto) the map blended. Upstream gets
    /// the caps with and without the feature.
    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let out = match direction {
            gst::PadDirection::Sink => {
                let mut out = with_overlay_feature(caps);
                out.merge(caps.clone());
                out
            }
            _ => {
                let mut out = without_overlay_feature(caps);
                out.merge(caps.clone());
                out
            }
        };
        gst::trace!(CAT, imp = self, "{direction:?} {caps} -> {out}");
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    /// Downstream's ALLOCATION answer, asked by BaseTransform after every caps change or
    /// RECONFIGURE: it says whether the overlay meta can go downstream. Its pools are dropped:
    /// the element draws into the frames it receives (no output buffers, no copy).
    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        let (caps, _) = query.get();
        let feature = caps.is_some_and(|c| {
            c.features(0).is_some_and(|f| {
                f.contains(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION)
            })
        });
        let meta = query
            .find_allocation_meta::<gst_video::VideoOverlayCompositionMeta>()
            .is_some();
        while query.allocation_pools().len() > 0 {
            query.remove_nth_allocation_pool(0);
        }
        gst::debug!(
            CAT,
            imp = self,
            "overlay feature negotiated: {feature}, meta in allocation: {meta}"
        );
        if let Some(control) = self.control.lock().unwrap().as_mut() {
            control.downstream_overlay_meta = feature && meta;
        }
        self.obj().set_in_place(true);
        Ok(())
    }

    /// A RECONFIGURE from downstream (its answer may have changed) is handled by BaseTransform
    /// at the next frame, before the frame: go out of place first so that it asks downstream.
    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.obj().src_pad().needs_reconfigure() {
            self.obj().set_in_place(false);
        }
        self.parent_submit_input_buffer(is_discont, inbuf)
    }

    /// Upstream's ALLOCATION query goes on to downstream, as through any in-place element, so
    /// that upstream can allocate from downstream's pool.
    fn propose_allocation(
        &self,
        _decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(None, query)
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let device = parse_device(&settings.device).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("device={}: {}", settings.device, e)
            )
        })?;
        if settings.threads > 0 {
            set_threads(settings.threads as usize);
        }
        let load = || Bundle::load(&settings.model, device);
        let (bundle, membership) = match settings.model_instance_id.as_deref() {
            Some(id) => {
                let membership = instances::join(id, &settings.model, device, load)
                    .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)))?;
                (membership.bundle().clone(), Some(membership))
            }
            None => (
                Arc::new(
                    load().map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)))?,
                ),
                None,
            ),
        };
        let classes: Arc<[ClassInfo]> = Arc::from(bundle.manifest().classes.clone());
        let model_name: Arc<str> = Arc::from(bundle.name());
        let palette = Palette::new(&classes);
        #[cfg(feature = "analytics-v1_26")]
        let analytics = (AnalyticsLabels::new(&classes), false);
        let config = SegmenterConfig {
            mode: settings.mode,
            policy: settings.keyframe_policy(),
            lowres_scale: settings.lowres_scale,
            async_keyframes: settings.async_keyframes,
            correction: CorrectionConfig {
                budget: settings.correction_budget,
                threshold: settings.correction_threshold as f32,
            },
            motion_refine: settings.motion_refine,
        };
        let keyframe_time = time_keyframe(&bundle)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)))?;
        let segmenter = Segmenter::new(bundle, config)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        // Synchronous: a keyframe holds its frame for one inference. Asynchronous: no frame
        // waits for the model; the per-frame work (motion, warp, preprocessing the keyframe
        // input) is learnt from the first frames.
        // A shared model may be busy with another stream's keyframe when this one's comes:
        // one more inference of waiting (staggering keeps it to about one).
        let waiting = if membership.is_some() {
            keyframe_time
        } else {
            std::time::Duration::ZERO
        };
        let latency = if settings.async_keyframes {
            keyframe_time / 4
        } else {
            keyframe_time + keyframe_time / 4 + waiting
        };
        gst::info!(
            CAT,
            imp = self,
            "loaded {model_name} on {device:?}, mode {:?}",
            settings.mode
        );
        *self.state.lock().unwrap() = Some(State {
            segmenter,
            membership,
            frame_duration: None,
            classes,
            model_name,
            palette,
            info: None,
            layout: None,
            colorimetry: YuvColorimetry::BT601,
            frames: 0,
            #[cfg(feature = "analytics-v1_26")]
            analytics,
        });
        *self.control.lock().unwrap() = Some(Control {
            downstream_overlay_meta: false,
            pending_reset: true,
            latency: LatencyEstimate::new(latency),
            qos: QosLadder::new(settings.mode, QosConfig::default()),
            started: std::time::Instant::now(),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.control.lock().unwrap() = None;
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        if matches!(
            event.view(),
            EventView::FlushStop(_)
                | EventView::Segment(_)
                | EventView::Gap(_)
                | EventView::StreamStart(_)
        ) && let Some(control) = self.control.lock().unwrap().as_mut()
        {
            control.pending_reset = true;
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Qos(qos) = event.view()
            && self.settings.lock().unwrap().qos_degrade
        {
            let (_kind, proportion, diff, _timestamp) = qos.get();
            self.on_qos(proportion, diff > 0);
        }
        self.parent_src_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        let answered = BaseTransformImplExt::parent_query(self, direction, query);
        if answered
            && direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            let ours = self
                .control
                .lock()
                .unwrap()
                .as_ref()
                .map_or(gst::ClockTime::ZERO, |c| clock_time(c.latency.declared()));
            let (live, min, max) = q.result();
            q.set(live, min + ours, max.map(|m| m + ours));
            gst::debug!(
                CAT,
                imp = self,
                "latency: ours {ours}, total min {}",
                min + ours
            );
        }
        answered
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.segment_guarded(buf)
    }

    /// Only between a caps change or RECONFIGURE and `decide_allocation` is the element out of
    /// place, and BaseTransform processes no frame there; should one come, it is copied (when
    /// the output is another buffer) and segmented.
    fn transform(
        &self,
        inbuf: &gst::Buffer,
        outbuf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let info = self
            .state
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|s| s.info.clone())
            .ok_or(gst::FlowError::NotNegotiated)?;
        if inbuf.as_ptr() != outbuf.as_ptr() {
            let src = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), &info)
                .map_err(|_| gst::FlowError::Error)?;
            let mut dst = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &info)
                .map_err(|_| gst::FlowError::Error)?;
            src.copy(&mut dst).map_err(|_| gst::FlowError::Error)?;
        }
        self.segment_guarded(outbuf)
    }
}

impl VssSegment {
    /// `segment_buffer` with a panic turned into an element error: nothing unwinds into C.
    fn segment_guarded(
        &self,
        buf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        match catch_unwind(AssertUnwindSafe(|| self.segment_buffer(buf))) {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Failed,
                    ["segmentation failed: {}", what]
                );
                Err(gst::FlowError::Error)
            }
        }
    }
}

impl VideoFilterImpl for VssSegment {
    fn set_info(
        &self,
        _incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let layout: FrameLayout = in_info
            .format()
            .to_str()
            .parse()
            .map_err(|e: String| gst::loggable_error!(CAT, "{}", e))?;
        let colorimetry = colorimetry_of(in_info);
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        gst::debug!(
            CAT,
            imp = self,
            "{layout:?} {}x{}",
            in_info.width(),
            in_info.height()
        );
        state.info = Some(in_info.clone());
        state.frame_duration = frame_duration(in_info);
        state.layout = Some(layout);
        state.colorimetry = colorimetry;
        drop(guard);
        if let Some(control) = self.control.lock().unwrap().as_mut() {
            control.pending_reset = true;
        }
        // Out of place for a moment, so that BaseTransform asks downstream (ALLOCATION query)
        // and calls `decide_allocation`, which goes back in place; an always-in-place
        // transform never gets that call (GStreamer's cairooverlay hooks the query instead).
        // New caps come here, in the streaming thread, before the next frame; downstream's
        // RECONFIGURE goes through `submit_input_buffer`.
        self.obj().set_in_place(false);
        Ok(())
    }
}

impl VssSegment {
    /// One QoS report from downstream: maybe a step on the degradation ladder, announced.
    fn on_qos(&self, proportion: f64, late: bool) {
        let policy = self.settings.lock().unwrap().keyframe_policy();
        let message = {
            let mut guard = self.control.lock().unwrap();
            let Some(control) = guard.as_mut() else {
                return;
            };
            let at = control.started.elapsed();
            let Some(level) = control.qos.observe(QosReport {
                proportion,
                late,
                at,
            }) else {
                return;
            };
            let (mode, policy) = control.qos.apply(policy);
            gst::info!(
                CAT,
                imp = self,
                "QoS level {level} (proportion {proportion:.2}, late {late}): mode {}, {policy:?}",
                mode.as_str()
            );
            gst::Structure::builder("vss-qos")
                .field("level", level as u32)
                .field("proportion", proportion)
                .field("mode", mode.as_str())
                .field("keyframe-interval", policy.interval())
                .build()
        };
        let _ = self.obj().post_message(
            gst::message::Element::builder(message)
                .src(&*self.obj())
                .build(),
        );
    }

    fn segment_buffer(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings.lock().unwrap().frame();
        // The control fields this frame reads, taken without holding their lock for the frame.
        let (mode, policy, reset, downstream_overlay_meta) = {
            let mut guard = self.control.lock().unwrap();
            let control = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let (mode, policy) = control.qos.apply(settings.policy);
            (
                mode,
                policy,
                std::mem::take(&mut control.pending_reset),
                control.downstream_overlay_meta,
            )
        };
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let layout = state.layout.ok_or(gst::FlowError::NotNegotiated)?;
        state.segmenter.set_policy(policy);
        if let Err(e) = state.segmenter.set_mode(mode) {
            gst::warning!(CAT, imp = self, "QoS: {e}");
        }
        let reset = reset || buf.flags().contains(gst::BufferFlags::DISCONT);

        let result = {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info)
                .map_err(|_| gst::FlowError::Error)?;
            let n = frame.n_planes() as usize;
            let mut planes: Vec<&[u8]> = Vec::with_capacity(n);
            for p in 0..n {
                planes.push(
                    frame
                        .plane_data(p as u32)
                        .map_err(|_| gst::FlowError::Error)?,
                );
            }
            let strides: Vec<usize> = frame.plane_stride()[..n]
                .iter()
                .map(|&s| s as usize)
                .collect();
            let motion = buf.meta::<MotionMeta>();
            let input = FrameInput {
                frame: RawFrame {
                    layout,
                    width: info.width(),
                    height: info.height(),
                    planes: &planes,
                    strides: &strides,
                },
                colorimetry: state.colorimetry,
                codec: motion.as_ref().map(|m| CodecMotion {
                    vectors: m.vectors(),
                    available: m.vectors_available(),
                    keyframe: m.is_keyframe(),
                    picture_type: m.picture_type(),
                }),
                reset,
            };
            state.segmenter.process(&input)
        };
        let result = match result {
            Ok(r) => r,
            Err(err) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ["frame {}: {}", state.frames, err]
                );
                return Err(gst::FlowError::Error);
            }
        };
        state.frames += 1;
        if let (Some(membership), Some(frame)) = (&state.membership, state.frame_duration) {
            // After a keyframe of a shared model: the next at this stream's slot.
            let (slot, members) = membership.slot();
            if members > 1 {
                let frames = frames_to_slot(
                    membership.epoch().elapsed(),
                    slot,
                    members,
                    policy.interval(),
                    frame,
                );
                state.segmenter.next_keyframe_in(frames);
            }
        }
        // With async keyframes only the first frame after a reset waits for the model: it
        // may arrive late rather than every frame being held back for it.
        let waits_for_model = settings.async_keyframes && result.keyframe;
        let raised = if waits_for_model {
            None
        } else {
            self.control
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.latency.observe(result.compute_time))
        };
        if let Some(raised) = raised {
            gst::debug!(CAT, imp = self, "latency raised to {}", clock_time(raised));
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        let segmentation = Segmentation {
            width: result.width,
            height: result.height,
            class_map: result.class_map,
            classes: state.classes.clone(),
            keyframe: result.keyframe,
            distance: result.distance,
            branch: result.branch,
            model: state.model_name.clone(),
            compute_time: result.compute_time,
        };

        let attach = match settings.overlay {
            Overlay::None => None,
            Overlay::Meta => Some(true),
            Overlay::Blend => Some(false),
            Overlay::Auto => Some(downstream_overlay_meta),
        };
        if let Some(attach) = attach {
            let composition = state
                .palette
                .composition(&segmentation, info.width(), info.height(), settings.alpha)
                .map_err(|e| {
                    gst::element_imp_error!(self, gst::CoreError::Failed, ["overlay: {}", e]);
                    gst::FlowError::Error
                })?;
            if attach {
                gst_video::VideoOverlayCompositionMeta::add(buf, &composition);
            } else {
                let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                    .map_err(|_| gst::FlowError::Error)?;
                composition
                    .blend(&mut frame)
                    .map_err(|_| gst::FlowError::Error)?;
            }
        }
        if settings.stats {
            let shares = segmentation.class_shares();
            let mut s = gst::Structure::builder("vss-segment")
                .field("frame", state.frames - 1)
                .field("pts", buf.pts())
                .field("keyframe", segmentation.keyframe)
                .field("reason", result.reason.map(|r| r.as_str()).unwrap_or(""))
                .field("distance", segmentation.distance)
                .field("keyframe-started", result.keyframe_started)
                .field("branch", segmentation.branch.as_str())
                .field("model", segmentation.model.as_ref())
                .field("compute-time", segmentation.compute_time.as_nanos() as u64);
            if let Some(stats) = result.field {
                s = s
                    .field("uncovered-share", f64::from(stats.uncovered_share))
                    .field("mean-motion", f64::from(stats.mean_magnitude));
            }
            for (class, share) in state.classes.iter().zip(shares) {
                s = s.field(format!("share-{}", class.name.to_lowercase()), share);
            }
            let _ = self.obj().post_message(
                gst::message::Element::builder(s.build())
                    .src(&*self.obj())
                    .build(),
            );
        }
        #[cfg(feature = "analytics-v1_26")]
        self.attach_analytics(state, buf, &segmentation, &info);
        SegmentationMeta::add(buf, segmentation);
        Ok(gst::FlowSuccess::Ok)
    }

    /// GstAnalyticsRelationMeta beside our own meta; a failure is warned about once, then
    /// logged at debug level, and never stops the stream.
    #[cfg(feature = "analytics-v1_26")]
    fn attach_analytics(
        &self,
        state: &mut State,
        buf: &mut gst::BufferRef,
        segmentation: &Segmentation,
        info: &gst_video::VideoInfo,
    ) {
        let (labels, failed) = &mut state.analytics;
        match labels.attach(buf, segmentation, info.width(), info.height()) {
            Ok((seg_id, cls_id)) => {
                gst::trace!(CAT, imp = self, "analytics mtds {seg_id} -> {cls_id}");
            }
            Err(e) if !std::mem::replace(failed, true) => {
                gst::warning!(CAT, imp = self, "analytics meta not attached: {e}");
            }
            Err(e) => gst::debug!(CAT, imp = self, "analytics meta not attached: {e}"),
        }
    }
}

/// One inference at the bundle's native size, timed (the bundle is warm from loading).
fn time_keyframe(bundle: &Bundle) -> Result<std::time::Duration, crate::model::ModelError> {
    crate::model::executor::run(|| time_keyframe_here(bundle))
}

fn time_keyframe_here(bundle: &Bundle) -> Result<std::time::Duration, crate::model::ModelError> {
    let (h, w) = bundle.manifest().native_size();
    let image = tch::Tensor::zeros(
        [1, 3, i64::from(h), i64::from(w)],
        (tch::Kind::Uint8, bundle.device()),
    );
    let start = std::time::Instant::now();
    let _outputs = bundle.forward(&image)?;
    Ok(start.elapsed())
}

fn colorimetry_of(info: &gst_video::VideoInfo) -> YuvColorimetry {
    let c = info.colorimetry();
    YuvColorimetry {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
            gst_video::VideoColorMatrix::Bt2020 => YuvMatrix::Bt2020,
            _ => YuvMatrix::Bt601,
        },
        range: if c.range() == gst_video::VideoColorRange::Range0_255 {
            YuvRange::Full
        } else {
            YuvRange::Limited
        },
    }
}

fn clock_time(d: std::time::Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `caps` with the overlay composition feature added to every structure that has a concrete
/// feature set.
fn with_overlay_feature(caps: &gst::Caps) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    {
        let out = out.get_mut().expect("new caps");
        for (s, f) in caps.iter_with_features() {
            if f.is_any() || f.contains(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION)
            {
                continue;
            }
            let mut features = f.to_owned();
            features.add(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION);
            out.append_structure_full(s.to_owned(), Some(features));
        }
    }
    out
}

/// `caps` with the overlay composition feature removed (system memory where nothing is left).
fn without_overlay_feature(caps: &gst::Caps) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    for (s, f) in caps.iter_with_features() {
        let mut features = f.to_owned();
        if !f.is_any() {
            features.remove(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION);
            if features.is_empty() {
                features = gst::CapsFeatures::new([gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY]);
            }
        }
        out.merge_structure_full(s.to_owned(), Some(features));
    }
    out
}

/// One frame's duration from the caps' frame rate; None for variable or unknown rates.
fn frame_duration(info: &gst_video::VideoInfo) -> Option<std::time::Duration> {
    let fps = info.fps();
    (fps.numer() > 0 && fps.denom() > 0).then(|| {
        std::time::Duration::from_secs_f64(f64::from(fps.denom()) / f64::from(fps.numer()))
    })
}
