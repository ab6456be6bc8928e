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

mod plan;

pub use plan::*;

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

impl DayAdherence {
    pub fn new(agent: String, day: String, scheduled_ms: i64, out_ms: i64) -> Self {
        DayAdherence {
            agent,
            day,
            scheduled_s: scheduled_ms as f64 / 1000.0,
            out_s: out_ms as f64 / 1000.0,
            adherence: (scheduled_ms > 0)
                .then(|| (scheduled_ms - out_ms) as f64 / scheduled_ms as f64),
        }
    }
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
    /// The scheduled activity since `counted_to`, and the start of its slot.
    scheduled: Option<(Arc<str>, Ts)>,
    /// The local day that slot started on (its time counts to that day).
    day: Option<jiff::civil::Date>,
    /// The open mismatch: since when, and whether it passed its tolerance.
    mismatch: Option<(Ts, bool)>,
    /// Mismatch time not yet counted as out (still within the tolerance).
    pending_ms: i64,
    tolerance_ms: i64,
    /// What this process counted, per local day (today and yesterday).
    totals: Vec<(jiff::civil::Date, Totals)>,
}

impl Track {
    fn totals_mut(&mut self, day: jiff::civil::Date) -> &mut Totals {
        let i = match self.totals.iter().position(|(d, _)| *d == day) {
            Some(i) => i,
            None => {
                self.totals.push((day, Totals::default()));
                self.totals.len() - 1
            }
        };
        &mut self.totals[i].1
    }

    /// Counts `(counted_to, now]` with what held since `counted_to` (the
    /// agent is visited whenever that changes, so nothing changed in
    /// between).
    fn count_to(&mut self, now: Ts) {
        if let (Some(from), Some(_), Some(day)) = (self.counted_to, &self.scheduled, self.day)
            && now > from
        {
            let dt = now.since(from);
            let mut out = 0;
            if let Some((since, flagged)) = self.mismatch.as_mut() {
                if *flagged {
                    out = dt;
                } else {
                    self.pending_ms += dt;
                    if now.since(*since) >= self.tolerance_ms {
                        *flagged = true;
                        out = std::mem::take(&mut self.pending_ms);
                    }
                }
            }
            let t = self.totals_mut(day);
            t.scheduled_ms += dt;
            t.out_ms += out;
        }
        self.counted_to = Some(now);
    }
}

/// Where a daemon's `PUT /api/v1/schedule` leaves a new plan and the
/// adherence-exception routes the approved exceptions, and where the engine
/// thread leaves the day totals.
#[derive(Default)]
pub struct AdherenceHandle {
    pub plan: ArcSwap<Plan>,
    /// Approved exceptions not withdrawn (see [`super::exceptions`]).
    pub exceptions: ArcSwap<Vec<super::exceptions::Exception>>,
    days: ArcSwap<Vec<DayAdherence>>,
    seats: ArcSwap<Vec<QueueSeats>>,
    /// Where exceptions are stored (the daemon's audit database).
    store: std::sync::OnceLock<Arc<crate::store::Store>>,
}

impl AdherenceHandle {
    /// Per agent, per local day (today and yesterday), as last published.
    pub fn days(&self) -> Arc<Vec<DayAdherence>> {
        self.days.load_full()
    }

    /// Per queue, as last published: scheduled seats, logged in, required.
    pub fn seats(&self) -> Arc<Vec<QueueSeats>> {
        self.seats.load_full()
    }

    /// Stores an approved exception and applies it (at the engine's next
    /// event or tick).
    pub fn approve(
        &self,
        e: super::exceptions::Exception,
    ) -> Result<super::exceptions::Exception, String> {
        let mut list: Vec<_> = self.exceptions.load().as_ref().clone();
        if list.len() >= super::exceptions::MAX_OPEN {
            return Err(format!(
                "{} exceptions are open already; withdraw some first",
                list.len()
            ));
        }
        let stored = match self.store.get() {
            Some(s) => s.insert_exception(&e).map_err(|e| e.to_string())?,
            None => {
                let id = list.iter().map(|x| x.id).max().unwrap_or(0) + 1;
                super::exceptions::Exception { id, ..e }
            }
        };
        list.push(stored.clone());
        self.exceptions.store(Arc::new(list));
        Ok(stored)
    }

