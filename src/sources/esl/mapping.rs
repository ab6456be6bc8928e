//! mod_callcenter events (`CC-Action`) to domain events (protocols.md 2.2,
//! 2.3).
//!
//! mod_callcenter tells us about calls and about agents' *status* (set by
//! people) and *state* (set by the engine), but several things a supervisor
//! sees have no event at all: wrap-up after a call, and the reject / busy /
//! no-answer delays after a failed offer, both of which FreeSWITCH enforces
//! silently in its agent selection. So the [`Mapper`] keeps a small model per
//! agent (status, state, when wrap-up and delays end) and derives one
//! acdmon state from it, emitting `agent_state` only when that derived state
//! changes; timers that end a wrap-up or a delay are driven by [`Mapper::handle_timeout`]
//! with event time (the live task's tick, or the next event in replay).
//! Deriving also absorbs the `agent-status-change` that fires without any
//! change.
//!
//! Call-flow event times come from the `CC-*-Time` headers (epoch seconds),
//! anchored at the call's enqueue time, so the engine's wait is exactly
//! mod_callcenter's `Answered − Joined` and talk is `Bridge-Terminated −
//! Answered`; everything else uses `Event-Date-Timestamp` (µs).
//!
//! An answer is emitted when the bridge is confirmed (the agent's state
//! becomes `In a queue call`, or the bridge ends with `CC-Agent-Bridged:
//! true`), not at `bridge-agent-start`: when the bridge fails after that
//! event, mod_callcenter puts the caller back to waiting (agent gone) or
//! counts it abandoned (caller gone), and an answer already sent could not be
//! taken back.
//!
//! Reconciling with the lists after a resync, and the cross-check that asks
//! for one, live beside this file in `resync`.

use std::collections::{BTreeSet, HashMap};

use super::lists::{AgentRow, MemberRow, TierRow};
use super::parser::{CcEvent, Field};
use crate::event::{AgentStatus, Event, EventKind, ExitReason, ResyncCaller, ResyncMember};
use crate::sources::{Reject, RejectReason};
use crate::time::Ts;

/// Wrap-up and delay times (ms) from configuration. FreeSWITCH keeps these
/// per agent (`wrap-up-time`, `*-delay-time` in callcenter.conf.xml); the
/// resync lists tell us each agent's values. Explicit configuration wins
/// over what the lists say; the defaults apply to agents we have not listed.
#[derive(Debug, Clone, Default)]
pub struct TimerConfig {
    pub wrap_up_ms: i64,
    pub reject_delay_ms: i64,
    pub busy_delay_ms: i64,
    pub no_answer_delay_ms: i64,
    /// Per-queue wrap-up, for deployments that want one per queue.
    pub queue_wrap_up_ms: HashMap<String, i64>,
    /// Per-agent overrides.
    pub agents: HashMap<String, AgentTimers>,
}

/// Per-agent timer values; `None` = not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentTimers {
    pub wrap_up_ms: Option<i64>,
    pub reject_delay_ms: Option<i64>,
    pub busy_delay_ms: Option<i64>,
    pub no_answer_delay_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Waiting,
    Answered {
        agent: String,
        answered: Ts,
        answered_s: i64,
    },
    Completed,
}

#[derive(Debug, Clone)]
struct Call {
    queue: String,
    enqueued: Ts,
    /// The enqueue time in whole seconds, to anchor the `CC-*-Time` headers.
    anchor_s: i64,
    phase: Phase,
    /// An answer seen at `bridge-agent-start`, awaiting confirmation:
    /// (agent, answer time, `CC-Agent-Answered-Time`).
    pending: Option<(String, Ts, i64)>,
    /// False for calls answered before a resync and unknown to the engine:
    /// their completion is not sent (the engine would reject it).
    counted: bool,
}

/// A caller found by a resync, with the queue it waits in.
#[derive(Debug, Clone)]
pub struct QueueLists {
    pub queue: String,
    /// The queue's `max-wait-time` (s, 0 = none) from `queue list`.
    pub max_wait_s: i64,
    pub agents: Vec<AgentRow>,
    pub members: Vec<MemberRow>,
    pub tiers: Vec<TierRow>,
}

