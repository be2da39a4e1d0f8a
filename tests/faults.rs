//! Faults a live camera pipeline must survive, `rtspsrc ! rtph264depay ! h264parse ! vssdec !
//! vsssegment` from a loopback RTSP server, or a file pipeline where RTSP cannot do it: packet
//! loss, a stalling server, a resolution change, garbage in the bitstream, EOS mid-GOP, rapid
//! state changes and seeks. Each must not crash or deadlock (every wait is bounded and the whole
//! test runs under a watchdog), must say what went wrong on the bus where something did, and
//! must deliver frames with metas again afterwards.

mod common;
#[path = "support/live.rs"]
mod live;
#[path = "support/rtsp_server.rs"]
mod rtsp_server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstvss::motion::PictureType;
use live::{Received, Rng, Watched, thread_count, within};
use rtsp_server::{Backlog, LoopbackServer, live_launch};

/// Generous bounds: a healthy run takes seconds per test, but a machine running other suites
/// can slow one down tenfold; only a deadlock should hit them.
const TEST_LIMIT: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(120);
/// The camera of the RTSP cases: small, 25 fps, an IDR every 12 frames.
const W: u32 = 320;
const H: u32 = 240;
const GOP: usize = 12;
const FRAME_MS: f64 = 40.0;

/// The camera of the RTSP cases, holding back rather than dropping what a slow client cannot
/// take: on a busy machine the stream arrives late, never damaged by the machine itself.
fn camera() -> Result<LoopbackServer, gst::glib::BoolError> {
    LoopbackServer::start_with(&live_launch(W, H, 25, GOP as u32), Backlog::Keep)
}

/// The client pipeline: depayloader, decoder and appsink named for probes. `buffer-mode=none`
/// keeps RTP's timestamps, which arrival on a busy machine would otherwise re-time.
fn client(url: &str) -> String {
    format!(
        "rtspsrc location={url} latency=100 buffer-mode=none protocols=tcp ! rtph264depay name=depay \
         ! h264parse ! vssdec name=dec ! vsssegment overlay=none ! appsink name=sink"
    )
}

/// Every frame carries a SegmentationMeta and vssdec's MotionMeta.
fn assert_metas(case: &str, frames: &[Received]) {
    for (i, f) in frames.iter().enumerate() {
        assert!(
            f.segmentation.is_some(),
            "{case}: frame {i} without SegmentationMeta"
        );
        assert!(
            f.picture_type.is_some(),
            "{case}: frame {i} without MotionMeta"
        );
    }
}

/// Recovery: from the first codec I-frame in `frames` on, `n` frames arrive one frame apart,
/// with metas, P-frames with vectors, and vsssegment back on its keyframe schedule. Returns the
/// index of that I-frame in `frames`.
fn assert_recovered(case: &str, frames: &[Received], n: usize) -> usize {
    let key = frames
        .iter()
        .position(|f| f.picture_type == Some(PictureType::I))
        .unwrap_or_else(|| panic!("{case}: no I-frame after the fault"));
    let after = &frames[key..];
    assert!(
        after.len() >= n,
        "{case}: {} frames after the I-frame, want {n}",
        after.len()
    );
    let after = &after[..n];
    assert_metas(case, after);
    for (i, w) in after.windows(2).enumerate() {
        let gap = ms(w[1].pts.expect("pts") - w[0].pts.expect("pts"));
        assert!(
            (gap - FRAME_MS).abs() < 5.0,
            "{case}: frames {i} and {} after recovery are {gap} ms apart",
            i + 1
        );
    }
    for (i, f) in after.iter().enumerate() {
        assert_eq!((f.width, f.height), (W, H), "{case}: frame {i}");
        if f.picture_type == Some(PictureType::P) {
            assert!(
                f.vectors > 0,
                "{case}: P-frame {i} after recovery has no vectors"
            );
        }
    }
    assert!(
        after.iter().filter(|f| f.seg().keyframe).count() >= n / GOP - 1,
        "{case}: vsssegment ran too few keyframes after recovery"
    );
    key
}

