//! `vssmask`: turns vsssegment's `SegmentationMeta` into a video stream of masks, for
//! applications and elements that read pixels, not Rust metas.
//!
//! ```text
//! gst-launch-1.0 filesrc location=drive.mp4 ! qtdemux ! h264parse ! vssdec \
//!     ! vsssegment overlay=none ! vssmask output=color ! videoconvert ! autovideosink
//! ```
//!
//! Each output buffer has the timestamps, duration and flags of its input frame and carries the
//! same `SegmentationMeta`. `output` picks the pixels: `class-ids` (GRAY8, the class id),
//! `color` (RGBA, the bundle's palette with `alpha`), `matte` (GRAY8, 255 where the class is
//! `class`, 0 elsewhere). `resolution` picks the size: `frame` (the input frame's, nearest
//! scaling with pixel centres aligned) or `model` (the class map's own). The src caps carry
//! the class names as a string array field `classes` (index = class id).
//!
//! The output caps depend on the first meta (class table, class map size), so vssmask has
//! explicit pads and sends its caps, and the events held back until then, with its first
//! buffer. A first buffer without the meta is an error (vssmask is not after vsssegment); a
//! later one gets a blank mask (class id 255, transparent, or 0) at the last size, with one
//! warning on the bus.

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod render;

pub use imp::{Output, Resolution};

glib::wrapper! {
    pub struct VssMask(ObjectSubclass<imp::VssMask>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "vssmask",
        gst::Rank::NONE,
        VssMask::static_type(),
    )
}
