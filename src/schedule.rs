//! Keyframe policy: per frame, run the model in full (keyframe) or propagate from the last one.
//!
//! The scheduler is a small state machine over per-frame facts. Its rules, in order: the first
//! frame and the first after a reset are keyframes; with `codec`, so are the stream's
//! keyframes; so is a frame with no motion to propagate with, or with nothing to propagate;
//! then the policy decides, and every policy has an upper bound on the distance to the last
//! keyframe. With `adaptive` the
//! element accumulates the frame's motion first, asks with the statistics of that accumulated
//! field, and restarts the motion track when the answer is a keyframe.

use crate::motion::{FieldStats, PictureType};

/// Frames from one keyframe to the next for `interval`, and the bound for `adaptive`: the GOP
/// AR-Seg evaluates with.
pub const DEFAULT_KEYFRAME_INTERVAL: u32 = 12;
/// Bound for `codec`: about 2.4 s at 25 fps. Streams with longer GOPs (many cameras send one
/// I-frame every few seconds) get extra keyframes, since propagated results go stale anyway.
pub const DEFAULT_CODEC_MAX_INTERVAL: u32 = 60;
/// Share of uncovered cells at which `adaptive` starts a keyframe. High on purpose: encoders
/// code flat areas intra, so on the highway clip (x264 defaults) the codec field is 57%
/// uncovered one frame after the I-frame and ~70% after a GOP, while the built-in estimator
/// stays near 3%; 0.25 would make every frame a keyframe there. To be tuned on generated data.
pub const DEFAULT_UNCOVERED_THRESHOLD: f32 = 0.75;
/// Mean accumulated displacement, in frame pixels, at which `adaptive` starts a keyframe
/// (reached after ~6 frames with codec vectors, ~10 with the estimator on the highway clip).
/// Pixels, so a larger frame of the same scene reaches it sooner. To be tuned on generated
/// data.
pub const DEFAULT_MOTION_THRESHOLD: f32 = 24.0;

/// When to run the full model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyframePolicy {
    /// The stream's keyframes / I-frames, and at least every `max_interval` frames. With no
    /// codec information (raw sources) this is `Interval(max_interval)`.
    Codec { max_interval: u32 },
    /// Every N frames (0 and 1 both mean every frame).
    Interval(u32),
    /// When the accumulated field says the propagated result has gone stale: the uncovered
    /// share reaches `uncovered_threshold` or the mean accumulated motion reaches
    /// `motion_threshold` pixels; at least every `max_interval` frames.
    Adaptive {
        max_interval: u32,
        uncovered_threshold: f32,
        motion_threshold: f32,
    },
}

impl KeyframePolicy {
    pub fn codec() -> Self {
        KeyframePolicy::Codec {
            max_interval: DEFAULT_CODEC_MAX_INTERVAL,
        }
    }

    pub fn adaptive() -> Self {
        KeyframePolicy::Adaptive {
            max_interval: DEFAULT_KEYFRAME_INTERVAL,
            uncovered_threshold: DEFAULT_UNCOVERED_THRESHOLD,
            motion_threshold: DEFAULT_MOTION_THRESHOLD,
        }
    }

    /// The interval, or the bound on it.
    pub fn interval(self) -> u32 {
        match self {
            KeyframePolicy::Codec { max_interval } => max_interval,
            KeyframePolicy::Interval(n) => n,
            KeyframePolicy::Adaptive { max_interval, .. } => max_interval,
        }
    }

    /// The same policy with its interval (or bound) multiplied by `factor`: fewer keyframes.
    pub fn stretched(self, factor: u32) -> Self {
        let f = |n: u32| n.max(1).saturating_mul(factor.max(1));
        match self {
            KeyframePolicy::Codec { max_interval } => KeyframePolicy::Codec {
                max_interval: f(max_interval),
            },
            KeyframePolicy::Interval(n) => KeyframePolicy::Interval(f(n)),
            KeyframePolicy::Adaptive {
                max_interval,
                uncovered_threshold,
                motion_threshold,
            } => KeyframePolicy::Adaptive {
                max_interval: f(max_interval),
                uncovered_threshold,
                motion_threshold,
            },
        }
    }

    /// The largest distance between keyframes this policy allows.
    pub fn max_interval(&self) -> u32 {
        match *self {
            KeyframePolicy::Codec { max_interval }
            | KeyframePolicy::Interval(max_interval)
            | KeyframePolicy::Adaptive { max_interval, .. } => max_interval.max(1),
        }
    }
}

