//! Counting windows: the rolling window (the last N minutes), the current
//! interval (15 or 30 minutes aligned to the clock in the centre's time zone)
//! and today (local midnight to midnight, 23 or 25 hours on DST days).
//!
//! A call is counted when it *leaves* the queue (answered, abandoned, exited):
//! that is when its wait, and so its service-level class, is known. Every
//! outcome is classified once, at that moment, with the queue's thresholds, and
//! the classification travels with it; the rolling window subtracts exactly
//! what it added, so integer sums never drift.

use std::collections::VecDeque;

use crate::event::ExitReason;
use crate::time::Ts;

/// What happened to a call, as far as windows count it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A call entered the queue (arrival rate for Erlang C).
    Arrival,
    Answered {
        wait_ms: i64,
        in_sl: bool,
    },
    Abandoned {
        wait_ms: i64,
        in_sl: bool,
        short: bool,
    },
    Exited {
        wait_ms: i64,
        reason: ExitReason,
    },
    /// A bridged call ended; `talk_ms` from answer to completion.
    Handled {
        talk_ms: i64,
    },
    /// An agent left wrap-up after a call of this queue.
    AfterCallWork {
        ms: i64,
    },
}

/// Additive counters; a window is a sum of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Tally {
    pub arrivals: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub abandoned_in_sl: u64,
    pub short_abandoned: u64,
    pub exited: u64,
    pub answered_wait_ms: i64,
    pub abandoned_wait_ms: i64,
    pub handled: u64,
    pub talk_ms: i64,
    pub acw_ms: i64,
}

impl Tally {
    pub fn offered(&self) -> u64 {
        self.answered + self.abandoned + self.exited
    }

    pub fn add(&mut self, o: &Outcome) {
        self.apply(o, 1)
    }

    pub fn sub(&mut self, o: &Outcome) {
        self.apply(o, -1)
    }

    fn apply(&mut self, o: &Outcome, sign: i64) {
        fn bump(c: &mut u64, sign: i64) {
            if sign > 0 {
                *c += 1;
            } else {
                *c = c.saturating_sub(1);
            }
        }
        match *o {
            Outcome::Arrival => bump(&mut self.arrivals, sign),
            Outcome::Answered { wait_ms, in_sl } => {
                bump(&mut self.answered, sign);
                if in_sl {
                    bump(&mut self.answered_in_sl, sign);
                }
                self.answered_wait_ms += sign * wait_ms;
            }
            Outcome::Abandoned {
                wait_ms,
                in_sl,
                short,
            } => {
                bump(&mut self.abandoned, sign);
                if in_sl {
                    bump(&mut self.abandoned_in_sl, sign);
                }
                if short {
                    bump(&mut self.short_abandoned, sign);
                }
                self.abandoned_wait_ms += sign * wait_ms;
            }
            Outcome::Exited { .. } => bump(&mut self.exited, sign),
            Outcome::Handled { talk_ms } => {
                bump(&mut self.handled, sign);
                self.talk_ms += sign * talk_ms;
            }
            Outcome::AfterCallWork { ms } => self.acw_ms += sign * ms,
        }
    }
}

/// The last `len_ms` of outcomes. Exact: every outcome is kept until it
/// expires (a busy queue takes a few hundred per 15 minutes), then subtracted.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    len_ms: i64,
    pub(super) entries: VecDeque<(Ts, Outcome)>,
    pub(super) tally: Tally,
}

impl RollingWindow {
    pub fn new(len_ms: i64) -> Self {
        RollingWindow {
            len_ms: len_ms.max(1),
            entries: VecDeque::new(),
            tally: Tally::default(),
        }
    }

    pub fn len_ms(&self) -> i64 {
        self.len_ms
    }

    /// A new length (config reload): a shorter window sheds at the next
    /// [`RollingWindow::expire`]; a longer one grows forward.
    pub fn set_len_ms(&mut self, len_ms: i64) {
        self.len_ms = len_ms.max(1);
    }

    pub fn push(&mut self, ts: Ts, o: Outcome) {
        self.tally.add(&o);
        self.entries.push_back((ts, o));
    }

