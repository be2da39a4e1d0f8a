//! `vsssegment`: semantic segmentation that runs the model on keyframes and carries its result
//! along motion to the frames between.
//!
//! ```text
//! gst-launch-1.0 filesrc location=drive.mp4 ! parsebin ! vssdec ! vsssegment model=camvid-espnet \
//!     ! videoconvert ! autovideosink
//! ```
//! Each output buffer carries a [`crate::meta::SegmentationMeta`], and, with `overlay`, the
//! coloured class map as a GstVideoOverlayCompositionMeta or blended into the pixels.
//! Built with the `analytics-v1_26` feature (GStreamer >= 1.26), it also attaches the standard
//! GstAnalyticsRelationMeta with a segmentation and a classification mtd (`analytics.rs`;
//! compile-checked only, never run in this project's CI).

use gst::glib;
use gst::prelude::*;

#[cfg(feature = "analytics-v1_26")]
mod analytics;
mod imp;
mod mode_type;
mod overlay;

pub use imp::{Overlay, Policy};
pub use mode_type::ModeValue;

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
