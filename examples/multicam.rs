//! Many live cameras on one machine: N streams of a 640x360 15 fps camera, each `h264parse !
//! vssdec ! vsssegment model-instance-id=multicam`, per stream fps, latency p50/p99/max,
//! dropped frames, and the process's CPU and memory; `--find-max` raises N until a stream can
//! no longer keep real time and ends with one line `held N streams: ...`.
//!
//! ```text
//! cargo run --release --example multicam -- --find-max                 # the goal's setting
//! cargo run --release --example multicam -- --streams 12 [--seconds 60] [--no-share] [--mode full]
//! ```
//!
//! The defaults are the goal's setting (640x360, 15 fps, `warp`, keyframe interval 12, 60 s per
//! step, p99 latency <= 250 ms, no dropped frame): `multicam --find-max` alone measures it. The
//! camera is the shipped clip encoded once by x264 as a camera would and paced at its frame rate
//! per stream (examples/common/multicam.rs says how, and what counts as dropped).

mod common;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;

use common::decode::shipped_clip;
use common::multicam::{self, Camera, Limits, Settings, Step};

#[derive(Parser)]
#[command(about = "N live camera streams through vssdec ! vsssegment: latency, drops, CPU, memory")]
struct Args {
    /// Streams in a single step (without --find-max).
    #[arg(long, default_value_t = multicam::GOAL_STREAMS)]
    streams: usize,
    /// Raise the number of streams until one no longer keeps real time.
    #[arg(long)]
    find_max: bool,
    /// --find-max: the first count tried.
    #[arg(long, default_value_t = 1)]
    start: usize,
    /// --find-max: the most streams tried.
    #[arg(long, default_value_t = 48)]
    max_streams: usize,
    /// vsssegment mode.
    #[arg(long, default_value = multicam::DEFAULT_MODE)]
    mode: String,
    #[arg(long, default_value_t = multicam::DEFAULT_INTERVAL)]
    keyframe_interval: u32,
    #[arg(long, default_value_t = multicam::DEFAULT_WIDTH)]
    width: u32,
    #[arg(long, default_value_t = multicam::DEFAULT_HEIGHT)]
    height: u32,
    #[arg(long, default_value_t = multicam::DEFAULT_FPS)]
    fps: u32,
    /// Measured seconds per step (after the warm-up).
    #[arg(long, default_value_t = multicam::DEFAULT_SECONDS)]
    seconds: f64,
    /// Seconds of each step left out of the numbers (model loads, the first keyframes).
    #[arg(long, default_value_t = multicam::DEFAULT_WARMUP_SECONDS)]
    warmup: f64,
    /// A stream holds real time only with its latency's p99 within this.
    #[arg(long, default_value_t = multicam::DEFAULT_LATENCY_BOUND_MS)]
    latency_bound_ms: f64,
    /// Each stream loads its own model (no model-instance-id).
    #[arg(long)]
    no_share: bool,
    /// vsssegment async-keyframes=true (the live-camera setting; mode warp).
    #[arg(long)]
    async_keyframes: bool,
    /// vsssegment threads= (libtorch intra-op threads; 0 = one per core). On a machine busy
    /// with other work, 1 avoids OpenMP teams waiting for each other's cores.
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// vsssegment model= (default: its default bundle).
    #[arg(long)]
    model: Option<String>,
    /// The clip the camera streams (default: the shipped clip).
    #[arg(long)]
    clip: Option<PathBuf>,
    /// Also write the steps as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;
    let settings = Settings {
        model: args.model.clone(),
        mode: args.mode.clone(),
        keyframe_interval: args.keyframe_interval,
        share: !args.no_share,
        async_keyframes: args.async_keyframes,
        threads: args.threads,
        warmup_s: args.warmup,
        seconds: args.seconds,
        latency_bound_ms: args.latency_bound_ms,
    };
    let clip = args.clip.clone().unwrap_or_else(shipped_clip);
    println!("command: {}", common::provenance::command_line());
    println!("machine: {}", common::machine::describe());
    let camera = Camera::encode(&clip, args.width, args.height, args.fps)?;
    println!("camera: {} ({})", camera.describe(), clip.display());
    println!(
        "each stream: appsrc is-live=true ! {}",
        settings.stream_description()
    );
    println!(
        "settings: {}; keyframes {}; {} s warm-up, then {} s measured per step; a stream holds \
         real time with no frame missing or later than {} ms from capture to the sink",
        settings.label(),
        if settings.async_keyframes {
            "asynchronous (async-keyframes=true)"
        } else {
            "synchronous (async-keyframes=false)"
        },
        settings.warmup_s,
        settings.seconds,
        settings.latency_bound_ms
    );
    println!();
    if args.find_max {
        let limits = Limits {
            start: args.start,
            max: args.max_streams,
        };
        let search = multicam::find_max(&camera, &settings, limits, print_step)?;
        write_json(args.json.as_deref(), &search)?;
        println!("{}", search.result_line());
    } else {
        let step = multicam::run_step(&camera, &settings, args.streams)?;
        print_step(&step);
        write_json(args.json.as_deref(), &step)?;
    }
    Ok(())
}

fn write_json(path: Option<&Path>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A step's table, one row per stream, and its summary line.
fn print_step(step: &Step) {
    println!(
        "| stream | frames | out | fps | latency p50 ms | p99 | max | dropped | missing | QoS level |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, s) in step.per_stream.iter().enumerate() {
        let (p50, p99, max) =
            s.latency_ms
                .map_or(("—".into(), "—".into(), "—".into()), |l| {
                    (
                        format!("{:.1}", l.p50),
                        format!("{:.1}", l.p99),
                        format!("{:.1}", l.max),
                    )
                });
        println!(
            "| {i} | {} | {} | {:.2} | {p50} | {p99} | {max} | {} | {} | {} |",
            s.frames, s.out, s.fps, s.dropped, s.missing, s.qos_level
        );
    }
    println!();
    println!("{}", step.summary_line());
    println!(
        "pacing thread late by {:.1} ms at worst; RSS {:.0} MiB before, {:.0} MiB with the first stream, {:.0} MiB at the end; \
         bundles loaded through model-instance-id: {}",
        step.pacing_late_ms,
        step.rss_before_mib,
        step.rss_first_mib,
        step.rss_end_mib,
        step.shared_loads
    );
    for f in &step.failures {
        println!("  {f}");
    }
    println!();
}
