//! `distributed` (TDNet): no keyframes; every frame runs one of N shallow sub-networks in turn
//! and attends to the memory the previous frame's step left.

use std::sync::Arc;

use tch::Tensor;

use super::mode::{Mode, ModeSpec, ModeState, Step};
use super::{Context, FrameInput, SegmentError, to_arc};
use crate::model::{Bundle, Scheme, class_map, executor, frame_to_rgb};

pub static SPEC: ModeSpec = ModeSpec {
    name: "distributed",
    description: "TDNet: one sub-network per frame, round robin, attending to the previous frame; no keyframes (tdnet bundles, e.g. camvid-tdnet)",
    schemes: &[Scheme::Tdnet],
    needs_motion: false,
    async_keyframes: false,
    qos_ladder: &[Mode::Warp],
    start,
};

fn start(_: &Arc<Bundle>) -> Box<dyn ModeState> {
    Box::new(Distributed { memory: Vec::new() })
}

struct Distributed {
    /// What the previous frame's step left for this one (empty after a reset).
    memory: Vec<Tensor>,
}

impl Distributed {
    /// Sub-network `frames since reset % N` on `input` with the previous frame's memory, on the
    /// libtorch executor; keeps the memory it returns. The schedule's decision does not
    /// matter: `distance` counts frames since the memory was reset.
    fn step(&mut self, ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError> {
        let bundle = &ctx.bundle;
        let native = ctx.native();
        let subnetworks = u64::from(bundle.manifest().subnetworks());
        let slot = u32::try_from(ctx.frame_index % subnetworks).unwrap_or(0);
        // Taken, not borrowed (tensors cross to the executor by value); after a failed step
        // the next frame runs without a memory, as the first frame after a reset does.
        let memory = std::mem::take(&mut self.memory);
        let (map, memory) = executor::run(move || -> Result<_, SegmentError> {
            let (h, w) = native;
            let image = frame_to_rgb(&input.frame, native, input.colorimetry, bundle.device())?;
            let (logits, _features, memory) = bundle.step(&image, slot, &memory)?;
            Ok((to_arc(&class_map(&logits, h, w)?)?, memory))
        })?;
        self.memory = memory;
        Ok(Step {
            map,
            branch: Mode::Distributed,
            keyframe: false,
            distance: u32::try_from(ctx.frame_index).unwrap_or(u32::MAX),
            keyframe_started: false,
        })
    }
}

impl ModeState for Distributed {
    fn keyframe(&mut self, ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError> {
        self.step(ctx, input)
    }

    fn nonkeyframe(
        &mut self,
        ctx: &mut Context,
        input: &FrameInput,
        _distance: u32,
    ) -> Result<Step, SegmentError> {
        self.step(ctx, input)
    }
}
