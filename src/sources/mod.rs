//! Sources turn wire events into domain [`Event`]s and hand them to the state
//! engine through one bounded channel.
//!
//! The channel is bounded on purpose: when the engine falls behind, a source's
//! `send().await` waits, which pushes back on the TCP peer (or the HTTP
//! client) instead of growing memory. Sources own their reconnect, backoff and
//! resync, and report their health through [`SourceHealth`].
//!
//! One abstraction for every kind, in the spirit of Vector's
//! `SourceConfig::build(cx)`: the kind's validated settings
//! ([`crate::config::SourceSpec`]) plus a [`SourceCtx`] (every shared
//! handle) go into the adapter's `spawn`, which returns [`Started`] (the task,
//! and the CTI action of a connection that can sign agents in and out).
//! [`spawn`] here and `crate::replay::decoder` are the only places that map
//! a kind to its adapter.
//!
//! # Adding a source
//!
//! `src/sources/toy.rs` is a test-only source built by these steps, with a
//! test that its events reach the engine's figures.
//!
//! 1. **Settings.** A plain-data struct for the kind's keys in
//!    `src/config/sources.rs` (serde with `deny_unknown_fields` and
//!    defaults; a `validate()` for what serde cannot check), a variant of
//!    `SourceSpec` with its `kind()`, the kind in `SOURCE_KINDS`, and an
//!    arm in `Loader::source` (`src/config/mod.rs`) so `check-config`
//!    reports bad keys with positions. `config` imports nothing from
//!    `sources/` or `cti/`: types the settings need live there too.
//! 2. **Sans-IO core.** In `src/sources/<kind>/`: parsing and mapping over
//!    bytes and a `now` handed in, never a socket or a clock, turning input
//!    into [`Event`]s or a [`Reject`] whose [`RejectReason`] says why (add a
//!    reason in `src/event.rs` if none fits: it becomes a metric label).
//! 3. **Live task.** `pub fn spawn(spec: <Kind>Config, ctx: SourceCtx) ->
//!    Started` in `src/sources/<kind>/task.rs`: events go to `ctx.inbox`
//!    (awaiting it: backpressure), rejections to `ctx.rejects.record`,
//!    state to `ctx.health`; `ctx.agents` and `ctx.restart` say who the
//!    configured agents are and what the engine already holds. A
//!    connection that can sign agents in and out returns its CTI action
//!    (`src/sources/<kind>/cti.rs`) in [`Started::cti`]. A TCP client of
//!    a PBX implements [`tcp::Protocol`] and runs on [`tcp::run`].
//! 4. **Replay.** `pub fn replay_decoder(..)` in
//!    `src/sources/<kind>/replay.rs`, returning a [`ReplayDecoder`] over the
//!    same core.
//! 5. **Register.** An arm in [`spawn`] (this file); a `Format` variant and
//!    an arm in `crate::replay::decoder` (and in `replay::detect` if its
//!    recordings can be recognised from their first bytes).
//! 6. **Tests.** The core on recorded input (`tests/data/<kind>/`), the
//!    task against a fake peer over real sockets, the replay in any
//!    chunking, and a story through the daemon.
//! 7. **Docs.** The keys, commented, in `config/example.toml`; the
//!    platform's guide in `docs/`; the new reasons in the metrics list.

pub mod ami;
pub mod backoff;
pub mod esl;
pub mod health;
pub mod hep;
pub mod json;
pub mod queue_log;
pub mod reject;
pub mod sip;
pub mod tcp;
#[cfg(test)]
mod toy;

use std::sync::Arc;

pub use health::{HealthRegistry, SourceHealth};
pub use reject::{Reject, RejectCounter, RejectReason};

use crate::config::SourceSpec;
use crate::cti::Cti;
use crate::event::Event;
use crate::state::SourcePosition;
use crate::time::Ts;

/// Everything a running source is handed besides its own settings: where
/// its events go, where it reports its health and its rejections, the
/// `[[agents]]` directory, and where the restored figures end. One value,
/// so adding a handle touches this struct and not every adapter's
/// signature.
///
/// There is no shutdown signal in it on purpose: the daemon holds each
/// source's task ([`Started::task`]) and stops it by abort, which is safe
/// because a source holds nothing to flush (what it sent is in the
/// engine's inbox; a file source's position is saved with the engine's
/// checkpoint), and a source also ends by itself when the inbox closes.
#[derive(Clone)]
pub struct SourceCtx {
    /// The `[[sources]] name`: the label of its events, health and
    /// rejection counts.
    pub name: Arc<str>,
    pub inbox: Inbox,
    pub health: Arc<SourceHealth>,
    pub rejects: Arc<RejectCounter>,
    /// `[[agents]]` entries with an `interface` this source may name, as
    /// `(id, interface)`: events for that interface carry that id, and the
    /// CTI addresses that interface (AMI, queue_log).
    pub agents: Vec<(String, String)>,
    /// Set by the daemon when the engine already holds figures (a restored
    /// checkpoint, or a reload that restarted the source); `None` for a
    /// source started on its own.
    pub restart: Option<Restart>,
}

