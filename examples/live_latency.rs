//! Per-frame output latency of `vsssegment` on a live 25 fps camera-like source, synchronous
//! keyframes side by side with `async-keyframes=true`, and the QoS ladder under a CPU hog.
//!
//! ```text
//! cargo run --release --example live_latency -- [--seconds 20] [--hog-after 8 --hog-for 10]
//! ```
//!
//! The source is `videotestsrc is-live=true` encoded by x264 (zerolatency, no B-frames) and
//! decoded by `vssdec`, so motion vectors come from a real codec. A frame's latency is the
//! running time at which it reaches the sink pad minus its capture running time (its PTS):
//! encode + decode + segmentation + queueing. The sink synchronises (`sync=true`), so it also
//! sends the QoS events `vsssegment` degrades on. With `--hog-for`, busy threads occupy
//! `--hog-threads` cores during that window; the per-second timeline shows the QoS level.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::stats::summary;

use anyhow::{Context, Result, bail};
use clap::Parser;
use gst::prelude::*;

#[derive(Parser)]
#[command(about = "vsssegment latency per frame on a live source, sync vs async keyframes")]
struct Args {
    /// Seconds each configuration runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 960)]
    width: u32,
    #[arg(long, default_value_t = 540)]
    height: u32,
    #[arg(long, default_value_t = 12)]
    keyframe_interval: u32,
    /// Start a CPU hog this many seconds into each run (with --hog-for).
    #[arg(long, default_value_t = 0)]
    hog_after: u64,
    /// How long the hog runs; 0 = no hog.
    #[arg(long, default_value_t = 0)]
    hog_for: u64,
    #[arg(long, default_value_t = 1)]
    hog_threads: usize,
    /// Only these configurations (names as printed), comma-separated.
    #[arg(long)]
    only: Option<String>,
}

#[derive(Default)]
struct Trace {
    /// (seconds since start, latency ms) per frame.
    frames: Vec<(f64, f64)>,
    /// (seconds since start, level, mode, keyframe interval) per QoS step.
    qos: Vec<(f64, u32, String, u32)>,
    /// The pipeline's minimum latency at the end of the run (what the sink waits for).
    pipeline_latency_ms: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;
    let configs = [
        ("sync keyframes", "mode=warp"),
        ("async keyframes", "mode=warp async-keyframes=true"),
    ];
    let mut results = Vec::new();
    for (name, props) in configs {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|x| x.trim() == name))
        {
            continue;
        }
        eprintln!("{name}: {} s ...", args.seconds);
        results.push((name, run(&args, props)?));
    }

    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("machine: {}", common::machine::describe());
    println!(
        "source: videotestsrc is-live 25 fps {}x{} -> x264enc zerolatency -> vssdec; \
         vsssegment keyframe-interval {}; {} s each{}",
        args.width,
        args.height,
        args.keyframe_interval,
        args.seconds,
        if args.hog_for > 0 {
            format!(
                "; CPU hog ({} thread(s)) from {} s for {} s",
                args.hog_threads, args.hog_after, args.hog_for
            )
        } else {
            String::new()
        }
    );
    println!();
    println!(
        "| configuration | frames | latency mean ms | p50 | p99 | max | max / mean | pipeline latency ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, trace) in &results {
        // The first second holds start-up (model warm-up, the first synchronous keyframe).
        let lat: Vec<f64> = trace
            .frames
            .iter()
            .filter(|(t, _)| *t >= 1.0)
            .map(|(_, l)| *l)
            .collect();
        let (mean, p50, p99, max) = summary(&lat);
        println!(
            "| {name} | {} | {mean:.1} | {p50:.1} | {p99:.1} | {max:.1} | {:.2} | {:.1} |",
            lat.len(),
            max / mean,
            trace.pipeline_latency_ms
        );
    }
    for (name, trace) in &results {
        if trace.qos.is_empty() && args.hog_for == 0 {
            continue;
        }
        println!();
        println!("{name}: per second (frames, mean latency ms, QoS level at the end of it)");
        let mut level = 0;
        let mut q = trace.qos.iter().peekable();
        for second in 0..args.seconds {
            let s = second as f64;
            while let Some((t, l, mode, interval)) = q.peek() {
                if *t >= s + 1.0 {
                    break;
                }
                level = *l;
                println!("  {t:6.2} s: QoS level {l}: mode {mode}, keyframe interval {interval}");
                q.next();
            }
            let lat: Vec<f64> = trace
                .frames
                .iter()
                .filter(|(t, _)| (s..s + 1.0).contains(t))
                .map(|(_, l)| *l)
                .collect();
            let hog = args.hog_for > 0
                && (args.hog_after..args.hog_after + args.hog_for).contains(&second);
            println!(
                "  {second:3} s {:>3} frames {:7.1} ms  level {level}{}",
                lat.len(),
                summary(&lat).0,
                if hog { "  [hog]" } else { "" }
            );
        }
    }
    Ok(())
}

