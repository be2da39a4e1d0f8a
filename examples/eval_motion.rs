//! Scores vsssegment on camvid-motion through the real element: mIoU per distance from the
//! keyframe, averaged mIoU and cost per frame, for each mode and encode, as a Markdown report.
//!
//! ```text
//! .venv/bin/python models/camvid_motion.py       # the 12 test sequences, once (~15 s)
//! cargo run --release --example eval_motion -- [--data .cache/camvid-motion/test] \
//!     [--modes full,lowres,warp] [--encodes p,b] [--model camvid-espnet] [--limit N] \
//!     [--json results.json]
//! ```
//! Per sequence, encode and mode: `filesrc ! qtdemux ! h264parse ! vssdec thread-type=slice
//! ! vsssegment mode=M keyframe-policy=codec (or --policy) keyframe-interval=12 overlay=none stats=true
//! ! appsink`. Every frame's
//! `SegmentationMeta` class map is compared with the sequence's label PNG of the same index
//! (display order). The distance `d` is counted from the codec's I-frames, read from vssdec's
//! `MotionMeta` on the same buffer: with `mode=full` every frame is a keyframe in the
//! segmentation meta (distance 0), so the meta alone cannot say where a frame sits in the GOP;
//! for the other modes the meta's `distance` must agree, and disagreements are reported.
//! The field statistics of `stats=true` messages (`uncovered-share`, `mean-motion`, posted
//! where the element keeps a motion field: `warp`) are averaged per `d` next to the mIoU drop:
//! the data for tuning the adaptive keyframe policy.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use common::metrics::Confusion;
use gst::prelude::*;
use gstvss::meta::{MotionMeta, SegmentationMeta};
use gstvss::model::DEFAULT_BUNDLE;
use gstvss::motion::PictureType;

/// CamVid's 11 classes; label 11 (void) is ignored.
const CLASSES: usize = 11;

