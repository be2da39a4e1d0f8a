//! Decoding a clip to nothing, timed, and the scaled re-encodes of the shipped clip that the
//! benchmarks run on. Shared by the bench_decode and report examples.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

/// The clip every benchmark starts from (examples/data/README.md has its source).
pub fn shipped_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/highway_dashcam_960x540.mp4")
}

/// Decodes `input` once through `filesrc ! qtdemux ! h264parse ! <decoder> ! fakesink`;
/// returns (seconds, frames).
pub fn decode_once(input: &Path, decoder: &str) -> Result<(f64, u64)> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! {decoder} ! fakesink name=sink sync=false",
        input.display()
    ))?;
    let sink = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .map_err(|_| anyhow!("not a bin"))?
        .by_name("sink")
        .context("no sink")?;
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    sink.static_pad("sink").context("no sink pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            c.fetch_add(1, Ordering::Relaxed);
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
            gst::MessageView::Error(e) => Err(anyhow!("{decoder}: {}", e.error())),
            _ => unreachable!(),
        },
        None => Err(anyhow!("{decoder}: no EOS within 600 s")),
    };
    let secs = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    result?;
    Ok((secs, counter.load(Ordering::Relaxed)))
}

/// The shipped clip re-encoded at `width` x `height` (scaled, aspect not kept), made once under
/// .cache/bench/ with deterministic x264 settings (GOP 30, no B-frames, one thread).
pub fn scaled_clip(width: u32, height: u32) -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join(format!(".cache/bench/dashcam_{width}x{height}.mp4"));
    if out.exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(out.parent().context("no parent")?)?;
    let tmp = out.with_extension("part");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! videoscale \
         ! video/x-raw,width={width},height={height},pixel-aspect-ratio=1/1 \
         ! x264enc speed-preset=medium key-int-max=30 bframes=0 threads=1 ! mp4mux \
         ! filesink location=\"{}\"",
        shipped_clip().display(),
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
        Some(gst::MessageView::Error(e)) => {
            bail!("encoding {}: {}", out.display(), e.error())
        }
        _ => bail!("encoding {} timed out", out.display()),
    }
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(out)
}
