//! vssdec: vectors equal an independent reader's, timestamps and pixels equal avdec_*'s, and
//! bad input, B-frames and seeks behave; its plugin links no libtorch.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use common::*;
use gst::prelude::*;
use gstvss::meta::MotionMeta;
use gstvss::motion::PictureType;

type VectorRow = Vec<i64>;

/// frame -> multiset of vector rows, from a dump_mvs / pyav_mvs CSV.
fn read_vectors(path: &Path) -> BTreeMap<u64, HashMap<VectorRow, usize>> {
    let mut out: BTreeMap<u64, HashMap<VectorRow, usize>> = BTreeMap::new();
    let mut reader = csv::Reader::from_path(path).expect("vector csv");
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "frame",
            "source",
            "w",
            "h",
            "src_x",
            "src_y",
            "dst_x",
            "dst_y",
            "motion_x",
            "motion_y",
            "motion_scale"
        ]
    );
    for record in reader.records() {
        let row: Vec<i64> = record
            .unwrap()
            .iter()
            .map(|v| v.parse().expect("integer"))
            .collect();
        *out.entry(row[0] as u64)
            .or_default()
            .entry(row[1..].to_vec())
            .or_default() += 1;
    }
    out
}

fn read_types(path: &Path) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).expect("types csv");
    reader
        .records()
        .map(|r| r.unwrap()[1].to_string())
        .collect()
}

/// Runs dump_mvs and the PyAV reader on `input` and asserts the same vectors, frame by frame.
/// Returns (frames, vectors) cross-checked.
fn assert_vectors_match_pyav(input: &Path, name: &str) -> (usize, usize) {
    let dir = scratch(name);
    let ours = dir.join("vss.csv");
    let theirs = dir.join("pyav.csv");
    run(Command::new(example("dump_mvs")).arg(input).arg(&ours));
    run(Command::new(venv_python())
        .arg(root().join("tests/support/pyav_mvs.py"))
        .arg(input)
        .arg(&theirs));
    let (a, b) = (read_vectors(&ours), read_vectors(&theirs));
    let (ta, tb) = (
        read_types(&dir.join("vss.types.csv")),
        read_types(&dir.join("pyav.types.csv")),
    );
    assert_eq!(ta.len(), tb.len(), "frame counts differ");
    assert_eq!(ta, tb, "picture types differ");
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "frames with vectors differ"
    );
    let mut vectors = 0;
    for (frame, set) in &a {
        assert_eq!(Some(set), b.get(frame), "vectors of frame {frame} differ");
        vectors += set.values().sum::<usize>();
    }
    assert!(vectors > 0, "no vectors at all in {}", input.display());
    eprintln!(
        "{name}: {} frames, {vectors} vectors equal PyAV's",
        ta.len()
    );
    (ta.len(), vectors)
}

#[test]
fn dashcam_vectors_match_pyav() {
    init();
    let (frames, vectors) = assert_vectors_match_pyav(&dashcam(), "dashcam-pyav");
    assert_eq!(frames, 221);
    assert!(vectors > 100_000);
}

#[test]
fn mpeg4_part2_vectors_match_pyav() {
    init();
    let dir = scratch("mpeg4-encode");
    // AVI caps MPEG-4 Part 2 as video/x-divx, MP4 as video/mpeg: both must work.
    for container in ["avimux", "mp4mux"] {
        let clip = dir.join(format!("mpeg4-{container}"));
        encode(
            &format!(
                "videotestsrc num-buffers=48 pattern=pinwheel horizontal-speed=3 \
                 ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
                 ! avenc_mpeg4 gop-size=12 bitrate=600000 ! {container} ! filesink location={{out}}"
            ),
            &clip,
        );
        let (frames, _) = assert_vectors_match_pyav(&clip, &format!("mpeg4-pyav-{container}"));
        assert_eq!(frames, 48);
    }
}

