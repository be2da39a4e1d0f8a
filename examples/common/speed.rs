//! Timing vsssegment on a clip: frames per second through `vssdec [! vsssegment] ! fakesink`, the
//! time each buffer spends inside vsssegment, and a bare forward loop of the bundle for the floor.
//! Shared by the bench_segment and report examples.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use gstvss::model::{Bundle, parse_device};

/// One pass over a clip.
pub struct PipelineRun {
    /// Seconds from PLAYING to EOS (or to the last frame counted when stopping early).
    pub wall: f64,
    /// Frames that reached the sink after preroll.
    pub frames: usize,
    /// Milliseconds each buffer spent inside vsssegment (sink pad to src pad); empty without it.
    pub latencies_ms: Vec<f64>,
}

impl PipelineRun {
    pub fn fps(&self) -> f64 {
        self.frames as f64 / self.wall.max(1e-9)
    }
}

/// Milliseconds each buffer spends inside `element` (sink pad to src pad, matched by PTS),
/// appended as buffers leave it.
fn time_buffers(element: &gst::Element) -> Result<Arc<Mutex<Vec<f64>>>> {
    let entered: Arc<Mutex<HashMap<Option<gst::ClockTime>, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let e = entered.clone();
    element.static_pad("sink").context("sink pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if let Some(b) = info.buffer() {
                e.lock().unwrap().insert(b.pts(), Instant::now());
            }
            gst::PadProbeReturn::Ok
        },
    );
    let l = latencies.clone();
    element.static_pad("src").context("src pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if let Some(b) = info.buffer()
                && let Some(t) = entered.lock().unwrap().remove(&b.pts())
            {
                l.lock().unwrap().push(t.elapsed().as_secs_f64() * 1e3);
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(latencies)
}

/// Plays `input` through `filesrc ! qtdemux ! h264parse ! vssdec [! vsssegment <segment>] !
/// fakesink`, timing each buffer inside vsssegment. `segment` is vsssegment's properties
/// (`model=... mode=...`); `None` decodes only. With `max_frames`, stops after that many frames
/// past preroll. The bundle loads before the clock starts.
pub fn run_pipeline(
    input: &Path,
    segment: Option<&str>,
    max_frames: Option<usize>,
) -> Result<PipelineRun> {
    let chain = match segment {
        Some(props) => format!("vsssegment name=seg {props} ! "),
        None => String::new(),
    };
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! vssdec ! {chain}fakesink name=sink sync=false",
        input.display()
    ))?;
    let bin = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .map_err(|_| anyhow!("not a bin"))?;
    let latencies = match bin.by_name("seg") {
        Some(seg) => time_buffers(&seg)?,
        None => Arc::default(),
    };
    // Counts frames at the sink; past `limit` (set once prerolled) it notes when the last
    // counted frame arrived and asks the main thread to stop.
    let frames = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(AtomicUsize::new(usize::MAX));
    let last_counted: Arc<Mutex<Option<Instant>>> = Arc::default();
    let sink = bin.by_name("sink").context("sink")?;
    {
        let (f, lim, last) = (frames.clone(), limit.clone(), last_counted.clone());
        let sink_weak = sink.downgrade();
        sink.static_pad("sink").context("sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                let lim = lim.load(Ordering::Relaxed);
                let n = f.load(Ordering::Relaxed);
                if n >= lim {
                    return gst::PadProbeReturn::Drop;
                }
                f.store(n + 1, Ordering::Relaxed);
                if n + 1 == lim {
                    *last.lock().unwrap() = Some(Instant::now());
                    if let Some(sink) = sink_weak.upgrade() {
                        let _ = sink.post_message(
                            gst::message::Application::builder(gst::Structure::new_empty(
                                "vss-bench-done",
                            ))
                            .src(&sink)
                            .build(),
                        );
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    // Load the bundle (READY->PAUSED) before the clock starts.
    pipeline.set_state(gst::State::Paused)?;
    let bus = pipeline.bus().context("bus")?;
    if let Some(msg) = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::AsyncDone, gst::MessageType::Error],
    ) && let gst::MessageView::Error(e) = msg.view()
    {
        pipeline.set_state(gst::State::Null)?;
        bail!("{}: {}", input.display(), e.error());
    }
    let preroll_frames = frames.load(Ordering::Relaxed);
    if let Some(max) = max_frames {
        limit.store(preroll_frames + max.max(1), Ordering::Relaxed);
    }
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(1200),
        &[
            gst::MessageType::Eos,
            gst::MessageType::Error,
            gst::MessageType::Application,
        ],
    );
    let stopped = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    let wall = match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => stopped,
        Some(gst::MessageView::Application(_)) => last_counted
            .lock()
            .unwrap()
            .map_or(stopped, |t| (t - start).as_secs_f64()),
        Some(gst::MessageView::Error(e)) => bail!("{}: {}", input.display(), e.error()),
        _ => bail!("{}: no EOS within 1200 s", input.display()),
    };
    let mut latencies_ms = std::mem::take(&mut *latencies.lock().unwrap());
    if preroll_frames > 0 && latencies_ms.len() > preroll_frames {
        // The prerolled frame went through vsssegment before the clock started.
        latencies_ms.drain(..preroll_frames);
    }
    let counted = frames.load(Ordering::Relaxed) - preroll_frames;
    latencies_ms.truncate(counted);
    Ok(PipelineRun {
        wall,
        frames: counted,
        latencies_ms,
    })
}

