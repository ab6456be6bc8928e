//! A/B posts: every post has A holders and B holders, and must never be
//! unmanned. When A is away B covers; a post with neither for longer than
//! its `grace` is a breach the duty supervisor must see at once.
//!
//! Why it is built this way:
//! - Presence is read from the engine's agent states after every event, on
//!   event time: a replayed day gives the same breaches, with the same start
//!   and end, as the live daemon did.
//! - A breach starts when the last holder left (or the post's schedule came
//!   on with nobody there), not when the grace ran out: the grace only
//!   decides whether an absence was long enough to count. A short absence
//!   (a quick re-login, a pause shorter than the grace) leaves no breach.
//! - The grace is a deadline ([`Observer::next_deadline`]), so a breach is
//!   declared at its due time even when no event arrives, also in replay. A
//!   post with `when` is re-checked at every minute boundary of event time
//!   (schedules are written to the minute), so it goes off and on with its
//!   schedule without an event.
//! - Outside its schedule a post is `off`: it needs nobody, and an open
//!   breach ends when the schedule goes off.
//! - The breach history per post is bounded ([`MAX_BREACHES`], oldest
//!   dropped): a post that flaps all night must not grow memory.
//! - With an audit database ([`PostsObserver::with_store`]) every breach is
//!   stored when it opens and when it ends (append-only `post_breaches`),
//!   and read back at start: a restart keeps the history, and a breach open
//!   when the daemon stopped goes on from its first start while nobody is
//!   back (it ends at the first evaluation that finds a holder present).

use std::collections::VecDeque;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::engine_thread::Observer;
use crate::escalation::schedule::Schedule;
use crate::event::AgentStatus;
use crate::state::Agent;
use crate::state::Engine;
use crate::time::Ts;

/// Breaches kept per post (the most recent).
pub const MAX_BREACHES: usize = 100;
/// While a post is unmanned, the board is refreshed at least this often in
/// event time (its unmanned seconds grow without any event).
const REFRESH_MS: i64 = 1_000;
/// Breaches read back at start: those that started this long before.
const BREACHES_BACK_MS: i64 = 2 * 86_400_000;
/// Breach rows kept for retry while the disk refuses them.
const KEPT_UNWRITTEN: usize = 1_000;

/// One `[[posts]]` entry, checked (see `config::posts`).
#[derive(Debug, Clone, PartialEq)]
pub struct PostRule {
    pub name: String,
    pub a: Vec<String>,
    pub b: Vec<String>,
    /// Holders present for the post to be covered.
    pub min: u32,
    /// A holder counts only while a member of one of these (empty: any).
    pub queues: Vec<String>,
    /// The `[[schedules]]` entry during which the post must be manned.
    pub when: Option<String>,
    pub grace_ms: i64,
    /// Pause reasons during which a holder still counts as present.
    pub present_reasons: Vec<String>,
    /// `cover = "auto"`: B holders are signed into `queues` while A is
    /// away (see [`super::cover`]).
    pub auto_cover: bool,
}

impl PostRule {
    /// How long an absence must last to be a breach: the grace, and at
    /// least 1 ms, so that the events of one instant settle first (a batch
    /// that logs a holder in writes its queue join and its state at the same
    /// time; the moment between them is not a breach).
    fn settle_ms(&self) -> i64 {
        self.grace_ms.max(1)
    }
}

/// Who covers a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cover {
    /// At least `min` A holders are present.
    A,
    /// Not enough A holders; with the B holders there are `min`.
    B,
    /// Nobody covers, for less than the grace so far.
    Grace,
    /// Nobody has covered for longer than the grace: a breach.
    Unmanned,
    /// The post's schedule is off: it needs nobody.
    Off,
}

impl Cover {
    /// Whether the post counts as covered (`acd_post_covered`): only an
    /// unmanned post does not.
    pub fn covered(self) -> bool {
        self != Cover::Unmanned
    }
}

/// A period during which a post was unmanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Breach {
    /// When the last holder left (or the schedule came on with nobody).
    pub start: Ts,
    /// When a holder came back or the schedule went off; `None`: still open.
    pub end: Option<Ts>,
}

