//! vssmask: every output and resolution renders the meta's class map, caps (with the class names)
//! go out before the held-back segment and change with the properties, frames without the meta
//! are an error first and a blank mask later, matte needs a known class, and on the shipped
//! clip the masks follow vsssegment's meta and compose with videoconvert.

mod common;

use std::sync::Arc;

use common::*;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use gstvss::meta::{Segmentation, SegmentationMeta};
use gstvss::model::ClassInfo;
use gstvss::vssmask::render::CLASS_NONE;

/// Input frames: 10x6 RGB at 25 fps, larger than the 4x3 class maps and not a multiple.
const FRAME_W: u32 = 10;
const FRAME_H: u32 = 6;
const MAP_W: u32 = 4;
const MAP_H: u32 = 3;

fn classes() -> Arc<[ClassInfo]> {
    ["Sky", "Road", "Car", "Traffic light"]
        .iter()
        .enumerate()
        .map(|(id, name)| ClassInfo {
            id: id as u32,
            name: name.to_string(),
            color: [40 * id as u8 + 10, 255 - 50 * id as u8, 7 * id as u8],
        })
        .collect()
}

/// A 4x3 class map using every class, different for each `n`.
fn segmentation(n: u64) -> Segmentation {
    let map: Vec<u8> = (0..MAP_W * MAP_H)
        .map(|i| ((u64::from(i) * 5 + n) % 4) as u8)
        .collect();
    Segmentation {
        width: MAP_W,
        height: MAP_H,
        class_map: Arc::from(map),
        classes: classes(),
        keyframe: n == 0,
        distance: n as u32,
        model: Arc::from("synthetic"),
        ..Default::default()
    }
}

fn input_info() -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, FRAME_W, FRAME_H)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .expect("video info")
}

/// Frame `n` (25 fps timestamps), with the segmentation of `n` unless `meta` is false.
fn frame(n: u64, meta: bool) -> gst::Buffer {
    let mut buffer = gst::Buffer::with_size(input_info().size()).expect("buffer");
    {
        let b = buffer.get_mut().expect("fresh buffer");
        b.set_pts(gst::ClockTime::from_mseconds(40 * n));
        b.set_dts(gst::ClockTime::from_mseconds(40 * n));
        b.set_duration(gst::ClockTime::from_mseconds(40));
        b.set_offset(n);
        if n == 0 {
            b.set_flags(gst::BufferFlags::DISCONT);
        }
        if meta {
            SegmentationMeta::add(b, segmentation(n));
        }
    }
    buffer
}

/// A started vssmask with `properties` (as gst-launch writes them) and a bus to read.
fn harness(properties: &[(&str, &str)]) -> (Harness, gst::Bus) {
    init();
    let element = gst::ElementFactory::make("vssmask")
        .build()
        .expect("vssmask");
    for (name, value) in properties {
        element.set_property_from_str(name, value);
    }
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(input_info().to_caps().expect("caps"));
    (h, bus)
}

/// A mask buffer's rows without padding, and its caps' video info and class names.
struct Mask {
    info: gst_video::VideoInfo,
    classes: Vec<String>,
    pixels: Vec<u8>,
}

fn pull_mask(h: &mut Harness) -> (gst::Buffer, Mask) {
    let buffer = h.try_pull().expect("vssmask pushed no buffer");
    let caps = h
        .sinkpad()
        .and_then(|p| p.current_caps())
        .expect("mask caps");
    let info = gst_video::VideoInfo::from_caps(&caps).expect("video caps");
    let classes = caps
        .structure(0)
        .and_then(|s| s.get::<gst::Array>("classes").ok())
        .expect("classes field")
        .iter()
        .map(|v| v.get::<String>().expect("class name"))
        .collect();
    let frame =
        gst_video::VideoFrameRef::from_buffer_ref_readable(&buffer, &info).expect("readable mask");
    let row = (info.width() * info.comp_pstride(0) as u32) as usize;
    let pixels = frame
        .plane_data(0)
        .expect("plane 0")
        .chunks(frame.plane_stride()[0] as usize)
        .take(info.height() as usize)
        .flat_map(|r| &r[..row])
        .copied()
        .collect();
    (
        buffer.clone(),
        Mask {
            info,
            classes,
            pixels,
        },
    )
}