#[derive(Parser)]
#[command(about = "mIoU per distance from the keyframe on camvid-motion, through vsssegment")]
struct Args {
    /// A camvid-motion split folder (models/camvid_motion.py): <NNN>/{p.mp4,b.mp4,labels/}.
    #[arg(long, default_value = ".cache/camvid-motion/test")]
    data: PathBuf,
    /// vsssegment modes, comma-separated.
    #[arg(long, default_value = "full,lowres,warp", value_delimiter = ',')]
    modes: Vec<String>,
    /// Encodes, comma-separated: p (P-only, ref=1) and/or b (B-frames, ref=3).
    #[arg(long, default_value = "p,b", value_delimiter = ',')]
    encodes: Vec<String>,
    /// Bundle folder, its manifest.json, or a shipped bundle's name.
    #[arg(long, default_value = DEFAULT_BUNDLE)]
    model: String,
    /// vsssegment's keyframe-interval (the codec policy's bound is 5x this).
    #[arg(long, default_value_t = 12)]
    keyframe_interval: u32,
    /// Side scale of the low-resolution branch.
    #[arg(long, default_value_t = 0.5)]
    lowres_scale: f64,
    /// libtorch threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// vssdec's thread-type. `slice` by default: with frame threading FFmpeg 5.1 exports
    /// B-frame motion vectors that differ from run to run (the pixels do not), so B-stream
    /// results would not reproduce; the encodes have one slice, so this decodes on one thread.
    #[arg(long, default_value = "slice", value_parser = ["auto", "frame", "slice"])]
    decoder_thread_type: String,
    /// vsssegment's keyframe policy and its settings, e.g. `keyframe-policy=adaptive
    /// adaptive-uncovered=0.3 adaptive-motion=16`.
    #[arg(long, default_value = "keyframe-policy=codec")]
    policy: String,
    /// Only the first N sequences.
    #[arg(long)]
    limit: Option<usize>,
    /// Also write the confusion matrices and per-distance numbers as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    for mode in &args.modes {
        if !["full", "lowres", "fusion", "warp", "distributed"].contains(&mode.as_str()) {
            bail!("unknown mode {mode:?}");
        }
    }
    for encode in &args.encodes {
        if !["p", "b"].contains(&encode.as_str()) {
            bail!("unknown encode {encode:?} (p or b)");
        }
    }
    gst::init()?;
    gstvss::ensure_registered()?;

    let sequences = sequence_dirs(&args.data, args.limit)?;
    let mut runs: Vec<Run> = Vec::new();
    for encode in &args.encodes {
        for mode in &args.modes {
            runs.push(Run::new(encode, mode));
        }
    }
    let started = Instant::now();
    for (i, seq) in sequences.iter().enumerate() {
        let labels = read_labels(seq)?;
        for run in runs.iter_mut() {
            eprint!(
                "\r[{}/{}] {} {} {:<8}",
                i + 1,
                sequences.len(),
                seq.display(),
                run.encode,
                run.mode
            );
            let video = seq.join(format!("{}.mp4", run.encode));
            let frames = segment(&args, &video, &run.mode)
                .with_context(|| format!("{} mode={}", video.display(), run.mode))?;
            run.add(&frames, &labels)
                .with_context(|| format!("{} mode={}", video.display(), run.mode))?;
        }
    }
    eprintln!(
        "\rdone in {:.0} s{:40}",
        started.elapsed().as_secs_f64(),
        ""
    );

    print!("{}", report(&args, sequences.len(), &runs));
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "command": command_line(),
            "machine": common::machine::describe(),
            "commit": commit(),
            "data": args.data,
            "sequences": sequences.len(),
            "model": args.model,
            "runs": runs.iter().map(Run::to_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The sequence folders (those with a meta.json), in order.
fn sequence_dirs(data: &Path, limit: Option<usize>) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| {
            format!(
                "reading {} (generate it: .venv/bin/python models/camvid_motion.py)",
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

/// A label map: class ids, `width * height` bytes.
struct Label {
    width: u32,
    height: u32,
    ids: Vec<u8>,
}

/// labels/000000.png, 000001.png, ... until the first missing index.
fn read_labels(seq: &Path) -> Result<Vec<Label>> {
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

fn read_png_gray8(path: &Path) -> Result<Label> {
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
struct Frame {
    class_map: Arc<[u8]>,
    map_size: (u32, u32),
    /// Frames since the codec's last I-frame (vssdec's meta).
    codec_distance: u32,
    /// The segmentation meta's distance.
    meta_distance: u32,
    keyframe: bool,
    compute: Duration,
    /// Accumulated field statistics from the frame's stats message, where there was a field.
    field: Option<(f64, f64)>,
}

struct Segmented {
    frames: Vec<Frame>,
    load: Duration,
    wall: Duration,
}

/// Runs one pipeline to EOS and returns every frame's segmentation.
fn segment(args: &Args, video: &Path, mode: &str) -> Result<Segmented> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc name=src ! qtdemux ! h264parse ! vssdec name=dec ! vsssegment name=seg \
             overlay=none {} stats=true ! appsink name=sink sync=false",
        args.policy
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
        .set_property_from_str("thread-type", &args.decoder_thread_type);
    let seg = pipeline.by_name("seg").context("no vsssegment")?;
    seg.set_property("model", &args.model);
    seg.set_property_from_str("mode", mode);
    seg.set_property("keyframe-interval", args.keyframe_interval.max(1));
    seg.set_property("lowres-scale", args.lowres_scale);
    seg.set_property("threads", args.threads);
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
struct DistanceTally {
    confusion: Confusion,
    frames: u64,
    compute: Duration,
    field_frames: u64,
    uncovered: f64,
    motion: f64,
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
struct Run {
    encode: String,
    mode: String,
    per_distance: Vec<DistanceTally>,
    frames: u64,
    keyframes: u64,
    key_compute: Duration,
    compute_ms: Vec<f64>,
    load: Duration,
    wall: Duration,
    distance_mismatches: u64,
    sequences: usize,
}

impl Run {
    fn new(encode: &str, mode: &str) -> Self {
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

    fn add(&mut self, segmented: &Segmented, labels: &[Label]) -> Result<()> {
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
            if self.mode != "full" && frame.meta_distance != frame.codec_distance {
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

    fn all(&self) -> Confusion {
        let mut all = Confusion::new(CLASSES);
        for t in &self.per_distance {
            all.merge(&t.confusion);
        }
        all
    }

    fn miou(&self, d: usize) -> Option<f64> {
        self.per_distance
            .get(d)
            .filter(|t| t.frames > 0)
            .map(|t| t.confusion.scores().miou)
    }

    fn mean_compute_ms(&self) -> f64 {
        self.compute_ms.iter().sum::<f64>() / self.compute_ms.len().max(1) as f64
    }

    fn to_json(&self) -> serde_json::Value {
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

fn report(args: &Args, sequences: usize, runs: &[Run]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let max_d = runs.iter().map(|r| r.per_distance.len()).max().unwrap_or(0);
    let pct = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or("—".into(), |v| format!("{:.2}", v * 100.0))
    };
    let _ = writeln!(out, "## camvid-motion through vsssegment\n");
    let _ = writeln!(out, "- command: `{}`", command_line());
    let _ = writeln!(out, "- machine: {}", common::machine::describe());
    let _ = writeln!(out, "- commit: {}", commit());
    let frames = runs.first().map_or(0, |r| r.frames);
    let _ = writeln!(
        out,
        "- data: {} ({sequences} sequences, {frames} frames per run), model {}, \
         {}, lowres-scale {}, vssdec thread-type={}",
        args.data.display(),
        args.model,
        args.policy,
        args.lowres_scale,
        args.decoder_thread_type
    );
    let _ = writeln!(
        out,
        "- d = frames since the codec's I-frame; mIoU in %, 11 classes, void ignored; \
         `all` = mIoU of the confusion matrix summed over every frame; ms = the meta's \
         compute_time (pre-processing, network or warp, post-processing); element fps = \
         1000 / mean ms; pipeline fps = frames / wall time from PLAYING to EOS (decode, \
         element, appsink; the per-sequence bundle load is excluded)\n"
    );
    let mut header = String::from("| encode | mode |");
    let mut rule = String::from("| --- | --- |");
    for d in 0..max_d {
        let _ = write!(header, " d={d} |");
        rule.push_str(" ---: |");
    }
    header.push_str(
        " all | keyframes | mean ms | p50 ms | key ms | non-key ms | max ms | element fps | pipeline fps |",
    );
    rule.push_str(" ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(out, "{header}\n{rule}");
    for run in runs {
        let mut line = format!("| {} | {} |", run.encode, run.mode);
        for d in 0..max_d {
            let _ = write!(line, " {} |", pct(run.miou(d)));
        }
        let mean = run.mean_compute_ms();
        let key_ms = run.key_compute.as_secs_f64() * 1e3 / run.keyframes.max(1) as f64;
        let non_key = run.frames - run.keyframes;
        let non_key_ms = if non_key > 0 {
            format!(
                "{:.1}",
                (run.compute_ms.iter().sum::<f64>() - run.key_compute.as_secs_f64() * 1e3)
                    / non_key as f64
            )
        } else {
            "—".into()
        };
        let max = run.compute_ms.iter().copied().fold(0.0, f64::max);
        let mut sorted = run.compute_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
        let _ = writeln!(
            line,
            " **{}** | {:.1}% | {mean:.1} | {p50:.1} | {key_ms:.1} | {non_key_ms} | {max:.1} | {:.1} | {:.1} |",
            pct(Some(run.all().scores().miou)),
            100.0 * run.keyframes as f64 / run.frames.max(1) as f64,
            1e3 / mean.max(1e-9),
            run.frames as f64 / run.wall.as_secs_f64().max(1e-9),
        );
        out.push_str(&line);
    }
    let mismatched: Vec<String> = runs
        .iter()
        .filter(|r| r.distance_mismatches > 0)
        .map(|r| format!("{} {}: {} frames", r.encode, r.mode, r.distance_mismatches))
        .collect();
    if !mismatched.is_empty() {
        let _ = writeln!(
            out,
            "\nThe segmentation meta's distance differs from the codec's: {}",
            mismatched.join(", ")
        );
    }

    // The adaptive policy's data: the accumulated field next to what propagation loses.
    for encode in &args.encodes {
        let find = |mode: &str| runs.iter().find(|r| &r.encode == encode && r.mode == mode);
        let Some(field_run) = runs
            .iter()
            .find(|r| &r.encode == encode && r.per_distance.iter().any(|t| t.field_frames > 0))
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n### Accumulated field vs mIoU drop, encode {encode} (field from mode {})\n",
            field_run.mode
        );
        let _ = writeln!(
            out,
            "d=0: on a keyframe the element reports the field accumulated through the I-frame \
             (no vectors, so all uncovered) before it restarts the track.\n"
        );
        let _ = writeln!(
            out,
            "| d | uncovered-share | mean-motion px | full | warp | full - warp | lowres |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (d, t) in field_run.per_distance.iter().enumerate() {
            let field = |v: f64| {
                if t.field_frames > 0 {
                    format!("{:.3}", v / t.field_frames as f64)
                } else {
                    "—".into()
                }
            };
            let full = find("full").and_then(|r| r.miou(d));
            let warp = find("warp").and_then(|r| r.miou(d));
            let drop = full.zip(warp).map(|(f, w)| f - w);
            let _ = writeln!(
                out,
                "| {d} | {} | {} | {} | {} | {} | {} |",
                field(t.uncovered),
                field(t.motion),
                pct(full),
                pct(warp),
                pct(drop),
                pct(find("lowres").and_then(|r| r.miou(d))),
            );
        }
    }
    out
}

fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| {
            Path::new(&p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let rest: Vec<String> = args.collect();
    if program == "eval_motion" {
        format!(
            "cargo run --release --example eval_motion -- {}",
            rest.join(" ")
        )
        .trim_end()
        .to_string()
    } else {
        format!("{program} {}", rest.join(" "))
    }
}

fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash} (with uncommitted changes)")
            } else {
                hash
            }
        }
        None => "unknown".into(),
    }
}
