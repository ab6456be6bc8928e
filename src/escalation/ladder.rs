//! The staged escalation ladder of one queue, as a sans-IO state machine.
//!
//! Why sans-IO: the ladder decides who is pulled off other work onto the
//! phones, so its behaviour must be provable on recorded days, on property
//! tests and after crashes, without sockets or sleeping. [`QueueLadder`]
//! takes the queue's figures, the floor (who could be signed in) and the
//! event time, and returns [`Output`]s: log entries to write, CTI actions to
//! run (always *after* the entry that decides them), and results to append.
//! It never performs I/O and never reads a clock.
//!
//! How the plan is read (see docs/escalation.md for the hotline's six steps):
//! - Stage *k*'s `for` clock starts when stages 1..k-1 are active and its
//!   `when` holds, and restarts when `when` stops holding (after `grace`, 0 by
//!   default). Stages use `>` thresholds, so a queue that jumps from 7 past 10
//!   still satisfies `waiting > 5`: the clocks keep running and the ladder
//!   climbs instead of stalling.
//! - A stage never fires while `release_when` holds, and the ladder never
//!   releases while a stage is climbing, so overlapping thresholds cannot
//!   make it go up and down in turn.
//! - Release: once `release_when` has held for `release_hold`, the newest
//!   stage is released (its agents signed out); each further stage needs
//!   another full hold. Together with the `for` clocks this is the
//!   hysteresis: input flapping around a threshold restarts a clock, it never
//!   moves the ladder.
//! - Safe sign-out: only agents this ladder signed in are signed out; an
//!   agent ringing or talking is signed out when the call ends; if the ladder
//!   climbs again first, such an agent is kept (its sign-out is cancelled).
//!
//! The steps live beside this file: `plan` compiles the configuration,
//! `fire` is the step up, `restore` rebuilds a ladder from its audit log
//! after a restart, `replan` takes a configuration reload; release, advice
//! decisions and CTI results stay here with the state they change.

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::LadderMode;
use crate::cti::CtiVerb;
use crate::escalation::{ActionRecord, Direction, Entry};
use crate::event::AgentStatus;
use crate::state::QueueFigures;
use crate::state::view::EscalationStatus;
use crate::time::Ts;

pub const OK: &str = "ok";
pub const FAILED: &str = "failed";
pub const PENDING: &str = "pending";
pub const APPROVED: &str = "approved";
pub const REJECTED: &str = "rejected";
pub const EXPIRED: &str = "expired";
pub const CANCELLED: &str = "cancelled";

/// Detail of a sign-out that waits for a call to end.
pub const ON_A_CALL: &str = "on a call: signed out when the call ends";
const AWAITING: &str = "waiting for approval";
/// Sign-outs that failed are tried again after each `release_hold`, this
/// many times, then left `failed` in the log for a person to look at.
const SIGN_OUT_RETRIES: u32 = 3;

pub use plan::{GroupPlan, Plan, StagePlan};

/// Someone who could be signed in: a member of the stage's group who is
/// logged in and not in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub agent: String,
    pub status: AgentStatus,
    /// Since when in that status (for an idle agent: idle since).
    pub since: Ts,
    /// Queues an escalation currently has this agent signed into.
    pub assignments: u32,
}

/// The order in which candidates are picked: idle ones first (then wrap-up,
/// then busy on another queue's call, paused last), then the fewest current
/// escalation assignments (spread the load), then the longest in that
/// state (longest idle), then the id so the choice is deterministic.
pub fn pick_order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    fn rank(s: AgentStatus) -> u8 {
        match s {
            AgentStatus::Available => 0,
            AgentStatus::WrapUp => 1,
            AgentStatus::Ringing | AgentStatus::OnCall => 2,
            AgentStatus::Paused => 3,
            AgentStatus::LoggedOut => 4,
        }
    }
    (rank(a.status), a.assignments, a.since, &a.agent).cmp(&(
        rank(b.status),
        b.assignments,
        b.since,
        &b.agent,
    ))
}

/// What the ladder may ask about people. The observer answers from the state
/// engine; tests answer from a table.
pub trait Floor {
    /// Members of `group` who are logged in and not members of this queue.
    fn candidates(&self, group: &str) -> Vec<Candidate>;
    /// Ringing or talking: a sign-out waits for the call to end.
    fn busy(&self, agent: &str) -> bool;
    fn in_group(&self, agent: &str, group: &str) -> bool;
}