#[test]
fn mpeg2_vectors_match_pyav() {
    init();
    let dir = scratch("mpeg2-encode");
    let clip = dir.join("mpeg2.ts");
    // GStreamer 1.22's avenc_mpeg2video rejects every frame rate (a gst-libav time-base bug),
    // so this clip comes from PyAV's encoder.
    run(Command::new(venv_python())
        .arg(root().join("tests/support/encode_pyav.py"))
        .args(["mpeg2video", "36"])
        .arg(&clip));
    let (frames, _) = assert_vectors_match_pyav(&clip, "mpeg2-pyav");
    assert_eq!(frames, 36);
}

/// Decodes `file` through `demux_parse ! DECODER ! appsink` with vssdec and with libav's own
/// decoder: (ours, theirs).
fn decode_with_both(file: &Path, demux_parse: &str, reference: &str) -> (Vec<Frame>, Vec<Frame>) {
    let desc = |dec: &str| {
        format!(
            "filesrc location={} ! {demux_parse} ! {dec} ! appsink name=sink",
            file.display()
        )
    };
    (
        decode_frames(&desc("vssdec")).0,
        decode_frames(&desc(reference)).0,
    )
}

/// Same libavcodec underneath: vssdec must give avdec_h264's frames, timestamps and pixels.
#[test]
fn timestamps_and_pixels_match_avdec_h264() {
    init();
    let (ours, theirs) = decode_with_both(&dashcam(), "qtdemux ! h264parse", "avdec_h264");
    assert_eq!(ours.len(), 221);
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!((a.pts, a.duration), (b.pts, b.duration), "frame {i} timing");
        assert_eq!(a.checksum, b.checksum, "frame {i} pixels");
    }
    // Every frame carries the meta; keyframes carry no vectors, P-frames do.
    for (i, f) in ours.iter().enumerate() {
        let kind = f
            .picture_type
            .unwrap_or_else(|| panic!("frame {i} has no motion meta"));
        assert!(f.vectors_available);
        match kind {
            PictureType::I => assert!(f.keyframe && f.vectors.is_empty(), "frame {i}"),
            PictureType::P => assert!(!f.keyframe && !f.vectors.is_empty(), "frame {i}"),
            other => panic!("unexpected {other:?} in a P-only clip"),
        }
    }
}

#[test]
fn bframes_come_out_in_presentation_order() {
    init();
    let dir = scratch("bframes");
    let clip = dir.join("bframes.mp4");
    encode(
        "videotestsrc num-buffers=60 pattern=pinwheel horizontal-speed=4 \
         ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
         ! x264enc bframes=2 b-adapt=false ref=3 key-int-max=12 speed-preset=ultrafast \
         ! mp4mux ! filesink location={out}",
        &clip,
    );
    let (ours, theirs) = decode_with_both(&clip, "qtdemux ! h264parse", "avdec_h264");
    assert_eq!(ours.len(), 60);
    let pts: Vec<_> = ours.iter().map(|f| f.pts.expect("pts")).collect();
    assert!(
        pts.windows(2).all(|w| w[0] < w[1]),
        "not in presentation order: {pts:?}"
    );
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a.pts, b.pts, "frame {i}");
        assert_eq!(a.checksum, b.checksum, "frame {i} pixels");
    }
    let b_frames: Vec<_> = ours
        .iter()
        .filter(|f| f.picture_type == Some(PictureType::B))
        .collect();
    assert!(!b_frames.is_empty(), "encoder made no B-frames");
    assert!(
        b_frames
            .iter()
            .any(|f| f.vectors.iter().any(|v| v.source > 0)),
        "B-frames carry no future-referencing vectors"
    );
}