fn vssdec_warnings(warnings: &[String]) -> usize {
    warnings.iter().filter(|w| w.starts_with("dec:")).count()
}

// ---------------------------------------------------------------------------------------------
// Fault plumbing

/// Which units of a stream (RTP packets, access units) a fault hits: those with index
/// `from..to` counted from the stream's first, each with `probability` drawn from a seeded
/// generator, so that every run hits the same units of the same (deterministic) encode.
struct FaultWindow {
    from: u64,
    to: u64,
    probability: f64,
    seen: AtomicU64,
    hit: AtomicU64,
    rng: Mutex<Rng>,
    /// PTS of the last unit hit: frames after it are past the fault.
    last_hit: Mutex<Option<gst::ClockTime>>,
}

impl FaultWindow {
    fn new(from: u64, to: u64, probability: f64, seed: u64) -> Arc<FaultWindow> {
        Arc::new(FaultWindow {
            from,
            to,
            probability,
            seen: AtomicU64::new(0),
            hit: AtomicU64::new(0),
            rng: Mutex::new(Rng::new(seed)),
            last_hit: Mutex::new(None),
        })
    }

    /// Counts one unit; whether the fault hits it.
    fn hits(&self, pts: Option<gst::ClockTime>) -> bool {
        let index = self.seen.fetch_add(1, Ordering::SeqCst);
        if !(self.from..self.to).contains(&index)
            || !self.rng.lock().unwrap().chance(self.probability)
        {
            return false;
        }
        self.hit.fetch_add(1, Ordering::SeqCst);
        *self.last_hit.lock().unwrap() = pts;
        true
    }

    fn passed(&self) -> bool {
        self.seen.load(Ordering::SeqCst) >= self.to
    }

    fn hit(&self) -> u64 {
        self.hit.load(Ordering::SeqCst)
    }

    fn last_hit(&self) -> gst::ClockTime {
        self.last_hit
            .lock()
            .unwrap()
            .expect("the fault hit nothing")
    }
}

/// A second, undisturbed client of the same server (its own, identical encode): the pictures
/// a disturbed client must get back to.
fn reference_client(url: &str) -> Watched {
    let watched = Watched::new(&format!(
        "rtspsrc location={url} latency=100 buffer-mode=none protocols=tcp ! rtph264depay \
         ! h264parse ! vssdec \
         ! appsink name=sink"
    ));
    watched.play();
    watched
}

/// Every frame in `frames` is, pixel for pixel, one the reference client decoded.
fn assert_pictures_of(case: &str, frames: &[Received], reference: &Watched) {
    let wanted: Vec<u64> = frames.iter().map(|f| f.checksum).collect();
    let missing = |o: &live::Observed| {
        wanted
            .iter()
            .filter(|&&c| !o.frames.iter().any(|f| f.checksum == c))
            .count()
    };
    reference.wait_for(
        &format!("{case}: the reference client to show the same pictures"),
        WAIT,
        |o| missing(o) == 0,
    );
}

/// Frames after the last one a fault hit (by PTS).
fn after_fault(frames: &[Received], last_hit: gst::ClockTime) -> &[Received] {
    let first = frames
        .iter()
        .position(|f| f.pts.is_some_and(|p| p > last_hit))
        .unwrap_or(frames.len());
    &frames[first..]
}

// ---------------------------------------------------------------------------------------------
// a. Packet loss

