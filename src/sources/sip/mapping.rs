//! From SIP legs to queue events: which legs are callers in a queue, which
//! are agents being offered a call, how the two are tied, and what each
//! moment of a leg means for the queue (contract section 3).
//!
//! SIP knows no queues, so the rules come from configuration:
//! - a **caller leg** is an INVITE whose Request-URI user (or To user)
//!   matches a queue rule; the rule names the queue and says how the
//!   platform queues: `platform` (it answers the caller with 200 OK and
//!   plays music on hold, so the caller joins the queue at that 200 and is
//!   answered when an agent leg is answered) or `early_media` (the caller
//!   stays unanswered, hearing 183 early media; joins at the INVITE,
//!   answered at the caller leg's 200, abandons with CANCEL);
//! - an **agent leg** is an INVITE that carries the queue header (e.g.
//!   `X-Queue: sales`), or whose To user (or Request-URI user) matches an
//!   agent rule; it is tied to its caller leg by a correlation header whose
//!   value is the caller leg's Call-ID, or by the HEP correlation id chunk
//!   (equal to the caller leg's Call-ID or to the caller leg's own
//!   correlation id). With neither, an answered agent leg of a known queue
//!   takes that queue's longest-waiting caller (`fifo_fallback`; right for
//!   FIFO queues, approximate otherwise).
//!
//! Agent phone states come from agent legs (ringing, on call, available)
//! and, where the platform publishes BLF, from RFC 4235 NOTIFY bodies.

use std::collections::{HashMap, HashSet, VecDeque};

use super::dialog::{BranchMoment, LegEvent};
use super::dialog_info::{self, DialogEntry, DialogState};
use super::message::{Method, SipMessage, param, unescape, uri_user};
use crate::event::{AgentStatus, Event, EventKind, ExitReason};
use crate::time::Ts;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Caller {
        queue: String,
        answer: AnswerMode,
    },
    Agent {
        agent: String,
        queue: Option<String>,
        caller_call: Option<String>,
        /// The leg carries the correlation header: it names its caller, so
        /// it is never matched to another by FIFO, even when that caller is
        /// unknown here (gone, redirected, or never seen).
        tagged: bool,
    },
}

#[derive(Debug, Clone)]
struct CallerLeg {
    queue: String,
    answer: AnswerMode,
    caller: Option<String>,
    enqueued: bool,
    /// Agent and agent leg (if one was seen) that answered this caller.
    answered: Option<(String, Option<String>)>,
    correlation: Option<String>,
    /// Agent legs tied to this caller (by header or HEP correlation).
    agent_legs: Vec<String>,
}

#[derive(Debug, Clone)]
struct AgentLeg {
    agent: String,
    queue: Option<String>,
    caller_call: Option<String>,
    tagged: bool,
    /// The queue call this leg answered, while not yet completed.
    serving: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Waiting {
    calls: VecDeque<String>,
    sweep_at: usize,
}

/// Bound on remembered agent states (a To-user rule matching everything
/// must not grow memory without end).
const MAX_AGENTS: usize = 200_000;

/// The sans-IO mapper. Feed it classified leg starts, leg events and
/// NOTIFYs; it pushes domain events.
#[derive(Debug, Clone)]
pub struct Mapper {
    rules: MappingRules,
    callers: HashMap<String, CallerLeg>,
    agent_legs: HashMap<String, AgentLeg>,
    /// Callers in each queue in joining order, for `fifo_fallback`. Entries
    /// of callers that left are dropped lazily: from the front when looked
    /// at, and by a sweep whenever a queue's list doubles, so the lists stay
    /// within twice the callers actually waiting (amortised O(1)).
    waiting: HashMap<String, Waiting>,
    /// A caller leg's own HEP correlation id → its Call-ID.
    by_correlation: HashMap<String, String>,
    /// The last status this source reported per agent, to report changes
    /// only (a mirroring proxy shows every NOTIFY twice).
    agent_status: HashMap<String, AgentStatus>,
    /// BLF dialogs per agent, for partial NOTIFYs.
    blf: HashMap<String, Vec<DialogEntry>>,
    /// (agent, queue) memberships already reported.
    joined: HashSet<(String, String)>,
    /// Static members were reported.
    announced: bool,
    /// REGISTER requests seen, by (Call-ID, CSeq): the expiry asked for.
    pending_registers: HashMap<(String, u32), u32>,
    /// Registered agents and when their registration lapses.
    registered: HashMap<String, Ts>,
    /// No registration lapses before this (the sweep runs on every message
    /// and must not scan every agent each time).
    next_lapse: Option<Ts>,
}

/// Bound on REGISTER transactions awaiting their response.
const MAX_PENDING_REGISTERS: usize = 10_000;

/// The expiry of the first Contact of a REGISTER or its 2xx, or of the
/// Expires header; `*` (remove all) counts as 0.
fn register_expiry(msg: &SipMessage<'_>) -> Option<u32> {
    let from_contact = msg.header("Contact").and_then(|c| {
        let c = c.split(',').next().unwrap_or("").trim().to_string();
        if c == "*" {
            return Some(0);
        }
        let params = match c.find('>') {
            Some(gt) => c[gt + 1..].to_string(),
            None => c
                .split_once(';')
                .map(|(_, p)| format!(";{p}"))
                .unwrap_or_default(),
        };
        param(&params, "expires").and_then(|v| v.trim().parse().ok())
    });
    from_contact.or_else(|| msg.header("Expires").and_then(|v| v.trim().parse().ok()))
}

impl Mapper {
    pub fn new(rules: MappingRules) -> Self {
        Mapper {
            rules,
            callers: HashMap::new(),
            agent_legs: HashMap::new(),
            waiting: HashMap::new(),
            by_correlation: HashMap::new(),
            agent_status: HashMap::new(),
            blf: HashMap::new(),
            joined: HashSet::new(),
            announced: false,
            pending_registers: HashMap::new(),
            registered: HashMap::new(),
            next_lapse: None,
        }
    }

