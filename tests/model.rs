//! The model layer without GStreamer: shipped bundles against Python's TorchScript path,
//! frame pre-processing, bundle and device errors, warping along a motion field.
//!
//! Timings (not a test): `cargo test --release --test model -- --ignored --nocapture timings`

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gstvss::model::{
    Bundle, FrameLayout, ModelError, RawFrame, WarpMode, YuvColorimetry, class_map,
    class_map_bilinear, frame_to_rgb, parse_device, to_vec_u8, warp, warp_to,
};
use gstvss::motion::{MotionField, MotionVector};
use tch::{Device, Kind, Tensor};

use common::{agreement, mean_abs_diff};

const SHIPPED: [&str; 3] = ["camvid-espnet", "camvid-cgnet", "cityscapes-espnetv2"];
const CAMVID_FRAME: &str = "camvid/test/0001TP_008550.png";

// ---------------------------------------------------------------------------------------------
// Reference outputs from Python

/// What tests/support/bundle_reference.py wrote for one bundle and image.
struct Reference {
    height: usize,
    width: usize,
    model_height: usize,
    model_width: usize,
    logits_height: usize,
    logits_width: usize,
    classes: usize,
    image: Vec<u8>,
    input: Vec<u8>,
    class_map: Vec<u8>,
    logits: Vec<f32>,
    /// Only when the model size differs from the image's: torch's resize and its class map.
    torcrop_hresized: Option<(Vec<u8>, Vec<u8>)>,
}

/// Runs the helper into a scratch folder named after `tag` (one per concurrent test).
fn python_reference(bundle: &str, image: &Path, tag: &str) -> Reference {
    let dir = common::scratch(&format!("model-reference-{tag}"));
    let mut cmd = Command::new(common::venv_python());
    cmd.arg(common::root().join("tests/support/bundle_reference.py"))
        .arg(bundle)
        .arg(image)
        .arg(&dir);
    common::run(&mut cmd);
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    };
    let info: serde_json::Value = serde_json::from_slice(&read("info.json")).expect("info.json");
    let n = |k: &str| info[k].as_u64().unwrap_or_else(|| panic!("info.json: {k}")) as usize;
    let logits = read("logits.f32")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Reference {
        height: n("height"),
        width: n("width"),
        model_height: n("model_height"),
        model_width: n("model_width"),
        logits_height: n("logits_height"),
        logits_width: n("logits_width"),
        classes: n("classes"),
        image: read("image.rgb"),
        input: read("input.rgb"),
        class_map: read("classes.u8"),
        logits,
        torcrop_hresized: dir
            .join("input_torch.rgb")
            .exists()
            .then(|| (read("input_torch.rgb"), read("classes_torch.u8"))),
    }
}

fn packed_rgb_frame(rgb: &[u8], width: usize, height: usize) -> Tensor {
    assert_eq!(rgb.len(), width * height * 3);
    Tensor::from_slice(rgb)
        .view([1, height as i64, width as i64, 3])
        .permute([0, 3, 1, 2])
}

