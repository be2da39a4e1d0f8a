//! vsssegment's controls never wait for inference. In a test binary of its own: its slow
//! forward passes would hold up the process's one libtorch executor for the other tests.

mod common;

use common::*;
use gst::prelude::*;

/// camvid-espnet's native size.
const NATIVE_W: u32 = 480;
const NATIVE_H: u32 = 360;

/// QoS events, latency queries and property reads sent while frames are inside vsssegment
/// (camvid-cgnet, whose forward pass is the slowest of the shipped bundles) return at once: the
/// element's controls never wait for inference. A control that waited on the frame would take
/// the rest of a forward pass (tens to hundreds of milliseconds on any CPU); only the controls
/// sent while a frame was inside the element are counted, however fast the machine is.
#[test]
fn controls_never_wait_for_inference() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    const FRAMES: usize = 12;
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
    // Frames that went into vsssegment, and frames that came out of it.
    let entered = Arc::new(AtomicUsize::new(0));
    let left = Arc::new(AtomicUsize::new(0));
    {
        let entered = entered.clone();
        seg.static_pad("sink").expect("sink pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                entered.fetch_add(1, Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            },
        );
        let left = left.clone();
        pipeline
            .by_name("sink")
            .expect("sink")
            .connect("handoff", false, move |_| {
                left.fetch_add(1, Ordering::SeqCst);
                None
            });
    }
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let pixels = vec![128u8; (NATIVE_W * NATIVE_H * 3) as usize];
    for i in 0..FRAMES {
        let mut buffer = gst::Buffer::from_slice(pixels.clone());
        buffer
            .get_mut()
            .expect("fresh buffer")
            .set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
        src.push_buffer(buffer).expect("push");
    }

    let srcpad = seg.static_pad("src").expect("src pad");
    let controls: [(&str, Box<dyn Fn()>); 3] = [
        (
            "QoS event",
            Box::new(|| {
                // On time: the ladder takes it in and stays where it is, so every frame
                // stays in `full`.
                let qos = gst::event::Qos::new(
                    gst::QOSType::Underflow,
                    0.9,
                    -1_000_000,
                    gst::ClockTime::SECOND,
                );
                srcpad.send_event(qos);
            }),
        ),
        (
            "latency query",
            Box::new(|| {
                let mut q = gst::query::Latency::new();
                srcpad.query(&mut q);
            }),
        ),
        (
            "property read",
            Box::new(|| {
                let _ = seg.property_value("mode");
                let _ = seg.property_value("keyframe-interval");
            }),
        ),
    ];
    let mut took: [Vec<Duration>; 3] = Default::default();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut turn = 0;
    while left.load(Ordering::SeqCst) < FRAMES {
        assert!(
            Instant::now() < deadline,
            "the frames never came out: {} in, {} out",
            entered.load(Ordering::SeqCst),
            left.load(Ordering::SeqCst)
        );
        let inside = entered.load(Ordering::SeqCst) > left.load(Ordering::SeqCst);
        let (_, control) = &controls[turn % 3];
        let t = Instant::now();
        control();
        let elapsed = t.elapsed();
        if inside {
            took[turn % 3].push(elapsed);
        }
        turn += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    pipeline.set_state(gst::State::Null).expect("NULL");

    for ((what, _), took) in controls.iter().zip(took.iter_mut()) {
        assert!(
            took.len() >= 10,
            "only {} {what}s were sent while a frame was inside the element",
            took.len()
        );
        took.sort();
        let median = took[took.len() / 2];
        let p90 = took[took.len() * 9 / 10];
        eprintln!(
            "{what}: {} sent during inference, median {median:?}, p90 {p90:?}",
            took.len()
        );
        assert!(
            median < Duration::from_millis(2) && p90 < Duration::from_millis(10),
            "{what}s sent during inference: median {median:?}, 90th percentile {p90:?} \
             (of {})",
            took.len()
        );
    }
}