/// One post as `/api/v1/posts`, the replay report and the wall show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostView {
    pub post: String,
    pub cover: Cover,
    pub covered: bool,
    /// Since when `cover` holds.
    pub since: Ts,
    /// Start of the open breach.
    pub unmanned_since: Option<Ts>,
    /// Seconds of the open breach as of the board's time (0 when none).
    pub unmanned_s: f64,
    /// Holders present now (A first, in configured order).
    pub present: Vec<String>,
    pub a: Vec<String>,
    pub b: Vec<String>,
    pub min: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    pub grace_s: f64,
    /// The most recent breaches, oldest first (the open one last).
    pub breaches: Vec<Breach>,
    /// `cover = "auto"` is set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_cover: bool,
    /// Auto cover: the queues it has signed B holders into now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub covering: Vec<super::cover::CoverSeat>,
    /// Auto cover: its most recent decisions (the cover log), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cover_log: Vec<crate::store::floor::CoverEntry>,
}

/// Every post, as of event time `as_of`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PostsSnapshot {
    pub as_of: Ts,
    pub posts: Vec<PostView>,
}

/// Where the engine thread leaves the latest [`PostsSnapshot`] for the
/// HTTP routes and `/metrics`.
#[derive(Default)]
pub struct PostBoard {
    current: ArcSwap<PostsSnapshot>,
}

impl PostBoard {
    pub fn snapshot(&self) -> Arc<PostsSnapshot> {
        self.current.load_full()
    }
}

#[derive(Debug, Clone)]
struct PostState {
    cover: Cover,
    since: Ts,
    /// Since when nobody covers (the post is on): the start of a breach.
    absent_since: Option<Ts>,
    present: Vec<String>,
    breaches: VecDeque<Breach>,
    /// Breaches opened or ended by the last steps, for the audit database.
    marks: Vec<Breach>,
}

impl PostState {
    fn new(now: Ts) -> Self {
        PostState {
            cover: Cover::Off,
            since: now,
            absent_since: None,
            present: Vec::new(),
            breaches: VecDeque::new(),
            marks: Vec::new(),
        }
    }

    /// Takes the stored breaches of this post (oldest first); an open one
    /// makes the post unmanned since its start until the next step says
    /// otherwise.
    fn restore(&mut self, stored: impl IntoIterator<Item = Breach>) {
        for b in stored {
            if self.breaches.iter().any(|x| x.start == b.start) {
                continue;
            }
            if self.breaches.len() == MAX_BREACHES {
                self.breaches.pop_front();
            }
            self.breaches.push_back(b);
        }
        if let Some(open) = self.breaches.back().filter(|b| b.end.is_none()) {
            self.cover = Cover::Unmanned;
            self.since = open.start;
            self.absent_since = Some(open.start);
        }
    }

    /// Moves the post to what `now`'s presence says. `on`: the schedule
    /// wants the post manned. Returns whether anything shown changed.
    fn step(
        &mut self,
        rule: &PostRule,
        on: bool,
        present_a: usize,
        present: Vec<String>,
        now: Ts,
    ) -> bool {
        let min = rule.min as usize;
        let cover = if !on {
            self.absent_since = None;
            Cover::Off
        } else if present_a >= min {
            self.absent_since = None;
            Cover::A
        } else if present.len() >= min {
            self.absent_since = None;
            Cover::B
        } else {
            let from = *self.absent_since.get_or_insert(now);
            if now.since(from) >= rule.settle_ms() {
                Cover::Unmanned
            } else {
                Cover::Grace
            }
        };
        let mut changed = present != self.present;
        self.present = present;
        if cover != self.cover {
            changed = true;
            if self.cover == Cover::Unmanned
                && let Some(open) = self.breaches.back_mut()
            {
                open.end = Some(now);
                self.marks.push(*open);
            }
            if cover == Cover::Unmanned {
                if self.breaches.len() == MAX_BREACHES {
                    self.breaches.pop_front();
                }
                let open = Breach {
                    start: self.absent_since.unwrap_or(now),
                    end: None,
                };
                self.breaches.push_back(open);
                self.marks.push(open);
            }
            self.cover = cover;
            self.since = match cover {
                Cover::Unmanned | Cover::Grace => self.absent_since.unwrap_or(now),
                _ => now,
            };
        }
        changed
    }

    fn view(&self, rule: &PostRule, now: Ts) -> PostView {
        let unmanned_since = (self.cover == Cover::Unmanned)
            .then(|| self.breaches.back().map(|b| b.start))
            .flatten();
        PostView {
            post: rule.name.clone(),
            cover: self.cover,
            covered: self.cover.covered(),
            since: self.since,
            unmanned_since,
            unmanned_s: unmanned_since
                .map(|s| now.since(s).max(0) as f64 / 1000.0)
                .unwrap_or(0.0),
            present: self.present.clone(),
            a: rule.a.clone(),
            b: rule.b.clone(),
            min: rule.min,
            queues: rule.queues.clone(),
            when: rule.when.clone(),
            grace_s: rule.grace_ms as f64 / 1000.0,
            breaches: self.breaches.iter().copied().collect(),
            auto_cover: rule.auto_cover,
            covering: Vec::new(),
            cover_log: Vec::new(),
        }
    }
}

