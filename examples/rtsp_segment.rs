//! Segments a live RTSP stream (an IP camera) and prints each frame's latency and keyframe
//! information, then a summary.
//!
//! ```text
//! cargo run --release --example rtsp_segment -- rtsp://CAMERA/PATH [--frames N] [--latency MS]
//! cargo run --release --example rtsp_segment -- --serve-file examples/data/highway_dashcam_960x540.mp4
//! cargo run --release --example rtsp_segment -- --serve-pattern 320x240@25 --duration 60 \
//!     --quiet --status-every 10
//! ```
//!
//! Pipeline: `rtspsrc ! rtph264depay ! h264parse ! vssdec ! vsssegment overlay=none ! appsink`.
//! `--serve-file` and `--serve-pattern` first start a loopback RTSP server (the one the tests
//! use) serving an H.264 file or a live test pattern, so the example runs without a camera.
//!
//! Each frame line is tab-separated: frame index, PTS (s), latency (ms: pipeline running time at
//! the sink minus the frame's, i.e. jitter buffer + depayload + decode + segmentation), the
//! codec picture type (`I`/`P`/`B`), `key` or `-` (whether vsssegment ran the model), the
//! branch, frames since the keyframe, and vsssegment's compute time (ms). Lines starting with
//! `#` are the header, status lines (`--status-every`) and the summary. Frames missing from the
//! stream (lost packets, stalls) are counted as dropped from gaps in the timestamps.

#[path = "../tests/support/rtsp_server.rs"]
mod rtsp_server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use gst::prelude::*;
use gstvss::meta::{MotionMeta, SegmentationMeta};
use gstvss::model::DEFAULT_BUNDLE;

