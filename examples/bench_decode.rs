//! Decode throughput of vssdec (with and without motion-vector export) against avdec_h264 on the
//! same 720p H.264 file, alternating runs in one invocation.
//!
//! ```text
//! cargo run --release --example bench_decode -- [--rounds 5] [--input FILE]
//! ```
//! Without --input, a 1280x720 encode of the shipped dashcam clip is made once under
//! .cache/bench/ (x264, deterministic settings).

use std::path::PathBuf;

mod common;

use anyhow::Result;
use clap::Parser;
use common::decode::{decode_once, scaled_clip};
use common::helpers::median;

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
    let input = match args.input {
        Some(p) => p,
        None => scaled_clip(1280, 720)?,
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
