//! Motion: codec vectors (or our own estimate) turned into a dense field back to the keyframe.

pub mod estimate;
pub mod field;
pub mod refine;
/// The codec's vectors as plain types, defined beside the decoder in `gst-plugin-vsscodec`.
pub use gstvsscodec::motion as vector;

pub use estimate::{EstimateError, EstimatorConfig, LumaPlane, MotionEstimator};
pub use field::{
    DEFAULT_CELL_SIZE, FieldError, FieldGeometry, FieldStats, MotionField, MotionTrack,
    PaintReport, StepReference, cell_for_map,
};
pub use refine::{RefineReport, RefineScratch};
pub use vector::{MotionVector, PictureType};