#[derive(Parser)]
#[command(about = "Segments a live RTSP stream and prints per-frame latency and keyframes")]
struct Args {
    /// rtsp:// URL of the camera; optional with --serve-file or --serve-pattern.
    url: Option<String>,
    /// Serve this H.264 file (MP4, MKV, TS) on a loopback RTSP server and read it from there.
    #[arg(long, conflicts_with = "serve_pattern")]
    serve_file: Option<PathBuf>,
    /// Serve a live test pattern, WIDTHxHEIGHT@FPS (x264, an IDR every second), on loopback.
    #[arg(long, value_parser = parse_pattern)]
    serve_pattern: Option<(u32, u32, u32)>,
    /// Stop after this many frames (default: until the stream ends).
    #[arg(long)]
    frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// rtspsrc jitter buffer latency, ms.
    #[arg(long, default_value_t = 200)]
    latency: u32,
    /// RTP transport.
    #[arg(long, value_enum, default_value_t = Transport::Auto)]
    transport: Transport,
    /// The camera's codec (H.265 decodes, but FFmpeg exports no vectors for it).
    #[arg(long, value_enum, default_value_t = Codec::H264)]
    codec: Codec,
    /// Bundle folder, its manifest.json, or a shipped bundle's name.
    #[arg(long, default_value = DEFAULT_BUNDLE)]
    model: String,
    /// vsssegment's mode between keyframes.
    #[arg(long, default_value = "warp", value_parser = ["full", "lowres", "warp"])]
    mode: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No per-frame lines: status lines and the summary only.
    #[arg(long)]
    quiet: bool,
    /// Print a status line (frames, dropped, resident memory, latency) every this many seconds.
    #[arg(long)]
    status_every: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// rtspsrc's default: UDP, falling back to TCP.
    Auto,
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Codec {
    H264,
    H265,
}

fn parse_pattern(s: &str) -> Result<(u32, u32, u32), String> {
    let bad = || format!("{s}: expected WIDTHxHEIGHT@FPS, e.g. 320x240@25");
    let (size, fps) = s.split_once('@').ok_or_else(bad)?;
    let (w, h) = size.split_once('x').ok_or_else(bad)?;
    let parse = |v: &str| v.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(bad);
    Ok((parse(w)?, parse(h)?, parse(fps)?))
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;

    let server = match (&args.serve_file, args.serve_pattern) {
        (Some(file), _) => {
            if !file.exists() {
                bail!("{}: no such file", file.display());
            }
            Some(rtsp_server::LoopbackServer::start(
                &rtsp_server::file_launch(file),
            )?)
        }
        (None, Some((w, h, fps))) => Some(rtsp_server::LoopbackServer::start(
            &rtsp_server::live_launch(w, h, fps, fps),
        )?),
        (None, None) => None,
    };
    let url = match (&args.url, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.url(),
        (None, None) => bail!("give an rtsp:// URL, --serve-file FILE or --serve-pattern"),
    };
    if let Some(server) = &server {
        eprintln!("serving on {}", server.url());
    }

    let (depay, parse) = match args.codec {
        Codec::H264 => ("rtph264depay", "h264parse"),
        Codec::H265 => ("rtph265depay", "h265parse"),
    };
    let pipeline = gst::parse::launch(&format!(
        "rtspsrc name=src ! {depay} ! {parse} ! vssdec ! vsssegment name=seg overlay=none \
         ! appsink name=sink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    let src = pipeline.by_name("src").context("no rtspsrc")?;
    src.set_property("location", &url);
    src.set_property("latency", args.latency);
    match args.transport {
        Transport::Auto => {}
        Transport::Udp => src.set_property_from_str("protocols", "udp"),
        Transport::Tcp => src.set_property_from_str("protocols", "tcp"),
    }
    let seg = pipeline.by_name("seg").context("no vsssegment")?;
    seg.set_property("model", &args.model);
    seg.set_property("device", &args.device);
    seg.set_property_from_str("mode", &args.mode);
    let sink = pipeline
        .by_name("sink")
        .context("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow!("not an appsink"))?;

    let result = run(&args, &pipeline, &sink);
    pipeline.set_state(gst::State::Null)?;
    let report = result.with_context(|| url.clone())?;
    println!("# {}", report.summary());
    Ok(())
}

/// What the run saw, for status lines and the summary.
#[derive(Default)]
struct Report {
    frames: u64,
    keyframes: u64,
    dropped: u64,
    warnings: u64,
    /// Latency per frame, ms.
    latencies: Vec<f64>,
    last_pts: Option<gst::ClockTime>,
}

impl Report {
    /// Counts frames missing before one at `pts`, from the gap to the previous frame.
    fn account_gap(&mut self, pts: Option<gst::ClockTime>, frame: Option<gst::ClockTime>) {
        if let (Some(last), Some(pts), Some(frame)) = (self.last_pts, pts, frame)
            && pts > last
            && !frame.is_zero()
        {
            let gap = (pts - last).nseconds() as f64 / frame.nseconds() as f64;
            // Half a frame of slack for timestamp jitter.
            self.dropped += (gap - 0.5).floor().max(0.0) as u64;
        }
        if pts.is_some() {
            self.last_pts = pts;
        }
    }

    fn latency_percentile(&self, p: f64) -> Option<f64> {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(i).copied()
    }

    fn summary(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        format!(
            "{} frames ({} keyframes), {} dropped, {} warnings, latency ms p50 {} p95 {} max {}",
            self.frames,
            self.keyframes,
            self.dropped,
            self.warnings,
            ms(self.latency_percentile(0.5)),
            ms(self.latency_percentile(0.95)),
            ms(self.latencies.iter().copied().reduce(f64::max)),
        )
    }
}

/// Resident memory of this process in MiB, from /proc (Linux).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn run(args: &Args, pipeline: &gst::Pipeline, sink: &gst_app::AppSink) -> Result<Report> {
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("no bus")?;
    let started = Instant::now();
    let mut next_status = args.status_every.map(Duration::from_secs_f64);
    let mut report = Report::default();
    if !args.quiet {
        println!("# frame\tpts_s\tlatency_ms\tpicture\tkey\tbranch\tdistance\tcompute_ms");
    }
    loop {
        if args.frames.is_some_and(|n| report.frames >= n)
            || args
                .duration
                .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        while let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(e) => {
                    bail!("{} ({})", e.error(), e.debug().unwrap_or_default())
                }
                gst::MessageView::Warning(w) => {
                    report.warnings += 1;
                    eprintln!("warning: {} ({})", w.error(), w.debug().unwrap_or_default());
                }
                _ => {}
            }
        }
        if let Some(every) = next_status
            && started.elapsed() >= every
        {
            println!(
                "# status t={:.0}s frames={} dropped={} rss_mib={} latency_p50_ms={}",
                started.elapsed().as_secs_f64(),
                report.frames,
                report.dropped,
                rss_mib().map_or("-".into(), |m| format!("{m:.1}")),
                report
                    .latency_percentile(0.5)
                    .map_or("-".into(), |v| format!("{v:.1}")),
            );
            next_status = args
                .status_every
                .map(|s| every + Duration::from_secs_f64(s));
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            if sink.is_eos() {
                break;
            }
            continue;
        };
        frame_line(args, sink, &sample, &mut report)?;
    }
    Ok(report)
}

fn frame_line(
    args: &Args,
    sink: &gst_app::AppSink,
    sample: &gst::Sample,
    report: &mut Report,
) -> Result<()> {
    let buffer = sample.buffer().context("sample without buffer")?;
    let segmentation = buffer
        .meta::<SegmentationMeta>()
        .map(|m| m.segmentation().clone())
        .context("frame without SegmentationMeta")?;
    let picture = buffer
        .meta::<MotionMeta>()
        .map_or('?', |m| m.picture_type().as_char());
    let running = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .zip(buffer.pts())
        .and_then(|(segment, pts)| segment.to_running_time(pts));
    let latency = sink
        .current_running_time()
        .zip(running)
        .and_then(|(now, running)| now.checked_sub(running))
        .map(|l| l.nseconds() as f64 / 1e6);
    let frame_duration = sample
        .caps()
        .and_then(|c| c.structure(0))
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .filter(|f| f.numer() > 0)
        .and_then(|f| gst::ClockTime::SECOND.mul_div_floor(f.denom() as u64, f.numer() as u64))
        .or(buffer.duration());
    report.account_gap(buffer.pts(), frame_duration);
    if let Some(l) = latency {
        report.latencies.push(l);
    }
    if !args.quiet {
        println!(
            "{}\t{:.3}\t{}\t{picture}\t{}\t{}\t{}\t{:.1}",
            report.frames,
            buffer.pts().map_or(f64::NAN, |p| p.nseconds() as f64 / 1e9),
            latency.map_or("-".into(), |l| format!("{l:.1}")),
            if segmentation.keyframe { "key" } else { "-" },
            segmentation.branch.as_str(),
            segmentation.distance,
            segmentation.compute_time.as_secs_f64() * 1e3,
        );
    }
    report.frames += 1;
    report.keyframes += u64::from(segmentation.keyframe);
    Ok(())
}