#[test]
fn hevc_decodes_and_says_no_vectors() {
    init();
    let dir = scratch("hevc");
    let clip = dir.join("hevc.mkv");
    encode(
        "videotestsrc num-buffers=24 pattern=pinwheel horizontal-speed=2 \
         ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
         ! x265enc key-int-max=12 speed-preset=ultrafast ! h265parse \
         ! matroskamux ! filesink location={out}",
        &clip,
    );
    let (ours, theirs) = decode_with_both(&clip, "matroskademux ! h265parse", "avdec_h265");
    assert_eq!(ours.len(), 24);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!((a.pts, a.checksum), (b.pts, b.checksum), "frame {i}");
        assert!(a.picture_type.is_some(), "frame {i} has no meta");
        assert!(!a.vectors_available && a.vectors.is_empty(), "frame {i}");
    }
}

/// The access units of a small P-only H.264 clip (GOP 12), with their caps.
fn h264_access_units(frames: u32) -> (gst::Caps, Vec<gst::Buffer>) {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=pinwheel horizontal-speed=3 \
         ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
         ! x264enc bframes=0 key-int-max=12 speed-preset=ultrafast tune=zerolatency \
         ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=sink sync=false"
    ))
    .unwrap();
    let sink = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .unwrap()
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut caps = None;
    let mut units = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        caps.get_or_insert_with(|| sample.caps().unwrap().to_owned());
        units.push(sample.buffer_owned().unwrap());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (caps.unwrap(), units)
}

struct HarnessRun {
    frames: Vec<Frame>,
    warnings: usize,
    errors: usize,
}

/// Pushes access units through vssdec in a Harness, then EOS; collects output and bus messages.
fn decode_in_harness(caps: &gst::Caps, units: Vec<gst::Buffer>, threads: i32) -> HarnessRun {
    let mut h = gst_check::Harness::new("vssdec");
    h.element().unwrap().set_property("max-threads", threads);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.set_src_caps(caps.clone());
    h.play();
    for unit in units {
        let flow = h.push(unit);
        assert!(flow.is_ok(), "push failed: {flow:?}");
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let mut frames = Vec::new();
    while let Some(buffer) = h.try_pull() {
        frames.push(Frame::from_buffer(&buffer));
    }
    let (mut warnings, mut errors) = (0, 0);
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Warning(_) => warnings += 1,
            gst::MessageView::Error(_) => errors += 1,
            _ => {}
        }
    }
    HarnessRun {
        frames,
        warnings,
        errors,
    }
}

/// Frames from `from_pts` on must be bit-identical to the clean decode.
fn assert_recovered(case: &str, clean: &[Frame], damaged: &[Frame], from_pts: gst::ClockTime) {
    let by_pts: HashMap<_, _> = damaged.iter().map(|f| (f.pts, f.checksum)).collect();
    let expected: Vec<_> = clean.iter().filter(|f| f.pts >= Some(from_pts)).collect();
    assert!(!expected.is_empty());
    for f in expected {
        assert_eq!(
            by_pts.get(&f.pts),
            Some(&f.checksum),
            "{case}: frame at {:?} not recovered after the keyframe at {from_pts}",
            f.pts
        );
    }
}

#[test]
fn harness_output_carries_meta_on_every_frame() {
    init();
    let (caps, units) = h264_access_units(30);
    let run = decode_in_harness(&caps, units, 0);
    assert_eq!(run.frames.len(), 30);
    assert_eq!(run.errors + run.warnings, 0);
    let first = &run.frames[0];
    assert_eq!(first.picture_type, Some(PictureType::I));
    assert!(first.keyframe && first.vectors.is_empty());
    assert!(
        run.frames[1..12]
            .iter()
            .all(|f| f.picture_type == Some(PictureType::P))
    );
    assert!(run.frames[12].keyframe);
}

#[test]
fn corrupt_input_is_survived_and_recovers_at_next_keyframe() {
    init();
    // One thread, and frame threads, whose errors surface on a later packet than their own.
    for threads in [1, 4] {
        corrupt_cases(threads);
    }
}

