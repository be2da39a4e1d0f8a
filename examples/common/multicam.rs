//! Many live cameras in one process: N streams of a camera-like H.264 source, each
//! `h264parse ! vssdec ! vsssegment ! fakesink`, paced at the camera's frame rate, measured per
//! stream (latency, drops) and as a whole (CPU, memory), and the search for the most streams
//! that keep real time. Shared by the multicam and report examples and tests/multicam.rs.
//!
//! The camera: the shipped clip scaled to the stream's size, rated to its frame rate and encoded
//! once by x264 as a camera would (no B-frames, one reference, an IDR every 2 s, zerolatency),
//! kept in memory as access units. Each stream pushes them from an `appsrc is-live=true` at the
//! instant a camera would have captured them (stream i starts i/N of a keyframe period and of a
//! frame after stream 0, at a different IDR of the clip) and loops the clip with timestamps
//! going on. A frame's PTS is its capture instant as pipeline running time, so its latency is
//! the running time when it reaches the sink minus its PTS: queueing, decode and segmentation,
//! and any lateness of the pacing thread itself.
//!
//! Each stream ends in `fakesink sync=false`: a frame's latency is taken where it reaches the
//! sink. A frame later than the latency bound counts as dropped (a display configured for that
//! latency would drop it); a frame captured in the window that never reaches the sink counts as
//! missing. A stream holds real time in a step when, over the measured window, no frame is
//! missing or dropped (so its p99 and max latency are within the bound), no error was posted
//! and vsssegment's QoS never degraded it (`vss-qos` level 0 throughout; with a sink that does
//! not synchronise it gets no QoS events, so this only matters when the description changes).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use serde::{Deserialize, Serialize};

use super::stats::summary;

/// The goal's setting: live 640x360 streams at 15 fps in `warp`, keyframe interval 12, each
/// step 60 s, p99 latency <= 250 ms, no dropped frame, at least 12 streams on the 2-core CPU.
pub const GOAL_STREAMS: usize = 12;
pub const DEFAULT_WIDTH: u32 = 640;
pub const DEFAULT_HEIGHT: u32 = 360;
pub const DEFAULT_FPS: u32 = 15;
pub const DEFAULT_MODE: &str = "warp";
pub const DEFAULT_INTERVAL: u32 = 12;
pub const DEFAULT_SECONDS: f64 = 60.0;
pub const DEFAULT_LATENCY_BOUND_MS: f64 = 250.0;
/// Excluded from the numbers: model loads, the first keyframes, the first latency announcements.
pub const DEFAULT_WARMUP_SECONDS: f64 = 3.0;
/// The `model-instance-id` the shared streams use.
pub const INSTANCE_ID: &str = "multicam";
/// The camera's IDR period in seconds.
const GOP_SECONDS: u32 = 2;
/// The camera's bit rate (kbit/s) at 640x360, scaled with the pixel count for other sizes.
const KBITS_AT_640X360: u64 = 1000;
/// How long the streams get to drain (EOS) after the window, beyond the latency bound.
const DRAIN: Duration = Duration::from_secs(3);

/// The camera's stream, encoded once: H.264 access units in decode order (byte-stream, SPS and
/// PPS before every IDR), without timestamps.
pub struct Camera {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub gop: u32,
    pub kbits: u64,
    units: Vec<gst::Buffer>,
    /// Indices of the IDR access units, where a stream may start.
    idr: Vec<usize>,
}

