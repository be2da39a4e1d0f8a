//! The metas applications read: codec motion vectors (vssdec) and segmentation (vsssegment).

mod segmentation;

pub use gstvsscodec::meta::{MotionInfo, MotionMeta};
pub use segmentation::{Branch, Segmentation, SegmentationMeta};
