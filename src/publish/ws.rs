//! `/ws` (contract section 5): a snapshot, then deltas with a monotonic
//! `seq`, coalesced, filtered by queue, resumable with `?since=SEQ`.
//!
//! Why it is built this way:
//! - **Coalescing happens once, for everyone.** One hub task follows the
//!   engine's delta channel and merges deltas (changed queues and agents by
//!   key, latest view wins; every escalation entry kept) into one *frame* per
//!   `ws_coalesce` period, leading edge first: a lone event on a quiet floor
//!   goes out at once, a flood goes out at most once per period. Each frame is
//!   serialized once; an unfiltered client that keeps up sends those shared
//!   bytes, so 500 clients cost one serialization, not 500.
//! - **A client that falls behind merges again.** Each client task drains
//!   every frame that is ready and sends them as one message (merging, not
//!   sending each frame: frames repeat whole views, and bytes are what a
//!   fan-out pays for). Clients behind by the same frames share that merge;
//!   only version 1 `?queues=` filters serialize per client. Version 2
//!   clients send each frame's patches as they are: unfiltered, the
//!   frame's one text; filtered (`?queues=`, `?pattern=`), one message per
//!   filter and frame, written by the first client with that filter and
//!   sent as the same bytes by the others (`ws_v2::PerFilter`), so a
//!   client's send path is a clone of a shared buffer, as in a bare
//!   broadcast.
//! - **Slow clients never hold memory or slow ingest.** Frames reach clients
//!   on a bounded broadcast ring shared by all (fixed capacity, oldest
//!   dropped). A client whose socket does not drain stays blocked in its own
//!   `send`; when the ring has moved past it, it gets `Lagged`, forgets its
//!   backlog and is sent a fresh snapshot once it can write again ("resync",
//!   counted in `acd_websocket_resyncs_total`). A send that cannot complete in
//!   [`SEND_TIMEOUT`] closes the connection. The engine publishes into a
//!   channel that never waits for a reader, so ingest cannot be slowed.
//! - **Resume** uses a bounded history of past frames (count and bytes), kept
//!   by the hub. Frames carry whole views, not diffs, so replaying every frame
//!   after `since` (merged into one message) rebuilds the client's state; when
//!   that history no longer reaches back to `since`, the client gets a fresh
//!   snapshot instead.
//! - **Version 1 numbers frames, not engine changes** (contract section 5:
//!   snapshot `N`, then delta `N+1`). Each frame gets the next number; a
//!   snapshot carries the number of the last frame emitted before it was
//!   taken, and `?since=` counts frames. So a client that keeps up sees
//!   `seq` step by exactly 1; a jump means frames were merged into one
//!   message (it fell behind, or a filter left nothing to say), never that
//!   something was lost. The engine's own `seq` still decides what a
//!   snapshot already holds: views are absolute, so a frame that straddles
//!   the snapshot's engine `seq` is correct to apply after it, while one
//!   entirely at or before it would move views back and goes out as an
//!   empty delta (its number, nothing else). Version 2 keeps the engine
//!   `seq` (its heartbeats and the wall's resume use it).
//!
//! This file is the hub (frames, the merge, the resume history); one
//! connection's side is `client`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use super::AppState;
use super::metrics::Metrics;
use super::ws_v2;
use crate::config::ServerConfig;
use crate::escalation::Entry;
use crate::state::{AgentView, Delta, Publisher, QueueView};
use crate::time::Ts;

/// Frames kept for `?since=` resume (5 minutes at the default 100 ms)...
pub const HISTORY_FRAMES: usize = 3000;
/// ...and at most this many bytes of them.
pub const HISTORY_BYTES: usize = 32 << 20;
/// Frames in flight to clients (6.4 s at the default period; each frame holds
/// at most one view per queue and agent); a client further behind is resynced.
pub const FRAME_CAPACITY: usize = 64;
/// Filtered version 2 clients share each frame's message per filter for
/// this many frames (a client further behind writes its own).
const SHARED_FILTERED_FRAMES: usize = 8;
/// A client whose socket accepts nothing for this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// A quiet connection gets a heartbeat this often (version 1: a WebSocket
/// Ping; version 2: `{"type":"heartbeat"}`), so a wall can tell "nothing
/// happened" from "the connection is dead".
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// Backstop for one client's write buffer. Each client has at most one
/// message in flight (every send is flushed before the next), so this only
/// bounds the largest snapshot.
pub const MAX_WRITE_BUFFER: usize = 64 << 20;
/// Clients send nothing we use; bound what they may make us buffer.
const MAX_INCOMING: usize = 64 << 10;
/// Read buffer per client (see `ws_route`).
const READ_BUFFER: usize = 4 << 10;

