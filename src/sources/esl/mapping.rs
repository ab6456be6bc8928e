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
//! changes; timers that end a wrap-up or a delay are driven by [`Mapper::advance`]
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

/// `CC-Agent-Status` values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FsStatus {
    Unknown,
    LoggedOut,
    Available,
    OnDemand,
    OnBreak,
    Other(String),
}

impl FsStatus {
    fn parse(s: &str) -> FsStatus {
        match s {
            "Logged Out" => FsStatus::LoggedOut,
            "Available" => FsStatus::Available,
            "Available (On Demand)" => FsStatus::OnDemand,
            "On Break" => FsStatus::OnBreak,
            "" | "Unknown" => FsStatus::Unknown,
            other => FsStatus::Other(other.to_string()),
        }
    }
}

/// `CC-Agent-State` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FsState {
    Unknown,
    Waiting,
    Receiving,
    InQueueCall,
    Idle,
    Reserved,
}

impl FsState {
    fn parse(s: &str) -> FsState {
        match s {
            "Waiting" => FsState::Waiting,
            "Receiving" => FsState::Receiving,
            "In a queue call" => FsState::InQueueCall,
            "Idle" => FsState::Idle,
            "Reserved" => FsState::Reserved,
            _ => FsState::Unknown,
        }
    }
}

#[derive(Debug, Clone)]
struct Agent {
    status: FsStatus,
    state: FsState,
    /// What the engine believes, so only changes are sent.
    emitted: Option<(AgentStatus, Option<String>)>,
    wrap_until: Option<Ts>,
    wrap_queue: Option<String>,
    ready_until: Option<Ts>,
    delay_reason: &'static str,
    /// The agent's last bridge just ended: `Idle` (on-demand agents) is
    /// after-call work, not a pause.
    after_call: bool,
    offering: Option<String>,
    /// The call whose answer awaits confirmation.
    pending: Option<String>,
    /// Values from the resync lists.
    learned: AgentTimers,
}

impl Agent {
    fn new() -> Self {
        Agent {
            status: FsStatus::Unknown,
            state: FsState::Unknown,
            emitted: None,
            wrap_until: None,
            wrap_queue: None,
            ready_until: None,
            delay_reason: "delay",
            after_call: false,
            offering: None,
            pending: None,
            learned: AgentTimers::default(),
        }
    }

    /// The acdmon state this agent is in at `now`; `None` when we know too
    /// little to say.
    fn derive(&self, now: Ts) -> Option<(AgentStatus, Option<String>)> {
        // A bridged agent is on the call whatever its status says: a status
        // set during a call (`agent set status … 'On Break'`) takes effect
        // when the call ends, as in mod_callcenter, which keeps the agent
        // "In a queue call" until then.
        if self.state == FsState::InQueueCall {
            return Some((AgentStatus::OnCall, None));
        }
        let available_like = match &self.status {
            FsStatus::LoggedOut => return Some((AgentStatus::LoggedOut, None)),
            FsStatus::OnBreak => return Some((AgentStatus::Paused, Some("On Break".into()))),
            FsStatus::Other(s) => return Some((AgentStatus::Paused, Some(s.clone()))),
            FsStatus::Unknown => false,
            FsStatus::Available | FsStatus::OnDemand => true,
        };
        Some(match self.state {
            FsState::Receiving => (AgentStatus::Ringing, None),
            FsState::InQueueCall => (AgentStatus::OnCall, None),
            FsState::Idle if self.after_call => (AgentStatus::WrapUp, None),
            FsState::Idle => (AgentStatus::Paused, Some("Idle".into())),
            FsState::Waiting | FsState::Reserved | FsState::Unknown => {
                if self.wrap_until.is_some_and(|t| t > now) {
                    (AgentStatus::WrapUp, None)
                } else if self.ready_until.is_some_and(|t| t > now) {
                    (AgentStatus::Paused, Some(self.delay_reason.to_string()))
                } else if !available_like && self.state == FsState::Unknown {
                    return None;
                } else {
                    (AgentStatus::Available, None)
                }
            }
        })
    }
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