/// What one evaluation reads.
pub struct Inputs<'a> {
    pub now: Ts,
    pub figures: QueueFigures,
    /// Erlang C agents for the queue's target, when computable (asked only
    /// when a stage with `staffing = "erlang_c"` fires: the search costs).
    pub required_agents: &'a dyn Fn() -> Option<u32>,
    pub floor: &'a dyn Floor,
    /// Distinct agents this ladder has signed in over every queue it runs
    /// (seats taken against `max_added_seats`); asked only when firing.
    pub seats_used: &'a dyn Fn() -> u32,
}

/// A CTI action to run once the entry that decided it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub entry: u64,
    pub action: usize,
    pub verb: CtiVerb,
    pub agent: String,
    pub queue: String,
    /// 1 for the first try.
    pub attempt: u32,
}

/// A result appended to an entry's action (`action: None`: to the entry's
/// decision).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub entry: u64,
    pub action: Option<usize>,
    pub result: &'static str,
    pub detail: Option<String>,
    pub by: Option<String>,
}

/// Everything the ladder asks of the world, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write this entry; acts that follow depend on it being written.
    Entry(Entry),
    Act(Act),
    Mark(Mark),
}

/// Why an approve or reject could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPending;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Clock {
    since: Option<Ts>,
    false_since: Option<Ts>,
    holding: bool,
}

impl Clock {
    /// Feeds the condition's value at `now`. The clock runs from the first
    /// `true`; a `false` stops it at once (`grace` 0) or once it has lasted
    /// longer than `grace`.
    fn observe(&mut self, holds: bool, now: Ts, grace_ms: i64) {
        self.holding = holds;
        if holds {
            if let Some(fs) = self.false_since.take()
                && now.since(fs) > grace_ms
            {
                self.since = None;
            }
            if self.since.is_none() {
                self.since = Some(now);
            }
        } else if self.since.is_some() {
            let fs = *self.false_since.get_or_insert(now);
            if grace_ms == 0 || now.since(fs) > grace_ms {
                self.since = None;
                self.false_since = None;
            }
        }
    }

    fn reset(&mut self) {
        *self = Clock::default();
    }

    fn running_since(&self) -> Option<Ts> {
        self.since.filter(|_| self.holding)
    }
}

/// When a follower saw the next stage's `when` and the release begin to
/// hold (event time), for the ladder it rebuilt from the leader's records
/// ([`QueueLadder::shadow_update`]); handed to the ladder when this
/// instance takes the lead ([`QueueLadder::resume_clocks`]), so a takeover
/// does not restart a `for` or `release_hold` wait.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Onsets {
    at: (Option<String>, usize, bool),
    up: Clock,
    down: Clock,
}

