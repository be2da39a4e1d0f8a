//! The README's gst-launch cookbook, run from the README itself so the commands cannot drift:
//! each `<!-- cookbook: NAME -->` block is parsed, adapted for a test and played to EOS, and
//! what it produced is checked.
//!
//! Adaptations, each asserted to apply so that a changed recipe fails here instead of passing
//! untested: the clip's relative path becomes absolute; output files go to a scratch folder;
//! `autovideosink` becomes an appsink the test reads (RGB for the side-by-side recipes); the
//! RTSP source (`rtspsrc ... ! rtph264depay`) becomes `filesrc ! qtdemux` on the clip, after
//! the original command has been checked to parse (elements and properties exist). A pad probe
//! on vssdec's src pad ends each run after 24 frames (EOS downstream, later frames dropped),
//! leaving the description as written.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::prelude::*;
use gstvss::meta::SegmentationMeta;

const FRAMES: usize = 24;
const CLIP: &str = "examples/data/highway_dashcam_960x540.mp4";
const SINK: &str = "appsink name=cookbook_sink sync=false";

/// The recipe `name` of the README's cookbook, as a gst-launch description (continuations
/// joined, `gst-launch-1.0` and its options dropped).
fn recipe(name: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let marker = format!("<!-- cookbook: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let block = after
        .trim_start()
        .strip_prefix("```sh\n")
        .unwrap_or_else(|| panic!("{marker} is not followed by a ```sh block"));
    let block = &block[..block.find("```").expect("closing fence")];
    let command = block.replace("\\\n", " ");
    let mut words = command.split_whitespace().peekable();
    assert_eq!(words.next(), Some("gst-launch-1.0"), "{name}: {command}");
    while words.next_if(|w| w.starts_with('-')).is_some() {}
    words.collect::<Vec<_>>().join(" ")
}

/// Replaces `from` with `to`, which must occur.
fn adapt(description: &str, from: &str, to: &str) -> String {
    assert!(
        description.contains(from),
        "the recipe no longer contains {from:?}: {description}"
    );
    description.replace(from, to)
}

/// The clip's path made absolute.
fn on_clip(description: &str) -> String {
    adapt(description, CLIP, &root().join(CLIP).to_string_lossy())
}

/// Sends EOS downstream of each of the pipeline's vssdecs after FRAMES frames and drops the
/// rest.
fn limit_frames(pipeline: &gst::Pipeline) {
    let vssdecs: Vec<gst::Element> = pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.factory().is_some_and(|f| f.name() == "vssdec"))
        .collect();
    assert!(!vssdecs.is_empty(), "a vssdec in the recipe");
    for vssdec in vssdecs {
        let seen = std::sync::atomic::AtomicUsize::new(0);
        vssdec
            .static_pad("src")
            .expect("vssdec src pad")
            .add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
                let seen = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if seen <= FRAMES {
                    return gst::PadProbeReturn::Ok;
                }
                if seen == FRAMES + 1
                    && let Some(peer) = pad.peer()
                {
                    peer.send_event(gst::event::Eos::new());
                }
                gst::PadProbeReturn::Drop
            })
            .expect("probe");
    }
}

/// Plays `description` (which has a vssdec) to EOS on its first FRAMES frames; returns what
/// reached `cookbook_sink` if there is one.
fn play(description: &str) -> Vec<gst::Sample> {
    play_with(description, limit_frames)
}