    /// Moves time to `now`: ends wrap-ups and delays that are due, each at
    /// its own time.
    pub fn advance(&mut self, now: Ts, out: &mut Vec<Mapped>) {
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
    pub fn on_event(&mut self, ev: &CcEvent<'_>, out: &mut Vec<Mapped>) {
        let base = ev
            .int(Field::Timestamp)
            .map(|us| Ts(us.div_euclid(1000)))
            .unwrap_or(self.clock);
        self.advance(base, out);
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

    fn cross_check(&mut self, ev: &CcEvent<'_>) {
        if !self.check_counts || !self.baseline {
            return;
        }
        if ev.get(Field::Selection).as_deref() != Some("Single-Queue") {
            return;
        }
        let (Some(queue), Some(theirs)) = (ev.text(Field::Queue), ev.int(Field::Count)) else {
            return;
        };
        let ours = self.waiting_in(&queue) as i64;
        let n = self.mismatches.entry(queue.to_string()).or_insert(0);
        if ours == theirs {
            *n = 0;
            return;
        }
        // One mismatch can be a race between mod_callcenter's SQL count and
        // its events; two in a row mean we lost events.
        *n += 1;
        tracing::debug!(%queue, ours, theirs, "members-count differs from tracked callers");
        if *n >= 2 {
            *n = 0;
            self.resync_wanted = Some(format!(
                "members-count for {queue} is {theirs}, we track {ours}"
            ));
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

    /// Sends what `queue list members` (and the agents' `last_bridge_end`)
    /// tell about calls whose events were lost, in time order, before the
    /// queue's `QueueResync`:
    /// - a `Waiting`/`Trying` or `Answered` caller never seen: an arrival at
    ///   `joined_epoch`;
    /// - `Answered` and not yet answered here: the answer at
    ///   `bridge_epoch`, anchored at the enqueue so the wait is
    ///   `bridge_epoch - joined_epoch`, as mod_callcenter counts it;
    /// - `Abandoned` and not yet ended here: mod_callcenter stores every
    ///   unanswered exit so; a wait of at least the queue's `max-wait-time`
    ///   is the timeout, anything else an abandon (hang-up), at
    ///   `abandoned_epoch`. These rows linger, so ended calls are
    ///   remembered and never counted twice;
    /// - a call answered here whose row is gone and whose agent's
    ///   `last_bridge_end` is later than the answer: completed then, with
    ///   the agent's wrap-up.
    fn outcomes_from_lists(&mut self, ql: &QueueLists, now: Ts, out: &mut Vec<Mapped>) {
        let mut evs: Vec<Event> = Vec::new();
        let q = &ql.queue;
        for m in &ql.members {
            let answered = m.state == "Answered" && m.bridge_epoch > 0;
            let abandoned = m.state == "Abandoned";
            if self.ended.contains_key(&m.uuid) {
                if m.is_waiting() {
                    // Resumed (`abandoned-resume-allowed`): a new arrival.
                    self.ended.remove(&m.uuid);
                } else {
                    continue;
                }
            }
            if !(m.is_waiting() || answered || abandoned) {
                continue;
            }
            if !self.calls.contains_key(&m.uuid)
                && let Some(until) = self.counted_until
            {
                let decided_s = if answered {
                    m.bridge_epoch
                } else if abandoned && m.abandoned_epoch > 0 {
                    m.abandoned_epoch
                } else {
                    i64::MAX
                };
                if decided_s != i64::MAX
                    && Ts::from_secs(decided_s) < until.plus_ms(-COUNTED_MARGIN_MS)
                {
                    // Counted before: remember it so a lingering row stays
                    // skipped, and send nothing.
                    self.ended.insert(m.uuid.clone(), Ts::from_secs(decided_s));
                    continue;
                }
            }
            if !self.calls.contains_key(&m.uuid) {
                let joined = m.joined();
                evs.push(Event {
                    ts: joined,
                    kind: EventKind::CallEnqueued {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                        caller: (!m.cid_number.is_empty()).then(|| m.cid_number.clone()),
                        priority: None,
                    },
                });
                self.calls.insert(
                    m.uuid.clone(),
                    Call {
                        queue: q.clone(),
                        enqueued: joined,
                        anchor_s: joined.0.div_euclid(1000),
                        phase: Phase::Waiting,
                        pending: None,
                        counted: true,
                    },
                );
            }
            let Some(c) = self.calls.get_mut(&m.uuid) else {
                continue;
            };
            if c.phase != Phase::Waiting || c.queue != *q {
                continue;
            }
            let joined_s = if m.rejoined_epoch > 0 {
                m.rejoined_epoch
            } else {
                m.joined_epoch
            };
            let anchored = |at: i64| {
                c.enqueued
                    .plus_ms(at.saturating_sub(joined_s).max(0).saturating_mul(1000))
            };
            if answered {
                let ts = anchored(m.bridge_epoch);
                c.pending = None;
                c.phase = Phase::Answered {
                    agent: m.serving_agent.clone(),
                    answered: ts,
                    answered_s: m.bridge_epoch,
                };
                evs.push(Event {
                    ts,
                    kind: EventKind::CallAnswered {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                        agent: m.serving_agent.clone(),
                    },
                });
                self.agent(&m.serving_agent).pending = None;
            } else if abandoned {
                let left = if m.abandoned_epoch > 0 {
                    m.abandoned_epoch
                } else {
                    joined_s
                };
                let ts = anchored(left);
                let timed_out = ql.max_wait_s > 0 && left.saturating_sub(joined_s) >= ql.max_wait_s;
                let kind = if timed_out {
                    EventKind::CallExited {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                        reason: ExitReason::Timeout,
                    }
                } else {
                    EventKind::CallAbandoned {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                    }
                };
                self.calls.remove(&m.uuid);
                self.ended.insert(m.uuid.clone(), ts);
                evs.push(Event { ts, kind });
            }
        }
        // Answered calls whose bridge ended while we were away: completed at
        // the agent's `last_bridge_end`, then its wrap-up, in time order
        // with the rest (the agent may have answered the next caller since;
        // FreeSWITCH offers none during a wrap-up). A wrap-up still running
        // at `now` goes on from the lists' `last_bridge_end` (see
        // `apply_resync`), ended by the usual timer.
        let listed: std::collections::HashSet<&str> =
            ql.members.iter().map(|m| m.uuid.as_str()).collect();
        let ends: HashMap<&str, i64> = ql
            .agents
            .iter()
            .map(|r| (r.name.as_str(), r.last_bridge_end))
            .collect();
        let gone: Vec<(String, String, Ts)> = self
            .calls
            .iter()
            .filter(|(id, c)| c.queue == *q && c.counted && !listed.contains(id.as_str()))
            .filter_map(|(id, c)| match &c.phase {
                Phase::Answered {
                    agent,
                    answered,
                    answered_s,
                } => ends
                    .get(agent.as_str())
                    .filter(|end| **end >= *answered_s)
                    .map(|end| {
                        let ts =
                            answered.plus_ms(end.saturating_sub(*answered_s).saturating_mul(1000));
                        (id.clone(), agent.clone(), ts)
                    }),
                _ => None,
            })
            .collect();
        for (call, agent, end) in gone {
            self.calls.remove(&call);
            self.ended.insert(call.clone(), end);
            evs.push(Event {
                ts: end,
                kind: EventKind::CallCompleted {
                    call,
                    queue: q.clone(),
                    agent: agent.clone(),
                },
            });
            let wrap = self.wrap_ms(&agent, q);
            if wrap > 0 {
                evs.push(Event {
                    ts: end,
                    kind: EventKind::AgentState {
                        agent: agent.clone(),
                        status: AgentStatus::WrapUp,
                        reason: None,
                        queue: Some(q.clone()),
                    },
                });
            }
            if end.plus_ms(wrap) <= now {
                evs.push(Event {
                    ts: end.plus_ms(wrap),
                    kind: EventKind::AgentState {
                        agent,
                        status: AgentStatus::Available,
                        reason: None,
                        queue: None,
                    },
                });
            }
        }
        // Stable: a completion stays before the wrap-up it starts.
        evs.sort_by_key(|e| e.ts);
        out.extend(evs.into_iter().map(Ok));
    }

    /// Applies a resync: updates the agent and call models from the lists and
    /// returns one `QueueResync` per queue, stamped `ts`.
    pub fn apply_resync(&mut self, ts: Ts, lists: Vec<QueueLists>, out: &mut Vec<Mapped>) {
        self.advance(ts, out);
        self.baseline = true;
        self.mismatches.clear();
        for ql in lists {
            for row in &ql.agents {
                let a = self.agent(&row.name);
                a.status = FsStatus::parse(&row.status);
                a.state = FsState::parse(&row.state);
                let ms = |s: i64| Some(s.max(0) * 1000);
                a.learned = AgentTimers {
                    wrap_up_ms: ms(row.wrap_up_time),
                    reject_delay_ms: ms(row.reject_delay_time),
                    busy_delay_ms: ms(row.busy_delay_time),
                    no_answer_delay_ms: ms(row.no_answer_delay_time),
                };
                a.after_call = a.state == FsState::Idle && row.last_bridge_end > 0;
                a.ready_until = (row.ready_time > 0)
                    .then(|| Ts::from_secs(row.ready_time))
                    .filter(|t| *t > ts);
            }
            // Wrap-up needs the queue for the per-queue override.
            for row in &ql.agents {
                let wrap = self.wrap_ms(&row.name, &ql.queue);
                let a = self.agent(&row.name);
                a.wrap_until = (row.last_bridge_end > 0 && wrap > 0)
                    .then(|| Ts::from_secs(row.last_bridge_end).plus_ms(wrap))
                    .filter(|t| *t > ts);
                if a.wrap_until.is_some() {
                    a.wrap_queue = Some(ql.queue.clone());
                }
            }
            // Membership: the tiers (an agent row without a tier cannot be
            // listed, but a tier may name a deleted agent: skip it).
            let listed: HashMap<&str, &AgentRow> =
                ql.agents.iter().map(|r| (r.name.as_str(), r)).collect();
            let mut names: Vec<&str> = ql
                .tiers
                .iter()
                .map(|t| t.agent.as_str())
                .filter(|a| listed.contains_key(a))
                .collect();
            if ql.tiers.is_empty() {
                names = ql.agents.iter().map(|r| r.name.as_str()).collect();
            }
            names.dedup();
            let mut members = Vec::with_capacity(names.len());
            for name in names {
                let Some(a) = self.agents.get_mut(name) else {
                    continue;
                };
                let (status, reason) = a.derive(ts).unwrap_or((AgentStatus::Available, None));
                a.emitted = Some((status, reason.clone()));
                let next = [a.wrap_until, a.ready_until].into_iter().flatten().min();
                members.push(ResyncMember {
                    agent: name.to_string(),
                    status,
                    reason,
                    // mod_callcenter has no per-queue pause.
                    paused_here: false,
                });
                if let Some(t) = next {
                    self.due.insert((t, name.to_string()));
                }
            }
            // Outcomes the lists carry for calls whose events we missed
            // (an outage): answers, hang-ups and timeouts, each counted once,
            // with a caller first seen here counted as an arrival.
            self.outcomes_from_lists(&ql, ts, out);
            // Callers: the listed waiting ones replace what we had.
            let waiting: Vec<&MemberRow> = ql.members.iter().filter(|m| m.is_waiting()).collect();
            let keep: std::collections::HashSet<&str> =
                waiting.iter().map(|m| m.uuid.as_str()).collect();
            let q = ql.queue.clone();
            self.calls.retain(|id, c| {
                c.queue != q || c.phase != Phase::Waiting || keep.contains(id.as_str())
            });
            out.push(Ok(Event {
                ts,
                kind: EventKind::QueueResync {
                    queue: ql.queue,
                    callers: waiting
                        .iter()
                        .map(|m| ResyncCaller {
                            call: m.uuid.clone(),
                            joined: m.joined(),
                        })
                        .collect(),
                    members,
                },
            }));
        }
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

#[cfg(test)]
mod counted_until_tests {
    use super::*;
    use crate::sources::esl::lists::MemberRow;

    fn row(uuid: &str, state: &str, joined: i64, bridge: i64, abandoned: i64) -> MemberRow {
        MemberRow {
            queue: "support@default".into(),
            uuid: uuid.into(),
            joined_epoch: joined,
            bridge_epoch: bridge,
            abandoned_epoch: abandoned,
            state: state.into(),
            serving_agent: if bridge > 0 {
                "1000@default".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    fn lists(members: Vec<MemberRow>) -> Vec<QueueLists> {
        vec![QueueLists {
            queue: "support@default".into(),
            max_wait_s: 300,
            agents: Vec::new(),
            members,
            tiers: Vec::new(),
        }]
    }

    fn calls_in(out: &[Mapped]) -> Vec<String> {
        out.iter()
            .filter_map(|m| match m {
                Ok(Event {
                    kind:
                        EventKind::CallEnqueued { call, .. }
                        | EventKind::CallAnswered { call, .. }
                        | EventKind::CallAbandoned { call, .. },
                    ..
                }) => Some(call.clone()),
                _ => None,
            })
            .collect()
    }

    /// After a restart that restored a checkpoint taken at 10:00:00, the
    /// first resync lists a call answered at 09:50 and one abandoned at
    /// 09:55 (both counted before the checkpoint) and one answered at
    /// 10:00:30 while the daemon was down: only the last is sent.
    #[test]
    fn rows_decided_before_the_checkpoint_are_not_sent_again() {
        let t10 = 1_800_000_000; // epoch seconds of "10:00:00"
        let mut m = Mapper::new(TimerConfig::default());
        m.counted_until = Some(Ts::from_secs(t10));
        let mut out = Vec::new();
        let rows = vec![
            row("old-answered", "Answered", t10 - 700, t10 - 600, 0),
            row("old-abandoned", "Abandoned", t10 - 320, 0, t10 - 300),
            row("down-answered", "Answered", t10 - 20, t10 + 30, 0),
        ];
        m.apply_resync(Ts::from_secs(t10 + 60), lists(rows.clone()), &mut out);
        let sent = calls_in(&out);
        assert!(sent.iter().all(|c| c == "down-answered"), "{sent:?}");
        assert_eq!(
            sent.len(),
            2,
            "arrival and answer of down-answered: {sent:?}"
        );
        // A later resync that still lists the lingering rows sends nothing.
        let mut again = Vec::new();
        m.apply_resync(Ts::from_secs(t10 + 120), lists(rows), &mut again);
        assert!(calls_in(&again).is_empty(), "{:?}", calls_in(&again));
    }

    #[test]
    fn without_a_checkpoint_every_listed_outcome_counts() {
        let t10 = 1_800_000_000;
        let mut m = Mapper::new(TimerConfig::default());
        let mut out = Vec::new();
        let rows = vec![row("old-answered", "Answered", t10 - 700, t10 - 600, 0)];
        m.apply_resync(Ts::from_secs(t10 + 60), lists(rows), &mut out);
        assert_eq!(calls_in(&out), ["old-answered", "old-answered"]);
    }
}
