//! Reads vsssegment's `SegmentationMeta` in an application: prints each frame's share of pixels
//! per class, one line per frame.
//!
//! ```text
//! cargo run --release --example shares -- INPUT [--model M] [--mode warp]
//! ```
//! Pipeline: `filesrc ! parsebin ! vssdec ! vsssegment overlay=none ! appsink`. Each line is
//! tab-separated: frame index, PTS in seconds, `key` or `-`, the branch, then `Class=share` for
//! every class of the bundle (shares of the class map's pixels, summing to 1).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use gst::prelude::*;
use gstvss::meta::SegmentationMeta;
use gstvss::model::DEFAULT_BUNDLE;

#[path = "../tests/support/helpers.rs"]
mod helpers;
use helpers::bus_error;

#[derive(Parser)]
#[command(about = "Per-frame class shares from vsssegment's segmentation meta")]
struct Args {
    /// A video vssdec can decode (H.264, H.265, MPEG-4 Part 2, MPEG-2).
    input: PathBuf,
    /// Bundle folder, its manifest.json, or a shipped bundle's name.
    #[arg(long, default_value = DEFAULT_BUNDLE)]
    model: String,
    /// vsssegment's mode: full, lowres or warp (image bundles).
    #[arg(long, default_value = "warp")]
    mode: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;

    let pipeline = gst::parse::launch(
        "filesrc name=src ! parsebin ! vssdec ! vsssegment name=seg overlay=none \
         ! appsink name=sink sync=false",
    )?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    pipeline
        .by_name("src")
        .context("no filesrc")?
        .set_property("location", args.input.to_string_lossy().as_ref());
    let seg = pipeline.by_name("seg").context("no vsssegment")?;
    seg.set_property("model", &args.model);
    seg.set_property_from_str("mode", &args.mode);
    let sink = pipeline
        .by_name("sink")
        .context("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow!("not an appsink"))?;

    let result = print_shares(&pipeline, &sink);
    pipeline.set_state(gst::State::Null)?;
    result.with_context(|| args.input.display().to_string())
}

fn print_shares(pipeline: &gst::Pipeline, sink: &gst_app::AppSink) -> Result<()> {
    let bus = pipeline.bus().context("pipeline without bus")?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        bail!("cannot start: {}", bus_error(&bus).unwrap_or_default());
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut frame = 0u64;
    loop {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            if sink.is_eos() {
                break;
            }
            if let Some(e) = bus_error(&bus) {
                bail!("{e}");
            }
            continue;
        };
        let buffer = sample.buffer().context("sample without buffer")?;
        let meta = buffer
            .meta::<SegmentationMeta>()
            .with_context(|| format!("frame {frame} has no segmentation meta"))?;
        let seg = meta.segmentation();
        let pts = buffer.pts().map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
        let key = if seg.keyframe { "key" } else { "-" };
        write!(out, "{frame}\t{pts:.3}\t{key}\t{}", seg.branch.as_str())?;
        for (class, share) in seg.classes.iter().zip(seg.class_shares()) {
            write!(out, "\t{}={share:.4}", class.name)?;
        }
        writeln!(out)?;
        frame += 1;
    }
    out.flush()?;
    Ok(())
}
