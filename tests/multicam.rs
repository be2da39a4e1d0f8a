//! Many streams on one model: elements with the same `model-instance-id` load the bundle once
//! and free it with the last of them, spread their keyframes over the interval, and a stream
//! that cannot keep up does not make another drop frames. The multicam library (what
//! `examples/multicam` and the report's "Many cameras" run) measures live streams as it should,
//! and its search for the most streams narrows down as it says.

mod common;
/// The multicam example's library, as the example and the report use it.
#[allow(dead_code)]
#[path = "../examples/common"]
mod examples_common {
    pub mod multicam;
    pub mod stats;
}

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use examples_common::multicam::{self, Camera, Next, Settings, next_count};
use gst::prelude::*;
use gstvss::model::instances;

/// A paused pipeline with a vsssegment (started: its model loaded); stopped when dropped.
struct Started(gst::Element);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn started(properties: &str) -> Result<Started, String> {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc ! video/x-raw,format=I420,width=320,height=240 \
         ! vsssegment {properties} ! fakesink"
    ))
    .expect("pipeline");
    let result = pipeline.set_state(gst::State::Paused);
    let error = pipeline
        .bus()
        .expect("bus")
        .pop_filtered(&[gst::MessageType::Error]);
    let pipeline = Started(pipeline);
    match (result, error.as_ref().map(|m| m.view())) {
        (Ok(_), None) => Ok(pipeline),
        (_, Some(gst::MessageView::Error(e))) => {
            Err(format!("{} | {}", e.error(), e.debug().unwrap_or_default()))
        }
        _ => Err("failed without an error message".into()),
    }
}

#[test]
fn one_model_instance_id_loads_the_bundle_once_and_frees_it_with_its_last_user() {
    init();
    let a1 = started("model-instance-id=share-a").expect("a1");
    let a2 = started("model-instance-id=share-a").expect("a2");
    let b = started("model-instance-id=share-b").expect("b");
    assert_eq!(
        (instances::loads("share-a"), instances::loads("share-b")),
        (1, 1),
        "one load per id"
    );
    let live = instances::live();
    assert!(live.contains(&("share-a".into(), 2)), "{live:?}");
    assert!(live.contains(&("share-b".into(), 1)), "{live:?}");

    let err = started("model-instance-id=share-a model=camvid-cgnet")
        .err()
        .expect("another model under the same id fails at start");
    assert!(
        err.contains("share-a") && err.contains("camvid-cgnet"),
        "{err}"
    );

    drop(a1);
    assert!(instances::live().contains(&("share-a".into(), 1)));
    drop((a2, b));
    let live = instances::live();
    assert!(
        !live
            .iter()
            .any(|(id, _)| id == "share-a" || id == "share-b"),
        "freed with their last users: {live:?}"
    );
}

/// Held by the tests that time live streams, so that they do not load the CPU for each other
/// (the test harness runs a file's tests side by side).
static LIVE: Mutex<()> = Mutex::new(());

fn live_lock() -> std::sync::MutexGuard<'static, ()> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wall-clock instants of each pipeline's keyframes, from their stats messages as posted.
type Keyframes = Arc<Mutex<Vec<(usize, Instant)>>>;
/// Per pipeline: frames it posted stats for, and its errors and warnings (for failure messages).
type Posted = Arc<Mutex<std::collections::BTreeMap<usize, (usize, Vec<String>)>>>;

fn live_stream(n: usize, properties: &str, keyframes: &Keyframes, posted: &Posted) -> gst::Element {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball \
         ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 \
         ! vsssegment stats=true overlay=none {properties} ! fakesink sync=true"
    ))
    .expect("pipeline");
    let (keyframes, posted) = (keyframes.clone(), posted.clone());
    pipeline
        .bus()
        .expect("bus")
        .set_sync_handler(move |_, msg| {
            if let Some(s) = msg.structure().filter(|s| s.name() == "vss-segment") {
                if s.get::<bool>("keyframe").unwrap_or(false) {
                    keyframes.lock().unwrap().push((n, Instant::now()));
                }
                posted.lock().unwrap().entry(n).or_default().0 += 1;
            }
            let text = match msg.view() {
                gst::MessageView::Error(e) => Some(format!("error: {}", e.error())),
                gst::MessageView::Warning(w) => Some(format!("warning: {}", w.error())),
                _ => None,
            };
            if let Some(text) = text {
                posted.lock().unwrap().entry(n).or_default().1.push(text);
            }
            gst::BusSyncReply::Drop
        });
    pipeline
}

