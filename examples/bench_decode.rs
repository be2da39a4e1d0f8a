//! Decode throughput of vssdec (with and without motion-vector export) against avdec_h264 on the
//! same 720p H.264 file, alternating runs in one invocation.
//!
//! ```text
//! cargo run --release --example bench_decode -- [--rounds 5] [--input FILE]
//! ```
//! Without --input, a 1280x720 encode of the shipped dashcam clip is made once under
//! .cache/bench/ (x264, deterministic settings).

use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;

use anyhow::{Context, Result, bail};
use clap::Parser;
use gst::prelude::*;

#[derive(Parser)]
#[command(about = "Decode throughput: vssdec vs avdec_h264")]
struct Args {
    /// An MP4 with H.264 video; default: the dashcam clip re-encoded at 1280x720.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Alternating rounds; each round decodes the file once per decoder.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let input = match args.input {
        Some(p) => p,
        None => bench_clip(&root)?,
    };

    let decoders = [
        ("avdec_h264", "avdec_h264"),
        ("vssdec", "vssdec"),
        ("vssdec export-mvs=false", "vssdec export-mvs=false"),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); decoders.len()];
    let mut frames = 0;
    for round in 0..args.rounds {
        // Alternate the order so drift in machine load hits every decoder alike.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..decoders.len()).collect()
        } else {
            (0..decoders.len()).rev().collect()
        };
        for i in order {
            let (secs, n) = decode_once(&input, decoders[i].1)?;
            times[i].push(secs);
            frames = n;
        }
    }

    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("machine: {}", common::machine::describe());
    println!(
        "input: {} ({frames} frames), {} rounds",
        input.display(),
        args.rounds
    );
    println!();
    println!("| decoder | median s | fps | ratio vs avdec_h264 |");
    println!("| --- | --- | --- | --- |");
    let base = median(&times[0]);
    for ((name, _), t) in decoders.iter().zip(&times) {
        let m = median(t);
        println!(
            "| {name} | {m:.3} | {:.1} | {:.3} |",
            frames as f64 / m,
            base / m
        );
    }
    Ok(())
}

/// Decodes `input` once to fakesink; returns (seconds, frames).
fn decode_once(input: &Path, decoder: &str) -> Result<(f64, u64)> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! {decoder} ! fakesink name=sink sync=false",
        input.display()
    ))?;
    let sink = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .map_err(|_| anyhow::anyhow!("not a bin"))?
        .by_name("sink")
        .context("no sink")?;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = counter.clone();
    sink.static_pad("sink").context("no sink pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        },
    );
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("no bus")?;
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(600),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(msg) => match msg.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(anyhow::anyhow!("{decoder}: {}", e.error())),
            _ => unreachable!(),
        },
        None => Err(anyhow::anyhow!("{decoder}: no EOS within 600 s")),
    };
    let secs = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    result?;
    Ok((secs, counter.load(std::sync::atomic::Ordering::Relaxed)))
}

/// The shipped clip re-encoded at 1280x720, made once.
fn bench_clip(root: &Path) -> Result<PathBuf> {
    let out = root.join(".cache/bench/dashcam_1280x720.mp4");
    if out.exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(out.parent().context("no parent")?)?;
    let clip = root.join("examples/data/highway_dashcam_960x540.mp4");
    let tmp = out.with_extension("part");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! videoscale \
         ! video/x-raw,width=1280,height=720 ! x264enc speed-preset=medium key-int-max=30 \
         bframes=0 threads=1 ! mp4mux ! filesink location=\"{}\"",
        clip.display(),
        tmp.display()
    ))?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("no bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(600),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("encoding the bench clip: {}", e.error()),
        _ => bail!("encoding the bench clip timed out"),
    }
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}
