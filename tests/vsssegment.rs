//! vsssegment: `full` equals the bundle run directly, `warp` follows the motion it is given, the
//! built-in estimator finds a known shift, the overlay is attached or blended as downstream
//! allows, resets make keyframes, bad bundles and modes fail at start, and the examples
//! (`segment`, `shares`) read the meta on the shipped clip.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use gstvss::meta::{Branch, MotionInfo, MotionMeta, Segmentation, SegmentationMeta};
use gstvss::model::{
    Bundle, DEFAULT_BUNDLE, FrameLayout, MANIFEST_FILE, Manifest, RawFrame, YuvColorimetry,
    class_map, frame_to_rgb, to_vec_u8,
};
use gstvss::motion::{EstimatorConfig, LumaPlane, MotionEstimator, MotionVector, PictureType};
use gstvss::segmenter::Mode;

/// camvid-espnet's native size: frames of this size give class-map pixels = frame pixels.
const NATIVE_W: u32 = 480;
const NATIVE_H: u32 = 360;
/// The shipped clip's frame count.
const CLIP_FRAMES: usize = 221;

// ---------------------------------------------------------------------------------------------
// Plumbing

/// One buffer out of a pipeline or harness: what the tests compare.
#[derive(Debug, Clone)]
struct Out {
    width: u32,
    height: u32,
    /// Packed rows of a single-plane format (RGB, GRAY8); empty for planar formats.
    pixels: Vec<u8>,
    seg: Option<Segmentation>,
    overlay_meta: bool,
}

impl Out {
    fn new(buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Out {
        let pixels = if info.n_planes() == 1 {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
                .expect("readable video frame");
            let stride = frame.plane_stride()[0] as usize;
            let row = info.width() as usize * info.comp_pstride(0) as usize;
            frame
                .plane_data(0)
                .expect("plane 0")
                .chunks(stride)
                .take(info.height() as usize)
                .flat_map(|r| &r[..row])
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        Out {
            width: info.width(),
            height: info.height(),
            pixels,
            seg: buffer
                .meta::<SegmentationMeta>()
                .map(|m| m.segmentation().clone()),
            overlay_meta: buffer
                .meta::<gst_video::VideoOverlayCompositionMeta>()
                .is_some(),
        }
    }

    fn seg(&self) -> &Segmentation {
        self.seg.as_ref().expect("buffer without SegmentationMeta")
    }
}

/// Runs `description` (ending in `appsink name=sink`) until `limit` buffers or EOS; returns
/// them with the structures of the element messages posted meanwhile.
fn collect(description: &str, limit: usize) -> (Vec<Out>, Vec<gst::Structure>) {
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
    // Upstream waits for us instead of running through the whole clip.
    sink.set_property("max-buffers", 2u32);
    let bus = pipeline.bus().expect("bus");
    let fail = |what: &str| -> ! {
        let error = bus
            .pop_filtered(&[gst::MessageType::Error])
            .map(|m| format!("{m:?}"));
        pipeline.set_state(gst::State::Null).ok();
        panic!("{description}: {what}: {error:?}");
    };
    if pipeline.set_state(gst::State::Playing).is_err() {
        fail("cannot start");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut outs = Vec::new();
    while outs.len() < limit {
        match sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            Some(sample) => {
                let info = gst_video::VideoInfo::from_caps(sample.caps().expect("caps"))
                    .expect("video caps");
                outs.push(Out::new(sample.buffer().expect("buffer"), &info));
            }
            None if sink.is_eos() => break,
            None => {
                if bus
                    .peek()
                    .is_some_and(|m| m.type_() == gst::MessageType::Error)
                {
                    fail("error");
                }
                if std::time::Instant::now() > deadline {
                    fail("timeout");
                }
            }
        }
    }
    let messages = bus
        .iter()
        .filter(|m| m.type_() == gst::MessageType::Element)
        .filter_map(|m| m.structure().map(|s| s.to_owned()))
        .collect();
    pipeline.set_state(gst::State::Null).expect("NULL");
    (outs, messages)
}

fn clip_location() -> String {
    dashcam().to_string_lossy().into_owned()
}

/// The first `n` frames of the clip as RGB at the bundle's native size.
fn clip_rgb_native(n: usize) -> Vec<Vec<u8>> {
    let (outs, _) = collect(
        &format!(
            "filesrc location={} ! parsebin ! vssdec ! videoconvert ! videoscale \
             ! video/x-raw,format=RGB,width={NATIVE_W},height={NATIVE_H} ! appsink name=sink",
            clip_location()
        ),
        n,
    );
    assert_eq!(outs.len(), n);
    outs.into_iter().map(|o| o.pixels).collect()
}

/// The clip's first 60 frames through `vssdec ! vsssegment` with defaults (warp, interval
/// 12), shared by the tests that read them.
fn clip_segmented() -> &'static [Out] {
    static OUTS: OnceLock<Vec<Out>> = OnceLock::new();
    OUTS.get_or_init(|| {
        init();
        collect(
            &format!(
                "filesrc location={} ! parsebin ! vssdec ! vsssegment overlay=none \
                 ! appsink name=sink",
                clip_location()
            ),
            60,
        )
        .0
    })
}

/// A vsssegment with `properties` (name, value as gst-launch writes it) in a harness, started.
fn harness(properties: &[(&str, &str)]) -> Harness {
    let element = gst::ElementFactory::make("vsssegment")
        .build()
        .expect("vsssegment");
    for (name, value) in properties {
        element.set_property_from_str(name, value);
    }
    Harness::with_element(&element, Some("sink"), Some("src"))
}

/// A frame buffer at index `n` (25 fps timestamps), optionally carrying codec motion.
fn frame(pixels: &[u8], n: u64, motion: Option<MotionInfo>) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_mut_slice(pixels.to_vec());
    {
        let b = buffer.get_mut().expect("fresh buffer");
        b.set_pts(gst::ClockTime::from_mseconds(40 * n));
        b.set_duration(gst::ClockTime::from_mseconds(40));
        if let Some(info) = motion {
            MotionMeta::add(b, info);
        }
    }
    buffer
}

