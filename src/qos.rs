//! Degrading under load: what `vsssegment` gives up, in order, when downstream's QoS events say
//! frames arrive late, and how it recovers. No GStreamer here; the element feeds it the events.
//!
//! The ladder, from the configured mode: the cheaper modes its [`ModeSpec::qos_ladder`] lists
//! (`full` -> `lowres` -> `warp`: each step drops most of the per-frame inference), then the
//! keyframe interval x2, x4, x8 (fewer keyframes). One step
//! down at most every [`QosConfig::degrade_every`] while late; one step back up after
//! [`QosConfig::recover_after`] of events saying there is headroom.

use std::time::Duration;

use crate::schedule::KeyframePolicy;
use crate::segmenter::Mode;
#[cfg(doc)]
use crate::segmenter::ModeSpec;

/// Interval multipliers past the mode steps.
const STRETCH: [u32; 4] = [1, 2, 4, 8];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QosConfig {
    /// Minimum time between two steps down.
    pub degrade_every: Duration,
    /// Time with headroom before one step back up (and between two steps up).
    pub recover_after: Duration,
    /// Downstream's proportion (processing time / frame time) below which there is headroom.
    pub headroom_below: f64,
}

impl Default for QosConfig {
    fn default() -> Self {
        QosConfig {
            degrade_every: Duration::from_secs(1),
            recover_after: Duration::from_secs(3),
            headroom_below: 0.6,
        }
    }
}

/// What a QoS event says, from the element's point of view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QosReport {
    /// Long-term rate of processing relative to real time (> 1: too slow).
    pub proportion: f64,
    /// The reported buffer arrived late.
    pub late: bool,
    /// When the report arrived, on any monotonic clock.
    pub at: Duration,
}

/// Where on the ladder the element is, and when it last moved.
#[derive(Debug, Clone)]
pub struct QosLadder {
    config: QosConfig,
    base_mode: Mode,
    level: usize,
    last_step: Option<Duration>,
    headroom_since: Option<Duration>,
}

impl QosLadder {
    pub fn new(base_mode: Mode, config: QosConfig) -> Self {
        QosLadder {
            config,
            base_mode,
            level: 0,
            last_step: None,
            headroom_since: None,
        }
    }

    /// 0 = as configured.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The cheaper modes the ladder steps through before stretching the interval.
    fn modes(&self) -> &'static [Mode] {
        self.base_mode.spec().qos_ladder
    }

    fn max_level(&self) -> usize {
        self.modes().len() + STRETCH.len() - 1
    }

    /// The mode and keyframe policy to run at the current level.
    pub fn apply(&self, policy: KeyframePolicy) -> (Mode, KeyframePolicy) {
        let modes = self.modes();
        let mode_step = self.level.min(modes.len());
        let mode = match mode_step {
            0 => self.base_mode,
            n => modes[n - 1],
        };
        let stretch = STRETCH[self.level - mode_step];
        if stretch == 1 {
            return (mode, policy);
        }
        (mode, policy.stretched(stretch))
    }

    /// Takes one report; returns the new level when it changed.
    pub fn observe(&mut self, report: QosReport) -> Option<usize> {
        let since_step = |at: Duration| {
            self.last_step
                .is_none_or(|t| at.saturating_sub(t) >= self.config.degrade_every)
        };
        if report.late || report.proportion > 1.0 {
            self.headroom_since = None;
            if self.level < self.max_level() && since_step(report.at) {
                self.level += 1;
                self.last_step = Some(report.at);
                return Some(self.level);
            }
            return None;
        }
        if report.proportion >= self.config.headroom_below || self.level == 0 {
            self.headroom_since = None;
            return None;
        }
        let since = *self.headroom_since.get_or_insert(report.at);
        let recovered = report.at.saturating_sub(since) >= self.config.recover_after
            && self
                .last_step
                .is_none_or(|t| report.at.saturating_sub(t) >= self.config.recover_after);
        if recovered {
            self.level -= 1;
            self.last_step = Some(report.at);
            self.headroom_since = Some(report.at);
            return Some(self.level);
        }
        None
    }
}

/// The processing time `vsssegment` declares in the latency query, learnt from the frames.
///
/// A frame slower than the declared latency arrives late downstream, so the declaration must
/// cover the slow frames that recur; but one hiccup (the scheduler, a page fault, a neighbour
/// process) must not raise it for the rest of the stream, since every frame of a live pipeline
/// is then held back that much longer at the sink. So the latency is raised only when more than
/// [`LatencyEstimate::TOLERATED`] of the last [`LatencyEstimate::WINDOW`] frames exceeded it,
/// and then to the slowest frame but those tolerated ones, with a 25% margin. It never goes
/// down: a pipeline's latency changing back and forth makes sinks re-time their streams.
#[derive(Debug, Clone)]
pub struct LatencyEstimate {
    declared: Duration,
    recent: std::collections::VecDeque<Duration>,
}

impl LatencyEstimate {
    /// Frames looked at.
    pub const WINDOW: usize = 50;
    /// Frames in the window that may exceed the declared latency without raising it.
    pub const TOLERATED: usize = 2;

    pub fn new(initial: Duration) -> Self {
        LatencyEstimate {
            declared: initial,
            recent: std::collections::VecDeque::with_capacity(Self::WINDOW),
        }
    }

    pub fn declared(&self) -> Duration {
        self.declared
    }

