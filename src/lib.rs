//! vss: video semantic segmentation for GStreamer that runs the expensive model on keyframes and
//! carries its result to the other frames along the motion vectors the codec already computed.
//!
//! Elements: `vssdec` (libavcodec decoder exporting motion vectors as [`meta::MotionMeta`]).

use gst::glib;

pub mod codec;
pub mod meta;
pub mod motion;
pub mod vssdec;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    vssdec::register(plugin)?;
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
