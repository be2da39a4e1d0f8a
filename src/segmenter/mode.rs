//! The modes, listed once: what each is called, which bundles serve it, what it needs and how
//! it degrades. The element's `mode` enum, the QoS ladder, the meta's branch and the report all
//! read this list; each mode's per-frame steps live in its own file beside this one.

use std::sync::Arc;

use super::{Context, FrameInput, SegmentError};
use crate::model::{Bundle, Scheme};

/// The facts about one mode.
pub struct ModeSpec {
    /// The name users type (`mode=warp`), the meta's branch name and the report's label.
    pub name: &'static str,
    /// One line for `gst-inspect-1.0`.
    pub description: &'static str,
    /// The bundle schemes that can serve it.
    pub schemes: &'static [Scheme],
    /// Whether it carries results along the motion field (the field is kept for it).
    pub needs_motion: bool,
    /// Whether keyframe inference can run in the background (`async-keyframes`).
    pub async_keyframes: bool,
    /// The cheaper modes QoS degradation steps down through from this one, in order (empty:
    /// none); past the last, the keyframe interval stretches.
    pub qos_ladder: &'static [Mode],
    /// A fresh per-stream state: nothing carried yet.
    pub(super) start: fn(&Arc<Bundle>) -> Box<dyn ModeState>,
}

/// What one mode's step made of a frame.
pub struct Step {
    pub map: Arc<[u8]>,
    /// The branch that produced `map` (the meta's provenance).
    pub branch: Mode,
    /// The full model ran on this frame.
    pub keyframe: bool,
    /// Frames since the result this one was carried from (0 on a keyframe).
    pub distance: u32,
    /// A keyframe inference started in the background with this frame.
    pub keyframe_started: bool,
}

impl Step {
    /// The full model's result on this frame: a keyframe at distance 0.
    pub fn keyframe(map: Arc<[u8]>) -> Step {
        Step {
            map,
            branch: Mode::Full,
            keyframe: true,
            distance: 0,
            keyframe_started: false,
        }
    }
}

/// A mode's state over a stream and its per-frame steps. The shared part (schedule, motion
/// track, frame counter) is in [`Context`]; switching modes or resetting drops the state.
pub(super) trait ModeState: Send {
    /// Whether there is a result to carry to a non-keyframe (false: the next frame must be a
    /// keyframe).
    fn has_reference(&self) -> bool {
        true
    }

    /// This frame's motion, accumulated into the context's track already; modes with work in
    /// flight accumulate it for that work too. `None`: no motion for this frame.
    fn follow_motion(&mut self, _motion: Option<&super::FrameMotion>) {}

    /// Before the schedule decides: take over work finished in the background.
    fn poll(&mut self, _ctx: &mut Context) -> Result<(), SegmentError> {
        Ok(())
    }

    /// The schedule says keyframe.
    fn keyframe(&mut self, ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError>;

    /// The schedule says `distance` frames after the last keyframe.
    fn nonkeyframe(
        &mut self,
        ctx: &mut Context,
        input: &FrameInput,
        distance: u32,
    ) -> Result<Step, SegmentError>;
}

macro_rules! modes {
    ($($(#[$doc:meta])* $variant:ident => $module:ident,)+) => {
        /// What runs on a non-keyframe (ARCHITECTURE.md, "The stages and their modules"). The facts
        /// about each are in its [`ModeSpec`], [`Mode::spec`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Mode {
            $($(#[$doc])* $variant,)+
        }

        impl Mode {
            /// Every mode, in the element's enum order.
            pub const ALL: &'static [Mode] = &[$(Mode::$variant,)+];

            pub fn spec(self) -> &'static ModeSpec {
                match self {
                    $(Mode::$variant => &super::$module::SPEC,)+
                }
            }
        }
    };
}

// A new mode: one file with its `SPEC` and state, and one line here.
modes! {
    /// The model at full resolution on every frame: the baseline.
    Full => full,
    /// The model on a downscaled frame.
    LowRes => lowres,
    /// AR-Seg: low-resolution branch fused with warped keyframe features.
    Fusion => fusion,
    /// The keyframe's class map warped along the accumulated motion; no network.
    Warp => warp,
    /// TDNet: shallow sub-networks round robin with attention propagation.
    Distributed => distributed,
}

impl Default for Mode {
    /// `warp`: the cheapest mode, and what vss is for.
    fn default() -> Self {
        Mode::Warp
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The mode called `name` (`Mode::as_str`).
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.iter().copied().find(|m| m.as_str() == name)
    }

    /// The bundle schemes that can serve this mode.
    pub fn schemes(self) -> &'static [Scheme] {
        self.spec().schemes
    }

    /// Its position in [`Mode::ALL`] (the element enum's value).
    pub fn index(self) -> usize {
        Mode::ALL
            .iter()
            .position(|&m| m == self)
            .expect("ALL lists every mode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_again() {
        for &mode in Mode::ALL {
            assert_eq!(Mode::from_name(mode.as_str()), Some(mode));
            assert_eq!(Mode::ALL[mode.index()], mode);
        }
        let mut names: Vec<_> = Mode::ALL.iter().map(|m| m.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mode::ALL.len());
        assert_eq!(Mode::from_name("nope"), None);
    }

    #[test]
    fn every_ladder_ends_in_a_mode_that_every_scheme_serves() {
        for &mode in Mode::ALL {
            let last = mode.spec().qos_ladder.last().copied().unwrap_or(mode);
            for scheme in Scheme::ALL {
                assert!(last.schemes().contains(scheme), "{mode:?} -> {last:?}");
            }
        }
    }
}
