//! One-minute samples of each queue for the last hours: what a floor
//! manager reads as "the trend" (is the queue building up, is SL sliding).
//!
//! Why samples and not a query of the interval history: the history closes
//! intervals every 15 or 30 minutes and stores counters, while a trend needs
//! the instantaneous figures (waiting, longest wait, staffing) at a fixed
//! step, including the stage of the ladder so a wall can mark where an
//! escalation began or ended. Samples are taken on event time at each whole
//! minute (the engine's clock crossing it), so replay and tests get the same
//! samples as the live daemon and never wait for a wall clock.

use std::collections::VecDeque;

use serde::Serialize;

use crate::time::Ts;

/// Minutes kept per queue (6 hours).
pub const KEEP_MINUTES: usize = 360;
/// The sampling step.
pub const STEP_MS: i64 = 60_000;

/// A queue at one whole minute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrendSample {
    /// The minute (event time).
    pub at: Ts,
    pub waiting: u32,
    pub longest_wait_s: f64,
    /// Service level of the rolling window (the queue's formula); `null`
    /// when the window counted no call.
    pub service_level: Option<f64>,
    pub available: u32,
    pub logged_in: u32,
    /// Escalation stage in force (0: none).
    pub stage: u32,
}

/// The samples of one queue, oldest first, at most [`KEEP_MINUTES`].
#[derive(Debug, Clone, Default)]
pub struct Trend {
    samples: VecDeque<TrendSample>,
}

impl Trend {
    pub fn push(&mut self, s: TrendSample) {
        if self.samples.back().is_some_and(|b| b.at >= s.at) {
            return;
        }
        if self.samples.len() == KEEP_MINUTES {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// The last `minutes` samples, oldest first.
    pub fn last(&self, minutes: usize) -> Vec<TrendSample> {
        let skip = self.samples.len().saturating_sub(minutes);
        self.samples.iter().skip(skip).copied().collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// The first whole minute strictly after `t`.
pub fn next_minute(t: Ts) -> Ts {
    Ts((t.0.div_euclid(STEP_MS) + 1).saturating_mul(STEP_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(min: i64) -> TrendSample {
        TrendSample {
            at: Ts(min * STEP_MS),
            waiting: min as u32,
            longest_wait_s: 0.0,
            service_level: None,
            available: 0,
            logged_in: 0,
            stage: 0,
        }
    }

    #[test]
    fn keeps_the_last_hours_oldest_first() {
        let mut t = Trend::default();
        for m in 0..(KEEP_MINUTES as i64 + 10) {
            t.push(s(m));
        }
        assert_eq!(t.len(), KEEP_MINUTES);
        let last = t.last(3);
        assert_eq!(
            last.iter().map(|x| x.waiting).collect::<Vec<_>>(),
            vec![367, 368, 369]
        );
        t.push(s(5));
        assert_eq!(
            t.last(1)[0].waiting,
            369,
            "a sample from the past is ignored"
        );
        assert_eq!(next_minute(Ts(59_999)), Ts(60_000));
        assert_eq!(next_minute(Ts(60_000)), Ts(120_000));
    }
}