impl SourceCtx {
    /// A context for the source `name` with no agents and no restart (the
    /// daemon fills those in; a test or a tool starting one source needs
    /// neither).
    pub fn new(
        name: &str,
        inbox: Inbox,
        health: Arc<SourceHealth>,
        rejects: Arc<RejectCounter>,
    ) -> Self {
        SourceCtx {
            name: Arc::from(name),
            inbox,
            health,
            rejects,
            agents: Vec::new(),
            restart: None,
        }
    }

    /// Sends decoded lines to the engine and counts the bad ones. Returns
    /// false when the engine has stopped.
    pub async fn deliver(&self, context: &str, decoded: &mut Vec<json::Decoded>) -> bool {
        self.deliver_at(context, decoded, None).await
    }

    /// [`SourceCtx::deliver`], telling the engine where in a re-readable
    /// input these events end (see [`Envelope::Positioned`]).
    pub async fn deliver_at(
        &self,
        context: &str,
        decoded: &mut Vec<json::Decoded>,
        position: Option<SourcePosition>,
    ) -> bool {
        let mut events = Vec::with_capacity(decoded.len());
        for (line, r) in decoded.drain(..) {
            match r {
                Ok(ev) => events.push(ev),
                Err(rej) => {
                    let at = format!("{context}:{line}");
                    self.rejects.record(&self.name, &at, &rej);
                }
            }
        }
        if events.is_empty() {
            return true;
        }
        self.health.add_events(events.len() as u64);
        let source = self.name.clone();
        let env = match position {
            Some(position) => Envelope::Positioned {
                source,
                events,
                position,
            },
            None => Envelope::Batch { source, events },
        };
        self.inbox.send(env).await.is_ok()
    }
}

/// Where a restarted source starts, given what the engine already holds.
/// A file source (queue_log, a json file) reads the file from its first
/// line, so its decoder learns who is a member and paused and which
/// callers are still waiting, but hands on only what the engine does not
/// already hold:
/// - the engine was restored from a checkpoint that holds this file's events
///   up to `applied` (same inode, offset within the file): lines before that
///   offset are decoded and dropped, later lines are handed on. The
///   position was saved in the same transaction as the figures, so this is
///   exact: nothing counted twice, nothing skipped.
/// - otherwise (no checkpoint, another day's, or the file was rotated or
///   truncated since): with `start_at = "end"`, events of today
///   (from `today_start`) are handed on and older ones dropped, rebuilding
///   today's figures and the callers waiting; with `"beginning"`, all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub applied: Option<SourcePosition>,
    pub today_start: Ts,
    /// The engine already holds every call that ended before this (the
    /// restored checkpoint's time, or a reload's): sources that relist
    /// calls (FreeSWITCH) must not count those again.
    pub counted_until: Option<Ts>,
}

/// A started source: its task, and the CTI action that signs agents in and
/// out through its connection when it has one (AMI, event socket).
pub struct Started {
    pub task: tokio::task::JoinHandle<()>,
    pub cti: Option<Arc<dyn Cti>>,
}

impl Started {
    /// A source without a CTI action.
    pub fn task(task: tokio::task::JoinHandle<()>) -> Self {
        Started { task, cti: None }
    }
}

/// A decoder of a recorded input, fed bytes in chunks (sans-IO).
pub trait ReplayDecoder {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>>;
    fn finish(&mut self) -> Vec<Result<Event, Reject>>;
    /// After [`ReplayDecoder::finish`]: the events of timers the decoder
    /// runs itself (the event-socket source times wrap-ups and delays that
    /// FreeSWITCH never announces) that fall due before `until`. Live, the
    /// daemon's tick ends them; a recording stops at its last event.
    fn finish_timers(&mut self, _until: Ts) -> Vec<Result<Event, Reject>> {
        Vec::new()
    }
    /// The input line of the next rejection returned, for decoders of
    /// line formats (json): the replay logs it as `file:line`. Called once
    /// per rejection, in order.
    fn next_reject_line(&mut self) -> Option<u64> {
        None
    }
}

