//! camvid-motion through the real element: each sequence's video through `vssdec ! vsssegment`,
//! every frame's class map against the label of the same index, tallied per distance from the
//! codec's I-frame. Shared by the eval_motion and report examples.
//!
//! Per sequence, encode and mode: `filesrc ! qtdemux ! h264parse ! vssdec thread-type=slice
//! ! vsssegment mode=M <policy> overlay=none stats=true ! appsink`. The distance `d` is counted
//! from the codec's I-frames, read from vssdec's `MotionMeta` on the same buffer: with
//! `mode=full` every frame is a keyframe in the segmentation meta (distance 0), so the meta alone
//! cannot say where a frame sits in the GOP; for the other modes the meta's `distance` must agree,
//! and disagreements are counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use gstvss::meta::{MotionMeta, SegmentationMeta};
use gstvss::motion::PictureType;

use super::metrics::Confusion;

/// CamVid's 11 classes; label 11 (void) is ignored.
pub const CLASSES: usize = 11;

/// How every sequence goes through the element.
#[derive(Debug, Clone)]
pub struct SegmentSettings {
    /// Bundle folder, its manifest.json, or a shipped bundle's name.
    pub model: String,
    /// vsssegment's keyframe policy and its settings, e.g. `keyframe-policy=codec`.
    pub policy: String,
    /// vsssegment's keyframe-interval (the codec policy's bound is 5x this).
    pub keyframe_interval: u32,
    /// Side scale of the low-resolution branch.
    pub lowres_scale: f64,
    /// libtorch threads (0 = one per core).
    pub threads: u32,
    /// vssdec's thread-type. `slice`: with frame threading FFmpeg 5.1 exports B-frame motion
    /// vectors that differ from run to run (the pixels do not), so B-stream results would not
    /// reproduce; the encodes have one slice, so this decodes on one thread.
    pub decoder_thread_type: String,
}

/// Every (encode, mode) over every sequence, sequence by sequence; `progress` hears about each
/// pipeline before it runs.
pub fn evaluate(
    settings: &SegmentSettings,
    sequences: &[PathBuf],
    encodes: &[String],
    modes: &[String],
    mut progress: impl FnMut(usize, &Path, &str, &str),
) -> Result<Vec<Run>> {
    let mut runs: Vec<Run> = Vec::new();
    for encode in encodes {
        for mode in modes {
            runs.push(Run::new(encode, mode));
        }
    }
    for (i, seq) in sequences.iter().enumerate() {
        let labels = read_labels(seq)?;
        for run in runs.iter_mut() {
            progress(i, seq, &run.encode, &run.mode);
            let video = seq.join(format!("{}.mp4", run.encode));
            let frames = segment(settings, &video, &run.mode).with_context(|| {
                format!(
                    "{} mode={} model={}",
                    video.display(),
                    run.mode,
                    settings.model
                )
            })?;
            run.add(&frames, &labels)
                .with_context(|| format!("{} mode={}", video.display(), run.mode))?;
        }
    }
    Ok(runs)
}

