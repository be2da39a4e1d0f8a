//! Fuzz bodies: arbitrary bytes as an H.264 byte-stream, through the crate's libavcodec wrapper
//! (`codec::Decoder`, its vectors then painted into a `MotionTrack`) and through the element
//! (`appsrc ! h264parse ! vssdec ! appsink`). Shared by the cargo-fuzz targets `h264_decoder`
//! and `vssdec_element` and the seeded run in `tests/fuzz.rs`; panics on a violation, and the
//! element run fails on a deadlock instead of hanging. Each includer uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use gst::prelude::*;
use gstvss::codec::{CodecKind, Decoder, DecoderConfig, Picture, ThreadType};
use gstvss::meta::MotionMeta;
use gstvss::motion::{MotionTrack, MotionVector};

/// Pictures up to this many pixels also go through a motion track (bigger ones only decode).
const MAX_TRACKED_PIXELS: u32 = 1 << 20;

/// GStreamer, the plugin, and libav's logging off (every corrupt macroblock would be printed).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gstvss::ensure_registered().expect("registering the vss plugin");
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
    });
}

/// The stream's NAL units, each with its start code, split at `00 00 01`; bytes before the
/// first start code form a unit of their own.
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts: Vec<usize> = (0..data.len().saturating_sub(2))
        .filter(|&i| data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1)
        .map(|i| if i > 0 && data[i - 1] == 0 { i - 1 } else { i })
        .collect();
    starts.dedup();
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| &data[w[0]..w[1]])
        .filter(|u| !u.is_empty())
        .collect()
}

/// What FFmpeg's H.264 decoder exports, checked per vector: block sizes of 4, 8 or 16, quarter
/// pel, a direction, and a block centre at non-negative coordinates inside H.264's largest
/// picture. Centres are in coded (uncropped) coordinates and may lie outside the cropped
/// picture (a finding of this target: an SPS cropping 48 coded columns to 32); the motion field
/// ignores such blocks.
fn check_vectors(vectors: &[MotionVector]) {
    for v in vectors {
        assert!(
            matches!(v.w, 4 | 8 | 16) && matches!(v.h, 4 | 8 | 16),
            "block size {v:?}"
        );
        assert_eq!(v.motion_scale, 4, "{v:?}");
        assert!(v.source == -1 || v.source == 1, "{v:?}");
        assert!(
            v.dst_x >= 0 && v.dst_y >= 0,
            "block centre at negative coordinates: {v:?}"
        );
    }
}

fn check_picture(picture: &Picture, tags_sent: i64, vectors: &mut Vec<MotionVector>) {
    let tag = picture.tag.expect("every picture carries its packet's tag");
    assert!((0..tags_sent).contains(&tag), "tag {tag} never sent");
    assert!(picture.width > 0 && picture.height > 0);
    for plane in 0..picture.planes() {
        let need = picture.stride(plane) * picture.plane_height(plane) as usize;
        assert!(
            picture.plane_data(plane).len() >= need,
            "plane {plane} holds {} bytes, stride x rows = {need}",
            picture.plane_data(plane).len()
        );
    }
    picture.motion_vectors_into(vectors);
    check_vectors(vectors);
    if picture.width * picture.height <= MAX_TRACKED_PIXELS {
        let mut track = MotionTrack::new(picture.width, picture.height, 4).expect("geometry");
        track.advance_picture(vectors, picture.picture_type);
        let stats = track.accumulated().stats();
        assert!(stats.mean_magnitude.is_finite(), "{stats:?}");
    }
}

/// The first byte picks the decoder setup and packetisation; the rest is the byte-stream.
pub fn decode(data: &[u8]) {
    init();
    let Some((&setup, stream)) = data.split_first() else {
        return;
    };
    let config = DecoderConfig {
        codec: CodecKind::H264,
        extradata: None,
        threads: 1 + usize::from(setup & 1),
        thread_type: if setup & 2 == 0 {
            ThreadType::Frame
        } else {
            ThreadType::Slice
        },
        export_mvs: true,
        output_corrupt: setup & 4 != 0,
    };
    let mut decoder = Decoder::new(&config).expect("opening the H.264 decoder");
    let per_packet = 1 + usize::from(setup >> 3 & 3);
    let mut vectors = Vec::new();
    let mut sent = 0i64;
    for packet in nal_units(stream).chunks(per_packet) {
        let bytes = packet.concat();
        // Errors are expected on garbage; what matters is what comes out afterwards.
        let _ = decoder.send(&bytes, sent);
        sent += 1;
        // A decoder returns at most a few pictures per packet; the bound catches a loop.
        for _ in 0..64 {
            match decoder.receive() {
                Ok(Some(picture)) => check_picture(&picture, sent, &mut vectors),
                Ok(None) => break,
                Err(_) => continue,
            }
        }
    }
    let _ = decoder.send_eof();
    for _ in 0..64 {
        match decoder.receive() {
            Ok(Some(picture)) => check_picture(&picture, sent, &mut vectors),
            Ok(None) => break,
            Err(_) => continue,
        }
    }
    decoder.flush();
}