impl Camera {
    /// Encodes `clip` (any file `decodebin` plays) as a `width` x `height` camera at `fps`.
    pub fn encode(clip: &Path, width: u32, height: u32, fps: u32) -> Result<Camera> {
        if width == 0 || height == 0 || fps == 0 {
            bail!("camera {width}x{height} at {fps} fps: sizes and rate must be positive");
        }
        let gop = GOP_SECONDS * fps;
        let kbits = (KBITS_AT_640X360 * u64::from(width) * u64::from(height) / (640 * 360)).max(64);
        // threads=1: the same access units on every run.
        let description = format!(
            "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! videorate \
             ! video/x-raw,format=I420,width={width},height={height},framerate={fps}/1,\
             pixel-aspect-ratio=1/1 \
             ! x264enc tune=zerolatency speed-preset=veryfast bframes=0 ref=1 \
             key-int-max={gop} bitrate={kbits} threads=1 \
             ! h264parse config-interval=-1 \
             ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! appsink name=units sync=false",
            clip.display()
        );
        let pipeline = gst::parse::launch(&description)
            .with_context(|| format!("camera encoder for {}", clip.display()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the camera encoder is not a pipeline"))?;
        let sink = pipeline
            .by_name("units")
            .context("appsink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| anyhow!("units is not an appsink"))?;
        pipeline
            .set_state(gst::State::Playing)
            .with_context(|| format!("encoding {} as a camera", clip.display()))?;
        let mut units = Vec::new();
        let mut idr = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            let buffer = sample.buffer_owned().context("a sample without a buffer")?;
            if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                idr.push(units.len());
            }
            units.push(buffer);
        }
        let error = pipeline
            .bus()
            .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
                _ => None,
            });
        pipeline.set_state(gst::State::Null)?;
        if let Some(e) = error {
            bail!("encoding {} as a camera: {e}", clip.display());
        }
        if idr.first() != Some(&0) {
            bail!(
                "encoding {}: the camera's first access unit is not an IDR",
                clip.display()
            );
        }
        Ok(Camera {
            width,
            height,
            fps,
            gop,
            kbits,
            units,
            idr,
        })
    }

    /// Seconds before the clip loops.
    pub fn seconds(&self) -> f64 {
        self.units.len() as f64 / f64::from(self.fps)
    }

    pub fn describe(&self) -> String {
        format!(
            "{}x{} at {} fps, x264 zerolatency veryfast, P-only (ref=1, bframes=0), IDR every {} \
             frames, {} kbit/s; {} access units ({:.1} s) looped",
            self.width,
            self.height,
            self.fps,
            self.gop,
            self.kbits,
            self.units.len(),
            self.seconds()
        )
    }

    /// The nanoseconds from a stream's first frame to its frame `k`.
    fn offset_ns(&self, k: u64) -> u64 {
        (u128::from(k) * 1_000_000_000 / u128::from(self.fps)) as u64
    }
}

/// What each stream runs and how a step is judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// vsssegment's `model`; None = its default bundle.
    pub model: Option<String>,
    pub mode: String,
    pub keyframe_interval: u32,
    /// One `model-instance-id` for every stream (one bundle in memory); false = a model each.
    pub share: bool,
    pub async_keyframes: bool,
    /// vsssegment's `threads` (libtorch intra-op threads, process-wide); 0 = one per core.
    #[serde(default)]
    pub threads: u32,
    pub warmup_s: f64,
    /// The measured window of each step.
    pub seconds: f64,
    pub latency_bound_ms: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            mode: DEFAULT_MODE.into(),
            keyframe_interval: DEFAULT_INTERVAL,
            share: true,
            async_keyframes: false,
            threads: 0,
            warmup_s: DEFAULT_WARMUP_SECONDS,
            seconds: DEFAULT_SECONDS,
            latency_bound_ms: DEFAULT_LATENCY_BOUND_MS,
        }
    }
}

impl Settings {
    /// One stream's pipeline after its appsrc. `vssdec max-threads=1`: the streams already keep
    /// both cores busy, and frame threads would hold every picture back a frame per thread.
    pub fn stream_description(&self) -> String {
        let mut segment = format!(
            "vsssegment name=seg mode={} keyframe-policy=interval keyframe-interval={} \
             overlay=none",
            self.mode, self.keyframe_interval
        );
        if let Some(model) = &self.model {
            segment.push_str(&format!(" model={model}"));
        }
        if self.share {
            segment.push_str(&format!(" model-instance-id={INSTANCE_ID}"));
        }
        if self.async_keyframes {
            segment.push_str(" async-keyframes=true");
        }
        if self.threads > 0 {
            segment.push_str(&format!(" threads={}", self.threads));
        }
        format!(
            "h264parse ! vssdec max-threads=1 ! {segment} \
             ! fakesink name=sink sync=false"
        )
    }

