//! Embedding in media apps without Rust: the Python (PyGObject) and C examples read vssmask's
//! class-id masks through the plugin on GST_PLUGIN_PATH and print the same per-class shares,
//! keyframes and branches as vsssegment's meta says for the same frames; include/vss/vss.h
//! names what the elements really produce.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use gst::prelude::*;
use gstvss::meta::SegmentationMeta;

/// Frames the examples run on: keyframes 0, 12 and 24 and the warped frames between.
const FRAMES: usize = 30;
/// Shares are printed with 6 decimals.
const PRINT_TOLERANCE: f64 = 1e-6;

fn clip() -> PathBuf {
    root().join("examples/data/highway_dashcam_960x540.mp4")
}

/// A tool the test needs: in CI its absence fails the test; elsewhere the test says why it
/// skips.
fn require(tool: &str, available: bool, hint: &str) -> bool {
    if available {
        return true;
    }
    assert!(!in_ci(), "{tool} is missing in CI: {hint}");
    eprintln!("SKIPPED: {tool} is missing ({hint}); CI=true makes this a failure");
    false
}

/// Runs an example program on the plugin as an application would load it, with its own
/// registry so that no cached state from elsewhere plays in.
fn run_example(cmd: &mut Command, scratch: &Path) -> String {
    let out = cmd
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", scratch.join("registry.bin"))
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What the meta and the vss-segment message say about one frame.
struct Reference {
    pts: gst::ClockTime,
    keyframe: bool,
    branch: String,
    classes: Vec<String>,
    shares: Vec<f64>,
}

/// The first FRAMES frames through vsssegment in this process: the meta of each, the
/// vss-segment messages, and the caps of vssmask's masks of the same frames.
struct Run {
    frames: Vec<Reference>,
    messages: Vec<gst::Structure>,
    mask_caps: gst::Caps,
}

fn reference() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        init();
        let pipeline = gst::parse::launch(&format!(
            "filesrc location={} ! qtdemux ! h264parse ! vssdec \
             ! vsssegment overlay=none stats=true ! tee name=t \
             t. ! queue ! appsink name=sink sync=false \
             t. ! queue ! vssmask output=class-ids resolution=model \
             ! appsink name=masks sync=false",
            clip().display()
        ))
        .expect("reference pipeline")
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
        let sink = |name: &str| {
            pipeline
                .by_name(name)
                .expect("appsink")
                .downcast::<gst_app::AppSink>()
                .expect("appsink")
        };
        let (sink, masks) = (sink("sink"), sink("masks"));
        let bus = pipeline.bus().expect("bus");
        pipeline.set_state(gst::State::Playing).expect("PLAYING");
        let mut frames = Vec::new();
        let mut messages = Vec::new();
        let mut mask_caps = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while frames.len() < FRAMES || mask_caps.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "reference run timed out"
            );
            // Popping discards other types: keep the element messages while looking for errors.
            while let Some(m) =
                bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Element])
            {
                match (m.view(), m.structure()) {
                    (gst::MessageView::Error(e), _) => panic!("reference run: {e:?}"),
                    (_, Some(s)) => messages.push(s.to_owned()),
                    _ => {}
                }
            }
            if mask_caps.is_none()
                && let Some(s) = masks.try_pull_sample(gst::ClockTime::from_mseconds(10))
            {
                mask_caps = s.caps_owned();
            }
            if frames.len() < FRAMES
                && let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(10))
            {
                let buffer = s.buffer().expect("buffer");
                let meta = buffer
                    .meta::<SegmentationMeta>()
                    .expect("segmentation meta");
                let seg = meta.segmentation();
                frames.push(Reference {
                    pts: buffer.pts().expect("pts"),
                    keyframe: seg.keyframe,
                    branch: seg.branch.as_str().to_string(),
                    classes: seg.classes.iter().map(|c| c.name.clone()).collect(),
                    shares: seg.class_shares(),
                });
            }
        }
        messages.extend(
            std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Element]))
                .filter_map(|m| m.structure().map(|s| s.to_owned())),
        );
        pipeline.set_state(gst::State::Null).expect("NULL");
        Run {
            frames,
            messages,
            mask_caps: mask_caps.expect("mask caps"),
        }
    })
}

/// One line of the examples' output: frame, PTS, key or -, branch, Class=share...
struct Line {
    frame: usize,
    pts: String,
    keyframe: bool,
    branch: String,
    shares: Vec<(String, f64)>,
}

