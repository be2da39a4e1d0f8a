//! vsssegment's controls never wait for inference. In a test binary of its own: its slow
//! forward passes would hold up the process's one libtorch executor for the other tests.

mod common;

use common::*;
use gst::prelude::*;

/// camvid-espnet's native size.
const NATIVE_W: u32 = 480;
const NATIVE_H: u32 = 360;

fn rgb_caps(width: u32, height: u32) -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .expect("video info")
        .to_caps()
        .expect("caps")
}

/// A QoS event, a latency query and a property read sent while a slow forward pass runs
/// (camvid-cgnet, about a second a frame on 2 cores) each return within 10 ms: the element's
/// controls never wait for inference.
#[test]
fn controls_never_wait_for_inference() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=\"{}\" \
         ! vsssegment name=seg model=camvid-cgnet mode=full overlay=none \
         ! fakesink name=sink sync=false signal-handoffs=true",
        rgb_caps(NATIVE_W, NATIVE_H)
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let seg = pipeline.by_name("seg").expect("seg");
    let src = pipeline
        .by_name("src")
        .expect("src")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    let entered = Arc::new(AtomicBool::new(false));
    let segmented = Arc::new(AtomicBool::new(false));
    {
        let entered = entered.clone();
        seg.static_pad("sink").expect("sink pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                entered.store(true, Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            },
        );
        let segmented = segmented.clone();
        pipeline
            .by_name("sink")
            .expect("sink")
            .connect("handoff", false, move |_| {
                segmented.store(true, Ordering::SeqCst);
                None
            });
    }
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let pixels = vec![128u8; (NATIVE_W * NATIVE_H * 3) as usize];
    src.push_buffer(gst::Buffer::from_mut_slice(pixels))
        .expect("push");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !entered.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the frame never reached vsssegment"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Past pre-processing, inside the forward pass.
    std::thread::sleep(Duration::from_millis(100));

    let srcpad = seg.static_pad("src").expect("src pad");
    let timed = |what: &str, f: &dyn Fn()| {
        let t = Instant::now();
        f();
        let took = t.elapsed();
        assert!(took < Duration::from_millis(10), "{what} took {took:?}");
    };
    timed("QoS event", &|| {
        let qos = gst::event::Qos::new(
            gst::QOSType::Underflow,
            2.0,
            40_000_000,
            gst::ClockTime::ZERO,
        );
        srcpad.send_event(qos);
    });
    timed("latency query", &|| {
        let mut q = gst::query::Latency::new();
        srcpad.query(&mut q);
    });
    timed("property read", &|| {
        let _ = seg.property_value("mode");
        let _ = seg.property_value("keyframe-interval");
    });
    assert!(
        !segmented.load(Ordering::SeqCst),
        "the frame was done before the controls were timed: nothing was measured"
    );
    while !segmented.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the frame never came out");
        std::thread::sleep(Duration::from_millis(10));
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
}
