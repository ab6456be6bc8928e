//! One queue's live state: who is waiting since when, who is a member in
//! which state, and the three counting windows.

use std::collections::HashMap;
use std::sync::Arc;

use super::erlang;
use super::kpi::{self, WindowView};
use super::params::QueueParams;
use super::view::{AgentsByState, EscalationStatus, QueueTotals};
use super::window::{FixedWindow, Outcome, RollingWindow, Tally, day_bounds, interval_bounds};
use crate::event::{AgentStatus, ExitReason};
use crate::time::Ts;

/// Longest gap of intervals that are closed one by one (7 days of 15 min);
/// a jump further than that (a clock error, a week-long pause) skips ahead
/// without writing empty intervals.
const MAX_CATCH_UP_INTERVALS: i64 = 7 * 96;

/// A closed interval's figures (interval history, the `report` command).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IntervalRecord {
    pub queue: String,
    pub start: Ts,
    pub end: Ts,
    pub window: WindowView,
    /// Time-weighted mean of logged-in members over the interval.
    pub staffed_agents: f64,
    /// Erlang C agents needed for the interval's arrivals and AHT.
    pub required_agents: Option<u32>,
    /// From when the figures were observed: later than `start` when the
    /// daemon (or a replay) began inside the interval, so the figures miss
    /// what came before.
    pub observed_from: Ts,
}

#[derive(Debug)]
pub struct Queue {
    pub name: Arc<str>,
    pub params: QueueParams,
    /// Waiting callers: call id -> join time.
    pub waiting: HashMap<String, Ts>,
    /// Member agent indices (small; kept as a vector).
    pub members: Vec<usize>,
    /// Members by [`AgentStatus::index`].
    pub counts: [u32; 6],
    pub rolling: RollingWindow,
    pub interval: FixedWindow,
    pub today: FixedWindow,
    /// Logged-in member-milliseconds accrued in the current interval.
    pub(super) staffed_ms: i64,
    pub(super) staffed_since: Ts,
    pub totals: QueueTotals,
    pub escalation: Option<EscalationStatus>,
    /// When the engine first saw this queue (Erlang C's arrival rate uses
    /// the shorter of the rolling window and this age).
    pub first_seen: Ts,
    /// One-minute samples for the last hours.
    pub trend: super::trend::Trend,
}

impl Queue {
    pub fn new(name: &str, params: QueueParams, now: Ts, zone: &jiff::tz::TimeZone) -> Self {
        let (is, ie) = interval_bounds(now, params.interval_ms, zone);
        let (ds, de) = day_bounds(now, zone);
        let mut totals = QueueTotals::default();
        for r in ExitReason::ALL {
            totals.exited.insert(r.as_str(), 0);
        }
        Queue {
            name: Arc::from(name),
            rolling: RollingWindow::new(params.rolling_ms),
            params,
            waiting: HashMap::new(),
            members: Vec::new(),
            counts: [0; 6],
            interval: FixedWindow::new(is, ie),
            today: FixedWindow::new(ds, de),
            staffed_ms: 0,
            staffed_since: now,
            totals,
            escalation: None,
            first_seen: now,
            trend: Default::default(),
        }
    }

    /// Adds an outcome to every window and the totals.
    pub fn record(&mut self, ts: Ts, o: Outcome) {
        self.rolling.push(ts, o);
        self.interval.tally.add(&o);
        self.today.tally.add(&o);
        let t = &mut self.totals;
        match o {
            Outcome::Answered { in_sl, wait_ms } => {
                t.wait.record(wait_ms);
                t.offered += 1;
                t.answered += 1;
                t.answered_in_sl += in_sl as u64;
            }
            Outcome::Abandoned { short, .. } => {
                t.offered += 1;
                t.abandoned += 1;
                t.short_abandoned += short as u64;
            }
            Outcome::Exited { reason, .. } => {
                t.offered += 1;
                *t.exited.entry(reason.as_str()).or_insert(0) += 1;
            }
            Outcome::Arrival | Outcome::Handled { .. } | Outcome::AfterCallWork { .. } => {}
        }
    }

    /// A caller who joined at `joined` answered at `at`.
    pub fn classify_answer(&self, joined: Ts, at: Ts) -> Outcome {
        Outcome::Answered {
            wait_ms: at.since(joined),
            in_sl: self.within_sl(joined, at),
        }
    }

