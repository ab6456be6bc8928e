//! Schedule adherence: is each agent doing what the workforce plan says,
//! now, and what share of its scheduled time today did it?
//!
//! Why it is built this way:
//! - The plan is a list of slots per agent (`agent,start,end,activity`, a
//!   CSV from the WFM system, at start from `[adherence] schedule` and at
//!   any time through `PUT /api/v1/schedule`). It is handed to the engine
//!   thread through an `arc-swap`: a new plan applies at the next event or
//!   tick (100 ms live), no lock is shared with the engine.
//! - What an agent is doing is read from its state: `logged_out`, the pause
//!   reason when paused (`paused` without one), otherwise `phone`. An
//!   activity adheres when it is the scheduled one or one of its
//!   `equivalent` activities (a `break` may be spent paused as `meal`;
//!   `training` may be spent logged out). A phone activity with `queues`
//!   also wants the agent in one of them (`wrong_queue`).
//! - A mismatch counts only once it has lasted the tolerance (the larger of
//!   the scheduled and the actual activity's): a break that runs a minute
//!   over a 2-minute tolerance is no exception at all; one that runs 5
//!   minutes over counts all 5. The tolerance is a deadline the engine
//!   honours without an event, so the flag goes up at its due time, also in
//!   replay.
//! - Time is counted on event time between evaluations (after every event,
//!   at every slot boundary and at tolerance deadlines), so a replayed day
//!   gives the same percentages as the live one. A slot's time counts to
//!   the local day it started on.
//! - Day totals are kept for the current and the previous local day only
//!   (older days are dropped): bounded memory on a daemon that runs for
//!   months.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::engine_thread::Observer;
use crate::event::AgentStatus;
use crate::state::view::AdherenceMark;
use crate::state::{Agent, Engine};
use crate::time::Ts;

/// Most slots a plan may hold (a WFM export for 2,000 agents over a week at
/// 20 slots a day is 280,000).
pub const MAX_SLOTS: usize = 500_000;

/// One planned activity of one agent, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub start: Ts,
    pub end: Ts,
    pub activity: Arc<str>,
}

/// The plan: every agent's slots, sorted and without overlaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub agents: BTreeMap<String, Vec<Slot>>,
}

impl Plan {
    pub fn slots(&self) -> usize {
        self.agents.values().map(Vec::len).sum()
    }

    /// The slot of `agent` at `t`.
    fn at(&self, agent: &str, t: Ts) -> Option<&Slot> {
        let slots = self.agents.get(agent)?;
        let i = slots.partition_point(|s| s.end <= t);
        slots.get(i).filter(|s| s.start <= t)
    }

    /// The first slot start or end after `t`, over every agent.
    fn next_boundary(&self, t: Ts) -> Option<Ts> {
        self.agents
            .values()
            .filter_map(|slots| {
                let i = slots.partition_point(|s| s.end <= t);
                let s = slots.get(i)?;
                Some(if s.start > t { s.start } else { s.end })
            })
            .min()
    }
}

/// A line of the plan that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanError {
    pub line: usize,
    pub message: String,
}

/// Parses a plan: one slot per line, `agent,start,end,activity`; a first
/// line starting with `agent,` is a header; blank lines and lines starting
/// with `#` are skipped. Times are RFC 3339 or local `YYYY-MM-DD HH:MM[:SS]`
/// in `zone`. Every bad line is reported (unknown agents, `end` not after
/// `start`, overlapping slots of one agent, too many slots).
pub fn parse_plan(
    text: &str,
    zone: &jiff::tz::TimeZone,
    known_agent: &dyn Fn(&str) -> bool,
) -> Result<Plan, Vec<PlanError>> {
    let mut errors = Vec::new();
    let mut plan = Plan::default();
    let mut lines_of: HashMap<String, Vec<usize>> = HashMap::new();
    let mut n = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || (line == 1 && l.starts_with("agent,")) {
            continue;
        }
        let mut err = |m: String| errors.push(PlanError { line, message: m });
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        if f.len() != 4 {
            err(format!(
                "expected 4 fields `agent,start,end,activity`, found {}",
                f.len()
            ));
            continue;
        }
        let (agent, activity) = (f[0], f[3]);
        if agent.is_empty() || activity.is_empty() {
            err("empty agent or activity".into());
            continue;
        }
        if !known_agent(agent) {
            err(format!(
                "unknown agent `{agent}` (no [[agents]] entry has that id)"
            ));
            continue;
        }
        let (Some(start), Some(end)) = (parse_time(f[1], zone), parse_time(f[2], zone)) else {
            err(format!(
                "bad time in `{},{}` (RFC 3339, or local YYYY-MM-DD HH:MM)",
                f[1], f[2]
            ));
            continue;
        };
        if end <= start {
            err(format!("end {} is not after start {}", f[2], f[1]));
            continue;
        }
        n += 1;
        if n > MAX_SLOTS {
            err(format!("more than {MAX_SLOTS} slots"));
            break;
        }
        plan.agents
            .entry(agent.to_string())
            .or_default()
            .push(Slot {
                start,
                end,
                activity: Arc::from(activity),
            });
        lines_of.entry(agent.to_string()).or_default().push(line);
    }
    for (agent, slots) in plan.agents.iter_mut() {
        let lines = &lines_of[agent];
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| (slots[i].start, lines[i]));
        for w in order.windows(2) {
            if slots[w[1]].start < slots[w[0]].end {
                errors.push(PlanError {
                    line: lines[w[1]],
                    message: format!(
                        "agent `{agent}`: this slot overlaps the one on line {}",
                        lines[w[0]]
                    ),
                });
            }
        }
        slots.sort_by_key(|s| s.start);
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