    /// A short name: `warp, shared model` and the like.
    pub fn label(&self) -> String {
        format!(
            "{}{}, {}",
            self.mode,
            if self.async_keyframes {
                " (async keyframes)"
            } else {
                ""
            },
            if self.share {
                "one shared model"
            } else {
                "a model per stream"
            }
        ) + &if self.threads > 0 {
            format!(", {} torch thread(s)", self.threads)
        } else {
            String::new()
        }
    }
}

/// Per-frame latency summary, ms.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// One stream over a step's window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStats {
    /// Frames captured in the window.
    pub frames: u64,
    /// Of them, how many reached the sink.
    pub out: u64,
    /// `out` over the window's seconds.
    pub fps: f64,
    pub latency_ms: Option<Latency>,
    /// Frames later than the latency bound (a display configured for it would drop them).
    pub dropped: u64,
    /// Frames captured in the window that never reached the sink.
    pub missing: u64,
    /// The highest `vss-qos` level in the window (0: never degraded).
    pub qos_level: u32,
    /// Errors the pipeline posted.
    pub errors: Vec<String>,
}

impl StreamStats {
    /// Why this stream did not hold real time; empty when it did.
    fn failures(&self, bound_ms: f64) -> Vec<String> {
        let mut why = Vec::new();
        if self.missing > 0 {
            why.push(format!("{} frames missing", self.missing));
        }
        if self.dropped > 0 {
            why.push(format!("{} dropped late", self.dropped));
        }
        match self.latency_ms {
            Some(l) if l.p99 > bound_ms => why.push(format!("p99 {:.0} ms", l.p99)),
            Some(_) => {}
            None => why.push("no frame out".into()),
        }
        if self.qos_level > 0 {
            why.push(format!("QoS degraded to level {}", self.qos_level));
        }
        why.extend(self.errors.iter().map(|e| format!("error: {e}")));
        why
    }
}

/// N streams for one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub streams: usize,
    pub window_s: f64,
    pub per_stream: Vec<StreamStats>,
    /// The process's CPU time over the window's wall time, in % of one core.
    pub cpu_percent: f64,
    pub cores: usize,
    /// VmRSS before the first stream started, after it started (its model loaded), and at the
    /// window's end, MiB.
    pub rss_before_mib: f64,
    pub rss_first_mib: f64,
    pub rss_end_mib: f64,
    /// Bundles loaded through `model-instance-id` during the step (shared: 1).
    pub shared_loads: usize,
    /// How late the pacing thread pushed a frame after its capture instant at worst, ms.
    pub pacing_late_ms: f64,
    pub held: bool,
    /// Why not, per stream that did not hold: `stream 3: p99 312 ms`.
    pub failures: Vec<String>,
}

impl Step {
    /// The CPU share per stream, % of one core.
    pub fn cpu_per_stream(&self) -> f64 {
        self.cpu_percent / self.streams.max(1) as f64
    }

    /// RSS added by each stream beyond the first, MiB (None for one stream).
    pub fn rss_per_stream_mib(&self) -> Option<f64> {
        (self.streams > 1)
            .then(|| (self.rss_end_mib - self.rss_first_mib) / (self.streams - 1) as f64)
    }

    /// The worst stream's numbers: (lowest fps, highest p50, p99 and max latency, dropped and
    /// missing in total).
    pub fn worst(&self) -> (f64, Option<Latency>, u64, u64) {
        let fps = self
            .per_stream
            .iter()
            .map(|s| s.fps)
            .fold(f64::INFINITY, f64::min);
        let latency = self
            .per_stream
            .iter()
            .filter_map(|s| s.latency_ms)
            .reduce(|a, b| Latency {
                mean: a.mean.max(b.mean),
                p50: a.p50.max(b.p50),
                p99: a.p99.max(b.p99),
                max: a.max.max(b.max),
            });
        let dropped = self.per_stream.iter().map(|s| s.dropped).sum();
        let missing = self.per_stream.iter().map(|s| s.missing).sum();
        (fps, latency, dropped, missing)
    }

