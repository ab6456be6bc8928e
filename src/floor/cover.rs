//! `cover = "auto"` on a post: when the A holders are away and a B holder is
//! logged in elsewhere, the B holder is signed into the post's queues, and
//! signed back out when A returns (or the post's schedule goes off).
//!
//! Why it is built this way:
//! - It acts through the same CTI actions the ladder uses
//!   ([`crate::cti::CtiRegistry`]: AMI, event socket, webhook, log-only in
//!   replay), so a site that trusts the ladder's sign-ins trusts these.
//! - The ladder's safety rules hold here too: a decision is written to the
//!   audit database before the phone system is asked (a decision that
//!   cannot be written is not acted on, and is tried again at the next
//!   evaluation); the rule signs out only the people it signed in, and only
//!   from the queues it signed them into (a B holder who was a member
//!   already is never touched); a sign-out waits until the holder's call
//!   has ended; one action at a time per agent, so a sign-out never
//!   overtakes the sign-in it undoes.
//! - Its log is its own table (`cover_log`, see [`crate::store::floor`]):
//!   the ladder numbers its escalation entries itself, and a second writer
//!   there would take its ids. On start the open sign-ins are read back, so
//!   a restart never forgets whom the rule signed in.
//! - A holder who leaves a queue the rule signed them into is not signed in
//!   again during the same absence of A (they left for a reason); nor is a
//!   holder whose sign-in failed (the next B holder is tried instead).
//! - Replay: the log-only CTI reports no membership change as an event, so
//!   the change it confirms is applied to the engine here, as the ladder
//!   does, and a replay shows B in the queue as the daemon did.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::posts::{Cover, PostRule};
use crate::cti::runner::{ActionRunner, request_for};
use crate::cti::{CtiOutcome, CtiRegistry, CtiVerb};
use crate::event::{AgentStatus, Event, EventKind};
use crate::state::Engine;
use crate::store::Store;
use crate::store::floor::CoverEntry;
use crate::time::Ts;

/// Outcomes waiting for the engine thread.
const RESULTS_CAPACITY: usize = 256;
/// A failed sign-out is tried again after this much event time.
const SIGN_OUT_RETRY_MS: i64 = 60_000;
/// Recent decisions kept per post for the board.
const RECENT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatPhase {
    /// The sign-in is on the wire.
    SigningIn,
    /// Signed in by the rule.
    In,
    /// A returned, but the holder is on a call: signed out when it ends.
    Leaving,
    /// The sign-out is on the wire.
    SigningOut,
}

/// One queue a holder was signed into by the rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverSeat {
    pub agent: String,
    pub queue: String,
    /// The sign-in decision in the cover log.
    pub entry: u64,
    pub since: Ts,
    pub phase: SeatPhase,
    #[serde(skip)]
    post: String,
    /// The engine has shown the holder as a member since the sign-in.
    #[serde(skip)]
    seen_member: bool,
    /// A failed sign-out is not tried again before this.
    #[serde(skip)]
    retry_at: Ts,
}

#[derive(Debug, Clone)]
struct Act {
    entry: u64,
    verb: CtiVerb,
    agent: String,
    queue: String,
}

struct Done {
    act: Act,
    outcome: CtiOutcome,
}

#[derive(Default)]
struct AgentActs {
    running: bool,
    queued: VecDeque<Act>,
}