    pub fn rules(&self) -> &MappingRules {
        &self.rules
    }

    /// Calls waiting in the mapper's view (for tests and health).
    pub fn open_calls(&self) -> usize {
        self.callers.len()
    }

    /// Whether an initial INVITE opens a leg acdmon follows, and as what.
    pub fn classify(&self, msg: &SipMessage<'_>, correlation: Option<&str>) -> Option<Role> {
        let r = &self.rules;
        let agent_by_rule = || {
            r.agents.iter().find_map(|rule| {
                let u = pick_user(msg, rule.on)?;
                rule.apply(&u)
            })
        };
        if let Some(h) = &r.queue_header
            && let Some(q) = msg.header(h)
        {
            let q = q.trim();
            if !q.is_empty() {
                let agent = agent_by_rule()
                    .or_else(|| msg.to().user().map(|u| unescape(u).into_owned()))?;
                return Some(Role::Agent {
                    agent,
                    queue: Some(q.to_string()),
                    caller_call: self.correlate(msg, correlation),
                    tagged: self.tagged(msg),
                });
            }
        }
        for rule in &r.queues {
            if let Some(queue) = pick_user(msg, rule.on).and_then(|u| rule.apply(&u)) {
                return Some(Role::Caller {
                    queue,
                    answer: rule.answer,
                });
            }
        }
        let agent = agent_by_rule()?;
        Some(Role::Agent {
            agent,
            queue: None,
            caller_call: self.correlate(msg, correlation),
            tagged: self.tagged(msg),
        })
    }

    /// Whether the leg carries a non-empty correlation header.
    fn tagged(&self, msg: &SipMessage<'_>) -> bool {
        self.rules
            .correlation_header
            .as_deref()
            .and_then(|h| msg.header(h))
            .is_some_and(|v| !v.trim().is_empty())
    }

    /// The caller leg an agent leg belongs to, by header or HEP correlation.
    fn correlate(&self, msg: &SipMessage<'_>, correlation: Option<&str>) -> Option<String> {
        if let Some(h) = &self.rules.correlation_header
            && let Some(v) = msg.header(h)
        {
            let v = v.trim();
            if self.callers.contains_key(v) {
                return Some(v.to_string());
            }
        }
        if self.rules.hep_correlation
            && let Some(c) = correlation.map(str::trim).filter(|c| !c.is_empty())
            && c != msg.call_id.as_ref()
        {
            if self.callers.contains_key(c) {
                return Some(c.to_string());
            }
            if let Some(call) = self.by_correlation.get(c) {
                return Some(call.clone());
            }
        }
        None
    }