    /// One line: `12 streams: held, worst p99 143 ms, ...`.
    pub fn summary_line(&self) -> String {
        let (fps, latency, dropped, missing) = self.worst();
        let lat = latency.map_or("no latency".into(), |l| {
            format!(
                "latency p50 {:.0} / p99 {:.0} / max {:.0} ms (worst stream each)",
                l.p50, l.p99, l.max
            )
        });
        format!(
            "{} streams: {}; lowest {fps:.2} fps, {lat}, {dropped} dropped, {missing} missing; \
             CPU {:.0}% of one core ({:.1}% per stream, {} cores); RSS {:.0} MiB{}",
            self.streams,
            if self.held { "held" } else { "NOT held" },
            self.cpu_percent,
            self.cpu_per_stream(),
            self.cores,
            self.rss_end_mib,
            self.rss_per_stream_mib()
                .map_or(String::new(), |r| format!(" (+{r:.1} MiB per stream)"))
        )
    }
}

/// A stream while it runs.
struct Stream {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// (PTS ns, latency ms) per frame at the sink.
    arrivals: Arc<Mutex<Vec<(u64, f64)>>>,
    /// The running time of its frame 0, ns.
    run0: u64,
    /// When its frame 0 is captured.
    start: Instant,
    /// Its first access unit in the camera's.
    first_unit: usize,
    /// (instant, level) per `vss-qos` message.
    qos: Vec<(Instant, u32)>,
    errors: Vec<String>,
    eos: bool,
}

impl Stream {
    fn new(settings: &Settings, n: usize) -> Result<Stream> {
        let description = format!(
            "appsrc name=src is-live=true format=time do-timestamp=false \
             caps=video/x-h264,stream-format=byte-stream,alignment=au ! {}",
            settings.stream_description()
        );
        let pipeline = gst::parse::launch(&description)
            .with_context(|| format!("stream {n}: {description}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("stream {n}: not a pipeline"))?;
        let src = pipeline
            .by_name("src")
            .context("appsrc")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| anyhow!("src is not an appsrc"))?;
        let sink = pipeline.by_name("sink").context("sink")?;
        let arrivals: Arc<Mutex<Vec<(u64, f64)>>> = Arc::default();
        let a = arrivals.clone();
        let weak = pipeline.downgrade();
        sink.static_pad("sink").context("sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(pts) = info.buffer().and_then(|b| b.pts())
                    && let Some(now) = weak.upgrade().and_then(|p| p.current_running_time())
                {
                    let ms = (now.nseconds() as f64 - pts.nseconds() as f64) / 1e6;
                    a.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((pts.nseconds(), ms));
                }
                gst::PadProbeReturn::Ok
            },
        );
        // One clock for all, so that their running times and the pacing thread agree.
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        Ok(Stream {
            pipeline,
            src,
            arrivals,
            run0: 0,
            start: Instant::now(),
            first_unit: 0,
            qos: Vec::new(),
            errors: Vec::new(),
            eos: false,
        })
    }

    /// Reads the bus: recalculates the latency when asked, notes errors, QoS steps and EOS.
    fn poll(&mut self) {
        let Some(bus) = self.pipeline.bus() else {
            return;
        };
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => self.errors.push(format!(
                    "{}{}",
                    e.error(),
                    e.debug().map_or(String::new(), |d| format!(" ({d})"))
                )),
                gst::MessageView::Latency(_) => {
                    let _ = self.pipeline.recalculate_latency();
                }
                gst::MessageView::Eos(_) => self.eos = true,
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "vss-qos")
                        && let Ok(level) = s.get::<u32>("level")
                    {
                        self.qos.push((Instant::now(), level));
                    }
                }
                _ => {}
            }
        }
    }

    /// The highest QoS level in force at any time in `from..`.
    fn qos_level_since(&self, from: Instant) -> u32 {
        let before = self
            .qos
            .iter()
            .rfind(|(t, _)| *t < from)
            .map_or(0, |(_, l)| *l);
        self.qos
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, l)| *l)
            .fold(before, u32::max)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// What the pacing thread feeds one stream.
