//! Segments a video with `vsssegment`: writes an overlay video and per-frame class-id masks, and
//! prints a summary. The README's main job and the user's CLI.
//!
//! ```text
//! cargo run --release --example segment -- INPUT [--model M] [--mode MODE] \
//!     [--keyframe-policy P] [--keyframe-interval N] [--device cpu] [--out overlay.mp4] [--masks DIR]
//! ```
//!
//! Pipeline: `filesrc ! parsebin ! vssdec ! videoconvert ! vsssegment overlay=blend`, then
//! `videoconvert ! x264enc ! mp4mux ! filesink` with `--out` (else `fakesink`). A pad probe after
//! `vsssegment` reads each frame's `SegmentationMeta` to count and, with `--masks`, hands the
//! class map, scaled to the frame with nearest neighbour, to `appsrc ! pngenc ! multifilesink`.
//! Streams vssdec cannot decode (VP8, VP9, AV1, ...) go through `decodebin` instead, and
//! `vsssegment` estimates the motion itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use gst::prelude::*;
use gst_video::prelude::*;
use gstvss::meta::{Segmentation, SegmentationMeta};
use gstvss::model::{DEFAULT_BUNDLE, copy_u8, resize_nearest};
use indicatif::{ProgressBar, ProgressStyle};

#[path = "../tests/support/helpers.rs"]
mod helpers;
use helpers::{bus_error, describe_message};

#[derive(Parser)]
#[command(
    about = "Semantic segmentation of a video with vsssegment: overlay video, class-id masks, \
                   summary"
)]
struct Args {
    /// Any video file GStreamer can read (see --decoder).
    input: PathBuf,
    /// Bundle folder, its manifest.json, or a shipped bundle's name.
    #[arg(long, default_value = DEFAULT_BUNDLE)]
    model: String,
    /// What runs between keyframes (vsssegment's `mode`).
    #[arg(long, default_value = "warp",
          value_parser = ["full", "lowres", "warp", "fusion", "distributed"])]
    mode: String,
    /// Which frames run the full model.
    #[arg(long, default_value = "interval", value_parser = ["codec", "interval", "adaptive"])]
    keyframe_policy: String,
    /// Frames between keyframes (interval), or their upper bound (adaptive; codec: x5).
    #[arg(long, default_value_t = 12)]
    keyframe_interval: u32,
    /// Side scale of the low-resolution branch (lowres mode).
    #[arg(long, default_value_t = 0.5)]
    lowres_scale: f64,
    /// warp mode: share of the frame's pixels per frame re-segmented where the carried map
    /// looks wrong (vsssegment's `correction-budget`; 0 = off; default: the element's).
    #[arg(long)]
    correction_budget: Option<f64>,
    /// Mean absolute luma difference under which a tile is left as carried (vsssegment's
    /// `correction-threshold`; default: the element's).
    #[arg(long)]
    correction_threshold: Option<f64>,
    /// Search radius in pixels for refining the codec's vectors against the decoded frames, in
    /// streams with B-frames (vsssegment's `motion-refine`; 0 = off; default: the element's).
    #[arg(long)]
    motion_refine: Option<u32>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// libtorch threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// auto: vssdec (codec motion vectors) when it can decode the stream, else decodebin (any
    /// codec GStreamer has a decoder for; vsssegment then estimates the motion itself).
    #[arg(long, value_enum, default_value_t = Decoder::Auto)]
    decoder: Decoder,
    /// Overlay video (H.264 in MP4) with the coloured class map blended in.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Opacity of the class colours in the overlay video.
    #[arg(long, default_value_t = 0.5)]
    overlay_alpha: f64,
    /// Folder for one 8-bit grayscale PNG of class ids per frame, at the frame's resolution,
    /// named by frame index from 0 in presentation order: 000000.png, 000001.png, ...
    #[arg(long)]
    masks: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Decoder {
    Auto,
    Vssdec,
    Decodebin,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;

    let masks = match &args.masks {
        Some(dir) => Some(MaskWriter::new(dir)?),
        None => None,
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template(
        "{spinner} {msg} [{elapsed_precise}]",
    )?);
    let (pipeline, segment) = build(&args, &tally)?;
    watch_frames(&segment, &tally, masks.clone(), &bar)?;

    let result = play(&args, &pipeline, &bar);
    bar.finish_and_clear();
    pipeline.set_state(gst::State::Null)?;
    let finished = masks.map(|m| m.finish()).transpose();
    let timing = result?;
    let written = finished?;
    let tally = tally.lock().map_err(|_| anyhow!("tally poisoned"))?;
    print_summary(&args, &tally, &timing, written);
    Ok(())
}

