//! vsscodec: the decoder half of vss, a plugin that links no libtorch so that a pipeline which
//! only decodes loads only libavcodec.
//!
//! Element: `vssdec` (libavcodec decoder exporting motion vectors as [`meta::MotionMeta`]). The
//! `vss` plugin (crate `gst-plugin-vss`) holds the segmenter and re-exports this crate's modules.

use gst::glib;

pub mod codec;
pub mod meta;
pub mod motion;
pub mod vssdec;

/// Registers `vssdec` in this process unless GStreamer already found the plugin on its path,
/// for applications and tests that link the crate.
pub fn ensure_registered() -> Result<(), glib::BoolError> {
    if gst::ElementFactory::find("vssdec").is_some() {
        return Ok(());
    }
    plugin_register_static()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    vssdec::register(plugin)
}

gst::plugin_define!(
    vsscodec,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "unpublished",
    env!("BUILD_REL_DATE")
);