/// Pushes one frame and returns what came out.
fn segment_one(h: &mut Harness, buffer: gst::Buffer) -> Out {
    let caps = h
        .sinkpad()
        .and_then(|p| p.current_caps())
        .expect("negotiated");
    let info = gst_video::VideoInfo::from_caps(&caps).expect("video caps");
    h.push(buffer).expect("push");
    let out = h.pull().expect("pull");
    let out = Out::new(&out, &info);
    assert!(
        out.seg.is_some(),
        "no SegmentationMeta on the output buffer"
    );
    out
}

/// One 16x16 vector per macroblock over a `width x height` frame, all `(dx, dy)` pixels in
/// FFmpeg's convention: the content at p in this frame was at p + (dx, dy) in the reference.
fn global_vectors(width: u32, height: u32, dx: i32, dy: i32) -> Vec<MotionVector> {
    let mut vectors = Vec::new();
    for by in 0..height.div_ceil(16) as i16 {
        for bx in 0..width.div_ceil(16) as i16 {
            let (x, y) = (bx * 16 + 8, by * 16 + 8);
            vectors.push(MotionVector {
                source: -1,
                w: 16,
                h: 16,
                src_x: x + dx as i16,
                src_y: y + dy as i16,
                dst_x: x,
                dst_y: y,
                motion_x: dx * 4,
                motion_y: dy * 4,
                motion_scale: 4,
            });
        }
    }
    vectors
}

fn intra() -> MotionInfo {
    MotionInfo {
        picture_type: PictureType::I,
        keyframe: true,
        vectors_available: true,
        vectors: Vec::new(),
    }
}

fn predicted(vectors: Vec<MotionVector>) -> MotionInfo {
    MotionInfo {
        picture_type: PictureType::P,
        keyframe: false,
        vectors_available: true,
        vectors,
    }
}

// ---------------------------------------------------------------------------------------------
// Modes

#[test]
fn full_mode_equals_the_bundle_on_the_same_frame() {
    init();
    let (outs, _) = collect(
        &format!(
            "filesrc location={} ! parsebin ! vssdec ! videoconvert ! video/x-raw,format=RGB \
             ! vsssegment mode=full overlay=none ! appsink name=sink",
            clip_location()
        ),
        3,
    );
    assert_eq!(outs.len(), 3);
    let bundle = Bundle::load(DEFAULT_BUNDLE, tch::Device::Cpu).expect("default bundle");
    let (h, w) = bundle.manifest().native_size();
    for (i, out) in outs.iter().enumerate() {
        let planes = [out.pixels.as_slice()];
        let strides = [out.width as usize * 3];
        let raw = RawFrame {
            layout: FrameLayout::Rgb,
            width: out.width,
            height: out.height,
            planes: &planes,
            strides: &strides,
        };
        let image = frame_to_rgb(&raw, (h, w), YuvColorimetry::BT601, tch::Device::Cpu)
            .expect("frame_to_rgb");
        let (logits, _) = bundle.forward(&image).expect("forward");
        let direct = to_vec_u8(&class_map(&logits, h, w).expect("class_map")).expect("bytes");
        let seg = out.seg();
        assert_eq!((seg.width, seg.height), (w, h));
        assert!(seg.keyframe && seg.distance == 0 && seg.branch == Branch::Full);
        assert_eq!(seg.model.as_ref(), DEFAULT_BUNDLE);
        let equal = agreement(&seg.class_map, &direct);
        eprintln!(
            "frame {i}: {:.6} of the class map equals the direct run",
            equal
        );
        assert!(equal >= 0.9999, "frame {i}: only {equal:.6} equal");
    }
}

/// Pushes the same native-size frame 13 times (keyframe-interval 12): every propagated map
/// equals the keyframe's. `codec_vectors`: zero vectors in a MotionMeta, or no meta at all (the
/// element's estimator runs).
fn assert_still_frames_keep_the_keyframe_map(codec_vectors: bool) {
    init();
    let pixels = &clip_rgb_native(1)[0];
    let mut h = harness(&[
        ("mode", "warp"),
        ("keyframe-interval", "12"),
        ("overlay", "none"),
    ]);
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    let mut maps = Vec::new();
    for n in 0..13u64 {
        let motion = codec_vectors.then(|| match n {
            0 => intra(),
            _ => predicted(global_vectors(NATIVE_W, NATIVE_H, 0, 0)),
        });
        let out = segment_one(&mut h, frame(pixels, n, motion));
        let seg = out.seg().clone();
        let key = n % 12 == 0;
        assert_eq!(seg.keyframe, key, "frame {n}");
        assert_eq!(seg.distance, (n % 12) as u32, "frame {n}");
        assert_eq!(
            seg.branch,
            if key { Branch::Full } else { Branch::Warp },
            "frame {n}"
        );
        maps.push(seg.class_map);
    }
    // Zero codec vectors warp exactly. The estimator matches a still frame to itself at zero,
    // but its quarter-pel refinement can still move a few textured blocks by 1/4 px (the V fit
    // of asymmetric neighbouring SADs), which flips a handful of class-edge pixels.
    let want = if codec_vectors { 1.0 } else { 0.999 };
    for (n, map) in maps.iter().enumerate().skip(1) {
        let equal = agreement(map, &maps[0]);
        assert!(
            equal >= want,
            "frame {n}: only {equal:.6} equals the keyframe map"
        );
    }
}

