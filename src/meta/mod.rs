//! The metas applications read: codec motion vectors (and, from vsssegment, segmentation).

mod motion;

pub use motion::{MotionInfo, MotionMeta};
