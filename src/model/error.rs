//! Why a bundle, a device or a tensor operation could not be used; every error names its file.

use std::path::PathBuf;

use super::manifest::Scheme;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `model=` named neither a folder, nor a manifest.json, nor a bundle in the search path.
    #[error(
        "no model bundle {spec:?}: not a folder or manifest.json, and no bundle of that name in \
         the model search path ($VSS_MODEL_PATH, then vss/models in the XDG data folders, where \
         scripts/install.sh puts the shipped ones); looked in {searched}; bundles there: {found}",
        searched = display_paths(.searched),
        found = if .found.is_empty() { "none".to_string() } else { .found.join(", ") }
    )]
    BundleNotFound {
        spec: String,
        searched: Vec<PathBuf>,
        found: Vec<String>,
    },

    /// `model-instance-id` names an instance loaded with another bundle or device.
    #[error(
        "model-instance-id {id:?} is {has} in this process; this element asks for {wanted} \
         (one id names one model: give this element another id)"
    )]
    InstanceMismatch {
        id: String,
        has: String,
        wanted: String,
    },

    #[error("{}: no manifest.json in the bundle folder", .folder.display())]
    NoManifest { folder: PathBuf },

    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The manifest is not JSON.
    #[error("{}: not valid JSON ({source})", .path.display())]
    ManifestJson {
        path: PathBuf,
        source: serde_json::Error,
    },

    /// The manifest breaks a rule of models/manifest.schema.json that is about the whole
    /// document (not a JSON object).
    #[error("{}: the manifest {problem}", .path.display())]
    ManifestParse { path: PathBuf, problem: String },

    /// A value the schema allows but the reader cannot hold (serde's message names the line).
    #[error("{}: {source}", .path.display())]
    ManifestValue {
        path: PathBuf,
        source: serde_json::Error,
    },

    /// A field breaks a rule of models/manifest.schema.json.
    #[error("{}: field '{field}' {problem}", .path.display())]
    ManifestField {
        path: PathBuf,
        field: String,
        problem: String,
    },

    #[error(
        "{}: field 'files.module' names {}, which does not exist",
        .manifest.display(), .module.display()
    )]
    ModuleMissing { manifest: PathBuf, module: PathBuf },

    /// libtorch refused the TorchScript file (corrupt, truncated, not TorchScript).
    /// `step` says what failed after the file was read (empty: reading it).
    #[error("{}: libtorch cannot load this TorchScript module: {step}{source}", .path.display())]
    ModuleLoad {
        path: PathBuf,
        step: &'static str,
        source: tch::TchError,
    },

    /// The module loaded but does not do what its manifest says (checked during warm-up).
    #[error("{}: {message}", .path.display())]
    ModuleContract { path: PathBuf, message: String },

    #[error("bundle '{bundle}' has scheme '{scheme}', which has no method '{method}' {why}")]
    UnsupportedScheme {
        bundle: String,
        scheme: Scheme,
        method: &'static str,
        /// Which schemes have it.
        why: String,
    },

    #[error("bundle '{bundle}': {message}")]
    BadInput { bundle: String, message: String },

    #[error("bundle '{bundle}' ({}): inference failed: {source}", .path.display())]
    Inference {
        bundle: String,
        path: PathBuf,
        source: tch::TchError,
    },

    #[error("invalid device {spec:?}: expected \"cpu\", \"cuda\" or \"cuda:N\"")]
    DeviceSyntax { spec: String },

    #[error("device {spec:?} requested, but CUDA is not available on this machine: {reason}")]
    CudaUnavailable {
        spec: String,
        #[source]
        reason: super::device::CudaError,
    },

    /// A raw frame whose planes do not match its layout, size and strides.
    #[error("frame {layout} {width}x{height}: {problem}")]
    Frame {
        layout: super::preprocess::FrameLayout,
        width: u32,
        height: u32,
        problem: String,
    },

    /// A tensor argument with the wrong shape or type for a helper.
    #[error("{what}: {problem}")]
    Shape { what: &'static str, problem: String },

    /// A tensor operation failed inside libtorch.
    #[error("{what}: {source}")]
    Tensor {
        what: &'static str,
        source: tch::TchError,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Tags a libtorch error with what was being done.
pub(crate) trait TchContext<T> {
    fn context(self, what: &'static str) -> Result<T, ModelError>;
}

impl<T> TchContext<T> for Result<T, tch::TchError> {
    fn context(self, what: &'static str) -> Result<T, ModelError> {
        self.map_err(|source| ModelError::Tensor { what, source })
    }
}
