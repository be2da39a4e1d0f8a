// Plugin version info, and which FFmpeg API to use; no rpath: this plugin links no libtorch.
fn main() {
    gst_plugin_version_helper::info();

    // ffmpeg-sys-next (`links = "ffmpeg"`) tells the crates that depend on it directly which
    // FFmpeg it found; vsscodec/src/codec tags packets through the API that version has.
    println!("cargo:rustc-check-cfg=cfg(ffmpeg_6_0)");
    println!("cargo:rerun-if-env-changed=DEP_FFMPEG_FFMPEG_6_0");
    if std::env::var("DEP_FFMPEG_FFMPEG_6_0").as_deref() == Ok("true") {
        println!("cargo:rustc-cfg=ffmpeg_6_0");
    }
}
