//! Load tool: event-to-WebSocket-client latency with many clients.
//!
//! Starts a daemon in this process (a native JSON TCP source, `/ws` on
//! 127.0.0.1), connects N WebSocket clients, and feeds events over TCP at a
//! fixed rate: calls entering and leaving 50 queues and agents changing
//! state. Every 10 ms one *probe* event is sent: agent `probe` pauses with
//! reason `p<n>`. A client that receives a view of `probe` with reason
//! `p<m>` has seen the effect of every probe up to m, so probe k's latency
//! is the receive time minus k's send time, for every k it had not yet seen.
//! Sender and clients share one clock (this process), so no clock skew.
//!
//! Each latency is split in two: until the *first* client had the probe
//! (engine, coalescing wait, hub, one write) and the *spread* after that
//! (the same message reaching the other clients: the fan-out).
//!
//! The daemon runs on its own 2-worker runtime (what `acdmon run` has on a
//! 2-core machine); the 500 clients share one more thread (or
//! `--client-threads N`), the generator another: everything competes for
//! the same 2 cores.
//!
//! Baseline (`--baseline-bytes N`): no daemon. A bare axum `/ws` route
//! broadcasts one ready-made N-byte message carrying the newest probe every
//! `--coalesce` period to the same clients, fed by the same generator (its
//! bytes read and discarded): the cost of the WebSocket fan-out alone, to
//! compare the daemon's with in the same way on the same machine.
//!
//! Protocol (`--proto 2`, the default; `--proto 1` for whole views): with
//! version 2 the tool also counts, on one client, the bytes of the changed
//! fields themselves (`"key":value` of every leaf of every patch) against
//! the bytes of the messages that carried them.
//!
//! Quiet floor (`--quiet-seconds S`): 1,000 queues (`--queues`) each with a
//! caller waiting and 10,000 agents (`--agents`) logged in are set up, the
//! clients connect, and then no event arrives for S seconds: the bytes per
//! client per second are what time passing costs. The measurement starts
//! after the first whole minute past the set-up (whose trend samples are all
//! new: reported apart as `settling_minute_bytes_per_client`).
//!
//! Run:
//!   cargo run --release --example ws_load -- --clients 500 --rate 50000 --seconds 10 --coalesce 100ms
//!   cargo run --release --example ws_load -- --clients 100 --quiet-seconds 60 --queues 1000 --agents 10000
//!   cargo run --release --example ws_load -- --clients 500 --rate 50000 --seconds 10 --coalesce 100ms --baseline-bytes 76000
//! Options: --queues N (50) and --agents N (1000) spread the traffic; the
//! size of each message grows with how many queues and agents change.
//! Prints one JSON line with the figures.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