/// What the probe learns from the frames leaving vsssegment.
#[derive(Default)]
struct Tally {
    frames: u64,
    keyframes: u64,
    compute: Duration,
    keyframe_compute: Duration,
    branches: std::collections::BTreeMap<&'static str, u64>,
    model: Option<String>,
    /// "vssdec" or "decodebin", once parsebin exposed the video stream.
    decoder: Option<&'static str>,
    size: Option<(u32, u32)>,
}

struct Timing {
    load: Duration,
    wall: Duration,
}

/// filesrc ! parsebin ! {vssdec | decodebin} ! videoconvert ! vsssegment ! {encoder | fakesink};
/// the decoder is linked when parsebin exposes the video stream. Returns the vsssegment.
fn build(args: &Args, tally: &Arc<Mutex<Tally>>) -> Result<(gst::Pipeline, gst::Element)> {
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", args.input.to_string_lossy().as_ref());
    let parse = make("parsebin")?;
    let convert = make("videoconvert")?;
    let segment = make("vsssegment")?;
    segment.set_property("model", &args.model);
    segment.set_property("device", &args.device);
    segment.set_property("threads", args.threads);
    segment.set_property_from_str("mode", &args.mode);
    segment.set_property_from_str("keyframe-policy", &args.keyframe_policy);
    segment.set_property("keyframe-interval", args.keyframe_interval.max(1));
    segment.set_property("lowres-scale", args.lowres_scale);
    if let Some(budget) = args.correction_budget {
        segment.set_property("correction-budget", budget);
    }
    if let Some(threshold) = args.correction_threshold {
        segment.set_property("correction-threshold", threshold);
    }
    if let Some(radius) = args.motion_refine {
        segment.set_property("motion-refine", radius);
    }
    segment.set_property_from_str("overlay", if args.out.is_some() { "blend" } else { "none" });
    segment.set_property("overlay-alpha", args.overlay_alpha);

    let tail: Vec<gst::Element> = match &args.out {
        Some(out) => {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let encode = make("x264enc")?;
            encode.set_property_from_str("speed-preset", "ultrafast");
            let sink = make("filesink")?;
            sink.set_property("location", out.to_string_lossy().as_ref());
            vec![make("videoconvert")?, encode, make("mp4mux")?, sink]
        }
        None => {
            let sink = make("fakesink")?;
            sink.set_property("sync", false);
            vec![sink]
        }
    };
    pipeline.add_many([&src, &parse, &convert, &segment])?;
    pipeline.add_many(&tail)?;
    src.link(&parse)?;
    gst::Element::link_many([&convert, &segment])?;
    segment.link(&tail[0])?;
    gst::Element::link_many(&tail)?;

    let decoder = args.decoder;
    let weak = pipeline.downgrade();
    let convert_sink = convert
        .static_pad("sink")
        .context("videoconvert without sink pad")?;
    let tally = tally.clone();
    parse.connect_pad_added(move |parse, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        match link_parsed(&pipeline, pad, &convert_sink, decoder) {
            Ok(Some(name)) => {
                if let Ok(mut t) = tally.lock() {
                    t.decoder = Some(name);
                }
            }
            Ok(None) => {}
            Err(e) => gst::element_error!(
                parse,
                gst::CoreError::Negotiation,
                ["cannot decode {}: {:#}", pad.name(), e]
            ),
        }
    });
    Ok((pipeline, segment))
}

fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("GStreamer element {factory} is not installed"))
}

/// Links one parsebin pad: the first video stream to a decoder and on to `convert_sink`,
/// anything else to a fakesink. Returns the decoder's name when it linked the video.
fn link_parsed(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    convert_sink: &gst::Pad,
    decoder: Decoder,
) -> Result<Option<&'static str>> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let is_video = caps
        .structure(0)
        .is_some_and(|s| s.name().starts_with("video/") || s.name().starts_with("image/"));
    if !is_video || convert_sink.is_linked() {
        let sink = make("fakesink")?;
        sink.set_property("sync", false);
        sink.set_property("async", false);
        pipeline.add(&sink)?;
        sink.sync_state_with_parent()?;
        pad.link(
            &sink
                .static_pad("sink")
                .context("fakesink without sink pad")?,
        )?;
        return Ok(None);
    }
    let vssdec_can =
        gst::ElementFactory::find("vssdec").is_some_and(|f| f.can_sink_any_caps(&caps));
    let use_vssdec = match decoder {
        Decoder::Vssdec if !vssdec_can => bail!("vssdec cannot decode {caps}; try --decoder auto"),
        Decoder::Vssdec => true,
        Decoder::Auto => vssdec_can,
        Decoder::Decodebin => false,
    };
    if use_vssdec {
        let dec = make("vssdec")?;
        pipeline.add(&dec)?;
        dec.sync_state_with_parent()?;
        pad.link(&dec.static_pad("sink").context("vssdec without sink pad")?)?;
        dec.link_pads(
            Some("src"),
            &convert_sink.parent_element().context("unparented pad")?,
            Some("sink"),
        )?;
        return Ok(Some("vssdec"));
    }
    let dec = make("decodebin")?;
    let target = convert_sink.clone();
    dec.connect_pad_added(move |dec, pad| {
        let raw_video = pad
            .current_caps()
            .unwrap_or_else(|| pad.query_caps(None))
            .structure(0)
            .is_some_and(|s| s.name() == "video/x-raw");
        if raw_video
            && !target.is_linked()
            && let Err(e) = pad.link(&target)
        {
            gst::element_error!(
                dec,
                gst::CoreError::Negotiation,
                ["linking decodebin: {}", e]
            );
        }
    });
    pipeline.add(&dec)?;
    dec.sync_state_with_parent()?;
    pad.link(
        &dec.static_pad("sink")
            .context("decodebin without sink pad")?,
    )?;
    Ok(Some("decodebin"))
}

/// Counts what leaves vsssegment and queues the masks; also moves the progress bar.
fn watch_frames(
    segment: &gst::Element,
    tally: &Arc<Mutex<Tally>>,
    masks: Option<MaskWriter>,
    bar: &ProgressBar,
) -> Result<()> {
    let pad = segment
        .static_pad("src")
        .context("vsssegment without src pad")?;
    let tally = tally.clone();
    let bar = bar.clone();
    let masks = Mutex::new(masks);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(meta) = buffer.meta::<SegmentationMeta>() else {
            post_error(
                pad,
                "a frame left vsssegment without a segmentation meta".into(),
            );
            return gst::PadProbeReturn::Ok;
        };
        let seg = meta.segmentation();
        let Some(frame) = pad
            .current_caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok())
        else {
            post_error(pad, "vsssegment output without video caps".into());
            return gst::PadProbeReturn::Ok;
        };
        let frames = {
            let Ok(mut t) = tally.lock() else {
                return gst::PadProbeReturn::Ok;
            };
            t.add(seg, (frame.width(), frame.height()));
            format!("{} frames, {} keyframes", t.frames, t.keyframes)
        };
        if let Ok(mut masks) = masks.lock()
            && let Some(m) = masks.as_mut()
            && let Err(e) = m.write(seg, frame.width(), frame.height(), buffer.pts())
        {
            post_error(pad, format!("writing masks: {e:#}"));
        }
        if let Some(pts) = buffer.pts() {
            bar.set_position(pts.mseconds());
        }
        bar.set_message(frames);
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

