//! The tracker: the little state AMI's event stream needs to become domain
//! events (see the parent module's doc for the rules). Its state is open to
//! the AMI adapter because the resync (`session/resync.rs`) rebuilds it
//! from a `QueueStatus` list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{AgentIds, LEAVE_GRACE_MS, MemberBlock, MemberChange, QueueEvent};
use crate::event::{AgentStatus, Event, EventKind, ExitReason};
use crate::sources::{Reject, RejectReason};
use crate::time::Ts;

#[derive(Debug, Clone)]
pub(in crate::sources::ami) struct Member {
    pub(in crate::sources::ami) agent: String,
    pub(in crate::sources::ami) status: u8,
    pub(in crate::sources::ami) paused: bool,
    pub(in crate::sources::ami) reason: Option<String>,
    pub(in crate::sources::ami) in_call: bool,
    /// The caller's channel of the call this member is on (AgentConnect),
    /// so that an `AgentComplete` without `Uniqueid` can be matched.
    pub(in crate::sources::ami) call: Option<String>,
    pub(in crate::sources::ami) ringing: bool,
    /// The caller this member is being rung for (AgentCalled).
    pub(in crate::sources::ami) ringing_for: Option<String>,
    /// The device reported busy (ringing, in use) since the ring began: a
    /// later "not in use" means the ring is over.
    pub(in crate::sources::ami) ring_busy_seen: bool,
    pub(in crate::sources::ami) wrapup_ms: i64,
    pub(in crate::sources::ami) wrap_until: Ts,
}

impl Member {
    pub(in crate::sources::ami) fn from_block(
        b: &MemberBlock<'_>,
        agent: String,
        old: Option<&Member>,
    ) -> Member {
        let mut wrap_until = if b.wrapup_ms > 0 && b.last_call.0 > 0 {
            b.last_call.plus_ms(b.wrapup_ms)
        } else {
            Ts::ZERO
        };
        if let Some(o) = old {
            wrap_until = wrap_until.max(o.wrap_until);
        }
        Member {
            agent,
            status: b.status,
            paused: b.paused,
            // `module reload app_queue.so` keeps a static member paused but
            // lists it with an empty PausedReason (Asterisk 20.20.1): a pause
            // that goes on keeps the reason it was given.
            reason: b.paused_reason.map(str::to_string).or_else(|| {
                old.filter(|o| b.paused && o.paused)
                    .and_then(|o| o.reason.clone())
            }),
            in_call: b.in_call,
            // Kept through status changes: Asterisk reports the member
            // "Not in use" (InCall 0) before the AgentComplete of the call.
            call: old.and_then(|o| o.call.clone()),
            ringing: old.is_some_and(|o| o.ringing),
            ringing_for: old.and_then(|o| o.ringing_for.clone()),
            ring_busy_seen: old.is_some_and(|o| o.ring_busy_seen),
            wrapup_ms: b.wrapup_ms,
            wrap_until,
        }
    }

    /// A device state seen while ringing: busy (ringing, in use, on hold)
    /// is the ring going on; idle or gone after that is the ring over (the
    /// caller hung up, the call went elsewhere) even when no
    /// `AgentRingNoAnswer` follows, which is what Asterisk 20 does when the
    /// caller hangs up during the ring.
    fn track_ring(&mut self) {
        if !self.ringing {
            return;
        }
        match self.status {
            2 | 3 | 6 | 7 | 8 => self.ring_busy_seen = true,
            1 | 4 | 5 if self.ring_busy_seen => self.stop_ringing(),
            _ => {}
        }
    }

    pub(in crate::sources::ami) fn stop_ringing(&mut self) {
        self.ringing = false;
        self.ringing_for = None;
        self.ring_busy_seen = false;
    }