struct Args {
    clients: usize,
    rate: u64,
    seconds: u64,
    coalesce: String,
    queues: usize,
    agents: u64,
    client_threads: usize,
    /// Baseline: no daemon; a bare axum WebSocket server broadcasts one
    /// message of this many bytes every `coalesce` to every client.
    baseline_bytes: Option<usize>,
    /// `/ws` protocol version.
    proto: u8,
    /// Quiet floor: set up, then no events for this long.
    quiet_seconds: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        clients: 500,
        rate: 50_000,
        seconds: 10,
        coalesce: "100ms".into(),
        queues: 50,
        agents: 1000,
        client_threads: 1,
        baseline_bytes: None,
        proto: 2,
        quiet_seconds: None,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let val = v[i + 1].clone();
        match v[i].as_str() {
            "--clients" => a.clients = val.parse().expect("--clients N"),
            "--rate" => a.rate = val.parse().expect("--rate N"),
            "--seconds" => a.seconds = val.parse().expect("--seconds N"),
            "--coalesce" => a.coalesce = val,
            "--queues" => a.queues = val.parse().expect("--queues N"),
            "--agents" => a.agents = val.parse().expect("--agents N"),
            "--client-threads" => a.client_threads = val.parse().expect("--client-threads N"),
            "--baseline-bytes" => a.baseline_bytes = Some(val.parse().expect("--baseline-bytes N")),
            "--proto" => a.proto = val.parse().expect("--proto 1|2"),
            "--quiet-seconds" => a.quiet_seconds = Some(val.parse().expect("--quiet-seconds S")),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

const PROBE_EVERY: Duration = Duration::from_millis(10);
const MAX_PROBES: usize = 1 << 16;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The probe number in a message, if it carries a view (version 1) or a
/// patch (version 2, keyed by id) of agent `probe`.
fn probe_in(text: &str) -> Option<usize> {
    let at = memchr::memmem::find(text.as_bytes(), b"\"agent\":\"probe\"")
        .or_else(|| memchr::memmem::find(text.as_bytes(), b"\"probe\":{"))?;
    let rest = &text[at..];
    let r = memchr::memmem::find(rest.as_bytes(), b"\"reason\":\"p")?;
    let digits = &rest[r + 11..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Bytes of the changed fields of a version 2 delta: `"key":value` of every
/// leaf of every queue and agent patch (ids, nesting and the envelope are
/// the overhead).
fn changed_field_bytes(text: &str) -> u64 {
    fn leaves(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, x)| match x {
                    serde_json::Value::Object(_) => leaves(x),
                    _ => k.len() as u64 + 3 + x.to_string().len() as u64,
                })
                .sum(),
            _ => v.to_string().len() as u64,
        }
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return 0;
    };
    if v["type"] != "delta" {
        return 0;
    }
    ["queues", "agents"]
        .iter()
        .filter_map(|k| v[*k].as_object())
        .flat_map(|m| m.values())
        .map(leaves)
        .sum()
}

/// CPU seconds used so far by this process's threads, by thread-name prefix.
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let tick = 100.0; // USER_HZ on Linux
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let p = t.path();
            let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
            let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            let cpu = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
                + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let role = match name.trim() {
                n if n.starts_with("daemon") => "daemon (http, /ws, hub)",
                n if n.starts_with("acdmon-engine") => "engine",
                n if n.starts_with("ws-clients") => "clients",
                _ => "generator and other",
            };
            *out.entry(role.to_string()).or_insert(0.0) += cpu / tick;
        }
    }
    out
}

enum Server {
    Daemon(acdmon::publish::AppState),
    Baseline(Arc<AtomicI64>),
}

impl Server {
    fn clients(&self) -> i64 {
        match self {
            Server::Daemon(s) => s.hub.clients(),
            Server::Baseline(n) => n.load(Ordering::Relaxed),
        }
    }
}

impl Args {
    /// `--coalesce` as the daemon reads `ws_coalesce` (humantime).
    fn coalesce_duration(&self) -> Duration {
        humantime::parse_duration(self.coalesce.trim()).expect("--coalesce like 100ms or 0s")
    }
}

/// The floor to compare against: what a WebSocket fan-out costs with no
/// daemon behind it. A bare axum `/ws` route (same tungstenite, same read
/// buffer size, one task per client, feed + flush) broadcasts one
/// ready-made message of a given size every period, carrying the newest
/// probe number; the event feed is read and discarded.
mod baseline {
    use super::*;
    use axum::extract::ws::{Message, Utf8Bytes, WebSocketUpgrade};
    use futures_util::SinkExt;
    use tokio::io::AsyncReadExt;