#[test]
fn packet_loss_is_survived_and_recovers_at_the_next_idr() {
    // About 6 packets per frame: packets 150..600 are frames ~25..100.
    const FROM: u64 = 150;
    const TO: u64 = 600;
    within("packet loss", TEST_LIMIT, || {
        init();
        let server = camera().expect("server");
        let watched = Watched::new(&client(&server.url()));
        let loss = FaultWindow::new(FROM, TO, 0.05, 0x5eed_0001);
        let probe = loss.clone();
        watched
            .element("depay")
            .static_pad("sink")
            .expect("depay sink")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                match info.buffer() {
                    // Handled: the bindings free the packet. `Drop` would free it too, and
                    // GStreamer 1.22 would then warn about unreffing the NULL left behind.
                    Some(packet) if probe.hits(packet.pts()) => gst::PadProbeReturn::Handled,
                    _ => gst::PadProbeReturn::Ok,
                }
            })
            .expect("probe");
        watched.play();
        let reference = reference_client(&server.url());
        let _ = watched.wait_for("the lossy stretch to pass", WAIT, |_| loss.passed());
        let last_hit = loss.last_hit();
        let observed = watched.wait_for("frames after the loss", WAIT, |o| {
            after_fault(&o.frames, last_hit).len() >= 3 * GOP
        });
        eprintln!(
            "dropped {} of packets {FROM}..{TO}; {} frames in all; vssdec warnings {:#?}",
            loss.hit(),
            observed.frames.len(),
            observed.warnings
        );
        assert_metas("packet loss", &observed.frames);
        assert!(
            vssdec_warnings(&observed.warnings) > 0,
            "lost packets decoded without a vssdec warning"
        );
        let after = after_fault(&observed.frames, last_hit);
        let key = assert_recovered("packet loss", after, 2 * GOP);
        assert_pictures_of("packet loss", &after[key..key + 2 * GOP], &reference);
        assert_pictures_of("packet loss", &observed.frames[..20], &reference);
        watched.stop(WAIT);
        reference.stop(WAIT);
    });
}

// ---------------------------------------------------------------------------------------------
// b. A server that stalls

#[test]
fn stalled_server_resumes_with_frames_and_metas() {
    const STALL: Duration = Duration::from_secs(3);
    within("server stall", TEST_LIMIT, || {
        init();
        let server = camera().expect("server");
        let watched = Watched::new(&client(&server.url()));
        watched.play();
        let media = server.next_media(WAIT).expect("the client's media");
        let reference = reference_client(&server.url());
        let _ = watched.wait_frames("frames before the stall", 0, 24, WAIT);

        // The camera's network stops: nothing leaves the payloader until released. The count
        // of access units sent is noted when the block takes hold: a client that lags (a busy
        // machine) still gets what was sent before, but nothing after.
        let pay = media.bin.by_name("pay0").expect("pay0");
        let blocked_at = Arc::new(AtomicU64::new(u64::MAX));
        let (at, count) = (blocked_at.clone(), media.access_units.clone());
        let src = pay.static_pad("src").expect("pay0 src");
        let block = src
            .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, move |_, _| {
                let _ = at.compare_exchange(
                    u64::MAX,
                    count.load(Ordering::SeqCst),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                gst::PadProbeReturn::Ok
            })
            .expect("blocking probe");
        // The fault itself lasts STALL; errors meanwhile fail the test.
        let _ = watched.hold("the stall", STALL);
        let released_at = Instant::now();
        src.remove_probe(block);
        let blocked_at = blocked_at.load(Ordering::SeqCst);
        assert_ne!(blocked_at, u64::MAX, "the block never took hold");

        let observed =
            watched.wait_frames("frames after the stall", blocked_at as usize, 2 * GOP, WAIT);
        eprintln!(
            "stalled with {blocked_at} access units sent; {} frames by then at the client; \
             warnings {:#?}",
            observed
                .frames
                .iter()
                .filter(|f| f.arrived < released_at)
                .count(),
            observed.warnings
        );
        assert_metas("stall", &observed.frames);
        // The access unit in the payloader when the block took hold, and every later one,
        // arrives only once released.
        for (i, f) in observed
            .frames
            .iter()
            .enumerate()
            .skip((blocked_at as usize).saturating_sub(1))
        {
            assert!(
                f.arrived >= released_at,
                "frame {i} arrived during the stall; {blocked_at} access units were sent"
            );
        }
        // Nothing was lost, only late: the client saw exactly the undisturbed client's
        // pictures, in order.
        let n = observed.frames.len();
        let clean = reference
            .wait_frames("the reference client", 0, n, WAIT)
            .frames;
        let pictures = |frames: &[Received]| frames.iter().map(|f| f.checksum).collect::<Vec<_>>();
        assert!(
            pictures(&observed.frames) == pictures(&clean[..n]),
            "the stalled client's {n} pictures differ from the undisturbed client's"
        );
        for (i, f) in observed.frames.iter().enumerate() {
            assert!(f.seg().distance < GOP as u32, "frame {i}: {:?}", f.seg());
        }
        watched.stop(WAIT);
        reference.stop(WAIT);
    });
}

