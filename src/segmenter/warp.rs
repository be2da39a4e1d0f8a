//! `warp`: no network between keyframes; the keyframe's class map is warped along the motion
//! accumulated since its frame. With `async_keyframes` the keyframe's inference runs in the
//! background while frames keep flowing on the previous result. With a correction budget, the
//! tiles where the keyframe's luma, carried the same way, no longer matches the frame are
//! re-segmented on crops of the frame ([`super::correction`]).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use super::correction::{Tiling, paste, plan, tile_scores};
use super::mode::{Mode, ModeSpec, ModeState, Step};
use super::{
    Context, EVERY_SCHEME, FrameInput, FrameMotion, SegmentError, infer, infer_with_luma,
    luma_of_rgb, to_arc,
};
use crate::model::{Bundle, FrameLayout, RawFrame, class_map, executor, frame_to_rgb, to_vec_u8};
use crate::motion::MotionTrack;

pub static SPEC: ModeSpec = ModeSpec {
    name: "warp",
    description: "Keyframe result warped along motion vectors; no network",
    schemes: EVERY_SCHEME,
    needs_motion: true,
    async_keyframes: true,
    qos_ladder: &[],
    start,
};

fn start(_: &Arc<Bundle>) -> Box<dyn ModeState> {
    Box::new(Warp {
        key_map: None,
        key_luma: None,
        key_index: 0,
        pending: None,
    })
}

struct Warp {
    /// The last keyframe's class map at native size, row-major.
    key_map: Option<Arc<[u8]>>,
    /// With correction on: the keyframe's luma at native size, row-major.
    key_luma: Option<Arc<[u8]>>,
    /// The index of the frame `key_map` shows.
    key_index: u64,
    /// With `async_keyframes`: the inference in flight, with the motion accumulated since its
    /// frame. Dropping it (reset, mode switch) throws its result away.
    pending: Option<Pending>,
}

/// A keyframe's class map and, with correction on, its luma.
type Keyframe = (Arc<[u8]>, Option<Arc<[u8]>>);
type KeyframeResult = std::thread::Result<Result<Keyframe, SegmentError>>;

struct Pending {
    frame: u64,
    track: MotionTrack,
    result: KeyframeJob,
}

/// A background keyframe's result, waited for when abandoned (reset, mode switch, stop).
/// An abandoned job would otherwise still be running when the application exits, and
/// libtorch's static destructors (oneDNN's primitive cache) would tear its kernels down under
/// it: gst-launch crashed with SIGSEGV at exit after an async-keyframes run. Waiting (at most
/// one keyframe's time) also keeps stale keyframes from piling up on the executor.
struct KeyframeJob(Receiver<KeyframeResult>);

impl Drop for KeyframeJob {
    fn drop(&mut self) {
        if !executor::on_executor() {
            // Ok: the result, discarded; Err: it was already taken or the job was dropped.
            let _ = self.0.recv();
        }
    }
}

impl Warp {
    /// Frames from the one `key_map` shows to the current one.
    fn key_distance(&self, ctx: &Context) -> u32 {
        u32::try_from(ctx.frame_index - self.key_index).unwrap_or(u32::MAX)
    }

    /// The keyframe's class map warped to the current frame along the accumulated motion.
    fn warped(&self, ctx: &Context) -> Result<Arc<[u8]>, SegmentError> {
        let key = self.key_map.as_ref().expect("scheduled after a keyframe");
        let (h, w) = ctx.native();
        // Straight from the field to the map: the same result as building the grid and
        // running `model::warp` with WarpMode::Nearest (tested), without the grid.
        let mut warped = vec![0u8; key.len()];
        ctx.track()
            .accumulated()
            .warp_class_map(key, w, h, &mut warped)?;
        Ok(Arc::from(warped))
    }

    /// `map` (the warped keyframe map) with the tiles the field does not explain re-segmented
    /// on crops of this frame, within the correction budget.
    ///
    /// Each frame is corrected afresh from the keyframe's map. Making a corrected frame the
    /// new reference (its map and luma, the track restarted there) was measured worse on
    /// camvid-real: -1.0 to -2.3 (P) and -4.2 to -5.8 (B) mIoU at budget 0.3 (camvid-espnet,
    /// camvid-cgnet), the re-warped maps drifting.
    fn corrected(
        &self,
        ctx: &Context,
        input: &FrameInput,
        map: Arc<[u8]>,
    ) -> Result<Arc<[u8]>, SegmentError> {
        let config = ctx.config.correction;
        let Some(key_luma) = self.key_luma.as_ref().filter(|_| config.enabled()) else {
            return Ok(map);
        };
        let (h, w) = ctx.native();
        let bundle = &ctx.bundle;
        let tiling = Tiling::new(w, h, bundle.manifest().size_multiple());
        let mut carried = vec![0u8; key_luma.len()];
        ctx.track()
            .accumulated()
            .warp_class_map(key_luma, w, h, &mut carried)?;
        executor::run(|| {
            let image = frame_to_rgb(&input.frame, (h, w), input.colorimetry, bundle.device())?;
            let scores = tile_scores(&tiling, &luma_of_rgb(&image)?, &carried);
            let patches = plan(&tiling, &scores, &config);
            if patches.is_empty() {
                return Ok(map);
            }
            let mut out = map.to_vec();
            for patch in &patches {
                let c = patch.crop;
                let crop = image
                    .narrow(2, i64::from(c.y0), i64::from(c.height()))
                    .narrow(3, i64::from(c.x0), i64::from(c.width()))
                    .contiguous();
                let (logits, _) = bundle.forward(&crop)?;
                let crop_map = to_vec_u8(&class_map(&logits, c.height(), c.width())?)?;
                paste(&mut out, w, patch, &crop_map);
            }
            Ok(Arc::from(out))
        })
    }

