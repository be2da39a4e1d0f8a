//! The metas applications read: codec motion vectors (vssdec) and segmentation (vsssegment).

mod motion;
mod segmentation;
mod stored;

pub use motion::{MotionInfo, MotionMeta};
pub use segmentation::{Branch, Segmentation, SegmentationMeta};