// ---------------------------------------------------------------------------------------------
// c. Resolution change

#[test]
fn resolution_change_mid_stream_resizes_output_and_restarts_segmentation() {
    const NEW: (u32, u32) = (160, 120);
    within("resolution change", TEST_LIMIT, || {
        init();
        let server = camera().expect("server");
        let watched = Watched::new(&client(&server.url()));
        watched.play();
        let media = server.next_media(WAIT).expect("the client's media");
        let _ = watched.wait_frames("frames before the change", 0, 18, WAIT);
        let size = media.bin.by_name("size").expect("capsfilter size");
        size.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", NEW.0 as i32)
                .field("height", NEW.1 as i32)
                .field("framerate", gst::Fraction::new(25, 1))
                .build(),
        );
        let observed = watched.wait_for("30 frames at the new size", WAIT, |o| {
            o.frames
                .iter()
                .filter(|f| (f.width, f.height) == NEW)
                .count()
                >= 30
        });
        eprintln!("warnings {:#?}", observed.warnings);
        assert_metas("resolution change", &observed.frames);
        let first_new = observed
            .frames
            .iter()
            .position(|f| (f.width, f.height) == NEW)
            .expect("a frame at the new size");
        let (old, new) = observed.frames.split_at(first_new);
        assert!(old.iter().all(|f| (f.width, f.height) == (W, H)));
        assert!(
            new.iter().all(|f| (f.width, f.height) == NEW),
            "the size went back"
        );
        assert_eq!(new[0].picture_type, Some(PictureType::I));
        let seg = new[0].seg();
        assert!(
            seg.keyframe && seg.distance == 0,
            "first frame at the new size: {seg:?}"
        );
        for (i, f) in new.iter().enumerate().take(24) {
            assert_eq!(
                f.seg().distance as usize,
                i % GOP,
                "frame {i} after the change"
            );
        }
        watched.stop(WAIT);
    });
}

// ---------------------------------------------------------------------------------------------
// d. Garbage in the bitstream

/// Overwrites one byte in 40 (at least one) at seeded random places of an access unit.
fn scribble(buffer: &mut gst::Buffer, rng: &mut Rng) {
    let buffer = buffer.make_mut();
    let Ok(mut map) = buffer.map_writable() else {
        return;
    };
    let len = map.len();
    for _ in 0..1 + len / 40 {
        let at = rng.below(len);
        map[at] = rng.next_u64() as u8;
    }
}