/// The sequence folders (those with a meta.json), in order.
pub fn sequence_dirs(data: &Path, limit: Option<usize>) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| {
            format!(
                "reading {} (generate it: .venv/bin/python models/camvid_real.py, or \
                 models/camvid_motion.py for the synthetic-motion set)",
                data.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    if let Some(n) = limit {
        dirs.truncate(n);
    }
    if dirs.is_empty() {
        bail!("no camvid-motion sequences in {}", data.display());
    }
    Ok(dirs)
}

/// What a sequence folder's meta.json says of its dataset: its name (`dataset`, camvid-motion
/// where absent: its generator predates the field) and its encodes in the generator's order.
pub struct DatasetInfo {
    pub name: String,
    pub encodes: Vec<String>,
}

pub fn dataset_info(seq: &Path) -> Result<DatasetInfo> {
    let path = seq.join("meta.json");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| path.display().to_string())?,
    )
    .with_context(|| path.display().to_string())?;
    let name = meta
        .get("dataset")
        .and_then(|v| v.as_str())
        .unwrap_or("camvid-motion")
        .to_string();
    let mut encodes: Vec<String> = match meta.get("encodes") {
        Some(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    // P-only before B-frames, the longer GOP first: p12, b12, p6, b6 (p, b for camvid-motion).
    let gop = |e: &str| {
        e.trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .ok()
    };
    encodes.sort_by_key(|e| (std::cmp::Reverse(gop(e)), !e.starts_with('p'), e.clone()));
    if encodes.is_empty() {
        bail!("{}: no encodes listed", path.display());
    }
    Ok(DatasetInfo { name, encodes })
}

/// A label map: class ids, `width * height` bytes.
pub struct Label {
    pub width: u32,
    pub height: u32,
    pub ids: Vec<u8>,
}

/// labels/000000.png, 000001.png, ... until the first missing index.
pub fn read_labels(seq: &Path) -> Result<Vec<Label>> {
    let mut labels = Vec::new();
    loop {
        let path = seq.join("labels").join(format!("{:06}.png", labels.len()));
        if !path.is_file() {
            break;
        }
        labels.push(read_png_gray8(&path).with_context(|| path.display().to_string())?);
    }
    if labels.is_empty() {
        bail!("{}: no labels/000000.png", seq.display());
    }
    Ok(labels)
}

pub fn read_png_gray8(path: &Path) -> Result<Label> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut reader = png::Decoder::new(file).read_info()?;
    let mut ids = vec![
        0u8;
        reader
            .output_buffer_size()
            .context("PNG too large for memory")?
    ];
    let info = reader.next_frame(&mut ids)?;
    if info.color_type != png::ColorType::Grayscale || info.bit_depth != png::BitDepth::Eight {
        bail!(
            "expected an 8-bit grayscale PNG of class ids, got {:?} {:?}",
            info.color_type,
            info.bit_depth
        );
    }
    ids.truncate(info.buffer_size());
    Ok(Label {
        width: info.width,
        height: info.height,
        ids,
    })
}

/// One frame as it left vsssegment.
pub struct Frame {
    pub class_map: Arc<[u8]>,
    pub map_size: (u32, u32),
    /// Frames since the codec's last I-frame (vssdec's meta).
    pub codec_distance: u32,
    /// The segmentation meta's distance.
    pub meta_distance: u32,
    pub keyframe: bool,
    pub compute: Duration,
    /// Accumulated field statistics from the frame's stats message, where there was a field.
    pub field: Option<(f64, f64)>,
}

pub struct Segmented {
    pub frames: Vec<Frame>,
    pub load: Duration,
    pub wall: Duration,
}