struct Feed {
    src: gst_app::AppSrc,
    start: Instant,
    run0: u64,
    first_unit: usize,
    next: u64,
}

/// Pushes every stream's frames at their capture instants until `stop`; returns how late it
/// pushed one at worst.
fn pace(camera: &Camera, mut feeds: Vec<Feed>, stop: Instant) -> Duration {
    let mut worst = Duration::ZERO;
    let frame_ns = camera.offset_ns(1);
    loop {
        let Some((i, due)) = feeds
            .iter()
            .enumerate()
            .map(|(i, f)| (i, f.start + Duration::from_nanos(camera.offset_ns(f.next))))
            .filter(|(_, due)| *due < stop)
            .min_by_key(|(_, due)| *due)
        else {
            return worst;
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            worst = worst.max(now - due);
        }
        let feed = &mut feeds[i];
        let unit = &camera.units[(feed.first_unit + feed.next as usize) % camera.units.len()];
        let mut buffer = unit.copy();
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(
                feed.run0 + camera.offset_ns(feed.next),
            ));
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
            if feed.next == 0 {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        // A stream that stopped (an error) drops out; the others go on.
        if feed.src.push_buffer(buffer).is_err() {
            feeds.swap_remove(i);
            continue;
        }
        feed.next += 1;
    }
}