/// Engine deltas merged for one coalescing period.
#[derive(Debug)]
pub struct Frame {
    /// This frame's number: one more than the frame before (version 1's
    /// `seq`).
    pub number: u64,
    /// First engine delta in this frame.
    pub from: u64,
    /// Last engine delta in this frame.
    pub seq: u64,
    /// The hub lost deltas (it fell behind the engine): clients must resync.
    pub reset: bool,
    pub as_of: Ts,
    pub queues: Vec<Arc<QueueView>>,
    pub agents: Vec<Arc<AgentView>>,
    pub escalations: Vec<Arc<Entry>>,
    /// The engine took trend samples in this frame.
    pub trend: bool,
    /// The unfiltered delta message, serialized once for every client.
    text: Utf8Bytes,
    /// The same frame as protocol version 2 patches (set by the hub).
    pub v2: ws_v2::Changes,
    /// `v2` was computed (only while a version 2 client is connected; a
    /// resume across frames without it gets a snapshot).
    pub v2_ready: bool,
}

impl Frame {
    /// What the frame holds in the resume history: both encodings.
    fn held_bytes(&self) -> usize {
        self.text.len() + self.v2.bytes()
    }
}

#[derive(Serialize)]
struct DeltaMsg<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    as_of: Ts,
    queues: &'a [Arc<QueueView>],
    agents: &'a [Arc<AgentView>],
    escalations: &'a [Arc<Entry>],
}

#[derive(Serialize)]
struct SnapshotMsg<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    as_of: Ts,
    queues: &'a [Arc<QueueView>],
    agents: &'a [Arc<AgentView>],
}

fn to_text<T: Serialize>(m: &T) -> Utf8Bytes {
    match serde_json::to_string(m) {
        Ok(s) => Utf8Bytes::from(s),
        // Views are plain data; this cannot fail, but never panic on it.
        Err(e) => Utf8Bytes::from(format!(
            "{{\"type\":\"error\",\"error\":{:?}}}",
            e.to_string()
        )),
    }
}

/// The `/ws` delta message for these views (one serialization per frame).
pub fn encode_delta(
    seq: u64,
    as_of: Ts,
    queues: &[Arc<QueueView>],
    agents: &[Arc<AgentView>],
    escalations: &[Arc<Entry>],
) -> Utf8Bytes {
    to_text(&DeltaMsg {
        kind: "delta",
        seq,
        as_of,
        queues,
        agents,
        escalations,
    })
}

/// Deltas being merged by key.
#[derive(Default)]
struct Merge {
    from: u64,
    seq: u64,
    as_of: Ts,
    queues: BTreeMap<String, Arc<QueueView>>,
    agents: BTreeMap<String, Arc<AgentView>>,
    escalations: Vec<Arc<Entry>>,
    trend: bool,
    n: usize,
}

/// One engine delta or one hub frame, as [`Merge::merge`] takes it.
struct Part<'a> {
    from: u64,
    seq: u64,
    as_of: Ts,
    queues: &'a [Arc<QueueView>],
    agents: &'a [Arc<AgentView>],
    escalations: &'a [Arc<Entry>],
    trend: bool,
}

impl<'a> From<&'a Delta> for Part<'a> {
    fn from(d: &'a Delta) -> Self {
        Part {
            from: d.seq,
            seq: d.seq,
            as_of: d.as_of,
            queues: &d.queues,
            agents: &d.agents,
            escalations: &d.escalations,
            trend: d.trend,
        }
    }
}

impl<'a> From<&'a Frame> for Part<'a> {
    fn from(f: &'a Frame) -> Self {
        Part {
            from: f.from,
            seq: f.seq,
            as_of: f.as_of,
            queues: &f.queues,
            agents: &f.agents,
            escalations: &f.escalations,
            trend: f.trend,
        }
    }
}