/// Does `agent` hold the post now? Logged in (to one of `queues`, when the
/// post names queues) and not paused, unless the pause reason is one of
/// `present_reasons`.
pub fn holds(agent: &Agent, queues: Option<&[usize]>, present_reasons: &[String]) -> bool {
    if agent.status == AgentStatus::LoggedOut {
        return false;
    }
    let reason_ok = || {
        agent
            .reason
            .as_deref()
            .is_some_and(|r| present_reasons.iter().any(|p| p == r))
    };
    match queues {
        None => agent.status != AgentStatus::Paused || reason_ok(),
        Some(qs) => qs.iter().any(|&q| {
            agent.queues.contains(&q) && (agent.status_in(q) != AgentStatus::Paused || reason_ok())
        }),
    }
}

/// Watches every post on the engine thread and publishes a [`PostBoard`].
pub struct PostsObserver {
    rules: Vec<PostRule>,
    /// Each rule's schedule, resolved once (`None`: always on).
    schedules: Vec<Option<Schedule>>,
    states: Vec<PostState>,
    board: Arc<PostBoard>,
    /// Something shown changed since the last publish.
    dirty: bool,
    /// Event time of the last publish.
    published: Ts,
    /// Event time of the last evaluation.
    evaluated: Ts,
    /// Signs B holders in for posts with `cover = "auto"`; `None`: no CTI
    /// and audit log were given (auto posts then only report).
    cover: Option<super::cover::AutoCover>,
    /// Where breaches are stored and read back from (the audit database);
    /// `None` in a replay.
    store: Option<Arc<crate::store::Store>>,
    /// The stored breaches have been read back.
    restored: bool,
    /// Breach rows the store refused, retried at the next evaluation.
    unwritten: VecDeque<(String, Breach)>,
    write_failing: bool,
}

impl PostsObserver {
    pub fn new(cfg: &crate::config::Config) -> (Self, Arc<PostBoard>) {
        let board = Arc::new(PostBoard::default());
        let mut o = PostsObserver {
            rules: Vec::new(),
            schedules: Vec::new(),
            states: Vec::new(),
            board: board.clone(),
            dirty: true,
            published: Ts::ZERO,
            evaluated: Ts::ZERO,
            cover: None,
            store: None,
            restored: false,
            unwritten: VecDeque::new(),
            write_failing: false,
        };
        o.configure(cfg, Ts::ZERO);
        (o, board)
    }