    pub(in crate::sources::ami) fn logged_in(&self) -> bool {
        !matches!(self.status, 4 | 5)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::sources::ami) enum CallerState {
    Waiting,
    /// `QueueCallerLeave` seen without an abandon: answered if
    /// `AgentConnect` follows, else left (key) at this time.
    Left(Ts),
}

#[derive(Debug, Clone)]
pub(in crate::sources::ami) struct Caller {
    pub(in crate::sources::ami) queue: String,
    pub(in crate::sources::ami) joined: Ts,
    pub(in crate::sources::ami) hangup_requested: bool,
    /// Members rung for this caller whose ring has not ended with an
    /// `AgentRingNoAnswer`. A queue timeout ends every ring with one first
    /// (Asterisk 20, tests/data/ami/asterisk20_timeout.ami); a caller who
    /// goes away mid-ring leaves them open (queue_log RINGCANCELED).
    pub(in crate::sources::ami) rings_open: u32,
    pub(in crate::sources::ami) state: CallerState,
}

/// The queue state AMI's stream needs to become domain events (see the
/// module doc). Bounded: callers leave on their outcome, and every resync
/// drops what Asterisk no longer lists.
#[derive(Debug)]
pub struct Tracker {
    pub(in crate::sources::ami) ids: AgentIds,
    pub(in crate::sources::ami) callers: HashMap<String, Caller>,
    /// (queue, interface lower-cased) → member; ordered so that one
    /// queue's members are a range.
    pub(in crate::sources::ami) members: BTreeMap<(String, String), Member>,
    /// agent → its member keys (an agent's state folds these).
    pub(in crate::sources::ami) by_agent: HashMap<String, Vec<(String, String)>>,
    /// Held leaves by time (see [`LEAVE_GRACE_MS`]).
    pub(in crate::sources::ami) leaves: BTreeSet<(Ts, String)>,
    /// Wrap-up ends by time, per agent.
    pub(in crate::sources::ami) wraps: BTreeSet<(Ts, String)>,
    /// What the engine believes each agent is doing (after our events).
    pub(in crate::sources::ami) believed: HashMap<String, AgentStatus>,
    /// Queues the engine believes each agent is paused in, one by one
    /// (Asterisk pauses per queue; `AgentQueuePause`).
    pub(in crate::sources::ami) believed_paused: HashMap<String, BTreeSet<String>>,
    /// This connection delivered `call`-class events (`read = call` works).
    pub(in crate::sources::ami) call_class_seen: bool,
    pub(in crate::sources::ami) warned_no_call_class: bool,
    pub(in crate::sources::ami) clock: Ts,
    /// Events that could not be used (an `AgentComplete` matching no call).
    pub(in crate::sources::ami) rejects: Vec<Reject>,
}

fn queue_pause(ts: Ts, agent: &str, queue: &str, paused: bool) -> Event {
    Event {
        ts,
        kind: EventKind::AgentQueuePause {
            agent: agent.to_string(),
            queue: queue.to_string(),
            paused,
        },
    }
}

impl Tracker {
    pub fn new(ids: AgentIds) -> Self {
        Tracker {
            ids,
            callers: HashMap::new(),
            members: BTreeMap::new(),
            by_agent: HashMap::new(),
            leaves: BTreeSet::new(),
            wraps: BTreeSet::new(),
            believed: HashMap::new(),
            believed_paused: HashMap::new(),
            call_class_seen: false,
            warned_no_call_class: false,
            clock: Ts::ZERO,
            rejects: Vec::new(),
        }
    }

    /// Events the tracker could not use, since the last call.
    pub fn poll_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    /// The caller `call` is no longer waiting to be put through (it hung
    /// up, timed out, left, or another member answered): members rung for
    /// it stop ringing. Asterisk sends no `AgentRingNoAnswer` for them.
    fn stop_ringing_for(&mut self, call: &str, ts: Ts, out: &mut Vec<Event>) {
        let mut agents = Vec::new();
        for m in self.members.values_mut() {
            if m.ringing && m.ringing_for.as_deref() == Some(call) {
                m.stop_ringing();
                agents.push(m.agent.clone());
            }
        }
        agents.dedup();
        for a in agents {
            self.refresh_agent(&a, None, ts, out);
        }
    }

    pub fn agent_ids(&self) -> &AgentIds {
        &self.ids
    }

    /// A new connection: what it can deliver is not known yet.
    pub fn on_connect(&mut self) {
        self.call_class_seen = false;
    }

    /// Notes the event class from a `Privilege:` header.
    pub fn note_privilege(&mut self, privilege: &str) {
        if !self.call_class_seen
            && privilege
                .split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("call"))
        {
            self.call_class_seen = true;
        }
    }

    /// Whether a member (queue, interface) is known.
    pub fn has_member(&self, queue: &str, interface: &str) -> bool {
        self.members
            .contains_key(&(queue.to_string(), interface.to_ascii_lowercase()))
    }

    /// Whether a caller is known (waiting, or left and not yet judged).
    pub fn has_caller(&self, call: &str) -> bool {
        self.callers.contains_key(call)
    }