fn play_with(description: &str, prepare: impl FnOnce(&gst::Pipeline)) -> Vec<gst::Sample> {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
    prepare(&pipeline);
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(sink) = pipeline.by_name("cookbook_sink") {
        let sink = sink.downcast::<gst_app::AppSink>().expect("appsink");
        let s = samples.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    s.lock().unwrap().push(sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    run_to_eos(pipeline.upcast_ref());
    std::mem::take(&mut *samples.lock().unwrap())
}

/// The clip's first frames as packed RGB, decoded the plain way.
fn original_rgb() -> Vec<Vec<u8>> {
    let samples = play(&on_clip(&format!(
        "filesrc location={CLIP} ! qtdemux ! h264parse ! vssdec ! videoconvert \
         ! video/x-raw,format=RGB ! {SINK}"
    )));
    assert_eq!(samples.len(), FRAMES);
    samples.iter().map(|s| packed(s).2).collect()
}

/// Width, height and packed rows (no padding) of a single-plane sample.
fn packed(sample: &gst::Sample) -> (u32, u32, Vec<u8>) {
    let info = gst_video::VideoInfo::from_caps(sample.caps().expect("caps")).expect("video");
    let buffer = sample.buffer().expect("buffer");
    let frame =
        gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).expect("readable");
    let row = info.width() as usize * info.comp_pstride(0) as usize;
    let pixels = frame
        .plane_data(0)
        .expect("plane 0")
        .chunks(frame.plane_stride()[0] as usize)
        .take(info.height() as usize)
        .flat_map(|r| &r[..row])
        .copied()
        .collect();
    (info.width(), info.height(), pixels)
}

#[test]
fn overlay_mp4_recipe_writes_the_blended_clip() {
    let dir = scratch("cookbook-overlay-mp4");
    let out = dir.join("overlay.mp4");
    let description = adapt(
        &on_clip(&recipe("overlay-mp4")),
        "location=overlay.mp4",
        &format!("location={}", out.display()),
    );
    play(&description);
    // Every frame of the file, with GStreamer's own decoder.
    let written = play_with(
        &format!(
            "filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! videoconvert \
             ! video/x-raw,format=RGB ! {SINK}",
            out.display()
        ),
        |_| {},
    );
    assert_eq!(written.len(), FRAMES, "frames in {}", out.display());
    let original = original_rgb();
    for (i, (sample, plain)) in written.iter().zip(&original).enumerate() {
        let (w, h, rgb) = packed(sample);
        assert_eq!((w, h), (960, 540));
        // x264 alone stays within a few levels; the half-opaque class colours do not.
        let diff = mean_abs_diff(&rgb, plain);
        assert!(
            diff > 10.0,
            "frame {i}: overlay.mp4 is the plain clip ({diff:.2})"
        );
    }
}

#[test]
fn rtsp_recipe_segments_every_frame() {
    let original = recipe("rtsp-display");
    init();
    // The RTSP command as written must at least build: its elements and properties exist.
    gst::parse::launch(&original).unwrap_or_else(|e| panic!("{original}: {e}"));
    let source = original
        .split(" ! h264parse")
        .next()
        .expect("source part")
        .to_string();
    assert!(
        source.starts_with("rtspsrc ") && source.ends_with("! rtph264depay"),
        "{source}"
    );
    let from_file = adapt(
        &original,
        &source,
        &format!("filesrc location={CLIP} ! qtdemux"),
    );
    let description = adapt(&on_clip(&from_file), "autovideosink", SINK);
    let samples = play(&description);
    assert_eq!(samples.len(), FRAMES);
    for (i, sample) in samples.iter().enumerate() {
        let buffer = sample.buffer().expect("buffer");
        let seg = buffer
            .meta::<SegmentationMeta>()
            .unwrap_or_else(|| panic!("frame {i} without segmentation"));
        assert_eq!(
            seg.segmentation().keyframe,
            i % 12 == 0,
            "frame {i}: default interval 12"
        );
        let (w, h, _) = packed(sample);
        assert_eq!((w, h), (960, 540));
    }
}

#[test]
fn multi_camera_recipe_segments_every_camera_with_one_loaded_model() {
    let original = recipe("multi-camera");
    init();
    // The RTSP command as written must at least build: its elements and properties exist.
    gst::parse::launch(&original).unwrap_or_else(|e| panic!("{original}: {e}"));
    // Each camera's branch from the clip instead, each into an appsink of its own.
    let branches: Vec<&str> = original
        .split("rtspsrc ")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert!(branches.len() >= 2, "{original}");
    let mut description = String::new();
    for (i, branch) in branches.iter().enumerate() {
        let (_, rest) = branch
            .split_once("! rtph264depay")
            .unwrap_or_else(|| panic!("camera {i}: no rtph264depay: {branch}"));
        assert!(rest.contains("model-instance-id="), "camera {i}: {rest}");
        let rest = adapt(
            rest,
            "autovideosink",
            &format!("appsink name=camera{i} sync=false"),
        );
        description.push_str(&format!("filesrc location={CLIP} ! qtdemux {rest} "));
    }
    let description = on_clip(&description);
    let pipeline = gst::parse::launch(&description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
    limit_frames(&pipeline);
    let counts: Vec<std::sync::Arc<std::sync::Mutex<(usize, usize)>>> = (0..branches.len())
        .map(|i| {
            let sink = pipeline
                .by_name(&format!("camera{i}"))
                .expect("appsink")
                .downcast::<gst_app::AppSink>()
                .expect("appsink");
            // (frames, frames with a segmentation meta)
            let count = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
            let c = count.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let segmented = sample
                            .buffer()
                            .is_some_and(|b| b.meta::<SegmentationMeta>().is_some());
                        let mut c = c.lock().unwrap();
                        c.0 += 1;
                        c.1 += usize::from(segmented);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            count
        })
        .collect();
    let loads = gstvss::model::instances::loads("cams");
    run_to_eos(pipeline.upcast_ref());
    assert_eq!(
        gstvss::model::instances::loads("cams") - loads,
        1,
        "the cameras share one loaded model"
    );
    for (i, count) in counts.iter().enumerate() {
        let (frames, segmented) = *count.lock().unwrap();
        assert_eq!((frames, segmented), (FRAMES, FRAMES), "camera {i}");
    }
}

#[test]
fn mask_png_recipe_writes_the_class_maps() {
    let dir = scratch("cookbook-mask-png");
    let pattern = dir.join("mask-%05d.png");
    let description = adapt(
        &on_clip(&recipe("mask-png")),
        "location=mask-%05d.png",
        &format!("location={}", pattern.display()),
    );
    play(&description);
    // The class maps of the same frames, from the meta.
    let maps: Vec<_> = play(&on_clip(&format!(
        "filesrc location={CLIP} ! qtdemux ! h264parse ! vssdec ! vsssegment overlay=none \
         ! {SINK}"
    )))
    .iter()
    .map(|s| {
        let buffer = s.buffer().expect("buffer");
        let meta = buffer.meta::<SegmentationMeta>().expect("meta");
        meta.segmentation().clone()
    })
    .collect();
    assert_eq!(maps.len(), FRAMES);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scratch dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), FRAMES, "{files:?}");
    for (i, (path, seg)) in files.iter().zip(&maps).enumerate() {
        assert_eq!(path, &dir.join(format!("mask-{i:05}.png")));
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(path).expect("png"),
        ));
        let mut reader = decoder.read_info().expect("png header");
        let mut pixels = vec![0u8; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut pixels).expect("png data");
        assert_eq!(
            (info.width, info.height, info.color_type, info.bit_depth),
            (
                seg.width,
                seg.height,
                png::ColorType::Grayscale,
                png::BitDepth::Eight
            ),
            "{}",
            path.display()
        );
        assert!(
            pixels[..info.buffer_size()] == seg.class_map[..],
            "{} differs from frame {i}'s class map",
            path.display()
        );
    }
}