/// The class id each pixel of a `width x height` mask must show for `seg`.
fn expected_ids(seg: &Segmentation, width: u32, height: u32) -> Vec<u8> {
    if (width, height) == (seg.width, seg.height) {
        return seg.class_map.to_vec();
    }
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| seg.class_at(x, y, width, height).expect("inside"))
        .collect()
}

#[test]
fn every_output_and_resolution_renders_the_class_map() {
    let names: Vec<String> = classes().iter().map(|c| c.name.clone()).collect();
    for resolution in ["frame", "model"] {
        let (w, h) = if resolution == "frame" {
            (FRAME_W, FRAME_H)
        } else {
            (MAP_W, MAP_H)
        };
        for (output, extra) in [
            ("class-ids", None),
            ("color", Some(("alpha", "0.5"))),
            ("matte", Some(("class", "car"))),
            ("matte", Some(("class", "3"))),
        ] {
            let mut props = vec![("output", output), ("resolution", resolution)];
            props.extend(extra);
            let (mut harness, _bus) = harness(&props);
            for n in 0..3 {
                harness.push(frame(n, true)).expect("push");
                let (buffer, mask) = pull_mask(&mut harness);
                let what = format!("{props:?} frame {n}");
                let seg = segmentation(n);
                assert_eq!((mask.info.width(), mask.info.height()), (w, h), "{what}");
                assert_eq!(mask.info.fps(), gst::Fraction::new(25, 1), "{what}");
                assert_eq!(mask.classes, names, "{what}");
                assert_eq!(buffer.pts(), Some(gst::ClockTime::from_mseconds(40 * n)));
                assert_eq!(buffer.dts(), Some(gst::ClockTime::from_mseconds(40 * n)));
                assert_eq!(buffer.duration(), Some(gst::ClockTime::from_mseconds(40)));
                assert_eq!(buffer.offset(), n);
                assert_eq!(
                    buffer.flags().contains(gst::BufferFlags::DISCONT),
                    n == 0,
                    "{what}"
                );
                assert_eq!(
                    buffer
                        .meta::<SegmentationMeta>()
                        .map(|m| m.segmentation().clone()),
                    Some(seg.clone()),
                    "{what}: the mask carries the frame's meta"
                );
                let ids = expected_ids(&seg, w, h);
                let want: Vec<u8> = match (output, extra) {
                    ("class-ids", _) => ids,
                    ("color", _) => ids
                        .iter()
                        .flat_map(|&id| {
                            let c = seg.classes[usize::from(id)].color;
                            [c[0], c[1], c[2], 128]
                        })
                        .collect(),
                    (_, Some((_, class))) => {
                        let class = if class == "car" { 2 } else { 3 };
                        ids.iter()
                            .map(|&id| if id == class { 255 } else { 0 })
                            .collect()
                    }
                    _ => unreachable!(),
                };
                let format = if output == "color" {
                    gst_video::VideoFormat::Rgba
                } else {
                    gst_video::VideoFormat::Gray8
                };
                assert_eq!(mask.info.format(), format, "{what}");
                assert_eq!(mask.pixels, want, "{what}");
            }
        }
    }
}

#[test]
fn model_resolution_keeps_the_frame_display_aspect() {
    let (mut h, _bus) = harness(&[("resolution", "model")]);
    h.push(frame(0, true)).expect("push");
    let (_, mask) = pull_mask(&mut h);
    // 10x6 frame shown through a 4x3 map: PAR (10 * 3) / (6 * 4) = 5/4.
    assert_eq!(mask.info.par(), gst::Fraction::new(5, 4));
    let (mut h, _bus) = harness(&[]);
    h.push(frame(0, true)).expect("push");
    assert_eq!(pull_mask(&mut h).1.info.par(), gst::Fraction::new(1, 1));
}

