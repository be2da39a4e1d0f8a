//! Decode throughput of vssdec (with and without motion-vector export) against avdec_h264 on the
//! same H.264 files, alternating runs in one invocation.
//!
//! ```text
//! cargo run --release --example bench_decode -- [--rounds 5] [--input FILE]... [--sink SINK]...
//! ```
//! Without --input: the shipped dashcam clip (960x540, P-only) and a 1280x720 High-profile
//! encode of it with B-frames, made once under .cache/bench/ (x264, one thread, fixed settings).
//! Per frame is the time from the first buffer at the sink to the last over the frames between
//! (start-up and the decoder's initial fill excluded), median over the rounds; CPU per frame is
//! the process's CPU time over the same span, the fairer number on a machine others load.

use std::path::PathBuf;

mod common;

use anyhow::Result;
use clap::Parser;
use common::decode::{decode_into, high_profile_bframes_clip, shipped_clip};
use common::helpers::median;

#[derive(Parser)]
#[command(about = "Decode throughput: vssdec vs avdec_h264")]
struct Args {
    /// MP4 files with H.264 video; default: the shipped clip and its 720p High-profile B-frame
    /// encode.
    #[arg(long)]
    input: Vec<PathBuf>,
    /// Alternating rounds; each round decodes each file once per decoder.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Decoders to compare, as gst-launch fragments; the first is the baseline.
    #[arg(
        long,
        default_values_t = [
            "avdec_h264".to_string(),
            "vssdec".to_string(),
            "vssdec direct-rendering=false".to_string(),
            "vssdec export-mvs=false".to_string(),
        ]
    )]
    decoder: Vec<String>,
    /// Sinks to decode into: `fakesink` takes any buffer (decoders copy into the default
    /// layout), `fakevideosink` reads GstVideoMeta like display sinks and encoders (avdec_h264
    /// renders into its buffers directly, vssdec hands out libavcodec's planes).
    #[arg(long, default_values_t = ["fakesink".to_string(), "fakevideosink".to_string()])]
    sink: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;
    let inputs = if args.input.is_empty() {
        vec![shipped_clip(), high_profile_bframes_clip()?]
    } else {
        args.input.clone()
    };

    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "machine: {}, nproc {}",
        common::machine::describe(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (input, sink) in inputs
        .iter()
        .flat_map(|i| args.sink.iter().map(move |s| (i, s)))
    {
        let decoders = &args.decoder;
        // Per decoder: ms per frame (steady state) and total seconds, one entry per round.
        let mut per_frame: Vec<Vec<f64>> = vec![Vec::new(); decoders.len()];
        let mut cpu_per_frame: Vec<Vec<f64>> = vec![Vec::new(); decoders.len()];
        let mut totals: Vec<Vec<f64>> = vec![Vec::new(); decoders.len()];
        let mut frames = 0;
        // One untimed pass warms the file cache and the decoders' code.
        decode_into(input, &decoders[0], sink)?;
        for round in 0..args.rounds {
            // Alternate the order so drift in machine load hits every decoder alike.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..decoders.len()).collect()
            } else {
                (0..decoders.len()).rev().collect()
            };
            for i in order {
                let run = decode_into(input, &decoders[i], sink)?;
                per_frame[i].push(run.per_frame_ms());
                cpu_per_frame[i].push(run.cpu_per_frame_ms());
                totals[i].push(run.total);
                frames = run.frames;
            }
        }

        println!();
        println!(
            "input: {} ({frames} frames) into {sink}, {} rounds, load average now {}",
            input.display(),
            args.rounds,
            common::machine::load_average()
        );
        println!(
            "| decoder | ms/frame (median) | per round | CPU ms/frame (median) | per round | \
             total s (median) | throughput vs {0} | CPU vs {0} |",
            decoders[0]
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
        let rounds = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (base, base_cpu) = (median(&per_frame[0]), median(&cpu_per_frame[0]));
        for (i, name) in decoders.iter().enumerate() {
            let (m, c) = (median(&per_frame[i]), median(&cpu_per_frame[i]));
            println!(
                "| {name} | {m:.3} | {} | {c:.3} | {} | {:.3} | {:.3}x | {:.3}x |",
                rounds(&per_frame[i]),
                rounds(&cpu_per_frame[i]),
                median(&totals[i]),
                base / m,
                base_cpu / c
            );
        }
    }
    Ok(())
}