/// One shipped bundle against Python on a CamVid test frame: the same input bytes give the
/// same class map (>= 99.9%), and our own pre-processing of the frame gives nearly the same.
fn check_bundle_against_python(name: &str) {
    let image = common::shared_data(CAMVID_FRAME);
    let bundle = Bundle::load(name, Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    let (mh, mw) = bundle.manifest().native_size();
    let r = python_reference(name, &image, name);
    assert_eq!((r.model_height, r.model_width), (mh as usize, mw as usize));

    // 1. The exact input Python used.
    let input = packed_rgb_frame(&r.input, r.model_width, r.model_height);
    let (logits, features) = bundle.forward(&input).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        logits.size(),
        [
            1,
            r.classes as i64,
            r.logits_height as i64,
            r.logits_width as i64
        ]
    );
    let (fc, fs) = bundle.manifest().features();
    assert_eq!(
        features.size(),
        [1, i64::from(fc), i64::from(mh / fs), i64::from(mw / fs)]
    );
    let ours: Vec<f32> = Vec::<f32>::try_from(logits.flatten(0, -1)).expect("logits to vec");
    let max_diff = ours
        .iter()
        .zip(&r.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let map =
        to_vec_u8(&class_map(&logits, r.logits_height as u32, r.logits_width as u32).unwrap())
            .unwrap();
    let same = agreement(&map, &r.class_map);
    eprintln!("{name}: class map agreement {same:.6}, logits max |diff| {max_diff:.2e}");
    assert!(
        same >= 0.999,
        "{name}: only {:.4}% of pixels match Python's class map",
        100.0 * same
    );

    // 2. Our pre-processing of the original frame: the identity at native size; at another
    //    size (ESPNetv2), the same bytes as torch's resize and nearly those of PIL's.
    let planes: [&[u8]; 1] = [&r.image];
    let strides = [r.width * 3];
    let frame = RawFrame {
        layout: FrameLayout::Rgb,
        width: r.width as u32,
        height: r.height as u32,
        planes: &planes,
        strides: &strides,
    };
    let ours_input = frame_to_rgb(&frame, (mh, mw), YuvColorimetry::BT601, Device::Cpu).unwrap();
    let ours_hwc = to_vec_u8(&ours_input.permute([0, 2, 3, 1])).unwrap();
    let Some((torcrop_hinput, torcrop_hclasses)) = &r.torcrop_hresized else {
        assert_eq!(
            ours_hwc, r.image,
            "{name}: RGB at native size must pass unchanged"
        );
        return;
    };
    let off_by_one = ours_hwc
        .iter()
        .zip(torcrop_hinput)
        .filter(|(a, b)| a != b)
        .inspect(|(a, b)| assert!(a.abs_diff(**b) <= 1, "{name}: resize differs by > 1"))
        .count();
    let pil_diff = mean_abs_diff(&ours_hwc, &r.input);
    let (logits, _) = bundle.forward(&ours_input).unwrap();
    let map =
        to_vec_u8(&class_map(&logits, r.logits_height as u32, r.logits_width as u32).unwrap())
            .unwrap();
    let same_torch = agreement(&map, torcrop_hclasses);
    let same_pil = agreement(&map, &r.class_map);
    eprintln!(
        "{name}: own resize vs torch: {off_by_one} values off by one, class maps agree \
         {same_torch:.6}; vs PIL: mean |diff| {pil_diff:.3} levels, class maps agree {same_pil:.4}"
    );
    assert!(
        off_by_one * 1000 < ours_hwc.len(),
        "{name}: {off_by_one} values differ"
    );
    assert!(same_torch >= 0.999, "{name}: {same_torch}");
    // PIL rounds its 8-bit fixed-point weights differently (+-1 on ~14% of values); ESPNetv2
    // on CamVid is that sensitive: the same +-1 noise in Python alone moves ~1.1% of the map.
    assert!(pil_diff < 0.5, "{name}: {pil_diff}");
    assert!(same_pil >= 0.97, "{name}: {same_pil}");
}

#[test]
fn camvid_espnet_matches_python() {
    check_bundle_against_python("camvid-espnet");
}

#[test]
fn camvid_cgnet_matches_python() {
    check_bundle_against_python("camvid-cgnet");
}

#[test]
fn cityscapes_espnetv2_matches_python() {
    check_bundle_against_python("cityscapes-espnetv2");
}

#[test]
fn every_shipped_bundle_is_listed() {
    let names = Bundle::list_shipped();
    for name in SHIPPED {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Pre-processing

/// The CamVid frame's RGB bytes (360x480), through the Python helper (no PNG decoder here).
fn camvid_rgb() -> (Vec<u8>, usize, usize) {
    static RGB: std::sync::OnceLock<(Vec<u8>, usize, usize)> = std::sync::OnceLock::new();
    RGB.get_or_init(|| {
        let image = common::shared_data(CAMVID_FRAME);
        let r = python_reference("camvid-espnet", &image, "camvid-rgb");
        (r.image, r.width, r.height)
    })
    .clone()
}

/// BT.601 limited-range RGB -> Y'CbCr, the textbook formula (independent of the code under
/// test), chroma averaged over each 2x2 block.
fn rgb_to_yuv420(rgb: &[u8], w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (kr, kb) = (0.299f64, 0.114f64);
    let kg = 1.0 - kr - kb;
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        let (r, g, b) = (
            f64::from(rgb[i]),
            f64::from(rgb[i + 1]),
            f64::from(rgb[i + 2]),
        );
        let luma = kr * r + kg * g + kb * b;
        (
            16.0 + luma * 219.0 / 255.0,
            128.0 + (b - luma) / (2.0 * (1.0 - kb)) * 224.0 / 255.0,
            128.0 + (r - luma) / (2.0 * (1.0 - kr)) * 224.0 / 255.0,
        )
    };
    let to_u8 = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    let mut y_plane = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            y_plane[y * w + x] = to_u8(px(x, y).0);
        }
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (mut u_plane, mut v_plane) = (vec![0u8; cw * ch], vec![0u8; cw * ch]);
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let (_, u, v) = px(x, y);
                    su += u;
                    sv += v;
                    n += 1.0;
                }
            }
            u_plane[cy * cw + cx] = to_u8(su / n);
            v_plane[cy * cw + cx] = to_u8(sv / n);
        }
    }
    (y_plane, u_plane, v_plane)
}