/// The auto-cover of every post with `cover = "auto"`, run by the posts
/// observer on the engine thread.
pub struct AutoCover {
    store: Arc<Store>,
    cti: Arc<CtiRegistry>,
    actions: ActionRunner<Done>,
    /// Membership changes confirmed by a log-only CTI, for the engine.
    membership: Vec<Event>,
    acts: HashMap<String, AgentActs>,
    seats: Vec<CoverSeat>,
    /// Agents marked as the cover's in the engine
    /// ([`Engine::set_held_by_cover`]), so the ladder does not pick them.
    holding: HashSet<String>,
    /// (post, agent): not signed in again until A is back.
    declined: HashSet<(String, String)>,
    /// Results the store refused, retried in order.
    unwritten: VecDeque<(u64, Ts, &'static str, Option<String>)>,
    recent: HashMap<String, VecDeque<CoverEntry>>,
    ready: bool,
    write_failing: bool,
    /// Something shown changed.
    pub(super) changed: bool,
}

impl AutoCover {
    /// Acts through `cti` and logs to `store`. Inside a tokio runtime the
    /// actions run as tasks on it; outside one (replay) they are polled once
    /// on the spot and must answer at once.
    pub fn new(store: Arc<Store>, cti: Arc<CtiRegistry>) -> Self {
        AutoCover {
            store,
            cti,
            actions: ActionRunner::new(RESULTS_CAPACITY),
            membership: Vec::new(),
            acts: HashMap::new(),
            seats: Vec::new(),
            holding: HashSet::new(),
            declined: HashSet::new(),
            unwritten: VecDeque::new(),
            recent: HashMap::new(),
            ready: false,
            write_failing: false,
            changed: true,
        }
    }

    /// The queues the rule has signed holders of `post` into.
    /// Idempotency keys start with `scope` (`crate::cti::runner::key_scope`).
    pub fn with_key_scope(mut self, scope: String) -> Self {
        self.actions.set_scope(scope);
        self
    }

    pub fn seats_of(&self, post: &str) -> Vec<CoverSeat> {
        self.seats
            .iter()
            .filter(|s| s.post == post)
            .cloned()
            .collect()
    }

    /// The most recent decisions about `post`, oldest first.
    pub fn recent_of(&self, post: &str) -> Vec<CoverEntry> {
        self.recent
            .get(post)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The earliest retry of a failed sign-out, if any.
    pub fn next_deadline(&self, now: Ts) -> Option<Ts> {
        self.seats
            .iter()
            .filter(|s| s.phase == SeatPhase::In && s.retry_at > now)
            .map(|s| s.retry_at)
            .min()
    }

    /// First call on the engine thread: the open sign-ins from the log.
    fn ensure_ready(&mut self) {
        if self.ready {
            return;
        }
        self.ready = true;
        let entries = match self.store.cover_entries(None) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the cover log; auto cover starts with nobody signed in");
                return;
            }
        };
        for e in entries {
            let key = |s: &CoverSeat| s.post == e.post && s.agent == e.agent && s.queue == e.queue;
            match (e.verb.as_str(), e.result.as_str()) {
                ("sign_in", "ok" | "pending") => {
                    self.seats.retain(|s| !key(s));
                    self.seats.push(CoverSeat {
                        agent: e.agent.clone(),
                        queue: e.queue.clone(),
                        entry: e.id,
                        since: e.ts,
                        phase: SeatPhase::In,
                        post: e.post.clone(),
                        seen_member: false,
                        retry_at: Ts::ZERO,
                    });
                }
                ("sign_out", "ok" | "not_needed") => self.seats.retain(|s| !key(s)),
                _ => {}
            }
            let r = self.recent.entry(e.post.clone()).or_default();
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(e);
        }
        if !self.seats.is_empty() {
            tracing::info!(
                seats = self.seats.len(),
                "auto cover resumed from the cover log"
            );
        }
    }

    /// Applies confirmed membership changes and takes the phone system's
    /// answers. Returns whether anything changed.
    pub fn drain(&mut self, engine: &mut Engine) -> bool {
        self.ensure_ready();
        let mut any = false;
        self.retry_results();
        loop {
            let mut done = self.actions.take_inline();
            while let Some(d) = self.actions.try_recv() {
                done.push(d);
            }
            if done.is_empty() {
                break;
            }
            any = true;
            for d in done {
                self.complete(engine, d);
            }
        }
        for ev in std::mem::take(&mut self.membership) {
            any = true;
            if let Err(r) = engine.apply(ev) {
                tracing::warn!(reason = r.reason.as_str(), detail = %r.detail, "log-only membership change not applied");
            }
        }
        if any {
            self.changed = true;
        }
        self.sync_holds(engine);
        any
    }

