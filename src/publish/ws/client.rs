//! One `/ws` connection: the query (`?token=`, `?queues=`, `?since=`,
//! `?v=`), what it has been sent ([`View`] for version 1, [`V2`] for
//! version 2), and the loop that sends it the hub's frames. Everything
//! shared by all clients (coalescing, the resume history) is the hub's, in
//! the parent module.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::*;
use filter::QueueFilter;

pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(ws_route))
}

/// `?queues=a,b&since=N` or `?pattern=repair-*` (plus `token`, read by the
/// auth check).
#[derive(Debug, PartialEq)]
pub struct Params {
    pub queues: Option<HashSet<String>>,
    /// Instead of `queues`: every queue whose name this pattern matches
    /// (`*`, `?`), including queues that appear after the client connected.
    pub pattern: Option<String>,
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
            pattern: None,
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
            if v.trim().is_empty() {
                // `?queues=&since=` from a client's URL template on its
                // first connect: not given (as on `/api/v1/escalations`).
                continue;
            }
            match k {
                "queues" => {
                    let set: HashSet<String> = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    p.queues = Some(set);
                }
                // An empty `pattern=` (a client's URL template) is a
                // parameter not given.
                "pattern" if !v.trim().is_empty() => p.pattern = Some(v.trim().to_string()),
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
        if p.queues.is_some() && p.pattern.is_some() {
            return Err("give queues or pattern, not both".into());
        }
        Ok(p)
    }

    /// The queues the client watches (`None`: all).
    pub fn filter(&self) -> Option<QueueFilter> {
        QueueFilter::from_query(self.queues.clone(), self.pattern.clone())
    }
}

