//! `full`: the model at full resolution on every frame, the baseline the others are measured
//! against.

use std::sync::Arc;

use super::mode::{Mode, ModeSpec, ModeState, Step};
use super::{Context, EVERY_SCHEME, FrameInput, SegmentError, infer};
use crate::model::Bundle;

pub static SPEC: ModeSpec = ModeSpec {
    name: "full",
    description: "Full-resolution model on every frame",
    schemes: EVERY_SCHEME,
    needs_motion: false,
    async_keyframes: false,
    qos_ladder: &[Mode::LowRes, Mode::Warp],
    start,
};

fn start(_: &Arc<Bundle>) -> Box<dyn ModeState> {
    Box::new(Full)
}

struct Full;

impl Full {
    /// Every frame is a keyframe at distance 0 (the meta's contract); the schedule still
    /// decides, but only the reason it gives is kept.
    fn segment(ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError> {
        Ok(Step::keyframe(infer(
            &ctx.bundle,
            input,
            ctx.native(),
            false,
        )?))
    }
}

impl ModeState for Full {
    fn keyframe(&mut self, ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError> {
        Full::segment(ctx, input)
    }

    fn nonkeyframe(
        &mut self,
        ctx: &mut Context,
        input: &FrameInput,
        _distance: u32,
    ) -> Result<Step, SegmentError> {
        Full::segment(ctx, input)
    }
}
