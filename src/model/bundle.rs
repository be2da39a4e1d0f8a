//! A loaded model bundle: its manifest and its TorchScript module, ready on a device.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tch::{CModule, Device, IValue, Kind, Tensor};

use super::error::ModelError;
use super::manifest::{MANIFEST_FILE, Manifest, Scheme};

/// Environment variable with folders of bundles (`:`-separated), searched before the XDG data
/// folders. `.cargo/config.toml` and scripts/setup.sh point it at the checkout's
/// `models/bundles`, so cargo and gst-launch find the shipped bundles without an install.
pub const MODEL_PATH_ENV: &str = "VSS_MODEL_PATH";

/// Where bundles live under each XDG data folder (`$XDG_DATA_HOME`, then `$XDG_DATA_DIRS`):
/// scripts/install.sh copies the shipped ones to `~/.local/share/vss/models`.
pub const DATA_SUBDIR: &str = "vss/models";

/// The bundle the element uses when `model=` is not set.
pub const DEFAULT_BUNDLE: &str = "camvid-espnet";

/// Forward passes at native size run by [`Bundle::load`]: TorchScript's profiling executor
/// optimises during the first calls, the first being several times slower.
pub const WARMUP_PASSES: usize = 2;

/// A bundle loaded on a device. The module is in eval mode and warmed up at native size.
pub struct Bundle {
    folder: PathBuf,
    manifest_path: PathBuf,
    module_path: PathBuf,
    manifest: Manifest,
    module: CModule,
    device: Device,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("name", &self.manifest.name)
            .field("folder", &self.folder)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Loads `spec` (a bundle folder, its manifest.json, or a shipped bundle's name) onto
    /// `device`, checks the module against its manifest and warms it up.
    pub fn load(spec: &str, device: Device) -> Result<Bundle, ModelError> {
        Bundle::load_with_warmup(spec, device, WARMUP_PASSES)
    }

    /// [`Bundle::load`] with `passes` warm-up calls. `image` bundles always run at least one
    /// pass, which checks the outputs' shapes against the manifest.
    pub fn load_with_warmup(
        spec: &str,
        device: Device,
        passes: usize,
    ) -> Result<Bundle, ModelError> {
        // Loading and warming up on the executor: no other thread starts an OpenMP team.
        super::executor::run(|| Bundle::load_here(spec, device, passes))
    }

    fn load_here(spec: &str, device: Device, passes: usize) -> Result<Bundle, ModelError> {
        super::allocator::tune_malloc();
        let folder = resolve(spec)?;
        let manifest_path = folder.join(MANIFEST_FILE);
        if !manifest_path.is_file() {
            return Err(ModelError::NoManifest { folder });
        }
        let manifest = Manifest::read(&manifest_path)?;
        let module_path = folder.join(&manifest.files.module);
        if !module_path.is_file() {
            return Err(ModelError::ModuleMissing {
                manifest: manifest_path,
                module: module_path,
            });
        }
        let mut module = CModule::load_on_device(&module_path, device).map_err(|source| {
            ModelError::ModuleLoad {
                path: module_path.clone(),
                step: "",
                source,
            }
        })?;
        module
            .f_set_eval()
            .map_err(|source| ModelError::ModuleLoad {
                path: module_path.clone(),
                step: "cannot switch to eval mode: ",
                source,
            })?;
        let bundle = Bundle {
            folder,
            manifest_path,
            module_path,
            manifest,
            module,
            device,
        };
        bundle
            .manifest
            .scheme
            .adapter()
            .warm_up(&bundle, passes.max(1))?;
        Ok(bundle)
    }

    /// `(height, width)` of the feature map for an `height x width` input.
    pub fn feature_size(&self, height: u32, width: u32) -> (u32, u32) {
        let (_, stride) = self.manifest.features();
        (height / stride, width / stride)
    }

    /// The low-resolution branch's side scale: the manifest's for `arseg` bundles, else 0.5.
    pub fn lowres_scale(&self) -> f64 {
        self.manifest.lowres_scale.unwrap_or(0.5)
    }

    /// Runs `passes` forward calls on a grey `height x width` image and checks the outputs'
    /// shapes against the manifest. Call again after changing the working size.
    pub fn warm_up(&self, height: u32, width: u32, passes: usize) -> Result<(), ModelError> {
        let image = self.grey_image(height, width)?;
        for _ in 0..passes {
            let (logits, features) = self.forward(&image)?;
            let method = self.manifest.scheme.forward_method();
            self.check_outputs(method, height, width, &logits, &features)?;
        }
        Ok(())
    }

    /// Checks what `method` returned for a `height x width` frame against the manifest.
    pub(in crate::model) fn check_outputs(
        &self,
        method: &str,
        height: u32,
        width: u32,
        logits: &Tensor,
        features: &Tensor,
    ) -> Result<(), ModelError> {
        let (h, w) = (i64::from(height), i64::from(width));
        let m = &self.manifest;
        let s = i64::from(m.logits_stride());
        let want_logits = [1, m.num_classes() as i64, h / s, w / s];
        let (fc, fs) = m.features();
        let want_features = [1, i64::from(fc), h / i64::from(fs), w / i64::from(fs)];
        for (what, t, want) in [
            ("logits", logits, want_logits),
            ("features", features, want_features),
        ] {
            if t.size() != want || t.kind() != Kind::Float {
                return Err(self.contract_error(format!(
                    "method '{method}' returns {what} {:?} {:?} for a {height}x{width} frame, \
                     but manifest.json promises float32 {want:?} (classes, logits_stride, \
                     features)",
                    t.kind(),
                    t.size()
                )));
            }
        }
        Ok(())
    }

    pub(in crate::model) fn contract_error(&self, message: String) -> ModelError {
        ModelError::ModuleContract {
            path: self.module_path.clone(),
            message,
        }
    }

    /// The `image` scheme's call: uint8 RGB `[1, 3, H, W]` (any strides; H and W multiples of
    /// `size_multiple`) to `(logits [1, K, H/logits_stride, W/logits_stride], features
    /// [1, C, H/stride, W/stride])`, float32, on the bundle's device. Runs without autograd.
    pub fn forward(&self, image: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        // On the executor (see `executor`); a shallow copy crosses, the pixels are shared.
        let image = image.shallow_clone();
        super::executor::run(move || self.forward_here(&image))
    }

    fn forward_here(&self, image: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        let method = self.manifest.scheme.forward_method();
        self.check_image(image)?;
        let image = self.on_device(image)?;
        let output = self.call(method, vec![IValue::Tensor(image)])?;
        self.pair(method, output)
    }

    /// Refuses `method` unless this bundle's scheme calls it ([`Scheme::methods`]), naming
    /// the schemes that do.
    pub(in crate::model) fn require_method(&self, method: &'static str) -> Result<(), ModelError> {
        let scheme = self.manifest.scheme;
        if scheme.methods().contains(&method) {
            return Ok(());
        }
        let having: Vec<String> = Scheme::ALL
            .iter()
            .filter(|s| s.methods().contains(&method))
            .map(|s| format!("'{s}'"))
            .collect();
        Err(ModelError::UnsupportedScheme {
            bundle: self.manifest.name.clone(),
            scheme,
            method,
            why: if having.is_empty() {
                "(no scheme has it)".into()
            } else {
                format!("(only {} bundles have it)", having.join(" or "))
            },
        })
    }

    /// A grey uint8 RGB `[1, 3, height, width]` image on the bundle's device, for warm-ups.
    pub(in crate::model) fn grey_image(
        &self,
        height: u32,
        width: u32,
    ) -> Result<Tensor, ModelError> {
        Tensor::f_full(
            [1, 3, i64::from(height), i64::from(width)],
            128,
            (Kind::Uint8, self.device),
        )
        .map_err(|e| self.contract_error(format!("warm-up input: {e}")))
    }

    pub(in crate::model) fn on_device(&self, t: &Tensor) -> Result<Tensor, ModelError> {
        if t.device() == self.device {
            Ok(t.shallow_clone())
        } else {
            t.f_to_device(self.device)
                .map_err(|e| self.inference_error(e))
        }
    }

    /// Calls a module method without autograd; a missing method is a contract error naming
    /// the file and the method.
    pub(in crate::model) fn call(
        &self,
        method: &str,
        inputs: Vec<IValue>,
    ) -> Result<IValue, ModelError> {
        tch::no_grad(|| {
            if method == "forward" {
                self.module.forward_is(&inputs)
            } else {
                self.module.method_is(method, &inputs)
            }
        })
        .map_err(|e| match &e {
            // libtorch reports a missing method only in its message: tch has no variant for it.
            tch::TchError::Torch(text)
                if text.contains(&format!("'{method}'")) && !text.contains("Expected") =>
            {
                self.contract_error(format!("method '{method}': {}", first_line(text)))
            }
            _ => self.inference_error(e),
        })
    }

    pub(in crate::model) fn pair(
        &self,
        method: &str,
        output: IValue,
    ) -> Result<(Tensor, Tensor), ModelError> {
        match output {
            IValue::Tuple(mut items) if items.len() == 2 => {
                let features = items.pop();
                let logits = items.pop();
                match (logits, features) {
                    (Some(IValue::Tensor(l)), Some(IValue::Tensor(f))) => Ok((l, f)),
                    _ => Err(self.contract_error(format!(
                        "{method} must return (logits, features) tensors"
                    ))),
                }
            }
            _ => {
                Err(self.contract_error(format!("{method} must return a tuple (logits, features)")))
            }
        }
    }

    pub(in crate::model) fn check_image(&self, image: &Tensor) -> Result<(), ModelError> {
        let size = image.size();
        let multiple = i64::from(self.manifest.size_multiple());
        let problem = if image.kind() != Kind::Uint8 {
            format!("the image must be uint8, got {:?}", image.kind())
        } else if size.len() != 4 || size[0] != 1 || size[1] != 3 {
            format!("the image must be [1, 3, H, W] RGB, got {size:?}")
        } else if size[2] % multiple != 0 || size[3] % multiple != 0 || size[2] == 0 {
            format!(
                "image size {}x{} (h x w) is not a multiple of the bundle's size_multiple \
                 {multiple}",
                size[2], size[3]
            )
        } else {
            return Ok(());
        };
        Err(ModelError::BadInput {
            bundle: self.manifest.name.clone(),
            message: problem,
        })
    }

    pub(in crate::model) fn inference_error(&self, source: tch::TchError) -> ModelError {
        ModelError::Inference {
            bundle: self.manifest.name.clone(),
            path: self.module_path.clone(),
            source,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    pub fn module_path(&self) -> &Path {
        &self.module_path
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Names of the bundles in the model search path ([`bundle_dirs`]): the shipped ones when
    /// installed or run from the checkout, plus the user's own; sorted, each once.
    pub fn list_shipped() -> Vec<String> {
        let mut names: Vec<String> = bundle_dirs()
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().join(MANIFEST_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Folders holding bundles by name, in search order: each folder of `$VSS_MODEL_PATH`, then
/// `vss/models` under `$XDG_DATA_HOME` (default `~/.local/share`) and under each folder of
/// `$XDG_DATA_DIRS` (default `/usr/local/share:/usr/share`). Nothing depends on the build tree,
/// so an installed plugin works without the checkout.
pub fn bundle_dirs() -> Vec<PathBuf> {
    let var = |name| std::env::var_os(name);
    search_path(
        var(MODEL_PATH_ENV),
        var("XDG_DATA_HOME"),
        var("HOME"),
        var("XDG_DATA_DIRS"),
    )
}

/// [`bundle_dirs`] from the variables' values. As the XDG base directory specification says,
/// an unset or empty variable takes its default and relative XDG entries are invalid (ignored;
/// a relative `$XDG_DATA_HOME` is replaced by its default). `$VSS_MODEL_PATH` entries may be
/// relative (to the working folder).
fn search_path(
    model_path: Option<OsString>,
    data_home: Option<OsString>,
    home: Option<OsString>,
    data_dirs: Option<OsString>,
) -> Vec<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    let mut dirs: Vec<PathBuf> = set(model_path)
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.retain(|d| !d.as_os_str().is_empty());
    let data_home = set(data_home)
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| set(home).map(|h| Path::new(&h).join(".local/share")));
    let data_dirs: Vec<PathBuf> = match set(data_dirs) {
        Some(v) => std::env::split_paths(&v).collect(),
        None => vec!["/usr/local/share".into(), "/usr/share".into()],
    };
    for data in data_home.into_iter().chain(data_dirs) {
        if data.is_absolute() {
            dirs.push(data.join(DATA_SUBDIR));
        }
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// The bundle folder `spec` names: a folder, a manifest.json inside one, or the name of a
/// bundle in a folder of the model search path ([`bundle_dirs`]).
pub fn resolve(spec: &str) -> Result<PathBuf, ModelError> {
    let path = Path::new(spec);
    if path.is_file() && path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
        let parent = path.parent().unwrap_or(Path::new("."));
        return Ok(if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_path_buf()
        });
    }
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut searched = vec![path.to_path_buf()];
    // A bare name (no separator) can be a bundle in the search path.
    if !spec.is_empty() && !spec.contains(std::path::MAIN_SEPARATOR) && spec != "." && spec != ".."
    {
        for dir in bundle_dirs() {
            let candidate = dir.join(spec);
            if candidate.is_dir() {
                return Ok(candidate);
            }
            searched.push(candidate);
        }
    }
    Err(ModelError::BundleNotFound {
        spec: spec.to_string(),
        searched,
        found: Bundle::list_shipped(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_can_move_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<Bundle>();
    }

    #[test]
    fn shipped_bundles_are_listed_and_resolved() {
        let names = Bundle::list_shipped();
        for name in ["camvid-cgnet", "camvid-espnet", "cityscapes-espnetv2"] {
            assert!(names.iter().any(|n| n == name), "{names:?}");
        }
        // cargo points VSS_MODEL_PATH at the checkout's models/bundles (.cargo/config.toml).
        let folder = resolve(DEFAULT_BUNDLE).unwrap();
        assert!(folder.ends_with(DEFAULT_BUNDLE), "{}", folder.display());
        let dirs = bundle_dirs();
        assert!(
            folder.parent().is_some_and(|p| dirs.iter().any(|d| d == p)),
            "{} is not in {dirs:?}",
            folder.display()
        );
        assert_eq!(
            resolve(&folder.join(MANIFEST_FILE).to_string_lossy()).unwrap(),
            folder
        );
        assert_eq!(resolve(&folder.to_string_lossy()).unwrap(), folder);
    }

    #[test]
    fn unknown_names_list_the_folders_searched_and_what_exists() {
        let e = resolve("no-such-bundle").unwrap_err().to_string();
        assert!(e.contains("\"no-such-bundle\""), "{e}");
        assert!(e.contains("camvid-espnet"), "{e}");
        assert!(e.contains(MODEL_PATH_ENV), "{e}");
        for dir in bundle_dirs() {
            let candidate = dir.join("no-such-bundle");
            assert!(e.contains(&*candidate.to_string_lossy()), "{e}");
        }
        let e = resolve("/nonexistent/dir/x").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/dir/x"), "{e}");
    }

    fn os(v: &str) -> Option<OsString> {
        Some(v.into())
    }

    #[test]
    fn search_path_defaults_follow_xdg() {
        let dirs = search_path(None, None, os("/home/u"), None);
        assert_eq!(
            dirs,
            [
                "/home/u/.local/share/vss/models",
                "/usr/local/share/vss/models",
                "/usr/share/vss/models"
            ]
            .map(PathBuf::from)
        );
        // Empty counts as unset; without HOME there is no per-user folder.
        let dirs = search_path(os(""), os(""), None, os(""));
        assert_eq!(
            dirs,
            ["/usr/local/share/vss/models", "/usr/share/vss/models"].map(PathBuf::from)
        );
    }

    #[test]
    fn search_path_puts_vss_model_path_first() {
        let dirs = search_path(
            os("mine::/opt/bundles:"),
            os("/data"),
            os("/home/u"),
            os("/sys-a:relative:/data:/sys-b"),
        );
        assert_eq!(
            dirs,
            [
                "mine",
                "/opt/bundles",
                "/data/vss/models",
                "/sys-a/vss/models",
                "/sys-b/vss/models"
            ]
            .map(PathBuf::from)
        );
        // A relative XDG_DATA_HOME is invalid: its default replaces it.
        let dirs = search_path(None, os("rel"), os("/home/u"), os("/s"));
        assert_eq!(
            dirs,
            ["/home/u/.local/share/vss/models", "/s/vss/models"].map(PathBuf::from)
        );
    }

    #[test]
    fn default_bundle_loads_and_runs_on_cpu() {
        let bundle = Bundle::load_with_warmup(DEFAULT_BUNDLE, Device::Cpu, 1).unwrap();
        assert_eq!(bundle.name(), DEFAULT_BUNDLE);
        let image = Tensor::zeros([1, 3, 64, 96], (Kind::Uint8, Device::Cpu));
        let (logits, features) = bundle.forward(&image).unwrap();
        assert_eq!(logits.size(), [1, 11, 64, 96]);
        assert_eq!(features.size(), [1, 12, 32, 48]);
        let odd = Tensor::zeros([1, 3, 60, 96], (Kind::Uint8, Device::Cpu));
        let e = bundle.forward(&odd).unwrap_err().to_string();
        assert!(e.contains("size_multiple 8"), "{e}");
        let float = Tensor::zeros([1, 3, 64, 96], (Kind::Float, Device::Cpu));
        assert!(
            bundle
                .forward(&float)
                .unwrap_err()
                .to_string()
                .contains("uint8")
        );
    }
}
