//! What a non-keyframe costs in `warp` mode without the network: paint the codec's vectors,
//! accumulate back to the keyframe, the field statistics, and warp the keyframe's class map,
//! each timed on its own over the shipped clip's real vectors.
//!
//! ```text
//! cargo run --release --example bench_motion -- [--input CLIP] [--repeats 5] [--map 480x360]
//! ```
//! The vectors come from `vssdec` once; then every picture is replayed `--repeats` times through
//! the same `MotionTrack` a `vsssegment` in warp mode keeps (a restart every 12 pictures, as at
//! keyframe-interval 12), so the numbers are the pure-Rust motion path, not the pipeline.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use gst::prelude::*;
use gstvss::meta::MotionMeta;
use gstvss::motion::{MotionTrack, MotionVector, PictureType, cell_for_map};

#[derive(Parser)]
#[command(about = "Per-frame cost of the motion path (paint, accumulate, stats, warp)")]
struct Args {
    /// A video vssdec decodes with vectors (H.264, MPEG-4 Part 2, MPEG-2).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Replays of the whole clip.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Class-map size warped each frame, WxH (the default bundle's native size).
    #[arg(long, default_value = "480x360")]
    map: String,
    /// Pictures between restarts (keyframes).
    #[arg(long, default_value_t = 12)]
    keyframe_interval: usize,
}

struct Picture {
    width: u32,
    height: u32,
    picture: PictureType,
    vectors: Vec<MotionVector>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;
    let input = args.input.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/videos/highway_dashcam_960x540.mp4")
    });
    let (map_w, map_h) = args
        .map
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .context("--map takes WxH")?;
    let pictures = decode_vectors(&input)?;
    let Some(first) = pictures.first() else {
        bail!("{} gave no pictures", input.display());
    };
    let vectors: usize = pictures.iter().map(|p| p.vectors.len()).sum();
    // The cell vsssegment picks for this frame and class map.
    let cell = cell_for_map(first.width, first.height, map_w, map_h);
    println!("{}", common::machine::describe());
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "{}: {} pictures {}x{}, {:.0} vectors a picture; class map {map_w}x{map_h}, cell {} px",
        input.display(),
        pictures.len(),
        first.width,
        first.height,
        vectors as f64 / pictures.len() as f64,
        cell
    );

    let mut track = MotionTrack::new(first.width, first.height, cell)?;
    let key_map: Vec<u8> = (0..map_w * map_h).map(|i| (i % 11) as u8).collect();
    let mut warped = vec![0u8; key_map.len()];
    let mut times = [Duration::ZERO; 3];
    let mut frames = 0usize;
    for _ in 0..args.repeats {
        for (i, p) in pictures.iter().enumerate() {
            if i % args.keyframe_interval == 0 {
                track.restart();
                continue;
            }
            let t0 = Instant::now();
            track.advance_picture(&p.vectors, p.picture);
            let t1 = Instant::now();
            std::hint::black_box(track.accumulated().stats());
            let t2 = Instant::now();
            track
                .accumulated()
                .warp_class_map(&key_map, map_w, map_h, &mut warped)?;
            let t3 = Instant::now();
            std::hint::black_box(&warped);
            times[0] += t1 - t0;
            times[1] += t2 - t1;
            times[2] += t3 - t2;
            frames += 1;
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / frames as f64;
    let total: Duration = times.iter().sum();
    println!("\n| step | ms a non-keyframe | share |");
    println!("| --- | --- | --- |");
    for (name, t) in [
        ("paint + accumulate", times[0]),
        ("field statistics", times[1]),
        ("warp class map", times[2]),
        ("total", total),
    ] {
        println!(
            "| {name} | {:.3} | {:.0}% |",
            per(t),
            100.0 * t.as_secs_f64() / total.as_secs_f64()
        );
    }
    println!("\n{frames} non-keyframes timed");
    Ok(())
}

/// Every picture's vectors from vssdec, in display order.
fn decode_vectors(input: &std::path::Path) -> Result<Vec<Picture>> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! parsebin ! vssdec ! appsink name=sink sync=false",
        input.display()
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .context("appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow::anyhow!("not an appsink"))?;
    pipeline.set_state(gst::State::Playing)?;
    let mut pictures = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let caps = sample.caps().context("caps")?;
        let info = gst_video::VideoInfo::from_caps(caps)?;
        let buffer = sample.buffer().context("buffer")?;
        let meta = buffer
            .meta::<MotionMeta>()
            .context("a picture without VssMotionMeta")?;
        pictures.push(Picture {
            width: info.width(),
            height: info.height(),
            picture: meta.picture_type(),
            vectors: meta.vectors().to_vec(),
        });
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(pictures)
}
