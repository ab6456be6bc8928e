//! Runs the queues' ladders on the engine thread.
//!
//! Order of work for every decision: the entry is written to the audit log
//! first (synchronously: decisions are rare and a write is well under a
//! millisecond in WAL mode), then its CTI actions are handed to async tasks
//! on the daemon's runtime; the engine never waits for a phone system. The
//! tasks' outcomes come back on a bounded channel that is drained before each
//! publish, appended to the log as results and fed back to the ladder.
//!
//! When the audit log cannot be written (a full disk, a file system gone
//! read-only), the decision stays in memory, in order, with everything
//! decided after it: [`LadderObserver`]'s write queue is retried with a
//! doubling backoff, and a decision's CTI actions run once its entry is
//! written. While anything waits, the ladders decide nothing new (their
//! figures would be acted on late and the queue would grow), approvals and
//! manual actions are refused, and the agents a waiting release would sign
//! out stay `signed_in_by_escalation`: the ladder never forgets whom it
//! signed in because a write failed. Ids are given in decision order and
//! written in that order, so none goes missing; results are counted in
//! `acd_escalation_actions_total` when they are written.
//!
//! One action at a time per agent: a sign-out decided while that agent's
//! sign-in is still on the wire waits for it (and vice versa), so a release
//! can never overtake the escalation it undoes.
//!
//! Evaluation: the queue an event touched is evaluated after that event;
//! every ladder is evaluated when one of its clocks runs out (the
//! [`Observer::next_deadline`] the driver honours, also in replay) and, for
//! figures that move without queue events (agent states, waits growing), at
//! most once per second of event time.
//!
//! Cluster mode (docs/cluster.md, "One CTI leader per site"): only the
//! holder of the site's `cti` lease decides ([`Role::Leading`]); every
//! entry and result it writes also goes to the escalation stream, and a
//! decision's actions run only once the stream has its entry. The other
//! instances ([`Role::Following`]) decide nothing: they copy the leader's
//! records into their own audit log and rebuild the queue's ladder from it,
//! so their wall, metrics and API show the leader's. Taking the lease over
//! is a restart from the log (`follow`).
//!
//! The steps live beside this file: `audit` (the write queue), `acts`
//! (CTI actions per agent), `commands` (the HTTP routes' commands),
//! `floor` (what the ladder asks of the engine), `reload` (a new
//! configuration's ladders), `follow` (leading and following in a
//! cluster).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::control::{CONTROL_CAPACITY, Command, ControlError, LadderHandle};
use super::expr::Var;
use super::ladder::{
    Act, Candidate, Floor, Inputs, Mark, NotPending, Onsets, Output, PENDING, Plan, QueueLadder,
};
use super::schedule::Schedule;
use super::stream::Record;
use super::{ActionRecord, Direction, Entry};
use crate::config::Config;
use crate::cti::runner::{ActionRunner, action_key, key_scope, request_for};
use crate::cti::{CtiOutcome, CtiRegistry, CtiVerb};
use crate::engine_thread::Observer;
use crate::event::AgentStatus;
use crate::state::Engine;
use crate::state::view::EscalationStatus;
use crate::store::Store;
use crate::time::Ts;

mod acts;
mod audit;
mod commands;
mod floor;
mod follow;
mod reload;
#[cfg(test)]
mod tests;

use floor::EngineFloor;

/// Outcomes waiting for the engine thread. CTI tasks wait when it is full.
pub const RESULTS_CAPACITY: usize = 1024;
/// Longest gap between two evaluations of every ladder when something
/// changed that no queue event reports, in event time.
const EVAL_EVERY_MS: i64 = 1_000;
/// After a restart, a queue with an escalation in progress is left alone
/// until an event for it arrives (a source's resync) or this much event time
/// has passed: until then the engine does not know its callers, and an empty
/// queue must not read as "release everyone".
const RESTORE_SETTLE_MS: i64 = 60_000;

/// First retry of a failed audit log write; doubled after each failure.
const WRITE_RETRY_FIRST_MS: i64 = 250;
/// Longest wait between two retries (a failing write costs microseconds;
/// the disk's recovery should show within seconds).
const WRITE_RETRY_MAX_MS: i64 = 2_000;