/// The timing checks, one after the other: run side by side, each would load the CPU the other
/// measures.
#[test]
fn shared_streams_spread_their_keyframes_and_a_slow_one_holds_up_no_other() {
    init();
    let _live = live_lock();
    streams_sharing_a_model_spread_their_keyframes_over_the_interval();
    a_stream_that_cannot_keep_up_does_not_make_another_drop_frames();
}

fn streams_sharing_a_model_spread_their_keyframes_over_the_interval() {
    const STREAMS: usize = 4;
    let keyframes: Keyframes = Arc::default();
    let posted: Posted = Arc::default();
    let pipelines: Vec<gst::Element> = (0..STREAMS)
        .map(|n| {
            live_stream(
                n,
                "model-instance-id=stagger keyframe-interval=12",
                &keyframes,
                &posted,
            )
        })
        .collect();
    for p in &pipelines {
        p.set_state(gst::State::Playing).expect("PLAYING");
    }
    let start = Instant::now();
    // 12 frames at 15 fps = 0.8 s: the first keyframes coincide (every stream needs one), the
    // next land at each stream's slot, 0.2 s apart.
    std::thread::sleep(Duration::from_millis(4500));
    for p in &pipelines {
        p.set_state(gst::State::Null).expect("NULL");
    }
    let mut later: Vec<(usize, Instant)> = keyframes
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|(_, t)| t.duration_since(start) > Duration::from_millis(1500))
        .collect();
    later.sort_by_key(|(_, t)| *t);
    let streams: std::collections::BTreeSet<usize> = later.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        streams.len(),
        STREAMS,
        "every stream had keyframes after 1.5 s: {later:?}; per stream (frames with stats, \
         errors and warnings): {:?}",
        posted.lock().unwrap()
    );
    for pair in later.windows(2) {
        let ((a, ta), (b, tb)) = (pair[0], pair[1]);
        let gap = tb.duration_since(ta);
        assert!(
            a == b || gap >= Duration::from_millis(60),
            "streams {a} and {b} had keyframes {gap:?} apart (slots are 200 ms apart)"
        );
    }
}

/// The rendered and dropped counts of a sink's `stats`.
fn sink_counts(pipeline: &gst::Element) -> (u64, u64) {
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .expect("bin")
        .by_name("sink")
        .expect("sink");
    let stats = sink.property::<gst::Structure>("stats");
    (
        stats.get::<u64>("rendered").expect("rendered"),
        stats.get::<u64>("dropped").expect("dropped"),
    )
}