fn parse_time(s: &str, zone: &jiff::tz::TimeZone) -> Option<Ts> {
    if let Some(t) = Ts::parse_rfc3339(s) {
        return Some(t);
    }
    let dt: jiff::civil::DateTime = s.replacen(' ', "T", 1).parse().ok()?;
    let z = dt.to_zoned_datetime(zone.clone()).ok()?;
    let ts = Ts(z.timestamp().as_millisecond());
    ts.in_event_range().then_some(ts)
}

/// One `[[adherence.activities]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub name: String,
    pub tolerance_ms: i64,
    /// Actual activities that also adhere to this one.
    pub equivalent: Vec<String>,
    /// For a phone activity: the agent must be in one of these queues.
    pub queues: Vec<String>,
}

/// `[adherence]`, checked, with its plan loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct AdherenceRules {
    /// Tolerance of activities not listed.
    pub tolerance_ms: i64,
    pub activities: Vec<Activity>,
    /// The plan read from `[adherence] schedule` (empty without one).
    pub plan: Arc<Plan>,
}

impl AdherenceRules {
    fn activity(&self, name: &str) -> Option<&Activity> {
        self.activities.iter().find(|a| a.name == name)
    }

    fn tolerance(&self, name: &str) -> i64 {
        self.activity(name)
            .map(|a| a.tolerance_ms)
            .unwrap_or(self.tolerance_ms)
    }
}

/// What the agent is doing, as the plan names activities.
pub fn actual(agent: &Agent) -> String {
    match agent.status {
        AgentStatus::LoggedOut => "logged_out".into(),
        AgentStatus::Paused => agent.reason.clone().unwrap_or_else(|| "paused".into()),
        _ => "phone".into(),
    }
}

/// `Ok` when `agent` adheres to `scheduled`; else why not.
fn adheres(
    rules: &AdherenceRules,
    engine: &Engine,
    agent: &Agent,
    scheduled: &str,
    actual: &str,
) -> Result<(), String> {
    let act = rules.activity(scheduled);
    let same = actual == scheduled || act.is_some_and(|a| a.equivalent.iter().any(|e| e == actual));
    if same {
        if let Some(a) = act
            && actual == "phone"
            && !a.queues.is_empty()
            && !a.queues.iter().any(|q| {
                engine
                    .find_queue(q)
                    .is_some_and(|qi| agent.queues.contains(&qi))
            })
        {
            return Err("wrong_queue".into());
        }
        return Ok(());
    }
    Err(match agent.status {
        AgentStatus::Paused => format!("paused: {actual}"),
        _ => actual.to_string(),
    })
}

/// An agent's adherence over one local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayAdherence {
    pub agent: String,
    /// Local date `YYYY-MM-DD`.
    pub day: String,
    /// Scheduled seconds so far.
    pub scheduled_s: f64,
    /// Seconds out of adherence (mismatches past their tolerance).
    pub out_s: f64,
    /// `(scheduled - out) / scheduled`; `null` with nothing scheduled.
    pub adherence: Option<f64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    scheduled_ms: i64,
    out_ms: i64,
}

#[derive(Debug, Default)]
struct Track {
    /// Event time up to which this agent is counted.
    counted_to: Option<Ts>,
    /// The scheduled and actual activity since `counted_to`.
    scheduled: Option<Arc<str>>,
    actual: String,
    /// The open mismatch: since when, and whether it passed its tolerance.
    mismatch: Option<(Ts, bool)>,
    /// Mismatch time not yet counted as out (still within the tolerance).
    pending_ms: i64,
    tolerance_ms: i64,
}

/// Where a daemon's `PUT /api/v1/schedule` leaves a new plan, and where the
/// engine thread leaves the day totals.
#[derive(Default)]
pub struct AdherenceHandle {
    pub plan: ArcSwap<Plan>,
    days: ArcSwap<Vec<DayAdherence>>,
}