/// Correction: a region the field cannot explain (road pasted over the top of the frame, with
/// zero motion vectors) is re-segmented from the frame, on a crop with context: the tile holds
/// the bundle's own result on that crop. The regions the field explains keep the carried map,
/// pixel for pixel. Without a budget nothing is re-segmented.
#[test]
fn correction_resegments_what_the_field_cannot_explain_and_nothing_else() {
    use gstvss::model::{Bundle, class_map, to_vec_u8};
    use gstvss::segmenter::correction::Tiling;

    init();
    let key = &clip_rgb_native(1)[0];
    let bundle = Bundle::load(DEFAULT_BUNDLE, tch::Device::Cpu).expect("default bundle");
    let tiling = Tiling::new(NATIVE_W, NATIVE_H, bundle.manifest().size_multiple());
    // The tile at column 1, row 0 gets the pixels two tiles below it: road where there was sky
    // and buildings.
    let tile = tiling.tile_rect(1, 0);
    let (x0, x1, y0, y1) = (
        tile.x0 as usize,
        tile.x1 as usize,
        tile.y0 as usize,
        tile.y1 as usize,
    );
    let below = 2 * tiling.tile as usize;
    let mut changed = key.clone();
    let row = NATIVE_W as usize * 3;
    for y in y0..y1 {
        let (dst, src) = (y * row + x0 * 3, (y + below) * row + x0 * 3);
        changed.copy_within(src..src + (x1 - x0) * 3, dst);
    }
    let inside = |i: usize| {
        let (x, y) = (i % NATIVE_W as usize, i / NATIVE_W as usize);
        (x0..x1).contains(&x) && (y0..y1).contains(&y)
    };
    let run = |budget: &str| {
        let mut h = harness(&[
            ("mode", "warp"),
            ("keyframe-policy", "interval"),
            ("keyframe-interval", "12"),
            ("correction-budget", budget),
            ("overlay", "none"),
        ]);
        h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
        let first = segment_one(&mut h, frame(key, 0, Some(intra())));
        let zero = predicted(global_vectors(NATIVE_W, NATIVE_H, 0, 0));
        let second = segment_one(&mut h, frame(&changed, 1, Some(zero)));
        (
            first.seg().class_map.clone(),
            second.seg().class_map.clone(),
        )
    };
    // The bundle on the crop correction takes around the tile.
    let crop = tiling.crop_for(tile);
    let on_crop = {
        let image = tch::Tensor::from_slice(&changed)
            .view([NATIVE_H as i64, NATIVE_W as i64, 3])
            .permute([2, 0, 1])
            .unsqueeze(0)
            .narrow(2, i64::from(crop.y0), i64::from(crop.height()))
            .narrow(3, i64::from(crop.x0), i64::from(crop.width()))
            .contiguous();
        let (logits, _) = bundle.forward(&image).expect("forward");
        to_vec_u8(&class_map(&logits, crop.height(), crop.width()).expect("class map"))
            .expect("map")
    };

    let (key_map, corrected) = run("0.3");
    let w = NATIVE_W as usize;
    let mut as_crop = 0usize;
    for (i, (&got, &carried)) in corrected.iter().zip(key_map.iter()).enumerate() {
        let (x, y) = (i % w, i / w);
        if inside(i) {
            let c = (y - crop.y0 as usize) * crop.width() as usize + (x - crop.x0 as usize);
            as_crop += usize::from(got == on_crop[c]);
        } else {
            assert_eq!(got, carried, "({x}, {y}) outside: the carried class");
        }
    }
    let n = (0..key_map.len()).filter(|&i| inside(i)).count();
    // The element's libtorch threads may round differently from this one's: a few ties.
    assert!(
        as_crop as f64 >= 0.995 * n as f64,
        "only {as_crop} of {n} tile pixels hold the crop's class"
    );
    let differs = (0..key_map.len())
        .filter(|&i| inside(i) && corrected[i] != key_map[i])
        .count() as f64
        / n as f64;
    assert!(differs > 0.3, "only {differs:.3} of the tile changed class");

    let (key_map_off, carried) = run("0");
    assert_eq!(key_map_off, key_map);
    assert_eq!(carried, key_map, "no budget: the keyframe's map, carried");
}

#[test]
fn warp_with_zero_codec_motion_returns_the_keyframe_map() {
    assert_still_frames_keep_the_keyframe_map(true);
}

#[test]
fn warp_with_estimated_motion_on_a_still_returns_the_keyframe_map() {
    assert_still_frames_keep_the_keyframe_map(false);
}