#[derive(Debug, Clone, PartialEq)]
struct Active {
    index: usize,
    name: String,
    since: Ts,
    entry: u64,
    agents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Proposal {
    entry: u64,
    direction: Direction,
    index: usize,
    name: String,
    ts: Ts,
    expires: Ts,
    /// (action index, agent) to sign in or out on approval.
    people: Vec<(usize, String)>,
    /// Action indices of advice.
    advice: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct Leaving {
    entry: u64,
    action: usize,
    agent: String,
    attempt: u32,
    /// Not before (a retry after a failure waits a hold).
    at: Ts,
}

/// One queue's ladder.
///
/// Calling order (the sans-IO verbs of acdmon's cores; the ladder observes
/// the engine on event time, so its input is a view of the queue, not bytes):
/// - the queue changed, or the timer fired: [`QueueLadder::handle_update`]
///   with the queue's [`Inputs`] (its `now` is event time);
/// - a CTI action finished: [`QueueLadder::handle_result`];
/// - a supervisor decided on advice: [`QueueLadder::approve`] /
///   [`QueueLadder::reject`]; an agent left the floor: [`QueueLadder::forget`];
/// - each of those returns its [`Output`]s, in the order they must be acted
///   on (an entry before the acts it decides);
/// - before waiting again: [`QueueLadder::poll_timeout`] is when the ladder
///   next needs a [`QueueLadder::handle_update`] even if nothing happens.
#[derive(Debug, Clone)]
pub struct QueueLadder {
    queue: String,
    plan: Option<Arc<Plan>>,
    /// A schedule's change of ladder, applied when the escalation is idle so
    /// nobody is signed in or out because the clock passed 22:00.
    next_plan: Option<Option<Arc<Plan>>>,
    active: Vec<Active>,
    up: Clock,
    down: Clock,
    proposal: Option<Proposal>,
    /// Sign-outs not yet run: waiting for a call to end, or for a retry.
    leaving: Vec<Leaving>,
}

fn fmt_ms(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

fn with_for(explain: String, ms: i64) -> String {
    if ms > 0 {
        format!("{explain} for {}", fmt_ms(ms))
    } else {
        explain
    }
}

impl QueueLadder {
    pub fn new(queue: &str, plan: Option<Arc<Plan>>) -> Self {
        QueueLadder {
            queue: queue.to_string(),
            plan,
            next_plan: None,
            active: Vec::new(),
            up: Clock::default(),
            down: Clock::default(),
            proposal: None,
            leaving: Vec::new(),
        }
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    pub fn plan(&self) -> Option<&Arc<Plan>> {
        self.plan.as_ref()
    }

    /// Nothing active and nothing waiting for a decision.
    pub fn is_idle(&self) -> bool {
        self.active.is_empty() && self.proposal.is_none()
    }

    /// The ladder a schedule wants now. Applied at once when idle, else when
    /// the running escalation has been released.
    pub fn set_plan(&mut self, plan: Option<&Arc<Plan>>) {
        let same = match (&self.plan, plan) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.name == b.name,
            (None, None) => true,
            _ => false,
        };
        if same {
            self.next_plan = None;
        } else if self.is_idle() {
            self.plan = plan.cloned();
            self.next_plan = None;
            self.up.reset();
            self.down.reset();
        } else {
            self.next_plan = Some(plan.cloned());
        }
    }

    /// Starts the `for` and release clocks again from the next evaluation:
    /// after a pause in which the ladder could not act (the audit log could
    /// not be written), so the steps after the one just acted on keep their
    /// full `for` and `release_hold` apart instead of following at once.
    pub fn restart_clocks(&mut self) {
        self.up.reset();
        self.down.reset();
    }

    /// A follower's look at the queue (cluster mode): `o` keeps when the
    /// next stage's `when` and the release began to hold, on event time,
    /// as the leader's clocks do; nothing is decided. The clocks restart
    /// when the ladder moves (a mirrored step, a decision on advice, a new
    /// plan), as the leader's do when it acts.
    pub fn shadow_update(&self, o: &mut Onsets, now: Ts, figures: &QueueFigures) {
        let at = self.position();
        if o.at != at {
            *o = Onsets {
                at,
                ..Onsets::default()
            };
        }
        let Some(plan) = &self.plan else {
            return;
        };
        let releasing = plan.release_when.eval(figures);
        let open = self.proposal.is_none();
        let next = plan.stages.get(self.active.len()).filter(|_| open);
        let climbing = !releasing && next.is_some_and(|s| s.when.eval(figures));
        o.up.observe(climbing, now, plan.grace_ms);
        o.down
            .observe(open && releasing && !self.active.is_empty(), now, 0);
    }

    /// This ladder's clocks, for a leader that starts to follow: its
    /// onsets carry on from there.
    pub fn onsets(&self) -> Onsets {
        Onsets {
            at: self.position(),
            up: self.up,
            down: self.down,
        }
    }

    /// Taking the lead: the clocks a follower kept ([`Onsets`]) carry on,
    /// when the ladder stands where they were kept. A stage whose condition
    /// began under the old leader keeps its onset; one that came due while
    /// nobody led fires at the next look if its condition still holds.
    pub fn resume_clocks(&mut self, o: Onsets) {
        if o.at == self.position() {
            self.up = o.up;
            self.down = o.down;
        }
    }

    /// Where the ladder stands, for [`Onsets`]: its plan, its active
    /// stages, whether advice waits.
    fn position(&self) -> (Option<String>, usize, bool) {
        (
            self.plan.as_ref().map(|p| p.name.clone()),
            self.active.len(),
            self.proposal.is_some(),
        )
    }

    /// Agents this ladder answers for: active stages, a proposal, and
    /// sign-outs not yet done.
    pub fn tracked(&self) -> HashSet<&str> {
        let mut s: HashSet<&str> = HashSet::new();
        for a in &self.active {
            s.extend(a.agents.iter().map(String::as_str));
        }
        if let Some(p) = &self.proposal {
            s.extend(p.people.iter().map(|(_, a)| a.as_str()));
        }
        s.extend(self.leaving.iter().map(|l| l.agent.as_str()));
        s
    }

    /// Agents signed in by this ladder and not (yet) signed out.
    pub fn signed_in(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .active
            .iter()
            .flat_map(|a| a.agents.iter().cloned())
            .collect();
        for l in &self.leaving {
            if !v.contains(&l.agent) {
                v.push(l.agent.clone());
            }
        }
        v
    }

    /// The queue's escalation as the wall shows it.
    pub fn status(&self) -> Option<EscalationStatus> {
        if self.active.is_empty() && self.proposal.is_none() && self.leaving.is_empty() {
            return None;
        }
        let top = self.active.last();
        Some(EscalationStatus {
            stage: self.active.len() as u32,
            stage_name: top.map(|a| a.name.clone()).unwrap_or_default(),
            since: top
                .map(|a| a.since)
                .or(self.proposal.as_ref().map(|p| p.ts))
                .or(self.leaving.first().map(|l| l.at))
                .unwrap_or_default(),
            signed_in: self.signed_in(),
            pending: self.proposal.iter().map(|p| p.entry).collect(),
        })
    }

    /// Sign-outs wait for calls to end or for a retry.
    pub fn has_leaving(&self) -> bool {
        !self.leaving.is_empty()
    }

    pub fn pending_entry(&self) -> Option<u64> {
        self.proposal.as_ref().map(|p| p.entry)
    }

    /// When the ladder next needs to look even if nothing happens: a `for`
    /// clock or a release hold running out, advice expiring, a retry.
    pub fn poll_timeout(&self) -> Option<Ts> {
        let plan = self.plan.as_ref()?;
        let mut d: Option<Ts> = None;
        let mut at = |t: Ts| d = Some(d.map_or(t, |x| x.min(t)));
        if self.proposal.is_none() {
            if let (Some(since), Some(st)) =
                (self.up.running_since(), plan.stages.get(self.active.len()))
            {
                at(since.plus_ms(st.for_ms));
            }
            if let Some(since) = self.down.running_since() {
                at(since.plus_ms(plan.release_hold_ms));
            }
        }
        if let Some(p) = &self.proposal {
            at(p.expires);
        }
        for l in &self.leaving {
            if l.attempt > 1 {
                at(l.at);
            }
        }
        d
    }

    /// One look at the queue: may fire stages, release one, expire advice,
    /// sign out agents whose call has ended.
    pub fn handle_update(&mut self, inp: &Inputs<'_>, ids: &mut u64) -> Vec<Output> {
        let now = inp.now;
        let mut out = Vec::new();
        // Sign-outs that were waiting for a call to end or for a retry.
        let mut i = 0;
        while i < self.leaving.len() {
            let l = &self.leaving[i];
            if now < l.at || inp.floor.busy(&l.agent) {
                i += 1;
                continue;
            }
            let l = self.leaving.remove(i);
            out.push(Output::Act(Act {
                entry: l.entry,
                action: l.action,
                verb: CtiVerb::SignOut,
                agent: l.agent,
                queue: self.queue.clone(),
                attempt: l.attempt,
            }));
        }
        if self.proposal.as_ref().is_some_and(|p| now >= p.expires) {
            out.extend(self.expire());
        }
        if self.is_idle()
            && let Some(p) = self.next_plan.take()
        {
            self.plan = p;
            self.up.reset();
            self.down.reset();
        }
        let Some(plan) = self.plan.clone() else {
            return out;
        };
        // Each pass fires or releases at most one stage; a `for = "0s"`
        // stage fires in the same evaluation as the one before it, and must
        // count the seats that one just took.
        let mut seats_taken = 0u32;
        for _ in 0..plan.stages.len() * 2 + 2 {
            let releasing = plan.release_when.eval(&inp.figures);
            let open = self.proposal.is_none();
            let next = plan.stages.get(self.active.len()).filter(|_| open);
            let climbing = !releasing && next.is_some_and(|s| s.when.eval(&inp.figures));
            self.up.observe(climbing, now, plan.grace_ms);
            self.down
                .observe(open && releasing && !self.active.is_empty(), now, 0);
            if let (Some(st), Some(since)) = (next, self.up.running_since())
                && now.since(since) >= st.for_ms
            {
                out.extend(self.fire(&plan, inp, ids, &mut seats_taken));
                self.up.reset();
                continue;
            }
            if let Some(since) = self.down.running_since()
                && now.since(since) >= plan.release_hold_ms
            {
                out.extend(self.release(&plan, inp, ids));
                self.down.reset();
                continue;
            }
            break;
        }
        out
    }

    fn release(&mut self, plan: &Plan, inp: &Inputs<'_>, ids: &mut u64) -> Vec<Output> {
        let Some(top) = self.active.last() else {
            return Vec::new();
        };
        *ids += 1;
        let id = *ids;
        let advise = plan.mode == LadderMode::Advise && !top.agents.is_empty();
        let mut actions = Vec::new();
        let mut people = Vec::new();
        for agent in &top.agents {
            let detail = if advise {
                Some(AWAITING.to_string())
            } else if inp.floor.busy(agent) {
                Some(ON_A_CALL.to_string())
            } else {
                None
            };
            people.push((actions.len(), agent.clone()));
            actions.push(self.sign_out_record(agent, detail));
        }
        let entry = Entry {
            id,
            ts: inp.now,
            queue: self.queue.clone(),
            stage: (top.index + 1) as u32,
            stage_name: top.name.clone(),
            direction: Direction::Down,
            reason: with_for(
                plan.release_when.explain(&inp.figures),
                plan.release_hold_ms,
            ),
            mode: plan.mode_str().into(),
            actions,
            ladder: Some(plan.name.clone()),
            decision: None,
        };
        let mut out = vec![Output::Entry(entry)];
        if advise {
            self.proposal = Some(Proposal {
                entry: id,
                direction: Direction::Down,
                index: top.index,
                name: top.name.clone(),
                ts: inp.now,
                expires: inp.now.plus_ms(plan.advice_expiry_ms),
                people,
                advice: Vec::new(),
            });
        } else {
            self.active.pop();
            out.extend(self.sign_out(id, people, inp.now, inp.floor, false));
        }
        out
    }

    /// A pending sign-out of `agent` from this queue, as the log records it.
    fn sign_out_record(&self, agent: &str, detail: Option<String>) -> ActionRecord {
        ActionRecord {
            kind: "sign_out".into(),
            agent: Some(agent.to_string()),
            target_queue: Some(self.queue.clone()),
            result: PENDING.into(),
            detail,
            seats: None,
            at: None,
        }
    }

    /// Signs out now, or defers for agents on a call.
    fn sign_out(
        &mut self,
        entry: u64,
        people: Vec<(usize, String)>,
        now: Ts,
        floor: &dyn Floor,
        mark_deferred: bool,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        for (action, agent) in people {
            if floor.busy(&agent) {
                if mark_deferred {
                    out.push(Output::Mark(Mark {
                        entry,
                        action: Some(action),
                        result: PENDING,
                        detail: Some(ON_A_CALL.into()),
                        by: None,
                    }));
                }
                self.leaving.push(Leaving {
                    entry,
                    action,
                    agent,
                    attempt: 1,
                    at: now,
                });
            } else {
                out.push(Output::Act(Act {
                    entry,
                    action,
                    verb: CtiVerb::SignOut,
                    agent,
                    queue: self.queue.clone(),
                    attempt: 1,
                }));
            }
        }
        out
    }

    fn expire(&mut self) -> Vec<Output> {
        let Some(p) = self.proposal.take() else {
            return Vec::new();
        };
        self.up.reset();
        self.down.reset();
        let detail = format!("nobody answered within {}", fmt_ms(p.expires.since(p.ts)));
        let mut out = vec![Output::Mark(Mark {
            entry: p.entry,
            action: None,
            result: EXPIRED,
            detail: Some(detail.clone()),
            by: None,
        })];
        for ix in p.people.iter().map(|(i, _)| *i).chain(p.advice) {
            out.push(Output::Mark(Mark {
                entry: p.entry,
                action: Some(ix),
                result: EXPIRED,
                detail: Some(detail.clone()),
                by: None,
            }));
        }
        out
    }

    /// A manager approved advice `id`: the proposed stage becomes active (its
    /// sign-ins run), or the proposed release happens.
    pub fn approve(
        &mut self,
        id: u64,
        now: Ts,
        by: &str,
        floor: &dyn Floor,
    ) -> Result<Vec<Output>, NotPending> {
        if self.proposal.as_ref().map(|p| p.entry) != Some(id) {
            return Err(NotPending);
        }
        let Some(p) = self.proposal.take() else {
            return Err(NotPending);
        };
        self.up.reset();
        self.down.reset();
        let by_s = Some(by.to_string());
        let mut out = vec![Output::Mark(Mark {
            entry: id,
            action: None,
            result: APPROVED,
            detail: None,
            by: by_s.clone(),
        })];
        // The advice keeps its text (what was advised); who approved it is
        // in the mark's `by` and the entry's decision.
        for ix in &p.advice {
            out.push(Output::Mark(Mark {
                entry: id,
                action: Some(*ix),
                result: APPROVED,
                detail: None,
                by: by_s.clone(),
            }));
        }
        match p.direction {
            Direction::Up => {
                let mut agents = Vec::new();
                for (ix, agent) in p.people {
                    out.push(Output::Act(Act {
                        entry: id,
                        action: ix,
                        verb: CtiVerb::SignIn,
                        agent: agent.clone(),
                        queue: self.queue.clone(),
                        attempt: 1,
                    }));
                    agents.push(agent);
                }
                self.active.push(Active {
                    index: p.index,
                    name: p.name,
                    since: now,
                    entry: id,
                    agents,
                });
            }
            Direction::Down => {
                if let Some(pos) = self.active.iter().rposition(|a| a.index == p.index) {
                    self.active.remove(pos);
                }
                out.extend(self.sign_out(id, p.people, now, floor, true));
            }
        }
        Ok(out)
    }

    /// A manager rejected advice `id`. A rejected step up still takes its
    /// place on the ladder (with nobody signed in), so the next step can be
    /// proposed if the queue stays bad; a rejected release keeps the stage.
    pub fn reject(&mut self, id: u64, now: Ts, by: &str) -> Result<Vec<Output>, NotPending> {
        if self.proposal.as_ref().map(|p| p.entry) != Some(id) {
            return Err(NotPending);
        }
        let Some(p) = self.proposal.take() else {
            return Err(NotPending);
        };
        self.up.reset();
        self.down.reset();
        let by_s = Some(by.to_string());
        let mut out = vec![Output::Mark(Mark {
            entry: id,
            action: None,
            result: REJECTED,
            detail: None,
            by: by_s.clone(),
        })];
        for (ix, _) in &p.people {
            out.push(Output::Mark(Mark {
                entry: id,
                action: Some(*ix),
                result: REJECTED,
                detail: Some(format!("rejected by {by}")),
                by: by_s.clone(),
            }));
        }
        // Rejected advice keeps its text, as approved advice does.
        for ix in &p.advice {
            out.push(Output::Mark(Mark {
                entry: id,
                action: Some(*ix),
                result: REJECTED,
                detail: None,
                by: by_s.clone(),
            }));
        }
        if p.direction == Direction::Up {
            self.active.push(Active {
                index: p.index,
                name: p.name,
                since: now,
                entry: id,
                agents: Vec::new(),
            });
        }
        Ok(out)
    }

    /// The phone system's answer to an act. A failed sign-in is forgotten
    /// (the agent is not ours to sign out); a failed sign-out is tried again
    /// after a release hold, a few times.
    pub fn handle_result(&mut self, act: &Act, ok: bool, now: Ts) {
        if ok {
            return;
        }
        match act.verb {
            CtiVerb::SignIn => {
                for a in &mut self.active {
                    if a.entry == act.entry {
                        a.agents.retain(|x| x != &act.agent);
                    }
                }
            }
            CtiVerb::SignOut => {
                if act.attempt <= SIGN_OUT_RETRIES {
                    let hold = self.plan.as_ref().map_or(60_000, |p| p.release_hold_ms);
                    self.leaving.push(Leaving {
                        entry: act.entry,
                        action: act.action,
                        agent: act.agent.clone(),
                        attempt: act.attempt + 1,
                        at: now.plus_ms(hold.max(1_000)),
                    });
                }
            }
        }
    }

    /// An admin signed `agent` in or out of this queue by hand: the agent is
    /// no longer the ladder's to sign out. Returns results for sign-outs that
    /// will not happen.
    pub fn forget(&mut self, agent: &str, why: &str) -> Vec<Output> {
        for a in &mut self.active {
            a.agents.retain(|x| x != agent);
        }
        let mut out = Vec::new();
        self.leaving.retain(|l| {
            if l.agent != agent {
                return true;
            }
            out.push(Output::Mark(Mark {
                entry: l.entry,
                action: Some(l.action),
                result: CANCELLED,
                detail: Some(why.to_string()),
                by: None,
            }));
            false
        });
        out
    }
}

mod fire;
mod plan;
mod replan;
mod restore;

#[cfg(test)]
mod tests;