    /// A caller who joined at `joined` hung up at `at`.
    pub fn classify_abandon(&self, joined: Ts, at: Ts) -> Outcome {
        let wait_ms = at.since(joined);
        Outcome::Abandoned {
            wait_ms,
            in_sl: self.within_sl(joined, at),
            short: wait_ms < self.params.short_abandon_ms,
        }
    }

    fn within_sl(&self, joined: Ts, at: Ts) -> bool {
        self.params.sl_round.wait_ms(joined.0, at.0) <= self.params.sl_threshold_ms
    }

    pub fn logged_in(&self) -> u32 {
        self.counts.iter().sum::<u32>() - self.counts[AgentStatus::LoggedOut.index()]
    }

    /// Accrues staffed time up to `now`; call before any change of
    /// membership or member state.
    pub fn accrue_staff(&mut self, now: Ts) {
        let from = self.staffed_since.max(self.interval.start);
        if now > from {
            self.staffed_ms += self.logged_in() as i64 * (now.0 - from.0);
        }
        if now > self.staffed_since {
            self.staffed_since = now;
        }
    }

    pub fn count_member(&mut self, now: Ts, status: AgentStatus, delta: i32) {
        self.accrue_staff(now);
        let c = &mut self.counts[status.index()];
        *c = c.saturating_add_signed(delta);
    }

    pub fn longest_wait_ms(&self, now: Ts) -> i64 {
        self.oldest_since().map(|t| now.since(t)).unwrap_or(0)
    }

    pub fn oldest_since(&self) -> Option<Ts> {
        self.waiting.values().min().copied()
    }

    pub fn agents(&self) -> AgentsByState {
        AgentsByState::from_counts(&self.counts)
    }

    /// Erlang C agents for the queue's target from the rolling window.
    pub fn required_agents(&self, now: Ts) -> Option<u32> {
        let t = self.rolling.tally();
        let span_ms = self
            .rolling
            .len_ms()
            .min(now.since(self.first_seen))
            .max(60_000);
        let aht = kpi::aht_s(t).or_else(|| kpi::aht_s(&self.today.tally))?;
        let rate = t.arrivals as f64 / (span_ms as f64 / 1000.0);
        erlang::required_agents(
            rate,
            aht,
            self.params.sl_threshold_ms as f64 / 1000.0,
            self.params.sl_target,
        )
    }

    /// Closes every interval that ended at or before `now` and rolls
    /// today at local midnight. Returns the closed intervals.
    pub fn roll(&mut self, now: Ts, zone: &jiff::tz::TimeZone) -> Vec<IntervalRecord> {
        let mut closed = Vec::new();
        if now >= self.interval.end {
            let behind = (now.0 - self.interval.end.0) / self.params.interval_ms.max(1);
            if behind > MAX_CATCH_UP_INTERVALS {
                self.accrue_staff(self.interval.end);
                closed.push(self.close_interval());
                let (s, e) = interval_bounds(now, self.params.interval_ms, zone);
                self.interval = FixedWindow::new(s, e);
                self.staffed_since = s;
            }
            while now >= self.interval.end {
                self.accrue_staff(self.interval.end);
                closed.push(self.close_interval());
                let (s, e) = interval_bounds(self.interval.end, self.params.interval_ms, zone);
                self.interval = FixedWindow::new(s, e);
                self.staffed_since = s;
            }
        }
        if now >= self.today.end {
            let (s, e) = day_bounds(now, zone);
            self.today = FixedWindow::new(s, e);
        }
        closed
    }

    fn close_interval(&mut self) -> IntervalRecord {
        let iv = self.interval;
        let len_ms = (iv.end.0 - iv.start.0).max(1);
        let staffed = self.staffed_ms as f64 / len_ms as f64;
        self.staffed_ms = 0;
        let t: &Tally = &iv.tally;
        let required = kpi::aht_s(t)
            .or_else(|| kpi::aht_s(self.rolling.tally()))
            .and_then(|aht| {
                erlang::required_agents(
                    t.arrivals as f64 / (len_ms as f64 / 1000.0),
                    aht,
                    self.params.sl_threshold_ms as f64 / 1000.0,
                    self.params.sl_target,
                )
            });
        IntervalRecord {
            queue: self.name.to_string(),
            start: iv.start,
            end: iv.end,
            window: WindowView::from_tally(t, self.params.sl_formula),
            staffed_agents: (staffed * 100.0).round() / 100.0,
            required_agents: required,
            observed_from: iv.start,
        }
    }
}