/// Runs one pipeline to EOS and returns every frame's segmentation. `mode` is a vsssegment
/// mode, optionally with a correction budget: `warp@0.3` is `mode=warp correction-budget=0.3`.
pub fn segment(settings: &SegmentSettings, video: &Path, mode: &str) -> Result<Segmented> {
    let (mode, budget) = match mode.split_once('@') {
        Some((m, b)) => (
            m,
            Some(
                b.parse::<f64>()
                    .with_context(|| format!("correction budget in {mode:?}"))?,
            ),
        ),
        None => (mode, None),
    };
    let pipeline = gst::parse::launch(&format!(
        "filesrc name=src ! qtdemux ! h264parse ! vssdec name=dec ! vsssegment name=seg \
             overlay=none {} stats=true ! appsink name=sink sync=false",
        settings.policy
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    pipeline
        .by_name("src")
        .context("no filesrc")?
        .set_property("location", video.to_string_lossy().as_ref());
    pipeline
        .by_name("dec")
        .context("no vssdec")?
        .set_property_from_str("thread-type", &settings.decoder_thread_type);
    let seg = pipeline.by_name("seg").context("no vsssegment")?;
    seg.set_property("model", &settings.model);
    seg.set_property_from_str("mode", mode);
    if let Some(budget) = budget {
        seg.set_property("correction-budget", budget);
    }
    seg.set_property("keyframe-interval", settings.keyframe_interval.max(1));
    seg.set_property("lowres-scale", settings.lowres_scale);
    seg.set_property("threads", settings.threads);
    let sink = pipeline
        .by_name("sink")
        .context("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow!("not an appsink"))?;
    let result = pull_frames(&pipeline, &sink);
    pipeline.set_state(gst::State::Null)?;
    result
}

fn pull_frames(pipeline: &gst::Pipeline, sink: &gst_app::AppSink) -> Result<Segmented> {
    let bus = pipeline.bus().context("pipeline without bus")?;
    let start = Instant::now();
    // READY -> PAUSED loads the bundle (vsssegment's start); the rest is streaming.
    if pipeline.set_state(gst::State::Paused).is_err() {
        bail!(
            "cannot start: {}",
            drain_bus(&bus, &mut HashMap::new()).unwrap_or_default()
        );
    }
    let load = start.elapsed();
    if pipeline.set_state(gst::State::Playing).is_err() {
        bail!(
            "cannot play: {}",
            drain_bus(&bus, &mut HashMap::new()).unwrap_or_default()
        );
    }
    let mut fields = HashMap::new();
    let mut frames = Vec::new();
    let mut codec_distance = 0u32;
    loop {
        if let Some(e) = drain_bus(&bus, &mut fields) {
            bail!("{e}");
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            if sink.is_eos() {
                break;
            }
            continue;
        };
        let index = frames.len();
        let buffer = sample.buffer().context("sample without buffer")?;
        let motion = buffer
            .meta::<MotionMeta>()
            .with_context(|| format!("frame {index} has no motion meta (vssdec upstream?)"))?;
        codec_distance =
            if index == 0 || motion.is_keyframe() || motion.picture_type() == PictureType::I {
                0
            } else {
                codec_distance + 1
            };
        let meta = buffer
            .meta::<SegmentationMeta>()
            .with_context(|| format!("frame {index} has no segmentation meta"))?;
        let s = meta.segmentation();
        frames.push(Frame {
            class_map: s.class_map.clone(),
            map_size: (s.width, s.height),
            codec_distance,
            meta_distance: s.distance,
            keyframe: s.keyframe,
            compute: s.compute_time,
            field: None,
        });
    }
    let wall = start.elapsed() - load;
    if let Some(e) = drain_bus(&bus, &mut fields) {
        bail!("{e}");
    }
    for (i, frame) in frames.iter_mut().enumerate() {
        frame.field = fields.get(&(i as u64)).copied();
    }
    Ok(Segmented { frames, load, wall })
}

/// Takes every message off the bus: keeps the field statistics of `vss-segment` messages by
/// frame, returns the first error.
fn drain_bus(bus: &gst::Bus, fields: &mut HashMap<u64, (f64, f64)>) -> Option<String> {
    let mut error = None;
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) if error.is_none() => {
                error = Some(match e.debug() {
                    Some(d) => format!("{} ({d})", e.error()),
                    None => e.error().to_string(),
                });
            }
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure().filter(|s| s.name() == "vss-segment") else {
                    continue;
                };
                if let (Ok(frame), Ok(uncovered), Ok(motion)) = (
                    s.get::<u64>("frame"),
                    s.get::<f64>("uncovered-share"),
                    s.get::<f64>("mean-motion"),
                ) {
                    fields.insert(frame, (uncovered, motion));
                }
            }
            _ => {}
        }
    }
    error
}

/// What one distance from the keyframe accumulates.
pub struct DistanceTally {
    pub confusion: Confusion,
    pub frames: u64,
    pub compute: Duration,
    pub field_frames: u64,
    pub uncovered: f64,
    pub motion: f64,
}

impl DistanceTally {
    fn new() -> Self {
        DistanceTally {
            confusion: Confusion::new(CLASSES),
            frames: 0,
            compute: Duration::ZERO,
            field_frames: 0,
            uncovered: 0.0,
            motion: 0.0,
        }
    }
}

/// One encode x mode over all sequences.
pub struct Run {
    pub encode: String,
    pub mode: String,
    pub per_distance: Vec<DistanceTally>,
    pub frames: u64,
    pub keyframes: u64,
    pub key_compute: Duration,
    pub compute_ms: Vec<f64>,
    pub load: Duration,
    pub wall: Duration,
    pub distance_mismatches: u64,
    pub sequences: usize,
}