/// Copies `rows` rows of `row_bytes` into a buffer with `pad` garbage bytes after each row.
fn padded(data: &[u8], rows: usize, row_bytes: usize, pad: usize) -> (Vec<u8>, usize) {
    let stride = row_bytes + pad;
    let mut out = vec![0xA5u8; rows * stride];
    for r in 0..rows {
        out[r * stride..r * stride + row_bytes]
            .copy_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    (out, stride)
}

/// Interleaves two planes (NV12's UV plane from U and V).
fn interleave(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).flat_map(|(&x, &y)| [x, y]).collect()
}

fn preprocess(
    layout: FrameLayout,
    w: usize,
    h: usize,
    planes: &[&[u8]],
    strides: &[usize],
    size: (u32, u32),
) -> Vec<u8> {
    let frame = RawFrame {
        layout,
        width: w as u32,
        height: h as u32,
        planes,
        strides,
    };
    let t = frame_to_rgb(&frame, size, YuvColorimetry::BT601, Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.size(), [1, 3, i64::from(size.0), i64::from(size.1)]);
    assert_eq!(t.kind(), Kind::Uint8);
    to_vec_u8(&t).unwrap()
}

#[test]
fn yuv_frames_come_out_like_the_rgb_frame() {
    let (rgb, w, h) = camvid_rgb();
    let (y, u, v) = rgb_to_yuv420(&rgb, w, h);
    let uv = interleave(&u, &v);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for size in [(360, 480), (184, 240), (512, 1024)] {
        let reference = preprocess(FrameLayout::Rgb, w, h, &[&rgb], &[w * 3], size);
        let i420 = preprocess(FrameLayout::I420, w, h, &[&y, &u, &v], &[w, cw, cw], size);
        let yv12 = preprocess(FrameLayout::Yv12, w, h, &[&y, &v, &u], &[w, cw, cw], size);
        let nv12 = preprocess(FrameLayout::Nv12, w, h, &[&y, &uv], &[w, 2 * cw], size);
        let vu = interleave(&v, &u);
        let nv21 = preprocess(FrameLayout::Nv21, w, h, &[&y, &vu], &[w, 2 * cw], size);
        let diff = mean_abs_diff(&i420, &reference);
        eprintln!("{size:?}: I420 vs RGB mean |diff| {diff:.3} levels");
        assert!(diff < 2.0, "{size:?}: I420 vs RGB mean |diff| {diff}");
        assert_eq!(i420, yv12);
        assert_eq!(i420, nv12);
        assert_eq!(i420, nv21);
        assert_eq!(ch * cw, u.len());
    }
}

#[test]
fn packed_layouts_agree_exactly() {
    let (rgb, w, h) = camvid_rgb();
    let bgrx: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0], 0x5A])
        .collect();
    let argb: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [0xFF, p[0], p[1], p[2]])
        .collect();
    for size in [(360, 480), (184, 240)] {
        let reference = preprocess(FrameLayout::Rgb, w, h, &[&rgb], &[w * 3], size);
        for layout in [FrameLayout::Bgrx, FrameLayout::Bgra] {
            assert_eq!(
                preprocess(layout, w, h, &[&bgrx], &[w * 4], size),
                reference,
                "{layout} {size:?}"
            );
        }
        for layout in [FrameLayout::Argb, FrameLayout::Xrgb] {
            assert_eq!(
                preprocess(layout, w, h, &[&argb], &[w * 4], size),
                reference,
                "{layout} {size:?}"
            );
        }
    }
    // Same size and RGB: the pixels themselves.
    let same = preprocess(
        FrameLayout::Rgb,
        w,
        h,
        &[&rgb],
        &[w * 3],
        (h as u32, w as u32),
    );
    let planar: Vec<u8> = (0..3)
        .flat_map(|c| rgb.iter().skip(c).step_by(3).copied())
        .collect();
    assert_eq!(same, planar);
}

#[test]
fn padded_strides_are_skipped() {
    let (rgb, w, _) = camvid_rgb();
    // An odd-sized crop, so that chroma has partial blocks.
    let (crop_w, crop_h) = (301usize, 201usize);
    let crop: Vec<u8> = (0..crop_h)
        .flat_map(|r| rgb[r * w * 3..r * w * 3 + crop_w * 3].to_vec())
        .collect();
    let size = (96, 128);
    let tight = preprocess(
        FrameLayout::Rgb,
        crop_w,
        crop_h,
        &[&crop],
        &[crop_w * 3],
        size,
    );
    let (padded_rgb, stride) = padded(&crop, crop_h, crop_w * 3, 17);
    assert_eq!(
        preprocess(
            FrameLayout::Rgb,
            crop_w,
            crop_h,
            &[&padded_rgb],
            &[stride],
            size
        ),
        tight
    );
    // The last row may end at its last pixel (no trailing padding).
    let short = &padded_rgb[..padded_rgb.len() - 17];
    assert_eq!(
        preprocess(FrameLayout::Rgb, crop_w, crop_h, &[short], &[stride], size),
        tight
    );

    let (y, u, v) = rgb_to_yuv420(&crop, crop_w, crop_h);
    let (cw, ch) = (crop_w.div_ceil(2), crop_h.div_ceil(2));
    let tight = preprocess(
        FrameLayout::I420,
        crop_w,
        crop_h,
        &[&y, &u, &v],
        &[crop_w, cw, cw],
        size,
    );
    let (py, sy) = padded(&y, crop_h, crop_w, 35);
    let (pu, su) = padded(&u, ch, cw, 13);
    let (pv, sv) = padded(&v, ch, cw, 13);
    assert_eq!(
        preprocess(
            FrameLayout::I420,
            crop_w,
            crop_h,
            &[&py, &pu, &pv],
            &[sy, su, sv],
            size
        ),
        tight
    );
    let uv = interleave(&u, &v);
    let (puv, suv) = padded(&uv, ch, 2 * cw, 64 - (2 * cw) % 64);
    assert_eq!(
        preprocess(
            FrameLayout::Nv12,
            crop_w,
            crop_h,
            &[&py, &puv],
            &[sy, suv],
            size
        ),
        tight
    );
}

