//! `fusion` (AR-Seg): the full network on keyframes; between them a low-resolution branch
//! fused with the keyframe's features warped along the accumulated motion.

use std::sync::Arc;

use tch::Tensor;

use super::mode::{Mode, ModeSpec, ModeState, Step};
use super::{Context, FrameInput, SegmentError, to_arc};
use crate::model::{Bundle, Scheme, class_map, executor, frame_to_rgb};

pub static SPEC: ModeSpec = ModeSpec {
    name: "fusion",
    description: "AR-Seg: low-res branch + warped keyframe features (arseg bundles)",
    schemes: &[Scheme::Arseg],
    needs_motion: true,
    async_keyframes: false,
    qos_ladder: &[Mode::Warp],
    start,
};

fn start(_: &Arc<Bundle>) -> Box<dyn ModeState> {
    Box::new(Fusion {
        key_features: None,
        grid: Vec::new(),
    })
}

struct Fusion {
    /// The last keyframe's feature map.
    key_features: Option<Tensor>,
    /// The warp grid at the feature map's size, reused frame to frame.
    grid: Vec<f32>,
}

impl ModeState for Fusion {
    fn has_reference(&self) -> bool {
        self.key_features.is_some()
    }

    /// The keyframe branch: the class map, and the feature map that later frames fuse.
    fn keyframe(&mut self, ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError> {
        let bundle = &ctx.bundle;
        let size = ctx.native();
        let (map, features) = executor::run(|| {
            let image = frame_to_rgb(&input.frame, size, input.colorimetry, bundle.device())?;
            let (logits, features) = bundle.keyframe(&image)?;
            Ok::<_, SegmentError>((to_arc(&class_map(&logits, size.0, size.1)?)?, features))
        })?;
        self.key_features = Some(features);
        ctx.restart_track();
        Ok(Step::keyframe(map))
    }

    /// The keyframe features warped along the motion accumulated since the keyframe (the grid
    /// at the feature map's size, warped inside the module), the frame at the bundle's low-res
    /// scale, fused by the module's `nonkeyframe`.
    fn nonkeyframe(
        &mut self,
        ctx: &mut Context,
        input: &FrameInput,
        distance: u32,
    ) -> Result<Step, SegmentError> {
        let features = self
            .key_features
            .as_ref()
            .expect("scheduled after a keyframe")
            .shallow_clone();
        let size = features.size();
        let (fh, fw) = (size[2] as usize, size[3] as usize);
        ctx.track().accumulated().write_grid(fh, fw, &mut self.grid);
        let bundle = &ctx.bundle;
        let grid = &self.grid;
        let native = ctx.native();
        let lowres = bundle.manifest().scaled_size(bundle.lowres_scale());
        let map = executor::run(move || {
            let warped = bundle.warp_features(&features, grid)?;
            let image = frame_to_rgb(&input.frame, lowres, input.colorimetry, bundle.device())?;
            let (logits, _fused) = bundle.nonkeyframe(&image, &warped)?;
            to_arc(&class_map(&logits, native.0, native.1)?)
        })?;
        Ok(Step {
            map,
            branch: Mode::Fusion,
            keyframe: false,
            distance,
            keyframe_started: false,
        })
    }
}