impl Run {
    pub fn new(encode: &str, mode: &str) -> Self {
        Run {
            encode: encode.to_string(),
            mode: mode.to_string(),
            per_distance: Vec::new(),
            frames: 0,
            keyframes: 0,
            key_compute: Duration::ZERO,
            compute_ms: Vec::new(),
            load: Duration::ZERO,
            wall: Duration::ZERO,
            distance_mismatches: 0,
            sequences: 0,
        }
    }

    pub fn add(&mut self, segmented: &Segmented, labels: &[Label]) -> Result<()> {
        if segmented.frames.len() != labels.len() {
            bail!(
                "{} frames decoded, {} labels",
                segmented.frames.len(),
                labels.len()
            );
        }
        let mut resized = Vec::new();
        for (i, (frame, label)) in segmented.frames.iter().zip(labels).enumerate() {
            let d = frame.codec_distance as usize;
            while self.per_distance.len() <= d {
                self.per_distance.push(DistanceTally::new());
            }
            let prediction: &[u8] = if frame.map_size == (label.width, label.height) {
                &frame.class_map
            } else {
                resized.clear();
                resized.extend(scale_to(frame, label.width, label.height));
                &resized
            };
            let tally = &mut self.per_distance[d];
            tally
                .confusion
                .add(&label.ids, prediction)
                .with_context(|| format!("frame {i}"))?;
            tally.frames += 1;
            tally.compute += frame.compute;
            if let Some((uncovered, motion)) = frame.field {
                tally.field_frames += 1;
                tally.uncovered += uncovered;
                tally.motion += motion;
            }
            // `distributed` counts frames since its reset, not since the codec's I-frame.
            if !matches!(self.mode.as_str(), "full" | "distributed")
                && frame.meta_distance != frame.codec_distance
            {
                self.distance_mismatches += 1;
            }
            self.frames += 1;
            if frame.keyframe {
                self.keyframes += 1;
                self.key_compute += frame.compute;
            }
            self.compute_ms.push(frame.compute.as_secs_f64() * 1e3);
        }
        self.load += segmented.load;
        self.wall += segmented.wall;
        self.sequences += 1;
        Ok(())
    }

    pub fn all(&self) -> Confusion {
        let mut all = Confusion::new(CLASSES);
        for t in &self.per_distance {
            all.merge(&t.confusion);
        }
        all
    }

    pub fn miou(&self, d: usize) -> Option<f64> {
        self.per_distance
            .get(d)
            .filter(|t| t.frames > 0)
            .map(|t| t.confusion.scores().miou)
    }

    pub fn mean_compute_ms(&self) -> f64 {
        self.compute_ms.iter().sum::<f64>() / self.compute_ms.len().max(1) as f64
    }

    pub fn to_json(&self) -> serde_json::Value {
        let all = self.all();
        let scores = all.scores();
        serde_json::json!({
            "encode": self.encode,
            "mode": self.mode,
            "sequences": self.sequences,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "miou": scores.miou,
            "iou": scores.iou,
            "pixel_accuracy": scores.pixel_accuracy,
            "confusion": all.counts(),
            "compute_ms": self.compute_ms,
            "load_s": self.load.as_secs_f64(),
            "wall_s": self.wall.as_secs_f64(),
            "distance_mismatches": self.distance_mismatches,
            "per_distance": self.per_distance.iter().enumerate().map(|(d, t)| {
                let s = t.confusion.scores();
                serde_json::json!({
                    "d": d,
                    "frames": t.frames,
                    "miou": s.miou,
                    "iou": s.iou,
                    "confusion": t.confusion.counts(),
                    "compute_ms": t.compute.as_secs_f64() * 1e3 / t.frames.max(1) as f64,
                    "field_frames": t.field_frames,
                    "uncovered_share": t.uncovered / t.field_frames.max(1) as f64,
                    "mean_motion": t.motion / t.field_frames.max(1) as f64,
                })
            }).collect::<Vec<_>>(),
        })
    }
}

/// The class map scaled to the label's size (nearest, the meta's own rule).
fn scale_to(frame: &Frame, width: u32, height: u32) -> Vec<u8> {
    let seg = gstvss::meta::Segmentation {
        width: frame.map_size.0,
        height: frame.map_size.1,
        class_map: frame.class_map.clone(),
        ..Default::default()
    };
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| seg.class_at(x, y, width, height).unwrap_or(u8::MAX))
        .collect()
}