    /// Withdraws exception `id`; `Ok(false)` when there is no such open one.
    pub fn withdraw(&self, id: u64, by: &str) -> Result<bool, String> {
        let list = self.exceptions.load_full();
        if !list.iter().any(|e| e.id == id) {
            return Ok(false);
        }
        if let Some(s) = self.store.get() {
            s.withdraw_exception(id, by, Ts::now())
                .map_err(|e| e.to_string())?;
        }
        let rest: Vec<_> = list.iter().filter(|e| e.id != id).cloned().collect();
        self.exceptions.store(Arc::new(rest));
        Ok(true)
    }
}

/// One queue's seats this interval: planned against there against needed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSeats {
    pub queue: String,
    /// The queue's current interval.
    pub interval_start: Ts,
    pub interval_end: Ts,
    /// Agents whose plan has them on a seat of this queue now (see
    /// [`AdherenceObserver`]'s seat rule in docs/floor.md).
    pub scheduled: u32,
    /// Members logged in now.
    pub logged_in: u32,
    /// Erlang C agents needed for the queue's SL target (the engine's
    /// `required_agents`); `null` until there is traffic to size.
    pub required: Option<u32>,
    /// `scheduled - required`: negative when the plan is short.
    pub scheduled_minus_required: Option<i64>,
}

/// The next start or end of any shift after `now`.
fn next_edge(shifts: &[super::shift::Shift], now: Ts, zone: &jiff::tz::TimeZone) -> Option<Ts> {
    let end = super::shift::current(shifts, now, zone).map(|s| s.end);
    let start = super::shift::next_starting(shifts, now, zone);
    end.into_iter().chain(start).filter(|t| *t > now).min()
}

/// Day totals are saved this often (event time).
const SAVE_EVERY_MS: i64 = 60_000;

/// Watches adherence on the engine thread.
///
/// Work per event is proportional to the agents the event changed, not to
/// the agents scheduled: the engine lists the agents it touched
/// ([`Engine::take_touched`]), and every time-based change (a slot starting
/// or ending, a tolerance running out) is a per-agent deadline in an
/// ordered index. Everyone is looked at only when the plan or the
/// exceptions change, and their time is counted up to the present once per
/// published second.
pub struct AdherenceObserver {
    rules: AdherenceRules,
    handle: Arc<AdherenceHandle>,
    plan: Arc<Plan>,
    exceptions: Arc<Vec<super::exceptions::Exception>>,
    /// Agents evaluated (the plan's and any ever tracked), sorted; `tracks`
    /// and `due_of` are indexed alike.
    ids: Vec<String>,
    index: HashMap<String, usize>,
    tracks: Vec<Track>,
    /// Each agent's next time-based change, indexed both ways.
    due_of: Vec<Option<Ts>>,
    dues: std::collections::BTreeSet<(Ts, usize)>,
    /// The next start or end of an exception: everyone is looked at then.
    exception_edge: Option<Ts>,
    /// (local day, agent) -> totals saved before a restart.
    restored: BTreeMap<(jiff::civil::Date, String), Totals>,
    touched: Vec<usize>,
    evaluated: Ts,
    /// Event time of the last published day totals.
    published: Ts,
    /// Where day totals are saved (the daemon's audit database).
    store: Option<Arc<crate::store::Store>>,
    /// Event time of the last save; `None` before the first evaluation.
    saved: Option<Ts>,
    /// `[[shifts]]`: the day totals are published exactly at each shift's
    /// start and end, so a handover's per-shift adherence (the totals at
    /// its end minus those at its start) is exact, not a second behind.
    shifts: Vec<super::shift::Shift>,
    zone: jiff::tz::TimeZone,
    /// The next shift start or end after `evaluated`.
    next_edge: Option<Ts>,
}