    pub async fn start(
        l: tokio::net::TcpListener,
        json_port: u16,
        bytes: usize,
        period: Duration,
        latest: Arc<AtomicU64>,
    ) -> Arc<AtomicI64> {
        let clients = Arc::new(AtomicI64::new(0));
        let (tx, _) = tokio::sync::broadcast::channel::<Utf8Bytes>(64);
        let sink = tokio::net::TcpListener::bind(("127.0.0.1", json_port))
            .await
            .unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = sink.accept().await {
                tokio::spawn(async move {
                    let mut b = vec![0u8; 1 << 16];
                    while matches!(c.read(&mut b).await, Ok(n) if n > 0) {}
                });
            }
        });
        let ticker = tx.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(period.max(Duration::from_millis(1)));
            let mut seq = 0u64;
            loop {
                t.tick().await;
                seq += 1;
                let head = format!(
                    "{{\"type\":\"delta\",\"seq\":{seq},\"agents\":[{{\"agent\":\"probe\",\"reason\":\"p{}\"}}],\"pad\":\"",
                    latest.load(Ordering::Relaxed)
                );
                let pad = bytes.saturating_sub(head.len() + 2);
                let msg = format!("{head}{}\"}}", " ".repeat(pad));
                let _ = ticker.send(Utf8Bytes::from(msg));
            }
        });
        let (count, tx2) = (clients.clone(), tx.clone());
        let app = axum::Router::new().route(
            "/ws",
            axum::routing::get(move |up: WebSocketUpgrade| {
                let (count, tx) = (count.clone(), tx2.clone());
                async move {
                    up.read_buffer_size(4 << 10)
                        .on_upgrade(move |mut socket| async move {
                            let mut rx = tx.subscribe();
                            count.fetch_add(1, Ordering::Relaxed);
                            while let Ok(m) = rx.recv().await {
                                if socket.feed(Message::Text(m)).await.is_err()
                                    || socket.flush().await.is_err()
                                {
                                    break;
                                }
                            }
                            count.fetch_sub(1, Ordering::Relaxed);
                        })
                }
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).await });
        drop(tx);
        clients
    }
}