/// A write the audit log owes, in the order decided.
enum Write {
    Entry(Entry),
    Mark(Mark, Ts),
}

struct Done {
    act: Act,
    outcome: CtiOutcome,
}

#[derive(Default)]
struct AgentActs {
    running: Option<Act>,
    queued: VecDeque<Act>,
}

/// Who decides (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No cluster: this process decides and acts.
    Single,
    /// The site's CTI leader: decides, and acts once the escalation stream
    /// holds the decision.
    Leading,
    /// Another instance of the site: mirrors the leader's log.
    Following,
}

pub struct LadderObserver {
    role: Role,
    /// Cluster mode: every entry and result written, for the escalation
    /// stream (in the order written).
    stream: Option<mpsc::UnboundedSender<Record>>,
    /// Entries written but not yet acknowledged by the escalation stream
    /// (leading); their acts are held.
    unacked: HashSet<u64>,
    /// (entry, action) of acts a takeover found decided but never answered:
    /// the engine's membership is looked at before they run again.
    rerun: HashSet<(u64, usize)>,
    /// Mirrored records the audit log refused, retried in order.
    mirror_retry: VecDeque<Record>,
    /// Queues a mirrored record changed since their ladder was last rebuilt
    /// from the log: rebuilt once per batch (`rebuild_mirrored`), not once
    /// per record (a restarted follower receives every retained record).
    dirty: BTreeSet<usize>,
    /// Ladder rebuilds from the log so far (followers), for tests.
    rebuilds: u64,
    /// By queue index, the agents the engine showed as members while the
    /// ladder held them there: the evidence a takeover needs before it
    /// counts a pending sign-out as done (`floor::already_done`).
    seen_in: HashMap<usize, HashSet<String>>,
    /// Leading: another instance's records read meanwhile (this instance's
    /// own are not handed over). They mean it was deposed; they are copied
    /// in when it follows.
    mirror_later: VecDeque<Record>,
    /// Following: when each queue's next stage and release began to hold,
    /// kept on event time as the leader's ladder keeps them; taking the
    /// lead hands them to the restored ladders (`lead`).
    onsets: HashMap<usize, Onsets>,
    /// The highest entry id the escalation stream has, as far as read or
    /// acknowledged.
    stream_max: u64,
    plans: HashMap<String, Arc<Plan>>,
    schedules: Vec<Schedule>,
    /// Each schedule's plan, resolved once (no name lookups per event).
    schedule_plans: Vec<Option<Arc<Plan>>>,
    /// Each queue's own plan, by engine queue index.
    base_plan: Vec<Option<Arc<Plan>>>,
    /// By engine queue index; created when a queue is first evaluated.
    ladders: Vec<Option<QueueLadder>>,
    store: Arc<Store>,
    cti: Arc<CtiRegistry>,
    actions: ActionRunner<Done>,
    /// Membership changes of log-only CTI outcomes, applied before the next
    /// event's evaluation (where a real CTI's confirmation would arrive).
    membership: Vec<crate::event::Event>,
    control_rx: Option<mpsc::Receiver<Command>>,
    acts: HashMap<String, AgentActs>,
    next_id: u64,
    /// Entries written or changed since the last publish.
    outbox: Vec<u64>,
    /// Entries and results not yet written, oldest first; retried at
    /// `retry_at`. Unbounded on purpose, but small: nothing new is decided
    /// while it is not empty.
    pending: VecDeque<Write>,
    /// Ids of the entries in `pending`.
    unwritten: HashSet<u64>,
    /// Acts of entries in `pending`, in order; started once written.
    held: Vec<Act>,
    retry_at: Ts,
    retry_ms: i64,
    /// (queue, stage name) of entries, for metric labels.
    meta: HashMap<u64, (String, String)>,
    /// Ids of manual entries (an admin's sign-in or sign-out) whose action
    /// has not come back yet. Their results are not the ladder's: a failed
    /// manual sign-out must not become one of its releases (retried by
    /// itself, the agent flagged `signed_in_by_escalation`).
    manual: HashSet<u64>,
    ready: bool,
    last_full: Ts,
    /// An evaluation was skipped by the once-a-second limit.
    owed: bool,
    /// Some ladder reads figures that move with time alone.
    time_dependent: bool,
    flagged: HashSet<String>,
    /// Agents marked as the ladder's in the engine ([`Engine::set_held_by_ladder`]),
    /// so a post's auto cover does not pick them.
    holding: HashSet<String>,
    assignments: HashMap<String, u32>,
    seats: HashMap<String, u32>,
    changed: HashSet<usize>,
    local: Option<(i64, jiff::civil::DateTime)>,
    /// Restored queues waiting for their first event (see [`RESTORE_SETTLE_MS`]).
    settling: HashMap<usize, Ts>,
    /// Each ladder's next deadline, indexed both ways, so the driver's
    /// question before every event costs O(log queues), not O(queues).
    deadline_of: Vec<Option<Ts>>,
    deadlines: BTreeSet<(Ts, usize)>,
    /// Queues with sign-outs waiting for a call to end.
    leaving: BTreeSet<usize>,
}