fn post_error(pad: &gst::Pad, message: String) {
    if let Some(element) = pad.parent_element() {
        gst::element_error!(element, gst::ResourceError::Write, ["{}", message]);
    }
}

impl Tally {
    fn add(&mut self, seg: &Segmentation, size: (u32, u32)) {
        self.frames += 1;
        self.compute += seg.compute_time;
        if seg.keyframe {
            self.keyframes += 1;
            self.keyframe_compute += seg.compute_time;
        }
        *self.branches.entry(seg.branch.as_str()).or_default() += 1;
        if self.model.is_none() {
            self.model = Some(seg.model.to_string());
        }
        self.size = Some(size);
    }
}

/// Runs the pipeline to EOS; the model loads during READY->PAUSED.
fn play(args: &Args, pipeline: &gst::Pipeline, bar: &ProgressBar) -> Result<Timing> {
    let bus = pipeline.bus().context("pipeline without bus")?;
    let start = Instant::now();
    if pipeline.set_state(gst::State::Paused).is_err() {
        bail!(
            "{}: {}",
            args.input.display(),
            bus_error(&bus).unwrap_or("cannot start".into())
        );
    }
    let load = start.elapsed();
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        anyhow!(
            "{}: {}",
            args.input.display(),
            bus_error(&bus).unwrap_or_default()
        )
    })?;
    let mut length_known = false;
    loop {
        if !length_known && let Some(d) = pipeline.query_duration::<gst::ClockTime>() {
            bar.set_length(d.mseconds());
            bar.set_style(ProgressStyle::with_template(
                "{bar:40} {percent:>3}% {msg} [{elapsed_precise}<{eta}]",
            )?);
            length_known = true;
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(_) => {
                bail!("{}: {}", args.input.display(), describe_message(&msg))
            }
            gst::MessageView::Warning(_) => {
                bar.suspend(|| eprintln!("warning: {}", describe_message(&msg)))
            }
            _ => {}
        }
    }
    Ok(Timing {
        load,
        wall: start.elapsed() - load,
    })
}

fn print_summary(args: &Args, tally: &Tally, timing: &Timing, masks: Option<u64>) {
    let wall = timing.wall.as_secs_f64();
    let ms = |d: Duration, n: u64| d.as_secs_f64() * 1e3 / n.max(1) as f64;
    let others = tally.frames - tally.keyframes;
    let branches = tally
        .branches
        .iter()
        .map(|(b, n)| format!("{n} {b}"))
        .collect::<Vec<_>>()
        .join(", ");
    let motion = match tally.decoder {
        Some("vssdec") => "vssdec, codec motion vectors",
        Some(_) => "decodebin, motion estimated by vsssegment",
        None => "no video stream",
    };
    println!("input      {} ({motion})", args.input.display());
    if let Some((w, h)) = tally.size {
        println!("frame size {w}x{h}");
    }
    println!(
        "model      {} on {}",
        tally.model.as_deref().unwrap_or(&args.model),
        args.device
    );
    println!(
        "mode       {}, keyframe policy {} (interval {})",
        args.mode, args.keyframe_policy, args.keyframe_interval
    );
    println!(
        "frames     {} ({} keyframes; branches: {branches})",
        tally.frames, tally.keyframes
    );
    println!(
        "wall time  {wall:.2} s, {:.1} fps (model load {:.2} s before)",
        tally.frames as f64 / wall.max(1e-9),
        timing.load.as_secs_f64()
    );
    println!(
        "compute    {:.2} ms/frame mean in vsssegment (keyframes {:.2} ms, others {:.2} ms)",
        ms(tally.compute, tally.frames),
        ms(tally.keyframe_compute, tally.keyframes),
        ms(tally.compute - tally.keyframe_compute, others)
    );
    if let Some(out) = &args.out {
        println!("overlay    {}", out.display());
    }
    if let (Some(dir), Some(n)) = (&args.masks, masks) {
        println!("masks      {n} PNGs in {}", dir.display());
    }
}