impl Merge {
    /// The one merge of `/ws`, for the hub's deltas and a client's frames
    /// alike: changed queues and agents by key (the latest view wins), every
    /// escalation entry kept, in order. `keep_queue` and `keep_agent` are a
    /// client's filter (queue entries and escalations by queue name);
    /// everything is kept when they always say yes.
    fn merge(
        &mut self,
        part: Part<'_>,
        keep_queue: impl Fn(&str) -> bool,
        mut keep_agent: impl FnMut(&AgentView) -> bool,
    ) {
        if self.n == 0 {
            self.from = part.from;
        }
        self.n += 1;
        self.seq = part.seq;
        self.as_of = part.as_of;
        for q in part.queues.iter().filter(|q| keep_queue(&q.queue)) {
            self.queues.insert(q.queue.clone(), q.clone());
        }
        for a in part.agents {
            if keep_agent(a) {
                self.agents.insert(a.agent.clone(), a.clone());
            }
        }
        self.escalations.extend(
            part.escalations
                .iter()
                .filter(|e| keep_queue(&e.queue))
                .cloned(),
        );
        self.trend |= part.trend;
    }

    /// Everything of `part`.
    fn merge_all(&mut self, part: Part<'_>) {
        self.merge(part, |_| true, |_| true);
    }

    /// The merge as frame `number` (its text says `"seq":number`).
    fn frame(self, number: u64) -> Frame {
        let queues: Vec<_> = self.queues.into_values().collect();
        let agents: Vec<_> = self.agents.into_values().collect();
        let text = encode_delta(number, self.as_of, &queues, &agents, &self.escalations);
        Frame {
            number,
            from: self.from,
            seq: self.seq,
            reset: false,
            as_of: self.as_of,
            queues,
            agents,
            escalations: self.escalations,
            trend: self.trend,
            text,
            v2: ws_v2::Changes::default(),
            v2_ready: false,
        }
    }
}

/// Past frames for resume.
struct History {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    /// Every delta after this seq is in `frames` (or not yet emitted).
    complete_after: u64,
    /// Seq of the last frame emitted.
    last: u64,
    /// The same two as frame numbers (version 1's `seq`).
    complete_after_number: u64,
    last_number: u64,
    max_frames: usize,
    max_bytes: usize,
}

impl History {
    fn new(start: u64, max_frames: usize, max_bytes: usize) -> Self {
        History {
            frames: VecDeque::new(),
            bytes: 0,
            complete_after: start,
            last: start,
            complete_after_number: start,
            last_number: start,
            max_frames,
            max_bytes,
        }
    }

    fn push(&mut self, f: Arc<Frame>) {
        self.last = f.seq;
        self.last_number = f.number;
        if f.reset {
            self.frames.clear();
            self.bytes = 0;
            self.complete_after = f.seq;
            self.complete_after_number = f.number;
            return;
        }
        self.bytes += f.held_bytes();
        self.frames.push_back(f);
        while self.frames.len() > self.max_frames || self.bytes > self.max_bytes {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.held_bytes();
            self.complete_after = old.seq;
            self.complete_after_number = old.number;
        }
    }

    /// The frames a version 1 client that saw every frame up to number
    /// `since` missed, or `None` when they are no longer all here.
    fn after_number(&self, since: u64) -> Option<Vec<Arc<Frame>>> {
        if since < self.complete_after_number || since > self.last_number {
            return None;
        }
        Some(
            self.frames
                .iter()
                .filter(|f| f.number > since)
                .cloned()
                .collect(),
        )
    }

    /// The frames a version 2 client that saw every engine delta up to
    /// `since` missed, or `None` when they are no longer all here.
    fn after(&self, since: u64) -> Option<Vec<Arc<Frame>>> {
        if since < self.complete_after || since > self.last {
            return None;
        }
        Some(
            self.frames
                .iter()
                .filter(|f| f.seq > since)
                .cloned()
                .collect(),
        )
    }
}

/// The fan-out point between the engine and `/ws` clients.
pub struct Hub {
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    coalesce: Duration,
    history: Mutex<History>,
    frames: broadcast::Sender<Arc<Frame>>,
    /// Recent merges of several frames, for clients behind by the same frames.
    merges: MergeCache,
    /// Version 2 documents as of the last frame (lock after `history`);
    /// `None` while no version 2 client is connected, so a floor of
    /// version 1 clients pays nothing for version 2.
    docs: Mutex<Option<ws_v2::Docs>>,
    v2_clients: std::sync::atomic::AtomicUsize,
    /// When the last version 2 client left: patches are still made for
    /// [`V2_GRACE`] so a wall that lost its connection can resume.
    v2_left: Mutex<Option<std::time::Instant>>,
}