/// Starts the source a validated spec describes. The one place that maps a
/// kind to its adapter for live input (replay has its twin,
/// [`crate::replay::decoder`]).
pub fn spawn(spec: &SourceSpec, ctx: SourceCtx) -> Started {
    match spec {
        SourceSpec::Json(c) => json::spawn(c.clone(), ctx),
        SourceSpec::Ami(c) => ami::spawn(c.clone(), ctx),
        SourceSpec::QueueLog(c) => queue_log::spawn(c.clone(), ctx),
        SourceSpec::Esl(c) => esl::spawn(c.clone(), ctx),
        SourceSpec::Hep(c) => hep::spawn(c.clone(), ctx),
    }
}

/// What a source sends to the engine.
#[derive(Debug)]
pub enum Envelope {
    /// A domain event from the named source.
    Event { source: Arc<str>, event: Event },
    /// A batch of events from one source, applied in order.
    Batch {
        source: Arc<str>,
        events: Vec<Event>,
    },
    /// A batch from a source that can read its input again (a file), with
    /// where in it these events end. The engine keeps the position with
    /// the figures, in the same checkpoint, so after a restart the source
    /// resumes exactly where the restored figures end.
    Positioned {
        source: Arc<str>,
        events: Vec<Event>,
        position: SourcePosition,
    },
    /// A batch whose sender wants the engine's verdict (`POST
    /// /api/v1/events` reports `unknown_call`, `duplicate_call`... in its
    /// answer): the index in `events` and the reason of each refused event.
    Checked {
        source: Arc<str>,
        events: Vec<Event>,
        verdict: tokio::sync::oneshot::Sender<Vec<(usize, Reject)>>,
    },
    /// A stream message (cluster mode) part of which a `POST /api/v1/events`
    /// on this instance awaits: applied and positioned as
    /// [`Envelope::Positioned`], then each [`Awaiter`] gets the engine's
    /// refusals among its events (see `crate::cluster::verdicts`).
    Awaited {
        source: Arc<str>,
        events: Vec<Event>,
        position: SourcePosition,
        awaiting: Vec<Awaiter>,
    },
    /// A central instance: a site turned STALE (`stale: Some(when its stream
    /// last stored anything, if ever)`) or live again (`None`); its queues'
    /// views say so (`site_stale`).
    SiteFreshness {
        site: String,
        stale: Option<Option<crate::time::Ts>>,
    },
    /// The daemon is stopping: apply what came before, publish, and end the
    /// engine thread (its observers flush the interval history on drop).
    Shutdown,
    /// A reloaded configuration (already validated): the engine and its
    /// observers take it after what came before; `done` is answered once it
    /// is applied, with where each source's applied events end (a file
    /// source restarted by the reload resumes there, so nothing is read
    /// twice).
    Reconfigure {
        config: Arc<crate::config::Config>,
        done: tokio::sync::oneshot::Sender<Vec<(String, SourcePosition)>>,
    },
}

/// Who waits for the engine's verdict on `events[first..first + len]` of
/// an [`Envelope::Awaited`] (one request's events in a merged message).
#[derive(Debug)]
pub struct Awaiter {
    pub first: usize,
    pub len: usize,
    pub verdict: tokio::sync::oneshot::Sender<Vec<(usize, Reject)>>,
}

impl Awaiter {
    /// Answers each awaiter with the refusals among its own events, indexed
    /// from its first (`refused` indexes the whole message).
    pub fn answer(awaiting: Vec<Awaiter>, refused: &[(usize, Reject)]) {
        for a in awaiting {
            let mine = refused
                .iter()
                .filter(|(i, _)| (a.first..a.first + a.len).contains(i))
                .map(|(i, r)| (i - a.first, r.clone()))
                .collect();
            // The route may have stopped waiting: nothing to do.
            let _ = a.verdict.send(mine);
        }
    }

    /// Answers every event of each awaiter with `why` (not applied).
    pub fn refuse(awaiting: Vec<Awaiter>, why: &Reject) {
        for a in awaiting {
            let _ = a
                .verdict
                .send((0..a.len).map(|i| (i, why.clone())).collect());
        }
    }
}

/// The engine's inbox. Capacity is [`INBOX_CAPACITY`].
pub type Inbox = tokio::sync::mpsc::Sender<Envelope>;

/// Bound of the engine inbox. At 1 M events/s this is ~65 ms of buffering;
/// beyond that, sources wait (backpressure), they never drop.
pub const INBOX_CAPACITY: usize = 65_536;