/// Every configured ladder, compiled, and whether any reads figures that
/// move with time alone (then every ladder is looked at once a second).
fn compile_plans(cfg: &Config) -> Result<(HashMap<String, Arc<Plan>>, bool), String> {
    let mut plans = HashMap::new();
    let mut time_dependent = false;
    for l in &cfg.ladders {
        let p = Plan::compile(l)?;
        let exprs = p
            .stages
            .iter()
            .map(|s| &s.when)
            .chain(std::iter::once(&p.release_when));
        for e in exprs {
            time_dependent |= e.any.iter().flatten().any(|c| {
                matches!(
                    c.var,
                    Var::LongestWait | Var::ServiceLevel | Var::AbandonRate
                )
            });
        }
        plans.insert(l.name.clone(), Arc::new(p));
    }
    Ok((plans, time_dependent))
}

impl LadderObserver {
    /// A ladder observer for `cfg`, writing to `store` and acting through
    /// `cti`. Inside a tokio runtime CTI actions run as tasks on it; outside
    /// one (replay) they are polled on the spot and must answer at once.
    /// Returns the handle the HTTP routes use.
    pub fn new(
        cfg: &Config,
        store: Arc<Store>,
        cti: Arc<CtiRegistry>,
    ) -> Result<(LadderObserver, LadderHandle), String> {
        let (plans, time_dependent) = compile_plans(cfg)?;
        let (control_tx, control_rx) = mpsc::channel(CONTROL_CAPACITY);
        let schedule_plans = cfg
            .schedules
            .iter()
            .map(|s| s.ladder.as_ref().and_then(|n| plans.get(n).cloned()))
            .collect();
        let obs = LadderObserver {
            role: Role::Single,
            stream: None,
            unacked: HashSet::new(),
            rerun: HashSet::new(),
            mirror_retry: VecDeque::new(),
            dirty: BTreeSet::new(),
            rebuilds: 0,
            seen_in: HashMap::new(),
            mirror_later: VecDeque::new(),
            stream_max: 0,
            plans,
            schedules: cfg.schedules.clone(),
            schedule_plans,
            base_plan: Vec::new(),
            ladders: Vec::new(),
            store: store.clone(),
            cti,
            actions: ActionRunner::new(RESULTS_CAPACITY).with_scope(key_scope(cfg)),
            membership: Vec::new(),
            control_rx: Some(control_rx),
            acts: HashMap::new(),
            next_id: 0,
            outbox: Vec::new(),
            pending: VecDeque::new(),
            unwritten: HashSet::new(),
            held: Vec::new(),
            retry_at: Ts(i64::MIN / 2),
            retry_ms: WRITE_RETRY_FIRST_MS,
            meta: HashMap::new(),
            manual: HashSet::new(),
            ready: false,
            last_full: Ts(i64::MIN / 2),
            owed: false,
            time_dependent,
            flagged: HashSet::new(),
            holding: HashSet::new(),
            assignments: HashMap::new(),
            seats: HashMap::new(),
            changed: HashSet::new(),
            local: None,
            settling: HashMap::new(),
            onsets: HashMap::new(),
            deadline_of: Vec::new(),
            deadlines: BTreeSet::new(),
            leaving: BTreeSet::new(),
        };
        Ok((
            obs,
            LadderHandle {
                tx: control_tx,
                store,
                stream: Arc::new(std::sync::Mutex::new(None)),
            },
        ))
    }

