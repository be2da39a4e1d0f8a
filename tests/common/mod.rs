//! Shared test plumbing: GStreamer init, data paths, running pipelines into appsink.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use gst::prelude::*;
use gstvss::meta::MotionMeta;
use gstvss::motion::{MotionVector, PictureType};

#[path = "../support/helpers.rs"]
mod helpers;
#[allow(unused_imports)]
pub use helpers::*;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gstvss::ensure_registered().expect("registering the vss plugin");
    });
}

/// Caps of packed RGB at `width` x `height`, 25 fps.
pub fn rgb_caps(width: u32, height: u32) -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .expect("video info")
        .to_caps()
        .expect("caps")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// ../shared/data, which CI provides; tests that need it fail loudly without it.
pub fn shared_data(rel: &str) -> PathBuf {
    let p = root().join("../shared/data").join(rel);
    assert!(
        p.exists(),
        "test data {} is missing: the tests read ../shared/data beside the checkout",
        p.display()
    );
    p
}

pub fn dashcam() -> PathBuf {
    shared_data("videos/highway_dashcam_960x540.mp4")
}

pub fn venv_python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(p.exists(), "{} missing: run scripts/setup.sh", p.display());
    p
}

/// The release or debug examples folder next to this test binary.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let p = profile_dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} not built (cargo test builds examples)",
        p.display()
    );
    p
}

/// Runs a helper program to success within two minutes.
pub fn run(cmd: &mut Command) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Encodes a clip with a gst-launch description ending in `filesink location={out}`.
pub fn encode(description: &str, out: &Path) {
    let desc = description.replace("{out}", &out.to_string_lossy());
    let pipeline = gst::parse::launch(&desc).expect("encoder pipeline");
    run_to_eos(&pipeline);
    assert!(out.exists(), "encoder wrote nothing: {desc}");
}

pub fn run_to_eos(pipeline: &gst::Element) -> Vec<gst::Message> {
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let bus = pipeline.bus().expect("bus");
    let mut warnings = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null).ok();
                panic!("pipeline error: {} ({:?})", e.error(), e.debug());
            }
            gst::MessageView::Warning(_) => warnings.push(msg.clone()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    warnings
}

/// What a test wants to know about one decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub pts: Option<gst::ClockTime>,
    pub duration: Option<gst::ClockTime>,
    pub picture_type: Option<PictureType>,
    pub keyframe: bool,
    pub vectors_available: bool,
    pub vectors: Vec<MotionVector>,
    pub checksum: u64,
}

impl Frame {
    pub fn from_buffer(buffer: &gst::BufferRef) -> Frame {
        let meta = buffer.meta::<MotionMeta>();
        let map = buffer.map_readable().expect("readable");
        Frame {
            pts: buffer.pts(),
            duration: buffer.duration(),
            picture_type: meta.as_ref().map(|m| m.picture_type()),
            keyframe: meta.as_ref().is_some_and(|m| m.is_keyframe()),
            vectors_available: meta.as_ref().is_some_and(|m| m.vectors_available()),
            vectors: meta.map(|m| m.vectors().to_vec()).unwrap_or_default(),
            checksum: fnv1a(map.as_slice()),
        }
    }
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Runs `description` (which must end in `appsink name=sink`) to EOS and returns every frame,
/// plus the warnings posted on the bus.
pub fn decode_frames(description: &str) -> (Vec<Frame>, Vec<gst::Message>) {
    let pipeline = gst::parse::launch(description).expect("pipeline");
    let bin = pipeline.clone().downcast::<gst::Bin>().expect("bin");
    let sink = bin
        .by_name("sink")
        .expect("appsink named sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    sink.set_property("sync", false);
    let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let f = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    f.lock().unwrap().push(Frame::from_buffer(buffer));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let warnings = run_to_eos(&pipeline);
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    (frames, warnings)
}