/// One mapped result: a domain event or a rejected input.
pub type Mapped = Result<Event, Reject>;

/// The state machine from `callcenter::info` events to domain events.
#[derive(Debug)]
pub struct Mapper {
    timers: TimerConfig,
    agents: HashMap<String, Agent>,
    calls: HashMap<String, Call>,
    /// Calls whose outcome has been sent, with when they ended: an
    /// `Abandoned` row lingers in `queue list members` (until the queue's
    /// `discard-abandoned-after`) and must not be counted again by a later
    /// resync.
    ended: HashMap<String, Ts>,
    due: BTreeSet<(Ts, String)>,
    clock: Ts,
    /// `members-count` cross-check: consecutive mismatches per queue.
    mismatches: HashMap<String, u8>,
    /// Whether a resync has given us a full picture to cross-check against.
    baseline: bool,
    /// Set when the cross-check says events were lost.
    resync_wanted: Option<String>,
    pub check_counts: bool,
    /// Calls that ended (were answered, abandoned, timed out) more than a
    /// margin before this were counted by the engine before this mapper
    /// existed (a restored checkpoint; a source restarted by a reload):
    /// their list rows are not sent again.
    pub counted_until: Option<Ts>,
}

/// Lines or events that reached the engine just before a checkpoint may
/// miss it; rows within this margin are counted (the engine rejects a
/// repeated arrival as `duplicate_call`).
const COUNTED_MARGIN_MS: i64 = 5_000;

const PRUNE_COMPLETED_MS: i64 = 10 * 60 * 1000;
const PRUNE_ANY_MS: i64 = 24 * 3600 * 1000;

impl Mapper {
    pub fn new(timers: TimerConfig) -> Self {
        Mapper {
            timers,
            agents: HashMap::new(),
            calls: HashMap::new(),
            ended: HashMap::new(),
            due: BTreeSet::new(),
            clock: Ts::ZERO,
            mismatches: HashMap::new(),
            baseline: false,
            resync_wanted: None,
            check_counts: true,
            counted_until: None,
        }
    }

    /// The latest event time seen.
    pub fn clock(&self) -> Ts {
        self.clock
    }

    /// Why a resync is wanted (the cross-check failed), once.
    pub fn take_resync_wanted(&mut self) -> Option<String> {
        self.resync_wanted.take()
    }

    /// Callers we believe wait in `queue` (Waiting or being offered).
    pub fn waiting_in(&self, queue: &str) -> usize {
        self.calls
            .values()
            .filter(|c| c.queue == queue && c.phase == Phase::Waiting)
            .count()
    }

    fn agent(&mut self, name: &str) -> &mut Agent {
        if !self.agents.contains_key(name) {
            self.agents.insert(name.to_string(), Agent::new());
        }
        self.agents.get_mut(name).expect("inserted above")
    }

    fn wrap_ms(&self, agent: &str, queue: &str) -> i64 {
        let over = self.timers.agents.get(agent).and_then(|t| t.wrap_up_ms);
        let q = self.timers.queue_wrap_up_ms.get(queue).copied();
        let learned = self.agents.get(agent).and_then(|a| a.learned.wrap_up_ms);
        over.or(q).or(learned).unwrap_or(self.timers.wrap_up_ms)
    }

    fn delay_ms(&self, agent: &str, pick: fn(&AgentTimers) -> Option<i64>, default: i64) -> i64 {
        let over = self.timers.agents.get(agent).and_then(pick);
        let learned = self.agents.get(agent).and_then(|a| pick(&a.learned));
        over.or(learned).unwrap_or(default)
    }

    /// The next wrap-up or delay to end (see [`Mapper::handle_timeout`]).
    pub fn poll_timeout(&self) -> Option<Ts> {
        self.due.first().map(|(t, _)| *t)
    }