#[test]
fn caps_precede_the_held_segment_and_follow_property_changes() {
    let (mut h, _bus) = harness(&[]);
    // Only stream-start got through: the segment waits for the caps the first meta decides.
    let first = h.pull_event().expect("stream-start");
    assert_eq!(first.type_(), gst::EventType::StreamStart);
    assert!(h.try_pull_event().is_none(), "segment went out before caps");
    h.push_event(gst::event::Tag::new(gst::TagList::new()));
    assert!(h.try_pull_event().is_none(), "tag went out before caps");

    h.push(frame(0, true)).expect("push");
    let order: Vec<gst::EventType> = std::iter::from_fn(|| h.try_pull_event())
        .map(|e| e.type_())
        .collect();
    assert_eq!(
        order,
        [
            gst::EventType::Caps,
            gst::EventType::Segment,
            gst::EventType::Tag
        ]
    );
    assert_eq!(
        pull_mask(&mut h).1.info.format(),
        gst_video::VideoFormat::Gray8
    );

    // Same settings: no new caps.
    h.push(frame(1, true)).expect("push");
    assert!(h.try_pull_event().is_none());
    pull_mask(&mut h);

    h.element()
        .expect("element")
        .set_property_from_str("output", "color");
    h.push(frame(2, true)).expect("push");
    let caps = h.pull_event().expect("new caps");
    assert_eq!(caps.type_(), gst::EventType::Caps);
    let (_, mask) = pull_mask(&mut h);
    assert_eq!(mask.info.format(), gst_video::VideoFormat::Rgba);
    assert_eq!((mask.info.width(), mask.info.height()), (FRAME_W, FRAME_H));
}

fn bus_messages(bus: &gst::Bus, kind: gst::MessageType) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[kind]))
        .map(|m| match m.view() {
            gst::MessageView::Error(e) => {
                format!("{} {}", e.error(), e.debug().unwrap_or_default())
            }
            gst::MessageView::Warning(w) => {
                format!("{} {}", w.error(), w.debug().unwrap_or_default())
            }
            _ => format!("{m:?}"),
        })
        .collect()
}

#[test]
fn a_first_frame_without_the_meta_is_an_error() {
    let (mut h, bus) = harness(&[]);
    assert_eq!(h.push(frame(0, false)), Err(gst::FlowError::Error));
    let errors = bus_messages(&bus, gst::MessageType::Error);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("no VssSegmentationMeta") && errors[0].contains("vsssegment"),
        "{errors:?}"
    );
    assert!(h.try_pull().is_none());
}

#[test]
fn later_frames_without_the_meta_get_a_blank_mask_and_one_warning() {
    for (output, blank) in [("class-ids", CLASS_NONE), ("matte", 0), ("color", 0)] {
        let (mut h, bus) = harness(&[
            ("output", output),
            ("class", "Road"),
            ("resolution", "model"),
        ]);
        h.push(frame(0, true)).expect("push");
        pull_mask(&mut h);
        for n in 1..4 {
            h.push(frame(n, false)).expect("push");
            let (buffer, mask) = pull_mask(&mut h);
            assert_eq!(buffer.pts(), Some(gst::ClockTime::from_mseconds(40 * n)));
            assert!(buffer.meta::<SegmentationMeta>().is_none());
            // The last map's size, every byte blank (transparent black for color).
            assert_eq!((mask.info.width(), mask.info.height()), (MAP_W, MAP_H));
            assert!(
                mask.pixels.iter().all(|&p| p == blank),
                "{output}: {:?}",
                mask.pixels
            );
        }
        let warnings = bus_messages(&bus, gst::MessageType::Warning);
        assert_eq!(warnings.len(), 1, "{output}: {warnings:?}");
        assert!(
            warnings[0].contains("frame 1 has no VssSegmentationMeta"),
            "{warnings:?}"
        );
        // The meta comes back: so does the class map.
        h.push(frame(4, true)).expect("push");
        let (_, mask) = pull_mask(&mut h);
        assert!(mask.pixels.iter().any(|&p| p != blank), "{output}");
    }
}