    /// A classified leg starts (its initial INVITE at `ts`).
    pub fn start(
        &mut self,
        role: Role,
        msg: &SipMessage<'_>,
        ts: Ts,
        correlation: Option<&str>,
        out: &mut Vec<Event>,
    ) {
        let call = msg.call_id.to_string();
        match role {
            Role::Caller { queue, answer } => {
                let caller = msg.from().user().map(|u| unescape(u).into_owned());
                let mut leg = CallerLeg {
                    queue,
                    answer,
                    caller,
                    enqueued: false,
                    answered: None,
                    agent_legs: Vec::new(),
                    correlation: correlation
                        .map(str::trim)
                        .filter(|c| !c.is_empty() && *c != call)
                        .map(str::to_string),
                };
                if answer == AnswerMode::EarlyMedia {
                    self.enqueue(&call, &mut leg, ts, out);
                }
                if let Some(c) = &leg.correlation {
                    self.by_correlation.insert(c.clone(), call.clone());
                }
                self.callers.insert(call, leg);
            }
            Role::Agent {
                agent,
                queue,
                caller_call,
                tagged,
            } => {
                let caller = caller_call.as_ref().and_then(|c| self.callers.get_mut(c));
                let queue = match caller {
                    Some(c) => {
                        // Bounded: a caller is offered to a handful of agents.
                        if c.agent_legs.len() < 64 {
                            c.agent_legs.push(call.clone());
                        }
                        queue.or_else(|| Some(c.queue.clone()))
                    }
                    None => queue,
                };
                self.agent_legs.insert(
                    call,
                    AgentLeg {
                        agent,
                        queue,
                        caller_call,
                        tagged,
                        serving: None,
                    },
                );
            }
        }
    }

    fn enqueue(&mut self, call: &str, leg: &mut CallerLeg, ts: Ts, out: &mut Vec<Event>) {
        if leg.enqueued {
            return;
        }
        leg.enqueued = true;
        let w = self.waiting.entry(leg.queue.clone()).or_default();
        w.calls.push_back(call.to_string());
        if w.calls.len() > w.sweep_at.max(64) {
            let callers = &self.callers;
            w.calls
                .retain(|c| c == call || callers.get(c).is_some_and(|l| l.answered.is_none()));
            w.sweep_at = w.calls.len() * 2;
        }
        out.push(Event {
            ts,
            kind: EventKind::CallEnqueued {
                call: call.to_string(),
                queue: leg.queue.clone(),
                caller: leg.caller.clone(),
                priority: None,
            },
        });
    }

    fn agent_state(
        &mut self,
        agent: &str,
        status: AgentStatus,
        queue: Option<&str>,
        ts: Ts,
        out: &mut Vec<Event>,
    ) {
        if self.agent_status.get(agent) == Some(&status) {
            return;
        }
        self.note_status(agent, status);
        out.push(Event {
            ts,
            kind: EventKind::AgentState {
                agent: agent.to_string(),
                status,
                reason: None,
                queue: queue.map(str::to_string),
            },
        });
    }

    fn note_status(&mut self, agent: &str, status: AgentStatus) {
        if let Some(s) = self.agent_status.get_mut(agent) {
            *s = status;
        } else if self.agent_status.len() < MAX_AGENTS {
            self.agent_status.insert(agent.to_string(), status);
        }
    }

    /// The oldest enqueued, unanswered caller of `queue`.
    fn longest_waiting(&mut self, queue: &str) -> Option<String> {
        let w = self.waiting.get_mut(queue)?;
        while let Some(c) = w.calls.front() {
            match self.callers.get(c) {
                Some(l) if l.enqueued && l.answered.is_none() => return Some(c.clone()),
                _ => {
                    w.calls.pop_front();
                }
            }
        }
        None
    }

    fn answer_caller(
        &mut self,
        call: &str,
        agent: &str,
        agent_leg: Option<&str>,
        ts: Ts,
        out: &mut Vec<Event>,
    ) -> bool {
        let Some(leg) = self.callers.get_mut(call) else {
            return false;
        };
        if !leg.enqueued || leg.answered.is_some() {
            return false;
        }
        leg.answered = Some((agent.to_string(), agent_leg.map(str::to_string)));
        let queue = leg.queue.clone();
        out.push(Event {
            ts,
            kind: EventKind::CallAnswered {
                call: call.to_string(),
                queue,
                agent: agent.to_string(),
            },
        });
        self.note_status(agent, AgentStatus::OnCall);
        true
    }

    /// A caller leg ends; `outcome` is what its end means if it was waiting.
    fn end_caller(
        &mut self,
        call: &str,
        ts: Ts,
        waiting_outcome: Option<EventKind>,
        out: &mut Vec<Event>,
    ) {
        let Some(leg) = self.callers.remove(call) else {
            return;
        };
        if let Some(c) = &leg.correlation {
            self.by_correlation.remove(c);
        }
        match (&leg.answered, leg.enqueued) {
            (Some((agent, agent_leg)), _) => {
                if let Some(al) = agent_leg.as_ref().and_then(|l| self.agent_legs.get_mut(l)) {
                    al.serving = None;
                }
                out.push(Event {
                    ts,
                    kind: EventKind::CallCompleted {
                        call: call.to_string(),
                        queue: leg.queue.clone(),
                        agent: agent.clone(),
                    },
                });
                self.note_status(agent, AgentStatus::Available);
            }
            (None, true) => {
                if let Some(kind) = waiting_outcome {
                    out.push(Event { ts, kind });
                }
            }
            (None, false) => {}
        }
    }