    /// First call on the engine thread: continue from the audit log.
    fn ensure_ready(&mut self, engine: &mut Engine) {
        if self.ready {
            return;
        }
        self.ready = true;
        self.restore_all(engine, false);
    }

    /// Rebuilds every ladder from the audit log: at start-up, and when a
    /// cluster instance takes the lead (`takeover`: the engine is live, so
    /// restored queues do not wait to settle, and the acts found unanswered
    /// are checked against the engine's membership before they run again).
    /// A follower discards what the restore would do.
    fn restore_all(&mut self, engine: &mut Engine, takeover: bool) {
        let entries = match self.store.all_entries() {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the escalation log; the ladder starts empty");
                Vec::new()
            }
        };
        self.next_id = self
            .store
            .max_entry_id()
            .unwrap_or(0)
            .max(entries.iter().map(|e| e.id).max().unwrap_or(0));
        let mut by_queue: Vec<(String, Vec<Entry>)> = Vec::new();
        for e in entries {
            self.meta
                .insert(e.id, (e.queue.clone(), e.stage_name.clone()));
            match by_queue.iter_mut().find(|(q, _)| *q == e.queue) {
                Some((_, v)) => v.push(e),
                None => by_queue.push((e.queue.clone(), vec![e])),
            }
        }
        for (queue, entries) in by_queue {
            let q = engine.queue_index(&queue);
            self.ensure_ladder(engine, q);
            let plans = self.plans.clone();
            let Some(l) = self.ladders[q].as_mut() else {
                continue;
            };
            let outs = l.restore(&entries, &|n| plans.get(n).cloned());
            let n = l.signed_in().len();
            if (n > 0 || !l.is_idle()) && self.role != Role::Following {
                tracing::info!(%queue, signed_in = n, "escalation resumed from the audit log");
                if !takeover {
                    self.settling
                        .insert(q, engine.now().plus_ms(RESTORE_SETTLE_MS));
                }
            }
            if takeover {
                self.rerun.extend(unanswered(&entries));
            }
            self.changed.insert(q);
            self.process(engine, outs);
        }
        self.sync(engine);
    }

    fn local_time(&mut self, engine: &Engine) -> jiff::civil::DateTime {
        let now = engine.now();
        let sec = now.0.div_euclid(1000);
        match self.local {
            Some((s, dt)) if s == sec => dt,
            _ => {
                let dt = now
                    .to_jiff()
                    .to_zoned_datetime(engine.zone().clone())
                    .datetime();
                self.local = Some((sec, dt));
                dt
            }
        }
    }

    fn ensure_ladder(&mut self, engine: &Engine, q: usize) {
        if self.ladders.len() <= q {
            let n = engine.queue_count().max(q + 1);
            self.ladders.resize_with(n, || None);
            self.base_plan.resize(n, None);
        }
        if self.ladders[q].is_none() {
            let qs = engine.queue(q);
            self.ladders[q] = Some(QueueLadder::new(&qs.name, None));
            self.base_plan[q] = qs
                .params
                .ladder
                .as_ref()
                .and_then(|n| self.plans.get(n).cloned());
        }
    }

    /// Which schedule is on for queue `q` now (first match), if any.
    fn schedule_on(&mut self, engine: &Engine, q: usize) -> Option<usize> {
        if self.schedules.is_empty() {
            return None;
        }
        let t = self.local_time(engine);
        let name = &engine.queue(q).name;
        self.schedules.iter().position(|s| s.matches(name, t))
    }

    fn evaluate(&mut self, engine: &mut Engine, q: usize) {
        if self.role == Role::Following {
            // The leader decides; this ladder is rebuilt from its records.
            self.shadow(engine, q);
            return;
        }
        if !self.pending.is_empty() {
            // Nothing new is decided while a decision waits to be written.
            return;
        }
        if !self.settling.is_empty()
            && let Some(&until) = self.settling.get(&q)
        {
            if engine.now() < until {
                return;
            }
            self.settling.remove(&q);
        }
        self.ensure_ladder(engine, q);
        let on = self.schedule_on(engine, q);
        let wanted = match on {
            Some(i) => self.schedule_plans[i].as_ref(),
            None => self.base_plan[q].as_ref(),
        };
        let Some(l) = self.ladders[q].as_mut() else {
            return;
        };
        l.set_plan(wanted);
        if let Some(o) = self.onsets.remove(&q) {
            l.resume_clocks(o);
        }
        if l.plan().is_none() && l.is_idle() && !l.has_leaving() {
            self.refresh(q);
            return;
        }
        let seats = &self.seats;
        let plan = l.plan().cloned();
        let seats_used = || {
            plan.as_ref()
                .and_then(|p| seats.get(&p.name).copied())
                .unwrap_or(0)
        };
        let floor = EngineFloor {
            engine,
            q,
            assignments: &self.assignments,
            cti: &self.cti,
        };
        let inputs = Inputs {
            now: engine.now(),
            figures: engine.figures(q),
            required_agents: &|| engine.required_agents(q),
            floor: &floor,
            seats_used: &seats_used,
        };
        let outs = l.handle_update(&inputs, &mut self.next_id);
        if outs.is_empty() {
            self.refresh(q);
        } else {
            self.changed.insert(q);
            self.process(engine, outs);
            // The next queue's decisions must see these seats taken.
            self.sync(engine);
        }
    }

    /// Following: queue `q`'s ladder (the leader's, rebuilt from its
    /// records) under the plan the leader would use, its clocks kept in
    /// `onsets` on event time; nothing is decided.
    fn shadow(&mut self, engine: &mut Engine, q: usize) {
        self.ensure_ladder(engine, q);
        let on = self.schedule_on(engine, q);
        let wanted = match on {
            Some(i) => self.schedule_plans[i].as_ref(),
            None => self.base_plan[q].as_ref(),
        };
        let Some(l) = self.ladders[q].as_mut() else {
            return;
        };
        l.set_plan(wanted);
        if l.plan().is_none() {
            self.onsets.remove(&q);
            return;
        }
        let o = self.onsets.entry(q).or_default();
        l.shadow_update(o, engine.now(), &engine.figures(q));
    }

    /// Re-indexes queue `q`'s deadline and pending sign-outs.
    fn refresh(&mut self, q: usize) {
        let l = self.ladders.get(q).and_then(Option::as_ref);
        let new = l.and_then(QueueLadder::poll_timeout);
        if self.deadline_of.len() <= q {
            self.deadline_of.resize(q + 1, None);
        }
        let old = self.deadline_of[q];
        if old != new {
            if let Some(t) = old {
                self.deadlines.remove(&(t, q));
            }
            if let Some(t) = new {
                self.deadlines.insert((t, q));
            }
            self.deadline_of[q] = new;
        }
        if l.is_some_and(QueueLadder::has_leaving) {
            self.leaving.insert(q);
        } else {
            self.leaving.remove(&q);
        }
    }

    fn evaluate_all(&mut self, engine: &mut Engine) {
        for q in 0..engine.queue_count() {
            self.evaluate(engine, q);
        }
        self.last_full = engine.now();
        self.owed = false;
    }

    /// Writes entries, appends marks and starts acts, in the ladder's order.
    fn process(&mut self, engine: &mut Engine, outs: Vec<Output>) {
        if self.role == Role::Following {
            // Nothing is decided or acted on here: the leader's records
            // say what happened (a restore's or a reload's outputs).
            return;
        }
        let now = engine.now();
        for o in outs {
            match o {
                Output::Entry(e) => {
                    self.meta
                        .insert(e.id, (e.queue.clone(), e.stage_name.clone()));
                    self.write(Write::Entry(e), now);
                }
                Output::Mark(m) => self.write(Write::Mark(m, now), now),
                Output::Act(a) => {
                    if self.unwritten.contains(&a.entry) || self.unacked.contains(&a.entry) {
                        if let Some(q) = engine.find_queue(&a.queue) {
                            self.changed.insert(q);
                        }
                        self.held.push(a);
                    } else {
                        self.enqueue(engine, a);
                    }
                }
            }
        }
        self.run_inline(engine);
    }

    /// Publishes queue statuses, agents' `signed_in_by_escalation`, and the
    /// seat and assignment counts the next decisions read.
    fn sync(&mut self, engine: &mut Engine) {
        if self.changed.is_empty() {
            return;
        }
        for q in std::mem::take(&mut self.changed) {
            if let Some(l) = self.ladders.get(q).and_then(Option::as_ref) {
                let mut status = l.status();
                // People a release waiting to be written has not signed out.
                let queue = &engine.queue(q).name;
                for a in self
                    .held
                    .iter()
                    .filter(|a| a.verb == CtiVerb::SignOut && *a.queue == **queue)
                {
                    let st = status.get_or_insert_with(|| EscalationStatus {
                        stage: 0,
                        stage_name: String::new(),
                        since: engine.now(),
                        signed_in: Vec::new(),
                        pending: Vec::new(),
                    });
                    if !st.signed_in.contains(&a.agent) {
                        st.signed_in.push(a.agent.clone());
                    }
                }
                engine.set_escalation(q, status);
            }
            self.refresh(q);
        }
        let mut now_in: HashSet<String> = HashSet::new();
        self.assignments.clear();
        let mut per_plan: HashMap<String, HashSet<String>> = HashMap::new();
        for l in self.ladders.iter().flatten() {
            now_in.extend(l.signed_in());
            // Proposed people count as taken: two proposals must not promise
            // the same seat or person.
            let tracked = l.tracked();
            for a in &tracked {
                *self.assignments.entry(a.to_string()).or_default() += 1;
            }
            if let Some(p) = l.plan() {
                per_plan
                    .entry(p.name.clone())
                    .or_default()
                    .extend(tracked.into_iter().map(str::to_string));
            }
        }
        // A release waiting to be written has not signed anyone out yet:
        // its people are still the ladder's (flagged, seats, assignments).
        for a in &self.held {
            if a.verb != CtiVerb::SignOut {
                continue;
            }
            if now_in.insert(a.agent.clone()) {
                *self.assignments.entry(a.agent.clone()).or_default() += 1;
                let plan = engine
                    .find_queue(&a.queue)
                    .and_then(|q| self.ladders.get(q))
                    .and_then(Option::as_ref)
                    .and_then(|l| l.plan());
                if let Some(p) = plan {
                    per_plan
                        .entry(p.name.clone())
                        .or_default()
                        .insert(a.agent.clone());
                }
            }
        }
        self.seats = per_plan
            .into_iter()
            .map(|(k, v)| (k, v.len() as u32))
            .collect();
        for a in self.flagged.difference(&now_in) {
            if let Some(i) = engine.find_agent(a) {
                engine.set_signed_in_by_escalation(i, false);
            }
        }
        for a in now_in.difference(&self.flagged) {
            let i = engine.agent_index(a);
            engine.set_signed_in_by_escalation(i, true);
        }
        // Evidence is per sign-in: an agent the ladders let go needs new
        // evidence the next time.
        for agents in self.seen_in.values_mut() {
            agents.retain(|a| now_in.contains(a));
        }
        self.seen_in.retain(|_, agents| !agents.is_empty());
        self.flagged = now_in;
        // Everyone the ladder answers for (signed in, proposed, leaving, a
        // release waiting to be written) is the ladder's: a post's auto cover
        // leaves them alone.
        let holding: HashSet<String> = self.assignments.keys().cloned().collect();
        for a in self.holding.difference(&holding) {
            if let Some(i) = engine.find_agent(a) {
                engine.set_held_by_ladder(i, false);
            }
        }
        for a in holding.difference(&self.holding) {
            let i = engine.agent_index(a);
            engine.set_held_by_ladder(i, true);
        }
        self.holding = holding;
    }

    fn drain_results(&mut self, engine: &mut Engine) {
        while let Some(d) = self.actions.try_recv() {
            self.complete(engine, d);
            self.run_inline(engine);
        }
    }
}

