//! Speed of vsssegment per mode on one clip, side by side with the floors: decode only, and a bare
//! TorchScript forward loop of the same bundle (no GStreamer, no pre/post-processing), run on
//! the same libtorch executor thread as the element's inference.
//!
//! ```text
//! cargo run --release --example bench_segment -- [INPUT] [--model camvid-espnet] [--rounds 2]
//! ```
//! Per-frame latency is the time a buffer spends inside vsssegment (sink pad to src pad);
//! "element time vs full" is full's mean latency over the configuration's: the segmentation
//! speedup without decoding, which the fps ratio includes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod common;

use common::stats::summary;

use anyhow::{Context, Result, bail};
use clap::Parser;
use gst::prelude::*;
use gstvss::model::{Bundle, parse_device};

#[derive(Parser)]
#[command(about = "vsssegment speed per mode vs decode-only and a bare forward loop")]
struct Args {
    /// An MP4 with H.264 video (default: the shipped dashcam clip).
    input: Option<PathBuf>,
    #[arg(long, default_value = "camvid-espnet")]
    model: String,
    #[arg(long, default_value_t = 12)]
    keyframe_interval: u32,
    /// Each configuration runs this many times, alternating; the best run is reported.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

struct Run {
    wall: f64,
    frames: usize,
    latencies_ms: Vec<f64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let input = args
        .input
        .clone()
        .unwrap_or_else(|| root.join("examples/data/highway_dashcam_960x540.mp4"));

    let configs: Vec<(String, Option<String>)> = vec![
        ("decode only (vssdec)".into(), None),
        ("full".into(), Some("mode=full".into())),
        (
            "lowres 0.5".into(),
            Some("mode=lowres lowres-scale=0.5".into()),
        ),
        ("warp".into(), Some("mode=warp".into())),
        (
            "warp, async keyframes".into(),
            Some("mode=warp async-keyframes=true".into()),
        ),
    ];
    let mut best: HashMap<String, Run> = HashMap::new();
    let mut forward: Vec<f64> = Vec::new();
    for round in 0..args.rounds {
        // The bare loop takes its turn in every round too, under the same conditions.
        let f = bare_forward(&args.model, 40)?;
        if forward.is_empty() || summary(&f).0 < summary(&forward).0 {
            forward = f;
        }
        for (name, element) in &configs {
            let run = run_pipeline(&input, element.as_deref(), &args)?;
            eprintln!(
                "round {round}: {name}: {:.2} s, {} frames",
                run.wall, run.frames
            );
            if best.get(name).is_none_or(|b| run.wall < b.wall) {
                best.insert(name.clone(), run);
            }
        }
    }

    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("machine: {}", common::machine::describe());
    println!(
        "input: {}, model {}, keyframe-interval {}, overlay=none, best of {} rounds",
        input.display(),
        args.model,
        args.keyframe_interval,
        args.rounds
    );
    println!();
    println!(
        "| configuration | fps | fps vs full | latency mean ms | p50 | p99 | max | element time vs full |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let full_fps = best["full"].frames as f64 / best["full"].wall;
    let (full_mean, ..) = summary(&best["full"].latencies_ms);
    for (name, _) in &configs {
        let r = &best[name];
        let fps = r.frames as f64 / r.wall;
        let (mean, p50, p99, max) = summary(&r.latencies_ms);
        let element = if r.latencies_ms.is_empty() {
            "—".to_string()
        } else {
            format!("{:.2}", full_mean / mean)
        };
        println!(
            "| {name} | {fps:.1} | {:.2} | {mean:.1} | {p50:.1} | {p99:.1} | {max:.1} | {element} |",
            fps / full_fps
        );
    }
    let (fmean, fp50, fp99, fmax) = summary(&forward);
    println!(
        "| bare forward loop (no GStreamer) | {:.1} | {:.2} | {fmean:.1} | {fp50:.1} | {fp99:.1} | {fmax:.1} | {:.2} |",
        1000.0 / fmean,
        1000.0 / fmean / full_fps,
        full_mean / fmean
    );
    println!();
    println!(
        "element overhead, full vs bare forward (mean per frame): {:.2}x",
        full_mean / fmean
    );
    Ok(())
}

/// Plays the clip through `vssdec [! vsssegment ...] ! fakesink`, timing each buffer inside
/// vsssegment.
fn run_pipeline(input: &std::path::Path, segment: Option<&str>, args: &Args) -> Result<Run> {
    let chain = match segment {
        Some(props) => format!(
            "vsssegment name=seg model={} keyframe-policy=interval keyframe-interval={} overlay=none {props} ! ",
            args.model, args.keyframe_interval
        ),
        None => String::new(),
    };
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! vssdec ! {chain}fakesink name=sink sync=false",
        input.display()
    ))?;
    let bin = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .map_err(|_| anyhow::anyhow!("not a bin"))?;
    let entered: Arc<Mutex<HashMap<Option<gst::ClockTime>, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let frames = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    if let Some(seg) = bin.by_name("seg") {
        let e = entered.clone();
        seg.static_pad("sink").context("sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(b) = info.buffer() {
                    e.lock().unwrap().insert(b.pts(), Instant::now());
                }
                gst::PadProbeReturn::Ok
            },
        );
        let (e, l) = (entered.clone(), latencies.clone());
        seg.static_pad("src").context("src pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(b) = info.buffer()
                    && let Some(t) = e.lock().unwrap().remove(&b.pts())
                {
                    l.lock().unwrap().push(t.elapsed().as_secs_f64() * 1e3);
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    let f = frames.clone();
    bin.by_name("sink")
        .context("sink")?
        .static_pad("sink")
        .context("sink pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    // Load the bundle (READY->PAUSED) before the clock starts.
    pipeline.set_state(gst::State::Paused)?;
    let bus = pipeline.bus().context("bus")?;
    if let Some(msg) = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::AsyncDone, gst::MessageType::Error],
    ) && let gst::MessageView::Error(e) = msg.view()
    {
        pipeline.set_state(gst::State::Null)?;
        bail!("{}", e.error());
    }
    let preroll_frames = frames.load(std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(1200),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let wall = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("{}", e.error()),
        _ => bail!("no EOS"),
    }
    let latencies_ms = std::mem::take(&mut *latencies.lock().unwrap());
    Ok(Run {
        wall,
        frames: frames.load(std::sync::atomic::Ordering::Relaxed) - preroll_frames,
        latencies_ms,
    })
}

/// Per-call milliseconds of the bundle's forward at its native size, after warm-up.
fn bare_forward(model: &str, iterations: usize) -> Result<Vec<f64>> {
    // On the executor thread, where the element's inference runs too.
    gstvss::model::executor::run(|| bare_forward_here(model, iterations))
}

fn bare_forward_here(model: &str, iterations: usize) -> Result<Vec<f64>> {
    let bundle = Bundle::load(model, parse_device("cpu")?)?;
    let (h, w) = bundle.manifest().native_size();
    // Packed RGB viewed as NCHW (channels-last strides), as the element hands frames over.
    let image = tch::Tensor::randint(
        256,
        [1, i64::from(h), i64::from(w), 3],
        (tch::Kind::Uint8, tch::Device::Cpu),
    )
    .permute([0, 3, 1, 2]);
    let mut out = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let _ = bundle.forward(&image)?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}
