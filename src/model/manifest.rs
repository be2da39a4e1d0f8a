//! manifest.json of a model bundle (format_version 1), read and checked as models/README.md says.
//!
//! `models/vss_models/bundle.py` is the reference validator; the rules here are the same and
//! every error names the file and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ModelError;

/// The only manifest format this reader understands.
pub const FORMAT_VERSION: u64 = 1;

/// The manifest's file name inside a bundle folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Which methods a bundle's module exports and how the element calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `forward(img) -> (logits, features)`: one network on whole frames.
    Image,
    /// AR-Seg: keyframe network plus low-resolution branch fused with warped features.
    Arseg,
    /// TDNet: shallow sub-networks run round-robin with attention propagation.
    Tdnet,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Image => "image",
            Scheme::Arseg => "arseg",
            Scheme::Tdnet => "tdnet",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One class: `id` is its index in `classes` and its logits channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    pub id: u32,
    pub name: String,
    /// RGB, 0..255.
    pub color: [u8; 3],
}

/// What `forward` takes (fixed in format_version 1: RGB, NCHW, uint8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    pub format: String,
    pub layout: String,
    pub dtype: String,
    /// `[height, width]`.
    pub native_size: [u32; 2],
    pub size_multiple: u32,
    /// Human-readable; the module normalises inside, the caller does nothing.
    pub normalization: String,
}

/// A method's inputs and outputs, as descriptive strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodSpec {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// The feature map a method returns beside the logits: `[1, channels, H/stride, W/stride]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub channels: u32,
    pub stride: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// TorchScript file, relative to the bundle folder.
    pub module: String,
}

/// manifest.json, field for field. Unknown fields are ignored, as the contract allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u64,
    pub name: String,
    pub description: String,
    pub dataset: String,
    pub scheme: Scheme,
    pub classes: Vec<ClassInfo>,
    pub input: InputSpec,
    pub methods: BTreeMap<String, MethodSpec>,
    pub logits_stride: u32,
    pub features: FeatureSpec,
    pub files: FileSpec,
    pub source: String,
    pub license: String,
    /// `arseg`: the side scale the low-resolution branch was trained at (0 < s <= 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowres_scale: Option<f64>,
    /// `tdnet`: how many sub-networks take turns (the `slot` of `step` runs modulo this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnetworks: Option<u32>,
}

/// The methods an `arseg` module exports beside `forward` (= `keyframe`).
pub const ARSEG_METHODS: [&str; 3] = ["keyframe", "nonkeyframe", "warp"];

/// The methods a `tdnet` module exports: `forward` (one step from a reset) and `step`.
pub const TDNET_METHODS: [&str; 2] = ["forward", "step"];

