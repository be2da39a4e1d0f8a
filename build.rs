// Plugin version info, and rpaths so the plugin finds libtorch with no LD_LIBRARY_PATH.
fn main() {
    gst_plugin_version_helper::info();

    // torch-sys (`links = "tch"`) exports the directory holding libtorch*.so to crates that
    // depend on it directly.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        // The path usually runs through the checkout's `.venv` link; the rpath names the folder
        // it leads to (in the per-user venv cache), so an installed plugin finds libtorch
        // without the checkout. A re-pointed `.venv` has newer files: the script reruns.
        println!("cargo:rerun-if-changed={dir}");
        let dir = std::fs::canonicalize(&dir)
            .map(|d| d.display().to_string())
            .unwrap_or(dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // The CUDA libraries that libtorch_cuda.so needs sit in the venv's nvidia/*/lib folders;
        // their own rpaths ($ORIGIN-relative) find them once libtorch_cuda.so is found.
        println!("cargo:rustc-env=VSS_LIBTORCH_DIR={dir}");
    }
}
