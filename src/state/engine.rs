//! The state engine: folds domain events into queue and agent state.
//!
//! Design (measured in `benches/engine.rs`): one owner applies events in
//! order with plain `&mut` data: no locks, no atomics, no per-event
//! allocation beyond the ids the event already carries. Readers never touch
//! this struct; after each batch the owner publishes immutable views (see
//! [`super::snapshot`]), rebuilding only the queues and agents that changed.
//! `dashmap`-style sharded locks were not used: they make every apply pay for
//! synchronisation that a single writer does not need.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::agent::Agent;
use super::checkpoint::SourcePosition;
use super::kpi::{self, WindowView};
use super::params::{EngineConfig, QueueParams};
use super::queue::{IntervalRecord, Queue};
use super::trend::{self, TrendSample};
use super::view::{AgentView, EscalationStatus, QueueView, Windows};
use super::window::Outcome;
use crate::event::{AgentStatus, Event, EventKind, ResyncCaller, ResyncMember};
use crate::event::{Reject, RejectReason};
use crate::time::Ts;

mod reconfigure;

/// A call being talked: answered, not yet completed.
#[derive(Debug, Clone)]
pub(super) struct Talking {
    pub(super) queue: usize,
    pub(super) agent: usize,
    pub(super) answered: Ts,
}

/// The figures ladder `when` expressions read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueFigures {
    pub waiting: f64,
    pub longest_wait: f64,
    pub service_level: Option<f64>,
    pub available: f64,
    pub logged_in: f64,
    pub abandon_rate: Option<f64>,
}

#[derive(Debug)]
pub struct Engine {
    pub(super) cfg: EngineConfig,
    pub(super) now: Ts,
    pub(super) queues: Vec<Queue>,
    queue_ix: HashMap<Box<str>, usize>,
    pub(super) agents: Vec<Agent>,
    agent_ix: HashMap<Box<str>, usize>,
    pub(super) talking: HashMap<String, Talking>,
    /// Engine-timed wrap-ups: (ends at, agent).
    pub(super) wrap_timers: BTreeSet<(Ts, usize)>,
    /// Earliest interval or day end over all queues.
    pub(super) next_roll: Ts,
    dirty_q: Vec<bool>,
    dirty_q_list: Vec<usize>,
    dirty_a: Vec<bool>,
    dirty_a_list: Vec<usize>,
    /// Agents touched since the last [`Engine::take_touched`], with
    /// repeats, bounded by [`TOUCHED_MAX`] (then `touched_lost`).
    touched: Vec<usize>,
    touched_lost: bool,
    closed: Vec<IntervalRecord>,
    /// When this engine began observing (a restart loses what came before).
    pub(super) started: Ts,
    pub(super) events_applied: u64,
    /// How far into each re-readable source (a file) the applied events
    /// reach, saved in the same checkpoint as the figures they produced.
    pub(super) positions: BTreeMap<Box<str>, SourcePosition>,
    /// The next whole minute to sample every queue's trend at.
    pub(super) next_sample: Ts,
    /// A trend sample was taken since the last publish.
    pub(super) trend_dirty: bool,
    /// A central instance: the sites STALE now, with when their stream
    /// last stored anything (shown in their queues' views; not kept in
    /// the checkpoint: the freshness watch tells a new engine at once).
    stale_sites: HashMap<String, Option<Ts>>,
}

