//! scripts/install.sh: after it, gst-inspect-1.0 and a `vssdec ! vsssegment` gst-launch pipeline
//! work from a folder outside the checkout with no GST_PLUGIN_PATH and no VSS_MODEL_PATH, the
//! plugins and bundles coming from the per-user folders only; without the bundles there, a
//! bundle name fails with the folders searched. The data folder is a scratch one
//! (XDG_DATA_HOME), GStreamer's registry a scratch file, so nothing of the user's plays in.
//!
//! This binary links the plugin statically, but every check runs in a child process that loads
//! the installed .so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{plugin_dir, root};

const CLIP: &str = "examples/data/highway_dashcam_960x540.mp4";

/// A scratch folder outside the checkout (the "any folder" users run from), emptied first.
fn scratch(name: &str) -> PathBuf {
    common::fresh_dir(
        std::env::temp_dir().join(format!("vss-test-install-{}-{name}", std::process::id())),
    )
}

/// The user's per-user folders, redirected into `scratch`.
struct Home {
    scratch: PathBuf,
}

impl Home {
    fn new(name: &str) -> Home {
        Home {
            scratch: scratch(name),
        }
    }

    fn data(&self) -> PathBuf {
        self.scratch.join("data")
    }

    fn plugin_dir(&self) -> PathBuf {
        self.data().join("gstreamer-1.0/plugins")
    }

    fn model_dir(&self) -> PathBuf {
        self.data().join("vss/models")
    }

    /// `program` run from the scratch folder with the environment a user has after the
    /// install: the plugin and bundle search variables unset, only XDG_DATA_HOME redirected.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.scratch)
            .env("XDG_DATA_HOME", self.data())
            .env("XDG_DATA_DIRS", self.scratch.join("system"))
            .env("GST_REGISTRY", self.scratch.join("registry.bin"))
            .env_remove("GST_PLUGIN_PATH")
            .env_remove("GST_PLUGIN_PATH_1_0")
            .env_remove("VSS_MODEL_PATH");
        cmd
    }

    /// scripts/install.sh with `args`, the setup's build skipped (this test's build is the
    /// one installed); asserts success.
    fn install(&self, args: &[&str]) -> String {
        let out = self
            .command("bash")
            .arg(root().join("scripts/install.sh"))
            .args(args)
            .env("VSS_SETUP_NO_BUILD", "1")
            .env("VSS_BUILD_DIR", plugin_dir())
            .output()
            .expect("running scripts/install.sh");
        let (status, text) = described(&out);
        assert!(
            out.status.success(),
            "install.sh {args:?}: {status}\n{text}"
        );
        text
    }

    fn launch(&self, model: &str) -> Output {
        self.command("timeout")
            .args(["300", "gst-launch-1.0", "-q", "filesrc"])
            .arg(format!("location={}", root().join(CLIP).display()))
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
            .arg(format!("model={model}"))
            .args(["mode=warp", "overlay=none", "!", "identity", "eos-after=6"])
            .args(["!", "fakesink"])
            .output()
            .expect("running gst-launch-1.0")
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.scratch);
        }
    }
}

fn described(out: &Output) -> (String, String) {
    (
        out.status.to_string(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn shipped_bundles() -> Vec<String> {
    file_names(&root().join("models/bundles"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn installed_plugin_runs_without_the_checkout_paths() {
    let home = Home::new("run");
    home.install(&[]);
    // Twice: the install is idempotent.
    home.install(&[]);

    let built: Vec<String> = file_names(&plugin_dir())
        .into_iter()
        .filter(|n| n.starts_with("libgstvss") && n.ends_with(".so"))
        .collect();
    assert_eq!(file_names(&home.plugin_dir()), built);
    assert_eq!(file_names(&home.model_dir()), shipped_bundles());

    // Nothing in the installed plugin points into the checkout: not the bundles' folder (it
    // used to be baked in) and not libtorch's rpath (it went through the checkout's .venv).
    let checkout = root().canonicalize().expect("checkout path");
    for name in &built {
        let so = home.plugin_dir().join(name);
        let bytes = std::fs::read(&so).expect("reading the installed plugin");
        for path in [root(), checkout.clone()] {
            let bundles = path.join("models/bundles");
            assert!(
                !contains(&bytes, bundles.to_string_lossy().as_bytes()),
                "{} names {}",
                so.display(),
                bundles.display()
            );
        }
        let dynamic = home
            .command("readelf")
            .arg("-d")
            .arg(&so)
            .output()
            .expect("running readelf");
        let dynamic = String::from_utf8_lossy(&dynamic.stdout);
        let runpaths: Vec<&str> = dynamic
            .lines()
            .filter(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
            .collect();
        if name == "libgstvss.so" {
            assert!(
                !runpaths.is_empty(),
                "{} has no rpath for libtorch",
                so.display()
            );
        }
        for runpath in runpaths {
            assert!(
                !runpath.contains(&*checkout.to_string_lossy()),
                "{} reaches libtorch through the checkout: {runpath}",
                so.display()
            );
        }
    }

    let out = home
        .command("gst-inspect-1.0")
        .arg("vsssegment")
        .output()
        .expect("running gst-inspect-1.0");
    let (status, text) = described(&out);
    assert!(
        out.status.success(),
        "gst-inspect-1.0 vsssegment: {status}\n{text}"
    );
    let installed = home.plugin_dir().join("libgstvss.so");
    assert!(
        text.contains(&*installed.to_string_lossy()),
        "vsssegment does not come from {}:\n{text}",
        installed.display()
    );

    let out = home.launch("camvid-espnet");
    let (status, text) = described(&out);
    assert!(
        out.status.success(),
        "gst-launch-1.0 on the installed plugins {built:?} (cargo build --release builds every \
         one): {status}\n{text}"
    );

    home.install(&["--uninstall"]);
    assert_eq!(file_names(&home.plugin_dir()), Vec::<String>::new());
    assert!(!home.model_dir().exists(), "{}", home.model_dir().display());
    let out = home
        .command("gst-inspect-1.0")
        .arg("vsssegment")
        .output()
        .expect("running gst-inspect-1.0");
    assert!(
        !out.status.success(),
        "vsssegment is still found after --uninstall"
    );
}

#[test]
fn without_installed_bundles_a_name_fails_with_the_folders_searched() {
    let home = Home::new("no-bundles");
    home.install(&[]);
    std::fs::remove_dir_all(home.model_dir()).expect("removing the installed bundles");

    let out = home.launch("camvid-espnet");
    let (status, text) = described(&out);
    assert!(!out.status.success(), "gst-launch-1.0 succeeded:\n{text}");
    for folder in [
        home.model_dir(),
        home.scratch.join("system").join("vss/models"),
    ] {
        let candidate = folder.join("camvid-espnet");
        assert!(
            text.contains(&*candidate.to_string_lossy()),
            "{status}: the error does not name {}:\n{text}",
            candidate.display()
        );
    }
    assert!(text.contains("VSS_MODEL_PATH"), "{text}");
    assert!(text.contains("bundles there: none"), "{text}");
}