/// Every decoded frame of `input` (vssdec, motion meta attached) and their caps, in memory: the
/// input of [`run_element`].
pub fn decode_all(input: &Path) -> Result<(gst::Caps, Vec<gst::Buffer>)> {
    let (pipeline, sink) = launch::<gst_app::AppSink>(
        &format!(
            "filesrc location=\"{}\" ! qtdemux ! h264parse ! vssdec ! appsink name=end sync=false",
            input.display()
        ),
        "end",
    )?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        let error = posted_error(&pipeline);
        let _ = pipeline.set_state(gst::State::Null);
        let why = error.unwrap_or_else(|| "the decoding pipeline did not start".into());
        bail!("{}: {why}", input.display());
    }
    let mut caps = None;
    let mut buffers = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        caps.get_or_insert_with(|| sample.caps_owned());
        buffers.push(sample.buffer_owned().context("a sample without a buffer")?);
    }
    let error = posted_error(&pipeline);
    pipeline.set_state(gst::State::Null)?;
    if let Some(why) = error {
        bail!("{}: {why}", input.display());
    }
    let caps = caps
        .flatten()
        .with_context(|| format!("{}: no frame decoded", input.display()))?;
    Ok((caps, buffers))
}

/// The pipeline `description` and its element named `name`, as a `T` (the app end).
fn launch<T: IsA<gst::Element>>(description: &str, name: &str) -> Result<(gst::Pipeline, T)> {
    let pipeline = gst::parse::launch(description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline: {description}"))?;
    let end = pipeline
        .by_name(name)
        .with_context(|| format!("no element {name} in {description}"))?
        .downcast::<T>()
        .map_err(|_| anyhow!("{name} has another type than expected"))?;
    Ok((pipeline, end))
}

/// The first error message `pipeline` posted, if any.
fn posted_error(pipeline: &gst::Pipeline) -> Option<String> {
    let message = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(e) => Some(e.error().to_string()),
        _ => None,
    }
}

