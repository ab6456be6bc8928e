//! A stuck engine is told, not hidden: when the engine thread stops
//! finishing batches (here an observer that blocks, as a slow disk or a bug
//! would), `/readyz` turns 503 with the reason, `acd_engine_stalled` and
//! `acd_engine_lag_seconds` say so, `/healthz` and `/readyz` keep
//! answering, and everything recovers when the engine does. A daemon told
//! to stop does not wait forever behind it.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use acdmon::config::Config;
use acdmon::engine_thread::Observer;
use acdmon::state::Engine;
use acdmon::time::Ts;
use serde_json::Value;
use support::{eventually, http};

/// Blocks the engine thread the first time it sees agent `trigger`, until
/// the test sends on `release`.
struct Jam {
    trigger: &'static str,
    release: mpsc::Receiver<()>,
    jammed: bool,
}

impl Observer for Jam {
    fn after_event(&mut self, engine: &mut Engine, _queue: Option<usize>) {
        if !self.jammed && engine.find_agent(self.trigger).is_some() {
            self.jammed = true;
            let _ = self.release.recv();
        }
    }
}

fn agent(now: i64, id: &str) -> String {
    format!(
        "{{\"ts\":{now},\"type\":\"agent_state\",\"agent\":\"{id}\",\"state\":\"available\",\"queue\":\"hotline\"}}\n"
    )
}

async fn metric(addr: &str, name: &str) -> Option<f64> {
    let r = http(addr, "GET", "/metrics", None, "").await;
    r.body
        .lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_engine_turns_readyz_red_and_recovers() {
    let text =
        "[server]\nadmin_token = \"boss\"\nread_token = \"reader\"\nengine_stall_after = \"1s\"\n";
    let cfg = Config::parse("t.toml", text).unwrap();
    let (release, rx) = mpsc::channel();
    let (release2, rx2) = mpsc::channel();
    let jams: Vec<Box<dyn Observer>> = vec![
        Box::new(Jam {
            trigger: "jam",
            release: rx,
            jammed: false,
        }),
        Box::new(Jam {
            trigger: "jam-again",
            release: rx2,
            jammed: false,
        }),
    ];
    let d = acdmon::daemon::start(cfg, jams);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(acdmon::daemon::serve_on(listener, d.state.clone()));
    eventually(Duration::from_secs(5), "ready", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(metric(&addr, "acd_engine_stalled").await, Some(0.0));

    // The engine jams on this event; the agents behind it wait in the inbox.
    let now = Ts::now().0;
    let body = agent(now, "jam") + &agent(now, "b1") + &agent(now, "b2");
    assert_eq!(
        http(&addr, "POST", "/api/v1/events", Some("boss"), &body)
            .await
            .status,
        202
    );
    assert_eq!(
        http(
            &addr,
            "POST",
            "/api/v1/events",
            Some("boss"),
            &agent(now, "b3")
        )
        .await
        .status,
        202
    );
    let red = eventually(Duration::from_secs(5), "/readyz turns 503", || async {
        let r = http(&addr, "GET", "/readyz", None, "").await;
        (r.status == 503).then(|| serde_json::from_str::<Value>(&r.body).unwrap())
    })
    .await;
    assert_eq!(red["ready"], false);
    assert_eq!(red["not_ready"][0]["kind"], "engine_stalled", "{red}");
    let why = red["reasons"][0].as_str().unwrap();
    assert!(
        why.starts_with("engine stalled: no batch finished for"),
        "{why}"
    );
    assert!(why.contains("1 inbox entries waiting"), "{why}");
    assert_eq!(http(&addr, "GET", "/healthz", None, "").await.status, 200);
    assert_eq!(metric(&addr, "acd_engine_stalled").await, Some(1.0));
    let lag = metric(&addr, "acd_engine_lag_seconds").await.unwrap();
    assert!(lag > 1.0, "lag {lag}");
    assert_eq!(metric(&addr, "acd_engine_inbox_backlog").await, Some(1.0));

    // The engine moves again: green, the queued events applied.
    release.send(()).unwrap();
    eventually(Duration::from_secs(5), "/readyz 200 again", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(metric(&addr, "acd_engine_stalled").await, Some(0.0));
    assert!(metric(&addr, "acd_engine_lag_seconds").await.unwrap() < 1.0);
    let q = http(&addr, "GET", "/api/v1/queues/hotline", Some("reader"), "").await;
    let q: Value = serde_json::from_str(&q.body).unwrap();
    assert_eq!(q["agents"]["available"], 4, "{q}");

    // Jammed again, the daemon is told to stop: it waits a bounded time.
    http(
        &addr,
        "POST",
        "/api/v1/events",
        Some("boss"),
        &agent(now, "jam-again"),
    )
    .await;
    eventually(Duration::from_secs(5), "stalled again", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 503).then_some(())
    })
    .await;
    let started = Instant::now();
    acdmon::daemon::stop_engine(
        d.state.inbox.clone(),
        d.engine_thread,
        Duration::from_millis(500),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    release2.send(()).unwrap();
}