/// What one element run saw.
#[derive(Debug, Default)]
pub struct ElementRun {
    pub frames: usize,
    pub warnings: usize,
}

/// The first byte picks how many pieces the stream is pushed in; the rest is the stream.
/// Panics on a frame without MotionMeta, on any error but the parser's about its input and
/// vssdec's "cannot output this pixel format" or "no valid frames", and on a pipeline that
/// neither ends nor fails within `limit`.
pub fn run_element(data: &[u8], limit: Duration) -> ElementRun {
    init();
    let Some((&setup, stream)) = data.split_first() else {
        return ElementRun::default();
    };
    let pipeline = gst::parse::launch(
        "appsrc name=src caps=video/x-h264,stream-format=byte-stream format=bytes \
         ! h264parse name=parse ! vssdec name=dec max-threads=1 ! appsink name=sink sync=false",
    )
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let src = pipeline
        .by_name("src")
        .expect("appsrc")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    let sink = pipeline
        .by_name("sink")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    let frames = Arc::new(AtomicUsize::new(0));
    let counted = frames.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                // Checked here, reported after the run: a panic in a streaming thread aborts.
                if buffer.meta::<MotionMeta>().is_some() {
                    counted.fetch_add(1, Ordering::SeqCst);
                } else {
                    counted.fetch_add(1 << 32, Ordering::SeqCst);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let announced = Announced::watch(&pipeline);
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let pieces = 1 + usize::from(setup % 8);
    for piece in stream.chunks(stream.len().div_ceil(pieces).max(1)) {
        if src
            .push_buffer(gst::Buffer::from_slice(piece.to_vec()))
            .is_err()
        {
            break;
        }
    }
    let _ = src.end_of_stream();
    let bus = pipeline.bus().expect("bus");
    let mut warnings = 0;
    let mut failure = None;
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(message) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
        else {
            failure = Some(format!("neither EOS nor an error within {limit:?}"));
            break;
        };
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Warning(_) => warnings += 1,
            gst::MessageView::Error(e) => {
                // The errors garbage may cause: the parser's about its input (no NAL units,
                // no valid frames), a stream whose pixels vssdec cannot output (H.264 allows 9
                // to 14 bits), and the decoder base class's "no valid frames" at EOS when
                // nothing decoded. A flow error reported upstream ("streaming stopped, reason
                // ...") is vssdec's doing, and a finding like any other error.
                let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                let text = format!("{} ({})", e.error(), e.debug().unwrap_or_default());
                let permitted = match src.as_str() {
                    "dec" => {
                        text.to_lowercase().contains("no valid frames")
                            || text.contains("pixel format")
                    }
                    "parse" => !text.contains("streaming stopped"),
                    _ => false,
                };
                let refused = text.contains("not-negotiated");
                // h264parse can announce a negative size from a corrupt SPS's cropping; no
                // decoder takes that (avdec_h264 neither), so it is not vssdec's doing.
                let impossible_size = refused && announced.non_positive_size.load(Ordering::SeqCst);
                if !permitted && !impossible_size {
                    failure = Some(format!("error from {src}: {text}"));
                }
                break;
            }
            _ => {}
        }
    }
    if let Some(failure) = failure {
        // Leave a deadlocked pipeline alone: setting it to NULL would hang too.
        std::mem::forget(pipeline);
        panic!("{failure}");
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    let counted = frames.load(Ordering::SeqCst);
    assert_eq!(
        counted >> 32,
        0,
        "{} frames without MotionMeta",
        counted >> 32
    );
    ElementRun {
        frames: counted,
        warnings,
    }
}

/// What the parser ever announced downstream, refused or not: caps a corrupt SPS can produce.
#[derive(Default)]
struct Announced {
    non_positive_size: AtomicBool,
}

impl Announced {
    fn watch(pipeline: &gst::Pipeline) -> Arc<Announced> {
        let announced = Arc::new(Announced::default());
        let flags = announced.clone();
        pipeline
            .by_name("parse")
            .and_then(|p| p.static_pad("src"))
            .expect("parse src pad")
            .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                if let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view())
                    && let Some(s) = caps.caps().structure(0)
                    && ["width", "height"]
                        .iter()
                        .any(|f| s.get::<i32>(*f).is_ok_and(|v| v <= 0))
                {
                    flags.non_positive_size.store(true, Ordering::SeqCst);
                }
                gst::PadProbeReturn::Ok
            })
            .expect("caps probe");
        announced
    }
}
