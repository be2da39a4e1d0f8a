//! `vsssegment`: semantic segmentation that runs the model on keyframes and carries its result
//! along motion to the frames between.
//!
//! ```text
//! gst-launch-1.0 filesrc location=drive.mp4 ! parsebin ! vssdec ! vsssegment model=camvid-espnet \
//!     ! videoconvert ! autovideosink
//! ```
//! Each output buffer carries a [`crate::meta::SegmentationMeta`], and, with `overlay`, the
//! coloured class map as a GstVideoOverlayCompositionMeta or blended into the pixels.

use gst::glib;
use gst::prelude::*;

mod imp;
mod overlay;

pub use imp::{Overlay, Policy, SegmentMode};

glib::wrapper! {
    pub struct VssSegment(ObjectSubclass<imp::VssSegment>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "vsssegment",
        gst::Rank::NONE,
        VssSegment::static_type(),
    )
}
