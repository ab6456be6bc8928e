//! `/ws` protocol version 2 (changes only) against a running daemon over real
//! sockets: a quiet floor costs heartbeats only; a client that applies the
//! patches holds exactly what the REST API shows after a storm of events;
//! a queue filter sees its queues and hears when an agent leaves them.

mod wsutil;

use std::time::Duration;

use futures_util::StreamExt;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsutil::support;
use wsutil::*;

/// RFC 7396, written again here so the test does not trust the code under test.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A version 2 client as the wall is one: the documents, the server clock.
#[derive(Default)]
struct Client {
    state: Value,
    seq: u64,
    now: String,
    /// When `now` arrived (the client's own clock runs on from there).
    now_at: Option<std::time::Instant>,
    snapshots: usize,
    deltas: usize,
    /// Deltas with at least one queue or agent entry.
    entity_deltas: usize,
    /// Deltas carrying the minute's trend samples.
    trend_deltas: usize,
    heartbeats: usize,
    bytes: usize,
    /// One-minute samples per queue, as a wall keeps them.
    trends: Map<String, Value>,
    /// The `trend` member of each delta that opened a trend minute.
    trend_minutes: Vec<(String, Value)>,
}

/// The sample a client derives for a minute the server left a queue out of:
/// the last one, its longest wait grown by the minutes passed while a caller
/// waits (whole milliseconds), written here from the contract.
fn extend(last: &Value, at: &str) -> Value {
    let t = |v: &str| acdmon::time::Ts::parse_rfc3339(v).unwrap().0;
    let mut s = last.clone();
    s["at"] = json!(at);
    if last["waiting"].as_u64().unwrap() > 0 {
        let ms = (last["longest_wait_s"].as_f64().unwrap() * 1000.0).round() as i64;
        s["longest_wait_s"] = json!((ms + t(at) - t(last["at"].as_str().unwrap())) as f64 / 1000.0);
    }
    s
}

impl Client {
    fn take(&mut self, text: &str) {
        self.bytes += text.len();
        let m: Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(m["v"], 2, "{text}");
        let seq = m["seq"].as_u64().expect("seq");
        assert!(seq >= self.seq, "seq went back: {seq} after {}", self.seq);
        self.seq = seq;
        self.now = m["now"].as_str().expect("every message carries now").into();
        self.now_at = Some(std::time::Instant::now());
        match m["type"].as_str() {
            Some("snapshot") => {
                self.snapshots += 1;
                self.state = json!({"queues": m["queues"], "agents": m["agents"]});
                self.trends = m["trends"].as_object().cloned().unwrap_or_default();
            }
            Some("delta") => {
                self.deltas += 1;
                let n = |k: &str| m[k].as_object().map_or(0, |o| o.len());
                if n("queues") + n("agents") > 0 {
                    self.entity_deltas += 1;
                }
                if m.get("trend").is_some() {
                    self.trend_deltas += 1;
                }
                if let Some(at) = m["trend_at"].as_str() {
                    self.trend_minutes
                        .push((at.to_string(), m["trend"].clone()));
                    let listed = m["trend"].as_object().expect("trend with trend_at");
                    for (q, list) in self.trends.iter_mut() {
                        let list = list.as_array_mut().unwrap();
                        let Some(last) = list.last().cloned() else {
                            continue;
                        };
                        if last["at"].as_str().unwrap() >= at {
                            continue;
                        }
                        list.push(match listed.get(q) {
                            Some(s) => s.clone(),
                            None => extend(&last, at),
                        });
                    }
                    for (q, s) in listed {
                        if !self.trends.contains_key(q) {
                            self.trends.insert(q.clone(), json!([s]));
                        }
                    }
                }
                merge(
                    &mut self.state,
                    &json!({"queues": m["queues"], "agents": m["agents"]}),
                );
            }
            Some("heartbeat") => self.heartbeats += 1,
            other => panic!("unknown message type {other:?}"),
        }
    }