    /// Breaches are stored in `store` (the audit database) and read back
    /// at the first evaluation.
    pub fn with_store(mut self, store: Arc<crate::store::Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Reads the stored breaches back (once, before the first step).
    fn restore(&mut self, now: Ts) {
        if std::mem::replace(&mut self.restored, true) {
            return;
        }
        let Some(store) = &self.store else {
            return;
        };
        match store.post_breaches(Ts(now.0.saturating_sub(BREACHES_BACK_MS))) {
            Ok(rows) => {
                for (rule, state) in self.rules.iter().zip(&mut self.states) {
                    state.restore(
                        rows.iter()
                            .filter(|(p, _)| *p == rule.name)
                            .map(|(_, b)| *b),
                    );
                }
                self.dirty = true;
            }
            Err(e) => tracing::error!(error = %e,
                "cannot read the stored post breaches; the history starts empty"),
        }
    }

    /// Writes the breaches opened or ended since the last call.
    fn store_breaches(&mut self) {
        for (rule, state) in self.rules.iter().zip(&mut self.states) {
            for b in state.marks.drain(..) {
                if self.store.is_some() {
                    self.unwritten.push_back((rule.name.clone(), b));
                }
            }
        }
        let Some(store) = &self.store else {
            return;
        };
        if self.unwritten.is_empty() {
            return;
        }
        let rows: Vec<(String, Breach)> = self.unwritten.iter().cloned().collect();
        match store.append_breaches(&rows) {
            Ok(()) => {
                self.unwritten.clear();
                self.write_failing = false;
            }
            Err(e) => {
                if !std::mem::replace(&mut self.write_failing, true) {
                    tracing::error!(error = %e, "cannot store a post breach; kept and retried");
                }
                while self.unwritten.len() > KEPT_UNWRITTEN {
                    self.unwritten.pop_front();
                }
            }
        }
    }

    /// Posts with `cover = "auto"` act through `cti` (the ladder's CTI
    /// actions) and log to `store` (the audit database).
    pub fn with_cover(
        mut self,
        store: Arc<crate::store::Store>,
        cti: Arc<crate::cti::CtiRegistry>,
    ) -> Self {
        self.cover = Some(super::cover::AutoCover::new(store, cti));
        self
    }

    /// Auto cover's idempotency keys start with `scope` (cluster mode:
    /// `<site>:`); call after [`PostsObserver::with_cover`].
    pub fn with_key_scope(mut self, scope: String) -> Self {
        self.cover = self.cover.map(|c| c.with_key_scope(scope));
        self
    }

    /// [`PostsObserver::new`] for `acdmon replay`: auto cover acts through
    /// the log-only CTI and logs to a private in-memory database.
    pub fn for_replay(cfg: &crate::config::Config) -> (Self, Arc<PostBoard>) {
        let (o, board) = Self::new(cfg);
        if !cfg.posts.iter().any(|p| p.auto_cover) {
            return (o, board);
        }
        match crate::store::Store::in_memory() {
            Ok(store) => {
                let cti = crate::cti::CtiRegistry::only(Arc::new(crate::cti::log_only::LogOnly));
                (o.with_cover(Arc::new(store), Arc::new(cti)), board)
            }
            Err(e) => {
                tracing::error!(error = %e, "no in-memory audit log; auto cover does not act in this replay");
                (o, board)
            }
        }
    }

    /// Takes a (re)loaded configuration; a post that keeps its name keeps
    /// its state and breaches.
    fn configure(&mut self, cfg: &crate::config::Config, now: Ts) {
        let mut old: Vec<(String, PostState)> = self
            .rules
            .drain(..)
            .map(|r| r.name)
            .zip(self.states.drain(..))
            .collect();
        self.rules = cfg.posts.clone();
        self.schedules = self
            .rules
            .iter()
            .map(|r| {
                r.when
                    .as_ref()
                    .and_then(|w| cfg.schedules.iter().find(|s| &s.name == w).cloned())
            })
            .collect();
        self.states = self
            .rules
            .iter()
            .map(|r| match old.iter().position(|(n, _)| *n == r.name) {
                Some(i) => old.swap_remove(i).1,
                None => PostState::new(now),
            })
            .collect();
        self.dirty = true;
    }

    fn evaluate(&mut self, engine: &mut Engine) {
        let now = engine.now();
        self.restore(now);
        self.evaluated = now;
        let local = if self.schedules.iter().any(Option::is_some) {
            Some(
                now.to_jiff()
                    .to_zoned_datetime(engine.zone().clone())
                    .datetime(),
            )
        } else {
            None
        };
        let mut qbuf: Vec<usize> = Vec::new();
        for ((rule, sched), state) in self.rules.iter().zip(&self.schedules).zip(&mut self.states) {
            let on = match (sched, local) {
                (Some(s), Some(t)) => s.on_at(t),
                _ => true,
            };
            let queues = if rule.queues.is_empty() {
                None
            } else {
                qbuf.clear();
                qbuf.extend(rule.queues.iter().filter_map(|q| engine.find_queue(q)));
                Some(qbuf.as_slice())
            };
            let mut present = Vec::new();
            let mut present_a = 0;
            for (i, id) in rule.a.iter().chain(&rule.b).enumerate() {
                let here = engine
                    .find_agent(id)
                    .is_some_and(|a| holds(engine.agent(a), queues, &rule.present_reasons));
                if here {
                    present.push(id.clone());
                    present_a += (i < rule.a.len()) as usize;
                }
            }
            let auto = rule.auto_cover.then(|| present.clone());
            if state.step(rule, on, present_a, present, now) {
                self.dirty = true;
            }
            if let (Some(present), Some(cover)) = (auto, self.cover.as_mut()) {
                cover.step(engine, rule, on, state.cover, &present);
            }
        }
        self.store_breaches();
        if let Some(c) = self.cover.as_mut() {
            c.release_orphans(engine, &self.rules);
            c.sync_holds(engine);
            if std::mem::take(&mut c.changed) {
                self.dirty = true;
            }
        }
    }

    /// Takes the phone system's answers to auto cover; evaluates again when
    /// they changed something.
    fn drain_cover(&mut self, engine: &mut Engine) {
        if let Some(c) = self.cover.as_mut()
            && c.drain(engine)
        {
            self.evaluate(engine);
        }
    }

    fn publish(&mut self, now: Ts) {
        let cover = self.cover.as_ref();
        let posts = self
            .rules
            .iter()
            .zip(&self.states)
            .map(|(r, s)| {
                let mut v = s.view(r, now);
                if let Some(c) = cover {
                    v.covering = c.seats_of(&r.name);
                    v.cover_log = c.recent_of(&r.name);
                }
                v
            })
            .collect();
        self.board
            .current
            .store(Arc::new(PostsSnapshot { as_of: now, posts }));
        self.dirty = false;
        self.published = now;
    }
}

impl Observer for PostsObserver {
    fn after_event(&mut self, engine: &mut Engine, _queue: Option<usize>) {
        if let Some(c) = self.cover.as_mut() {
            c.drain(engine);
        }
        if !self.rules.is_empty() {
            self.evaluate(engine);
        }
        // A change is on the board at once (also at a deadline, which no
        // publish follows): a shift's handover reads it at the shift's end.
        if self.dirty {
            self.publish(engine.now());
        }
    }