/// How long patches are still made after the last version 2 client left
/// (about the resume history at the default period).
const V2_GRACE: Duration = Duration::from_secs(300);

/// A few recent merged messages by the span of frames they cover: clients
/// woken together usually drain the same frames, so one serializes the
/// merge and the others reuse it.
#[derive(Default)]
struct MergeCache(Mutex<VecDeque<((u64, u64), Utf8Bytes)>>);

impl MergeCache {
    const KEEP: usize = 8;

    fn get(&self, span: (u64, u64)) -> Option<Utf8Bytes> {
        let c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        c.iter().find(|(s, _)| *s == span).map(|(_, t)| t.clone())
    }

    fn put(&self, span: (u64, u64), text: Utf8Bytes) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.iter().any(|(s, _)| *s == span) {
            return;
        }
        if c.len() >= Self::KEEP {
            c.pop_front();
        }
        c.push_back((span, text));
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("coalesce", &self.coalesce)
            .finish_non_exhaustive()
    }
}

enum Start {
    Snapshot,
    Resume(Vec<Arc<Frame>>),
}

impl Hub {
    /// Starts the hub task (needs a tokio runtime).
    /// Starts the hub's task (the daemon owns it and stops it last).
    pub fn spawn(
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        cfg: &ServerConfig,
    ) -> (Arc<Hub>, tokio::task::JoinHandle<()>) {
        Self::spawn_with(
            publisher,
            metrics,
            cfg.ws_coalesce.0,
            HISTORY_FRAMES,
            HISTORY_BYTES,
        )
    }

    /// [`Hub::spawn`] with explicit bounds (tests shrink the history).
    pub fn spawn_with(
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        coalesce: Duration,
        history_frames: usize,
        history_bytes: usize,
    ) -> (Arc<Hub>, tokio::task::JoinHandle<()>) {
        let rx = publisher.subscribe();
        let first = publisher.snapshot();
        let start = first.seq;
        let _ = first;
        let docs = Mutex::new(None);
        let (tx, _) = broadcast::channel(FRAME_CAPACITY);
        let hub = Arc::new(Hub {
            publisher,
            metrics,
            coalesce,
            history: Mutex::new(History::new(start, history_frames, history_bytes)),
            frames: tx,
            merges: MergeCache::default(),
            docs,
            v2_clients: Default::default(),
            v2_left: Mutex::new(None),
        });
        let task = tokio::spawn(run_hub(hub.clone(), rx, start, start));
        (hub, task)
    }