/// `appsrc ! pngenc ! multifilesink location=DIR/%06d.png`: one PNG per pushed mask, numbered
/// from 0 in push order. Cloned into the probe; `finish` drains it.
#[derive(Clone)]
struct MaskWriter {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// The class map at frame size, reused between frames.
    scratch: Vec<u8>,
    caps: Option<(u32, u32)>,
    written: Arc<AtomicU64>,
}

impl MaskWriter {
    fn new(dir: &Path) -> Result<MaskWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pipeline = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .block(true)
            .max_bytes(16 << 20)
            .build();
        let encode = make("pngenc")?;
        encode.set_property("compression-level", 1u32);
        let sink = make("multifilesink")?;
        let pattern = dir.join("%06d.png");
        sink.set_property("location", pattern.to_string_lossy().as_ref());
        sink.set_property("sync", false);
        sink.set_property("async", false);
        pipeline.add_many([src.upcast_ref(), &encode, &sink])?;
        gst::Element::link_many([src.upcast_ref(), &encode, &sink])?;
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the mask writer")?;
        Ok(MaskWriter {
            pipeline,
            src,
            scratch: Vec::new(),
            caps: None,
            written: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues the class map of `seg`, scaled to `width x height` (nearest neighbour, the same
    /// rule as the element's own class maps), as a GRAY8 frame.
    fn write(
        &mut self,
        seg: &Segmentation,
        width: u32,
        height: u32,
        pts: Option<gst::ClockTime>,
    ) -> Result<()> {
        let (w, h) = (width as usize, height as usize);
        self.scratch.resize(w * h, 0);
        let scratch = &mut self.scratch;
        // On the libtorch executor, like all of the crate's torch work: a torch op on this thread
        // would start a second OpenMP team, and GNU OpenMP then throttles both teams' spinning
        // (keyframes took 65 ms instead of 43 while masks were written).
        gstvss::model::executor::run(|| -> Result<()> {
            let ids = tch::Tensor::from_slice(&seg.class_map[..]).view([
                1,
                1,
                i64::from(seg.height),
                i64::from(seg.width),
            ]);
            let scaled = resize_nearest(&ids, height, width)?;
            copy_u8(&scaled, scratch)?;
            Ok(())
        })?;

        if self.caps != Some((width, height)) {
            let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, width, height)
                .fps(gst::Fraction::new(0, 1))
                .build()?
                .to_caps()?;
            self.src.set_caps(Some(&caps));
            self.caps = Some((width, height));
        }
        let info =
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, width, height).build()?;
        let mut buffer = gst::Buffer::with_size(info.size())?;
        {
            let buffer = buffer.get_mut().context("fresh buffer not writable")?;
            buffer.set_pts(pts);
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info)
                .map_err(|_| anyhow!("mapping a mask buffer"))?;
            let stride = frame.plane_stride()[0] as usize;
            let plane = frame.plane_data_mut(0)?;
            for (dst, src) in plane.chunks_mut(stride).zip(self.scratch.chunks_exact(w)) {
                dst[..w].copy_from_slice(src);
            }
        }
        self.src
            .push_buffer(buffer)
            .map_err(|e| anyhow!("the mask writer refused a frame: {e:?}"))?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends EOS and waits until every queued mask is on disk; returns how many were queued.
    fn finish(self) -> Result<u64> {
        let _ = self.src.end_of_stream();
        let bus = self.pipeline.bus().context("mask pipeline without bus")?;
        let result = match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(msg) if matches!(msg.view(), gst::MessageView::Error(_)) => {
                Err(anyhow!("writing masks: {}", describe_message(&msg)))
            }
            Some(_) => Ok(self.written.load(Ordering::Relaxed)),
            None => Err(anyhow!("the mask writer did not finish within 60 s")),
        };
        self.pipeline.set_state(gst::State::Null)?;
        result
    }
}