    fn before_publish(&mut self, engine: &mut Engine) -> Vec<Arc<crate::escalation::Entry>> {
        self.drain_cover(engine);
        let now = engine.now();
        let unmanned = self.states.iter().any(|s| s.cover == Cover::Unmanned);
        if self.dirty || (unmanned && now.since(self.published) >= REFRESH_MS) {
            self.publish(now);
        }
        Vec::new()
    }

    fn reconfigure(&mut self, engine: &mut Engine, config: &crate::config::Config) {
        self.configure(config, engine.now());
        self.evaluate(engine);
    }

    fn on_stop(&mut self, engine: &mut Engine) {
        self.publish(engine.now());
    }

    fn next_deadline(&self) -> Option<Ts> {
        let now = self.evaluated;
        let grace = self
            .rules
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| s.cover == Cover::Grace)
            .filter_map(|(r, s)| s.absent_since.map(|a| a.plus_ms(r.settle_ms())))
            .filter(|d| *d > now)
            .min();
        let minute = self
            .schedules
            .iter()
            .any(Option::is_some)
            .then(|| Ts((now.0.div_euclid(60_000) + 1) * 60_000));
        let retry = self.cover.as_ref().and_then(|c| c.next_deadline(now));
        grace.into_iter().chain(minute).chain(retry).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(grace_ms: i64) -> PostRule {
        PostRule {
            name: "front".into(),
            a: vec!["a1".into()],
            b: vec!["b1".into()],
            min: 1,
            queues: vec![],
            when: None,
            grace_ms,
            present_reasons: vec![],
            auto_cover: false,
        }
    }

    #[test]
    fn a_short_absence_leaves_no_breach_and_a_long_one_leaves_one() {
        let r = rule(60_000);
        let mut s = PostState::new(Ts(0));
        s.step(&r, true, 1, vec!["a1".into()], Ts(0));
        assert_eq!(s.cover, Cover::A);
        // Nobody for 30 s: within the grace.
        s.step(&r, true, 0, vec![], Ts(10_000));
        assert_eq!(s.cover, Cover::Grace);
        s.step(&r, true, 0, vec!["b1".into()], Ts(40_000));
        assert_eq!(s.cover, Cover::B);
        assert!(s.breaches.is_empty());
        // Nobody from 100 s; the grace runs out at 160 s.
        s.step(&r, true, 0, vec![], Ts(100_000));
        s.step(&r, true, 0, vec![], Ts(160_000));
        assert_eq!(s.cover, Cover::Unmanned);
        assert_eq!(s.since, Ts(100_000));
        s.step(&r, true, 1, vec!["a1".into()], Ts(200_000));
        assert_eq!(
            s.breaches.iter().copied().collect::<Vec<_>>(),
            vec![Breach {
                start: Ts(100_000),
                end: Some(Ts(200_000))
            }]
        );
    }

    #[test]
    fn the_breach_history_is_bounded() {
        let r = rule(0);
        let mut s = PostState::new(Ts(0));
        for i in 0..(MAX_BREACHES as i64 + 10) {
            s.step(&r, true, 0, vec![], Ts(i * 2_000));
            s.step(&r, true, 0, vec![], Ts(i * 2_000 + 500));
            s.step(&r, true, 1, vec!["a1".into()], Ts(i * 2_000 + 1_000));
        }
        assert_eq!(s.breaches.len(), MAX_BREACHES);
        assert_eq!(s.breaches[0].start, Ts(20_000));
    }
}