impl Drop for LadderObserver {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            tracing::error!(
                waiting = self.pending.len(),
                "stopping with escalation decisions not written to the audit log; \
                 they were not acted on, and the log shows the ladder as it was before them"
            );
        }
    }
}

impl Observer for LadderObserver {
    fn after_event(&mut self, engine: &mut Engine, queue: Option<usize>) {
        for ev in std::mem::take(&mut self.membership) {
            let q = match &ev.kind {
                crate::event::EventKind::AgentJoinedQueue { queue, .. } => engine.find_queue(queue),
                _ => None,
            };
            if let Err(r) = engine.apply(ev) {
                tracing::warn!(reason = r.reason.as_str(), detail = %r.detail, "log-only membership change not applied");
            }
            if let Some(q) = q {
                self.observe_membership(engine, q);
            }
        }
        self.ensure_ready(engine);
        if let Some(q) = queue {
            self.observe_membership(engine, q);
        }
        self.retry_writes(engine);
        let now = engine.now();
        match queue {
            Some(q) => {
                self.settling.remove(&q);
                self.evaluate(engine, q)
            }
            None => {
                if now.since(self.last_full) >= EVAL_EVERY_MS {
                    self.evaluate_all(engine);
                } else {
                    self.owed = true;
                    // Ladders whose clock ran out, and those with sign-outs
                    // waiting for a call to end (agent events end calls).
                    let mut qs: Vec<usize> = self
                        .deadlines
                        .iter()
                        .take_while(|(t, _)| *t <= now)
                        .map(|(_, q)| *q)
                        .collect();
                    qs.extend(self.leaving.iter().copied());
                    qs.sort_unstable();
                    qs.dedup();
                    for q in qs {
                        self.evaluate(engine, q);
                    }
                }
            }
        }
        self.sync(engine);
    }