fn a_stream_that_cannot_keep_up_does_not_make_another_drop_frames() {
    // A: the full model on 100 frames a second, which no CPU here keeps up with, with QoS
    // degradation off so that it stays overloaded; B: a live camera's setting (warp, keyframes
    // in the background) at 15 fps, sharing A's model and its one inference queue.
    let starved = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball \
         ! video/x-raw,format=I420,width=320,height=240,framerate=100/1 \
         ! vsssegment model-instance-id=isolation mode=full qos-degrade=false overlay=none \
         ! fakesink name=sink sync=true qos=true max-lateness=20000000",
    )
    .expect("pipeline");
    let steady = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball \
         ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 \
         ! vsssegment model-instance-id=isolation mode=warp async-keyframes=true overlay=none \
         ! fakesink name=sink sync=true qos=true max-lateness=20000000",
    )
    .expect("pipeline");
    starved.set_state(gst::State::Playing).expect("PLAYING");
    steady.set_state(gst::State::Playing).expect("PLAYING");
    // Measured from B's first frame on (it starts behind A: the shared load, A's queue).
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink_counts(&steady).0 == 0 {
        assert!(Instant::now() < deadline, "the steady stream never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rendered0, dropped0) = sink_counts(&steady);
    let (starved_rendered0, starved_dropped0) = sink_counts(&starved);
    std::thread::sleep(Duration::from_secs(5));
    let (starved_rendered, starved_dropped) = sink_counts(&starved);
    let (rendered, dropped) = sink_counts(&steady);
    let (starved_rendered, starved_dropped) = (
        starved_rendered - starved_rendered0,
        starved_dropped - starved_dropped0,
    );
    let (rendered, dropped) = (rendered - rendered0, dropped - dropped0);
    starved.set_state(gst::State::Null).expect("NULL");
    steady.set_state(gst::State::Null).expect("NULL");
    assert!(
        starved_dropped > 0,
        "the overloaded stream was meant to fall behind (rendered {starved_rendered})"
    );
    assert!(
        rendered >= 70,
        "the steady stream rendered {rendered} frames in 6 s"
    );
    assert_eq!(
        dropped, 0,
        "the steady stream dropped frames (rendered {rendered}; the overloaded one rendered {starved_rendered}, dropped {starved_dropped})"
    );
}

#[test]
fn two_live_streams_through_the_multicam_library_keep_real_time() {
    let _live = live_lock();
    init();
    let camera = Camera::encode(
        &root().join("examples/data/highway_dashcam_960x540.mp4"),
        multicam::DEFAULT_WIDTH,
        multicam::DEFAULT_HEIGHT,
        multicam::DEFAULT_FPS,
    )
    .expect("camera");
    // The live-camera setting (asynchronous keyframes), one torch thread: on a 2-core machine
    // busy with other work, two OpenMP threads wait for each other's cores for seconds.
    let settings = Settings {
        async_keyframes: true,
        threads: 1,
        warmup_s: 3.0,
        seconds: 4.0,
        ..Settings::default()
    };
    let step = multicam::run_step(&camera, &settings, 2).expect("step");
    assert_eq!(step.streams, 2);
    assert_eq!(step.per_stream.len(), 2);
    assert_eq!(step.shared_loads, 1, "two streams, one shared bundle");
    for (i, s) in step.per_stream.iter().enumerate() {
        // 4 s at 15 fps.
        assert!((59..=61).contains(&s.frames), "stream {i}: {s:?}");
        assert_eq!(s.out, s.frames, "stream {i}: every frame out: {s:?}");
        assert_eq!(s.missing, 0, "stream {i}: {s:?}");
        assert_eq!(s.dropped, 0, "stream {i}: the sink dropped frames: {s:?}");
        let l = s.latency_ms.expect("latency numbers");
        assert!(
            0.0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.max,
            "stream {i}: {l:?}"
        );
        assert!(s.errors.is_empty(), "stream {i}: {:?}", s.errors);
    }
    assert!(step.cpu_percent > 0.0, "{step:?}");
    assert!(
        step.rss_end_mib > 0.0 && step.rss_first_mib > 0.0,
        "{step:?}"
    );
}

#[test]
fn the_stream_search_grows_by_cpu_then_halves_the_gap() {
    // One stream held using 10% of the cores: 0.85 / 0.1 = 8.5 -> 8, but at most 4x.
    assert_eq!(next_count(&[(1, true, 0.10)], 48), Next::Try(4));
    assert_eq!(next_count(&[(4, true, 0.40)], 48), Next::Try(8));
    assert_eq!(
        next_count(&[(4, true, 0.40)], 6),
        Next::Try(6),
        "at most the limit"
    );
    // Already near full: still one more.
    assert_eq!(next_count(&[(8, true, 0.95)], 48), Next::Try(9));
    // A failure: halve the gap, until the counts are adjacent.
    let tried = [(4, true, 0.4), (8, true, 0.8), (16, false, 1.0)];
    assert_eq!(next_count(&tried, 48), Next::Try(12));
    let tried = [(8, true, 0.8), (12, true, 0.9), (13, false, 1.0)];
    assert_eq!(
        next_count(&tried, 48),
        Next::Done {
            held: 12,
            capped: false
        }
    );
    // A count that held above the fewest failing is noise.
    let tried = [
        (8, true, 0.8),
        (10, false, 1.0),
        (12, true, 0.9),
        (9, true, 0.9),
    ];
    assert_eq!(
        next_count(&tried, 48),
        Next::Done {
            held: 9,
            capped: false
        }
    );
    // Even one stream failed; the limit held.
    assert_eq!(
        next_count(&[(1, false, 0.5)], 48),
        Next::Done {
            held: 0,
            capped: false
        }
    );
    assert_eq!(
        next_count(&[(2, true, 0.2)], 2),
        Next::Done {
            held: 2,
            capped: true
        }
    );
    // The first count tried failed: halve towards none.
    assert_eq!(next_count(&[(8, false, 1.0)], 48), Next::Try(4));
}