impl AdherenceObserver {
    /// `None` without `[adherence]`.
    pub fn new(cfg: &crate::config::Config) -> Option<(Self, Arc<AdherenceHandle>)> {
        let rules = cfg.adherence.clone()?;
        let handle = Arc::new(AdherenceHandle::default());
        handle.plan.store(rules.plan.clone());
        Some((
            AdherenceObserver {
                plan: Arc::new(Plan::default()),
                exceptions: Arc::new(Vec::new()),
                rules,
                handle: handle.clone(),
                ids: Vec::new(),
                index: HashMap::new(),
                tracks: Vec::new(),
                due_of: Vec::new(),
                dues: Default::default(),
                exception_edge: None,
                restored: BTreeMap::new(),
                touched: Vec::new(),
                evaluated: Ts::ZERO,
                published: Ts::ZERO,
                store: None,
                saved: None,
                shifts: cfg.shifts.clone(),
                zone: cfg.zone.clone(),
                next_edge: None,
            },
            handle,
        ))
    }

    /// Saves the day totals to `store`, counts on from those saved before a
    /// restart, and stores approved exceptions there (the open ones are
    /// read back now).
    pub fn with_store(mut self, store: Arc<crate::store::Store>) -> Self {
        match store.open_exceptions(Ts::now().plus_ms(-86_400_000)) {
            Ok(list) => self.handle.exceptions.store(Arc::new(list)),
            Err(e) => tracing::error!(error = %e, "cannot read the adherence exceptions"),
        }
        let _ = self.handle.store.set(store.clone());
        self.store = Some(store);
        self
    }

    /// A new plan: the agent list is rebuilt (tracks kept by id).
    fn replan(&mut self) {
        let mut ids: std::collections::BTreeSet<String> =
            self.plan.agents.keys().cloned().collect();
        ids.extend(self.ids.iter().cloned());
        let mut old: HashMap<String, Track> =
            self.ids.drain(..).zip(self.tracks.drain(..)).collect();
        self.ids = ids.into_iter().collect();
        self.tracks = self
            .ids
            .iter()
            .map(|id| old.remove(id).unwrap_or_default())
            .collect();
        self.index = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        self.due_of = vec![None; self.ids.len()];
        self.dues.clear();
    }

    fn evaluate(&mut self, engine: &mut Engine) {
        let now = engine.now();
        if self.saved.is_none() {
            self.saved = Some(now);
            self.restore(now, &engine.zone().clone());
        }
        self.evaluated = now;
        let mut all = engine.take_touched(&mut self.touched);
        let latest = self.handle.plan.load_full();
        if !Arc::ptr_eq(&latest, &self.plan) {
            // A new plan: what was counted stays counted; from now on the
            // new slots apply.
            self.plan = latest;
            self.replan();
            all = true;
        }
        let exceptions = self.handle.exceptions.load_full();
        if !Arc::ptr_eq(&exceptions, &self.exceptions) {
            self.exceptions = exceptions;
            all = true;
        }
        if self.exception_edge.is_some_and(|t| t <= now) {
            all = true;
        }
        if all {
            self.exception_edge = self
                .exceptions
                .iter()
                .flat_map(|e| [e.from, e.to])
                .filter(|t| *t > now)
                .min();
            let zone = engine.zone().clone();
            for i in 0..self.ids.len() {
                self.visit(engine, i, now, &zone);
            }
            return;
        }
        let mut visit: Vec<usize> = Vec::new();
        for &a in &self.touched {
            if let Some(&i) = self.index.get(&*engine.agent(a).id) {
                visit.push(i);
            }
        }
        while let Some(&(t, i)) = self.dues.first()
            && t <= now
        {
            self.dues.remove(&(t, i));
            self.due_of[i] = None;
            visit.push(i);
        }
        if visit.is_empty() {
            return;
        }
        visit.sort_unstable();
        visit.dedup();
        let zone = engine.zone().clone();
        for i in visit {
            self.visit(engine, i, now, &zone);
        }
    }