// ---------------------------------------------------------------------------------------------
// Bundle and device errors

/// A copy of a shipped bundle in a scratch folder, for breaking.
fn bundle_copy(name: &str, test: &str) -> PathBuf {
    let dir = common::scratch(&format!("model-{test}")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let src = gstvss::model::resolve_bundle(name).expect("shipped bundle resolves");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

fn load_error(spec: &Path) -> (ModelError, String) {
    let e = Bundle::load(&spec.to_string_lossy(), Device::Cpu)
        .expect_err("loading a broken bundle must fail");
    let text = e.to_string();
    (e, text)
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn a_missing_bundle_folder_is_named() {
    let dir = common::scratch("model-missing").join("no-such-bundle");
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::BundleNotFound { .. }), "{text}");
    assert!(text.contains(&*dir.to_string_lossy()), "{text}");
    assert!(
        text.contains("camvid-espnet"),
        "lists the shipped bundles: {text}"
    );

    let e = Bundle::load("camvid-nonet", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"camvid-nonet\"") && e.contains("bundles there: "),
        "{e}"
    );

    let empty = common::scratch("model-no-manifest");
    let (e, text) = load_error(&empty);
    assert!(matches!(e, ModelError::NoManifest { .. }), "{text}");
    assert!(text.contains(&*empty.to_string_lossy()) && text.contains("manifest.json"));
}

#[test]
fn a_manifest_path_loads_the_bundle() {
    let dir = bundle_copy("camvid-espnet", "manifest-path");
    let bundle = Bundle::load(&dir.join("manifest.json").to_string_lossy(), Device::Cpu).unwrap();
    assert_eq!(bundle.folder(), dir);
    assert_eq!(bundle.name(), "camvid-espnet");
}

#[test]
fn a_corrupt_module_is_named() {
    let dir = bundle_copy("camvid-espnet", "corrupt");
    let module = dir.join("model.pt");
    // Deterministic noise (xorshift), the size of a small module.
    let mut state = 0x2545F4914F6CDD1Du64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&module, noise).unwrap();
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::ModuleLoad { .. }), "{text}");
    assert!(text.contains(&*module.to_string_lossy()), "{text}");

    std::fs::remove_file(&module).unwrap();
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::ModuleMissing { .. }), "{text}");
    assert!(
        text.contains("model.pt") && text.contains("files.module"),
        "{text}"
    );
}

#[test]
fn format_version_2_is_refused() {
    let dir = bundle_copy("camvid-espnet", "version2");
    edit_manifest(&dir, |v| v["format_version"] = 2.into());
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::ManifestField { .. }), "{text}");
    assert!(text.contains("format_version"), "{text}");
    assert!(
        text.contains(&*dir.join("manifest.json").to_string_lossy()),
        "{text}"
    );
}

#[test]
fn a_manifest_without_classes_is_refused() {
    let dir = bundle_copy("camvid-espnet", "no-classes");
    edit_manifest(&dir, |v| {
        v.as_object_mut().unwrap().remove("classes");
    });
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::ManifestField { .. }), "{text}");
    assert!(text.contains("field 'classes' is missing"), "{text}");
    assert!(
        text.contains(&*dir.join("manifest.json").to_string_lossy()),
        "{text}"
    );

    std::fs::write(dir.join("manifest.json"), "{ not json").unwrap();
    let (_, text) = load_error(&dir);
    assert!(text.contains("not valid JSON"), "{text}");
}

#[test]
fn a_manifest_that_lies_about_the_module_is_caught_at_load() {
    let dir = bundle_copy("camvid-espnet", "wrong-classes");
    edit_manifest(&dir, |v| {
        v["classes"].as_array_mut().unwrap().pop();
    });
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::ModuleContract { .. }), "{text}");
    assert!(
        text.contains("model.pt") && text.contains("[1, 10, 360, 480]"),
        "{text}"
    );
}