async fn ws_route(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    up: WebSocketUpgrade,
) -> Response {
    if let Err(r) = crate::publish::api::read_guard(&s, &h, &q) {
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
    filter: Option<QueueFilter>,
    /// With a filter: agents this client holds (so it hears when one leaves
    /// its queues).
    known_agents: HashSet<String>,
    /// Resuming with a filter: the client's agents from before the drop are
    /// unknown here, so every agent that changed meanwhile is sent, inside
    /// the filter or not (a view outside its queues tells it to drop one).
    resuming: bool,
    /// The last frame number sent (the `seq` of its last message).
    number: u64,
    /// The engine `seq` and time of the snapshot it holds: a frame entirely
    /// at or before them holds nothing newer (0 after a resume).
    seq: u64,
    as_of: Ts,
}

impl View {
    fn wants_queue(&self, q: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.shows(q))
    }

    fn agent_in_filter(&self, a: &AgentView) -> bool {
        match &self.filter {
            None => true,
            Some(f) => f.shows_any(a.queues.iter().map(String::as_str)),
        }
    }

    /// A snapshot numbered as the last frame emitted before it was taken
    /// (it holds at least that frame's changes; the next frame is `+1`).
    fn snapshot(&mut self, hub: &Hub) -> Utf8Bytes {
        let number = hub.last_number();
        let snap = hub.publisher.snapshot();
        self.number = number;
        self.seq = snap.seq;
        self.as_of = snap.as_of;
        if self.filter.is_none() {
            return to_text(&SnapshotMsg {
                kind: "snapshot",
                seq: number,
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
            seq: number,
            as_of: snap.as_of,
            queues: &queues,
            agents: &agents,
        })
    }

    /// The message for the frames not yet sent, numbered as the last of
    /// them: none when nothing new concerns a filtered client; the frame's
    /// shared bytes when unfiltered and one frame; otherwise one merged
    /// message (merges of the same frames for unfiltered clients are shared
    /// through `cache`). Merging beats sending each frame: frames repeat
    /// whole views, and bytes are what a fan-out to hundreds of clients
    /// pays for. An unfiltered client always gets a message, so one that
    /// keeps up sees every number.
    fn frames(&mut self, frames: &[Arc<Frame>], cache: &MergeCache) -> Vec<Utf8Bytes> {
        let fresh: Vec<&Arc<Frame>> = frames.iter().filter(|f| f.number > self.number).collect();
        let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else {
            return Vec::new();
        };
        let number = last.number;
        self.number = number;
        // Frames entirely held by the snapshot would move views back: only
        // their number is sent (right after a snapshot, at most a frame).
        let held = self.seq;
        let newer = fresh.iter().filter(|f| f.seq > held).count();
        self.seq = held.max(last.seq);
        if self.filter.is_none() {
            if newer == fresh.len() {
                if fresh.len() == 1 {
                    return vec![last.text.clone()];
                }
                let span = (first.number, number);
                if let Some(t) = cache.get(span) {
                    return vec![t];
                }
                let mut m = Merge::default();
                for f in &fresh {
                    m.merge_all((&***f).into());
                }
                let t = m.frame(number).text;
                cache.put(span, t.clone());
                return vec![t];
            }
            let mut m = Merge::default();
            for f in fresh.iter().filter(|f| f.seq > held) {
                m.merge_all((&***f).into());
            }
            m.as_of = m.as_of.max(last.as_of).max(self.as_of);
            return vec![m.frame(number).text];
        }
        let mut m = Merge::default();
        let View {
            filter,
            known_agents,
            resuming,
            ..
        } = self;
        let wants_queue = |q: &str| filter.as_ref().is_none_or(|f| f.shows(q));
        for f in fresh.iter().filter(|f| f.seq > held) {
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
        if m.queues.is_empty() && m.agents.is_empty() && m.escalations.is_empty() {
            // Nothing this client watches changed: say nothing (its next
            // `seq` jumps; nothing it watches was lost).
            return Vec::new();
        }
        let queues: Vec<_> = m.queues.into_values().collect();
        let agents: Vec<_> = m.agents.into_values().collect();
        vec![encode_delta(
            number,
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

/// Writes one message of any kind (a heartbeat may be a Ping) within
/// [`SEND_TIMEOUT`].
async fn send_message(socket: &mut WebSocket, m: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(m)).await,
        Ok(Ok(()))
    )
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
            Proto::V1(v) => v.snapshot(hub),
            Proto::V2(v) => v.snapshot(hub),
        }
    }

    fn frames(&mut self, frames: &[Arc<Frame>], hub: &Hub) -> Vec<Utf8Bytes> {
        match self {
            Proto::V1(v) => v.frames(frames, &hub.merges),
            Proto::V2(v) => v.frames(frames),
        }
    }

    /// What a quiet connection gets every [`HEARTBEAT`]. Version 1 is the
    /// contract's shape, whose messages are snapshots and deltas only, so a
    /// client written to it must never meet a third type: it gets a
    /// WebSocket Ping (its library answers; proxies see traffic). Version 2
    /// carries the server clock the client derives waits from, so it gets a
    /// text heartbeat.
    fn heartbeat(&self) -> Message {
        match self {
            Proto::V1(_) => Message::Ping(Default::default()),
            Proto::V2(v) => Message::Text(ws_v2::heartbeat(v.seq, Ts::now())),
        }
    }

    /// The first message(s) after a resume.
    fn resume(&mut self, hub: &Hub, since: u64, frames: &[Arc<Frame>]) -> Vec<Utf8Bytes> {
        match self {
            Proto::V1(view) => {
                // `since` is a frame number; every frame after it applies.
                view.number = since;
                view.seq = 0;
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
    let filter = p.filter();
    let mut proto = if p.v == 1 {
        Proto::V1(View {
            filter,
            known_agents: HashSet::new(),
            resuming: false,
            number: 0,
            seq: 0,
            as_of: Ts(0),
        })
    } else {
        Proto::V2(V2 {
            client: ws_v2::Client::new(filter),
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
    let mut last_sent = Instant::now();
    let heartbeat = tokio::time::sleep_until(last_sent + HEARTBEAT);
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
                // Sends do not move the timer (a timer update per client per
                // frame is work the fan-out does not need): it fires, and
                // waits again from the last send when there was one since.
                let quiet_until = last_sent + HEARTBEAT;
                if Instant::now() < quiet_until {
                    heartbeat.as_mut().reset(quiet_until);
                    continue;
                }
                if !send_message(&mut socket, proto.heartbeat()).await {
                    return;
                }
                last_sent = Instant::now();
                heartbeat.as_mut().reset(last_sent + HEARTBEAT);
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
            last_sent = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(number: u64, from: u64, seq: u64) -> Arc<Frame> {
        Arc::new(Frame {
            number,
            from,
            seq,
            reset: false,
            as_of: Ts(seq as i64),
            queues: Vec::new(),
            agents: Vec::new(),
            escalations: Vec::new(),
            trend: false,
            text: Utf8Bytes::from(format!("shared {number}")),
            v2: ws_v2::Changes::default(),
            v2_ready: false,
        })
    }

    fn unfiltered(number: u64, seq: u64) -> View {
        View {
            filter: None,
            known_agents: HashSet::new(),
            resuming: false,
            number,
            seq,
            as_of: Ts(seq as i64),
        }
    }

    /// A snapshot numbered 4 was taken at engine change 12, before the hub
    /// emitted frame 5 (changes 9..11, all in the snapshot). Frame 5 goes
    /// out as its number only (its views would be older than the
    /// snapshot's); frame 6 (changes 12..14) straddles the snapshot and goes
    /// out whole, as its shared bytes.
    #[test]
    fn a_frame_the_snapshot_already_holds_goes_out_as_its_number_only() {
        let cache = MergeCache::default();
        let mut v = unfiltered(4, 12);
        let out = v.frames(&[frame(4, 5, 8), frame(5, 9, 11)], &cache);
        assert_eq!(out.len(), 1);
        let m: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(m["type"], "delta");
        assert_eq!(m["seq"], 5);
        assert_eq!(m["queues"], serde_json::json!([]));
        assert_eq!(
            m["as_of"],
            serde_json::json!(Ts(12)),
            "time never goes back"
        );
        let out = v.frames(&[frame(6, 12, 14)], &cache);
        assert_eq!(out, vec![Utf8Bytes::from("shared 6")]);
        assert!(
            v.frames(&[frame(6, 12, 14)], &cache).is_empty(),
            "sent once"
        );
    }

    /// A client woken with several frames ready gets one merged message
    /// numbered as the last: a jump, with everything in it.
    #[test]
    fn frames_merged_for_a_client_behind_carry_the_last_number() {
        let cache = MergeCache::default();
        let mut v = unfiltered(4, 8);
        let out = v.frames(&[frame(5, 9, 11), frame(6, 12, 14)], &cache);
        let m: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(m["seq"], 6);
    }
}
