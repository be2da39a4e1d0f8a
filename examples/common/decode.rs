//! Decoding a clip to nothing, timed, and the re-encodes of the shipped clip that the decode
//! benchmarks run on. Shared by the bench_decode and report examples.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

/// The clip every benchmark starts from (examples/data/README.md has its source).
pub fn shipped_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/highway_dashcam_960x540.mp4")
}

/// One timed decode of a clip.
pub struct DecodeRun {
    pub frames: u64,
    /// Seconds from PLAYING to EOS: start-up (opening, parsing, thread start) included.
    pub total: f64,
    /// Seconds from the first buffer at the sink to the last: the steady state, with start-up
    /// and the decoder's first fill left out.
    pub steady: f64,
    /// CPU seconds (user + system, all threads of this process) over the same span: what the
    /// decode costs whatever else the machine runs.
    pub steady_cpu: f64,
}

impl DecodeRun {
    /// Milliseconds per frame in the steady state: `frames - 1` intervals.
    pub fn per_frame_ms(&self) -> f64 {
        self.steady * 1e3 / self.intervals()
    }

    /// CPU milliseconds per frame in the steady state.
    pub fn cpu_per_frame_ms(&self) -> f64 {
        self.steady_cpu * 1e3 / self.intervals()
    }

    fn intervals(&self) -> f64 {
        self.frames.saturating_sub(1).max(1) as f64
    }
}

/// CPU seconds this process has used so far, all threads.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Decodes `input` once through `filesrc ! qtdemux ! h264parse ! <decoder> ! fakesink`, timing
/// the whole run and the buffers' arrival at the sink.
pub fn decode_once(input: &Path, decoder: &str) -> Result<DecodeRun> {
    decode_into(input, decoder, "fakesink")
}

/// [`decode_once`] into `sink` (e.g. `fakevideosink`, which reads GstVideoMeta as display
/// sinks do, so decoders may hand out their own pictures uncopied).
pub fn decode_into(input: &Path, decoder: &str, sink: &str) -> Result<DecodeRun> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! {decoder} ! {sink} name=sink sync=false",
        input.display()
    ))?;
    let sink = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .map_err(|_| anyhow!("not a bin"))?
        .by_name("sink")
        .context("no sink")?;
    // (frames, first arrival, last arrival), each arrival as (wall, process CPU seconds).
    type Arrival = Option<(Instant, f64)>;
    let arrivals: Arc<Mutex<(u64, Arrival, Arrival)>> = Arc::default();
    let a = arrivals.clone();
    sink.static_pad("sink").context("no sink pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            let now = (Instant::now(), process_cpu_seconds());
            let mut a = a.lock().unwrap();
            a.0 += 1;
            a.1.get_or_insert(now);
            a.2 = Some(now);
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
    let total = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    result?;
    let (frames, first, last) = *arrivals.lock().unwrap();
    let (steady, steady_cpu) = match (first, last) {
        (Some(f), Some(l)) => ((l.0 - f.0).as_secs_f64(), l.1 - f.1),
        _ => bail!("{decoder}: no frame reached the sink"),
    };
    Ok(DecodeRun {
        frames,
        total,
        steady,
        steady_cpu,
    })
}

/// The shipped clip re-encoded at `width` x `height` (scaled, aspect not kept) with `x264`
/// settings, made once under .cache/bench/ as `name`. One encoder thread and fixed settings
/// make the file the same on every machine.
pub fn reencoded_clip(name: &str, width: u32, height: u32, x264: &str) -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join(".cache/bench").join(name);
    if out.exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(out.parent().context("no parent")?)?;
    let tmp = out.with_extension("part");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! videoscale \
         ! video/x-raw,width={width},height={height},pixel-aspect-ratio=1/1 \
         ! x264enc threads=1 {x264} ! mp4mux ! filesink location=\"{}\"",
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

/// The shipped clip re-encoded at `width` x `height`: GOP 30, no B-frames.
pub fn scaled_clip(width: u32, height: u32) -> Result<PathBuf> {
    reencoded_clip(
        &format!("dashcam_{width}x{height}.mp4"),
        width,
        height,
        "speed-preset=medium key-int-max=30 bframes=0",
    )
}

/// 1280x720 H.264 High profile with two B-frames between references (GOP 60): the kind of
/// stream where frame threading and B-frame vectors cost the most.
pub fn high_profile_bframes_clip() -> Result<PathBuf> {
    reencoded_clip(
        "dashcam_1280x720_high_b2.mp4",
        1280,
        720,
        "speed-preset=medium key-int-max=60 bframes=2 b-adapt=false ref=3 \
         ! video/x-h264,profile=high",
    )
}
