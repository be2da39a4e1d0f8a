//! manifest.json of a model bundle (format_version 1): read, checked against
//! models/manifest.schema.json (the rules, shared with models/vss_models/bundle.py through the
//! same interpreter, [`super::schema`]) and parsed into [`Manifest`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ModelError;
use super::schema;
pub use super::scheme::Scheme;

/// The only manifest format this reader understands (the schema's `format_version`; a test
/// checks the two agree).
pub const FORMAT_VERSION: u64 = 1;

/// The manifest's file name inside a bundle folder.
pub const MANIFEST_FILE: &str = "manifest.json";

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
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| ModelError::ManifestJson {
                path: path.to_path_buf(),
                source,
            })?;
        if let Some(violation) = schema::validate(&value) {
            return Err(if violation.field.is_empty() {
                ModelError::ManifestParse {
                    path: path.to_path_buf(),
                    problem: violation.problem,
                }
            } else {
                ModelError::ManifestField {
                    path: path.to_path_buf(),
                    field: violation.field,
                    problem: violation.problem,
                }
            });
        }
        // The schema has checked every field serde reads, short of u32 overflow; parsing the
        // text again gives serde's line and column for that.
        serde_json::from_str(text).map_err(|source| ModelError::ManifestValue {
            path: path.to_path_buf(),
            source,
        })
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
    use serde_json::Value;

    const ESPNET: &str = include_str!("../../models/bundles/camvid-espnet/manifest.json");
    /// The cases models/tests/test_manifest.py runs too.
    const CASES: &str = include_str!("../../models/tests/data/manifest_cases.json");

    fn shipped(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/bundles")
            .join(name)
            .join(MANIFEST_FILE)
    }

    /// The manifest text a case describes (as `case_text` in test_manifest.py).
    fn case_text(case: &Value) -> String {
        if let Some(text) = case["text"].as_str() {
            return text.to_string();
        }
        let base = std::fs::read_to_string(shipped(case["base"].as_str().unwrap())).unwrap();
        let mut manifest: Value = serde_json::from_str(&base).unwrap();
        for edit in case["edits"].as_array().unwrap() {
            let pointer = edit[1].as_str().unwrap();
            let (parent, last) = pointer.rsplit_once('/').unwrap();
            let target = manifest.pointer_mut(parent).unwrap();
            match (edit[0].as_str().unwrap(), target) {
                ("set", Value::Object(map)) => {
                    map.insert(last.to_string(), edit[2].clone());
                }
                ("set", Value::Array(items)) => {
                    items[last.parse::<usize>().unwrap()] = edit[2].clone()
                }
                ("remove", Value::Object(map)) => {
                    map.remove(last).unwrap();
                }
                ("remove", Value::Array(items)) => {
                    items.remove(last.parse::<usize>().unwrap());
                }
                (op, _) => panic!("{}: cannot {op} {pointer}", case["name"]),
            }
        }
        manifest.to_string()
    }

    #[test]
    fn the_shared_cases_are_judged_as_in_python() {
        let cases: Value = serde_json::from_str(CASES).unwrap();
        let cases = cases["cases"].as_array().unwrap();
        assert!(cases.len() > 50, "{} cases", cases.len());
        let path = Path::new("/b/manifest.json");
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let result = Manifest::parse(&case_text(case), path);
            if case["valid"] == Value::Bool(true) {
                assert!(result.is_ok(), "{name}: {}", result.unwrap_err());
                continue;
            }
            let field = case["field"].as_str().unwrap();
            let problem = case["problem"].as_str().unwrap();
            let want = if field.is_empty() {
                format!("/b/manifest.json: the manifest {problem}")
            } else {
                format!("/b/manifest.json: field '{field}' {problem}")
            };
            match result {
                Ok(_) => panic!("{name}: accepted, want {want}"),
                Err(e) => assert_eq!(e.to_string(), want, "{name}"),
            }
        }
    }

    #[test]
    fn every_shipped_manifest_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/bundles");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path().join(MANIFEST_FILE);
            if path.is_file() {
                let m = Manifest::read(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    Some(m.name.as_str()),
                    path.parent().unwrap().file_name().unwrap().to_str()
                );
                count += 1;
            }
        }
        assert!(count >= 9, "{count} shipped manifests");
    }

    #[test]
    fn format_version_is_the_schemas() {
        assert_eq!(schema::format_version(), Some(FORMAT_VERSION));
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
        assert_eq!(m.subnetworks(), 1);
        let tdnet = Manifest::read(&shipped("camvid-tdnet")).unwrap();
        assert_eq!((tdnet.scheme, tdnet.subnetworks()), (Scheme::Tdnet, 2));
        let arseg = Manifest::read(&shipped("camvid-espnet-arseg")).unwrap();
        assert_eq!(
            (arseg.scheme, arseg.lowres_scale),
            (Scheme::Arseg, Some(0.5))
        );
    }

    #[test]
    fn what_the_schema_lets_through_serde_still_names() {
        // Beyond u32: an integer to the schema, too large for the reader.
        let mut v: Value = serde_json::from_str(ESPNET).unwrap();
        v["features"]["channels"] = 5_000_000_000u64.into();
        let e = Manifest::parse(&v.to_string(), Path::new("/b/manifest.json")).unwrap_err();
        assert!(matches!(e, ModelError::ManifestValue { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("/b/manifest.json") && e.contains("5000000000"),
            "{e}"
        );
        let e = Manifest::parse("{", Path::new("/b/manifest.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/b/manifest.json: not valid JSON"), "{e}");
    }
}