fn main() {
    let a = args();
    let json_port = free_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nws_coalesce = {:?}\n[[sources]]\nname = \"load\"\nkind = \"json\"\nlisten = \"127.0.0.1:{json_port}\"\n",
        a.coalesce
    );
    let cfg = acdmon::config::Config::parse("load.toml", &config).expect("config");
    let daemon_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("daemon")
        .enable_all()
        .build()
        .unwrap();
    let latest_probe = Arc::new(AtomicU64::new(0));
    let (addr, server) = daemon_rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        match a.baseline_bytes {
            None => {
                let d = acdmon::daemon::start(cfg, Vec::new());
                tokio::spawn(acdmon::daemon::serve_on(l, d.state.clone()));
                (addr, Server::Daemon(d.state))
            }
            Some(n) => {
                let b =
                    baseline::start(l, json_port, n, a.coalesce_duration(), latest_probe.clone())
                        .await;
                (addr, Server::Baseline(b))
            }
        }
    });

    let epoch = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..MAX_PROBES).map(|_| AtomicU64::new(0)).collect());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    // Client 0, while measuring: bytes of deltas, and of their changed fields.
    let bytes0 = Arc::new(AtomicU64::new(0));
    let fields0 = Arc::new(AtomicU64::new(0));
    let proto = a.proto;

    // Quiet floor: queues with a caller waiting and logged-in agents, set up
    // before anyone connects.
    // The source binds its port on the daemon's runtime: wait for it.
    let t_src = Instant::now();
    let mut tcp = loop {
        match std::net::TcpStream::connect(("127.0.0.1", json_port)) {
            Ok(t) => break t,
            Err(e) if t_src.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("json source: {e}"),
        }
    };
    tcp.set_nodelay(true).unwrap();
    if a.quiet_seconds.is_some() {
        let now_ms = acdmon::time::Ts::now().0;
        let mut buf = Vec::new();
        for q in 0..a.queues {
            let _ = writeln!(
                buf,
                "{{\"ts\":{now_ms},\"type\":\"call_enqueued\",\"call\":\"w{q}\",\"queue\":\"q{q}\"}}"
            );
        }
        for g in 0..a.agents {
            let st = if g % 2 == 0 { "on_call" } else { "paused" };
            let _ = writeln!(
                buf,
                "{{\"ts\":{now_ms},\"type\":\"agent_state\",\"agent\":\"a{g}\",\"state\":\"{st}\",\"reason\":\"lunch\",\"queue\":\"q{}\"}}",
                g % a.queues as u64
            );
        }
        tcp.write_all(&buf).expect("write set-up events");
        if let Server::Daemon(s) = &server {
            let t0 = Instant::now();
            while s.publisher.snapshot().agents.len() < a.agents as usize {
                assert!(t0.elapsed() < Duration::from_secs(60), "set-up not applied");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let snapshot_bytes = Arc::new(AtomicU64::new(0));

    // Clients: their own runtime (one thread unless --client-threads).
    let client_rt = if a.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.client_threads)
            .thread_name("ws-clients")
            .enable_all()
            .build()
            .unwrap()
    };
    let clients = {
        let (addr, measuring, stop, received, bytes) = (
            addr.clone(),
            measuring.clone(),
            stop.clone(),
            received.clone(),
            bytes.clone(),
        );
        let (bytes0, fields0, snapshot_bytes) =
            (bytes0.clone(), fields0.clone(), snapshot_bytes.clone());
        let n = a.clients;
        std::thread::Builder::new()
            .name("ws-clients".into())
            .spawn(move || {
                client_rt.block_on(async move {
                    let mut tasks = Vec::new();
                    for ci in 0..n {
                        // tungstenite zeroes its whole read buffer on every
                        // read (128 KiB by default: 8% of this tool's CPU);
                        // a smaller one keeps the clients' cost honest.
                        let cfg =
                            tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                                .read_buffer_size(32 << 10);
                        let (ws, _) = tokio_tungstenite::connect_async_with_config(
                            format!("ws://{addr}/ws?v={proto}"),
                            Some(cfg),
                            true,
                        )
                        .await
                        .expect("ws connect");
                        let (measuring, stop, received, bytes) = (
                            measuring.clone(),
                            stop.clone(),
                            received.clone(),
                            bytes.clone(),
                        );
                        let (bytes0, fields0, snapshot_bytes) =
                            (bytes0.clone(), fields0.clone(), snapshot_bytes.clone());
                        tasks.push(tokio::spawn(async move {
                            let (_w, mut r) = ws.split();
                            let mut seen = 0usize; // probes up to this one are seen
                            // (probe, receive time in us since `epoch`)
                            let mut got: Vec<(u32, u64)> = Vec::new();
                            while let Some(Ok(m)) = r.next().await {
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                if let Message::Text(t) = m {
                                    if t.starts_with("{\"type\":\"snapshot\"") {
                                        snapshot_bytes.store(t.len() as u64, Ordering::Relaxed);
                                    }
                                    received.fetch_add(1, Ordering::Relaxed);
                                    bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                                    if ci == 0 && proto == 2 && measuring.load(Ordering::Relaxed) {
                                        let f = changed_field_bytes(&t);
                                        if f > 0 {
                                            bytes0.fetch_add(t.len() as u64, Ordering::Relaxed);
                                            fields0.fetch_add(f, Ordering::Relaxed);
                                        }
                                    }
                                    if let Some(p) = probe_in(&t) {
                                        let now = epoch.elapsed().as_micros() as u64;
                                        if p > seen {
                                            if measuring.load(Ordering::Relaxed) && seen > 0 {
                                                for k in seen + 1..=p.min(MAX_PROBES - 1) {
                                                    got.push((k as u32, now));
                                                }
                                            }
                                            seen = p;
                                        }
                                    }
                                }
                            }
                            got
                        }));
                    }
                    eprintln!("{n} clients connected");
                    let mut all = Vec::new();
                    for t in tasks {
                        if let Ok(v) = t.await {
                            all.extend(v);
                        }
                    }
                    all
                })
            })
            .expect("client thread")
    };

    // Wait until the clients are connected.
    let t0 = Instant::now();
    while server.clients() < a.clients as i64 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "clients did not connect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Generator: a blocking TCP writer in batches of 1 ms.
    let warmup = Duration::from_secs(2);
    let total = warmup + Duration::from_secs(a.seconds);
    if let Some(q) = a.quiet_seconds {
        std::thread::sleep(warmup);
        // Settle: the first trend minute after the set-up samples the floor
        // as it now stands (every queue's sample is new then, ~137 bytes a
        // queue, once). Measure from after it, so the figure is what a floor
        // that stays quiet costs; the settling minute is reported apart.
        let settle0 = bytes.load(Ordering::Relaxed);
        let to_minute = 60_000 - acdmon::time::Ts::now().0.rem_euclid(60_000) as u64;
        std::thread::sleep(Duration::from_millis(to_minute + 3_000));
        let settle_bytes = (bytes.load(Ordering::Relaxed) - settle0) / a.clients as u64;
        let b0 = bytes.load(Ordering::Relaxed);
        let r0 = received.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let cpu0 = cpu_by_thread();
        std::thread::sleep(Duration::from_secs(q));
        let secs = t0.elapsed().as_secs_f64();
        let per_client = (bytes.load(Ordering::Relaxed) - b0) as f64 / secs / a.clients as f64;
        let msgs = (received.load(Ordering::Relaxed) - r0) as f64 / secs / a.clients as f64;
        let cpu: serde_json::Map<String, serde_json::Value> = cpu_by_thread()
            .into_iter()
            .map(|(k, v)| {
                let used = (v - cpu0.get(&k).copied().unwrap_or(0.0)) / secs;
                (k, serde_json::json!((used * 1000.0).round() / 1000.0))
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "floor": "quiet (no events)",
                "proto": a.proto,
                "clients": a.clients,
                "queues_with_a_caller_waiting": a.queues,
                "agents": a.agents,
                "ws_coalesce": a.coalesce,
                "measured_s": (secs * 10.0).round() / 10.0,
                "snapshot_bytes": snapshot_bytes.load(Ordering::Relaxed),
                "settling_minute_bytes_per_client": settle_bytes,
                "bytes_per_client_per_s": (per_client * 10.0).round() / 10.0,
                "messages_per_client_per_s": (msgs * 100.0).round() / 100.0,
                "cpu_cores_used": cpu,
            })
        );
        std::process::exit(0);
    }
    let start = Instant::now();
    let mut events: u64 = 0;
    let mut probe = 0usize;
    let mut next_probe = start;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut i: u64 = 0;
    let mut measured_from = None;
    while start.elapsed() < total {
        if measured_from.is_none() && start.elapsed() >= warmup {
            measuring.store(true, Ordering::Relaxed);
            measured_from = Some((
                Instant::now(),
                events,
                received.load(Ordering::Relaxed),
                cpu_by_thread(),
                bytes.load(Ordering::Relaxed),
            ));
        }
        let due = (start.elapsed().as_secs_f64() * a.rate as f64) as u64;
        let now_ms = acdmon::time::Ts::now().0;
        buf.clear();
        while events < due {
            let q = i % a.queues as u64;
            match i % 3 {
                0 => {
                    let _ = writeln!(
                        buf,
                        "{{\"ts\":{now_ms},\"type\":\"call_enqueued\",\"call\":\"c{i}\",\"queue\":\"q{q}\"}}"
                    );
                }
                1 => {
                    // The call enqueued 300 events ago leaves (keeps ~100 waiting).
                    let j = i.saturating_sub(301);
                    let _ = writeln!(
                        buf,
                        "{{\"ts\":{now_ms},\"type\":\"call_abandoned\",\"call\":\"c{j}\",\"queue\":\"q{}\"}}",
                        j % a.queues as u64
                    );
                }
                _ => {
                    let st = if (i / 3).is_multiple_of(2) {
                        "available"
                    } else {
                        "on_call"
                    };
                    let _ = writeln!(
                        buf,
                        "{{\"ts\":{now_ms},\"type\":\"agent_state\",\"agent\":\"a{}\",\"state\":\"{st}\",\"queue\":\"q{q}\"}}",
                        (i / 3) % a.agents
                    );
                }
            }
            i += 1;
            events += 1;
        }
        let probe_now = Instant::now() >= next_probe && probe + 1 < MAX_PROBES;
        if probe_now {
            probe += 1;
            let _ = writeln!(
                buf,
                "{{\"ts\":{now_ms},\"type\":\"agent_state\",\"agent\":\"probe\",\"state\":\"paused\",\"reason\":\"p{probe}\"}}"
            );
            events += 1;
            next_probe += PROBE_EVERY;
        }
        if !buf.is_empty() {
            if probe_now {
                // Stamp just before the bytes leave.
                sent[probe].store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
                latest_probe.store(probe as u64, Ordering::Relaxed);
            }
            tcp.write_all(&buf).expect("write events");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let (m_start, m_events, m_recv, cpu0, m_bytes) = measured_from.expect("measured");
    let secs = m_start.elapsed().as_secs_f64();
    let cpu: serde_json::Map<String, serde_json::Value> = cpu_by_thread()
        .into_iter()
        .map(|(k, v)| {
            let used = (v - cpu0.get(&k).copied().unwrap_or(0.0)) / secs;
            (k, serde_json::json!((used * 100.0).round() / 100.0))
        })
        .collect();
    let ev_rate = (events - m_events) as f64 / secs;
    let byte_rate = (bytes.load(Ordering::Relaxed) - m_bytes) as f64 / secs / a.clients as f64;
    let msg_rate = (received.load(Ordering::Relaxed) - m_recv) as f64 / secs / a.clients as f64;
    measuring.store(false, Ordering::Relaxed);
    // Let in-flight probes land, then stop the clients.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    // One more event wakes every client so it sees `stop`.
    let _ = writeln!(
        tcp,
        "{{\"ts\":{},\"type\":\"agent_state\",\"agent\":\"probe\",\"state\":\"available\"}}",
        acdmon::time::Ts::now().0
    );
    let got = clients.join().expect("clients");
    // Latency of each (probe, client); and its two parts: until the first
    // client had it (engine, coalescing, hub, one write) and the spread
    // after that (fanning the same message out to every other client).
    let mut first = vec![u64::MAX; MAX_PROBES];
    for &(k, t) in &got {
        first[k as usize] = first[k as usize].min(t);
    }
    let mut lat = Vec::with_capacity(got.len());
    let mut spread = Vec::with_capacity(got.len());
    let mut hold = Vec::new();
    for &(k, t) in &got {
        let s = sent[k as usize].load(Ordering::Relaxed);
        if s > 0 && t >= s {
            lat.push(t - s);
            spread.push(t - first[k as usize]);
        }
    }
    for (k, &f) in first.iter().enumerate() {
        let s = sent[k].load(Ordering::Relaxed);
        if f != u64::MAX && s > 0 && f >= s {
            hold.push(f - s);
        }
    }
    let pcts = |v: &mut Vec<u64>| -> serde_json::Value {
        v.sort_unstable();
        let at = |p: f64| -> f64 {
            if v.is_empty() {
                return f64::NAN;
            }
            let i = ((v.len() as f64 - 1.0) * p).round() as usize;
            (v[i] as f64 / 1000.0 * 100.0).round() / 100.0
        };
        serde_json::json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)})
    };
    let resyncs = match &server {
        Server::Daemon(state) => state
            .metrics
            .render(
                &state.publisher,
                &state.health,
                &state.rejects,
                &Default::default(),
            )
            .lines()
            .find(|l| l.starts_with("acd_websocket_resyncs_total"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string(),
        Server::Baseline(_) => "n/a".to_string(),
    };
    println!(
        "{}",
        serde_json::json!({
            "clients": a.clients,
            "server": if a.baseline_bytes.is_some() { "baseline: bare axum WebSocket broadcast" } else { "acdmon" },
            "baseline_bytes": a.baseline_bytes,
            "target_events_per_s": a.rate,
            "events_per_s": ev_rate.round(),
            "ws_coalesce": a.coalesce,
            "queues": a.queues,
            "agents": a.agents,
            "measured_s": (secs * 10.0).round() / 10.0,
            "probes_measured": lat.len(),
            "latency_ms": pcts(&mut lat),
            "to_first_client_ms": pcts(&mut hold),
            "fan_out_spread_ms": pcts(&mut spread),
            "messages_per_client_per_s": (msg_rate * 10.0).round() / 10.0,
            "mbytes_to_clients": bytes.load(Ordering::Relaxed) as f64 / 1e6,
            "proto": a.proto,
            "bytes_per_client_per_s": byte_rate.round(),
            "snapshot_bytes": snapshot_bytes.load(Ordering::Relaxed),
            "client0_delta_bytes": bytes0.load(Ordering::Relaxed),
            "client0_changed_field_bytes": fields0.load(Ordering::Relaxed),
            "sent_per_changed_field_byte": if fields0.load(Ordering::Relaxed) > 0 {
                serde_json::json!((bytes0.load(Ordering::Relaxed) as f64 / fields0.load(Ordering::Relaxed) as f64 * 100.0).round() / 100.0)
            } else { serde_json::Value::Null },
            "resyncs": resyncs,
            "cpu_cores_used": cpu,
            "load_average_1m": std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_string)),
        })
    );
    drop(daemon_rt);
}