/// Process CPU time (user + system).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// This process's resident memory, MiB.
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `n` streams: starts them one after another, warms up, measures a window of
/// `settings.seconds`, drains and stops them.
pub fn run_step(camera: &Camera, settings: &Settings, n: usize) -> Result<Step> {
    if n == 0 {
        bail!("a step needs at least one stream");
    }
    let loads_before = gstvss::model::instances::loads(INSTANCE_ID);
    let rss_before_mib = rss_mib();
    let mut streams = Vec::with_capacity(n);
    let mut rss_first_mib = f64::NAN;
    for i in 0..n {
        let mut stream = Stream::new(settings, i)?;
        // READY->PAUSED loads (or joins) the model; a live source does not preroll.
        if stream.pipeline.set_state(gst::State::Playing).is_err() {
            stream.poll();
            bail!(
                "stream {i} did not start: {}",
                stream
                    .errors
                    .first()
                    .map_or("no error posted", |e| e.as_str())
            );
        }
        if i == 0 {
            rss_first_mib = rss_mib();
        }
        streams.push(stream);
    }
    let clock = gst::SystemClock::obtain();
    // Capture starts once every pipeline plays; stream i is i/N of a keyframe period (plus i/N
    // of a frame) behind stream 0, so that neither the first keyframes nor the frames of all
    // streams arrive at once, as with cameras started one by one.
    let lead = Duration::from_millis(100);
    let (now, clock_now) = (Instant::now(), clock.time().nseconds());
    let t0 = now + lead;
    let frame = Duration::from_nanos(camera.offset_ns(1));
    let spread = frame * (settings.keyframe_interval + 1);
    let mut feeds = Vec::with_capacity(n);
    for (i, stream) in streams.iter_mut().enumerate() {
        let base = stream
            .pipeline
            .base_time()
            .with_context(|| format!("stream {i}: no base time while playing"))?;
        stream.start = t0 + spread * i as u32 / n as u32;
        let at_clock = clock_now + (stream.start - now).as_nanos() as u64;
        stream.run0 = at_clock
            .checked_sub(base.nseconds())
            .context("the clock is behind a pipeline's base time")?;
        stream.first_unit = camera.idr[i % camera.idr.len()];
        feeds.push(Feed {
            src: stream.src.clone(),
            start: stream.start,
            run0: stream.run0,
            first_unit: stream.first_unit,
            next: 0,
        });
    }
    let window_start = t0 + Duration::from_secs_f64(settings.warmup_s);
    let window_end = window_start + Duration::from_secs_f64(settings.seconds);
    let (pacing_late, sampled) = std::thread::scope(|scope| {
        let pacer = scope.spawn(|| pace(camera, feeds, window_end));
        // At the window's start: the instant and the CPU time.
        let mut sampled = None;
        while Instant::now() < window_end {
            for s in streams.iter_mut() {
                s.poll();
            }
            if sampled.is_none() && Instant::now() >= window_start {
                sampled = Some((Instant::now(), cpu_time()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (pacer.join(), sampled)
    });
    let pacing_late = pacing_late.map_err(|_| anyhow!("the pacing thread panicked"))?;
    let (cpu_from, cpu_start) = sampled.context("the window never started")?;
    let wall = cpu_from.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_start);
    let rss_end_mib = rss_mib();
    let cpu_percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9);

    for s in &streams {
        let _ = s.src.end_of_stream();
    }
    let drain_until =
        Instant::now() + DRAIN + Duration::from_secs_f64(settings.latency_bound_ms.max(0.0) / 1e3);
    while Instant::now() < drain_until && streams.iter().any(|s| !s.eos && s.errors.is_empty()) {
        for s in streams.iter_mut() {
            s.poll();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let window_s = settings.seconds;
    let frame_ns = camera.offset_ns(1);
    let mut per_stream = Vec::with_capacity(n);
    for s in &streams {
        // The frames captured in the window: k with start + k/fps in [window_start, window_end).
        let captured = |k: u64| s.start + Duration::from_nanos(camera.offset_ns(k));
        let first = (0..).find(|&k| captured(k) >= window_start).unwrap_or(0);
        let end = (first..)
            .find(|&k| captured(k) >= window_end)
            .unwrap_or(first);
        let arrivals = s.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        let mut latencies = Vec::new();
        for &(pts, ms) in arrivals.iter() {
            let Some(since) = pts.checked_sub(s.run0) else {
                continue;
            };
            let k = (since + frame_ns / 2) / frame_ns;
            if (first..end).contains(&k) && seen.insert(k) {
                latencies.push(ms);
            }
        }
        let frames = end - first;
        let out = seen.len() as u64;
        let latency_ms = (!latencies.is_empty()).then(|| {
            let (mean, p50, p99, max) = summary(&latencies);
            Latency {
                mean,
                p50,
                p99,
                max,
            }
        });
        per_stream.push(StreamStats {
            frames,
            out,
            fps: out as f64 / window_s,
            latency_ms,
            dropped: latencies
                .iter()
                .filter(|&&ms| ms > settings.latency_bound_ms)
                .count() as u64,
            missing: frames - out,
            qos_level: s.qos_level_since(window_start),
            errors: s.errors.clone(),
        });
    }
    drop(streams);
    let failures: Vec<String> = per_stream
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let why = s.failures(settings.latency_bound_ms);
            (!why.is_empty()).then(|| format!("stream {i}: {}", why.join(", ")))
        })
        .collect();
    Ok(Step {
        streams: n,
        window_s,
        per_stream,
        cpu_percent,
        cores: std::thread::available_parallelism().map_or(0, |c| c.get()),
        rss_before_mib,
        rss_first_mib,
        rss_end_mib,
        shared_loads: gstvss::model::instances::loads(INSTANCE_ID) - loads_before,
        pacing_late_ms: pacing_late.as_secs_f64() * 1e3,
        held: failures.is_empty(),
        failures,
    })
}

/// Where a search for the most streams starts and how far it may go.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub start: usize,
    pub max: usize,
}

/// A search for the most streams that hold real time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Search {
    pub settings: Settings,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The camera's encoding ([`Camera::describe`]).
    pub camera: String,
    pub limits: Limits,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// The most streams that held below the fewest that did not (0: even the fewest tried
    /// did not).
    pub held: usize,
    /// `held` is the limit: more might hold.
    pub capped: bool,
}

/// The share of the cores a search fills before it expects a stream to fall behind, for its
/// guess of the next count from a step's CPU time.
const CPU_TARGET: f64 = 0.85;