#[test]
fn methods_of_other_schemes_are_refused_clearly() {
    let bundle = Bundle::load("camvid-espnet", Device::Cpu).unwrap();
    let image = Tensor::zeros([1, 3, 64, 64], (Kind::Uint8, Device::Cpu));
    let e = bundle.step(&image, 0, &[]).unwrap_err().to_string();
    assert!(e.contains("'step'") && e.contains("tdnet"), "{e}");
    let e = bundle
        .warp_features(
            &Tensor::zeros([1, 12, 4, 4], (Kind::Float, Device::Cpu)),
            &[0.0; 32],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("'warp'") && e.contains("arseg"), "{e}");
}

#[test]
fn a_tdnet_bundle_steps_with_its_memory() {
    let bundle = Bundle::load("camvid-tdnet", Device::Cpu).unwrap();
    assert_eq!(bundle.manifest().subnetworks(), 2);
    let image = Tensor::full([1, 3, 360, 480], 90, (Kind::Uint8, Device::Cpu));
    let (logits, features, memory) = bundle.step(&image, 0, &[]).unwrap();
    assert_eq!(logits.size(), [1, 11, 360, 480]);
    assert_eq!(features.size(), [1, 256, 45, 60]);
    assert_eq!(memory.len(), 2);
    // forward is a step from a reset.
    let (forward, _) = bundle.forward(&image).unwrap();
    assert!(forward.equal(&logits));
    // The next step reads the memory and runs the other sub-network.
    let (next, _, _) = bundle.step(&image, 1, &memory).unwrap();
    assert!(!next.equal(&logits));
}

#[test]
fn an_arseg_manifest_names_what_it_lacks() {
    let dir = bundle_copy("camvid-espnet", "arseg-manifest");
    edit_manifest(&dir, |v| v["scheme"] = "arseg".into());
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::ManifestField { .. }), "{text}");
    assert!(text.contains("methods.keyframe"), "{text}");
    edit_manifest(&dir, |v| {
        let forward = v["methods"]["forward"].clone();
        for method in ["keyframe", "nonkeyframe", "warp"] {
            v["methods"][method] = forward.clone();
        }
    });
    let (_, text) = load_error(&dir);
    assert!(text.contains("lowres_scale"), "{text}");
    // The image module has no `keyframe` method: caught at load, naming file and method.
    edit_manifest(&dir, |v| v["lowres_scale"] = 0.5.into());
    let (e, text) = load_error(&dir);
    assert!(matches!(e, ModelError::ModuleContract { .. }), "{text}");
    assert!(
        text.contains("model.pt") && text.contains("'keyframe'"),
        "{text}"
    );
}

const ARSEG_BUNDLE: &str = "camvid-espnet-arseg";

#[test]
fn arseg_bundle_keyframes_are_the_default_network_and_zero_motion_warps_to_itself() {
    let arseg = Bundle::load_with_warmup(ARSEG_BUNDLE, Device::Cpu, 1).unwrap();
    let image_bundle = Bundle::load_with_warmup("camvid-espnet", Device::Cpu, 1).unwrap();
    let (h, w) = arseg.manifest().native_size();
    let (rgb, iw, ih) = camvid_rgb();
    let frame = packed_rgb_frame(&rgb, iw, ih);
    let image = gstvss::model::resize(&frame.to_kind(Kind::Float), [h as i64, w as i64])
        .unwrap()
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8);
    let (logits, features) = arseg.keyframe(&image).unwrap();
    let (want_logits, want_features) = image_bundle.forward(&image).unwrap();
    let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    assert!(diff(&logits, &want_logits) < 1e-3, "keyframe logits differ");
    assert!(
        diff(&features, &want_features) < 1e-3,
        "keyframe features differ"
    );

    let (fh, fw) = arseg.feature_size(h, w);
    assert_eq!(features.size(), [1, 12, i64::from(fh), i64::from(fw)]);
    let zero = MotionField::new(w, h, 4)
        .unwrap()
        .to_grid(fh as usize, fw as usize);
    let warped = arseg.warp_features(&features, &zero).unwrap();
    // Up to float rounding of the grid positions (~1e-6 of a position) times the gradients.
    let scale = features.abs().max().double_value(&[]);
    let moved = diff(&warped, &features);
    assert!(
        moved < 1e-5 * scale,
        "zero motion moved the features by {moved} (max {scale})"
    );

    // Content 2 px to the right in the keyframe = one feature position at stride 2: interior
    // features read their right neighbour's keyframe feature exactly.
    let field = global_field(w, h, 2, 0);
    let shifted = arseg
        .warp_features(&features, &field.to_grid(fh as usize, fw as usize))
        .unwrap();
    let interior = |t: &Tensor| t.narrow(2, 8, fh as i64 - 16).narrow(3, 8, fw as i64 - 16);
    let want = interior(
        &features
            .narrow(3, 1, fw as i64 - 1)
            .pad([0, 1, 0, 0], "constant", None),
    );
    let off = diff(&interior(&shifted), &want);
    assert!(
        off < 1e-5 * scale,
        "a 2 px shift is one feature position: off by {off}"
    );

    let (lh, lw) = arseg.manifest().scaled_size(arseg.lowres_scale());
    let low = gstvss::model::resize(&image.to_kind(Kind::Float), [lh as i64, lw as i64])
        .unwrap()
        .round()
        .to_kind(Kind::Uint8);
    let (fused_logits, fused) = arseg.nonkeyframe(&low, &warped).unwrap();
    assert_eq!(fused_logits.size(), logits.size());
    assert_eq!(fused.size(), features.size());
    // On the keyframe itself, fusion mostly agrees with the full-resolution network.
    let a = to_vec_u8(&class_map(&fused_logits, h, w).unwrap()).unwrap();
    let b = to_vec_u8(&class_map(&logits, h, w).unwrap()).unwrap();
    let equal = agreement(&a, &b);
    assert!(
        equal > 0.8,
        "fusion on the keyframe agrees only {equal:.3} with full"
    );
}