#[test]
fn global_shift_in_the_vectors_moves_the_map() {
    init();
    let pixels = &clip_rgb_native(1)[0];
    let (w, h) = (NATIVE_W as usize, NATIVE_H as usize);
    for (k, dy) in [(12i32, 0i32), (-7, 5)] {
        let mut harness = harness(&[("mode", "warp"), ("overlay", "none")]);
        harness.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
        let key = segment_one(&mut harness, frame(pixels, 0, Some(intra())));
        let key = key.seg().class_map.clone();
        // Content moving by (k, dy): what is at p now was at p - (k, dy) in the keyframe.
        let vectors = global_vectors(NATIVE_W, NATIVE_H, -k, -dy);
        let out = segment_one(&mut harness, frame(pixels, 1, Some(predicted(vectors))));
        let seg = out.seg();
        assert_eq!(
            (seg.keyframe, seg.branch, seg.distance),
            (false, Branch::Warp, 1)
        );
        let margin = 16usize;
        let (mut same, mut shifted, mut total) = (0usize, 0usize, 0usize);
        for y in margin..h - margin {
            for x in margin..w - margin {
                let now = seg.class_map[y * w + x];
                let from = (y as i32 - dy) as usize * w + (x as i32 - k) as usize;
                shifted += usize::from(now == key[from]);
                same += usize::from(now == key[y * w + x]);
                total += 1;
            }
        }
        let (shifted, same) = (shifted as f64 / total as f64, same as f64 / total as f64);
        eprintln!(
            "shift ({k}, {dy}): {shifted:.5} equals the shifted keyframe map, {same:.5} the unshifted"
        );
        assert!(
            shifted >= 0.99,
            "shift ({k}, {dy}): only {shifted:.5} equal"
        );
        assert!(
            same < shifted - 0.01,
            "the test cannot tell shifted from unshifted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Motion estimation without vssdec

/// The most frequent vector, in pixels.
fn dominant(vectors: &[MotionVector]) -> (f32, f32) {
    let mut counts = std::collections::HashMap::new();
    for v in vectors {
        *counts
            .entry((v.motion_x, v.motion_y, v.motion_scale))
            .or_insert(0usize) += 1;
    }
    let ((x, y, s), n) = counts
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .expect("no vectors");
    assert!(
        n * 2 > vectors.len(),
        "no dominant vector: {n} of {}",
        vectors.len()
    );
    (x as f32 / f32::from(s), y as f32 / f32::from(s))
}

#[test]
fn estimator_recovers_the_videotestsrc_scroll() {
    init();
    // horizontal-speed: pixels per frame the image scrolls to the left.
    let (outs, _) = collect(
        "videotestsrc pattern=pinwheel horizontal-speed=4 num-buffers=2 \
         ! video/x-raw,format=GRAY8,width=320,height=240 ! appsink name=sink",
        2,
    );
    fn plane(o: &Out) -> LumaPlane<'_> {
        LumaPlane::new(&o.pixels, o.width, o.height, o.width as usize).expect("luma plane")
    }
    let mut estimator = MotionEstimator::new(EstimatorConfig::default()).unwrap();
    let mut vectors = Vec::new();
    estimator
        .estimate(&plane(&outs[0]), &plane(&outs[1]), &mut vectors)
        .expect("estimate");
    // Content moved left by 4: what is at p now was at p + (4, 0) before.
    assert_eq!(dominant(&vectors), (4.0, 0.0));
}

#[test]
fn vsssegment_estimates_motion_when_no_vssdec_is_upstream() {
    init();
    let (outs, messages) = collect(
        "videotestsrc pattern=pinwheel horizontal-speed=4 num-buffers=6 \
         ! video/x-raw,format=I420,width=480,height=360 \
         ! vsssegment mode=warp stats=true overlay=none ! appsink name=sink",
        6,
    );
    assert_eq!(outs.len(), 6);
    let stats: Vec<_> = messages
        .iter()
        .filter(|s| s.name() == "vss-segment")
        .collect();
    assert_eq!(stats.len(), 6, "one stats message per frame");
    for s in &stats[1..] {
        let distance = s.get::<u32>("distance").expect("distance");
        let motion = s.get::<f64>("mean-motion").expect("mean-motion");
        let want = 4.0 * f64::from(distance);
        assert!(
            distance > 0 && s.get::<&str>("branch").unwrap() == "warp",
            "{s}"
        );
        assert!(
            (motion - want).abs() <= 0.1 * want,
            "{s}: mean motion {motion}, want {want}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Overlay

/// Two frames through vsssegment with `overlay`, downstream proposing the overlay meta or
/// not: returns (buffers carried the overlay meta, pixels changed).
fn overlay_outcome(overlay: &str, downstream_meta: bool, pixels: &[u8]) -> (bool, bool) {
    let mut h = harness(&[("overlay", overlay)]);
    if downstream_meta {
        h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    }
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    let outs: Vec<Out> = (0..2)
        .map(|n| segment_one(&mut h, frame(pixels, n, None)))
        .collect();
    let meta = outs.iter().all(|o| o.overlay_meta);
    assert!(
        meta || outs.iter().all(|o| !o.overlay_meta),
        "mixed overlay metas"
    );
    let changed = outs.iter().all(|o| o.pixels != pixels);
    assert!(
        changed || outs.iter().all(|o| o.pixels == pixels),
        "mixed pixels"
    );
    (meta, changed)
}

#[test]
fn overlay_is_attached_or_blended_as_downstream_allows() {
    init();
    let pixels = &clip_rgb_native(1)[0];
    assert_eq!(
        overlay_outcome("auto", true, pixels),
        (true, false),
        "auto, meta proposed"
    );
    assert_eq!(
        overlay_outcome("auto", false, pixels),
        (false, true),
        "auto, no meta"
    );
    assert_eq!(
        overlay_outcome("meta", false, pixels),
        (true, false),
        "meta"
    );
    assert_eq!(
        overlay_outcome("blend", true, pixels),
        (false, true),
        "blend"
    );
    assert_eq!(
        overlay_outcome("none", true, pixels),
        (false, false),
        "none"
    );
}

/// Downstream that starts taking the overlay meta says so with a RECONFIGURE event: the
/// element asks again (BaseTransform's ALLOCATION query, answered in `decide_allocation`) and
/// attaches from the next frame instead of blending.
#[test]
fn reconfigure_from_downstream_switches_blend_to_meta() {
    init();
    let pixels = &clip_rgb_native(1)[0];
    let mut h = harness(&[("overlay", "auto")]);
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    let out = segment_one(&mut h, frame(pixels, 0, None));
    assert!(
        !out.overlay_meta && out.pixels != *pixels,
        "no meta proposed: blended"
    );
    h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    assert!(h.push_upstream_event(gst::event::Reconfigure::new()));
    let out = segment_one(&mut h, frame(pixels, 1, None));
    assert!(
        out.overlay_meta && out.pixels == *pixels,
        "meta proposed after RECONFIGURE: attached"
    );
}

/// The element draws into the frame it receives: the buffer that comes out holds the memory
/// that went in, blended overlay or not (no output pool, no copy per frame).
#[test]
fn frames_are_segmented_in_place() {
    init();
    let pixels = &clip_rgb_native(1)[0];
    for overlay in ["none", "blend"] {
        let mut h = harness(&[("overlay", overlay)]);
        h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
        for n in 0..2 {
            let input = frame(pixels, n, None);
            let address = input.map_readable().expect("readable").as_ptr();
            h.push(input).expect("push");
            let out = h.pull().expect("pull");
            assert!(
                out.meta::<SegmentationMeta>().is_some(),
                "{overlay}: frame {n}"
            );
            assert_eq!(
                out.map_readable().expect("readable").as_ptr(),
                address,
                "overlay={overlay}, frame {n}: the output is a copy"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resets

#[test]
fn flush_discont_and_caps_change_restart_with_a_keyframe() {
    init();
    let frames = clip_rgb_native(1);
    let pixels = &frames[0];
    let mut h = harness(&[("mode", "warp"), ("overlay", "none")]);
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    let mut n = 0u64;
    let mut next = |h: &mut Harness, pixels: &[u8], flags: gst::BufferFlags| {
        let mut buffer = frame(pixels, n, None);
        buffer.get_mut().unwrap().set_flags(flags);
        n += 1;
        let seg = segment_one(h, buffer).seg().clone();
        (seg.keyframe, seg.distance)
    };
    let none = gst::BufferFlags::empty();
    assert_eq!(next(&mut h, pixels, none), (true, 0));
    assert_eq!(next(&mut h, pixels, none), (false, 1));
    assert_eq!(next(&mut h, pixels, none), (false, 2));

    // Flush, as a flushing seek does, but with no new segment so that only the flush can
    // reset (GStreamer warns "Got data flow before segment event" for the next buffers).
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    assert_eq!(next(&mut h, pixels, none), (true, 0), "after flush");
    assert_eq!(next(&mut h, pixels, none), (false, 1));

    assert_eq!(
        next(&mut h, pixels, gst::BufferFlags::DISCONT),
        (true, 0),
        "on discont"
    );
    assert_eq!(next(&mut h, pixels, none), (false, 1));

    // New resolution mid-stream: a bare caps event, no segment.
    let (w, hgt) = (320u32, 240u32);
    assert!(h.push_event(gst::event::Caps::new(&rgb_caps(w, hgt))));
    let small = vec![90u8; (w * hgt * 3) as usize];
    assert_eq!(next(&mut h, &small, none), (true, 0), "after caps change");
    assert_eq!(next(&mut h, &small, none), (false, 1));
}

// ---------------------------------------------------------------------------------------------
// Start-up failures

/// Sets `videotestsrc ! vsssegment <properties> ! fakesink` to PAUSED, which must fail; returns
/// the error message posted on the bus (message and debug).
fn start_error(properties: &str) -> String {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! vsssegment {properties} ! fakesink"
    ))
    .expect("pipeline");
    let result = pipeline.set_state(gst::State::Paused);
    let bus = pipeline.bus().expect("bus");
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).expect("NULL");
    assert!(result.is_err(), "{properties}: READY->PAUSED succeeded");
    match error.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => {
            format!("{} | {}", e.error(), e.debug().unwrap_or_default())
        }
        _ => panic!("{properties}: no error on the bus"),
    }
}

#[test]
fn missing_bundle_fails_at_start_naming_the_path() {
    let error = start_error("model=/nonexistent/bundle");
    eprintln!("{error}");
    let message = error.split(" | ").next().unwrap();
    assert!(message.contains("/nonexistent/bundle"), "{error}");
}

#[test]
fn corrupt_bundle_fails_at_start_naming_the_file() {
    let dir = scratch("vsssegment-corrupt-bundle");
    let shipped = root().join("models/bundles").join(DEFAULT_BUNDLE);
    std::fs::copy(shipped.join("manifest.json"), dir.join("manifest.json")).expect("copy");
    let module = dir.join("model.pt");
    std::fs::write(&module, b"this is not a TorchScript archive").expect("write");
    let error = start_error(&format!("model={}", dir.display()));
    eprintln!("{error}");
    let message = error.split(" | ").next().unwrap();
    assert!(message.contains(&*module.to_string_lossy()), "{error}");
}

#[test]
fn mode_the_bundle_cannot_serve_fails_at_start_saying_which_can() {
    let error = start_error("mode=fusion");
    eprintln!("{error}");
    let message = error.split(" | ").next().unwrap();
    assert!(
        message.contains("fusion") && message.contains("arseg"),
        "{error}"
    );
    assert!(message.contains(DEFAULT_BUNDLE), "{error}");
    assert!(
        message.contains("no shipped bundle can serve fusion")
            || message.contains("shipped bundles that can:"),
        "{error}"
    );
    let error = start_error("mode=distributed");
    assert!(error.contains("tdnet"), "{error}");
    assert!(
        error.contains("shipped bundles that can: camvid-tdnet"),
        "{error}"
    );
}

/// The shipped AR-Seg bundle.
const ARSEG_BUNDLE: &str = "camvid-espnet-arseg";

/// The default image module under a manifest edited by `edit` (in folder `name`), started with
/// `properties`: the first line of the start error, which must name the module file.
fn start_error_of_edited_bundle(
    name: &str,
    properties: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let dir = scratch(name);
    let shipped = root().join("models/bundles").join(DEFAULT_BUNDLE);
    std::fs::copy(shipped.join("model.pt"), dir.join("model.pt")).expect("copy");
    let mut manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shipped.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    edit(&mut manifest);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("write");
    let error = start_error(&format!("model={} {properties}", dir.display()));
    eprintln!("{error}");
    let message = error.split(" | ").next().unwrap().to_string();
    assert!(
        message.contains(&*dir.join("model.pt").to_string_lossy()),
        "{error}"
    );
    message
}

#[test]
fn an_arseg_bundle_missing_a_method_fails_at_start_naming_file_and_method() {
    // The image module under an arseg manifest: it has forward but no keyframe method.
    let message =
        start_error_of_edited_bundle("vsssegment-arseg-no-method", "mode=fusion", |manifest| {
            manifest["scheme"] = "arseg".into();
            manifest["lowres_scale"] = 0.5.into();
            let forward = manifest["methods"]["forward"].clone();
            for method in ["keyframe", "nonkeyframe", "warp"] {
                manifest["methods"][method] = forward.clone();
            }
        });
    assert!(message.contains("'keyframe'"), "{message}");
}

#[test]
fn a_tdnet_bundle_without_step_fails_at_start_naming_file_and_method() {
    // The image module under a tdnet manifest: it has forward but no step.
    let message =
        start_error_of_edited_bundle("vsssegment-tdnet-no-step", "mode=distributed", |manifest| {
            manifest["scheme"] = "tdnet".into();
            manifest["subnetworks"] = 2.into();
            manifest["methods"]["step"] = manifest["methods"]["forward"].clone();
        });
    assert!(message.contains("'step'"), "{message}");
}

#[test]
fn fusion_runs_on_the_clip_and_its_keyframes_are_the_default_networks() {
    init();
    let run = |properties: &str| {
        collect(
            &format!(
                "filesrc location={} ! parsebin ! vssdec ! vsssegment overlay=none {properties} \
                 ! appsink name=sink",
                clip_location()
            ),
            14,
        )
        .0
    };
    let fusion = run(&format!("mode=fusion model={ARSEG_BUNDLE}"));
    let full = run("mode=full");
    assert_eq!(fusion.len(), 14);
    for (i, (out, full)) in fusion.iter().zip(&full).enumerate() {
        let seg = out.seg();
        let key = i % 12 == 0;
        assert_eq!(seg.keyframe, key, "frame {i}");
        assert_eq!(seg.distance as usize, i % 12, "frame {i}");
        let want = if key { Branch::Full } else { Branch::Fusion };
        assert_eq!(seg.branch, want, "frame {i}");
        assert_eq!(seg.model.as_ref(), ARSEG_BUNDLE);
        assert_eq!((seg.width, seg.height), (NATIVE_W, NATIVE_H), "frame {i}");
        let equal = agreement(&seg.class_map, &full.seg().class_map);
        if key {
            // The keyframe branch is the shipped default network, frozen.
            assert!(
                equal >= 0.9999,
                "keyframe {i}: only {equal:.6} equal to full"
            );
        } else {
            // A fused frame is its own prediction, but of the same scene.
            assert!(equal >= 0.6, "frame {i}: only {equal:.3} agrees with full");
        }
    }
}

/// The shipped TDNet-style bundle.
const TDNET_BUNDLE: &str = "camvid-tdnet";

#[test]
fn distributed_runs_one_subnetwork_per_frame_without_keyframes() {
    init();
    let run = |properties: &str| {
        collect(
            &format!(
                "filesrc location={} ! parsebin ! vssdec ! vsssegment overlay=none {properties} \
                 ! appsink name=sink",
                clip_location()
            ),
            8,
        )
        .0
    };
    let distributed = run(&format!("mode=distributed model={TDNET_BUNDLE}"));
    // The teacher it was distilled from.
    let full = run("mode=full model=camvid-cgnet");
    assert_eq!(distributed.len(), 8);
    for (i, (out, full)) in distributed.iter().zip(&full).enumerate() {
        let seg = out.seg();
        assert_eq!(seg.branch, Branch::Distributed, "frame {i}");
        assert!(
            !seg.keyframe,
            "frame {i}: distributed mode has no keyframes"
        );
        assert_eq!(
            seg.distance as usize, i,
            "frame {i}: frames since the reset"
        );
        assert_eq!(seg.model.as_ref(), TDNET_BUNDLE);
        assert_eq!((seg.width, seg.height), (NATIVE_W, NATIVE_H), "frame {i}");
        // Its own prediction, of the same scene as its teacher's.
        let equal = agreement(&seg.class_map, &full.seg().class_map);
        eprintln!("frame {i}: {equal:.3} agrees with the teacher");
        assert!(
            equal >= 0.6,
            "frame {i}: only {equal:.3} agrees with the teacher"
        );
    }
}

#[test]
fn distributed_memory_and_round_robin_restart_on_flush_and_discont() {
    init();
    let frames = clip_rgb_native(3);
    let mut h = harness(&[
        ("mode", "distributed"),
        ("model", TDNET_BUNDLE),
        ("overlay", "none"),
    ]);
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    let mut n = 0u64;
    let mut next = |h: &mut Harness, pixels: &[u8], flags: gst::BufferFlags| {
        let mut buffer = frame(pixels, n, None);
        buffer.get_mut().unwrap().set_flags(flags);
        n += 1;
        segment_one(h, buffer).seg().clone()
    };
    let none = gst::BufferFlags::empty();
    let first: Vec<_> = frames.iter().map(|f| next(&mut h, f, none)).collect();
    assert_eq!(
        first.iter().map(|s| s.distance).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // The first frame again, with the memory of the previous ones and another sub-network:
    // not the result it had from a reset.
    let carried = next(&mut h, &frames[0], none);
    assert_eq!(carried.distance, 3);
    assert_ne!(carried.class_map, first[0].class_map);

    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let after_flush = next(&mut h, &frames[0], none);
    assert_eq!(after_flush.distance, 0, "after flush");
    assert_eq!(
        after_flush.class_map, first[0].class_map,
        "after a flush the first frame is segmented as from the start (slot 0, no memory)"
    );
    let _ = next(&mut h, &frames[1], none);
    let on_discont = next(&mut h, &frames[0], gst::BufferFlags::DISCONT);
    assert_eq!(on_discont.distance, 0, "on discont");
    assert_eq!(on_discont.class_map, first[0].class_map);
}

// ---------------------------------------------------------------------------------------------
// The shipped clip, end to end

#[test]
fn every_clip_frame_is_segmented_with_keyframes_every_12() {
    init();
    let outs = clip_segmented();
    assert_eq!(outs.len(), 60);
    for (i, out) in outs.iter().enumerate() {
        let seg = out
            .seg
            .as_ref()
            .unwrap_or_else(|| panic!("frame {i} without meta"));
        let key = i % 12 == 0;
        assert_eq!(seg.keyframe, key, "frame {i}");
        assert_eq!(seg.distance as usize, i % 12, "frame {i}");
        assert_eq!(
            seg.branch,
            if key { Branch::Full } else { Branch::Warp },
            "frame {i}"
        );
        assert_eq!((seg.width, seg.height), (NATIVE_W, NATIVE_H), "frame {i}");
        assert_eq!(seg.class_map.len(), (NATIVE_W * NATIVE_H) as usize);
        assert!(
            seg.class_map
                .iter()
                .all(|&c| usize::from(c) < seg.classes.len())
        );
        assert!(!out.overlay_meta, "overlay=none attached an overlay");
    }
}

/// Parses one `shares` line: (frame, keyframe, class shares).
fn parse_shares(line: &str) -> (usize, bool, Vec<(String, f64)>) {
    let fields: Vec<&str> = line.split('\t').collect();
    assert!(fields.len() > 4, "{line}");
    let shares = fields[4..]
        .iter()
        .map(|f| {
            let (name, share) = f.split_once('=').unwrap_or_else(|| panic!("{line}"));
            (
                name.to_string(),
                share.parse().unwrap_or_else(|_| panic!("{line}")),
            )
        })
        .collect();
    (
        fields[0].parse().expect("frame"),
        fields[2] == "key",
        shares,
    )
}

#[test]
fn shares_example_reads_the_meta_of_every_frame() {
    init();
    let out = Command::new(example("shares"))
        .arg(dashcam())
        .output()
        .expect("running shares");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), CLIP_FRAMES, "one line per frame");
    let reference = clip_segmented();
    for (i, line) in lines.iter().enumerate() {
        let (frame, key, shares) = parse_shares(line);
        assert_eq!(frame, i, "{line}");
        assert_eq!(key, i % 12 == 0, "{line}");
        assert_eq!(shares.len(), 11, "{line}");
        let sum: f64 = shares.iter().map(|(_, s)| s).sum();
        assert!((sum - 1.0).abs() < 2e-3, "shares sum to {sum}: {line}");
        if let Some(seg) = reference.get(i).and_then(|o| o.seg.as_ref()) {
            for ((name, share), (class, want)) in shares
                .iter()
                .zip(seg.classes.iter().zip(seg.class_shares()))
            {
                assert_eq!(name, &class.name);
                assert!(
                    (share - want).abs() < 2e-3,
                    "frame {i} {name}: {share} vs {want}"
                );
            }
        }
    }
}

/// A GRAY8 PNG's size and pixels, decoded by pngdec.
fn read_mask(path: &Path) -> Out {
    let (outs, _) = collect(
        &format!(
            "filesrc location={} ! pngdec ! video/x-raw,format=GRAY8 ! appsink name=sink",
            path.display()
        ),
        1,
    );
    outs.into_iter().next().expect("one decoded mask")
}

#[test]
fn segment_example_writes_overlay_video_and_masks() {
    init();
    let dir = scratch("vsssegment-segment-example");
    let (video, masks) = (dir.join("overlay.mp4"), dir.join("masks"));
    let out = Command::new(example("segment"))
        .arg(dashcam())
        .arg("--out")
        .arg(&video)
        .arg("--masks")
        .arg(&masks)
        .output()
        .expect("running segment");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    assert!(stdout.contains("221 (19 keyframes"), "{stdout}");
    assert!(stdout.contains("vssdec, codec motion vectors"), "{stdout}");

    let mut names: Vec<String> = std::fs::read_dir(&masks)
        .expect("masks folder")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = (0..CLIP_FRAMES).map(|i| format!("{i:06}.png")).collect();
    assert_eq!(names, want);

    // Masks are the meta's class maps at frame size, in frame order.
    let reference = clip_segmented();
    for i in [0usize, 1, 13, 59] {
        let mask = read_mask(&masks.join(&want[i]));
        assert_eq!((mask.width, mask.height), (960, 540), "mask {i}");
        let seg = reference[i].seg();
        let scaled: Vec<u8> = (0..mask.height)
            .flat_map(|y| (0..mask.width).map(move |x| (x, y)))
            .map(|(x, y)| seg.class_at(x, y, mask.width, mask.height).unwrap())
            .collect();
        let equal = agreement(&mask.pixels, &scaled);
        assert!(
            equal >= 0.999,
            "mask {i}: only {equal:.5} equals the meta's class map"
        );
    }

    // The overlay video has every frame.
    let (frames, _) = collect(
        &format!(
            "filesrc location={} ! parsebin ! vssdec ! appsink name=sink",
            video.display()
        ),
        usize::MAX,
    );
    assert_eq!(frames.len(), CLIP_FRAMES);
}

#[test]
fn segment_example_decodes_what_vssdec_cannot() {
    init();
    let dir = scratch("vsssegment-segment-vp8");
    let clip = dir.join("clip.webm");
    encode(
        "videotestsrc pattern=ball num-buffers=20 ! video/x-raw,width=320,height=240 \
         ! vp8enc deadline=1 ! webmmux ! filesink location={out}",
        &clip,
    );
    let masks = dir.join("masks");
    let out = Command::new(example("segment"))
        .arg(&clip)
        .arg("--masks")
        .arg(&masks)
        .output()
        .expect("running segment");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("decodebin, motion estimated"), "{stdout}");
    assert_eq!(std::fs::read_dir(&masks).unwrap().count(), 20);
    let mask = read_mask(&masks.join("000019.png"));
    assert_eq!((mask.width, mask.height), (320, 240));

    // Forcing vssdec on VP8 is a clear error, not a hang.
    let out = Command::new(example("segment"))
        .arg(&clip)
        .args(["--decoder", "vssdec"])
        .output()
        .expect("running segment");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("vssdec cannot decode"), "{stderr}");
}

#[test]
fn async_keyframes_keep_frames_flowing_on_the_previous_result() {
    init();
    const N: usize = 96;
    let (outs, messages) = collect(
        &format!(
            "filesrc location={} ! parsebin ! vssdec ! identity sleep-time=20000 \
             ! vsssegment overlay=none async-keyframes=true stats=true ! appsink name=sink",
            clip_location()
        ),
        N,
    );
    // 20 ms a frame (a 50 fps camera), so that inferences finish within a keyframe interval
    // even on a loaded machine.
    assert_eq!(outs.len(), N);
    let sync = clip_segmented();
    let mut adopted = 0;
    let mut previous_origin = 0;
    for (i, out) in outs.iter().enumerate() {
        let seg = out.seg();
        // Only the first frame waits for the model; the others are warped from the newest
        // keyframe result ready when they arrived, started on a multiple of the interval.
        assert_eq!(seg.keyframe, i == 0, "frame {i}");
        let branch = if i == 0 { Branch::Full } else { Branch::Warp };
        assert_eq!(seg.branch, branch, "frame {i}");
        let origin = i - seg.distance as usize;
        assert_eq!(origin % 12, 0, "frame {i}: warped from frame {origin}");
        assert!(
            origin >= previous_origin,
            "frame {i}: went back to {origin}"
        );
        adopted += usize::from(origin > previous_origin);
        previous_origin = origin;
        // Where the synchronous run warps the same keyframe, the maps are the same.
        if let Some(same) = sync
            .get(i)
            .filter(|s| i - s.seg().distance as usize == origin)
        {
            let a = agreement(&seg.class_map, &same.seg().class_map);
            assert!(
                a > 0.999,
                "frame {i}: {a} agreement with the synchronous run"
            );
        }
    }
    assert!(
        adopted >= 2,
        "only {adopted} background keyframes taken over in {N} frames"
    );
    let started: Vec<u64> = messages
        .iter()
        .filter(|s| s.name() == "vss-segment" && s.get::<bool>("keyframe-started").unwrap())
        .map(|s| s.get::<u64>("frame").unwrap())
        .collect();
    assert!(started.len() >= adopted, "{started:?}");
    assert!(started.iter().all(|f| f % 12 == 0), "{started:?}");
}

#[test]
fn async_keyframes_need_warp_mode() {
    init();
    let e = start_error("mode=full async-keyframes=true");
    assert!(e.contains("async-keyframes needs mode warp"), "{e}");
}

/// The pipeline's minimum latency with `vsssegment {properties}` on a live source.
fn live_latency(properties: &str) -> gst::ClockTime {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
         ! vsssegment {properties} ! fakesink name=sink"
    ))
    .expect("pipeline");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::AsyncDone, gst::MessageType::Error],
    );
    assert!(
        matches!(
            msg.as_ref().map(|m| m.view()),
            Some(gst::MessageView::AsyncDone(_))
        ),
        "{properties}: {msg:?}"
    );
    min_latency_at_sink(&pipeline)
}