#[test]
fn garbage_bytes_are_survived_with_warnings_and_recover() {
    // Access units 24..60, 30% of them scribbled on.
    within("garbage", TEST_LIMIT, || {
        init();
        let server = camera().expect("server");
        let watched = Watched::new(&client(&server.url()));
        let garbage = FaultWindow::new(24, 60, 0.3, 0x5eed_0004);
        let bytes = Mutex::new(Rng::new(0x5eed_0005));
        let probe = garbage.clone();
        watched
            .element("dec")
            .static_pad("sink")
            .expect("vssdec sink")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(unit)) = &mut info.data
                    && probe.hits(unit.pts())
                {
                    scribble(unit, &mut bytes.lock().unwrap());
                }
                gst::PadProbeReturn::Ok
            })
            .expect("probe");
        watched.play();
        let reference = reference_client(&server.url());
        let _ = watched.wait_for("the garbage to pass", WAIT, |_| garbage.passed());
        let last_hit = garbage.last_hit();
        let observed = watched.wait_for("frames after the garbage", WAIT, |o| {
            after_fault(&o.frames, last_hit).len() >= 3 * GOP
        });
        eprintln!(
            "scribbled on {} of access units 24..60; {} vssdec warnings: {:#?}",
            garbage.hit(),
            vssdec_warnings(&observed.warnings),
            observed.warnings
        );
        assert_metas("garbage", &observed.frames);
        assert!(
            vssdec_warnings(&observed.warnings) > 0,
            "garbage decoded without a vssdec warning"
        );
        let after = after_fault(&observed.frames, last_hit);
        let key = assert_recovered("garbage", after, 2 * GOP);
        assert_pictures_of("garbage", &after[key..key + 2 * GOP], &reference);
        // Before the garbage, too, the pictures are the clean ones.
        assert_pictures_of("garbage", &observed.frames[..20], &reference);
        watched.stop(WAIT);
        reference.stop(WAIT);
    });
}

// ---------------------------------------------------------------------------------------------
// e. EOS mid-GOP

/// A camera that stops after 30 frames, mid-GOP (an IDR every 12): the client reaches EOS with
/// every frame, none held back in the decoder.
#[test]
fn server_eos_mid_gop_ends_the_client_cleanly() {
    within("server EOS", TEST_LIMIT, || {
        init();
        let launch = live_launch(W, H, 25, GOP as u32)
            .replace("videotestsrc ", "videotestsrc num-buffers=30 ");
        let server = LoopbackServer::start_with(&launch, Backlog::Keep).expect("server");
        let watched = Watched::new(&client(&server.url()));
        watched.play();
        let observed = watched.wait_for("EOS", WAIT, |o| o.eos);
        eprintln!(
            "{} frames, warnings {:#?}",
            observed.frames.len(),
            observed.warnings
        );
        assert_eq!(observed.frames.len(), 30);
        assert_metas("server EOS", &observed.frames);
        assert!(observed.warnings.is_empty(), "{:?}", observed.warnings);
        watched.stop(WAIT);
    });
}

/// EOS after 18 frames of a B-frame stream decoded with frame threads: what the decoder holds
/// back (reordering and threads) comes out, in order, with metas; EOS follows.
#[test]
fn eos_mid_gop_drains_every_held_back_frame() {
    within("EOS drain", TEST_LIMIT, || {
        init();
        let watched = Watched::new(
            "videotestsrc num-buffers=18 pattern=pinwheel horizontal-speed=3 \
             ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
             ! x264enc bframes=2 b-adapt=false key-int-max=12 speed-preset=ultrafast \
             ! h264parse ! vssdec max-threads=2 thread-type=frame \
             ! vsssegment overlay=none ! appsink name=sink",
        );
        watched.play();
        let observed = watched.wait_for("EOS", WAIT, |o| o.eos);
        assert_eq!(observed.frames.len(), 18);
        assert_metas("EOS drain", &observed.frames);
        assert!(observed.warnings.is_empty(), "{:?}", observed.warnings);
        let pts: Vec<_> = observed.frames.iter().map(|f| f.pts.unwrap()).collect();
        assert!(pts.windows(2).all(|w| w[0] < w[1]), "{pts:?}");
        assert!(
            observed.frames[12..]
                .iter()
                .any(|f| f.picture_type == Some(PictureType::B)),
            "no B-frame in the last, unfinished GOP"
        );
        watched.stop(WAIT);
    });
}