fn parse_line(line: &str) -> Line {
    let fields: Vec<&str> = line.split('\t').collect();
    assert!(fields.len() > 4, "short line: {line:?}");
    let keyframe = match fields[2] {
        "key" => true,
        "-" => false,
        other => panic!("keyframe field {other:?} in {line:?}"),
    };
    Line {
        frame: fields[0]
            .parse()
            .unwrap_or_else(|e| panic!("frame in {line:?}: {e}")),
        pts: fields[1].to_string(),
        keyframe,
        branch: fields[3].to_string(),
        shares: fields[4..]
            .iter()
            .map(|f| {
                let (name, share) = f
                    .rsplit_once('=')
                    .unwrap_or_else(|| panic!("{f:?} in {line:?}"));
                let share: f64 = share
                    .parse()
                    .unwrap_or_else(|e| panic!("{f:?} in {line:?}: {e}"));
                (name.to_string(), share)
            })
            .collect(),
    }
}

/// The example's lines against the meta of the same frames.
fn assert_matches_reference(program: &str, stdout: &str) {
    let reference = &reference().frames;
    let lines: Vec<Line> = stdout.lines().map(parse_line).collect();
    assert_eq!(lines.len(), FRAMES, "{program} printed:\n{stdout}");
    assert!(
        lines.iter().filter(|l| l.keyframe).count() >= 2,
        "{program}: fewer than two keyframes in {FRAMES} frames"
    );
    for (i, (line, want)) in lines.iter().zip(reference).enumerate() {
        let what = format!("{program} frame {i}");
        assert_eq!(line.frame, i, "{what}");
        assert_eq!(
            line.pts,
            format!("{:.3}", want.pts.nseconds() as f64 / 1e9),
            "{what}"
        );
        assert_eq!(
            (line.keyframe, line.branch.as_str()),
            (want.keyframe, want.branch.as_str()),
            "{what}"
        );
        let names: Vec<&str> = line.shares.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, want.classes, "{what}: class names (no `none`)");
        let sum: f64 = line.shares.iter().map(|(_, s)| s).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{what}: shares sum to {sum}");
        for ((name, got), want) in line.shares.iter().zip(&want.shares) {
            assert!(
                (got - want).abs() <= PRINT_TOLERANCE,
                "{what}: {name} {got} against the meta's {want}"
            );
        }
    }
}

#[test]
fn python_example_prints_what_the_meta_says() {
    let python = Path::new("/usr/bin/python3");
    let has_gi = Command::new(python)
        .args(["-c", "import gi; gi.require_version('Gst', '1.0')"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(
        "/usr/bin/python3 with PyGObject",
        has_gi,
        "scripts/setup.sh installs python3-gi and gir1.2-gstreamer-1.0",
    ) {
        return;
    }
    let scratch = scratch("embedding-python");
    let stdout = run_example(
        Command::new(python)
            .arg(root().join("examples/python/shares.py"))
            .arg(clip())
            .args(["--frames", &FRAMES.to_string()]),
        &scratch,
    );
    assert_matches_reference("shares.py", &stdout);
}

#[test]
fn c_example_builds_and_prints_what_the_meta_says() {
    let has_cc = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require("cc", has_cc, "scripts/setup.sh installs gcc") {
        return;
    }
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "gstreamer-1.0", "gstreamer-app-1.0"])
        .output()
        .expect("pkg-config (scripts/setup.sh installs it)");
    assert!(
        flags.status.success(),
        "pkg-config gstreamer-1.0 gstreamer-app-1.0: {}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).expect("utf-8 flags");
    let scratch = scratch("embedding-c");
    let program = scratch.join("shares");
    let out = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("include"))
        .arg("-o")
        .arg(&program)
        .arg(root().join("examples/c/shares.c"))
        .args(flags.split_whitespace())
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "examples/c/shares.c does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = run_example(
        Command::new(&program)
            .arg(clip())
            .args(["--frames", &FRAMES.to_string()]),
        &scratch,
    );
    assert_matches_reference("shares.c", &stdout);
}

/// `#define NAME VALUE /* comment */` lines of the header: NAME -> (VALUE, comment).
fn header_defines() -> HashMap<String, (String, String)> {
    let text = std::fs::read_to_string(root().join("include/vss/vss.h")).expect("vss.h");
    text.lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|l| {
            let (name, rest) = l.split_once(char::is_whitespace)?;
            let (value, comment) = match rest.split_once("/*") {
                Some((v, c)) => (v, c.trim_end_matches("*/")),
                None => (rest, ""),
            };
            Some((
                name.to_string(),
                (
                    value.trim().trim_matches('"').to_string(),
                    comment.trim().to_string(),
                ),
            ))
        })
        .collect()
}