impl Default for KeyframePolicy {
    /// `Interval(12)`: predictable cost, and what the benchmarks compare at.
    fn default() -> Self {
        KeyframePolicy::Interval(DEFAULT_KEYFRAME_INTERVAL)
    }
}

/// What the element knows about a frame when it asks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameFacts {
    /// The codec (or container) marks this frame as a keyframe.
    pub codec_keyframe: bool,
    pub picture_type: PictureType,
    /// Flush, seek, discont, gap or caps change before this frame: temporal state is void.
    pub reset: bool,
    /// No motion could be obtained for this frame (an I-frame with no estimator running, a
    /// failed estimate): nothing to propagate with.
    pub no_motion: bool,
    /// The mode has no result to carry to this frame (the last keyframe failed, or the mode
    /// was just switched): it must run the model.
    pub no_reference: bool,
    /// Statistics of the field accumulated back to the last keyframe including this frame;
    /// read by `Adaptive`, which falls back to its bound when they are missing.
    pub field: Option<FieldStats>,
}

/// Why a frame is a keyframe, for provenance and stats messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyframeReason {
    First,
    Reset,
    NoMotion,
    NoReference,
    Codec,
    Interval,
    /// The policy's maximum interval was reached.
    Bound,
    Uncovered,
    Motion,
}

impl KeyframeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyframeReason::First => "first",
            KeyframeReason::Reset => "reset",
            KeyframeReason::NoMotion => "no-motion",
            KeyframeReason::NoReference => "no-reference",
            KeyframeReason::Codec => "codec",
            KeyframeReason::Interval => "interval",
            KeyframeReason::Bound => "bound",
            KeyframeReason::Uncovered => "uncovered",
            KeyframeReason::Motion => "motion",
        }
    }
}

/// The scheduler's answer for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keyframe {
        reason: KeyframeReason,
    },
    /// `distance` frames after the last keyframe (1 for the frame right after it).
    NonKeyframe {
        distance: u32,
    },
}

impl Decision {
    pub fn is_keyframe(&self) -> bool {
        matches!(self, Decision::Keyframe { .. })
    }
}

/// Keyframe decisions over a stream.
#[derive(Debug, Clone)]
pub struct Scheduler {
    policy: KeyframePolicy,
    /// Frames since the last keyframe; `None` before the first frame or after a reset.
    distance: Option<u32>,
}

impl Scheduler {
    pub fn new(policy: KeyframePolicy) -> Self {
        Scheduler {
            policy,
            distance: None,
        }
    }

    pub fn policy(&self) -> KeyframePolicy {
        self.policy
    }

    /// Takes effect from the next frame; the distance to the last keyframe is kept.
    pub fn set_policy(&mut self, policy: KeyframePolicy) {
        self.policy = policy;
    }

    /// The next frame will be a keyframe (flush, stop).
    pub fn reset(&mut self) {
        self.distance = None;
    }

    /// Frames since the last keyframe, `None` before the first.
    pub fn distance(&self) -> Option<u32> {
        self.distance
    }

    pub fn decide(&mut self, facts: &FrameFacts) -> Decision {
        let decision = self.rule(facts);
        self.distance = match decision {
            Decision::Keyframe { .. } => Some(0),
            Decision::NonKeyframe { distance } => Some(distance),
        };
        decision
    }

    fn rule(&self, facts: &FrameFacts) -> Decision {
        let keyframe = |reason| Decision::Keyframe { reason };
        let Some(last) = self.distance else {
            return keyframe(KeyframeReason::First);
        };
        if facts.reset {
            return keyframe(KeyframeReason::Reset);
        }
        let codec_keyframe = facts.codec_keyframe || facts.picture_type == PictureType::I;
        if matches!(self.policy, KeyframePolicy::Codec { .. }) && codec_keyframe {
            return keyframe(KeyframeReason::Codec);
        }
        if facts.no_motion {
            return keyframe(KeyframeReason::NoMotion);
        }
        if facts.no_reference {
            return keyframe(KeyframeReason::NoReference);
        }
        let distance = last.saturating_add(1);
        match self.policy {
            KeyframePolicy::Interval(_) if distance >= self.policy.max_interval() => {
                return keyframe(KeyframeReason::Interval);
            }
            _ if distance >= self.policy.max_interval() => {
                return keyframe(KeyframeReason::Bound);
            }
            KeyframePolicy::Adaptive {
                uncovered_threshold,
                motion_threshold,
                ..
            } => {
                if let Some(stats) = facts.field {
                    if stats.uncovered_share >= uncovered_threshold {
                        return keyframe(KeyframeReason::Uncovered);
                    }
                    if stats.mean_magnitude >= motion_threshold {
                        return keyframe(KeyframeReason::Motion);
                    }
                }
            }
            _ => {}
        }
        Decision::NonKeyframe { distance }
    }
}