/// vsssegment alone: `buffers` (from [`decode_all`]) pushed from an appsrc through
/// `vsssegment {props}` into a fakesink, one at a time, so that no decoder shares the CPU
/// with the element. Latency as in [`run_pipeline`]; wall time from the first push to EOS.
pub fn run_element(caps: &gst::Caps, buffers: &[gst::Buffer], props: &str) -> Result<PipelineRun> {
    let (pipeline, src) = launch::<gst_app::AppSrc>(
        &format!(
            "appsrc name=end format=time block=true max-buffers=1 ! vsssegment name=seg {props} \
             ! fakesink sync=false"
        ),
        "end",
    )?;
    src.set_caps(Some(caps));
    let latencies = time_buffers(&pipeline.by_name("seg").context("vsssegment")?)?;
    pipeline.set_state(gst::State::Playing)?;
    let start = Instant::now();
    for buffer in buffers {
        // A shallow copy: the frame's memory is shared, the metas are the copy's own, so the
        // element writes its meta without copying pixels and the next run gets clean buffers.
        let copy = buffer.copy();
        if src.push_buffer(copy).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    let bus = pipeline.bus().context("bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(1200),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let wall = start.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("vsssegment {props}: {}", e.error()),
        _ => bail!("vsssegment {props}: no EOS within 1200 s"),
    }
    let latencies_ms = std::mem::take(&mut *latencies.lock().unwrap());
    Ok(PipelineRun {
        wall,
        frames: latencies_ms.len(),
        latencies_ms,
    })
}

/// Per-call milliseconds of the bundle's forward at its native size, after its warm-up; on
/// the libtorch executor thread, where the element's inference runs too.
pub fn bare_forward(model: &str, iterations: usize) -> Result<Vec<f64>> {
    bare_forward_scaled(model, 1.0, iterations)
}

/// Per-call milliseconds of an `arseg` bundle's non-keyframe branch as `fusion` runs it: the
/// keyframe features warped along a grid (`warp`), then `nonkeyframe` on the frame at the
/// bundle's low-res scale; after one keyframe call, on the libtorch executor thread.
pub fn bare_nonkeyframe(model: &str, iterations: usize) -> Result<Vec<f64>> {
    gstvss::model::executor::run(|| {
        let bundle = Bundle::load(model, parse_device("cpu")?)?;
        let manifest = bundle.manifest();
        let (h, w) = manifest.native_size();
        let (lh, lw) = manifest.scaled_size(bundle.lowres_scale());
        let rgb = |h: u32, w: u32| {
            tch::Tensor::randint(
                256,
                [1, i64::from(h), i64::from(w), 3],
                (tch::Kind::Uint8, tch::Device::Cpu),
            )
            .permute([0, 3, 1, 2])
        };
        let (image, image_lr) = (rgb(h, w), rgb(lh, lw));
        let (_, features) = bundle.keyframe(&image)?;
        let (fh, fw) = bundle.feature_size(h, w);
        // A grid that moves every position a little (the identity plus a shift).
        let grid: Vec<f32> = (0..(fh * fw) as usize)
            .flat_map(|i| {
                let (y, x) = ((i / fw as usize) as f32, (i % fw as usize) as f32);
                [(2.0 * x + 1.5) / fw as f32 - 1.0, (2.0 * y + 1.25) / fh as f32 - 1.0]
            })
            .collect();
        let mut out = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            let warped = bundle.warp_features(&features, &grid)?;
            let _ = bundle.nonkeyframe(&image_lr, &warped)?;
            out.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(out)
    })
}

/// [`bare_forward`] on an input scaled by `scale` per side, as `lowres` runs it.
pub fn bare_forward_scaled(model: &str, scale: f64, iterations: usize) -> Result<Vec<f64>> {
    gstvss::model::executor::run(|| bare_forward_here(model, scale, iterations))
}

fn bare_forward_here(model: &str, scale: f64, iterations: usize) -> Result<Vec<f64>> {
    let bundle = Bundle::load(model, parse_device("cpu")?)?;
    let manifest = bundle.manifest();
    let (h, w) = if scale == 1.0 {
        manifest.native_size()
    } else {
        manifest.scaled_size(scale)
    };
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