impl Search {
    /// The step that held at `held` streams (the last one run at that count).
    pub fn held_step(&self) -> Option<&Step> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.held && s.streams == self.held)
    }

    /// The step that did not hold at the fewest streams.
    pub fn failed_step(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| !s.held)
            .min_by_key(|s| s.streams)
    }

    /// `held N streams: ...`, the search's one-line result.
    pub fn result_line(&self) -> String {
        let s = &self.settings;
        let mut line = format!(
            "held {} streams: {}, {}x{} at {} fps, interval {}, {:.0} s per step, p99 <= {:.0} \
             ms, no dropped or missing frame",
            self.held,
            s.label(),
            self.width,
            self.height,
            self.fps,
            s.keyframe_interval,
            s.seconds,
            s.latency_bound_ms
        );
        if let Some(step) = self.held_step() {
            let (_, latency, _, _) = step.worst();
            line.push_str(&format!(
                "; at {}: worst p99 {} ms, CPU {:.1}% of a core per stream{}",
                step.streams,
                latency.map_or("—".into(), |l| format!("{:.0}", l.p99)),
                step.cpu_per_stream(),
                step.rss_per_stream_mib()
                    .map_or(String::new(), |r| format!(", +{r:.1} MiB RSS per stream"))
            ));
        }
        if self.capped {
            line.push_str(&format!(
                "; the search's limit ({}), more may hold",
                self.limits.max
            ));
        } else if let Some(step) = self.failed_step() {
            line.push_str(&format!(
                "; {} did not ({})",
                step.streams,
                step.failures.first().map_or("", |f| f.as_str())
            ));
        }
        line
    }
}

/// What a search does after its steps so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Try(usize),
    /// The most streams that held below the fewest that did not; `capped`: that is the limit.
    Done {
        held: usize,
        capped: bool,
    },
}

/// The search's rule, given each step so far as (streams, held, share of all cores the process
/// used): until a count fails, try the count that would fill [`CPU_TARGET`] of the cores at the
/// most-held step's CPU time per stream (at least one more, at most 4x, at most `max`); after,
/// halve the gap between the most that held and the fewest that failed. A count that held
/// above one that failed is noise: the fewest failing bounds the result.
pub fn next_count(tried: &[(usize, bool, f64)], max: usize) -> Next {
    let max = max.max(1);
    let fail = tried.iter().filter(|t| !t.1).map(|t| t.0).min();
    let best = tried
        .iter()
        .filter(|t| t.1 && fail.is_none_or(|f| t.0 < f))
        .max_by_key(|t| t.0);
    let lo = best.map_or(0, |t| t.0);
    match (fail, best) {
        (None, _) if lo >= max => Next::Done {
            held: lo,
            capped: true,
        },
        (None, Some(&(_, _, used))) => {
            let guess = if used > 0.0 {
                (lo as f64 * CPU_TARGET / used).floor() as usize
            } else {
                2 * lo
            };
            Next::Try(guess.min(4 * lo).min(max).max(lo + 1))
        }
        (None, None) => Next::Try(1),
        (Some(f), _) if f <= lo + 1 => Next::Done {
            held: lo,
            capped: false,
        },
        (Some(f), _) => Next::Try((lo + f) / 2),
    }
}

/// Raises the number of streams from `limits.start` until one no longer keeps real time, then
/// narrows down to the most that do ([`next_count`]). `progress` sees each step as it ends.
pub fn find_max(
    camera: &Camera,
    settings: &Settings,
    limits: Limits,
    mut progress: impl FnMut(&Step),
) -> Result<Search> {
    let mut n = limits.start.clamp(1, limits.max.max(1));
    let mut steps: Vec<Step> = Vec::new();
    let (held, capped) = loop {
        let step = run_step(camera, settings, n)?;
        progress(&step);
        steps.push(step);
        let tried: Vec<(usize, bool, f64)> = steps
            .iter()
            .map(|s| {
                let used = s.cpu_percent / 100.0 / s.cores.max(1) as f64;
                (s.streams, s.held, used)
            })
            .collect();
        match next_count(&tried, limits.max) {
            Next::Try(next) => n = next,
            Next::Done { held, capped } => break (held, capped),
        }
    };
    Ok(Search {
        settings: settings.clone(),
        width: camera.width,
        height: camera.height,
        fps: camera.fps,
        camera: camera.describe(),
        limits,
        steps,
        held,
        capped,
    })
}
