//! Helpers for the publishing tests: an in-process daemon on 127.0.0.1:0, a
//! WebSocket client (tokio-tungstenite, the version axum uses), event posts.

#![allow(dead_code)]

use std::time::Duration;

use acdmon::config::Config;
use acdmon::publish::AppState;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[path = "../support/mod.rs"]
pub mod support;

pub const READ: &str = "reader";
pub const ADMIN: &str = "boss";

pub struct Running {
    pub addr: String,
    pub state: AppState,
}

/// A daemon with read and admin tokens plus `extra` configuration.
pub async fn daemon(server_extra: &str, extra: &str) -> Running {
    daemon_with(server_extra, extra, Vec::new()).await
}

/// [`daemon`] with engine observers (a stand-in ladder, say).
pub async fn daemon_with(
    server_extra: &str,
    extra: &str,
    observers: Vec<Box<dyn acdmon::engine_thread::Observer>>,
) -> Running {
    daemon_set_up(
        server_extra,
        extra,
        acdmon::daemon::Setup::observing(observers),
    )
    .await
}

/// [`daemon`] started with `setup` (observers and the handles their routes use).
pub async fn daemon_set_up(
    server_extra: &str,
    extra: &str,
    setup: acdmon::daemon::Setup,
) -> Running {
    let text = format!(
        "[server]\nread_token = \"{READ}\"\nadmin_token = \"{ADMIN}\"\n{server_extra}\n{extra}"
    );
    let cfg = Config::parse("test.toml", &text).expect("config");
    let d = acdmon::daemon::assemble(cfg, setup);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(acdmon::daemon::serve_on(listener, d.state.clone()));
    Running {
        addr,
        state: d.state,
    }
}

/// Posts JSON-lines events with the admin token; panics unless accepted.
pub async fn post(addr: &str, lines: &str) {
    let r = support::http(addr, "POST", "/api/v1/events", Some(ADMIN), lines).await;
    assert_eq!(r.status, 202, "POST /api/v1/events: {}", r.body);
}

pub fn now_ms() -> i64 {
    acdmon::time::Ts::now().0
}

pub fn enqueue(queue: &str, call: &str) -> String {
    format!(
        "{{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"{call}\",\"queue\":\"{queue}\"}}\n",
        now_ms()
    )
}

pub fn abandon(queue: &str, call: &str) -> String {
    format!(
        "{{\"ts\":{},\"type\":\"call_abandoned\",\"call\":\"{call}\",\"queue\":\"{queue}\"}}\n",
        now_ms()
    )
}

pub fn agent(agent: &str, state: &str, queue: &str) -> String {
    format!(
        "{{\"ts\":{},\"type\":\"agent_state\",\"agent\":\"{agent}\",\"state\":\"{state}\",\"queue\":\"{queue}\"}}\n",
        now_ms()
    )
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(addr: &str, query: &str) -> Ws {
    // Version 1 (whole views): these tests were written for it, and it stays.
    let url = format!("ws://{addr}/ws?v=1&{query}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    ws
}

/// The next snapshot or delta (heartbeats skipped), or `None` after `limit`.
pub async fn next(ws: &mut Ws, limit: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match m.ok()? {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                if v["type"] != "heartbeat" {
                    return Some(v);
                }
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Reads until `pred` holds for a message, checking that seq only grows.
pub async fn until(
    ws: &mut Ws,
    last_seq: &mut u64,
    limit: Duration,
    what: &str,
    mut pred: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = next(ws, left)
            .await
            .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"));
        let seq = v["seq"].as_u64().expect("seq");
        assert!(seq > *last_seq, "seq must grow: {seq} after {last_seq}");
        *last_seq = seq;
        if pred(&v) {
            return v;
        }
    }
}

pub fn queue<'a>(msg: &'a Value, name: &str) -> Option<&'a Value> {
    msg["queues"]
        .as_array()?
        .iter()
        .find(|q| q["queue"] == name)
}

pub async fn close(mut ws: Ws) {
    let _ = ws.send(Message::Close(None)).await;
}

/// Moves the engine's clock to the time a test sets: a stand-in for a
/// producer whose clock runs ahead of this machine's. The daemon never lets
/// one event's word move its clock (docs/failure-modes.md), so tests that
/// need whole minutes of event time to pass in a second move it this way.
pub struct EventClock(pub std::sync::Arc<std::sync::atomic::AtomicI64>);

impl acdmon::engine_thread::Observer for EventClock {
    fn after_event(&mut self, engine: &mut acdmon::state::Engine, _queue: Option<usize>) {
        let t = self.0.load(std::sync::atomic::Ordering::SeqCst);
        if t > engine.now().0 {
            engine.tick(acdmon::time::Ts(t));
        }
    }
}

/// Sets the time [`EventClock`] moves the engine to, and waits a few of
/// the engine's 100 ms ticks for it to get there.
pub async fn clock_to(ahead: &std::sync::atomic::AtomicI64, t: i64) {
    ahead.store(t, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}