    /// Counts agent `i`'s time up to `now`, judges what holds from now on,
    /// sets its mark and its next deadline.
    fn visit(&mut self, engine: &mut Engine, i: usize, now: Ts, zone: &jiff::tz::TimeZone) {
        let id = self.ids[i].as_str();
        let track = &mut self.tracks[i];
        track.count_to(now);
        // What holds from now on.
        let slots = self.plan.agents.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let k = slots.partition_point(|s| s.end <= now);
        let slot = slots.get(k).filter(|s| s.start <= now);
        let boundary = slots
            .get(k)
            .map(|s| if s.start > now { s.start } else { s.end });
        let ai = engine.find_agent(id);
        let excused = ai.and_then(|a| {
            let groups = &engine.agent(a).groups;
            self.exceptions.iter().find(|e| e.covers(id, groups, now))
        });
        let (actual, verdict) = match (slot, ai) {
            (Some(s), Some(a)) => {
                let ag = engine.agent(a);
                let act = actual(ag);
                let v = match excused {
                    Some(_) => Ok(()),
                    None => adheres(&self.rules, engine, ag, &s.activity, &act),
                };
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
        let mut due = boundary;
        match &verdict {
            Some(Err(_)) => {
                let tol = slot
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
                    if let Some(day) = track.day.or_else(|| slot.map(|s| local_day(s.start, zone)))
                    {
                        track.totals_mut(day).out_ms += std::mem::take(&mut track.pending_ms);
                    }
                }
                if let Some((since, false)) = track.mismatch {
                    let d = since.plus_ms(tol.max(1));
                    due = Some(due.map_or(d, |x| x.min(d)));
                }
            }
            _ => {
                track.mismatch = None;
                track.pending_ms = 0;
            }
        }
        let start = slot.map(|s| s.start);
        if track.scheduled.as_ref().map(|(_, t)| *t) != start {
            track.day = slot.map(|s| local_day(s.start, zone));
        }
        track.scheduled = slot.map(|s| (s.activity.clone(), s.start));
        let mark = match (slot, &verdict) {
            (Some(s), Some(v)) => Some(AdherenceMark {
                scheduled: s.activity.to_string(),
                actual,
                in_adherence: !matches!(track.mismatch, Some((_, true))),
                out_since: track.mismatch.map(|(t, _)| t),
                why: v.clone().err(),
                exception: excused.map(|e| e.reason.clone()),
            }),
            _ => None,
        };
        if let Some(a) = ai {
            engine.set_adherence(a, mark);
        }
        let due = due.filter(|d| *d > now);
        if self.due_of[i] != due {
            if let Some(t) = self.due_of[i] {
                self.dues.remove(&(t, i));
            }
            if let Some(t) = due {
                self.dues.insert((t, i));
            }
            self.due_of[i] = due;
        }
    }

    /// Scheduled seats per queue: an agent whose slot now is `phone`, or an
    /// activity with `queues`, holds a seat of each of those queues (of
    /// each queue it is a member of, for `phone` without `queues`).
    fn seats(&self, engine: &Engine) -> Vec<QueueSeats> {
        let mut scheduled = vec![0u32; engine.queue_count()];
        for (id, t) in self.ids.iter().zip(&self.tracks) {
            let Some((activity, _)) = &t.scheduled else {
                continue;
            };
            let queues = self
                .rules
                .activity(activity)
                .map(|a| a.queues.as_slice())
                .unwrap_or(&[]);
            if !queues.is_empty() {
                for q in queues.iter().filter_map(|q| engine.find_queue(q)) {
                    scheduled[q] += 1;
                }
            } else if **activity == *"phone"
                && let Some(a) = engine.find_agent(id)
            {
                for &q in &engine.agent(a).queues {
                    scheduled[q] += 1;
                }
            }
        }
        (0..engine.queue_count())
            .map(|q| {
                let queue = engine.queue(q);
                let required = engine.required_agents(q);
                QueueSeats {
                    queue: queue.name.to_string(),
                    interval_start: queue.interval.start,
                    interval_end: queue.interval.end,
                    scheduled: scheduled[q],
                    logged_in: engine.figures(q).logged_in.round() as u32,
                    required,
                    scheduled_minus_required: required.map(|r| scheduled[q] as i64 - r as i64),
                }
            })
            .collect()
    }

    fn publish(&mut self, engine: &Engine) {
        let (now, zone) = (engine.now(), engine.zone().clone());
        let zone = &zone;
        self.handle.seats.store(Arc::new(self.seats(engine)));
        self.published = now;
        // Everyone's time up to now (no judging: nothing changed unseen).
        let today = local_day(now, zone);
        let yesterday = today.yesterday().unwrap_or(today);
        let mut days = self.restored.clone();
        for (id, t) in self.ids.iter().zip(self.tracks.iter_mut()) {
            t.count_to(now);
            t.totals.retain(|(d, _)| *d >= yesterday);
            for (d, tot) in &t.totals {
                let e = days.entry((*d, id.clone())).or_default();
                e.scheduled_ms += tot.scheduled_ms;
                e.out_ms += tot.out_ms;
            }
        }
        self.restored.retain(|(d, _), _| *d >= yesterday);
        let rows = days
            .iter()
            .filter(|((d, _), _)| *d >= yesterday)
            .map(|((day, agent), t)| {
                DayAdherence::new(agent.clone(), day.to_string(), t.scheduled_ms, t.out_ms)
            })
            .collect::<Vec<_>>();
        self.handle.days.store(Arc::new(rows));
    }

    /// Saves the day totals to the audit database (every
    /// [`SAVE_EVERY_MS`] of event time and at stop), so a restart and
    /// `acdmon report --adherence` have them.
    fn save(&mut self, now: Ts) {
        let Some(store) = &self.store else {
            return;
        };
        self.saved = Some(now);
        let rows = self.handle.days();
        if let Err(e) = store.save_adherence_days(&rows) {
            tracing::error!(error = %e, "cannot save the adherence day totals; tried again in a minute");
        }
    }

    /// First evaluation with a store: the day totals saved before a
    /// restart (today's and yesterday's) are counted on from.
    fn restore(&mut self, now: Ts, zone: &jiff::tz::TimeZone) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let today = local_day(now, zone);
        for day in [today.yesterday().ok(), Some(today)].into_iter().flatten() {
            match store.adherence_days(&day.to_string()) {
                Ok(rows) => {
                    for r in rows {
                        self.restored.insert(
                            (day, r.agent),
                            Totals {
                                scheduled_ms: (r.scheduled_s * 1000.0).round() as i64,
                                out_ms: (r.out_s * 1000.0).round() as i64,
                            },
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the saved adherence day totals"),
            }
        }
    }
}

fn local_day(t: Ts, zone: &jiff::tz::TimeZone) -> jiff::civil::Date {
    t.to_jiff().to_zoned_datetime(zone.clone()).date()
}

impl Observer for AdherenceObserver {
    fn after_event(&mut self, engine: &mut Engine, _queue: Option<usize>) {
        self.evaluate(engine);
        let now = engine.now();
        if self.next_edge.is_some_and(|e| now >= e) {
            self.publish(engine);
        }
        if self.next_edge.is_none_or(|e| now >= e) {
            self.next_edge = next_edge(&self.shifts, now, &self.zone);
        }
    }

    /// Day totals move with time: published at most once per second of
    /// event time (a replay calls this after every event), and when the
    /// engine stops.
    fn before_publish(&mut self, engine: &mut Engine) -> Vec<Arc<crate::escalation::Entry>> {
        let now = engine.now();
        if now.since(self.published) >= 1_000 {
            self.publish(engine);
        }
        if self.store.is_some() && self.saved.is_some_and(|s| now.since(s) >= SAVE_EVERY_MS) {
            self.save(now);
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
        self.shifts = config.shifts.clone();
        self.zone = config.zone.clone();
        self.next_edge = next_edge(&self.shifts, engine.now(), &self.zone);
        // Tolerances and equivalents may have changed: everyone again.
        self.plan = Arc::new(Plan::default());
        self.evaluate(engine);
    }

    fn on_stop(&mut self, engine: &mut Engine) {
        self.publish(engine);
        self.save(engine.now());
    }

    fn next_deadline(&self) -> Option<Ts> {
        let d = self.dues.first().map(|(t, _)| *t);
        d.into_iter()
            .chain(self.exception_edge)
            .chain(self.next_edge)
            .filter(|n| *n > self.evaluated)
            .min()
    }
}

#[cfg(test)]
mod tests;