impl Scheduler {
    /// Right after a keyframe: the next one comes `frames` frames later (1..=the policy's
    /// bound) instead of at the bound, so that streams sharing a model can spread their
    /// keyframes ([`frames_to_slot`]). `codec` keeps the stream's own keyframes.
    pub fn next_keyframe_in(&mut self, frames: u32) {
        if matches!(self.policy, KeyframePolicy::Codec { .. }) || self.distance != Some(0) {
            return;
        }
        let bound = self.policy.max_interval();
        self.distance = Some(bound - frames.clamp(1, bound));
    }
}

/// Frames until stream `slot` of `members` should have its next keyframe, when the members
/// spread their keyframes evenly over one interval: slot j's keyframes fall at
/// `epoch + (j / members + k) * interval * frame`, for whole k. `since_epoch` is now, on that
/// clock. In 1..=interval; `interval` when the stream is on its slot already.
pub fn frames_to_slot(
    since_epoch: std::time::Duration,
    slot: usize,
    members: usize,
    interval: u32,
    frame: std::time::Duration,
) -> u32 {
    let interval = interval.max(1);
    if members <= 1 || frame.is_zero() {
        return interval;
    }
    let period = frame.as_secs_f64() * f64::from(interval);
    let offset = period * (slot % members) as f64 / members as f64;
    let phase = (since_epoch.as_secs_f64() - offset).rem_euclid(period);
    let frames = ((period - phase) / frame.as_secs_f64()).round();
    (frames as u32).clamp(1, interval)
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new(KeyframePolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scheduler: &mut Scheduler, facts: &[FrameFacts]) -> Vec<Decision> {
        facts.iter().map(|f| scheduler.decide(f)).collect()
    }

    fn keyframes(decisions: &[Decision]) -> Vec<usize> {
        decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_keyframe())
            .map(|(i, _)| i)
            .collect()
    }

    fn p_frame() -> FrameFacts {
        FrameFacts {
            picture_type: PictureType::P,
            ..FrameFacts::default()
        }
    }

    fn i_frame() -> FrameFacts {
        FrameFacts {
            codec_keyframe: true,
            picture_type: PictureType::I,
            ..FrameFacts::default()
        }
    }

    #[test]
    fn interval_every_n_with_distances() {
        let mut s = Scheduler::new(KeyframePolicy::Interval(4));
        let d = run(&mut s, &[p_frame(); 10]);
        assert_eq!(keyframes(&d), vec![0, 4, 8]);
        assert_eq!(
            d[0],
            Decision::Keyframe {
                reason: KeyframeReason::First
            }
        );
        assert_eq!(d[3], Decision::NonKeyframe { distance: 3 });
        assert_eq!(
            d[4],
            Decision::Keyframe {
                reason: KeyframeReason::Interval
            }
        );
        for n in [0, 1] {
            let mut s = Scheduler::new(KeyframePolicy::Interval(n));
            assert_eq!(keyframes(&run(&mut s, &[p_frame(); 3])), vec![0, 1, 2]);
        }
    }

    #[test]
    fn reset_and_missing_motion_force_keyframes() {
        let mut s = Scheduler::new(KeyframePolicy::Interval(100));
        let mut facts = [p_frame(); 6];
        facts[2].reset = true;
        facts[4].no_motion = true;
        let d = run(&mut s, &facts);
        assert_eq!(keyframes(&d), vec![0, 2, 4]);
        assert_eq!(
            d[2],
            Decision::Keyframe {
                reason: KeyframeReason::Reset
            }
        );
        assert_eq!(d[3], Decision::NonKeyframe { distance: 1 });
        s.reset();
        assert_eq!(s.distance(), None);
        assert!(s.decide(&p_frame()).is_keyframe());
    }

    #[test]
    fn a_shortened_interval_applies_once() {
        let mut s = Scheduler::new(KeyframePolicy::Interval(4));
        let mut decisions = vec![s.decide(&p_frame())];
        s.next_keyframe_in(2);
        decisions.extend((0..9).map(|_| s.decide(&p_frame())));
        assert_eq!(keyframes(&decisions), vec![0, 2, 6]);
    }

    #[test]
    fn slots_spread_keyframes_over_the_interval() {
        use std::time::Duration;
        let frame = Duration::from_millis(100);
        // 4 members, interval 8 (0.8 s): slots at 0, 0.2, 0.4, 0.6 s into each period.
        let due =
            |now_ms: u64, slot| frames_to_slot(Duration::from_millis(now_ms), slot, 4, 8, frame);
        assert_eq!(due(0, 0), 8, "on its slot: a whole interval");
        assert_eq!(due(0, 1), 2);
        assert_eq!(due(0, 3), 6);
        assert_eq!(
            due(1000, 2),
            2,
            "0.2 s into the second period: 0.4 is 2 frames away"
        );
        assert_eq!(due(640, 1), 4, "rounds to the nearest frame");
        // Alone, or without a frame rate: the plain interval.
        assert_eq!(
            frames_to_slot(Duration::from_millis(300), 0, 1, 8, frame),
            8
        );
        assert_eq!(
            frames_to_slot(Duration::from_millis(300), 1, 4, 8, Duration::ZERO),
            8
        );
        // Every slot gets a distinct phase when members <= interval.
        let phases: std::collections::BTreeSet<u32> = (0..8).map(|j| due(0, j) % 8).collect();
        assert_eq!(phases.len(), 4);
    }

    #[test]
    fn nothing_to_carry_forces_a_keyframe_and_restarts_the_count() {
        let mut s = Scheduler::new(KeyframePolicy::Interval(4));
        let mut facts = [p_frame(); 9];
        facts[2].no_reference = true;
        let d = run(&mut s, &facts);
        assert_eq!(
            d[2],
            Decision::Keyframe {
                reason: KeyframeReason::NoReference
            }
        );
        assert_eq!(keyframes(&d), vec![0, 2, 6]);
    }

    #[test]
    fn codec_follows_i_frames_with_a_bound() {
        let mut s = Scheduler::new(KeyframePolicy::Codec { max_interval: 5 });
        let mut facts = [p_frame(); 14];
        facts[0] = i_frame();
        // I-frames carry no vectors: the codec reason wins over the missing motion.
        facts[3] = FrameFacts {
            no_motion: true,
            ..i_frame()
        };
        // B-frame stream: picture type alone marks the I-frame.
        facts[5] = FrameFacts {
            picture_type: PictureType::I,
            ..p_frame()
        };
        let d = run(&mut s, &facts);
        // 5: I; then no I-frame: bound at distance 5 -> 10.
        assert_eq!(keyframes(&d), vec![0, 3, 5, 10]);
        assert_eq!(
            d[3],
            Decision::Keyframe {
                reason: KeyframeReason::Codec
            }
        );
        assert_eq!(
            d[10],
            Decision::Keyframe {
                reason: KeyframeReason::Bound
            }
        );
    }

    #[test]
    fn adaptive_reads_field_statistics() {
        let policy = KeyframePolicy::Adaptive {
            max_interval: 6,
            uncovered_threshold: 0.25,
            motion_threshold: 24.0,
        };
        let mut s = Scheduler::new(policy);
        let stats = |uncovered_share, mean_magnitude| FrameFacts {
            field: Some(FieldStats {
                uncovered_share,
                mean_magnitude,
                outside_share: 0.0,
            }),
            ..p_frame()
        };
        let facts = [
            stats(0.0, 0.0),
            stats(0.1, 5.0),
            stats(0.3, 5.0), // uncovered
            stats(0.0, 10.0),
            stats(0.0, 30.0), // motion
            stats(0.0, 1.0),
            // No statistics: only the bound (6 after frame 4) applies.
            p_frame(),
            p_frame(),
            p_frame(),
            p_frame(),
        ];
        let d = run(&mut s, &facts);
        assert_eq!(keyframes(&d), vec![0, 2, 4]);
        assert_eq!(
            d[2],
            Decision::Keyframe {
                reason: KeyframeReason::Uncovered
            }
        );
        assert_eq!(
            d[4],
            Decision::Keyframe {
                reason: KeyframeReason::Motion
            }
        );
        assert_eq!(d[9], Decision::NonKeyframe { distance: 5 });
        assert_eq!(
            s.decide(&p_frame()),
            Decision::Keyframe {
                reason: KeyframeReason::Bound
            }
        );
        // Adaptive ignores codec I-frames that still have motion (estimated).
        assert_eq!(s.decide(&i_frame()), Decision::NonKeyframe { distance: 1 });
    }

    #[test]
    fn policy_change_keeps_the_distance() {
        let mut s = Scheduler::new(KeyframePolicy::Interval(10));
        run(&mut s, &[p_frame(); 4]);
        s.set_policy(KeyframePolicy::Interval(3));
        assert!(s.decide(&p_frame()).is_keyframe());
    }
}