// ---------------------------------------------------------------------------------------------
// f. Rapid state changes

/// A 24-frame elementary stream through `h264parse ! vssdec ! vsssegment`: a demuxer's pads
/// come and go with each cycle, and gst-launch syntax links a dynamic pad only once. Elements
/// are named `cyc*`: their streaming threads, and the threads those start, carry the prefix.
fn cycling_pipeline(name: &str) -> Watched {
    let clip = scratch(name).join("clip.h264");
    encode(
        "videotestsrc num-buffers=24 pattern=pinwheel horizontal-speed=3 \
         ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
         ! x264enc key-int-max=12 speed-preset=ultrafast ! h264parse \
         ! video/x-h264,stream-format=byte-stream ! filesink location={out}",
        &clip,
    );
    Watched::new(&format!(
        "filesrc name=cycsrc location={} ! h264parse name=cycparse ! vssdec name=cycdec \
         ! vsssegment name=cycseg overlay=none ! appsink name=sink",
        clip.display()
    ))
}

/// State cycles per test: every pattern of the first test ten times; a leak of one thread per
/// cycle would show as 40. (At 100 cycles these two tests kept this file running for 7.7 min on
/// a 2-core machine: vsssegment loads its bundle at each READY -> PAUSED.)
const CYCLES: u32 = 40;

/// Waits until the pipeline's state change completes at `state`.
fn settle(watched: &Watched, state: gst::State) {
    let (result, current, _) = watched.pipeline.state(gst::ClockTime::from_seconds(30));
    assert!(
        result.is_ok() && current == state,
        "{state:?} not reached: {result:?}, {current:?}; errors {:?}",
        watched.observed().errors
    );
}

#[test]
fn rapid_state_cycles_neither_crash_nor_leak_threads() {
    within("state cycles", Duration::from_secs(600), || {
        init();
        let watched = cycling_pipeline("faults-state-cycles");
        // One full run first: libtorch's and GStreamer's thread pools start once per process.
        // Threads are counted by name, as tests run in parallel in this process.
        watched.play();
        let _ = watched.wait_for("a first run to EOS", WAIT, |o| o.eos);
        watched.stop(WAIT);
        let threads_before = thread_count("cyc");

        let started = Instant::now();
        let mut frames_seen = watched.frame_count();
        let mut grew = 0;
        for cycle in 0..CYCLES {
            let states: &[gst::State] = match cycle % 4 {
                0 => &[gst::State::Ready, gst::State::Null],
                1 => &[
                    gst::State::Ready,
                    gst::State::Paused,
                    gst::State::Playing,
                    gst::State::Paused,
                    gst::State::Ready,
                    gst::State::Null,
                ],
                2 => &[gst::State::Playing, gst::State::Null],
                _ => &[gst::State::Paused, gst::State::Playing],
            };
            for &state in states {
                watched
                    .pipeline
                    .set_state(state)
                    .unwrap_or_else(|e| panic!("cycle {cycle}: {state:?}: {e}"));
            }
            if cycle % 4 == 3 {
                // Let this one play: frames with metas must come out after all the churn.
                settle(&watched, gst::State::Playing);
                let observed =
                    watched.wait_frames(&format!("frames in cycle {cycle}"), frames_seen, 1, WAIT);
                assert_metas("state cycles", observed.since(frames_seen));
                frames_seen = observed.frames.len();
                watched.pipeline.set_state(gst::State::Null).expect("NULL");
            }
            settle(&watched, gst::State::Null);
            let errors = watched.take_errors();
            assert!(errors.is_empty(), "cycle {cycle}: {errors:?}");
            grew = grew.max(thread_count("cyc").saturating_sub(threads_before));
        }
        let elapsed = started.elapsed();
        let threads_after = thread_count("cyc");
        eprintln!(
            "{CYCLES} cycles in {elapsed:?}: threads {threads_before} before, {threads_after} \
             after, at most {grew} more between cycles; {frames_seen} frames"
        );
        assert!(
            threads_after <= threads_before + 2,
            "threads grew from {threads_before} to {threads_after}"
        );

        // And it still plays a whole clip.
        let from = watched.frame_count();
        watched.clear_eos();
        watched.play();
        let observed = watched.wait_for("a last run to EOS", WAIT, |o| o.eos);
        assert_eq!(observed.since(from).len(), 24);
        assert_metas("after the cycles", observed.since(from));
        watched.stop(WAIT);
    });
}

