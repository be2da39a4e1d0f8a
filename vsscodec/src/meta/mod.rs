//! The decoder's meta (codec motion vectors) and the one GstMeta implementation every vss meta
//! uses, shared with the `vss` plugin's segmentation meta.

mod motion;
pub mod stored;

pub use motion::{MotionInfo, MotionMeta};