    /// Decides for one post after its state was settled: sign B holders in
    /// while nobody covers, sign out those the rule signed in once A is
    /// back or the post is off.
    pub fn step(
        &mut self,
        engine: &Engine,
        rule: &PostRule,
        on: bool,
        cover: Cover,
        present: &[String],
    ) {
        self.ensure_ready();
        let now = engine.now();
        let member = |agent: &str, q: usize| {
            engine
                .find_agent(agent)
                .is_some_and(|a| engine.agent(a).queues.contains(&q))
        };
        // What the engine shows of the rule's seats.
        for s in self.seats.iter_mut().filter(|s| s.post == rule.name) {
            if let Some(q) = engine.find_queue(&s.queue)
                && member(&s.agent, q)
                && !s.seen_member
            {
                s.seen_member = true;
            }
        }
        let needed = on && matches!(cover, Cover::Grace | Cover::Unmanned | Cover::B);
        if needed {
            // A holder who left a queue the rule signed them into: gone.
            let mut left = Vec::new();
            self.seats.retain(|s| {
                let gone = s.post == rule.name
                    && s.phase == SeatPhase::In
                    && s.seen_member
                    && engine
                        .find_queue(&s.queue)
                        .is_none_or(|q| !member(&s.agent, q));
                if gone {
                    left.push((s.post.clone(), s.agent.clone()));
                }
                !gone
            });
            for (post, agent) in left {
                tracing::info!(%post, %agent, "a holder the auto cover signed in left the queue; not signed in again until A is back");
                self.declined.insert((post, agent));
                self.changed = true;
            }
            // Holders whose sign-in is under way count as coming.
            let coming: HashSet<&str> = self
                .seats
                .iter()
                .filter(|s| s.post == rule.name && !present.contains(&s.agent))
                .filter(|s| matches!(s.phase, SeatPhase::SigningIn) || !s.seen_member)
                .map(|s| s.agent.as_str())
                .collect();
            let mut missing = (rule.min as usize).saturating_sub(present.len() + coming.len());
            let mut decide: Vec<(String, String)> = Vec::new();
            for b in &rule.b {
                if missing == 0 {
                    break;
                }
                if present.contains(b)
                    || coming.contains(b.as_str())
                    || self.declined.contains(&(rule.name.clone(), b.clone()))
                    || self
                        .seats
                        .iter()
                        .any(|s| s.post == rule.name && &s.agent == b)
                {
                    continue;
                }
                let Some(i) = engine.find_agent(b) else {
                    continue;
                };
                let a = engine.agent(i);
                if a.held.ladder {
                    // The ladder has this one (signed in, proposed, or on
                    // the wire): never signed in twice by the two rules,
                    // and the ladder's release must not leave the post
                    // without its cover. The next B holder is tried.
                    continue;
                }
                let paused = a.status == AgentStatus::Paused
                    && !a
                        .reason
                        .as_deref()
                        .is_some_and(|r| rule.present_reasons.iter().any(|p| p == r));
                if a.status == AgentStatus::LoggedOut || paused {
                    continue;
                }
                // The post's queues the holder is not a member of (or that
                // the engine does not know yet).
                let join: Vec<String> = rule
                    .queues
                    .iter()
                    .filter(|n| engine.find_queue(n).is_none_or(|q| !a.queues.contains(&q)))
                    .cloned()
                    .collect();
                if join.is_empty() {
                    continue;
                }
                for q in join {
                    decide.push((b.clone(), q));
                }
                missing -= 1;
            }
            for (agent, queue) in decide {
                let reason = format!(
                    "post {}: no A holder present; {agent} covers ({})",
                    rule.name,
                    match cover {
                        Cover::Unmanned => "unmanned",
                        _ => "within the grace",
                    }
                );
                let Some(entry) = self.log(now, &rule.name, &agent, &queue, "sign_in", &reason)
                else {
                    return;
                };
                self.seats.push(CoverSeat {
                    agent: agent.clone(),
                    queue: queue.clone(),
                    entry,
                    since: now,
                    phase: SeatPhase::SigningIn,
                    post: rule.name.clone(),
                    seen_member: false,
                    retry_at: Ts::ZERO,
                });
                self.enqueue(
                    engine,
                    Act {
                        entry,
                        verb: CtiVerb::SignIn,
                        agent,
                        queue,
                    },
                );
            }
        } else {
            self.declined.retain(|(p, _)| *p != rule.name);
            let why = if on { "A is back" } else { "the post is off" };
            let mut out = Vec::new();
            for i in 0..self.seats.len() {
                let s = &self.seats[i];
                if s.post != rule.name
                    || !matches!(s.phase, SeatPhase::In | SeatPhase::Leaving)
                    || s.retry_at > now
                {
                    continue;
                }
                let q = engine.find_queue(&s.queue);
                if !q.is_some_and(|q| member(&s.agent, q)) {
                    out.push((i, false));
                    continue;
                }
                let busy = engine.find_agent(&s.agent).is_some_and(|a| {
                    matches!(
                        engine.agent(a).status,
                        AgentStatus::Ringing | AgentStatus::OnCall
                    )
                });
                if busy {
                    if s.phase != SeatPhase::Leaving {
                        self.seats[i].phase = SeatPhase::Leaving;
                        self.changed = true;
                    }
                } else {
                    out.push((i, true));
                }
            }
            let mut gone = Vec::new();
            for (i, act) in out {
                let (agent, queue) = (self.seats[i].agent.clone(), self.seats[i].queue.clone());
                let reason = format!("post {}: {why}; {agent} is signed out again", rule.name);
                let Some(entry) = self.log(now, &rule.name, &agent, &queue, "sign_out", &reason)
                else {
                    return;
                };
                if act {
                    self.seats[i].phase = SeatPhase::SigningOut;
                    self.enqueue(
                        engine,
                        Act {
                            entry,
                            verb: CtiVerb::SignOut,
                            agent,
                            queue,
                        },
                    );
                } else {
                    // Nothing to undo: the holder left the queue already.
                    self.result(entry, now, "not_needed", Some("no longer a member".into()));
                    gone.push(self.seats[i].entry);
                }
            }
            if !gone.is_empty() {
                self.seats.retain(|s| !gone.contains(&s.entry));
                self.changed = true;
            }
        }
    }

