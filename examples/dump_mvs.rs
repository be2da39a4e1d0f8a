//! Writes the codec motion vectors of a video to CSV, like mv-extractor, through a real pipeline:
//! `filesrc ! parsebin ! vssdec ! appsink`.
//!
//! ```text
//! cargo run --release --example dump_mvs -- INPUT OUT.csv
//! ```
//! OUT.csv gets one row per vector, OUT.types.csv one row per frame with its picture type; frames
//! are numbered in presentation order from 0.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use gst::prelude::*;
use gstvss::meta::MotionMeta;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(about = "Dump codec motion vectors (vssdec) to CSV")]
struct Args {
    /// Any file GStreamer can demux into H.264, H.265, MPEG-4 Part 2 or MPEG-2 video.
    input: PathBuf,
    /// Vector CSV; the picture types go beside it as <OUT stem>.types.csv.
    output: PathBuf,
    /// Decoder threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstvss::ensure_registered()?;

    let types_path = types_path(&args.output);
    let mut vectors_csv = csv::Writer::from_path(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    vectors_csv.write_record([
        "frame",
        "source",
        "w",
        "h",
        "src_x",
        "src_y",
        "dst_x",
        "dst_y",
        "motion_x",
        "motion_y",
        "motion_scale",
    ])?;
    let mut types_csv = csv::Writer::from_path(&types_path)
        .with_context(|| format!("creating {}", types_path.display()))?;
    types_csv.write_record(["frame", "pict_type"])?;

    let pipeline = gst::parse::launch(
        "filesrc name=src ! parsebin ! vssdec name=dec ! appsink name=sink sync=false",
    )?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline.by_name("src").context("no filesrc")?;
    src.set_property("location", args.input.to_string_lossy().as_ref());
    pipeline
        .by_name("dec")
        .context("no vssdec")?
        .set_property("max-threads", args.threads as i32);
    let sink = pipeline
        .by_name("sink")
        .context("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow::anyhow!("not an appsink"))?;

    let result = dump(&args, &pipeline, &sink, &mut vectors_csv, &mut types_csv);
    pipeline.set_state(gst::State::Null)?;
    let (frames, vectors) = result?;
    vectors_csv.flush()?;
    types_csv.flush()?;
    eprintln!(
        "{frames} frames, {vectors} vectors -> {} and {}",
        args.output.display(),
        types_path.display()
    );
    Ok(())
}

type CsvOut = csv::Writer<std::fs::File>;

/// Plays the pipeline to the end, writing rows as frames arrive; returns (frames, vectors).
fn dump(
    args: &Args,
    pipeline: &gst::Pipeline,
    sink: &gst_app::AppSink,
    vectors_csv: &mut CsvOut,
    types_csv: &mut CsvOut,
) -> Result<(u64, u64)> {
    pipeline.set_state(gst::State::Paused)?;
    let bus = pipeline.bus().context("pipeline without bus")?;
    // Wait for preroll so the duration is known for the progress bar.
    if let Some(msg) = bus.timed_pop_filtered(
        gst::ClockTime::NONE,
        &[gst::MessageType::AsyncDone, gst::MessageType::Error],
    ) && let gst::MessageView::Error(err) = msg.view()
    {
        bail!("{}: {}", args.input.display(), err.error());
    }
    let duration = pipeline.query_duration::<gst::ClockTime>();
    let bar = match duration {
        Some(d) => ProgressBar::new(d.mseconds()).with_style(ProgressStyle::with_template(
            "{bar:40} {percent:>3}% {msg} [{elapsed_precise}<{eta}]",
        )?),
        None => ProgressBar::new_spinner(),
    };
    pipeline.set_state(gst::State::Playing)?;

    let mut frames = 0u64;
    let mut vectors = 0u64;
    loop {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            if sink.is_eos() {
                break;
            }
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(err) = msg.view()
            {
                bail!("{}: {}", args.input.display(), err.error());
            }
            continue;
        };
        let buffer = sample.buffer().context("sample without buffer")?;
        let meta = buffer
            .meta::<MotionMeta>()
            .context("vssdec output without motion meta")?;
        let frame = frames.to_string();
        types_csv.write_record([frame.as_str(), &meta.picture_type().as_char().to_string()])?;
        for mv in meta.vectors() {
            vectors_csv.write_record([
                frame.clone(),
                mv.source.to_string(),
                mv.w.to_string(),
                mv.h.to_string(),
                mv.src_x.to_string(),
                mv.src_y.to_string(),
                mv.dst_x.to_string(),
                mv.dst_y.to_string(),
                mv.motion_x.to_string(),
                mv.motion_y.to_string(),
                mv.motion_scale.to_string(),
            ])?;
        }
        frames += 1;
        vectors += meta.vectors().len() as u64;
        if let Some(pts) = buffer.pts() {
            bar.set_position(pts.mseconds());
        }
        bar.set_message(format!("{frames} frames"));
    }
    bar.finish_and_clear();
    Ok((frames, vectors))
}

fn types_path(output: &Path) -> PathBuf {
    let stem = output.file_stem().unwrap_or_default().to_string_lossy();
    output.with_file_name(format!("{stem}.types.csv"))
}