#[test]
fn header_names_what_the_elements_produce() {
    let defines = header_defines();
    let value = |name: &str| -> &str {
        &defines
            .get(name)
            .unwrap_or_else(|| panic!("vss.h lacks {name}"))
            .0
    };
    let run = reference();

    for name in [
        "VSS_ELEMENT_DECODER",
        "VSS_ELEMENT_SEGMENT",
        "VSS_ELEMENT_MASK",
    ] {
        assert!(
            gst::ElementFactory::find(value(name)).is_some(),
            "{name} = {}",
            value(name)
        );
    }
    assert_eq!(
        value("VSS_CLASS_NONE"),
        gstvss::vssmask::render::CLASS_NONE.to_string()
    );
    let gray8: gst::Caps = value("VSS_MASK_CAPS_GRAY8").parse().expect("GRAY8 caps");
    assert!(run.mask_caps.is_subset(&gray8), "{}", run.mask_caps);
    let names = run.mask_caps.structure(0).expect("structure");
    let classes = names
        .get::<gst::Array>(value("VSS_MASK_FIELD_CLASSES"))
        .expect("the classes field of the mask caps");
    let classes: Vec<String> = classes.iter().map(|v| v.get().expect("string")).collect();
    assert_eq!(classes, run.frames[0].classes);
    // GST_ROUND_UP_4 is GStreamer's GRAY8 stride.
    assert_eq!(
        value("VSS_MASK_STRIDE_GRAY8(width)"),
        "GST_ROUND_UP_4 (width)"
    );
    for w in 1..=9u32 {
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, w, 2)
            .build()
            .expect("info");
        assert_eq!(info.stride()[0] as u32, (w + 3) & !3);
    }

    let message = value("VSS_SEGMENT_MESSAGE");
    let messages: Vec<&gst::Structure> = run
        .messages
        .iter()
        .filter(|s| s.name() == message)
        .collect();
    assert!(
        messages.len() >= FRAMES,
        "{} {message} messages",
        messages.len()
    );
    let fields: Vec<(&String, &(String, String))> = defines
        .iter()
        .filter(|(n, _)| n.starts_with("VSS_SEGMENT_FIELD_") && !n.ends_with("SHARE_PREFIX"))
        .collect();
    assert!(fields.len() >= 8, "{fields:?}");
    for (define, (field, comment)) in fields {
        let gtype = comment.split(':').next().unwrap_or_default().trim();
        let optional = comment.contains("optional");
        let carrying: Vec<&&gst::Structure> =
            messages.iter().filter(|s| s.has_field(field)).collect();
        if optional {
            assert!(!carrying.is_empty(), "{define}: no message has {field}");
        } else {
            assert_eq!(carrying.len(), messages.len(), "{define}: {field} missing");
        }
        for s in carrying {
            let got = s.value(field).expect("field").type_().name();
            assert_eq!(got, gtype, "{define}: {field} is {got}, vss.h says {gtype}");
        }
    }
    let prefix = value("VSS_SEGMENT_FIELD_SHARE_PREFIX");
    for s in &messages {
        let shares: Vec<f64> = s
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, v)| v.get::<f64>().expect("share is a gdouble"))
            .collect();
        assert_eq!(shares.len(), classes.len(), "{s}");
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{s}");
    }
}

/// gst-launch (the plugin loaded from GST_PLUGIN_PATH, as users run it) must exit cleanly
/// after a run whose last keyframe was still being inferred in the background at EOS: that
/// job used to outlive the pipeline, and libtorch's exit-time destructors crashed under it
/// (SIGSEGV in oneDNN after "Freeing pipeline"). `--gst-disable-segtrap` turns a crash into a
/// failed exit status instead of gst-launch's wait-for-a-debugger loop. Several runs, since
/// whether a keyframe is in flight at EOS depends on timing.
#[test]
fn gst_launch_exits_cleanly_after_async_keyframes() {
    let clip = clip();
    for run in 0..4 {
        let output = Command::new("timeout")
            .args([
                "120",
                "gst-launch-1.0",
                "-q",
                "--gst-disable-segtrap",
                "filesrc",
            ])
            .arg(format!("location={}", clip.display()))
            .args([
                "!",
                "qtdemux",
                "!",
                "h264parse",
                "!",
                "vssdec",
                "!",
                "vsssegment",
            ])
            .args([
                "mode=warp",
                "async-keyframes=true",
                "keyframe-interval=6",
                "overlay=none",
            ])
            .args(["!", "fakesink"])
            .env("GST_PLUGIN_PATH", plugin_dir())
            .output()
            .expect("gst-launch-1.0 runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !stderr.contains("SIGSEGV"),
            "run {run}: gst-launch-1.0 ended with {} and stderr:\n{stderr}",
            output.status
        );
    }
}