fn run(args: &Args, props: &str) -> Result<Trace> {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={},height={},framerate=25/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=250 \
         ! h264parse ! vssdec ! vsssegment name=seg overlay=none keyframe-interval={} {props} \
         ! fakesink name=sink sync=true qos=true",
        args.width, args.height, args.keyframe_interval
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let trace = Arc::new(Mutex::new(Trace::default()));
    let start = Instant::now();
    let sink = pipeline.by_name("sink").context("sink")?;
    let t = trace.clone();
    let weak = pipeline.downgrade();
    sink.static_pad("sink").context("sink pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |pad, info| {
            // The capture time as running time (x264enc shifts PTS by 1000 hours and says so
            // in its segment).
            let capture = info.buffer().and_then(|b| b.pts()).and_then(|pts| {
                pad.sticky_event::<gst::event::Segment>(0)
                    .and_then(|e| e.segment().downcast_ref::<gst::ClockTime>().cloned())
                    .and_then(|seg| seg.to_running_time(pts))
            });
            if let (Some(capture), Some(p)) = (capture, weak.upgrade())
                && let Some(now) = p.current_running_time()
            {
                let ms = (now.nseconds() as f64 - capture.nseconds() as f64) / 1e6;
                t.lock()
                    .unwrap()
                    .frames
                    .push((start.elapsed().as_secs_f64(), ms));
            }
            gst::PadProbeReturn::Ok
        },
    );
    let bus = pipeline.bus().context("bus")?;
    pipeline.set_state(gst::State::Playing)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut hogs = Vec::new();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut hog_started = false;
    let result = loop {
        if !hog_started
            && args.hog_for > 0
            && start.elapsed() >= Duration::from_secs(args.hog_after)
        {
            hog_started = true;
            let until = Instant::now() + Duration::from_secs(args.hog_for);
            for _ in 0..args.hog_threads {
                let stop = stop.clone();
                hogs.push(std::thread::spawn(move || {
                    let mut x = 0u64;
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }));
            }
        }
        if Instant::now() >= deadline {
            break Ok(());
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => break Err(anyhow::anyhow!("{}", e.error())),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "vss-qos") {
                    trace.lock().unwrap().qos.push((
                        start.elapsed().as_secs_f64(),
                        s.get::<u32>("level")?,
                        s.get::<String>("mode")?,
                        s.get::<u32>("keyframe-interval")?,
                    ));
                }
            }
            gst::MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            _ => {}
        }
    };
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        let _ = h.join();
    }
    let mut query = gst::query::Latency::new();
    let pipeline_latency_ms = if pipeline.query(&mut query) {
        query.result().1.nseconds() as f64 / 1e6
    } else {
        f64::NAN
    };
    pipeline.set_state(gst::State::Null)?;
    result?;
    let mut trace = std::mem::take(&mut *trace.lock().unwrap());
    trace.pipeline_latency_ms = pipeline_latency_ms;
    if trace.frames.is_empty() {
        bail!("no frames reached the sink");
    }
    Ok(trace)
}