    /// The earliest time [`Tracker::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Ts> {
        let l = self.leaves.first().map(|(t, _)| t.plus_ms(LEAVE_GRACE_MS));
        let w = self.wraps.first().map(|(t, _)| *t);
        match (l, w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the tracker's clock: judges held leaves whose grace ran out and
    /// ends wrap-ups that are due.
    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<Event>) {
        if now < self.clock {
            return;
        }
        self.clock = now;
        while let Some((t, call)) = self.leaves.first().cloned() {
            if t.plus_ms(LEAVE_GRACE_MS) > now {
                break;
            }
            self.leaves.pop_first();
            self.judge_leave(&call, out);
        }
        while let Some((t, agent)) = self.wraps.first().cloned() {
            if t > now {
                break;
            }
            self.wraps.pop_first();
            self.refresh_agent(&agent, None, t, out);
        }
    }

    /// Removes a caller (and its held leave, if any).
    pub(in crate::sources::ami) fn take_caller(&mut self, call: &str) -> Option<Caller> {
        let c = self.callers.remove(call)?;
        if let CallerState::Left(t) = c.state {
            self.leaves.remove(&(t, call.to_string()));
        }
        Some(c)
    }

    pub(in crate::sources::ami) fn put_member(&mut self, key: (String, String), m: Member) {
        if self
            .members
            .get(&key)
            .is_some_and(|old| old.agent != m.agent)
        {
            self.drop_member(&key);
        }
        if m.wrap_until > self.clock {
            self.wraps.insert((m.wrap_until, m.agent.clone()));
        }
        let keys = self.by_agent.entry(m.agent.clone()).or_default();
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        self.members.insert(key, m);
    }

    pub(in crate::sources::ami) fn drop_member(
        &mut self,
        key: &(String, String),
    ) -> Option<Member> {
        let m = self.members.remove(key)?;
        if let Some(v) = self.by_agent.get_mut(&m.agent) {
            v.retain(|k| k != key);
            if v.is_empty() {
                self.by_agent.remove(&m.agent);
            }
        }
        Some(m)
    }

    fn judge_leave(&mut self, call: &str, out: &mut Vec<Event>) {
        if let Some(c) = self.take_caller(call)
            && let CallerState::Left(t) = c.state
        {
            out.push(Event {
                ts: t,
                kind: EventKind::CallExited {
                    call: call.to_string(),
                    queue: c.queue,
                    reason: ExitReason::Key,
                },
            });
            self.stop_ringing_for(call, t, out);
        }
    }