/// What the sink named `sink` is told upstream's minimum latency is.
fn min_latency_at_sink(pipeline: &gst::Element) -> gst::ClockTime {
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("sink"))
        .expect("sink");
    let mut q = gst::query::Latency::new();
    let answered = sink.static_pad("sink").expect("pad").peer_query(&mut q);
    pipeline.set_state(gst::State::Null).expect("NULL");
    assert!(answered, "latency query unanswered");
    let (live, min, _max) = q.result();
    assert!(live);
    min
}

#[test]
fn latency_query_includes_the_keyframe_inference() {
    init();
    let bare = live_latency("mode=full");
    let source = {
        let p = gst::parse::launch(
            "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 \
             ! fakesink name=sink",
        )
        .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        p.bus().unwrap().timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::AsyncDone],
        );
        min_latency_at_sink(&p)
    };
    let sync = live_latency("mode=warp");
    let asynchronous = live_latency("mode=warp async-keyframes=true");
    // ESPNet at 360x480 takes tens of milliseconds on any CPU this runs on.
    assert!(
        bare > source + gst::ClockTime::from_mseconds(5),
        "{bare} vs source {source}"
    );
    assert!(
        sync > source + gst::ClockTime::from_mseconds(5),
        "{sync} vs source {source}"
    );
    assert!(asynchronous < sync, "async {asynchronous} vs sync {sync}");
}

