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
        let mut module =
            CModule::load_on_device(&module_path, device).map_err(|e| ModelError::ModuleLoad {
                path: module_path.clone(),
                message: e.to_string(),
            })?;
        module.f_set_eval().map_err(|e| ModelError::ModuleLoad {
            path: module_path.clone(),
            message: format!("cannot switch to eval mode: {e}"),
        })?;
        let bundle = Bundle {
            folder,
            manifest_path,
            module_path,
            manifest,
            module,
            device,
        };
        match bundle.manifest.scheme {
            Scheme::Image => {
                let (h, w) = bundle.manifest.native_size();
                bundle.warm_up(h, w, passes.max(1))?;
            }
            Scheme::Arseg => bundle.warm_up_arseg(passes.max(1))?,
            Scheme::Tdnet => bundle.warm_up_tdnet(passes.max(1))?,
        }
        Ok(bundle)
    }

    /// `tdnet`: steps from a reset and then with the previous step's memory, until every
    /// sub-network has run with a memory (TorchScript optimises each path on its first calls,
    /// which would otherwise make the first frames slow), checked against the manifest, so that
    /// a module without `step` or with other outputs fails at load, naming the file and the
    /// method.
    fn warm_up_tdnet(&self, passes: usize) -> Result<(), ModelError> {
        let (h, w) = self.manifest.native_size();
        let image = Tensor::f_full(
            [1, 3, i64::from(h), i64::from(w)],
            128,
            (Kind::Uint8, self.device),
        )
        .map_err(|e| self.contract_error(format!("warm-up input: {e}")))?;
        for _ in 0..passes {
            let mut memory = Vec::new();
            for slot in 0..=self.manifest.subnetworks() {
                let (logits, features, next) = self.step(&image, slot, &memory)?;
                self.check_outputs(h, w, &logits, &features)
                    .map_err(|e| self.contract_error(format!("method 'step': {e}")))?;
                if next.is_empty() {
                    return Err(self.contract_error(
                        "method 'step' returns an empty memory: the next frame would learn \
                         nothing from this one"
                            .into(),
                    ));
                }
                memory = next;
            }
        }
        Ok(())
    }

    /// `arseg`: runs every method once (or `passes` times) at the native and low-res sizes
    /// and checks the outputs against the manifest, so that a module missing a method or
    /// returning other shapes fails at load, naming the file and the method.
    fn warm_up_arseg(&self, passes: usize) -> Result<(), ModelError> {
        let (h, w) = self.manifest.native_size();
        let (lh, lw) = self.manifest.scaled_size(self.lowres_scale());
        let grey = |h: u32, w: u32| {
            Tensor::f_full(
                [1, 3, i64::from(h), i64::from(w)],
                128,
                (Kind::Uint8, self.device),
            )
            .map_err(|e| self.contract_error(format!("warm-up input: {e}")))
        };
        let (image, image_lr) = (grey(h, w)?, grey(lh, lw)?);
        for _ in 0..passes {
            let (logits, features) = self.keyframe(&image)?;
            self.check_outputs(h, w, &logits, &features)?;
            let (fh, fw) = self.feature_size(h, w);
            let identity = crate::motion::MotionField::new(w, h, crate::motion::DEFAULT_CELL_SIZE)
                .map_err(|e| self.contract_error(format!("warm-up field: {e}")))?
                .to_grid(fh as usize, fw as usize);
            let warped = self.warp_features(&features, &identity)?;
            if warped.size() != features.size() {
                return Err(self.contract_error(format!(
                    "method 'warp' returns {:?} for features {:?} (expected the same size)",
                    warped.size(),
                    features.size()
                )));
            }
            let (logits, fused) = self.nonkeyframe(&image_lr, &warped)?;
            self.check_outputs(h, w, &logits, &fused).map_err(|e| {
                self.contract_error(format!("method 'nonkeyframe' on a {lh}x{lw} image: {e}"))
            })?;
        }
        Ok(())
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
        let image = Tensor::f_full(
            [1, 3, i64::from(height), i64::from(width)],
            128,
            (Kind::Uint8, self.device),
        )
        .map_err(|e| self.contract_error(format!("warm-up input: {e}")))?;
        for _ in 0..passes {
            let (logits, features) = self.forward(&image)?;
            self.check_outputs(height, width, &logits, &features)?;
        }
        Ok(())
    }

    fn check_outputs(
        &self,
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
                    "forward on a {height}x{width} image returns {what} {:?} {:?}, but \
                     manifest.json promises float32 {want:?} (classes, logits_stride, features)",
                    t.kind(),
                    t.size()
                )));
            }
        }
        Ok(())
    }

    fn contract_error(&self, message: String) -> ModelError {
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
        let m = &self.manifest;
        let method = match m.scheme {
            Scheme::Image | Scheme::Tdnet => "forward",
            Scheme::Arseg => "keyframe",
        };
        self.check_image(image)?;
        let image = self.on_device(image)?;
        let output = self.call(method, vec![IValue::Tensor(image)])?;
        self.pair(method, output)
    }

    /// `arseg`'s keyframe branch: the full-resolution network, as [`Bundle::forward`].
    pub fn keyframe(&self, image: &Tensor) -> Result<(Tensor, Tensor), ModelError> {
        self.forward(image)
    }

    /// `arseg`'s non-keyframe branch: uint8 RGB `image_lr` (the frame at the low-res size) and
    /// the keyframe features warped to this frame (`[1, C, H/stride, W/stride]` of the native
    /// size) to `(logits [1, K, H, W], fused features)`.
    pub fn nonkeyframe(
        &self,
        image_lr: &Tensor,
        warped: &Tensor,
    ) -> Result<(Tensor, Tensor), ModelError> {
        self.need_arseg("nonkeyframe")?;
        self.check_image(image_lr)?;
        let (image_lr, warped) = (image_lr.shallow_clone(), warped.shallow_clone());
        super::executor::run(move || {
            let inputs = vec![
                IValue::Tensor(self.on_device(&image_lr)?),
                IValue::Tensor(self.on_device(&warped)?),
            ];
            let output = self.call("nonkeyframe", inputs)?;
            self.pair("nonkeyframe", output)
        })
    }

    /// `arseg`'s feature warp (inside the module: the definition training used):
    /// `grid_sample(features, grid)`, bilinear, border padding, `align_corners=False`, with
    /// `grid` from [`crate::motion::MotionField::to_grid`] at the features' size.
    pub fn warp_features(&self, features: &Tensor, grid: &[f32]) -> Result<Tensor, ModelError> {
        self.need_arseg("warp")?;
        let size = features.size();
        if size.len() != 4 || grid.len() as i64 != size[2] * size[3] * 2 {
            return Err(ModelError::Shape {
                what: "warp_features",
                problem: format!(
                    "features {size:?} need a grid of H x W x 2 values, got {}",
                    grid.len()
                ),
            });
        }
        let features = features.shallow_clone();
        super::executor::run(move || {
            let grid = Tensor::f_from_slice(grid)
                .and_then(|t| t.f_view([1, size[2], size[3], 2]))
                .and_then(|t| t.f_to_device(self.device))
                .map_err(|e| self.inference_error(e))?;
            let inputs = vec![
                IValue::Tensor(self.on_device(&features)?),
                IValue::Tensor(grid),
            ];
            match self.call("warp", inputs)? {
                IValue::Tensor(t) => Ok(t),
                _ => Err(self.contract_error("method 'warp' must return a tensor".into())),
            }
        })
    }

    /// `tdnet`'s call for every frame: sub-network `slot` (frames since the last reset; the
    /// module takes it modulo `subnetworks`) on uint8 RGB `image`, attending to `memory` (empty
    /// after a reset, else what the previous step returned). Returns `(logits [1, K, H, W],
    /// features, memory for the next frame)`.
    pub fn step(
        &self,
        image: &Tensor,
        slot: u32,
        memory: &[Tensor],
    ) -> Result<(Tensor, Tensor, Vec<Tensor>), ModelError> {
        let m = &self.manifest;
        if m.scheme != Scheme::Tdnet {
            return Err(ModelError::UnsupportedScheme {
                bundle: m.name.clone(),
                scheme: m.scheme,
                method: "step",
                why: "(only 'tdnet' bundles have it)",
            });
        }
        self.check_image(image)?;
        let image = image.shallow_clone();
        let memory: Vec<Tensor> = memory.iter().map(Tensor::shallow_clone).collect();
        super::executor::run(move || {
            let memory = memory
                .iter()
                .map(|t| self.on_device(t))
                .collect::<Result<Vec<_>, _>>()?;
            let inputs = vec![
                IValue::Tensor(self.on_device(&image)?),
                IValue::Int(i64::from(slot)),
                IValue::TensorList(memory),
            ];
            let bad = || {
                self.contract_error(
                    "method 'step' must return (logits, features, memory: List[Tensor])".into(),
                )
            };
            let IValue::Tuple(mut items) = self.call("step", inputs)? else {
                return Err(bad());
            };
            if items.len() != 3 {
                return Err(bad());
            }
            let memory = match items.pop() {
                Some(IValue::TensorList(list)) => list,
                Some(IValue::GenericList(list)) => list
                    .into_iter()
                    .map(|v| match v {
                        IValue::Tensor(t) => Ok(t),
                        _ => Err(bad()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(bad()),
            };
            let (logits, features) = self.pair("step", IValue::Tuple(items))?;
            Ok((logits, features, memory))
        })
    }

    fn need_arseg(&self, method: &'static str) -> Result<(), ModelError> {
        let m = &self.manifest;
        if m.scheme == Scheme::Arseg {
            Ok(())
        } else {
            Err(ModelError::UnsupportedScheme {
                bundle: m.name.clone(),
                scheme: m.scheme,
                method,
                why: "(only 'arseg' bundles have it)",
            })
        }
    }

    fn on_device(&self, t: &Tensor) -> Result<Tensor, ModelError> {
        if t.device() == self.device {
            Ok(t.shallow_clone())
        } else {
            t.f_to_device(self.device)
                .map_err(|e| self.inference_error(e))
        }
    }

    /// Calls a module method without autograd; a missing method is a contract error naming
    /// the file and the method.
    fn call(&self, method: &str, inputs: Vec<IValue>) -> Result<IValue, ModelError> {
        tch::no_grad(|| {
            if method == "forward" {
                self.module.forward_is(&inputs)
            } else {
                self.module.method_is(method, &inputs)
            }
        })
        .map_err(|e| {
            let text = e.to_string();
            if text.contains(&format!("'{method}'")) && !text.contains("Expected") {
                self.contract_error(format!("method '{method}': {}", first_line(&text)))
            } else {
                self.inference_error(e)
            }
        })
    }

    fn pair(&self, method: &str, output: IValue) -> Result<(Tensor, Tensor), ModelError> {
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

    fn check_image(&self, image: &Tensor) -> Result<(), ModelError> {
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

    fn inference_error(&self, source: tch::TchError) -> ModelError {
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
