//! Model bundles: manifest, TorchScript loading, branch calls; no GStreamer.
//!
//! What the element does per keyframe, all on the bundle's device:
//!
//! ```text
//! let bundle = Bundle::load("camvid-espnet", parse_device("cpu")?)?;        // once, at start
//! let image = frame_to_rgb(&frame, bundle.manifest().native_size(), YuvColorimetry::BT601,
//!                          bundle.device())?;                              // uint8 [1,3,h,w]
//! let (logits, features) = bundle.forward(&image)?;
//! let map = class_map(&logits, frame_height, frame_width)?;                // uint8 [H, W]
//! ```
//!
//! and on a non-keyframe in `warp` mode, `warp(&logits, &grid, WarpMode::Bilinear)` with the
//! grid of the motion field accumulated back to the keyframe. The contract the bundles follow
//! is models/README.md ("The bundle contract").

mod allocator;
mod bundle;
mod device;
mod error;
pub mod executor;
pub mod instances;
mod manifest;
mod postprocess;
mod preprocess;
mod schema;
mod scheme;
mod warp;

pub use allocator::{MALLOC_TUNING_ENV, tune_malloc};
pub use bundle::{
    Bundle, DATA_SUBDIR, DEFAULT_BUNDLE, MODEL_PATH_ENV, WARMUP_PASSES, bundle_dirs,
    resolve as resolve_bundle,
};
pub use device::{
    CudaError, CudaLoadError, DlopenError, load_cuda, parse_device, set_threads, threads,
};
pub use error::ModelError;
pub use manifest::{
    ClassInfo, FORMAT_VERSION, FeatureSpec, FileSpec, InputSpec, MANIFEST_FILE, Manifest,
    MethodSpec, Scheme,
};
pub use postprocess::{class_map, class_map_bilinear, copy_u8, resize_nearest, to_vec_u8};
pub use preprocess::{
    FrameLayout, RawFrame, YuvColorimetry, YuvMatrix, YuvRange, frame_to_rgb, resize, yuv_to_rgb,
};
pub use warp::{WarpMode, warp, warp_to};