#[test]
fn late_frames_make_it_degrade_in_the_documented_order() {
    init();
    // 100 fps live into mode=full: ESPNet cannot keep up on a CPU, so the synchronising sink
    // reports lateness and the element steps down: lowres, then warp.
    let pipeline = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=100/1 \
         ! vsssegment mode=full overlay=none ! fakesink sync=true qos=true",
    )
    .expect("pipeline");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut modes = Vec::new();
    while modes.last().is_none_or(|m| m != "warp") && std::time::Instant::now() < deadline {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(200),
            &[gst::MessageType::Element, gst::MessageType::Error],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "vss-qos") {
                    let level = s.get::<u32>("level").unwrap();
                    assert_eq!(level as usize, modes.len() + 1, "one step at a time");
                    modes.push(s.get::<String>("mode").unwrap());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    assert_eq!(modes, ["lowres", "warp"], "QoS steps within 30 s");
}

/// A QoS event that calls every frame late drops none of them: motion needs every frame, so
/// lateness is answered by the ladder, not by BaseTransform's dropping (on in GstVideoFilter).
#[test]
fn late_frames_are_never_dropped() {
    init();
    let pixels = &clip_rgb_native(1)[0];
    let mut h = harness(&[("mode", "full"), ("overlay", "none")]);
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    segment_one(&mut h, frame(pixels, 0, None));
    // Every frame before 10 s is late by a second.
    assert!(h.push_upstream_event(gst::event::Qos::new(
        gst::QOSType::Underflow,
        2.0,
        1_000_000_000,
        gst::ClockTime::from_seconds(10),
    )));
    for n in 1..4 {
        let out = segment_one(&mut h, frame(pixels, n, None));
        assert!(out.seg.is_some(), "frame {n}");
    }
}