    /// Applies one live event at event time `ts`.
    pub fn handle_event(&mut self, ev: &QueueEvent<'_>, ts: Ts, out: &mut Vec<Event>) {
        self.handle_timeout(ts, out);
        match *ev {
            QueueEvent::CallerJoin {
                queue,
                call,
                caller,
            } => {
                if self.callers.contains_key(call) {
                    // The same channel re-entering (e.g. after a key exit):
                    // judge the old visit first.
                    self.judge_leave(call, out);
                    self.take_caller(call);
                }
                self.callers.insert(
                    call.to_string(),
                    Caller {
                        queue: queue.to_string(),
                        joined: ts,
                        hangup_requested: false,
                        rings_open: 0,
                        state: CallerState::Waiting,
                    },
                );
                out.push(Event {
                    ts,
                    kind: EventKind::CallEnqueued {
                        call: call.to_string(),
                        queue: queue.to_string(),
                        caller: caller.map(str::to_string),
                        priority: None,
                    },
                });
            }
            QueueEvent::Hangup { call, request } => {
                if let Some(c) = self.callers.get_mut(call) {
                    match c.state {
                        CallerState::Waiting if request => c.hangup_requested = true,
                        CallerState::Waiting => {}
                        CallerState::Left(_) => self.judge_leave(call, out),
                    }
                }
            }
            QueueEvent::CallerAbandon { queue, call, .. } => {
                // Gone mid-ring: the AMI Hangup action raises no hang-up
                // request event, but a timeout would have ended the rings.
                let hung_up = self
                    .take_caller(call)
                    .map(|c| c.hangup_requested || c.rings_open > 0);
                let kind = match hung_up {
                    Some(true) => EventKind::CallAbandoned {
                        call: call.to_string(),
                        queue: queue.to_string(),
                    },
                    _ if !self.call_class_seen => {
                        if !self.warned_no_call_class {
                            self.warned_no_call_class = true;
                            tracing::warn!(
                                "no call-class AMI events seen: cannot tell a caller hang-up from a queue timeout; counting QueueCallerAbandon as abandoned (grant read = agent,call)"
                            );
                        }
                        EventKind::CallAbandoned {
                            call: call.to_string(),
                            queue: queue.to_string(),
                        }
                    }
                    _ => EventKind::CallExited {
                        call: call.to_string(),
                        queue: queue.to_string(),
                        reason: if self.queue_has_staff(queue) {
                            ExitReason::Timeout
                        } else {
                            ExitReason::Empty
                        },
                    },
                };
                out.push(Event { ts, kind });
                self.stop_ringing_for(call, ts, out);
            }
            QueueEvent::CallerLeave { call, .. } => {
                if let Some(c) = self.callers.get_mut(call)
                    && c.state == CallerState::Waiting
                {
                    c.state = CallerState::Left(ts);
                    self.leaves.insert((ts, call.to_string()));
                }
            }
            QueueEvent::AgentConnect {
                queue,
                call,
                interface,
                name,
                ..
            } => {
                self.take_caller(call);
                let agent = self.ids.agent(interface, name);
                if let Some(m) = self.member_mut(queue, interface) {
                    m.in_call = true;
                    m.call = Some(call.to_string());
                    m.stop_ringing();
                }
                out.push(Event {
                    ts,
                    kind: EventKind::CallAnswered {
                        call: call.to_string(),
                        queue: queue.to_string(),
                        agent: agent.clone(),
                    },
                });
                self.believed.insert(agent, AgentStatus::OnCall);
                // Ring-all: the other members rung for this caller stop.
                self.stop_ringing_for(call, ts, out);
            }
            QueueEvent::AgentComplete {
                queue,
                call,
                interface,
                name,
                ..
            } => {
                let agent = self.ids.agent(interface, name);
                let mut on = None;
                if let Some(m) = self.member_mut(queue, interface) {
                    on = m.call.take();
                    m.in_call = false;
                    if m.wrapup_ms > 0 {
                        m.wrap_until = ts.plus_ms(m.wrapup_ms);
                        let until = m.wrap_until;
                        self.wraps.insert((until, agent.clone()));
                    }
                }
                // Without Uniqueid (the agent hung up first, or Asterisk
                // stopped), the member's own call is the one that ended.
                match call.map(str::to_string).or(on) {
                    Some(call) => out.push(Event {
                        ts,
                        kind: EventKind::CallCompleted {
                            call,
                            queue: queue.to_string(),
                            agent: agent.clone(),
                        },
                    }),
                    None => self.rejects.push(Reject::new(
                        RejectReason::UnknownCall,
                        format!(
                            "AgentComplete without Uniqueid for {interface} in {queue}, and no call of that member was seen answered; agent state kept, not counted"
                        ),
                    )),
                }
                // The engine now believes the agent free (or in its own
                // timed wrap-up); correct it only when we know better.
                self.believed.insert(agent.clone(), AgentStatus::Available);
                self.refresh_agent(&agent, Some(queue), ts, out);
            }
            QueueEvent::AgentCalled {
                queue,
                call,
                interface,
                name,
            } => {
                let agent = self.ids.agent(interface, name);
                if let Some(c) = self.callers.get_mut(call) {
                    c.rings_open = c.rings_open.saturating_add(1);
                }
                if let Some(m) = self.member_mut(queue, interface) {
                    m.ringing = true;
                    m.ringing_for = Some(call.to_string());
                    m.ring_busy_seen = false;
                }
                self.refresh_agent(&agent, Some(queue), ts, out);
            }
            QueueEvent::AgentRingNoAnswer {
                queue,
                call,
                interface,
                name,
                ..
            }
            | QueueEvent::AgentDump {
                queue,
                call,
                interface,
                name,
            } => {
                if let Some(c) = self.callers.get_mut(call) {
                    c.rings_open = c.rings_open.saturating_sub(1);
                }
                let agent = self.ids.agent(interface, name);
                if let Some(m) = self.member_mut(queue, interface) {
                    m.stop_ringing();
                }
                self.refresh_agent(&agent, Some(queue), ts, out);
            }
            QueueEvent::Member { change, ref block } => {
                self.apply_member(change, block, ts, out);
            }
            QueueEvent::ListParams { .. }
            | QueueEvent::ListMember(_)
            | QueueEvent::ListEntry { .. }
            | QueueEvent::ListComplete => {}
        }
    }