    /// Feeds one leg event from the dialog tracker.
    pub fn handle_leg(&mut self, ev: LegEvent, out: &mut Vec<Event>) {
        let call = ev.call_id().to_string();
        if self.callers.contains_key(&call) {
            self.on_caller_leg(&call, ev, out);
        } else if self.agent_legs.contains_key(&call) {
            self.on_agent_leg(&call, ev, out);
        }
    }

    fn on_caller_leg(&mut self, call: &str, ev: LegEvent, out: &mut Vec<Event>) {
        let Some(leg) = self.callers.get(call) else {
            return;
        };
        let (queue, answer) = (leg.queue.clone(), leg.answer);
        match ev {
            LegEvent::Ringing { .. } => {}
            LegEvent::Branch {
                ts, user, moment, ..
            } => self.on_branch(call, &queue, &user, moment, ts, out),
            LegEvent::Answered {
                ts, contact_user, ..
            } => match answer {
                AnswerMode::Platform => {
                    if let Some(mut leg) = self.callers.remove(call) {
                        self.enqueue(call, &mut leg, ts, out);
                        self.callers.insert(call.to_string(), leg);
                    }
                }
                AnswerMode::EarlyMedia => {
                    // The agent is the one agent leg tied to this caller, or
                    // else the answering device's Contact user.
                    let tied = self
                        .callers
                        .get(call)
                        .map(|l| l.agent_legs.clone())
                        .unwrap_or_default();
                    let tied: Vec<(String, String)> = tied
                        .into_iter()
                        .filter_map(|id| self.agent_legs.get(&id).map(|l| (id, l.agent.clone())))
                        .collect();
                    let (agent, agent_leg) = match tied.as_slice() {
                        [(id, agent)] => (agent.clone(), Some(id.clone())),
                        _ => (
                            contact_user
                                .as_deref()
                                .and_then(|u| self.rules.agent_of_user(u))
                                .unwrap_or_else(|| "unknown".to_string()),
                            None,
                        ),
                    };
                    if self.answer_caller(call, &agent, agent_leg.as_deref(), ts, out)
                        && let Some(l) = agent_leg.and_then(|l| self.agent_legs.get_mut(&l))
                    {
                        l.serving = Some(call.to_string());
                    }
                }
            },
            LegEvent::Failed {
                ts,
                code,
                cancelled,
                ..
            } => {
                let kind = if cancelled {
                    EventKind::CallAbandoned {
                        call: call.to_string(),
                        queue,
                    }
                } else {
                    EventKind::CallExited {
                        call: call.to_string(),
                        queue,
                        reason: exit_reason(code),
                    }
                };
                self.end_caller(call, ts, Some(kind), out);
            }
            LegEvent::Ended {
                ts, by_originator, ..
            } => {
                let kind = if by_originator {
                    EventKind::CallAbandoned {
                        call: call.to_string(),
                        queue,
                    }
                } else {
                    EventKind::CallExited {
                        call: call.to_string(),
                        queue,
                        reason: self.rules.platform_hangup,
                    }
                };
                self.end_caller(call, ts, Some(kind), out);
            }
            LegEvent::Expired { ts, .. } => {
                let kind = EventKind::CallExited {
                    call: call.to_string(),
                    queue,
                    reason: ExitReason::Other,
                };
                self.end_caller(call, ts, Some(kind), out);
            }
        }
    }

