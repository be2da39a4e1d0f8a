//! `vssdec`: a libavcodec video decoder that attaches the codec's motion vectors to every frame.
//!
//! ```text
//! gst-launch-1.0 filesrc location=drive.mp4 ! parsebin ! vssdec ! videoconvert ! autovideosink
//! ```
//! Each output buffer carries a [`crate::meta::MotionMeta`]. Rank NONE: decodebin never picks it
//! in place of `avdec_*`; place it on purpose.

use gst::glib;
use gst::prelude::*;

mod imp;

pub use imp::DecThreadType;

glib::wrapper! {
    pub struct VssDec(ObjectSubclass<imp::VssDec>)
        @extends gst_video::VideoDecoder, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "vssdec",
        gst::Rank::NONE,
        VssDec::static_type(),
    )
}