impl Manifest {
    /// Reads and checks `path` (a manifest.json).
    pub fn read(path: &Path) -> Result<Manifest, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(&text, path)
    }

    /// Parses and checks manifest text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ModelError> {
        let parse_error = |message: String| ModelError::ManifestParse {
            path: path.to_path_buf(),
            message,
        };
        let field_error = |field: &str, problem: String| ModelError::ManifestField {
            path: path.to_path_buf(),
            field: field.to_string(),
            problem,
        };
        // The version first: another version may lack or redefine fields, and its error must
        // say "format_version", not whichever field moved.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| parse_error(format!("not valid JSON ({e})")))?;
        let object = value
            .as_object()
            .ok_or_else(|| parse_error("the manifest must be a JSON object".into()))?;
        match object.get("format_version") {
            None => return Err(field_error("format_version", "is missing".into())),
            Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(field_error(
                    "format_version",
                    format!(
                        "is {v}; this reader supports format_version {FORMAT_VERSION} only \
                         (re-export the bundle with a matching models/export.py)"
                    ),
                ));
            }
        }
        // From the text again so that serde's messages carry line and column.
        let manifest: Manifest =
            serde_json::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        manifest
            .validate()
            .map_err(|(field, problem)| field_error(&field, problem))?;
        Ok(manifest)
    }

    /// The contract's rules beyond types; `Err((field, problem))`.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, problem: String| Err((field.to_string(), problem));
        let non_empty = |field: &str, value: &str| {
            if value.trim().is_empty() {
                fail(field, "must not be empty".into())
            } else {
                Ok(())
            }
        };
        non_empty("name", &self.name)?;
        non_empty("dataset", &self.dataset)?;
        if self.classes.is_empty() {
            return fail("classes", "must list at least one class".into());
        }
        for (i, class) in self.classes.iter().enumerate() {
            if class.id as usize != i {
                return fail(
                    &format!("classes[{i}].id"),
                    format!(
                        "must be {i} (ids are the logits channels, in order), got {}",
                        class.id
                    ),
                );
            }
            non_empty(&format!("classes[{i}].name"), &class.name)?;
        }
        let fixed = [
            ("input.format", &self.input.format, "RGB"),
            ("input.layout", &self.input.layout, "NCHW"),
            ("input.dtype", &self.input.dtype, "uint8"),
        ];
        for (field, value, want) in fixed {
            if value != want {
                return fail(field, format!("must be one of [{want:?}], got {value:?}"));
            }
        }
        let multiple = self.input.size_multiple;
        if multiple == 0 {
            return fail(
                "input.size_multiple",
                "must be a positive integer, got 0".into(),
            );
        }
        let [h, w] = self.input.native_size;
        if h == 0 || w == 0 || h % multiple != 0 || w % multiple != 0 {
            return fail(
                "input.native_size",
                format!(
                    "must be [height, width], positive multiples of input.size_multiple \
                     ({multiple}), got [{h}, {w}]"
                ),
            );
        }
        non_empty("input.normalization", &self.input.normalization)?;
        if self.scheme == Scheme::Image && !self.methods.contains_key("forward") {
            return fail(
                "methods.forward",
                "is missing (required by scheme 'image')".into(),
            );
        }
        if self.scheme == Scheme::Arseg {
            for method in ARSEG_METHODS {
                if !self.methods.contains_key(method) {
                    return fail(
                        &format!("methods.{method}"),
                        "is missing (required by scheme 'arseg')".into(),
                    );
                }
            }
            match self.lowres_scale {
                Some(s) if s > 0.0 && s <= 1.0 => {}
                Some(s) => return fail("lowres_scale", format!("must be in (0, 1], got {s}")),
                None => {
                    return fail(
                        "lowres_scale",
                        "is missing (required by scheme 'arseg')".into(),
                    );
                }
            }
        }
        if self.scheme == Scheme::Tdnet {
            for method in TDNET_METHODS {
                if !self.methods.contains_key(method) {
                    return fail(
                        &format!("methods.{method}"),
                        "is missing (required by scheme 'tdnet')".into(),
                    );
                }
            }
            match self.subnetworks {
                Some(n) if n >= 1 => {}
                Some(n) => return fail("subnetworks", format!("must be at least 1, got {n}")),
                None => {
                    return fail(
                        "subnetworks",
                        "is missing (required by scheme 'tdnet')".into(),
                    );
                }
            }
        }
        for (name, method) in &self.methods {
            for (key, list) in [("inputs", &method.inputs), ("outputs", &method.outputs)] {
                if list.is_empty() {
                    return fail(
                        &format!("methods.{name}.{key}"),
                        "must be a non-empty list of strings".into(),
                    );
                }
            }
        }
        for (field, value) in [
            ("logits_stride", self.logits_stride),
            ("features.channels", self.features.channels),
            ("features.stride", self.features.stride),
        ] {
            if value == 0 {
                return fail(field, "must be a positive integer, got 0".into());
            }
        }
        non_empty("files.module", &self.files.module)?;
        Ok(())
    }

    /// `tdnet`: the number of sub-networks (1 for other schemes).
    pub fn subnetworks(&self) -> u32 {
        self.subnetworks.unwrap_or(1).max(1)
    }

    /// `(height, width)` the network was trained at; the default model input size.
    pub fn native_size(&self) -> (u32, u32) {
        let [h, w] = self.input.native_size;
        (h, w)
    }

    /// Input height and width must be multiples of this.
    pub fn size_multiple(&self) -> u32 {
        self.input.size_multiple
    }

    /// Logits are `[1, K, H / logits_stride, W / logits_stride]`.
    pub fn logits_stride(&self) -> u32 {
        self.logits_stride
    }

    /// `(channels, stride)` of the feature map.
    pub fn features(&self) -> (u32, u32) {
        (self.features.channels, self.features.stride)
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The native size scaled by `scale` (e.g. 0.5 for the low-res branch), each side rounded
    /// to the nearest multiple of `size_multiple` and at least one multiple.
    pub fn scaled_size(&self, scale: f64) -> (u32, u32) {
        let (h, w) = self.native_size();
        (
            self.round_to_multiple(f64::from(h) * scale),
            self.round_to_multiple(f64::from(w) * scale),
        )
    }

    /// `side` rounded to the nearest multiple of `size_multiple` (at least one multiple).
    pub fn round_to_multiple(&self, side: f64) -> u32 {
        let m = f64::from(self.size_multiple().max(1));
        let n = (side / m).round().max(1.0);
        (n * m).min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESPNET: &str = include_str!("../../models/bundles/camvid-espnet/manifest.json");

    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(ESPNET).unwrap();
        edit(&mut v);
        v.to_string()
    }

    fn error(text: &str) -> String {
        Manifest::parse(text, Path::new("/b/manifest.json"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn shipped_manifest_parses() {
        let m = Manifest::parse(ESPNET, Path::new("manifest.json")).unwrap();
        assert_eq!(m.name, "camvid-espnet");
        assert_eq!(m.scheme, Scheme::Image);
        assert_eq!(m.native_size(), (360, 480));
        assert_eq!(m.size_multiple(), 8);
        assert_eq!(m.logits_stride(), 1);
        assert_eq!(m.features(), (12, 2));
        assert_eq!(m.num_classes(), 11);
        assert_eq!(
            m.classes[4],
            ClassInfo {
                id: 4,
                name: "Sidewalk".into(),
                color: [60, 40, 222]
            }
        );
        assert_eq!(m.scaled_size(0.5), (184, 240));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let text = edited(|v| v["later_addition"] = serde_json::json!({"x": 1}));
        assert!(Manifest::parse(&text, Path::new("m.json")).is_ok());
    }

    #[test]
    fn other_format_versions_are_refused_by_name() {
        let e = error(&edited(|v| v["format_version"] = 2.into()));
        assert!(
            e.contains("/b/manifest.json") && e.contains("'format_version'"),
            "{e}"
        );
        assert!(e.contains("is 2"), "{e}");
        let e = error(&edited(|v| {
            v.as_object_mut().unwrap().remove("format_version");
        }));
        assert!(e.contains("'format_version' is missing"), "{e}");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let e = error(&edited(|v| {
            v.as_object_mut().unwrap().remove("classes");
        }));
        assert!(
            e.contains("/b/manifest.json") && e.contains("`classes`"),
            "{e}"
        );
        let e = error(&edited(|v| {
            v["classes"][2]["color"] = serde_json::json!([1, 2])
        }));
        assert!(e.contains("/b/manifest.json") && e.contains("line"), "{e}");
        let e = error(&edited(|v| {
            v["classes"][2]["color"] = serde_json::json!([1, 2, 256])
        }));
        assert!(e.contains("256"), "{e}");
        let e = error(&edited(|v| v["scheme"] = "video".into()));
        assert!(e.contains("video") && e.contains("image"), "{e}");
        let e = error("[1, 2]");
        assert!(e.contains("JSON object"), "{e}");
        let e = error("{");
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn tdnet_needs_step_and_subnetworks() {
        let tdnet = |edit: fn(&mut serde_json::Value)| {
            edited(|v| {
                v["scheme"] = "tdnet".into();
                v["subnetworks"] = 2.into();
                v["methods"]["step"] = v["methods"]["forward"].clone();
                edit(v);
            })
        };
        let m = Manifest::parse(&tdnet(|_| {}), Path::new("manifest.json")).unwrap();
        assert_eq!((m.scheme, m.subnetworks()), (Scheme::Tdnet, 2));
        let e = error(&tdnet(|v| {
            v["methods"].as_object_mut().unwrap().remove("step");
        }));
        assert!(e.contains("'methods.step' is missing"), "{e}");
        let e = error(&tdnet(|v| {
            v.as_object_mut().unwrap().remove("subnetworks");
        }));
        assert!(e.contains("'subnetworks' is missing"), "{e}");
        let e = error(&tdnet(|v| v["subnetworks"] = 0.into()));
        assert!(e.contains("'subnetworks' must be at least 1"), "{e}");
        // Other schemes ignore it and count one.
        assert_eq!(
            Manifest::parse(ESPNET, Path::new("m.json"))
                .unwrap()
                .subnetworks(),
            1
        );
    }

    #[test]
    fn contract_rules_are_checked() {
        let e = error(&edited(|v| v["classes"][1]["id"] = 5.into()));
        assert!(e.contains("'classes[1].id' must be 1"), "{e}");
        let e = error(&edited(|v| v["classes"] = serde_json::json!([])));
        assert!(e.contains("'classes' must list"), "{e}");
        let e = error(&edited(|v| {
            v["input"]["native_size"] = serde_json::json!([360, 484])
        }));
        assert!(e.contains("'input.native_size'"), "{e}");
        let e = error(&edited(|v| v["input"]["layout"] = "NHWC".into()));
        assert!(e.contains("'input.layout'"), "{e}");
        let e = error(&edited(|v| v["methods"] = serde_json::json!({})));
        assert!(e.contains("'methods.forward' is missing"), "{e}");
        let e = error(&edited(|v| v["features"]["stride"] = 0.into()));
        assert!(e.contains("'features.stride'"), "{e}");
        let e = error(&edited(|v| v["files"]["module"] = " ".into()));
        assert!(e.contains("'files.module'"), "{e}");
        let e = error(&edited(|v| v["name"] = "".into()));
        assert!(e.contains("'name' must not be empty"), "{e}");
    }
}