    fn before_publish(&mut self, engine: &mut Engine) -> Vec<Arc<Entry>> {
        self.ensure_ready(engine);
        self.drain_results(engine);
        self.drain_control(engine);
        self.retry_mirror(engine);
        self.rebuild_mirrored(engine);
        self.run_inline(engine);
        self.retry_writes(engine);
        self.sync(engine);
        let mut ids = std::mem::take(&mut self.outbox);
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| match self.store.entry(id) {
                Ok(e) => e.map(Arc::new),
                Err(e) => {
                    tracing::error!(id, error = %e, "cannot read back an escalation entry");
                    None
                }
            })
            .collect()
    }

    fn reconfigure(&mut self, engine: &mut Engine, config: &Config) {
        self.ensure_ready(engine);
        self.reload(engine, config);
    }

    fn next_deadline(&self) -> Option<Ts> {
        let mut d = self.deadlines.first().map(|(t, _)| *t);
        if !self.pending.is_empty() {
            d = Some(d.map_or(self.retry_at, |x| x.min(self.retry_at)));
        }
        if self.owed || self.time_dependent {
            let t = self.last_full.plus_ms(EVAL_EVERY_MS);
            d = Some(d.map_or(t, |x| x.min(t)));
        }
        d
    }
}

/// (entry, action) of every ladder sign-in or sign-out still `pending` in
/// `entries`: decided, never answered.
fn unanswered(entries: &[Entry]) -> impl Iterator<Item = (u64, usize)> + '_ {
    entries.iter().filter(|e| e.mode != "manual").flat_map(|e| {
        e.actions.iter().enumerate().filter_map(move |(i, a)| {
            (matches!(a.kind.as_str(), "sign_in" | "sign_out") && a.result == PENDING)
                .then_some((e.id, i))
        })
    })
}