    /// Marks in the engine the agents the rule holds (any phase), and
    /// unmarks those it let go: the ladder's candidates leave them out.
    pub fn sync_holds(&mut self, engine: &mut Engine) {
        let holding: HashSet<String> = self.seats.iter().map(|s| s.agent.clone()).collect();
        if holding == self.holding {
            return;
        }
        for a in self.holding.difference(&holding) {
            if let Some(i) = engine.find_agent(a) {
                engine.set_held_by_cover(i, false);
            }
        }
        for a in holding.difference(&self.holding) {
            let i = engine.agent_index(a);
            engine.set_held_by_cover(i, true);
        }
        self.holding = holding;
    }

    /// Signs out the holders the rule signed in for posts that no longer
    /// have `cover = "auto"` (a reload removed the post or the key).
    pub fn release_orphans(&mut self, engine: &Engine, rules: &[PostRule]) {
        let auto = |p: &str| rules.iter().any(|r| r.auto_cover && r.name == p);
        if self.seats.iter().all(|s| auto(&s.post)) {
            return;
        }
        let mut orphans: Vec<String> = self
            .seats
            .iter()
            .filter(|s| !auto(&s.post))
            .map(|s| s.post.clone())
            .collect();
        orphans.sort();
        orphans.dedup();
        for post in orphans {
            let rule = PostRule {
                name: post,
                a: Vec::new(),
                b: Vec::new(),
                min: 1,
                queues: Vec::new(),
                when: None,
                grace_ms: 0,
                present_reasons: Vec::new(),
                auto_cover: true,
            };
            self.step(engine, &rule, false, Cover::Off, &[]);
        }
    }

    /// Writes a decision; `None` (and nothing acted on) when the store
    /// refuses it.
    fn log(
        &mut self,
        now: Ts,
        post: &str,
        agent: &str,
        queue: &str,
        verb: &str,
        reason: &str,
    ) -> Option<u64> {
        match self
            .store
            .insert_cover(now, post, agent, queue, verb, reason)
        {
            Ok(id) => {
                if self.write_failing {
                    tracing::info!("the cover log is written again");
                    self.write_failing = false;
                }
                self.changed = true;
                let r = self.recent.entry(post.to_string()).or_default();
                if r.len() == RECENT {
                    r.pop_front();
                }
                r.push_back(CoverEntry {
                    id,
                    ts: now,
                    post: post.into(),
                    agent: agent.into(),
                    queue: queue.into(),
                    verb: verb.into(),
                    reason: reason.into(),
                    result: "pending".into(),
                    detail: None,
                    at: None,
                });
                Some(id)
            }
            Err(e) => {
                if !self.write_failing {
                    tracing::error!(%post, %agent, %queue, verb, error = %e,
                        "cannot write an auto-cover decision to the audit log; nothing is done, \
                         and it is decided again at the next evaluation");
                    self.write_failing = true;
                }
                None
            }
        }
    }