#[test]
fn matte_needs_a_class_the_bundle_has() {
    init();
    let element = gst::ElementFactory::make("vssmask")
        .property_from_str("output", "matte")
        .build()
        .expect("vssmask");
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(element.set_state(gst::State::Paused).is_err());
    let errors = bus_messages(&bus, gst::MessageType::Error);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("needs the class property")),
        "{errors:?}"
    );
    element.set_state(gst::State::Null).expect("NULL");

    let (mut h, bus) = harness(&[("output", "matte"), ("class", "Bus")]);
    assert_eq!(h.push(frame(0, true)), Err(gst::FlowError::Error));
    let errors = bus_messages(&bus, gst::MessageType::Error);
    assert!(
        errors.iter().any(|e| e.contains("class=\"Bus\"")
            && e.contains("Sky (0), Road (1), Car (2), Traffic light (3)")),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The shipped clip

fn clip() -> String {
    root()
        .join("examples/data/highway_dashcam_960x540.mp4")
        .to_string_lossy()
        .into_owned()
}

/// The first `n` samples of `description` (ending in `appsink name=sink`).
fn samples(description: &str, n: usize) -> Vec<gst::Sample> {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
    let sink = pipeline
        .by_name("sink")
        .expect("appsink named sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    sink.set_property("sync", false);
    sink.set_property("max-buffers", 2u32);
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut out = Vec::new();
    while out.len() < n {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            out.push(sample);
            continue;
        }
        let error = bus.pop_filtered(&[gst::MessageType::Error]);
        if error.is_some() || sink.is_eos() || std::time::Instant::now() > deadline {
            pipeline.set_state(gst::State::Null).ok();
            panic!("{description}: {} samples, then {error:?}", out.len());
        }
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    out
}

#[test]
fn clip_masks_follow_the_segmentation_meta() {
    let outs = samples(
        &format!(
            "filesrc location={} ! qtdemux ! h264parse ! vssdec ! vsssegment \
             ! vssmask output=class-ids ! appsink name=sink",
            clip()
        ),
        16,
    );
    let mut pts = Vec::new();
    for (i, sample) in outs.iter().enumerate() {
        let buffer = sample.buffer().expect("buffer");
        let info = gst_video::VideoInfo::from_caps(sample.caps().expect("caps")).expect("info");
        assert_eq!((info.width(), info.height()), (960, 540));
        let meta = buffer
            .meta::<SegmentationMeta>()
            .unwrap_or_else(|| panic!("mask {i} without the frame's meta"));
        let seg = meta.segmentation();
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).expect("readable");
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).expect("plane");
        let mut wrong = 0;
        for y in 0..540u32 {
            for x in 0..960u32 {
                if Some(data[y as usize * stride + x as usize]) != seg.class_at(x, y, 960, 540) {
                    wrong += 1;
                }
            }
        }
        assert_eq!(wrong, 0, "mask {i}: {wrong} pixels differ from the meta");
        assert!(
            seg.class_map.iter().any(|&c| c != seg.class_map[0]),
            "mask {i} is a single class: the clip should show several"
        );
        pts.push(buffer.pts().expect("pts"));
    }
    // The decoder's timestamps, one frame (40 ms at 25 fps) apart.
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "{pts:?}");
}

#[test]
fn colour_and_matte_masks_compose_with_videoconvert() {
    for (mask, size) in [
        ("output=color alpha=0.6", (960, 540)),
        ("output=matte class=Road resolution=model", (480, 360)),
    ] {
        let outs = samples(
            &format!(
                "filesrc location={} ! qtdemux ! h264parse ! vssdec ! vsssegment overlay=none \
                 ! vssmask {mask} ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink",
                clip()
            ),
            6,
        );
        for sample in &outs {
            let info = gst_video::VideoInfo::from_caps(sample.caps().expect("caps")).expect("info");
            assert_eq!((info.width(), info.height()), size, "{mask}");
            assert_eq!(info.format(), gst_video::VideoFormat::I420);
            let buffer = sample.buffer().expect("buffer");
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                .expect("readable");
            let luma = frame.plane_data(0).expect("luma");
            let (lo, hi) = luma
                .iter()
                .fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!(hi - lo > 50, "{mask}: a flat picture ({lo}..{hi})");
        }
    }
}