/// Runs a side-by-side recipe and returns (left, right) halves of each output frame as RGB.
fn side_by_side(name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let description = adapt(
        &on_clip(&recipe(name)),
        "autovideosink",
        &format!("video/x-raw,format=RGB ! {SINK}"),
    );
    let samples = play(&description);
    assert_eq!(samples.len(), FRAMES, "{name}");
    samples
        .iter()
        .map(|s| {
            let (w, h, rgb) = packed(s);
            assert_eq!((w, h), (1920, 540), "{name}");
            let (mut left, mut right) = (Vec::new(), Vec::new());
            for row in rgb.chunks(1920 * 3) {
                left.extend_from_slice(&row[..960 * 3]);
                right.extend_from_slice(&row[960 * 3..]);
            }
            (left, right)
        })
        .collect()
}

#[test]
fn side_by_side_recipe_shows_the_original_beside_the_overlay() {
    let halves = side_by_side("side-by-side");
    let original = original_rgb();
    for (i, ((left, right), plain)) in halves.iter().zip(&original).enumerate() {
        let left_diff = mean_abs_diff(left, plain);
        let right_diff = mean_abs_diff(right, plain);
        // Through the compositor's YUV the original comes back within rounding.
        assert!(
            left_diff < 3.0,
            "frame {i}: left half is not the original ({left_diff:.2})"
        );
        assert!(
            right_diff > 10.0,
            "frame {i}: right half has no overlay ({right_diff:.2})"
        );
    }
}

#[test]
fn beside_mask_recipe_shows_the_original_beside_the_colour_mask() {
    let halves = side_by_side("beside-mask");
    let original = original_rgb();
    let manifest =
        gstvss::model::Manifest::read(&root().join("models/bundles/camvid-espnet/manifest.json"))
            .expect("default bundle manifest");
    let palette: Vec<[u8; 3]> = manifest.classes.iter().map(|c| c.color).collect();
    for (i, ((left, right), plain)) in halves.iter().zip(&original).enumerate() {
        let left_diff = mean_abs_diff(left, plain);
        assert!(
            left_diff < 3.0,
            "frame {i}: left half is not the original ({left_diff:.2})"
        );
        // The mask is flat colour regions, far from the picture.
        let right_diff = mean_abs_diff(right, plain);
        assert!(
            right_diff > 20.0,
            "frame {i}: right half is not a mask ({right_diff:.2})"
        );
        let mut colours: Vec<[u8; 3]> = right.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        colours.sort_unstable();
        colours.dedup();
        // vssmask's RGBA reaches the compositor's output unchanged: only palette colours.
        let stray: Vec<_> = colours.iter().filter(|c| !palette.contains(c)).collect();
        assert!(
            stray.is_empty(),
            "frame {i}: mask half has colours outside the palette: {stray:?}"
        );
        assert!(colours.len() > 3, "frame {i}: only {colours:?}");
    }
}