    /// Reads until the connection is silent for `quiet` (at most 10 s).
    async fn drain(&mut self, ws: &mut Ws, quiet: Duration) {
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < end {
            match tokio::time::timeout(quiet, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => self.take(&t),
                Ok(Some(Ok(_))) => {}
                _ => return,
            }
        }
    }

    /// Reads everything that arrives for `total`.
    async fn read_for(&mut self, ws: &mut Ws, total: Duration) {
        let end = tokio::time::Instant::now() + total;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
            if let Message::Text(t) = m {
                self.take(&t);
            }
        }
    }
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// `/api/v1/queues` and `/api/v1/agents` keyed by id, without the values a
/// version 2 client derives from the clock, and without nulls (a missing
/// member reads as null).
async fn api_state(addr: &str) -> Value {
    let get = |path: &'static str| async move {
        let r = support::http(addr, "GET", path, Some(READ), "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    let mut queues = Map::new();
    for mut q in get("/api/v1/queues").await.as_array().unwrap().clone() {
        let m = q.as_object_mut().unwrap();
        m.remove("longest_wait_s");
        m.remove("as_of");
        let id = m["queue"].as_str().unwrap().to_string();
        queues.insert(id, q);
    }
    let mut agents = Map::new();
    for a in get("/api/v1/agents").await.as_array().unwrap() {
        agents.insert(a["agent"].as_str().unwrap().to_string(), a.clone());
    }
    let mut v = json!({"queues": queues, "agents": agents});
    strip_nulls(&mut v);
    v
}

fn line(v: Value) -> String {
    v.to_string() + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_floor_sends_heartbeats_only() {
    // 20 queues, each with a caller waiting, and 40 agents: longest waits
    // grow every engine tick, but nothing is counted or stated.
    let mut cfg = String::new();
    for i in 0..20 {
        cfg += &format!("[[queues]]\nname = \"q{i:02}\"\n");
    }
    let d = daemon("ws_coalesce = \"50ms\"", &cfg).await;
    let mut lines = String::new();
    for i in 0..20 {
        lines += &enqueue(&format!("q{i:02}"), &format!("c{i}"));
    }
    for i in 0..40 {
        lines += &agent(&format!("a{i}"), "on_call", &format!("q{:02}", i % 20));
    }
    post(&d.addr, &lines).await;
    // Let the posted events reach the hub before anyone connects.
    for _ in 0..50 {
        let v = api_state(&d.addr).await;
        if v["agents"].as_object().unwrap().len() == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut v2 = connect_v2(&d.addr, "").await;
    let mut v1 = connect(&d.addr, &format!("token={READ}")).await;
    let mut c = Client::default();
    c.drain(&mut v2, Duration::from_millis(200)).await;
    assert_eq!(c.snapshots, 1);
    let snap = c.state.clone();
    assert_eq!(snap["queues"].as_object().unwrap().len(), 20);
    let q = &snap["queues"]["q07"];
    assert_eq!(q["waiting"], 1);
    assert!(q["oldest_since"].is_string(), "{q}");
    assert!(
        q.get("longest_wait_s").is_none(),
        "time-only values are left out: {q}"
    );

    // A quiet floor: version 1 keeps sending whole queues (their longest
    // wait moved), version 2 only a heartbeat. Eleven seconds for version 2:
    // a new minute's trend samples may be sent, and the heartbeat comes 5 s
    // after the last message.
    let deltas_before = c.entity_deltas;
    let (_, v1_msgs) = tokio::join!(c.read_for(&mut v2, Duration::from_millis(11_000)), async {
        let mut n = 0;
        let end = tokio::time::Instant::now() + Duration::from_millis(5800);
        while let Ok(Some(_)) =
            tokio::time::timeout_at(end, next(&mut v1, Duration::from_secs(10))).await
        {
            n += 1;
        }
        n
    });
    assert!(
        v1_msgs >= 10,
        "the engine ticked: version 1 saw {v1_msgs} deltas"
    );
    assert_eq!(
        c.entity_deltas, deltas_before,
        "a quiet floor sends no queue or agent entries"
    );
    assert!(c.trend_deltas <= 1, "at most the minute's trend samples");
    assert!(c.heartbeats >= 1, "a heartbeat with the server clock");
    // The client derives the longest wait from the server clock.
    let now = acdmon::time::Ts::parse_rfc3339(&c.now).unwrap();
    let since = acdmon::time::Ts::parse_rfc3339(q["oldest_since"].as_str().unwrap()).unwrap();
    let api: Value = serde_json::from_str(
        &support::http(&d.addr, "GET", "/api/v1/queues/q07", Some(READ), "")
            .await
            .body,
    )
    .unwrap();
    let lw = api["longest_wait_s"].as_f64().unwrap();
    let derived =
        (now.since(since) as f64 + c.now_at.unwrap().elapsed().as_millis() as f64) / 1000.0;
    assert!(
        derived >= 5.0 && (lw - derived).abs() < 0.5,
        "derived {derived} s, API {lw} s"
    );
    assert_eq!(c.state, snap, "nothing changed");
    // One event: only that queue, only its changed fields.
    post(&d.addr, &abandon("q07", "c7")).await;
    c.drain(&mut v2, Duration::from_millis(400)).await;
    assert_eq!(c.entity_deltas, deltas_before + 1);
    assert_eq!(c.state, api_state(&d.addr).await);
    close(v1).await;
    close(v2).await;
}

async fn connect_v2(addr: &str, query: &str) -> Ws {
    let url = format!("ws://{addr}/ws?v=2&token={READ}{query}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    ws
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(u8, u8),
    Answer(u8, u8, u8),
    Abandon(u8, u8),
    Complete(u8, u8, u8),
    State(u8, u8, u8),
    Join(u8, u8),
    Leave(u8, u8),
    Exit(u8, u8),
}

const STATES: [&str; 6] = [
    "available",
    "ringing",
    "on_call",
    "wrap_up",
    "paused",
    "logged_out",
];
const REASONS: [&str; 3] = ["lunch", "training", "break"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..12).prop_map(|(q, c)| Op::Enqueue(q, c)),
        3 => (0u8..4, 0u8..12, 0u8..8).prop_map(|(q, c, a)| Op::Answer(q, c, a)),
        2 => (0u8..4, 0u8..12).prop_map(|(q, c)| Op::Abandon(q, c)),
        2 => (0u8..4, 0u8..12, 0u8..8).prop_map(|(q, c, a)| Op::Complete(q, c, a)),
        3 => (0u8..8, 0u8..6, 0u8..4).prop_map(|(a, s, q)| Op::State(a, s, q)),
        1 => (0u8..8, 0u8..4).prop_map(|(a, q)| Op::Join(a, q)),
        1 => (0u8..8, 0u8..4).prop_map(|(a, q)| Op::Leave(a, q)),
        1 => (0u8..4, 0u8..12).prop_map(|(q, c)| Op::Exit(q, c)),
    ]
}

fn event(op: &Op, ts: i64) -> String {
    let q = |i: &u8| format!("q{i}");
    let c = |i: &u8| format!("c{i}");
    let a = |i: &u8| format!("a{i}");
    line(match op {
        Op::Enqueue(qi, ci) => {
            json!({"ts": ts, "type": "call_enqueued", "call": c(ci), "queue": q(qi)})
        }
        Op::Answer(qi, ci, ai) => {
            json!({"ts": ts, "type": "call_answered", "call": c(ci), "queue": q(qi), "agent": a(ai)})
        }
        Op::Abandon(qi, ci) => {
            json!({"ts": ts, "type": "call_abandoned", "call": c(ci), "queue": q(qi)})
        }
        Op::Complete(qi, ci, ai) => {
            json!({"ts": ts, "type": "call_completed", "call": c(ci), "queue": q(qi), "agent": a(ai)})
        }
        Op::State(ai, s, qi) => {
            let mut v = json!({"ts": ts, "type": "agent_state", "agent": a(ai), "state": STATES[*s as usize], "queue": q(qi)});
            if STATES[*s as usize] == "paused" {
                v["reason"] = json!(REASONS[(*ai % 3) as usize]);
            }
            v
        }
        Op::Join(ai, qi) => {
            json!({"ts": ts, "type": "agent_joined_queue", "agent": a(ai), "queue": q(qi)})
        }
        Op::Leave(ai, qi) => {
            json!({"ts": ts, "type": "agent_left_queue", "agent": a(ai), "queue": q(qi)})
        }
        Op::Exit(qi, ci) => {
            json!({"ts": ts, "type": "call_exited", "call": c(ci), "queue": q(qi), "reason": "timeout"})
        }
    })
}

/// The story: a wall (unfiltered) and a team TV (`?queues=q1,q2`) follow a
/// floor through random bursts of calls and agent changes; afterwards each
/// holds exactly what the REST API says (the TV: its queues and the agents
/// in them).
async fn storm(bursts: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let d = daemon("ws_coalesce = \"30ms\"", "[[queues]]\nname = \"q0\"\n").await;
    let mut wall = connect_v2(&d.addr, "").await;
    let mut tv = connect_v2(&d.addr, "&queues=q1,q2").await;
    let (mut w, mut t) = (Client::default(), Client::default());
    let mut base = now_ms();
    for burst in &bursts {
        let mut lines = String::new();
        for op in burst {
            base += 7;
            lines += &event(op, base.max(now_ms()));
        }
        let r = support::http(&d.addr, "POST", "/api/v1/events", Some(ADMIN), &lines).await;
        // Random bursts include events the engine refuses (a call leaving a
        // queue it never joined); a burst of nothing else is a 400.
        let all_refused = r.status == 400 && r.body.contains("\"accepted\":0");
        prop_assert!(r.status == 202 || all_refused, "{} {}", r.status, r.body);
        // Read a little between bursts, so the clients see many frames.
        tokio::join!(
            w.drain(&mut wall, Duration::from_millis(15)),
            t.drain(&mut tv, Duration::from_millis(15))
        );
    }
    let mut api = Value::Null;
    for _ in 0..20 {
        tokio::join!(
            w.drain(&mut wall, Duration::from_millis(150)),
            t.drain(&mut tv, Duration::from_millis(150))
        );
        api = api_state(&d.addr).await;
        if w.state == api {
            break;
        }
    }
    prop_assert_eq!(&w.state, &api, "the wall's state after the storm");
    // The TV: the API filtered to q1, q2 and the agents in them.
    let mut want = api.clone();
    want["queues"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k == "q1" || k == "q2");
    want["agents"].as_object_mut().unwrap().retain(|_, a| {
        a["queues"]
            .as_array()
            .is_some_and(|qs| qs.iter().any(|q| q == "q1" || q == "q2"))
    });
    prop_assert_eq!(&t.state, &want, "the team TV's state after the storm");
    prop_assert!(w.deltas > 0);
    close(wall).await;
    close(tv).await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 20, ..ProptestConfig::default() })]
    #[test]
    fn a_client_applying_the_patches_holds_the_api_state(
        bursts in prop::collection::vec(prop::collection::vec(op(), 1..40), 1..12)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(storm(bursts))?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_stays_available_and_a_bad_version_is_refused() {
    let d = daemon("", "[[queues]]\nname = \"hotline\"\n").await;
    let mut v1 = connect(&d.addr, &format!("token={READ}")).await;
    let snap = next(&mut v1, Duration::from_secs(5)).await.unwrap();
    assert!(
        snap["queues"].is_array(),
        "version 1: whole views in a list"
    );
    assert!(snap["queues"][0]["longest_wait_s"].is_number());
    let r = support::http(&d.addr, "GET", "/ws?v=3", Some(READ), "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Resume: version 2 with ?since gets what it missed as patches.
    let mut ws = connect_v2(&d.addr, "").await;
    let mut c = Client::default();
    c.drain(&mut ws, Duration::from_millis(200)).await;
    let seen = c.seq;
    close(ws).await;
    post(
        &d.addr,
        &(enqueue("hotline", "x") + &agent("a1", "available", "hotline")),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = connect_v2(&d.addr, &format!("&since={seen}")).await;
    c.drain(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(c.snapshots, 1, "resumed without a new snapshot");
    assert!(c.deltas >= 1);
    assert_eq!(c.state, api_state(&d.addr).await);
    close(ws).await;
    close(v1).await;
}

/// The trend route and the version 2 snapshot: three minutes of event time
/// (the engine's clock is moved ahead of the wall clock before each event,
/// as a producer whose clock runs ahead would; an event's own word does not
/// move it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trend_is_served_and_the_snapshot_carries_the_last_hour() {
    let ahead = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let d = daemon_with(
        "",
        "[[queues]]\nname = \"hotline\"\n",
        vec![Box::new(EventClock(ahead.clone()))],
    )
    .await;
    let base = (now_ms() / 60_000 + 1) * 60_000; // the next whole minute
    let at = |ms: i64, v: Value| {
        let mut v = v;
        v["ts"] = json!(base + ms);
        (ms, line(v))
    };
    for (ms, l) in [
        at(
            -500,
            json!({"type": "call_enqueued", "call": "c1", "queue": "hotline"}),
        ),
        at(
            30_000,
            json!({"type": "call_enqueued", "call": "c2", "queue": "hotline"}),
        ),
        at(
            90_000,
            json!({"type": "call_abandoned", "call": "c1", "queue": "hotline"}),
        ),
        at(
            150_000,
            json!({"type": "agent_state", "agent": "a1", "state": "available", "queue": "hotline"}),
        ),
    ] {
        // The engine's 100 ms tick runs the observer.
        ahead.store(base + ms, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        post(&d.addr, &l).await;
    }
    let mut body = Value::Null;
    for _ in 0..100 {
        let r = support::http(
            &d.addr,
            "GET",
            "/api/v1/queues/hotline/trend?minutes=5",
            Some(READ),
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        body = serde_json::from_str(&r.body).unwrap();
        // Only the minutes this story made (the daemon may have sampled an
        // earlier one if it started just before a minute turned).
        body["samples"].as_array_mut().unwrap().retain(|x| {
            acdmon::time::Ts::parse_rfc3339(x["at"].as_str().unwrap())
                .unwrap()
                .0
                >= base
        });
        if body["samples"].as_array().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body["step_s"], 60);
    let s = body["samples"].as_array().unwrap();
    let waiting: Vec<_> = s.iter().map(|x| x["waiting"].as_u64().unwrap()).collect();
    assert_eq!(waiting, vec![1, 2, 1], "{body}");
    assert_eq!(s[1]["longest_wait_s"], 60.5);
    let r = support::http(
        &d.addr,
        "GET",
        "/api/v1/queues/hotline/trend?minutes=0",
        Some(READ),
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = support::http(
        &d.addr,
        "GET",
        "/api/v1/queues/nowhere/trend",
        Some(READ),
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    let r = support::http(&d.addr, "GET", "/api/v1/queues/hotline/trend", None, "").await;
    assert_eq!(r.status, 401, "read auth");
    // A wall connecting now gets the samples in its snapshot.
    let mut ws = connect_v2(&d.addr, "").await;
    let m = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    let last = m["trends"]["hotline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last, s[2], "{}", m["trends"]);
    close(ws).await;
}

/// A quiet minute costs no bytes per queue: a caller waits in `hotline` and
/// `billing`'s only agent moves between call and wrap-up (nothing a trend
/// samples), so the new minutes bring `trend_at` and no sample; a wall that
/// continues its last samples holds exactly the trend the REST API serves.
/// When a second caller joins `billing`, only `billing`'s sample is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_minute_sends_only_the_trend_samples_that_changed() {
    let ahead = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let d = daemon_with(
        "",
        "[[queues]]\nname = \"hotline\"\n[[queues]]\nname = \"billing\"\n",
        vec![Box::new(EventClock(ahead.clone()))],
    )
    .await;
    // Minutes ahead of the wall clock (at least 5 s), moved by the test.
    let mut base = (now_ms() / 60_000 + 1) * 60_000;
    if base - now_ms() < 5_000 {
        base += 60_000;
    }
    let ev = |ms: i64, v: Value| {
        let mut v = v;
        v["ts"] = json!(base + ms);
        line(v)
    };
    let billing_agent = |ms: i64, state: &str| {
        ev(
            ms,
            json!({"type": "agent_state", "agent": "a1", "state": state, "queue": "billing"}),
        )
    };
    let mut ws = connect_v2(&d.addr, "").await;
    let mut c = Client::default();
    c.drain(&mut ws, Duration::from_millis(200)).await;
    assert_eq!(c.snapshots, 1);
    let steps = [
        (
            -500,
            billing_agent(-1_000, "on_call")
                + &ev(
                    -500,
                    json!({"type": "call_enqueued", "call": "c1", "queue": "hotline"}),
                ),
        ),
        (30_000, billing_agent(30_000, "wrap_up")),
        (90_000, billing_agent(90_000, "on_call")),
        (
            150_000,
            ev(
                150_000,
                json!({"type": "call_enqueued", "call": "c2", "queue": "billing"}),
            ),
        ),
        (210_000, billing_agent(210_000, "wrap_up")),
    ];
    for (i, (clock, lines)) in steps.iter().enumerate() {
        // The engine's clock first (its 100 ms tick runs the observer).
        ahead.store(base + clock, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        post(&d.addr, lines).await;
        // Each step after the first crosses one whole minute.
        for _ in 0..100 {
            c.drain(&mut ws, Duration::from_millis(50)).await;
            let from = acdmon::time::Ts(base).rfc3339();
            if c.trend_minutes.iter().filter(|(at, _)| *at >= from).count() >= i {
                break;
            }
        }
    }
    let minute = |k: i64| acdmon::time::Ts(base + k * 60_000).rfc3339();
    let sent: Vec<(String, Vec<String>)> = c
        .trend_minutes
        .iter()
        .filter(|(at, _)| *at >= minute(0))
        .map(|(at, t)| (at.clone(), t.as_object().unwrap().keys().cloned().collect()))
        .collect();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        sent[1..],
        [
            (minute(1), names(&[])),
            (minute(2), names(&[])),
            (minute(3), names(&["billing"])),
        ],
        "minute 0 may list both (first samples); then only what changed: {sent:?}"
    );
    for q in ["hotline", "billing"] {
        let r = support::http(
            &d.addr,
            "GET",
            &format!("/api/v1/queues/{q}/trend?minutes=60"),
            Some(READ),
            "",
        )
        .await;
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let api: Vec<Value> = body["samples"].as_array().unwrap().clone();
        let held: Vec<Value> = c.trends[q].as_array().unwrap().clone();
        let since = |v: &Vec<Value>| -> Vec<Value> {
            v.iter()
                .filter(|s| s["at"].as_str().unwrap() >= minute(0).as_str())
                .cloned()
                .collect()
        };
        assert_eq!(since(&held), since(&api), "{q}");
        assert_eq!(since(&api).len(), 4, "{q}: {body}");
    }
    assert_eq!(
        c.trends["hotline"].as_array().unwrap().last().unwrap()["longest_wait_s"],
        180.5
    );
    close(ws).await;
}