/// Downstream that proposes the overlay meta but takes only plain caps gets the map blended:
/// the meta goes only where the caps feature was negotiated, and then the caps say so.
#[test]
fn overlay_meta_needs_the_negotiated_caps_feature() {
    init();
    let pixels = &clip_rgb_native(1)[0];
    let mut h = harness(&[("overlay", "auto")]);
    h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    h.set_sink_caps(rgb_caps(NATIVE_W, NATIVE_H));
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    let out = segment_one(&mut h, frame(pixels, 0, None));
    assert!(
        !out.overlay_meta && out.pixels != *pixels,
        "plain caps: blended"
    );

    let mut h = harness(&[("overlay", "auto")]);
    h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    h.set_src_caps(rgb_caps(NATIVE_W, NATIVE_H));
    let out = segment_one(&mut h, frame(pixels, 0, None));
    assert!(
        out.overlay_meta && out.pixels == *pixels,
        "feature caps: attached"
    );
    let caps = h
        .sinkpad()
        .and_then(|p| p.current_caps())
        .expect("output caps");
    assert!(
        caps.features(0).is_some_and(|f| f
            .contains(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION)),
        "{caps}"
    );
}

/// Every bundle that ships (the seed architectures trained here included) loads in the element
/// and segments real frames in every mode its scheme serves: keyframe and cheap path in the
/// keyframe modes, `full` maps at the bundle's native size, class ids inside its class table,
/// and a scene of several classes (a dashcam frame is never one class).
#[test]
fn every_shipped_bundle_segments_the_clip_in_every_mode_it_serves() {
    init();
    let modes = Mode::ALL;
    let names = Bundle::list_shipped();
    assert!(names.len() >= 8, "shipped bundles: {names:?}");
    for name in &names {
        let dir = gstvss::model::resolve_bundle(name).expect("shipped bundle resolves");
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE)).expect("manifest");
        let [native_h, native_w] = manifest.input.native_size;
        for mode in modes
            .iter()
            .filter(|m| m.schemes().contains(&manifest.scheme))
        {
            let (outs, _) = collect(
                &format!(
                    "filesrc location={} ! parsebin ! vssdec ! vsssegment overlay=none \
                     model={name} mode={} keyframe-policy=interval keyframe-interval=2 \
                     ! appsink name=sink",
                    clip_location(),
                    mode.as_str()
                ),
                3,
            );
            assert_eq!(outs.len(), 3, "{name} {mode:?}");
            for (i, out) in outs.iter().enumerate() {
                let seg = out.seg();
                assert_eq!(
                    seg.model.as_ref(),
                    name.as_str(),
                    "{name} {mode:?} frame {i}"
                );
                if matches!(mode, Mode::Warp | Mode::Fusion) {
                    // Keyframe, then the cheap path from it.
                    assert_eq!(seg.keyframe, i % 2 == 0, "{name} {mode:?} frame {i}");
                }
                if *mode == Mode::Full {
                    assert_eq!(
                        (seg.height, seg.width),
                        (native_h, native_w),
                        "{name} {mode:?} frame {i}"
                    );
                }
                let classes = seg.classes.len();
                assert!(
                    seg.class_map.iter().all(|&c| usize::from(c) < classes),
                    "{name} {mode:?} frame {i}: class id beyond the {classes} classes"
                );
                let present = seg
                    .class_shares()
                    .iter()
                    .filter(|&&share| share > 0.01)
                    .count();
                assert!(
                    present >= 3,
                    "{name} {mode:?} frame {i}: only {present} classes over 1% of the frame"
                );
            }
        }
    }
}