/// Most agent touches [`Engine::take_touched`] keeps between two takes.
pub const TOUCHED_MAX: usize = 4_096;

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self::starting_at(cfg, Ts::ZERO)
    }

    /// An engine whose clock starts at `now` (the first event's time in replay,
    /// wall time in the daemon).
    pub fn starting_at(cfg: EngineConfig, now: Ts) -> Self {
        let mut e = Engine {
            cfg,
            now,
            queues: Vec::new(),
            queue_ix: HashMap::new(),
            agents: Vec::new(),
            agent_ix: HashMap::new(),
            talking: HashMap::new(),
            wrap_timers: BTreeSet::new(),
            next_roll: Ts::NEVER,
            dirty_q: Vec::new(),
            dirty_q_list: Vec::new(),
            dirty_a: Vec::new(),
            dirty_a_list: Vec::new(),
            touched: Vec::new(),
            touched_lost: false,
            closed: Vec::new(),
            started: now,
            events_applied: 0,
            positions: BTreeMap::new(),
            next_sample: trend::next_minute(now),
            trend_dirty: false,
            stale_sites: HashMap::new(),
        };
        let names: Vec<String> = e.cfg.queues.iter().map(|(n, _)| n.clone()).collect();
        for n in names {
            e.queue_index(&n);
        }
        let profiles = e.cfg.agents.clone();
        for p in profiles {
            let i = e.agent_index(&p.id);
            e.agents[i].set_profile(p);
        }
        e
    }

    pub fn now(&self) -> Ts {
        self.now
    }

    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.cfg.zone
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    /// Applies one event. An event that cannot be used (it refers to a call
    /// never seen enqueued, or has an empty id) is returned as a [`Reject`];
    /// what could still be learnt from it (an agent's state) is kept.
    pub fn apply(&mut self, ev: Event) -> Result<(), Reject> {
        self.advance(ev.ts);
        self.events_applied += 1;
        let ts = ev.ts;
        match ev.kind {
            EventKind::CallEnqueued { call, queue, .. } => {
                nonempty(&[&call, &queue])?;
                let q = self.queue_index(&queue);
                let qs = &mut self.queues[q];
                if qs.waiting.contains_key(&call) {
                    return Err(Reject::new(
                        RejectReason::DuplicateCall,
                        format!("call {call} is already waiting in {queue}"),
                    ));
                }
                qs.waiting.insert(call, ts);
                qs.record(ts, Outcome::Arrival);
                self.touch_queue(q);
            }
            EventKind::CallAnswered { call, queue, agent } => {
                nonempty(&[&call, &queue, &agent])?;
                let q = self.queue_index(&queue);
                let a = self.agent_index(&agent);
                self.ensure_member(a, q, ts);
                self.set_status(a, AgentStatus::OnCall, None, ts);
                // The agent may already be on_call (a device-state event came
                // first, as Asterisk's Local channels do): the call is still
                // news for the agent's view.
                self.agents[a].call = Some(call.clone());
                self.touch_agent(a);
                let joined = self.queues[q].waiting.remove(&call);
                self.touch_queue(q);
                let known = joined.is_some();
                if let Some(joined) = joined {
                    let o = self.queues[q].classify_answer(joined, ts);
                    self.queues[q].record(ts, o);
                }
                self.talking.insert(
                    call.clone(),
                    Talking {
                        queue: q,
                        agent: a,
                        answered: ts,
                    },
                );
                if !known {
                    return Err(Reject::new(
                        RejectReason::UnknownCall,
                        format!(
                            "call {call} answered in {queue} but never seen waiting; agent state kept, not counted"
                        ),
                    ));
                }
            }
            EventKind::CallAbandoned { call, queue } => {
                nonempty(&[&call, &queue])?;
                let q = self.queue_index(&queue);
                let joined = self.leave(q, &call)?;
                let o = self.queues[q].classify_abandon(joined, ts);
                self.queues[q].record(ts, o);
            }
            EventKind::CallExited {
                call,
                queue,
                reason,
            } => {
                nonempty(&[&call, &queue])?;
                let q = self.queue_index(&queue);
                let joined = self.leave(q, &call)?;
                self.queues[q].record(
                    ts,
                    Outcome::Exited {
                        wait_ms: ts.since(joined),
                        reason,
                    },
                );
            }
            EventKind::CallCompleted { call, queue, agent } => {
                nonempty(&[&call, &queue, &agent])?;
                let a = self.agent_index(&agent);
                let talking = self.talking.remove(&call);
                let q = talking
                    .as_ref()
                    .map(|t| t.queue)
                    .unwrap_or_else(|| self.queue_index(&queue));
                if let Some(t) = &talking {
                    self.queues[q].record(
                        ts,
                        Outcome::Handled {
                            talk_ms: ts.since(t.answered),
                        },
                    );
                    self.touch_queue(q);
                }
                let agent_ix = talking.as_ref().map(|t| t.agent).unwrap_or(a);
                self.finish_call(agent_ix, q, &call, ts);
                if talking.is_none() {
                    return Err(Reject::new(
                        RejectReason::UnknownCall,
                        format!(
                            "call {call} completed in {queue} but never seen answered; not counted"
                        ),
                    ));
                }
            }
            EventKind::AgentState {
                agent,
                status,
                reason,
                queue,
            } => {
                nonempty(&[&agent])?;
                let a = self.agent_index(&agent);
                if let Some(queue) = queue.filter(|q| !q.is_empty()) {
                    let q = self.queue_index(&queue);
                    self.ensure_member(a, q, ts);
                }
                let reason = if status == AgentStatus::Paused {
                    reason
                } else {
                    None
                };
                self.set_status(a, status, reason, ts);
            }
            EventKind::AgentJoinedQueue { agent, queue } => {
                nonempty(&[&agent, &queue])?;
                let a = self.agent_index(&agent);
                let q = self.queue_index(&queue);
                self.ensure_member(a, q, ts);
            }
            EventKind::AgentLeftQueue { agent, queue } => {
                nonempty(&[&agent, &queue])?;
                let a = self.agent_index(&agent);
                let q = self.queue_index(&queue);
                self.remove_member(a, q, ts);
            }
            EventKind::AgentQueuePause {
                agent,
                queue,
                paused,
            } => {
                nonempty(&[&agent, &queue])?;
                let a = self.agent_index(&agent);
                let q = self.queue_index(&queue);
                self.ensure_member(a, q, ts);
                self.pause_in(a, q, paused, ts);
            }
            EventKind::QueueResync {
                queue,
                callers,
                members,
            } => {
                nonempty(&[&queue])?;
                let q = self.queue_index(&queue);
                self.resync(q, callers, members, ts);
            }
        }
        Ok(())
    }

    /// Moves the clock to `now` (never backwards): ends engine-timed
    /// wrap-ups that are due, expires the rolling windows, closes intervals
    /// and rolls today. The daemon calls it on a wall-clock tick; replay only
    /// through events.
    pub fn advance(&mut self, now: Ts) {
        if now <= self.now {
            return;
        }
        while let Some(&(due, a)) = self.wrap_timers.first() {
            if due > now {
                break;
            }
            self.wrap_timers.pop_first();
            if self.agents[a].wrap_until == Some(due)
                && self.agents[a].status == AgentStatus::WrapUp
            {
                self.now = due;
                self.set_status(a, AgentStatus::Available, None, due);
            }
        }
        if self.next_sample <= now {
            // A jump longer than the trend keeps (a clock error, a long
            // pause in a replay) samples only the minutes it can keep.
            let keep_from = Ts(now.0 - trend::KEEP_MINUTES as i64 * trend::STEP_MS);
            if self.next_sample < keep_from {
                self.next_sample = trend::next_minute(keep_from);
            }
            while self.next_sample <= now {
                let at = self.next_sample;
                self.sample_trends(at);
                self.next_sample = at.plus_ms(trend::STEP_MS);
            }
        }
        self.now = now;
        if now >= self.next_roll {
            self.roll_all();
        }
    }

    /// Expires every queue's rolling window and marks queues whose figures
    /// move with time alone (waiting callers) as changed. For the tick.
    pub fn tick(&mut self, now: Ts) {
        self.advance(now);
        for q in 0..self.queues.len() {
            let expired = self.queues[q].rolling.expire(self.now);
            if expired || !self.queues[q].waiting.is_empty() {
                self.touch_queue(q);
            }
        }
    }

    /// Records that the events of `source` applied so far end at `pos`.
    pub fn set_position(&mut self, source: &str, pos: SourcePosition) {
        match self.positions.get_mut(source) {
            Some(p) => *p = pos,
            None => {
                self.positions.insert(source.into(), pos);
            }
        }
    }

    /// Where the applied events of `source` end (see [`Engine::set_position`]).
    pub fn position(&self, source: &str) -> Option<SourcePosition> {
        self.positions.get(source).copied()
    }

    /// Every queue's figures at the whole minute `at` (before any event at
    /// or after it). The rolling window is read as it stands, not expired
    /// here: expiring is the tick's and the views' business (the live tick
    /// does it every 100 ms), and a sample must not change other figures.
    fn sample_trends(&mut self, at: Ts) {
        for qs in &mut self.queues {
            let agents = qs.agents();
            let stage = qs.escalation.as_ref().map_or(0, |e| e.stage);
            let sl = kpi::service_level(qs.rolling.tally(), qs.params.sl_formula)
                .map(|x| (x * 10_000.0).round() / 10_000.0);
            qs.trend.push(TrendSample {
                at,
                waiting: qs.waiting.len() as u32,
                longest_wait_s: qs.longest_wait_ms(at) as f64 / 1000.0,
                service_level: sl,
                available: agents.available,
                logged_in: agents.logged_in,
                stage,
            });
        }
        self.trend_dirty = true;
    }

    /// True once after trend samples were taken.
    pub fn take_trend_dirty(&mut self) -> bool {
        std::mem::take(&mut self.trend_dirty)
    }

    pub(super) fn roll_all(&mut self) {
        let mut next = Ts::NEVER;
        for q in 0..self.queues.len() {
            let zone = self.cfg.zone.clone();
            let mut closed = self.queues[q].roll(self.now, &zone);
            for r in &mut closed {
                r.observed_from = r.start.max(self.started);
            }
            if !closed.is_empty() {
                self.closed.extend(closed);
                self.touch_queue(q);
            }
            let qs = &self.queues[q];
            next = next.min(qs.interval.end).min(qs.today.end);
        }
        self.next_roll = next;
    }

    fn leave(&mut self, q: usize, call: &str) -> Result<Ts, Reject> {
        self.touch_queue(q);
        self.queues[q].waiting.remove(call).ok_or_else(|| {
            Reject::new(
                RejectReason::UnknownCall,
                format!(
                    "call {call} left {} but was not waiting there; not counted",
                    self.queues[q].name
                ),
            )
        })
    }

    fn finish_call(&mut self, a: usize, q: usize, call: &str, ts: Ts) {
        let agent = &mut self.agents[a];
        if agent.call.as_deref() == Some(call) {
            agent.call = None;
            self.touch_agent(a);
        }
        let agent = &self.agents[a];
        if agent.status != AgentStatus::OnCall {
            return;
        }
        let wrap_ms = self.queues[q].params.wrap_up_ms;
        if wrap_ms > 0 {
            self.set_status(a, AgentStatus::WrapUp, None, ts);
            let until = ts.plus_ms(wrap_ms);
            self.agents[a].wrap_until = Some(until);
            self.wrap_timers.insert((until, a));
        } else {
            self.set_status(a, AgentStatus::Available, None, ts);
        }
        self.agents[a].wrap_queue = Some(q);
    }

    fn set_status(&mut self, a: usize, status: AgentStatus, reason: Option<String>, ts: Ts) {
        let old = self.agents[a].status;
        if old == status && self.agents[a].reason == reason {
            return;
        }
        if old == AgentStatus::WrapUp && status != AgentStatus::WrapUp {
            if let Some(q) = self.agents[a].wrap_queue.take() {
                let ms = ts.since(self.agents[a].since);
                self.queues[q].record(ts, Outcome::AfterCallWork { ms });
                // The queue's AHT changed, even when the agent has left it
                // during the wrap-up (a ladder's sign-out): publish it.
                self.touch_queue(q);
            }
            self.agents[a].wrap_until = None;
        }
        if status != AgentStatus::WrapUp && status != AgentStatus::OnCall {
            self.agents[a].wrap_queue = None;
        }
        if old != status {
            for i in 0..self.agents[a].queues.len() {
                let q = self.agents[a].queues[i];
                let before = self.agents[a].status_in(q);
                let after = self.agents[a].status_in_if(status, q);
                self.queues[q].count_member(ts, before, -1);
                self.queues[q].count_member(ts, after, 1);
                self.touch_queue(q);
            }
            self.agents[a].since = ts;
        }
        let agent = &mut self.agents[a];
        agent.status = status;
        agent.reason = reason;
        if status == AgentStatus::LoggedOut {
            agent.call = None;
        }
        self.touch_agent(a);
    }

    /// Pauses or unpauses member `a` in queue `q` alone.
    fn pause_in(&mut self, a: usize, q: usize, paused: bool, ts: Ts) {
        if self.agents[a].paused_in.contains(&q) == paused {
            return;
        }
        let before = self.agents[a].status_in(q);
        if paused {
            self.agents[a].paused_in.push(q);
        } else {
            self.agents[a].paused_in.retain(|&x| x != q);
        }
        let after = self.agents[a].status_in(q);
        if before != after {
            self.queues[q].count_member(ts, before, -1);
            self.queues[q].count_member(ts, after, 1);
            self.touch_queue(q);
        }
        self.touch_agent(a);
    }

    fn ensure_member(&mut self, a: usize, q: usize, ts: Ts) {
        if self.agents[a].queues.contains(&q) {
            return;
        }
        self.agents[a].queues.push(q);
        self.queues[q].members.push(a);
        let status = self.agents[a].status_in(q);
        self.queues[q].count_member(ts, status, 1);
        self.touch_queue(q);
        self.touch_agent(a);
    }

    fn remove_member(&mut self, a: usize, q: usize, ts: Ts) {
        let Some(pos) = self.agents[a].queues.iter().position(|&x| x == q) else {
            return;
        };
        let status = self.agents[a].status_in(q);
        self.agents[a].queues.swap_remove(pos);
        self.agents[a].paused_in.retain(|&x| x != q);
        self.queues[q].members.retain(|&x| x != a);
        self.queues[q].count_member(ts, status, -1);
        self.touch_queue(q);
        self.touch_agent(a);
    }

    fn resync(&mut self, q: usize, callers: Vec<ResyncCaller>, members: Vec<ResyncMember>, ts: Ts) {
        let listed: std::collections::HashSet<&str> =
            callers.iter().map(|c| c.call.as_str()).collect();
        self.queues[q]
            .waiting
            .retain(|call, _| listed.contains(call.as_str()));
        for c in &callers {
            self.queues[q]
                .waiting
                .entry(c.call.clone())
                .or_insert(c.joined);
        }
        let keep: Vec<usize> = members.iter().map(|m| self.agent_index(&m.agent)).collect();
        let current = self.queues[q].members.clone();
        for a in current {
            if !keep.contains(&a) {
                self.remove_member(a, q, ts);
            }
        }
        for (m, a) in members.into_iter().zip(keep) {
            self.ensure_member(a, q, ts);
            let reason = if m.status == AgentStatus::Paused {
                m.reason
            } else {
                None
            };
            self.set_status(a, m.status, reason, ts);
            self.pause_in(a, q, m.paused_here, ts);
        }
        self.touch_queue(q);
    }

    /// The index of a queue, created with `[defaults]` when first seen.
    pub fn queue_index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.queue_ix.get(name) {
            return i;
        }
        let params: QueueParams = self.cfg.queue_params(name);
        let q = Queue::new(name, params, self.now, &self.cfg.zone);
        self.next_roll = self.next_roll.min(q.interval.end).min(q.today.end);
        let i = self.queues.len();
        self.queues.push(q);
        self.queue_ix.insert(name.into(), i);
        self.dirty_q.push(false);
        self.touch_queue(i);
        i
    }

    /// The index of an agent, created (logged out, no groups) when first seen.
    pub fn agent_index(&mut self, id: &str) -> usize {
        if let Some(&i) = self.agent_ix.get(id) {
            return i;
        }
        let i = self.agents.len();
        self.agents.push(Agent::new(id, self.now));
        self.agent_ix.insert(id.into(), i);
        self.dirty_a.push(false);
        self.touch_agent(i);
        i
    }

    pub fn find_queue(&self, name: &str) -> Option<usize> {
        self.queue_ix.get(name).copied()
    }

    pub fn find_agent(&self, id: &str) -> Option<usize> {
        self.agent_ix.get(id).copied()
    }

    fn touch_queue(&mut self, q: usize) {
        if !self.dirty_q[q] {
            self.dirty_q[q] = true;
            self.dirty_q_list.push(q);
        }
    }

    fn touch_agent(&mut self, a: usize) {
        if self.touched.len() < TOUCHED_MAX {
            self.touched.push(a);
        } else {
            self.touched_lost = true;
        }
        if !self.dirty_a[a] {
            self.dirty_a[a] = true;
            self.dirty_a_list.push(a);
        }
    }

    /// Agents touched since the last call (with repeats) into `into`, for an
    /// observer that follows agent changes without looking at every agent
    /// after every event (schedule adherence). `true`: more were touched
    /// than the list holds (or nobody took it for long): look at everyone.
    pub fn take_touched(&mut self, into: &mut Vec<usize>) -> bool {
        into.clear();
        std::mem::swap(into, &mut self.touched);
        std::mem::take(&mut self.touched_lost)
    }

    /// Queues and agents changed since the last call, in first-touched order.
    pub fn take_dirty(&mut self) -> (Vec<usize>, Vec<usize>) {
        let qs = std::mem::take(&mut self.dirty_q_list);
        for &q in &qs {
            self.dirty_q[q] = false;
        }
        let as_ = std::mem::take(&mut self.dirty_a_list);
        for &a in &as_ {
            self.dirty_a[a] = false;
        }
        (qs, as_)
    }

    /// Intervals closed since the last call (for the interval history).
    pub fn drain_closed(&mut self) -> Vec<IntervalRecord> {
        std::mem::take(&mut self.closed)
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    pub fn queue(&self, q: usize) -> &Queue {
        &self.queues[q]
    }

    pub fn agent(&self, a: usize) -> &Agent {
        &self.agents[a]
    }

    /// What ladder expressions read, as of the engine's clock.
    pub fn figures(&self, q: usize) -> QueueFigures {
        let qs = &self.queues[q];
        let agents = qs.agents();
        let rolling = qs.rolling.tally();
        QueueFigures {
            waiting: qs.waiting.len() as f64,
            longest_wait: qs.longest_wait_ms(self.now) as f64 / 1000.0,
            service_level: kpi::service_level(rolling, qs.params.sl_formula),
            available: agents.available as f64,
            logged_in: agents.logged_in as f64,
            abandon_rate: kpi::abandon_rate(rolling),
        }
    }

    pub fn required_agents(&self, q: usize) -> Option<u32> {
        self.queues[q].required_agents(self.now)
    }

    pub fn set_escalation(&mut self, q: usize, status: Option<EscalationStatus>) {
        if self.queues[q].escalation != status {
            self.queues[q].escalation = status;
            self.touch_queue(q);
        }
    }

    /// The adherence observer's verdict on agent `a` (published with the
    /// agent when it changes).
    pub fn set_adherence(&mut self, a: usize, mark: Option<crate::state::view::AdherenceMark>) {
        if self.agents[a].adherence != mark {
            self.agents[a].adherence = mark;
            self.touch_agent(a);
        }
    }

    /// Whether the ladder holds agent `a` (internal: not published).
    pub fn set_held_by_ladder(&mut self, a: usize, on: bool) {
        self.agents[a].held.ladder = on;
    }

    /// Whether a post's auto cover holds agent `a` (internal: not published).
    pub fn set_held_by_cover(&mut self, a: usize, on: bool) {
        self.agents[a].held.cover = on;
    }

    pub fn set_signed_in_by_escalation(&mut self, a: usize, on: bool) {
        if self.agents[a].signed_in_by_escalation != on {
            self.agents[a].signed_in_by_escalation = on;
            self.touch_agent(a);
        }
    }

    /// A central instance's site turned STALE (`Some`, with when its stream
    /// last stored anything) or live again (`None`): its queues' views
    /// change, so `/ws` carries it.
    pub fn set_site_stale(&mut self, site: &str, stale: Option<Option<Ts>>) {
        let was = self.stale_sites.get(site).copied();
        if was == stale {
            return;
        }
        match stale {
            Some(t) => self.stale_sites.insert(site.to_string(), t),
            None => self.stale_sites.remove(site),
        };
        for q in 0..self.queues.len() {
            if self.cfg.sites.site_of(&self.queues[q].name).as_deref() == Some(site) {
                self.touch_queue(q);
            }
        }
    }

    /// The view of a queue as of the engine's clock. Expires the rolling
    /// window first, so a view is never stale.
    pub fn queue_view(&mut self, q: usize) -> QueueView {
        let now = self.now;
        self.queues[q].rolling.expire(now);
        let qs = &self.queues[q];
        let f = qs.params.sl_formula;
        let agents = qs.agents();
        let busy = agents.on_call + agents.wrap_up;
        let staffed = busy + agents.ringing + agents.available;
        let site = self.cfg.sites.site_of(&qs.name);
        let site_stale = site
            .as_ref()
            .and_then(|s| self.stale_sites.get(s))
            .map(|&last_message_at| super::view::SiteStale { last_message_at });
        QueueView {
            queue: qs.name.to_string(),
            site,
            site_stale,
            waiting: qs.waiting.len() as u32,
            longest_wait_s: qs.longest_wait_ms(now) as f64 / 1000.0,
            agents,
            windows: Windows {
                rolling: WindowView::from_tally(qs.rolling.tally(), f),
                interval: WindowView::from_tally(&qs.interval.tally, f),
                today: WindowView::from_tally(&qs.today.tally, f),
            },
            required_agents: qs.required_agents(now),
            escalation: qs.escalation.clone(),
            sl_threshold_s: qs.params.sl_threshold_ms as f64 / 1000.0,
            sl_target: qs.params.sl_target,
            occupancy: (staffed > 0)
                .then(|| ((busy as f64 / staffed as f64) * 10_000.0).round() / 10_000.0),
            totals: qs.totals.clone(),
            oldest_since: qs.oldest_since(),
            as_of: now,
        }
    }

    pub fn agent_view(&self, a: usize) -> AgentView {
        let ag = &self.agents[a];
        let mut queues: Vec<String> = ag
            .queues
            .iter()
            .map(|&q| self.queues[q].name.to_string())
            .collect();
        queues.sort();
        let mut paused_in: Vec<String> = ag
            .paused_in
            .iter()
            .map(|&q| self.queues[q].name.to_string())
            .collect();
        paused_in.sort();
        AgentView {
            agent: ag.id.to_string(),
            site: self.cfg.sites.site_of(&ag.id),
            paused_in,
            name: ag.name.clone(),
            state: ag.status,
            reason: ag.reason.clone(),
            since: ag.since,
            queues,
            groups: ag.groups.clone(),
            signed_in_by_escalation: ag.signed_in_by_escalation,
            call: ag.call.clone(),
            adherence: ag.adherence.clone(),
        }
    }
}

fn nonempty(ids: &[&String]) -> Result<(), Reject> {
    if ids.iter().any(|s| s.is_empty()) {
        return Err(Reject::new(
            RejectReason::BadValue,
            "empty call, queue or agent id",
        ));
    }
    Ok(())
}