    fn emit(&self, mut f: Frame) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if !f.reset {
            // Patches against what clients hold: one diff per changed entity
            // per frame, shared by every version 2 client.
            let mut d = self.docs.lock().unwrap_or_else(|e| e.into_inner());
            if !self.v2_wanted() {
                *d = None;
            } else if let Some(d) = d.as_mut() {
                let trends = f.trend.then(|| self.publisher.snapshot().trends.clone());
                f.v2 = d.advance(
                    f.seq,
                    f.as_of,
                    &f.queues,
                    &f.agents,
                    &f.escalations,
                    trends.as_deref(),
                );
                f.v2_ready = true;
            }
        }
        let f = Arc::new(f);
        h.push(f.clone());
        // Filtered clients' shared messages are needed while clients are
        // still on a frame: drop them from frames past every client that
        // keeps up, and past the ring (a client behind it is resynced).
        for back in [SHARED_FILTERED_FRAMES, FRAME_CAPACITY] {
            if let Some(old) = h.frames.iter().rev().nth(back) {
                old.v2.per_filter.clear();
            }
        }
        // Under the history lock, so a joining client sees each frame either
        // in the history or on its receiver, never both or neither.
        let _ = self.frames.send(f);
    }

    fn join(&self, since: Option<u64>, v2: bool) -> (broadcast::Receiver<Arc<Frame>>, Start) {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.frames.subscribe();
        let mut missed = since.and_then(|s| if v2 { h.after(s) } else { h.after_number(s) });
        if v2 {
            // Under the history lock: no frame is emitted meanwhile.
            self.v2_clients
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.docs();
            if missed
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| !f.v2_ready))
            {
                missed = None;
            }
        }
        let start = match missed {
            Some(frames) => Start::Resume(frames),
            None => Start::Snapshot,
        };
        (rx, start)
    }

    /// Patches are wanted: a version 2 client is connected, or one left
    /// less than [`V2_GRACE`] ago.
    fn v2_wanted(&self) -> bool {
        self.v2_clients.load(std::sync::atomic::Ordering::Relaxed) > 0
            || self
                .v2_left
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|t| t.elapsed() < V2_GRACE)
    }

    /// The version 2 documents as of the last frame emitted (built from the
    /// latest snapshot when no version 2 client kept them: frames up to that
    /// snapshot's `seq` are then skipped, later ones patch it). Frames after
    /// them reach a receiver subscribed before this call (or are skipped by
    /// `seq`).
    fn docs(&self) -> ws_v2::Docs {
        let mut d = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        d.get_or_insert_with(|| {
            let snap = self.publisher.snapshot();
            ws_v2::Docs::from_snapshot(&snap, snap.seq)
        })
        .clone()
    }

    /// The number of the last frame emitted: what a version 1 snapshot
    /// taken after this call may say it includes (the engine published
    /// that frame's changes before the hub saw them).
    fn last_number(&self) -> u64 {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_number
    }

    /// Connected clients.
    pub fn clients(&self) -> i64 {
        self.metrics
            .ws_clients
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn run_hub(
    hub: Arc<Hub>,
    mut rx: broadcast::Receiver<Arc<Delta>>,
    mut seen: u64,
    mut number: u64,
) {
    let mut acc = Merge::default();
    let mut last_emit: Option<Instant> = None;
    loop {
        let due = if acc.n > 0 {
            last_emit.map(|t| t + hub.coalesce)
        } else {
            None
        };
        let mut closed = false;
        tokio::select! {
            r = rx.recv() => match r {
                Ok(d) => take(&hub, &mut acc, &mut seen, &d),
                Err(RecvError::Lagged(_)) => lost(&hub, &mut acc, &mut seen, &mut number),
                Err(RecvError::Closed) => closed = true,
            },
            _ = sleep_until_opt(due), if due.is_some() => {}
        }
        // Take everything already queued before deciding to emit.
        loop {
            match rx.try_recv() {
                Ok(d) => take(&hub, &mut acc, &mut seen, &d),
                Err(TryRecvError::Lagged(_)) => lost(&hub, &mut acc, &mut seen, &mut number),
                Err(TryRecvError::Closed) => {
                    closed = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let now = Instant::now();
        if acc.n > 0 && last_emit.is_none_or(|t| now >= t + hub.coalesce) {
            number += 1;
            hub.emit(std::mem::take(&mut acc).frame(number));
            last_emit = Some(now);
        }
        if closed {
            if acc.n > 0 {
                number += 1;
                hub.emit(std::mem::take(&mut acc).frame(number));
            }
            return;
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn take(_hub: &Hub, acc: &mut Merge, seen: &mut u64, d: &Delta) {
    if d.seq <= *seen {
        return;
    }
    *seen = d.seq;
    acc.merge_all(d.into());
}

/// The hub fell behind the engine: what it merged is incomplete. Clients
/// are told to take a fresh snapshot.
fn lost(hub: &Hub, acc: &mut Merge, seen: &mut u64, number: &mut u64) {
    tracing::warn!("/ws hub fell behind the engine; clients will resync from a snapshot");
    let snap = hub.publisher.snapshot();
    *seen = (*seen).max(snap.seq);
    *acc = Merge::default();
    let seq = *seen;
    let v2 = hub.v2_wanted();
    *hub.docs.lock().unwrap_or_else(|e| e.into_inner()) =
        v2.then(|| ws_v2::Docs::from_snapshot(&snap, seq));
    *number += 1;
    hub.emit(Frame {
        number: *number,
        from: seq,
        seq,
        reset: true,
        as_of: snap.as_of,
        queues: Vec::new(),
        agents: Vec::new(),
        escalations: Vec::new(),
        trend: false,
        text: Utf8Bytes::from_static(""),
        v2: ws_v2::Changes::default(),
        v2_ready: false,
    });
}

mod client;
pub mod filter;
#[cfg(test)]
mod tests;

pub use client::{Params, routes};