    /// Starts the keyframe's inference on the executor, with a track of its own from this
    /// frame on.
    fn start_in_background(
        &mut self,
        ctx: &Context,
        input: &FrameInput,
    ) -> Result<(), SegmentError> {
        let track = ctx.new_track()?;
        let frame = OwnedFrame::copy(&input.frame);
        let (bundle, colorimetry) = (ctx.bundle.clone(), input.colorimetry);
        let native = ctx.native();
        let with_luma = ctx.config.correction.enabled();
        let result = executor::spawn(move || {
            let raw = frame.raw();
            let image = frame_to_rgb(&raw.get(), native, colorimetry, bundle.device())?;
            let (logits, _) = bundle.forward(&image)?;
            let map = to_arc(&class_map(&logits, native.0, native.1)?)?;
            let luma: Option<Arc<[u8]>> = if with_luma {
                Some(Arc::from(luma_of_rgb(&image)?))
            } else {
                None
            };
            Ok((map, luma))
        });
        self.pending = Some(Pending {
            frame: ctx.frame_index,
            track,
            result: KeyframeJob(result),
        });
        Ok(())
    }
}

impl ModeState for Warp {
    fn has_reference(&self) -> bool {
        self.key_map.is_some()
    }

    fn follow_motion(&mut self, motion: Option<&FrameMotion>) {
        match motion {
            Some(m) => {
                if let Some(pending) = self.pending.as_mut() {
                    pending.track.advance_picture(m.vectors, m.picture);
                }
            }
            // The in-flight result could not be carried to this frame.
            None => self.pending = None,
        }
    }

    /// Takes over a finished background keyframe: its map, and the motion accumulated since
    /// its frame.
    fn poll(&mut self, ctx: &mut Context) -> Result<(), SegmentError> {
        let Some(pending) = self.pending.as_ref() else {
            return Ok(());
        };
        let map = match pending.result.0.try_recv() {
            Err(TryRecvError::Empty) => return Ok(()),
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SegmentError::Worker("keyframe inference panicked".into())),
            Err(TryRecvError::Disconnected) => Err(SegmentError::Worker("no result".into())),
        };
        let pending = self.pending.take().expect("checked above");
        let (map, luma) = map?;
        if ctx
            .track
            .as_ref()
            .is_some_and(|t| t.geometry() == pending.track.geometry())
        {
            ctx.track = Some(pending.track);
            self.key_map = Some(map);
            self.key_luma = luma;
            self.key_index = pending.frame;
        }
        Ok(())
    }

    fn keyframe(&mut self, ctx: &mut Context, input: &FrameInput) -> Result<Step, SegmentError> {
        if ctx.config.async_keyframes && self.key_map.is_some() {
            // Asynchronous keyframe: start it (unless one is in flight) and keep flowing on
            // the previous result meanwhile.
            let started = self.pending.is_none();
            if started {
                self.start_in_background(ctx, input)?;
            }
            let warped = self.warped(ctx)?;
            return Ok(Step {
                map: self.corrected(ctx, input, warped)?,
                branch: Mode::Warp,
                keyframe: false,
                distance: self.key_distance(ctx),
                keyframe_started: started,
            });
        }
        // The class map, not the logits, is what travels: nearest warping of one u8 channel
        // costs 4 ms a frame against 12 for 11 bilinear logit channels, for -0.07 mIoU on
        // camvid-motion (eval_motion, P and B encodes).
        let map = if ctx.config.correction.enabled() {
            let (map, luma) = infer_with_luma(&ctx.bundle, input)?;
            self.key_luma = Some(luma);
            map
        } else {
            self.key_luma = None;
            infer(&ctx.bundle, input, ctx.native(), false)?
        };
        self.key_map = Some(map.clone());
        self.key_index = ctx.frame_index;
        ctx.restart_track();
        Ok(Step::keyframe(map))
    }

    fn nonkeyframe(
        &mut self,
        ctx: &mut Context,
        input: &FrameInput,
        distance: u32,
    ) -> Result<Step, SegmentError> {
        let distance = if ctx.config.async_keyframes {
            self.key_distance(ctx)
        } else {
            distance
        };
        let warped = self.warped(ctx)?;
        Ok(Step {
            map: self.corrected(ctx, input, warped)?,
            branch: Mode::Warp,
            keyframe: false,
            distance,
            keyframe_started: false,
        })
    }
}

/// A frame's planes copied, for work that outlives the buffer.
struct OwnedFrame {
    layout: FrameLayout,
    width: u32,
    height: u32,
    planes: Vec<Vec<u8>>,
    strides: Vec<usize>,
}

impl OwnedFrame {
    fn copy(frame: &RawFrame) -> Self {
        OwnedFrame {
            layout: frame.layout,
            width: frame.width,
            height: frame.height,
            planes: frame.planes.iter().map(|p| p.to_vec()).collect(),
            strides: frame.strides.to_vec(),
        }
    }

    /// The copy, ready to be seen as a frame.
    fn raw(&self) -> OwnedRaw<'_> {
        OwnedRaw {
            planes: self.planes.iter().map(Vec::as_slice).collect(),
            frame: self,
        }
    }
}

/// [`OwnedFrame`] lent as a [`RawFrame`].
struct OwnedRaw<'a> {
    planes: Vec<&'a [u8]>,
    frame: &'a OwnedFrame,
}

impl<'a> OwnedRaw<'a> {
    fn get(&'a self) -> RawFrame<'a> {
        RawFrame {
            layout: self.frame.layout,
            width: self.frame.width,
            height: self.frame.height,
            planes: &self.planes,
            strides: &self.frame.strides,
        }
    }
}
