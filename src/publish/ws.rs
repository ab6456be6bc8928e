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
//!   only `?queues=` filters serialize per client.
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
//! - Views are absolute, so a frame that straddles a snapshot's `seq` is
//!   still correct to apply after it; only frames entirely at or before the
//!   snapshot are skipped. Every message's `seq` is the last engine delta it
//!   includes, and each client's `seq`s strictly increase.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
/// A client whose socket accepts nothing for this long is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// A quiet connection gets `{"type":"heartbeat"}` this often, so a wall can
/// tell "nothing happened" from "the connection is dead".
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

    fn frame(self) -> Frame {
        let queues: Vec<_> = self.queues.into_values().collect();
        let agents: Vec<_> = self.agents.into_values().collect();
        let text = encode_delta(self.seq, self.as_of, &queues, &agents, &self.escalations);
        Frame {
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
            max_frames,
            max_bytes,
        }
    }

    fn push(&mut self, f: Arc<Frame>) {
        self.last = f.seq;
        if f.reset {
            self.frames.clear();
            self.bytes = 0;
            self.complete_after = f.seq;
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
        }
    }

    /// The frames a client that saw everything up to `since` missed, or
    /// `None` when they are no longer all here.
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
        let task = tokio::spawn(run_hub(hub.clone(), rx, start));
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
        // Under the history lock, so a joining client sees each frame either
        // in the history or on its receiver, never both or neither.
        let _ = self.frames.send(f);
    }

    fn join(&self, since: Option<u64>, v2: bool) -> (broadcast::Receiver<Arc<Frame>>, Start) {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.frames.subscribe();
        let mut missed = since.and_then(|s| h.after(s));
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

    /// Connected clients.
    pub fn clients(&self) -> i64 {
        self.metrics
            .ws_clients
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn run_hub(hub: Arc<Hub>, mut rx: broadcast::Receiver<Arc<Delta>>, mut seen: u64) {
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
                Err(RecvError::Lagged(_)) => lost(&hub, &mut acc, &mut seen),
                Err(RecvError::Closed) => closed = true,
            },
            _ = sleep_until_opt(due), if due.is_some() => {}
        }
        // Take everything already queued before deciding to emit.
        loop {
            match rx.try_recv() {
                Ok(d) => take(&hub, &mut acc, &mut seen, &d),
                Err(TryRecvError::Lagged(_)) => lost(&hub, &mut acc, &mut seen),
                Err(TryRecvError::Closed) => {
                    closed = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let now = Instant::now();
        if acc.n > 0 && last_emit.is_none_or(|t| now >= t + hub.coalesce) {
            hub.emit(std::mem::take(&mut acc).frame());
            last_emit = Some(now);
        }
        if closed {
            if acc.n > 0 {
                hub.emit(std::mem::take(&mut acc).frame());
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
fn lost(hub: &Hub, acc: &mut Merge, seen: &mut u64) {
    tracing::warn!("/ws hub fell behind the engine; clients will resync from a snapshot");
    let snap = hub.publisher.snapshot();
    *seen = (*seen).max(snap.seq);
    *acc = Merge::default();
    let seq = *seen;
    let v2 = hub.v2_wanted();
    *hub.docs.lock().unwrap_or_else(|e| e.into_inner()) =
        v2.then(|| ws_v2::Docs::from_snapshot(&snap, seq));
    hub.emit(Frame {
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

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(ws_route))
}

/// `?queues=a,b&since=N` (plus `token`, read by the auth check).
#[derive(Debug, PartialEq)]
pub struct Params {
    pub queues: Option<HashSet<String>>,
    pub since: Option<u64>,
    /// Protocol version: 1 (whole views, contract section 5: the default,
    /// so clients written to the contract keep working) or 2 (changes
    /// only, `?v=2`: the wall and new clients).
    pub v: u8,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            queues: None,
            since: None,
            v: 1,
        }
    }
}

impl Params {
    pub fn parse(q: Option<&str>) -> Result<Params, String> {
        let mut p = Params::default();
        for kv in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = v.replace('+', " ");
            let v = percent_encoding::percent_decode_str(&v).decode_utf8_lossy();
            match k {
                "queues" => {
                    let set: HashSet<String> = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    p.queues = Some(set);
                }
                "since" => {
                    p.since = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| format!("since must be a sequence number, got {v:?}"))?,
                    )
                }
                "v" => {
                    p.v = match v.trim() {
                        "1" => 1,
                        "2" => 2,
                        _ => return Err(format!("v must be 1 or 2, got {v:?}")),
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

async fn ws_route(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    up: WebSocketUpgrade,
) -> Response {
    if let Err(r) = super::api::read_guard(&s, &h, &q) {
        return r;
    }
    let params = match Params::parse(q.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": e })),
            )
                .into_response();
        }
    };
    let hub = s.hub.clone();
    // tungstenite zeroes its whole read buffer each time a read is polled
    // (128 KiB by default; 8% of the daemon's CPU with 500 clients). Clients
    // send us nothing of size, so a small one.
    up.read_buffer_size(READ_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| client(hub, socket, params))
}

/// Counts a connected client for as long as it lives.
struct Connected(Arc<Metrics>);

impl Connected {
    fn new(m: &Arc<Metrics>) -> Self {
        m.ws_clients
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Connected(m.clone())
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0
            .ws_clients
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What one client has been sent.
struct View {
    filter: Option<HashSet<String>>,
    /// With a filter: agents this client holds (so it hears when one leaves
    /// its queues).
    known_agents: HashSet<String>,
    /// Resuming with a filter: the client's agents from before the drop are
    /// unknown here, so every agent that changed meanwhile is sent, inside
    /// the filter or not (a view outside its queues tells it to drop one).
    resuming: bool,
    seq: u64,
}

impl View {
    fn wants_queue(&self, q: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.contains(q))
    }

    fn agent_in_filter(&self, a: &AgentView) -> bool {
        match &self.filter {
            None => true,
            Some(f) => a.queues.iter().any(|q| f.contains(q)),
        }
    }

    fn snapshot(&mut self, p: &Publisher) -> Utf8Bytes {
        let snap = p.snapshot();
        self.seq = snap.seq;
        if self.filter.is_none() {
            return to_text(&SnapshotMsg {
                kind: "snapshot",
                seq: snap.seq,
                as_of: snap.as_of,
                queues: &snap.queues,
                agents: &snap.agents,
            });
        }
        let queues: Vec<_> = snap
            .queues
            .iter()
            .filter(|q| self.wants_queue(&q.queue))
            .cloned()
            .collect();
        let agents: Vec<_> = snap
            .agents
            .iter()
            .filter(|a| self.agent_in_filter(a))
            .cloned()
            .collect();
        self.known_agents = agents.iter().map(|a| a.agent.clone()).collect();
        to_text(&SnapshotMsg {
            kind: "snapshot",
            seq: snap.seq,
            as_of: snap.as_of,
            queues: &queues,
            agents: &agents,
        })
    }

    /// The message for the frames not yet sent: none when nothing new
    /// concerns this client; the frame's shared bytes when unfiltered and
    /// one frame; otherwise one merged message (merges of the same frames
    /// for unfiltered clients are shared through `cache`). Merging beats
    /// sending each frame: frames repeat whole views, and bytes are what a
    /// fan-out to hundreds of clients pays for.
    fn frames(&mut self, frames: &[Arc<Frame>], cache: &MergeCache) -> Vec<Utf8Bytes> {
        let fresh: Vec<&Arc<Frame>> = frames.iter().filter(|f| f.seq > self.seq).collect();
        let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else {
            return Vec::new();
        };
        if self.filter.is_none() {
            self.seq = last.seq;
            if fresh.len() == 1 {
                return vec![last.text.clone()];
            }
            let span = (first.seq, last.seq);
            if let Some(t) = cache.get(span) {
                return vec![t];
            }
            let mut m = Merge::default();
            for f in &fresh {
                m.merge_all((&***f).into());
            }
            let t = m.frame().text;
            cache.put(span, t.clone());
            return vec![t];
        }
        let mut m = Merge::default();
        let View {
            filter,
            known_agents,
            resuming,
            ..
        } = self;
        let wants_queue = |q: &str| filter.as_ref().is_none_or(|f| f.contains(q));
        for f in &fresh {
            m.merge((&***f).into(), wants_queue, |a| {
                // An agent leaving this client's queues is sent once more
                // (its view tells the client to drop it).
                let inside = a.queues.iter().any(|q| wants_queue(q));
                let known = *resuming || known_agents.contains(&a.agent);
                if inside {
                    known_agents.insert(a.agent.clone());
                } else {
                    known_agents.remove(&a.agent);
                }
                inside || known
            });
        }
        self.seq = m.seq;
        if self.filter.is_some()
            && m.queues.is_empty()
            && m.agents.is_empty()
            && m.escalations.is_empty()
        {
            // Nothing this client watches changed: say nothing.
            return Vec::new();
        }
        let queues: Vec<_> = m.queues.into_values().collect();
        let agents: Vec<_> = m.agents.into_values().collect();
        vec![encode_delta(
            m.seq,
            m.as_of,
            &queues,
            &agents,
            &m.escalations,
        )]
    }
}

/// A client message over [`MAX_INCOMING`] ends the connection with close
/// code 1009 (Message Too Big, RFC 6455 7.4.1), so the client learns why
/// rather than seeing the TCP connection drop. axum does not expose
/// tungstenite's error type, so the capacity error is recognised by its text
/// ("Space limit exceeded: Message too long" / "Message length too big");
/// `publish_ws` tests pin it. Other read errors end the connection as before.
async fn close_after_error(socket: &mut WebSocket, e: &axum::Error) {
    use axum::extract::ws::CloseFrame;
    let text = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    if !(text.contains("Space limit exceeded") || text.contains("too big")) {
        return;
    }
    let frame = CloseFrame {
        code: 1009,
        reason: Utf8Bytes::from(format!(
            "messages from clients are limited to {MAX_INCOMING} bytes"
        )),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

async fn send(socket: &mut WebSocket, text: Utf8Bytes) -> bool {
    send_all(socket, vec![text]).await
}

/// Writes the messages and flushes once (flushing per message was about 10x
/// slower), within [`SEND_TIMEOUT`].
async fn send_all(socket: &mut WebSocket, texts: Vec<Utf8Bytes>) -> bool {
    use futures_util::SinkExt;
    let write = async {
        for t in texts {
            socket.feed(Message::Text(t)).await?;
        }
        socket.flush().await
    };
    matches!(tokio::time::timeout(SEND_TIMEOUT, write).await, Ok(Ok(())))
}

/// A client of protocol version 2: one shared patch text per frame when
/// unfiltered, per-client patches with a filter.
struct V2 {
    client: ws_v2::Client,
    seq: u64,
}

impl V2 {
    fn snapshot(&mut self, hub: &Hub) -> Utf8Bytes {
        let docs = hub.docs();
        self.seq = docs.seq;
        self.client
            .snapshot(&docs, &hub.publisher.snapshot().trends)
    }

    /// One message per frame that changed something this client holds
    /// (frames are patches against the previous frame, so they are sent in
    /// order, not merged; each is small).
    fn frames(&mut self, frames: &[Arc<Frame>]) -> Vec<Utf8Bytes> {
        let mut out = Vec::new();
        for f in frames {
            if f.seq <= self.seq {
                continue;
            }
            self.seq = f.seq;
            out.extend(
                self.client
                    .frame(f.seq, f.as_of, &f.v2, &f.escalations, &f.agents),
            );
        }
        out
    }
}

/// What a connection speaks.
enum Proto {
    V1(View),
    V2(V2),
}

impl Proto {
    fn snapshot(&mut self, hub: &Hub) -> Utf8Bytes {
        match self {
            Proto::V1(v) => v.snapshot(&hub.publisher),
            Proto::V2(v) => v.snapshot(hub),
        }
    }

    fn frames(&mut self, frames: &[Arc<Frame>], hub: &Hub) -> Vec<Utf8Bytes> {
        match self {
            Proto::V1(v) => v.frames(frames, &hub.merges),
            Proto::V2(v) => v.frames(frames),
        }
    }

    fn heartbeat(&self) -> Utf8Bytes {
        match self {
            Proto::V1(v) => {
                Utf8Bytes::from(format!("{{\"type\":\"heartbeat\",\"seq\":{}}}", v.seq))
            }
            Proto::V2(v) => ws_v2::heartbeat(v.seq, Ts::now()),
        }
    }

    /// The first message(s) after a resume.
    fn resume(&mut self, hub: &Hub, since: u64, frames: &[Arc<Frame>]) -> Vec<Utf8Bytes> {
        match self {
            Proto::V1(view) => {
                view.seq = since;
                if view.filter.is_some() {
                    // Agents in its queues that did not change meanwhile are
                    // ones it already holds: it must hear when they leave.
                    let snap = hub.publisher.snapshot();
                    view.known_agents = snap
                        .agents
                        .iter()
                        .filter(|a| view.agent_in_filter(a))
                        .map(|a| a.agent.clone())
                        .collect();
                }
                view.resuming = true;
                let first = view.frames(frames, &hub.merges);
                view.resuming = false;
                first
            }
            // Which agents a filtered client held is unknown here: it gets a
            // snapshot. Unfiltered, the missed frames' patches in order (an
            // empty delta when none changed anything, so it learns its seq).
            Proto::V2(v) if v.client.filter.is_some() => vec![v.snapshot(hub)],
            Proto::V2(v) => {
                v.seq = since;
                let mut out = v.frames(frames);
                if out.is_empty() {
                    let now = frames.last().map_or_else(Ts::now, |f| f.as_of);
                    out.push(ws_v2::encode_delta(
                        v.seq,
                        now,
                        std::iter::empty(),
                        std::iter::empty(),
                        &[],
                    ));
                }
                out
            }
        }
    }
}

/// Counts a version 2 client (counted up by `Hub::join`).
struct V2Count<'a>(Option<&'a Arc<Hub>>);

impl Drop for V2Count<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.0 {
            *h.v2_left.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
            h.v2_clients
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

async fn client(hub: Arc<Hub>, mut socket: WebSocket, p: Params) {
    let _count = Connected::new(&hub.metrics);
    let mut proto = if p.v == 1 {
        Proto::V1(View {
            filter: p.queues,
            known_agents: HashSet::new(),
            resuming: false,
            seq: 0,
        })
    } else {
        Proto::V2(V2 {
            client: ws_v2::Client::new(p.queues),
            seq: 0,
        })
    };
    let v2 = matches!(proto, Proto::V2(_));
    let _v2_count = V2Count(v2.then_some(&hub));
    let (mut rx, start) = hub.join(p.since, v2);
    let first = match start {
        // A resume is always one message in version 1, whatever was missed.
        Start::Resume(frames) => proto.resume(&hub, p.since.unwrap_or(0), &frames),
        Start::Snapshot => vec![proto.snapshot(&hub)],
    };
    if !first.is_empty() && !send_all(&mut socket, first).await {
        return;
    }
    let heartbeat = tokio::time::sleep(HEARTBEAT);
    tokio::pin!(heartbeat);
    let mut pending: Vec<Arc<Frame>> = Vec::new();
    loop {
        let mut resync = false;
        tokio::select! {
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(e)) => {
                    close_after_error(&mut socket, &e).await;
                    return;
                }
                // Text from clients is ignored; pings are answered by the
                // WebSocket layer.
                Some(Ok(_)) => continue,
            },
            r = rx.recv() => match r {
                Ok(f) => pending.push(f),
                Err(RecvError::Lagged(_)) => resync = true,
                Err(RecvError::Closed) => return,
            },
            _ = &mut heartbeat => {
                if !send(&mut socket, proto.heartbeat()).await {
                    return;
                }
                heartbeat.as_mut().reset(Instant::now() + HEARTBEAT);
                continue;
            }
        }
        // Everything else that is ready goes into the same message.
        loop {
            match rx.try_recv() {
                Ok(f) => pending.push(f),
                Err(TryRecvError::Lagged(_)) => resync = true,
                Err(TryRecvError::Closed) | Err(TryRecvError::Empty) => break,
            }
        }
        resync |= pending.iter().any(|f| f.reset);
        let msgs = if resync {
            pending.clear();
            hub.metrics.ws_resyncs.increment(1);
            vec![proto.snapshot(&hub)]
        } else {
            let m = proto.frames(&pending, &hub);
            pending.clear();
            m
        };
        if !msgs.is_empty() {
            if !send_all(&mut socket, msgs).await {
                return;
            }
            heartbeat.as_mut().reset(Instant::now() + HEARTBEAT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(from: u64, seq: u64, bytes: usize) -> Arc<Frame> {
        Arc::new(Frame {
            from,
            seq,
            reset: false,
            as_of: Ts(0),
            queues: Vec::new(),
            agents: Vec::new(),
            escalations: Vec::new(),
            trend: false,
            text: Utf8Bytes::from("x".repeat(bytes)),
            v2: ws_v2::Changes::default(),
            v2_ready: false,
        })
    }

    #[test]
    fn history_serves_resume_only_while_it_reaches_back() {
        let mut h = History::new(10, 3, 1000);
        assert_eq!(h.after(10).map(|v| v.len()), Some(0), "nothing missed");
        h.push(frame(11, 12, 10));
        h.push(frame(13, 13, 10));
        h.push(frame(14, 16, 10));
        assert_eq!(h.after(10).map(|v| v.len()), Some(3));
        assert_eq!(h.after(13).map(|v| v.len()), Some(1));
        assert!(h.after(9).is_none(), "from before the hub started");
        assert!(
            h.after(17).is_none(),
            "from the future (a restarted daemon)"
        );
        h.push(frame(17, 18, 10));
        assert!(h.after(10).is_none(), "the first frame was evicted");
        assert_eq!(h.after(12).map(|v| v.len()), Some(3));
    }

    #[test]
    fn history_is_bounded_by_bytes_and_cleared_by_a_reset() {
        let mut h = History::new(0, 100, 25);
        for i in 1..=5 {
            h.push(frame(i, i, 10));
        }
        assert_eq!(h.frames.len(), 2);
        assert!(h.bytes <= 25);
        assert!(h.after(2).is_none());
        assert!(h.after(3).is_some());
        let mut r = Frame {
            reset: true,
            ..Arc::try_unwrap(frame(6, 6, 0)).unwrap()
        };
        r.text = Utf8Bytes::from_static("");
        h.push(Arc::new(r));
        assert!(h.after(5).is_none());
        assert_eq!(h.after(6).map(|v| v.len()), Some(0));
    }

    #[test]
    fn params() {
        let p = Params::parse(Some("token=x&queues=hot%20line,billing&since=42")).unwrap();
        assert_eq!(p.since, Some(42));
        let q = p.queues.unwrap();
        assert!(q.contains("hot line") && q.contains("billing") && q.len() == 2);
        assert!(Params::parse(Some("since=abc")).is_err());
        assert_eq!(Params::parse(None).unwrap(), Params::default());
    }
}