    fn result(&mut self, entry: u64, now: Ts, result: &'static str, detail: Option<String>) {
        for r in self.recent.values_mut() {
            if let Some(e) = r.iter_mut().find(|e| e.id == entry) {
                e.result = result.into();
                e.detail = detail.clone();
                e.at = Some(now);
            }
        }
        self.unwritten.push_back((entry, now, result, detail));
        self.retry_results();
    }

    fn retry_results(&mut self) {
        while let Some((id, at, result, detail)) = self.unwritten.front() {
            match self
                .store
                .append_cover_result(*id, *at, result, detail.as_deref())
            {
                Ok(()) => {
                    self.unwritten.pop_front();
                }
                Err(e) => {
                    if !self.write_failing {
                        tracing::error!(entry = id, error = %e, "cannot write an auto-cover result; kept and retried");
                        self.write_failing = true;
                    }
                    return;
                }
            }
        }
    }

    fn enqueue(&mut self, engine: &Engine, a: Act) {
        let slot = self.acts.entry(a.agent.clone()).or_default();
        if slot.running {
            slot.queued.push_back(a);
        } else {
            slot.running = true;
            self.start(engine, a);
        }
    }

    fn start(&mut self, engine: &Engine, a: Act) {
        let (req, source) = request_for(engine, a.verb, &a.agent, &a.queue);
        // Cover entries have one action each; `cover:` keeps their ids
        // apart from the ladder's entry ids.
        let key = format!("cover:{}:0", a.entry);
        self.actions
            .start(&self.cti, source.as_deref(), req, &key, move |outcome| {
                Done { act: a, outcome }
            });
    }

    fn complete(&mut self, engine: &Engine, d: Done) {
        let now = engine.now();
        let Done { act, outcome } = d;
        if !outcome.ok {
            tracing::warn!(agent = %act.agent, queue = %act.queue, verb = ?act.verb,
                detail = %outcome.detail, "auto-cover action failed");
        }
        self.result(
            act.entry,
            now,
            if outcome.ok { "ok" } else { "failed" },
            Some(outcome.detail.clone()),
        );
        let pos = self.seats.iter().position(|s| {
            s.agent == act.agent
                && s.queue == act.queue
                && matches!(s.phase, SeatPhase::SigningIn | SeatPhase::SigningOut)
        });
        if let Some(i) = pos {
            match (act.verb, outcome.ok) {
                (CtiVerb::SignIn, true) => self.seats[i].phase = SeatPhase::In,
                (CtiVerb::SignIn, false) => {
                    let s = self.seats.remove(i);
                    self.declined.insert((s.post, s.agent));
                }
                (CtiVerb::SignOut, true) => {
                    self.seats.remove(i);
                }
                (CtiVerb::SignOut, false) => {
                    self.seats[i].phase = SeatPhase::In;
                    self.seats[i].retry_at = now.plus_ms(SIGN_OUT_RETRY_MS);
                }
            }
        }
        if outcome.ok && outcome.apply_membership {
            let (agent, queue) = (act.agent.clone(), act.queue.clone());
            let kind = match act.verb {
                CtiVerb::SignIn => EventKind::AgentJoinedQueue { agent, queue },
                CtiVerb::SignOut => EventKind::AgentLeftQueue { agent, queue },
            };
            self.membership.push(Event { ts: now, kind });
        }
        let next = self.acts.get_mut(&act.agent).and_then(|s| {
            let n = s.queued.pop_front();
            s.running = n.is_some();
            n
        });
        if let Some(n) = next {
            self.start(engine, n);
        }
    }
}

#[cfg(test)]
mod tests;
