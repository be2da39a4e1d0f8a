// Plugin version info; no rpath: this plugin links no libtorch.
fn main() {
    gst_plugin_version_helper::info();
}