    /// Drops outcomes older than the window as of `now`; true if any went.
    /// An outcome at exactly `now - len` has left the window.
    pub fn expire(&mut self, now: Ts) -> bool {
        let cutoff = now.0 - self.len_ms;
        let mut changed = false;
        while let Some((ts, _)) = self.entries.front() {
            if ts.0 > cutoff {
                break;
            }
            if let Some((_, o)) = self.entries.pop_front() {
                self.tally.sub(&o);
                changed = true;
            }
        }
        changed
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}

/// A fixed span `[start, end)`: the current interval or today.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedWindow {
    pub start: Ts,
    pub end: Ts,
    pub tally: Tally,
}

impl FixedWindow {
    pub fn new(start: Ts, end: Ts) -> Self {
        FixedWindow {
            start,
            end,
            tally: Tally::default(),
        }
    }
}

/// Where the interval containing `ts` starts. Intervals are aligned to the
/// local wall clock (`00:00, 00:15, ...` in the zone) using the UTC offset in
/// force at `ts`; across a DST change they stay contiguous because both the
/// change and the grid fall on whole quarter hours.
pub fn interval_start(ts: Ts, len_ms: i64, zone: &jiff::tz::TimeZone) -> Ts {
    let len_ms = len_ms.max(1);
    let offset_ms = zone.to_offset(ts.to_jiff()).seconds() as i64 * 1000;
    let local = ts.0 + offset_ms;
    Ts(local.div_euclid(len_ms) * len_ms - offset_ms)
}

/// The interval `[start, end)` containing `ts`.
pub fn interval_bounds(ts: Ts, len_ms: i64, zone: &jiff::tz::TimeZone) -> (Ts, Ts) {
    let start = interval_start(ts, len_ms, zone);
    let mut end = interval_start(start.plus_ms(len_ms), len_ms, zone);
    if end <= ts {
        // An offset change not on the grid: never let an interval be empty.
        end = start.plus_ms(len_ms);
    }
    (start, end)
}

/// The local day `[midnight, next midnight)` containing `ts`.
pub fn day_bounds(ts: Ts, zone: &jiff::tz::TimeZone) -> (Ts, Ts) {
    let zdt = ts.to_jiff().to_zoned_datetime(zone.clone());
    let start = zdt
        .start_of_day()
        .map(|z| Ts(z.timestamp().as_millisecond()))
        .unwrap_or(Ts(ts.0 - ts.0.rem_euclid(86_400_000)));
    let end = zdt
        .tomorrow()
        .and_then(|z| z.start_of_day())
        .map(|z| Ts(z.timestamp().as_millisecond()))
        .unwrap_or(start.plus_ms(86_400_000));
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Ts {
        Ts::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn rolling_window_expires_exactly() {
        let mut w = RollingWindow::new(60_000);
        w.push(Ts(0), Outcome::Arrival);
        w.push(Ts(30_000), Outcome::Arrival);
        w.expire(Ts(59_999));
        assert_eq!(w.tally().arrivals, 2);
        w.expire(Ts(60_000));
        assert_eq!(w.tally().arrivals, 1);
        w.expire(Ts(90_000));
        assert_eq!(w.tally(), &Tally::default());
    }

    #[test]
    fn intervals_align_to_local_quarter_hours() {
        let z = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap(); // +05:30
        let (s, e) = interval_bounds(ts("2026-03-10T04:40:00Z"), 900_000, &z); // 10:10 local
        assert_eq!(s, ts("2026-03-10T04:30:00Z")); // 10:00 local
        assert_eq!(e, ts("2026-03-10T04:45:00Z"));
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let z = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let (s, e) = day_bounds(ts("2026-03-29T12:00:00Z"), &z);
        assert_eq!(e.0 - s.0, 23 * 3_600_000);
        let (s, e) = day_bounds(ts("2026-10-25T12:00:00Z"), &z);
        assert_eq!(e.0 - s.0, 25 * 3_600_000);
        assert_eq!(s, ts("2026-10-24T22:00:00Z"));
    }

    #[test]
    fn intervals_stay_contiguous_across_dst() {
        let z = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        // Walk 2026-10-25 00:00..06:00 UTC in 15-minute intervals.
        let mut t = ts("2026-10-24T22:00:00Z");
        let end = ts("2026-10-25T06:00:00Z");
        let mut n = 0;
        while t < end {
            let (s, e) = interval_bounds(t, 900_000, &z);
            assert_eq!(s, t);
            assert_eq!(e.0 - s.0, 900_000);
            t = e;
            n += 1;
        }
        assert_eq!(n, 32);
    }
}
