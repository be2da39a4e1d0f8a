//! What one report run measured, as written to report.json: everything report.md, the plots and
//! the README table are rendered from. Scores are fractions (0..1); times in milliseconds unless
//! a name says seconds. A value that could not be measured is absent (null), never NaN.

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning; `--render-only` refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format_version: u32,
    /// `full`, `quick` or `smoke`.
    pub profile: String,
    pub environment: Environment,
    /// Seconds the whole run took.
    pub wall_s: f64,
    /// Real motion: CamVid's labelled val sequence 0016E5 (camvid-real), the headline
    /// accuracy; absent in a report made before the section existed.
    #[serde(default)]
    pub real_motion: Option<MotionSection>,
    /// Synthetic motion: camvid-motion.
    pub motion: MotionSection,
    pub stills: StillsSection,
    pub speed: Vec<SpeedClip>,
    pub decoders: Vec<DecodeClip>,
    /// Many live cameras: one search for the most streams per configuration (empty in a report
    /// made before the section existed).
    #[serde(default)]
    pub multicam: Vec<crate::common::multicam::Search>,
    /// What the run left out and why (bundles it cannot score, and the like).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub os: String,
    pub kernel: String,
    /// libtorch intra-op threads vsssegment and the Python baseline ran with.
    pub torch_threads: usize,
    pub gstreamer: String,
    /// The system FFmpeg that vssdec and avdec_h264 decode with.
    pub ffmpeg: String,
    pub rustc: String,
    pub vss: String,
    pub python: String,
    pub torch: String,
    pub numpy: String,
    pub pyav: String,
    /// The FFmpeg PyAV bundles (its wheels carry their own).
    pub pyav_ffmpeg: String,
    pub matplotlib: String,
    pub command: String,
    pub commit: String,
    /// UTC, when the run started.
    pub started: String,
    pub load_before: String,
    pub load_after: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Timing {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Timing {
    /// Mean, p50, p99 and max; None for no samples.
    pub fn of(samples: &[f64]) -> Option<Timing> {
        if samples.is_empty() {
            return None;
        }
        let (mean, p50, p99, max) = crate::common::stats::summary(samples);
        Some(Timing {
            mean,
            p50,
            p99,
            max,
        })
    }
}

/// Labelled video (camvid-real or camvid-motion) through `vssdec ! vsssegment`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MotionSection {
    /// The dataset's name (camvid-real, camvid-motion).
    #[serde(default = "camvid_motion")]
    pub dataset: String,
    pub data: String,
    pub sequences: usize,
    pub frames_per_sequence: usize,
    pub policy: String,
    pub keyframe_interval: u32,
    pub lowres_scale: f64,
    pub decoder_thread_type: String,
    pub runs: Vec<MotionRun>,
    /// The per-frame Python baseline over the same sequences.
    pub peers: Vec<MotionPeer>,
}

fn camvid_motion() -> String {
    "camvid-motion".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MotionRun {
    pub bundle: String,
    /// camvid-motion: `p` (P-only, ref=1) or `b` (B-frames); camvid-real: the same with the
    /// GOP, `p12`, `b12`, `p6`, `b6`.
    pub encode: String,
    /// A vsssegment mode; `warp@0.3` is warp with correction-budget=0.3.
    pub mode: String,
    pub frames: u64,
    pub keyframes: u64,
    pub miou: Option<f64>,
    pub pixel_accuracy: Option<f64>,
    /// mIoU over the frames `d` frames after the codec's I-frame, d = 0, 1, ...
    pub per_distance: Vec<DistancePoint>,
    /// The segmentation meta's compute time per frame.
    pub compute_ms: Option<Timing>,
    /// Wall time per frame from PLAYING to EOS (decode + element), bundle load excluded.
    pub pipeline_ms: f64,
    /// Frames whose meta distance disagreed with the codec's (non-`full` modes).
    pub distance_mismatches: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistancePoint {
    pub d: usize,
    pub frames: u64,
    pub miou: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MotionPeer {
    pub name: String,
    pub bundle: String,
    pub encode: String,
    pub frames: u64,
    pub miou: Option<f64>,
    pub pixel_accuracy: Option<f64>,
    /// Colour conversion + network + argmax per frame (what the meta's compute time covers).
    pub compute_ms_mean: f64,
    /// Everything per frame, decode included.
    pub frame_ms_mean: f64,
}

/// CamVid test stills through models/evaluate.py (the bundle's TorchScript module).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StillsSection {
    pub split: String,
    /// Images scored per bundle; None = the whole split.
    pub limit: Option<usize>,
    pub rows: Vec<StillsRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StillsRow {
    pub bundle: String,
    /// `full` (the bundle's native size) or `lowres` (scaled as the lowres branch scales).
    pub branch: String,
    /// [height, width]
    pub size: [u32; 2],
    pub images: usize,
    pub miou: Option<f64>,
    pub pixel_accuracy: Option<f64>,
    pub class_map: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeedClip {
    /// Path, relative to the repository when inside it.
    pub clip: String,
    /// The shipped clip itself (not a re-encode): where the headline ratios come from.
    pub shipped: bool,
    pub width: u32,
    pub height: u32,
    pub rounds: usize,
    /// Frames per pass when the run stops early.
    pub max_frames: Option<usize>,
    pub keyframe_interval: u32,
    pub rows: Vec<SpeedRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeedRow {
    pub name: String,
    /// `decode` (vssdec alone), `vss` (vssdec ! vsssegment), `bare` (the bundle's forward in a
    /// loop, no GStreamer, no pre/post-processing), `python` (the per-frame PyAV baseline).
    pub kind: String,
    pub bundle: Option<String>,
    pub mode: Option<String>,
    /// A configuration beside the mode, e.g. `async-keyframes`.
    pub variant: Option<String>,
    pub frames: usize,
    /// Frames per second over the pass (the best of the rounds).
    pub fps: f64,
    /// Per frame: inside vsssegment (`vss`), one forward call (`bare`), decode + conversion +
    /// network + argmax (`python`).
    pub frame_ms: Option<Timing>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecodeClip {
    pub clip: String,
    pub shipped: bool,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub rounds: usize,
    pub rows: Vec<DecodeRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecodeRow {
    pub name: String,
    /// `gstreamer` or `pyav`.
    pub kind: String,
    pub motion_vectors: bool,
    /// Seconds per pass, one per round.
    pub seconds: Vec<f64>,
    pub median_s: f64,
    pub fps: f64,
}
