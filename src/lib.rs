//! vss: video semantic segmentation for GStreamer that runs the expensive model on keyframes and
//! carries its result to the other frames along the motion vectors the codec already computed.
//!
//! Elements: `vsssegment` (segmentation, attaching [`meta::SegmentationMeta`] and an overlay) and
//! `vssmask` (the segmentation as mask video, for applications that read pixels) in this crate's
//! plugin `vss`; `vssdec` (libavcodec decoder exporting motion vectors as [`meta::MotionMeta`])
//! in the plugin `vsscodec` (crate `gst-plugin-vsscodec`), which links no libtorch. Its modules
//! are re-exported here under their old paths.

use gst::glib;

pub use gstvsscodec::{codec, vssdec};
pub mod meta;
pub mod model;
pub mod motion;
pub mod qos;
pub mod schedule;
pub mod segmenter;
pub mod vssmask;
pub mod vsssegment;

/// Registers the elements of both plugins (`vsscodec` and `vss`) in this process, each unless
/// GStreamer already found its plugin on its path, for applications and tests that link the
/// crate.
pub fn ensure_registered() -> Result<(), glib::BoolError> {
    gstvsscodec::ensure_registered()?;
    if gst::ElementFactory::find("vsssegment").is_some() {
        return Ok(());
    }
    plugin_register_static()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    vsssegment::register(plugin)?;
    vssmask::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    vss,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "unpublished",
    env!("BUILD_REL_DATE")
);
