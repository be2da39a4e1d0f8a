//! `lowres`: the model on a downscaled frame between keyframes, no temporal help (AR-Seg's
//! constant low-resolution baseline).

use std::sync::Arc;

use super::mode::{Mode, ModeSpec, ModeState, Step};
use super::{Context, EVERY_SCHEME, FrameInput, SegmentError, infer};
use crate::model::Bundle;

pub static SPEC: ModeSpec = ModeSpec {
    name: "lowres",
    description: "Model on a downscaled frame between keyframes",
    schemes: EVERY_SCHEME,
    needs_motion: false,
    async_keyframes: false,
    qos_ladder: &[Mode::Warp],
    start,
};

fn start(_: &Arc<Bundle>) -> Box<dyn ModeState> {
    Box::new(LowRes)
}

struct LowRes;

impl ModeState for LowRes {
    fn keyframe(&mut self, ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError> {
        let map = infer(&ctx.bundle, input, ctx.native(), false)?;
        ctx.restart_track();
        Ok(Step::keyframe(map))
    }

    fn nonkeyframe(
        &mut self,
        ctx: &mut Context,
        input: &FrameInput,
        distance: u32,
    ) -> Result<Step, SegmentError> {
        let size = ctx.bundle.manifest().scaled_size(ctx.config.lowres_scale);
        Ok(Step {
            map: infer(&ctx.bundle, input, size, true)?,
            branch: Mode::LowRes,
            keyframe: false,
            distance,
            keyframe_started: false,
        })
    }
}