    fn apply_member(
        &mut self,
        change: MemberChange,
        b: &MemberBlock<'_>,
        ts: Ts,
        out: &mut Vec<Event>,
    ) {
        let agent = self.ids.agent(b.interface, b.name);
        let key = (b.queue.to_string(), b.interface.to_ascii_lowercase());
        if change == MemberChange::Removed {
            self.drop_member(&key);
            out.push(Event {
                ts,
                kind: EventKind::AgentLeftQueue {
                    agent: agent.clone(),
                    queue: b.queue.to_string(),
                },
            });
            self.refresh_agent(&agent, None, ts, out);
            return;
        }
        let old = self.members.get(&key);
        let known = old.is_some();
        let mut m = Member::from_block(b, agent.clone(), old);
        m.track_ring();
        self.put_member(key, m);
        if !known {
            out.push(Event {
                ts,
                kind: EventKind::AgentJoinedQueue {
                    agent: agent.clone(),
                    queue: b.queue.to_string(),
                },
            });
        }
        self.refresh_agent(&agent, Some(b.queue), ts, out);
    }

    fn member_mut(&mut self, queue: &str, interface: &str) -> Option<&mut Member> {
        self.members
            .get_mut(&(queue.to_string(), interface.to_ascii_lowercase()))
    }

    /// Whether a queue has a logged-in, unpaused member (leavewhenempty's
    /// view, roughly).
    fn queue_has_staff(&self, queue: &str) -> bool {
        self.members
            .range((queue.to_string(), String::new())..)
            .take_while(|((q, _), _)| q == queue)
            .any(|(_, m)| m.logged_in() && !m.paused)
    }

    /// The folded state of an agent across its memberships (module doc).
    pub(in crate::sources::ami) fn folded(
        &self,
        agent: &str,
        now: Ts,
    ) -> (AgentStatus, Option<String>) {
        let mine: Vec<&Member> = self
            .by_agent
            .get(agent)
            .map(|keys| keys.iter().filter_map(|k| self.members.get(k)).collect())
            .unwrap_or_default();
        let logged: Vec<&&Member> = mine.iter().filter(|m| m.logged_in()).collect();
        if logged.is_empty() {
            return (AgentStatus::LoggedOut, None);
        }
        // A Local-channel member is "In use" (2) while it rings: for a
        // member being rung, 2 is the ring itself, not another call.
        if logged
            .iter()
            .any(|m| m.in_call || matches!(m.status, 3 | 7 | 8) || (m.status == 2 && !m.ringing))
        {
            return (AgentStatus::OnCall, None);
        }
        if logged.iter().any(|m| m.ringing || m.status == 6) {
            return (AgentStatus::Ringing, None);
        }
        if logged.iter().all(|m| m.paused) {
            let reason = logged.iter().find_map(|m| m.reason.clone());
            return (AgentStatus::Paused, reason);
        }
        if logged.iter().any(|m| m.wrap_until > now) {
            return (AgentStatus::WrapUp, None);
        }
        (AgentStatus::Available, None)
    }

    /// Emits `AgentQueuePause` for each queue where the member's own pause
    /// differs from what the engine believes. Queues the agent is no longer
    /// a member of are only forgotten: leaving a queue drops its pause.
    fn sync_queue_pauses(&mut self, agent: &str, ts: Ts, out: &mut Vec<Event>) {
        let keys: &[(String, String)] = self.by_agent.get(agent).map_or(&[], |k| k);
        let paused: BTreeSet<String> = keys
            .iter()
            .filter(|k| {
                self.members
                    .get(*k)
                    .is_some_and(|m| m.logged_in() && m.paused)
            })
            .map(|k| k.0.clone())
            .collect();
        let was = self.believed_paused.remove(agent).unwrap_or_default();
        for q in was.difference(&paused) {
            if keys.iter().any(|k| &k.0 == q) {
                out.push(queue_pause(ts, agent, q, false));
            }
        }
        for q in paused.difference(&was) {
            out.push(queue_pause(ts, agent, q, true));
        }
        if !paused.is_empty() {
            self.believed_paused.insert(agent.to_string(), paused);
        }
    }

    /// Emits the agent's folded state if the engine believes otherwise.
    pub(in crate::sources::ami) fn refresh_agent(
        &mut self,
        agent: &str,
        queue: Option<&str>,
        ts: Ts,
        out: &mut Vec<Event>,
    ) {
        self.sync_queue_pauses(agent, ts, out);
        let (status, reason) = self.folded(agent, ts);
        let believed = self.believed.get(agent).copied();
        // Paused with a new reason is a change too.
        let changed = believed != Some(status) || status == AgentStatus::Paused;
        if !changed {
            return;
        }
        self.believed.insert(agent.to_string(), status);
        out.push(Event {
            ts,
            kind: EventKind::AgentState {
                agent: agent.to_string(),
                status,
                reason,
                queue: queue.map(str::to_string),
            },
        });
    }
}