impl AdherenceHandle {
    /// Per agent, per local day (today and yesterday), as last published.
    pub fn days(&self) -> Arc<Vec<DayAdherence>> {
        self.days.load_full()
    }
}

/// Watches adherence on the engine thread.
pub struct AdherenceObserver {
    rules: AdherenceRules,
    handle: Arc<AdherenceHandle>,
    plan: Arc<Plan>,
    tracks: HashMap<String, Track>,
    /// (local day, agent) -> totals; the last two days.
    days: BTreeMap<(jiff::civil::Date, String), Totals>,
    dirty: bool,
    evaluated: Ts,
    next: Option<Ts>,
    /// Agents evaluated: the plan's and any still carrying a mark (kept
    /// sorted; rebuilt when the plan changes).
    ids: Vec<String>,
    /// Event time of the last published day totals.
    published: Ts,
}

impl AdherenceObserver {
    /// `None` without `[adherence]`.
    pub fn new(cfg: &crate::config::Config) -> Option<(Self, Arc<AdherenceHandle>)> {
        let rules = cfg.adherence.clone()?;
        let handle = Arc::new(AdherenceHandle::default());
        handle.plan.store(rules.plan.clone());
        Some((
            AdherenceObserver {
                plan: rules.plan.clone(),
                rules,
                handle: handle.clone(),
                tracks: HashMap::new(),
                days: BTreeMap::new(),
                dirty: true,
                evaluated: Ts::ZERO,
                next: None,
                ids: Vec::new(),
                published: Ts::ZERO,
            },
            handle,
        ))
    }

    fn evaluate(&mut self, engine: &mut Engine) {
        let now = engine.now();
        let latest = self.handle.plan.load_full();
        if !Arc::ptr_eq(&latest, &self.plan) || self.ids.is_empty() {
            // A new plan: what was counted stays counted; from now on the
            // new slots apply. Agents dropped from the plan stay listed
            // until their mark is cleared.
            self.plan = latest;
            let mut ids: std::collections::BTreeSet<String> =
                self.plan.agents.keys().cloned().collect();
            ids.extend(self.tracks.keys().cloned());
            self.ids = ids.into_iter().collect();
            self.dirty = true;
        }
        self.evaluated = now;
        let zone = engine.zone().clone();
        let mut next: Option<Ts> = self.plan.next_boundary(now);
        // Every agent was counted to the same time, mostly: one zone
        // conversion per evaluation, not per agent.
        let mut day_of: Option<(Ts, jiff::civil::Date)> = None;
        let ids = std::mem::take(&mut self.ids);
        for id in &ids {
            let id = id.as_str();
            let track = self.tracks.entry(id.to_string()).or_default();
            // Count (counted_to, now] with what held since counted_to.
            if let (Some(from), Some(_)) = (track.counted_to, &track.scheduled)
                && now > from
            {
                self.dirty = true;
                let dt = now.since(from);
                let day = match day_of {
                    Some((t, d)) if t == from => d,
                    _ => {
                        let d = local_day(from, &zone);
                        day_of = Some((from, d));
                        d
                    }
                };
                let totals = self.days.entry((day, id.to_string())).or_default();
                totals.scheduled_ms += dt;
                if let Some((since, flagged)) = track.mismatch.as_mut() {
                    if *flagged {
                        totals.out_ms += dt;
                    } else {
                        track.pending_ms += dt;
                        if now.since(*since) >= track.tolerance_ms {
                            *flagged = true;
                            totals.out_ms += track.pending_ms;
                            track.pending_ms = 0;
                        }
                    }
                }
            }
            track.counted_to = Some(now);
            // What holds from now on.
            let slot = self.plan.at(id, now).cloned();
            let ai = engine.find_agent(id);
            let (actual, verdict) = match (&slot, ai) {
                (Some(s), Some(a)) => {
                    let ag = engine.agent(a);
                    let act = actual(ag);
                    let v = adheres(&self.rules, engine, ag, &s.activity, &act);
                    (act, Some(v))
                }
                (Some(s), None) => (
                    "logged_out".to_string(),
                    Some(if *s.activity == *"logged_out" {
                        Ok(())
                    } else {
                        Err("logged_out".to_string())
                    }),
                ),
                (None, _) => (String::new(), None),
            };
            match &verdict {
                Some(Err(_)) => {
                    let tol = slot
                        .as_ref()
                        .map(|s| {
                            self.rules
                                .tolerance(&s.activity)
                                .max(self.rules.tolerance(&actual))
                        })
                        .unwrap_or(0);
                    track.tolerance_ms = tol;
                    let (since, flagged) = *track.mismatch.get_or_insert((now, false));
                    if !flagged && now.since(since) >= tol {
                        track.mismatch = Some((since, true));
                        let day = local_day(now, &zone);
                        self.days.entry((day, id.to_string())).or_default().out_ms +=
                            track.pending_ms;
                        track.pending_ms = 0;
                    }
                    if let Some((since, false)) = track.mismatch {
                        let due = since.plus_ms(tol.max(1));
                        next = Some(next.map_or(due, |n| n.min(due)));
                    }
                }
                _ => {
                    track.mismatch = None;
                    track.pending_ms = 0;
                }
            }
            track.scheduled = slot.as_ref().map(|s| s.activity.clone());
            track.actual = actual.clone();
            let mark = match (&slot, &verdict) {
                (Some(s), Some(v)) => Some(AdherenceMark {
                    scheduled: s.activity.to_string(),
                    actual,
                    in_adherence: !matches!(track.mismatch, Some((_, true))),
                    out_since: track.mismatch.map(|(t, _)| t),
                    why: v.clone().err(),
                }),
                _ => None,
            };
            if let Some(a) = ai {
                engine.set_adherence(a, mark);
            }
        }
        self.ids = ids;
        self.next = next.filter(|n| *n > now);
        // Keep today and yesterday.
        let today = local_day(now, &zone);
        if let Ok(yesterday) = today.yesterday() {
            self.days.retain(|(d, _), _| *d >= yesterday);
        }
    }