    /// Records one frame's processing time; returns the new latency when it was raised.
    pub fn observe(&mut self, took: Duration) -> Option<Duration> {
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        let over = self.recent.iter().filter(|&&t| t > self.declared).count();
        if over <= Self::TOLERATED {
            return None;
        }
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        // The slowest frame once the tolerated outliers are set aside.
        let covered = sorted[Self::TOLERATED];
        self.declared = covered + covered / 4;
        Some(self.declared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn late(ms: u64) -> QosReport {
        QosReport {
            proportion: 1.5,
            late: true,
            at: at(ms),
        }
    }

    fn easy(ms: u64) -> QosReport {
        QosReport {
            proportion: 0.3,
            late: false,
            at: at(ms),
        }
    }

    #[test]
    fn full_steps_down_through_lowres_and_warp_then_stretches_the_interval() {
        let mut q = QosLadder::new(Mode::Full, QosConfig::default());
        let policy = KeyframePolicy::Interval(12);
        assert_eq!(q.apply(policy), (Mode::Full, policy));
        let mut seen = Vec::new();
        for second in 0..10 {
            // Many late reports a second: one step a second at most.
            for ms in [0, 100, 500, 900] {
                q.observe(late(second * 1000 + ms));
            }
            seen.push(q.apply(policy));
        }
        assert_eq!(
            seen[..6],
            [
                (Mode::LowRes, KeyframePolicy::Interval(12)),
                (Mode::Warp, KeyframePolicy::Interval(12)),
                (Mode::Warp, KeyframePolicy::Interval(24)),
                (Mode::Warp, KeyframePolicy::Interval(48)),
                (Mode::Warp, KeyframePolicy::Interval(96)),
                (Mode::Warp, KeyframePolicy::Interval(96)),
            ]
        );
        assert_eq!(q.level(), 5);
    }

    #[test]
    fn recovers_one_step_per_period_of_headroom() {
        let mut q = QosLadder::new(Mode::Warp, QosConfig::default());
        q.observe(late(0));
        q.observe(late(1000));
        assert_eq!(q.level(), 2);
        // Headroom, but not yet long enough.
        for ms in (1100..3900).step_by(100) {
            assert_eq!(q.observe(easy(ms)), None, "{ms}");
        }
        assert_eq!(q.observe(easy(4100)), Some(1));
        assert_eq!(q.observe(easy(5000)), None);
        assert_eq!(q.observe(easy(7100)), Some(0));
        assert_eq!(
            q.apply(KeyframePolicy::Interval(12)).1,
            KeyframePolicy::Interval(12)
        );
        // Nothing to recover at level 0.
        assert_eq!(q.observe(easy(20_000)), None);
    }

    #[test]
    fn lateness_restarts_the_wait_for_recovery() {
        let mut q = QosLadder::new(Mode::Warp, QosConfig::default());
        q.observe(late(0));
        q.observe(easy(1000));
        q.observe(easy(3500));
        // Late again before recovering: no step up (a step down, its cooldown having passed).
        assert_eq!(q.observe(late(3600)), Some(2));
        assert_eq!(q.observe(easy(4000)), None);
        assert_eq!(q.observe(easy(6500)), None);
        assert_eq!(q.observe(easy(7100)), Some(1));
    }

    #[test]
    fn middling_load_holds_the_level() {
        let mut q = QosLadder::new(Mode::Full, QosConfig::default());
        q.observe(late(0));
        for ms in (100..20_000).step_by(100) {
            let r = QosReport {
                proportion: 0.8,
                late: false,
                at: at(ms),
            };
            assert_eq!(q.observe(r), None);
        }
        assert_eq!(q.level(), 1);
    }

    #[test]
    fn stretched_keeps_the_policy_kind() {
        assert_eq!(
            KeyframePolicy::Codec { max_interval: 60 }.stretched(2),
            KeyframePolicy::Codec { max_interval: 120 }
        );
        assert_eq!(
            KeyframePolicy::Interval(0).stretched(4),
            KeyframePolicy::Interval(4)
        );
        match KeyframePolicy::adaptive().stretched(8) {
            KeyframePolicy::Adaptive { max_interval, .. } => assert_eq!(max_interval, 96),
            other => panic!("{other:?}"),
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn one_slow_frame_does_not_raise_the_latency() {
        let mut l = LatencyEstimate::new(ms(10));
        for i in 0..200 {
            let took = if i % 60 == 0 { ms(150) } else { ms(4) };
            assert_eq!(l.observe(took), None, "frame {i}");
        }
        assert_eq!(l.declared(), ms(10));
    }

    #[test]
    fn recurring_slow_frames_raise_it_to_cover_them() {
        let mut l = LatencyEstimate::new(ms(10));
        let mut raised = Vec::new();
        for i in 0..100 {
            // Every 12th frame takes 30 ms (a synchronous keyframe), the rest 4 ms.
            let took = if i % 12 == 0 { ms(30) } else { ms(4) };
            if let Some(d) = l.observe(took) {
                raised.push((i, d));
            }
        }
        // The third slow frame in the window raises it, to 30 ms + 25%; then it stays.
        assert_eq!(raised, vec![(24, Duration::from_micros(37_500))]);
    }

    #[test]
    fn it_never_goes_down() {
        let mut l = LatencyEstimate::new(ms(5));
        for _ in 0..3 {
            l.observe(ms(40));
        }
        assert_eq!(l.declared(), ms(50));
        for _ in 0..500 {
            assert_eq!(l.observe(ms(1)), None);
        }
        assert_eq!(l.declared(), ms(50));
    }
}