    fn on_agent_leg(&mut self, leg_id: &str, ev: LegEvent, out: &mut Vec<Event>) {
        let Some(leg) = self.agent_legs.get(leg_id) else {
            return;
        };
        let agent = leg.agent.clone();
        let queue = leg.queue.clone();
        let tagged = leg.tagged;
        match ev {
            // A proxy forking an agent leg to the agent's devices: the leg's
            // own moments say it all.
            LegEvent::Branch { .. } => {}
            LegEvent::Ringing { ts, .. } => {
                self.agent_state(&agent, AgentStatus::Ringing, queue.as_deref(), ts, out);
            }
            LegEvent::Answered { ts, .. } => {
                let caller = leg.caller_call.clone().or_else(|| {
                    if self.rules.fifo_fallback && !tagged {
                        queue.as_deref().and_then(|q| self.longest_waiting_in(q))
                    } else {
                        None
                    }
                });
                let answered = match &caller {
                    Some(c) => {
                        let ok = self.answer_caller(c, &agent, Some(leg_id), ts, out);
                        // In early-media mode an already answered caller
                        // (its 200 came first) is served by this leg too.
                        ok || self
                            .callers
                            .get(c)
                            .is_some_and(|l| l.answered.as_ref().is_some_and(|(a, _)| *a == agent))
                    }
                    None => false,
                };
                if let Some(l) = self.agent_legs.get_mut(leg_id)
                    && answered
                {
                    l.serving = caller.clone();
                    l.caller_call = l.caller_call.take().or(caller);
                }
                if !answered {
                    self.agent_state(&agent, AgentStatus::OnCall, queue.as_deref(), ts, out);
                }
            }
            LegEvent::Failed { ts, .. } => {
                self.agent_legs.remove(leg_id);
                self.agent_state(&agent, AgentStatus::Available, queue.as_deref(), ts, out);
            }
            LegEvent::Ended { ts, .. } | LegEvent::Expired { ts, .. } => {
                let serving = self.agent_legs.remove(leg_id).and_then(|l| l.serving);
                match serving {
                    // The agent hung up first: the queue call completes.
                    Some(call) if self.callers.contains_key(&call) => {
                        self.complete_from_agent(&call, ts, out);
                    }
                    _ => {
                        // Completed already by the caller's BYE: the engine
                        // set the agent free (or in wrap-up); say nothing.
                        if self.agent_status.get(&agent) != Some(&AgentStatus::Available) {
                            self.agent_state(
                                &agent,
                                AgentStatus::Available,
                                queue.as_deref(),
                                ts,
                                out,
                            );
                        }
                    }
                }
            }
        }
    }

    /// A proxy forked this caller's INVITE to a target (a ring-all hunt
    /// group): a target that maps to an agent is a member of the caller's
    /// queue, rung, answering or not.
    fn on_branch(
        &mut self,
        call: &str,
        queue: &str,
        user: &str,
        moment: BranchMoment,
        ts: Ts,
        out: &mut Vec<Event>,
    ) {
        let Some(agent) = self.rules.agent_by_rule(user) else {
            return;
        };
        match moment {
            BranchMoment::Offered => self.join(&agent, queue, ts, out),
            BranchMoment::Ringing => {
                self.agent_state(&agent, AgentStatus::Ringing, Some(queue), ts, out)
            }
            BranchMoment::Answered => {
                // The agent's 200 reaches the proxy before the caller's: the
                // caller is answered now, by this agent.
                self.answer_caller(call, &agent, None, ts, out);
            }
            BranchMoment::Failed { .. } => {
                // Busy or declined at once, or cancelled after ringing: the
                // phone is free unless it was already busy with another call.
                if self.agent_status.get(&agent) == Some(&AgentStatus::Ringing) {
                    self.agent_state(&agent, AgentStatus::Available, Some(queue), ts, out);
                }
            }
        }
    }

    /// Reports the configured static members, once (at the first message or
    /// tick, or when the live source starts).
    pub fn announce_members(&mut self, ts: Ts, out: &mut Vec<Event>) {
        if self.announced {
            return;
        }
        self.announced = true;
        for (agent, queue) in self.rules.members.clone() {
            self.join(&agent, &queue, ts, out);
        }
    }
}

/// NOTIFY with `Event: dialog` and a dialog-info body.
pub fn is_dialog_info(msg: &SipMessage<'_>) -> bool {
    let event_ok = msg.event.as_deref().is_some_and(|e| {
        e.split(';')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("dialog"))
    });
    let type_ok = msg.content_type.as_deref().is_some_and(|t| {
        t.trim()
            .to_ascii_lowercase()
            .starts_with("application/dialog-info+xml")
    });
    event_ok && type_ok && !msg.body.is_empty()
}

/// Why a caller left when the platform refused or redirected its INVITE.
pub fn exit_reason(code: u16) -> ExitReason {
    match code {
        300..=399 => ExitReason::Transfer,
        408 | 480 => ExitReason::Timeout,
        _ => ExitReason::Other,
    }
}

mod presence;
mod rules;

use rules::pick_user;
pub use rules::{AgentRule, AnswerMode, MappingConfig, MappingRules, QueueRule, UserFrom};

#[cfg(test)]
mod tests;