    /// Moves time to `now`: ends wrap-ups and delays that are due, each at
    /// its own time.
    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<Mapped>) {
        while let Some((due, _)) = self.due.first() {
            if *due > now {
                break;
            }
            let Some((due, agent)) = self.due.pop_first() else {
                break;
            };
            self.clock = self.clock.max(due);
            self.refresh(&agent, due, out);
        }
        if now > self.clock {
            self.clock = now;
        }
    }

    /// Sends the agent's derived state if it changed, and arms its timer.
    fn refresh(&mut self, name: &str, ts: Ts, out: &mut Vec<Mapped>) {
        let Some(a) = self.agents.get_mut(name) else {
            return;
        };
        let Some(now) = a.derive(ts) else {
            return;
        };
        if a.emitted.as_ref() != Some(&now) {
            let queue = match now.0 {
                AgentStatus::WrapUp => a.wrap_queue.clone(),
                AgentStatus::Ringing => a.offering.clone(),
                _ => None,
            };
            out.push(Ok(Event {
                ts,
                kind: EventKind::AgentState {
                    agent: name.to_string(),
                    status: now.0,
                    reason: now.1.clone(),
                    queue,
                },
            }));
            a.emitted = Some(now);
        }
        let next = [a.wrap_until, a.ready_until]
            .into_iter()
            .flatten()
            .filter(|t| *t > ts)
            .min();
        if let Some(t) = next {
            self.due.insert((t, name.to_string()));
        }
    }

    /// Maps one event. `ts` is its `Event-Date-Timestamp` (or the caller's
    /// clock when it has none).
    pub fn handle_event(&mut self, ev: &CcEvent<'_>, out: &mut Vec<Mapped>) {
        let base = ev
            .int(Field::Timestamp)
            .map(|us| Ts(us.div_euclid(1000)))
            .unwrap_or(self.clock);
        self.handle_timeout(base, out);
        let Some(action) = ev.text(Field::Action) else {
            return;
        };
        match action.as_ref() {
            "member-queue-start" | "member-queue-resume" => self.enqueue(ev, base, out),
            "agent-offering" => {
                let Some(agent) = need(ev, Field::Agent, &action, out) else {
                    return;
                };
                let queue = ev.text(Field::Queue).map(|q| q.into_owned());
                let a = self.agent(&agent);
                a.offering = queue;
                a.state = FsState::Receiving;
                a.after_call = false;
                self.refresh(&agent, base, out);
            }
            "bridge-agent-start" => self.bridge_start(ev, base, out),
            "bridge-agent-end" => self.bridge_end(ev, base, out),
            "bridge-agent-fail" => self.bridge_fail(ev, base, out),
            "member-queue-end" => self.member_end(ev, base, out),
            "agent-state-change" => {
                let Some(agent) = need(ev, Field::Agent, &action, out) else {
                    return;
                };
                let state = FsState::parse(&ev.get(Field::AgentState).unwrap_or_default());
                let a = self.agent(&agent);
                a.state = state;
                match state {
                    FsState::Receiving | FsState::InQueueCall => a.after_call = false,
                    _ => {}
                }
                if state == FsState::InQueueCall {
                    self.confirm_answer(&agent, out);
                }
                self.refresh(&agent, base, out);
            }
            "agent-status-change" => {
                let Some(agent) = need(ev, Field::Agent, &action, out) else {
                    return;
                };
                let status = FsStatus::parse(&ev.get(Field::AgentStatus).unwrap_or_default());
                let a = self.agent(&agent);
                if !matches!(status, FsStatus::Available | FsStatus::OnDemand) {
                    a.after_call = false;
                }
                a.status = status;
                self.refresh(&agent, base, out);
            }
            "members-count" => self.cross_check(ev),
            // agent-max-no-answer is followed by the agent-status-change
            // that matters; agent-add, agent-contact-change and the *-get
            // replies change nothing we show.
            _ => {}
        }
        self.prune();
    }

    fn enqueue(&mut self, ev: &CcEvent<'_>, base: Ts, out: &mut Vec<Mapped>) {
        let Some(call) = call_id(ev) else {
            out.push(Err(missing("member-queue-start", "CC-Member-UUID")));
            return;
        };
        let Some(queue) = ev.text(Field::Queue) else {
            out.push(Err(missing("member-queue-start", "CC-Queue")));
            return;
        };
        if self
            .calls
            .get(&call)
            .is_some_and(|c| c.phase == Phase::Waiting && c.queue == queue)
        {
            // Already known (listed by the resync that just ran).
            return;
        }
        let enqueued = match ev.int(Field::JoinedEpochVar) {
            Some(j) if (Ts::from_secs(j).0 - base.0).abs() <= 5_000 => Ts::from_secs(j),
            _ => base,
        };
        self.calls.insert(
            call.clone(),
            Call {
                queue: queue.to_string(),
                enqueued,
                anchor_s: enqueued.0.div_euclid(1000),
                phase: Phase::Waiting,
                pending: None,
                counted: true,
            },
        );
        out.push(Ok(Event {
            ts: enqueued,
            kind: EventKind::CallEnqueued {
                call,
                queue: queue.into_owned(),
                caller: ev.text(Field::CidNumber).map(|c| c.into_owned()),
                priority: None,
            },
        }));
    }

    /// The time of a `CC-*-Time` header, anchored at the call's enqueue
    /// (see the module doc). `joined` is `CC-Member-Joined-Time`.
    fn anchored(call: Option<&Call>, joined: Option<i64>, at: Option<i64>, base: Ts) -> Ts {
        match (call, joined, at) {
            (Some(c), Some(j), Some(a)) if (j - c.anchor_s).abs() <= 1 => {
                c.enqueued.plus_ms((a - j).max(0) * 1000)
            }
            (Some(c), _, Some(a)) => Ts::from_secs(a).max(c.enqueued),
            (None, _, Some(a)) => Ts::from_secs(a),
            _ => base,
        }
    }

    fn bridge_start(&mut self, ev: &CcEvent<'_>, base: Ts, out: &mut Vec<Mapped>) {
        let (Some(call), Some(queue), Some(agent)) =
            (call_id(ev), ev.text(Field::Queue), ev.text(Field::Agent))
        else {
            out.push(Err(missing(
                "bridge-agent-start",
                "CC-Member-UUID, CC-Queue or CC-Agent",
            )));
            return;
        };
        let answered_s = ev.int(Field::AnsweredTime);
        let ts = Self::anchored(
            self.calls.get(&call),
            ev.int(Field::JoinedTime),
            answered_s,
            base,
        );
        let c = self.calls.entry(call.clone()).or_insert_with(|| Call {
            queue: queue.to_string(),
            enqueued: ts,
            anchor_s: ts.0.div_euclid(1000),
            phase: Phase::Waiting,
            pending: None,
            counted: true,
        });
        c.pending = Some((
            agent.to_string(),
            ts,
            answered_s.unwrap_or(ts.0.div_euclid(1000)),
        ));
        let a = self.agent(&agent);
        a.pending = Some(call);
        a.offering = Some(queue.into_owned());
    }

    /// Sends the pending answer of `agent`'s call, if any.
    fn confirm_answer(&mut self, agent: &str, out: &mut Vec<Mapped>) {
        let Some(call) = self.agents.get_mut(agent).and_then(|a| a.pending.take()) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some((who, ts, answered_s)) = c.pending.take() else {
            return;
        };
        if who != agent || c.phase != Phase::Waiting {
            return;
        }
        c.phase = Phase::Answered {
            agent: who.clone(),
            answered: ts,
            answered_s,
        };
        out.push(Ok(Event {
            ts,
            kind: EventKind::CallAnswered {
                call,
                queue: c.queue.clone(),
                agent: who,
            },
        }));
        if let Some(a) = self.agents.get_mut(agent) {
            a.emitted = Some((AgentStatus::OnCall, None));
            a.state = FsState::InQueueCall;
            a.after_call = false;
        }
    }

    fn bridge_end(&mut self, ev: &CcEvent<'_>, base: Ts, out: &mut Vec<Mapped>) {
        let (Some(call), Some(agent)) = (call_id(ev), ev.text(Field::Agent)) else {
            out.push(Err(missing(
                "bridge-agent-end",
                "CC-Member-UUID or CC-Agent",
            )));
            return;
        };
        let bridged = ev
            .get(Field::AgentBridged)
            .is_none_or(|b| b.eq_ignore_ascii_case("true"));
        if !bridged {
            // The bridge never happened: forget the answer. The caller goes
            // back to waiting, or leaves (member-queue-end, Cancel).
            if let Some(c) = self.calls.get_mut(&call) {
                c.pending = None;
            }
            if let Some(a) = self.agents.get_mut(agent.as_ref())
                && a.pending.as_deref() == Some(call.as_str())
            {
                a.pending = None;
            }
            return;
        }
        self.confirm_answer(&agent, out);
        let end = ev.int(Field::BridgeTerminatedTime);
        self.complete(&call, &agent, end, base, out);
    }

    /// Sends the completion of an answered call and starts the agent's
    /// wrap-up. `end_s` is the bridge end (or member leaving) time.
    fn complete(
        &mut self,
        call: &str,
        agent: &str,
        end_s: Option<i64>,
        base: Ts,
        out: &mut Vec<Mapped>,
    ) {
        let (ts, queue, counted) = match self.calls.get_mut(call) {
            Some(c) => {
                let ts = match (&c.phase, end_s) {
                    (
                        Phase::Answered {
                            answered,
                            answered_s,
                            ..
                        },
                        Some(t),
                    ) => answered.plus_ms((t - answered_s).max(0) * 1000),
                    (_, Some(t)) => Ts::from_secs(t),
                    _ => base,
                };
                if c.phase == Phase::Completed {
                    return;
                }
                let counted = c.counted && matches!(c.phase, Phase::Answered { .. });
                c.phase = Phase::Completed;
                (ts, c.queue.clone(), counted)
            }
            None => return,
        };
        if counted {
            out.push(Ok(Event {
                ts,
                kind: EventKind::CallCompleted {
                    call: call.to_string(),
                    queue: queue.clone(),
                    agent: agent.to_string(),
                },
            }));
        }
        let wrap = self.wrap_ms(agent, &queue);
        let a = self.agent(agent);
        if counted {
            // The engine has just put the agent in Available (or its own
            // wrap-up); our wrap-up below overrides it.
            a.emitted = Some((AgentStatus::Available, None));
        }
        a.state = if a.status == FsStatus::OnDemand {
            FsState::Idle
        } else {
            FsState::Waiting
        };
        a.after_call = true;
        a.wrap_queue = Some(queue);
        a.wrap_until = (wrap > 0).then(|| ts.plus_ms(wrap));
        a.offering = None;
        self.refresh(agent, ts, out);
    }

    fn bridge_fail(&mut self, ev: &CcEvent<'_>, base: Ts, out: &mut Vec<Mapped>) {
        let Some(agent) = ev.text(Field::Agent) else {
            out.push(Err(missing("bridge-agent-fail", "CC-Agent")));
            return;
        };
        let cause = ev.get(Field::HangupCause).unwrap_or_default();
        let t = &self.timers;
        let (delay, reason) = match cause.as_ref() {
            "LOSE_RACE" | "ORIGINATOR_CANCEL" => (0, "delay"),
            "NORMAL_CIRCUIT_CONGESTION" | "USER_BUSY" => (
                self.delay_ms(&agent, |a| a.busy_delay_ms, t.busy_delay_ms),
                "busy-delay",
            ),
            "CALL_REJECTED" => (
                self.delay_ms(&agent, |a| a.reject_delay_ms, t.reject_delay_ms),
                "reject-delay",
            ),
            // mod_callcenter's fixed guard against a tight loop.
            "USER_NOT_REGISTERED" => (5_000, "not-registered"),
            _ => (
                self.delay_ms(&agent, |a| a.no_answer_delay_ms, t.no_answer_delay_ms),
                "no-answer-delay",
            ),
        };
        let at = ev
            .int(Field::AbortedTime)
            .map(Ts::from_secs)
            .unwrap_or(base);
        let a = self.agent(&agent);
        a.offering = None;
        a.pending = None;
        if a.state == FsState::Receiving || a.state == FsState::Unknown {
            a.state = FsState::Waiting;
        }
        if delay > 0 {
            a.ready_until = Some(at.plus_ms(delay));
            a.delay_reason = reason;
        }
        self.refresh(&agent, base.max(at), out);
    }

    fn member_end(&mut self, ev: &CcEvent<'_>, base: Ts, out: &mut Vec<Mapped>) {
        let (Some(call), Some(queue)) = (call_id(ev), ev.text(Field::Queue)) else {
            out.push(Err(missing(
                "member-queue-end",
                "CC-Member-UUID or CC-Queue",
            )));
            return;
        };
        let cause = ev.get(Field::Cause).unwrap_or_default();
        let leaving = ev.int(Field::LeavingTime);
        match cause.as_ref() {
            "Terminated" => {
                let agent = ev.text(Field::Agent).map(|a| a.into_owned()).or_else(|| {
                    match self.calls.get(&call).map(|c| &c.phase) {
                        Some(Phase::Answered { agent, .. }) => Some(agent.clone()),
                        _ => None,
                    }
                });
                match (self.calls.get(&call).map(|c| c.phase.clone()), agent) {
                    (Some(Phase::Completed), _) => {}
                    (Some(_), Some(agent)) => {
                        self.confirm_answer(&agent, out);
                        self.complete(&call, &agent, leaving, base, out);
                    }
                    (None, Some(agent)) => {
                        // Never seen: the engine counts it as unknown.
                        out.push(Ok(Event {
                            ts: leaving.map(Ts::from_secs).unwrap_or(base),
                            kind: EventKind::CallCompleted {
                                call: call.clone(),
                                queue: queue.to_string(),
                                agent,
                            },
                        }));
                    }
                    (_, None) => out.push(Err(missing("member-queue-end", "CC-Agent"))),
                }
                self.calls.remove(&call);
                self.ended
                    .insert(call, leaving.map(Ts::from_secs).unwrap_or(base));
            }
            "Cancel" => {
                let reason = ev.get(Field::CancelReason).unwrap_or_default();
                let ts = Self::anchored(
                    self.calls.get(&call),
                    ev.int(Field::JoinedTime),
                    leaving,
                    base,
                );
                let kind = match reason.as_ref() {
                    // BREAK_OUT is what a caller's hang-up looks like; NONE is
                    // a caller who hung up while being connected.
                    "BREAK_OUT" | "NONE" | "" => EventKind::CallAbandoned {
                        call: call.clone(),
                        queue: queue.to_string(),
                    },
                    r => EventKind::CallExited {
                        call: call.clone(),
                        queue: queue.to_string(),
                        reason: match r {
                            "TIMEOUT" => ExitReason::Timeout,
                            "NO_AGENT_TIMEOUT" => ExitReason::Empty,
                            "EXIT_WITH_KEY" => ExitReason::Key,
                            _ => ExitReason::Other,
                        },
                    },
                };
                if let Some(c) = self.calls.remove(&call)
                    && let Some((agent, ..)) = c.pending
                    && let Some(a) = self.agents.get_mut(&agent)
                {
                    a.pending = None;
                }
                self.ended.insert(call, ts);
                out.push(Ok(Event { ts, kind }));
            }
            other => out.push(Err(Reject::new(
                RejectReason::UnknownCause,
                format!("member-queue-end with CC-Cause {other:?} for {call}"),
            ))),
        }
    }

    fn prune(&mut self) {
        let now = self.clock;
        if self.ended.len() >= 4096 {
            // Abandoned rows are discarded after `discard-abandoned-after`
            // (60 s by default); an hour covers any sane setting.
            self.ended.retain(|_, t| now.since(*t) < 3_600_000);
        }
        if self.calls.len() < 4096 {
            return;
        }
        self.calls.retain(|_, c| {
            let age = now.since(c.enqueued);
            age < PRUNE_ANY_MS && !(c.phase == Phase::Completed && age > PRUNE_COMPLETED_MS)
        });
    }
}

fn call_id(ev: &CcEvent<'_>) -> Option<String> {
    ev.text(Field::MemberUuid)
        .or_else(|| ev.text(Field::MemberSessionUuid))
        .map(|c| c.into_owned())
}

fn need(ev: &CcEvent<'_>, f: Field, action: &str, out: &mut Vec<Mapped>) -> Option<String> {
    let v = ev.text(f).map(|v| v.into_owned());
    if v.is_none() {
        out.push(Err(missing(action, f.name())));
    }
    v
}

fn missing(action: &str, what: &str) -> Reject {
    Reject::new(
        RejectReason::MissingField,
        format!("{action} without {what}"),
    )
}

mod agent;
mod resync;

use agent::{Agent, FsState, FsStatus};

#[cfg(test)]
mod counted_until_tests;