fn corrupt_cases(threads: i32) {
    let (caps, units) = h264_access_units(48);
    let clean = decode_in_harness(&caps, units.clone(), threads).frames;
    assert_eq!(clean.len(), 48);
    let keyframe_pts = |i: usize| units[i].pts().unwrap();

    // Flipped bytes in two P-frames of the first GOP.
    let mut flipped = units.clone();
    for i in [3usize, 7] {
        let b = flipped[i].make_mut();
        let mut map = b.map_writable().unwrap();
        let len = map.len();
        for k in (len / 3..len).step_by(7) {
            map[k] ^= 0x5a;
        }
    }
    let run = decode_in_harness(&caps, flipped, threads);
    assert_eq!(run.errors, 0);
    assert_recovered("flipped bytes", &clean, &run.frames, keyframe_pts(12));

    // A truncated packet.
    let mut truncated = units.clone();
    let half = truncated[15].size() / 2;
    truncated[15] = truncated[15]
        .copy_region(gst::BufferCopyFlags::all(), 0..half)
        .unwrap();
    let run = decode_in_harness(&caps, truncated, threads);
    assert_eq!(run.errors, 0);
    assert_recovered("truncated packet", &clean, &run.frames, keyframe_pts(24));

    // A missing keyframe: the GOP after it decodes from stale references at best.
    let mut missing = units.clone();
    missing.remove(24);
    let run = decode_in_harness(&caps, missing, threads);
    assert_eq!(run.errors, 0);
    assert!(run.frames.len() <= 47);
    assert_recovered("missing keyframe", &clean, &run.frames, keyframe_pts(36));

    // Pure garbage in place of a P-frame. No zero bytes: random start codes could forge
    // parameter sets, which would legitimately change how later keyframes decode.
    let mut garbage = units.clone();
    let junk: Vec<u8> = (0..2000u32)
        .map(|i| ((i.wrapping_mul(2654435761) >> 13) % 255) as u8 + 1)
        .collect();
    let mut junk = gst::Buffer::from_mut_slice(junk);
    {
        let j = junk.get_mut().unwrap();
        j.set_pts(garbage[30].pts());
        j.set_flags(gst::BufferFlags::DELTA_UNIT);
    }
    garbage[30] = junk;
    let run = decode_in_harness(&caps, garbage, threads);
    assert_eq!(run.errors, 0);
    assert!(run.warnings > 0, "garbage decoded without a warning");
    assert_recovered("garbage", &clean, &run.frames, keyframe_pts(36));
}

#[test]
fn seek_mid_gop_yields_the_frames_of_a_linear_decode() {
    init();
    let desc = format!(
        "filesrc location={} ! qtdemux ! h264parse ! vssdec ! appsink name=sink sync=false",
        dashcam().display()
    );
    let (linear, _) = decode_frames(&desc);
    let by_pts: HashMap<_, _> = linear.iter().map(|f| (f.pts, f.checksum)).collect();

    let pipeline = gst::parse::launch(&desc).unwrap();
    let sink = pipeline
        .clone()
        .downcast::<gst::Bin>()
        .unwrap()
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let bus = pipeline.bus().unwrap();
    bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::AsyncDone],
    )
    .expect("preroll");

    // Frame 45 sits mid-GOP (keyframes every 30 frames).
    for (target_frame, frames_to_check) in [(45usize, 20usize), (100, 15), (17, 10)] {
        let target = linear[target_frame].pts.unwrap();
        pipeline
            .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, target)
            .expect("seek");
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut first = true;
        for _ in 0..frames_to_check {
            let sample = sink
                .try_pull_sample(gst::ClockTime::from_seconds(10))
                .expect("frame after seek");
            let buffer = sample.buffer().unwrap();
            let frame = Frame::from_buffer(buffer);
            if first {
                assert_eq!(frame.pts, Some(target), "first frame after seek");
                first = false;
            }
            assert_eq!(
                by_pts.get(&frame.pts),
                Some(&frame.checksum),
                "frame at {:?} after seeking to frame {target_frame}",
                frame.pts
            );
            assert!(buffer.meta::<MotionMeta>().is_some());
        }
        pipeline.set_state(gst::State::Paused).unwrap();
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// The latency query reports the frames libavcodec holds back: frame threading adds one frame
/// per extra thread; slice threading on a P-only stream adds none.
#[test]
fn latency_query_reports_the_decoder_delay() {
    init();
    let latency_with = |props: &str| {
        let pipeline = gst::parse::launch(&format!(
            "filesrc location={} ! qtdemux ! h264parse ! vssdec name=dec {props} ! fakesink",
            dashcam().display()
        ))
        .unwrap();
        pipeline.set_state(gst::State::Paused).unwrap();
        pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::AsyncDone],
            )
            .expect("preroll");
        // Asked at the decoder itself: a non-live sink reports no latency for the pipeline.
        let dec = pipeline
            .clone()
            .downcast::<gst::Bin>()
            .unwrap()
            .by_name("dec")
            .unwrap();
        let mut q = gst::query::Latency::new();
        assert!(dec.static_pad("src").unwrap().query(&mut q));
        pipeline.set_state(gst::State::Null).unwrap();
        q.result().1
    };
    let frame = gst::ClockTime::from_mseconds(40); // 25 fps
    assert_eq!(latency_with("max-threads=4 thread-type=frame"), frame * 3);
    assert_eq!(latency_with("max-threads=1"), gst::ClockTime::ZERO);
    assert_eq!(
        latency_with("max-threads=4 thread-type=slice"),
        gst::ClockTime::ZERO
    );
}