#[test]
fn devices_parse_and_cuda_fails_clearly_without_a_gpu() {
    assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
    let e = parse_device("gpu7").unwrap_err();
    assert!(matches!(e, ModelError::DeviceSyntax { .. }), "{e}");
    assert!(e.to_string().contains("\"gpu7\""), "{e}");
    for spec in ["cuda", "cuda:0", "cuda:3"] {
        match parse_device(spec) {
            // A machine with a GPU: the device must be usable.
            Ok(Device::Cuda(i)) => {
                let t = Tensor::ones([2], (Kind::Float, Device::Cuda(i)));
                assert_eq!(t.sum(Kind::Float).double_value(&[]), 2.0);
            }
            Ok(other) => panic!("{spec} parsed as {other:?}"),
            Err(e) => {
                assert!(matches!(e, ModelError::CudaUnavailable { .. }), "{e}");
                let text = e.to_string();
                eprintln!("{text}");
                assert!(
                    text.contains("CUDA is not available on this machine"),
                    "{text}"
                );
                assert!(text.contains(spec), "{text}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Warping along a motion field

/// A field where every 16x16 block moved by `(k, j)` whole pixels: the content at `p` was at
/// `p + (k, j)` in the keyframe.
fn global_field(w: u32, h: u32, k: i32, j: i32) -> MotionField {
    let mut vectors = Vec::new();
    for by in 0..h.div_ceil(16) {
        for bx in 0..w.div_ceil(16) {
            let (dst_x, dst_y) = ((bx * 16 + 8) as i16, (by * 16 + 8) as i16);
            vectors.push(MotionVector {
                source: -1,
                w: 16,
                h: 16,
                src_x: dst_x + k as i16,
                src_y: dst_y + j as i16,
                dst_x,
                dst_y,
                motion_x: 4 * k,
                motion_y: 4 * j,
                motion_scale: 4,
            });
        }
    }
    let mut field = MotionField::new(w, h, 4).unwrap();
    let report = field.paint(&vectors);
    assert_eq!(report.uncovered_cells, 0);
    field
}

/// `[1, c, h, w]` float values in [0, 1) that differ everywhere.
fn ramp(c: i64, h: i64, w: i64) -> Tensor {
    Tensor::arange(c * h * w, (Kind::Float, Device::Cpu))
        .remainder(1009)
        .g_div_scalar(1009.0)
        .view([1, c, h, w])
}

#[test]
fn zero_motion_warps_to_the_same_tensor() {
    let field = MotionField::new(96, 64, 4).unwrap();
    for (h, w) in [(64, 96), (32, 48), (8, 12)] {
        let x = ramp(5, h, w);
        let grid = field.to_grid(h as usize, w as usize);
        for mode in [WarpMode::Bilinear, WarpMode::Nearest] {
            let y = warp(&x, &grid, mode).unwrap();
            let diff = (&y - &x).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{h}x{w} {mode:?}: max |diff| {diff}");
        }
    }
}

#[test]
fn a_uniform_field_shifts_by_k_pixels() {
    let (w, h) = (96u32, 64u32);
    for (k, j) in [(6, 0), (-4, 2), (0, -8)] {
        let field = global_field(w, h, k, j);
        // At frame resolution (k px) and at stride 2, a feature map (k/2 px).
        for stride in [1i64, 2] {
            let (mh, mw) = (i64::from(h) / stride, i64::from(w) / stride);
            let x = ramp(3, mh, mw);
            let grid = field.to_grid(mh as usize, mw as usize);
            let (sk, sj) = (i64::from(k) / stride, i64::from(j) / stride);
            for mode in [WarpMode::Bilinear, WarpMode::Nearest] {
                let y = warp(&x, &grid, mode).unwrap();
                // out(y, x) = in(clamp(y + j), clamp(x + k)): border padding.
                let cols = Tensor::arange(mw, (Kind::Int64, Device::Cpu))
                    .g_add_scalar(sk)
                    .clamp(0, mw - 1);
                let rows = Tensor::arange(mh, (Kind::Int64, Device::Cpu))
                    .g_add_scalar(sj)
                    .clamp(0, mh - 1);
                let want = x.index_select(3, &cols).index_select(2, &rows);
                let diff = (&y - &want).abs().max().double_value(&[]);
                assert!(
                    diff < 1e-5,
                    "shift ({k}, {j}) stride {stride} {mode:?}: max |diff| {diff}"
                );
            }
        }
    }
}

#[test]
fn class_map_warp_agrees_with_the_motion_module() {
    let (w, h) = (96u32, 64u32);
    // A fractional, non-uniform field: vectors differ per block (quarter-pel).
    let mut vectors = Vec::new();
    for by in 0..h / 16 {
        for bx in 0..w / 16 {
            let (dst_x, dst_y) = ((bx * 16 + 8) as i16, (by * 16 + 8) as i16);
            let (mx, my) = ((bx as i32 * 5) % 13 - 6, (by as i32 * 7) % 11 - 5);
            vectors.push(MotionVector {
                source: -1,
                w: 16,
                h: 16,
                src_x: dst_x,
                src_y: dst_y,
                dst_x,
                dst_y,
                motion_x: mx,
                motion_y: my,
                motion_scale: 4,
            });
        }
    }
    let mut field = MotionField::new(w, h, 4).unwrap();
    field.paint(&vectors);
    let (mw, mh) = (48usize, 32usize);
    let map: Vec<u8> = (0..mw * mh)
        .map(|i| ((i % mw) / 5 + (i / mw) * 3) as u8)
        .collect();
    let mut want = vec![0u8; map.len()];
    field
        .warp_class_map(&map, mw as u32, mh as u32, &mut want)
        .unwrap();
    let t = Tensor::from_slice(&map).view([1, 1, mh as i64, mw as i64]);
    let got = warp(&t, &field.to_grid(mh, mw), WarpMode::Nearest).unwrap();
    assert_eq!(got.kind(), Kind::Uint8);
    assert_eq!(to_vec_u8(&got).unwrap(), want);

    // warp_to: model-size logits sampled straight at the frame's resolution.
    let logits = ramp(4, mh as i64, mw as i64);
    let up = warp_to(
        &logits,
        &field.to_grid(h as usize, w as usize),
        (h as usize, w as usize),
        WarpMode::Bilinear,
    )
    .unwrap();
    assert_eq!(up.size(), [1, 4, i64::from(h), i64::from(w)]);
}

// ---------------------------------------------------------------------------------------------
// Timings (ignored: a measurement, not a test)

/// A frame's layout, plane slices and strides.
type FramePlanes<'a> = (FrameLayout, Vec<&'a [u8]>, Vec<usize>);

/// A packed RGB frame through our own pre-processing at `size` (height, width).
fn rgb_resized(rgb: &[u8], w: usize, h: usize, size: (u32, u32)) -> Tensor {
    let planes: [&[u8]; 1] = [rgb];
    let frame = RawFrame {
        layout: FrameLayout::Rgb,
        width: w as u32,
        height: h as u32,
        planes: &planes,
        strides: &[w * 3],
    };
    frame_to_rgb(&frame, size, YuvColorimetry::BT601, Device::Cpu).unwrap()
}

/// `lowres` turns low-resolution logits into the native map with `class_map_bilinear`, which on
/// the CPU interpolates only along class edges: on real logits (camvid-espnet on a CamVid frame at
/// half size, up to 360x480 and to 960x540) it gives the map of upsampling every channel.
#[test]
fn bilinear_class_maps_of_real_logits_match_full_upsampling() {
    let (rgb, w, h) = camvid_rgb();
    let bundle = Bundle::load("camvid-espnet", Device::Cpu).unwrap();
    let image = rgb_resized(&rgb, w, h, bundle.manifest().scaled_size(0.5));
    let (logits, _) = bundle.forward(&image).unwrap();
    for (oh, ow) in [(360u32, 480u32), (540, 960)] {
        let ours = to_vec_u8(&class_map_bilinear(&logits, oh, ow).unwrap()).unwrap();
        let (_, ids) = logits
            .upsample_bilinear2d([i64::from(oh), i64::from(ow)], false, None, None)
            .max_dim(1, false);
        let dense = to_vec_u8(&ids.to_kind(tch::Kind::Uint8)).unwrap();
        let same = agreement(&ours, &dense);
        eprintln!("{ow}x{oh}: {same:.6} of pixels equal");
        assert!(same >= 0.9999, "{ow}x{oh}: only {same:.6} of pixels equal");
    }
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[runs / 2])
}

fn report(what: &str, (min, median): (Duration, Duration)) {
    eprintln!(
        "{what:<58} min {:>7.2} ms   median {:>7.2} ms",
        min.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn timings() {
    gstvss::model::set_threads(2);
    // All of it on the libtorch executor, as in the element: torch work on this thread too
    // would start a second OpenMP team, and GNU OpenMP then throttles every team's spinning
    // (the forward measured 55 ms here against 30 in the element).
    gstvss::model::executor::run(timings_here);
}

fn timings_here() {
    let (rgb, w, h) = camvid_rgb();
    let image = packed_rgb_frame(&rgb, w, h);
    for name in SHIPPED {
        let bundle = Bundle::load(name, Device::Cpu).unwrap();
        let (mh, mw) = bundle.manifest().native_size();
        let input = if (mh as usize, mw as usize) == (h, w) {
            image.shallow_clone()
        } else {
            rgb_resized(&rgb, w, h, (mh, mw))
        };
        report(
            &format!("forward {name} {mh}x{mw} (2 threads)"),
            time(20, || bundle.forward(&input).unwrap()),
        );
    }

    // A 960x540 frame (the dashcam clip's size) made by scaling the CamVid frame up.
    let (fw, fh) = (960usize, 540usize);
    let big =
        to_vec_u8(&rgb_resized(&rgb, w, h, (fh as u32, fw as u32)).permute([0, 2, 3, 1])).unwrap();
    let (y, u, v) = rgb_to_yuv420(&big, fw, fh);
    let uv = interleave(&u, &v);
    let bgrx: Vec<u8> = big
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0], 0])
        .collect();
    let cw = fw / 2;
    let cases: [FramePlanes<'_>; 4] = [
        (FrameLayout::I420, vec![&y, &u, &v], vec![fw, cw, cw]),
        (FrameLayout::Nv12, vec![&y, &uv], vec![fw, fw]),
        (FrameLayout::Rgb, vec![&big], vec![fw * 3]),
        (FrameLayout::Bgrx, vec![&bgrx], vec![fw * 4]),
    ];
    for (layout, planes, strides) in &cases {
        let layout = *layout;
        let frame = &RawFrame {
            layout,
            width: fw as u32,
            height: fh as u32,
            planes,
            strides,
        };
        for size in [(360u32, 480u32), (184, 240)] {
            report(
                &format!("preprocess {layout} {fw}x{fh} -> {}x{}", size.1, size.0),
                time(30, || {
                    frame_to_rgb(frame, size, YuvColorimetry::BT601, Device::Cpu).unwrap()
                }),
            );
        }
    }

    let bundle = Bundle::load("camvid-espnet", Device::Cpu).unwrap();
    let (logits, _) = bundle.forward(&image).unwrap();
    for (oh, ow) in [(360u32, 480u32), (540, 960), (720, 1280)] {
        report(
            &format!("class_map 11x360x480 -> {ow}x{oh}"),
            time(30, || {
                to_vec_u8(&class_map(&logits, oh, ow).unwrap()).unwrap()
            }),
        );
        report(
            &format!("class_map_bilinear 11x360x480 -> {ow}x{oh}"),
            time(30, || {
                to_vec_u8(&class_map_bilinear(&logits, oh, ow).unwrap()).unwrap()
            }),
        );
        let a = to_vec_u8(&class_map(&logits, oh, ow).unwrap()).unwrap();
        let b = to_vec_u8(&class_map_bilinear(&logits, oh, ow).unwrap()).unwrap();
        eprintln!(
            "  nearest vs bilinear at {ow}x{oh}: {:.3}% of pixels differ",
            100.0 * (1.0 - agreement(&a, &b))
        );
    }

    let field = global_field(fw as u32, fh as u32, 3, -2);
    let mut grid = Vec::new();
    report(
        "MotionField::write_grid 360x480",
        time(30, || field.write_grid(360, 480, &mut grid)),
    );
    field.write_grid(360, 480, &mut grid);
    report(
        "warp logits 11x360x480 bilinear",
        time(30, || warp(&logits, &grid, WarpMode::Bilinear).unwrap()),
    );
    let map = class_map(&logits, 360, 480).unwrap().view([1, 1, 360, 480]);
    report(
        "warp class map 360x480 nearest",
        time(30, || warp(&map, &grid, WarpMode::Nearest).unwrap()),
    );
    let map = to_vec_u8(&map).unwrap();
    let mut out = vec![0u8; map.len()];
    report(
        "MotionField::warp_class_map 360x480",
        time(30, || {
            field.warp_class_map(&map, 480, 360, &mut out).unwrap()
        }),
    );
}