    fn publish(&mut self, now: Ts) {
        self.published = now;
        let rows = self
            .days
            .iter()
            .map(|((day, agent), t)| DayAdherence {
                agent: agent.clone(),
                day: day.to_string(),
                scheduled_s: t.scheduled_ms as f64 / 1000.0,
                out_s: t.out_ms as f64 / 1000.0,
                adherence: (t.scheduled_ms > 0)
                    .then(|| (t.scheduled_ms - t.out_ms) as f64 / t.scheduled_ms as f64),
            })
            .collect();
        self.handle.days.store(Arc::new(rows));
        self.dirty = false;
    }
}

fn local_day(t: Ts, zone: &jiff::tz::TimeZone) -> jiff::civil::Date {
    t.to_jiff().to_zoned_datetime(zone.clone()).date()
}

impl Observer for AdherenceObserver {
    fn after_event(&mut self, engine: &mut Engine, _queue: Option<usize>) {
        self.evaluate(engine);
    }

    /// Day totals move with every event: published at most once per
    /// second of event time (a replay calls this after every event), and
    /// when the engine stops.
    fn before_publish(&mut self, engine: &mut Engine) -> Vec<Arc<crate::escalation::Entry>> {
        let now = engine.now();
        if self.dirty && now.since(self.published) >= 1_000 {
            self.publish(now);
        }
        Vec::new()
    }

    fn reconfigure(&mut self, engine: &mut Engine, config: &crate::config::Config) {
        if let Some(r) = config.adherence.clone() {
            if r.plan != self.rules.plan {
                self.handle.plan.store(r.plan.clone());
            }
            self.rules = r;
        }
        self.evaluate(engine);
    }

    fn on_stop(&mut self, engine: &mut Engine) {
        self.publish(engine.now());
    }

    fn next_deadline(&self) -> Option<Ts> {
        self.next.filter(|n| *n > self.evaluated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_reports_every_bad_line() {
        let text = "agent,start,end,activity\n\
            a1,2026-11-23 09:00,2026-11-23 12:00,phone\n\
            a1,2026-11-23 11:00,2026-11-23 11:15,break\n\
            zz,2026-11-23 09:00,2026-11-23 12:00,phone\n\
            a1,2026-11-23 13:00,2026-11-23 12:00,phone\n\
            a1,09:00,10:00,phone\n\
            a1,2026-11-23T14:00:00+08:00,2026-11-23T15:00:00+08:00\n";
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let e = parse_plan(text, &zone, &|a| a == "a1").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7], "{e:#?}");
        assert!(e[0].message.contains("overlaps the one on line 2"));
        assert!(e[1].message.contains("unknown agent `zz`"));
    }

    #[test]
    fn local_and_rfc3339_times_are_the_same_instant() {
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let p = parse_plan(
            "a1,2026-11-23 09:00,2026-11-23T10:00:00+08:00,phone\n",
            &zone,
            &|_| true,
        )
        .unwrap();
        let s = &p.agents["a1"][0];
        assert_eq!(s.end.since(s.start), 3_600_000);
        assert_eq!(p.at("a1", s.start).map(|s| &*s.activity), Some("phone"));
        assert_eq!(p.at("a1", s.end), None);
        assert_eq!(p.next_boundary(s.start), Some(s.end));
    }
}