/// `readelf -d` of a plugin in `target/<profile>` (next to this test's `deps/`): its DT_NEEDED
/// libraries and its DT_RPATH/DT_RUNPATH entries.
fn dynamic_section(file: &str) -> (Vec<String>, Vec<String>) {
    let exe = std::env::current_exe().expect("current_exe");
    let so = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join(file);
    assert!(
        so.exists(),
        "{} is missing (cargo build --release --workspace builds it)",
        so.display()
    );
    let out = Command::new("readelf")
        .args(["-d", "--wide"])
        .arg(&so)
        .output()
        .unwrap_or_else(|e| panic!("running readelf on {}: {e}", so.display()));
    assert!(out.status.success(), "readelf -d {} failed", so.display());
    let text = String::from_utf8_lossy(&out.stdout);
    // e.g. ` 0x...01 (NEEDED)  Shared library: [libavcodec.so.59]`
    let bracketed = |tags: &[&str]| -> Vec<String> {
        text.lines()
            .filter(|l| tags.iter().any(|t| l.contains(t)))
            .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
            .collect()
    };
    (
        bracketed(&["(NEEDED)"]),
        bracketed(&["(RPATH)", "(RUNPATH)"]),
    )
}

/// A decode-only pipeline (or `gst-inspect-1.0 vssdec`) must not load libtorch: it costs
/// ~0.25 s and ~90 MB at start. libgstvss.so, which does link it, shows the check finds it.
#[test]
fn decoder_plugin_links_no_libtorch() {
    let is_torch = |lib: &String| lib.contains("torch") || lib.starts_with("libc10");
    let (needed, rpaths) = dynamic_section("libgstvsscodec.so");
    assert!(
        needed.iter().any(|l| l.starts_with("libavcodec")),
        "libgstvsscodec.so needs no libavcodec? {needed:?}"
    );
    assert!(
        !needed.iter().any(is_torch),
        "libgstvsscodec.so links libtorch: {needed:?}"
    );
    assert!(
        !rpaths.iter().any(|p| p.contains("torch")),
        "libgstvsscodec.so has a torch rpath: {rpaths:?}"
    );
    let (needed, _) = dynamic_section("libgstvss.so");
    assert!(
        needed.iter().any(is_torch),
        "libgstvss.so's dynamic section shows no libtorch, so the check above proves nothing: \
         {needed:?}"
    );
}
