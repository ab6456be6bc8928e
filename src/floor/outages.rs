//! Source outages on the engine's clock, for the shift handover: which
//! source was down from when to when.
//!
//! Source health is kept by the sources themselves (connected or not, now:
//! [`crate::sources::health`]) and has no history. The handover observer
//! samples it once per second of event time and keeps the transitions
//! here, so an outage is stamped within a second of the engine's clock
//! and a shift's record can list those that overlap it. Only a source that
//! has been connected and then is not counts as down from then; one that
//! never connected counts as down from the first sample once
//! [`NEVER_UP_AFTER_MS`] have passed (it starts connecting with the
//! daemon). Bounded: the most recent [`MAX_OUTAGES`] ended outages are kept.
//!
//! Every transition is also handed out as an [`OutageMark`] for the audit
//! database (the handover observer appends them), and read back at start
//! with [`OutageLog::restore`], so a restart in the middle of a shift still
//! hands over the outages before it. An outage open when the daemon
//! stopped stays open until the first sample after the start shows the
//! source connected (or gone from the configuration): acdmon cannot tell
//! when, in between, it came back.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::sources::health::HealthRegistry;
use crate::time::Ts;

/// Ended outages kept.
pub const MAX_OUTAGES: usize = 1_000;
/// A source that never connected is down once this much event time passed.
pub const NEVER_UP_AFTER_MS: i64 = 30_000;
const SAMPLE_EVERY_MS: i64 = 1_000;

/// One source down from `from` to `to` (`None`: still down).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    pub source: String,
    pub from: Ts,
    pub to: Option<Ts>,
    /// The source's last error when it went down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One transition, as stored: `source` went down (`down`) or came back at
/// `ts`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutageMark {
    pub source: String,
    pub ts: Ts,
    pub down: bool,
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct OutageLog {
    /// Transitions not yet taken by [`OutageLog::take_marks`].
    marks: Vec<OutageMark>,
    first: Option<Ts>,
    sampled: Option<Ts>,
    ever_up: HashMap<String, bool>,
    open: HashMap<String, Outage>,
    ended: VecDeque<Outage>,
}

impl OutageLog {
    /// Samples the sources' health at event time `now` (at most once a
    /// second).
    pub fn sample(&mut self, reg: &HealthRegistry, now: Ts) {
        if self.sampled.is_some_and(|t| now.since(t) < SAMPLE_EVERY_MS) {
            return;
        }
        self.sampled = Some(now);
        let first = *self.first.get_or_insert(now);
        let all = reg.all();
        for h in &all {
            let name = h.name.to_string();
            let up = h.connected();
            let ever = self.ever_up.entry(name.clone()).or_insert(false);
            *ever |= up;
            let ever = *ever;
            match (up, self.open.contains_key(&name)) {
                (true, true) => self.close(&name, now),
                (false, false) if ever || now.since(first) >= NEVER_UP_AFTER_MS => {
                    let from = if ever { now } else { first };
                    self.marks.push(OutageMark {
                        source: name.clone(),
                        ts: from,
                        down: true,
                        error: h.last_error(),
                    });
                    self.open.insert(
                        name.clone(),
                        Outage {
                            source: name,
                            from,
                            to: None,
                            error: h.last_error(),
                        },
                    );
                }
                _ => {}
            }
        }
        // A source removed (by a reload) is no longer down.
        let gone: Vec<String> = self
            .open
            .keys()
            .filter(|n| !all.iter().any(|h| &*h.name == n.as_str()))
            .cloned()
            .collect();
        for n in gone {
            self.close(&n, now);
        }
    }

    fn close(&mut self, name: &str, now: Ts) {
        if let Some(mut o) = self.open.remove(name) {
            o.to = Some(now);
            self.marks.push(OutageMark {
                source: o.source.clone(),
                ts: now,
                down: false,
                error: None,
            });
            self.push(o);
        }
    }

    /// The transitions since the last call, oldest first (to be stored).
    pub fn take_marks(&mut self) -> Vec<OutageMark> {
        std::mem::take(&mut self.marks)
    }

    /// Rebuilds the outages from stored transitions (oldest first), before
    /// the first sample.
    pub fn restore(&mut self, marks: &[OutageMark]) {
        for m in marks {
            if m.down {
                self.open.entry(m.source.clone()).or_insert(Outage {
                    source: m.source.clone(),
                    from: m.ts,
                    to: None,
                    error: m.error.clone(),
                });
            } else if let Some(mut o) = self.open.remove(&m.source) {
                o.to = Some(m.ts);
                self.push(o);
            }
        }
    }

    fn push(&mut self, o: Outage) {
        if self.ended.len() == MAX_OUTAGES {
            self.ended.pop_front();
        }
        self.ended.push_back(o);
    }

    /// Outages that overlap `[start, end)`, clipped to it; `to` is `None`
    /// for one still going on at `end`.
    pub fn during(&self, start: Ts, end: Ts) -> Vec<Outage> {
        let mut out: Vec<Outage> = self
            .ended
            .iter()
            .chain(self.open.values())
            .filter(|o| o.from < end && o.to.is_none_or(|t| t > start))
            .map(|o| Outage {
                from: o.from.max(start),
                to: o.to.filter(|t| *t < end),
                ..o.clone()
            })
            .collect();
        out.sort_by(|a, b| (a.from, &a.source).cmp(&(b.from, &b.source)));
        out
    }
}