/// PLAYING then NULL at once, `CYCLES` times: the pipeline goes down while vssdec outputs its first
/// picture. Nothing is wrong with the stream, so nothing may be posted as an error.
#[test]
fn stopping_mid_negotiation_posts_no_error() {
    within("stop mid-negotiation", Duration::from_secs(600), || {
        init();
        let watched = cycling_pipeline("faults-stop-mid-negotiation");
        let mut errors = Vec::new();
        for cycle in 0..CYCLES {
            watched
                .pipeline
                .set_state(gst::State::Playing)
                .expect("PLAYING");
            watched.pipeline.set_state(gst::State::Null).expect("NULL");
            settle(&watched, gst::State::Null);
            errors.extend(
                watched
                    .take_errors()
                    .into_iter()
                    .map(|e| format!("cycle {cycle}: {e}")),
            );
        }
        assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    });
}

// ---------------------------------------------------------------------------------------------
// g. Seeks

#[test]
fn flushing_seeks_while_playing_restart_with_a_keyframe() {
    within("seeks", TEST_LIMIT, || {
        init();
        let (linear, _) = decode_frames(&format!(
            "filesrc location={} ! qtdemux ! h264parse ! vssdec ! appsink name=sink",
            dashcam().display()
        ));
        let watched = Watched::new(&format!(
            "filesrc location={} ! qtdemux ! h264parse ! vssdec ! vsssegment overlay=none \
             ! appsink name=sink max-buffers=2",
            dashcam().display()
        ));
        watched.play();
        let _ = watched.wait_frames("frames before seeking", 0, 10, WAIT);
        // (frame, accurate): mid-GOP targets decoded up from their I-frame, and key-unit
        // seeks that snap back to the I-frame.
        let seeks = [
            (150usize, true),
            (40, false),
            (200, true),
            (17, true),
            (95, false),
        ];
        for (frame, accurate) in seeks {
            let target = linear[frame].pts.expect("pts");
            let flags = gst::SeekFlags::FLUSH
                | if accurate {
                    gst::SeekFlags::ACCURATE
                } else {
                    gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE
                };
            watched
                .pipeline
                .seek_simple(flags, target)
                .unwrap_or_else(|e| panic!("seek to frame {frame}: {e}"));
            // A flushing seek returns after the flush: what arrives now is from the new position.
            let from = watched.frame_count();
            let observed = watched.wait_frames("frames after the seek", from, 10, WAIT);
            let after = &observed.since(from)[..10];
            assert_metas("seek", after);
            let first = &after[0];
            let seg = first.seg();
            assert!(
                seg.keyframe && seg.distance == 0,
                "first frame after seeking to {frame}: {seg:?}"
            );
            if accurate {
                assert_eq!(first.pts, Some(target), "accurate seek to frame {frame}");
            } else {
                assert_eq!(
                    first.picture_type,
                    Some(PictureType::I),
                    "key-unit seek to {frame}"
                );
                assert!(first.pts <= Some(target));
            }
            for (i, f) in after.iter().enumerate() {
                assert_eq!(
                    f.seg().distance as usize,
                    i,
                    "frame {i} after seeking to {frame}"
                );
            }
        }
        let observed = watched.observed();
        assert!(observed.errors.is_empty(), "{:?}", observed.errors);
        watched.stop(WAIT);
    });
}
