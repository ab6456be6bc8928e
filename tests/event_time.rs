//! A producer with a wrong clock, on the json TCP feed of a running daemon:
//! its events are refused with their own reasons and counted, the other
//! queues' figures do not move, and later events are still applied.

mod support;

use std::time::Duration;

use acdmon::config::Config;
use acdmon::time::Ts;
use serde_json::Value;
use support::{eventually, free_port, http};
use tokio::io::AsyncWriteExt;

const READ: &str = "reader";

struct Floor {
    addr: String,
    tcp: tokio::net::TcpStream,
    daemon: acdmon::daemon::Daemon,
}

async fn floor() -> Floor {
    let json_port = free_port();
    let text = format!(
        "[server]\nread_token = \"{READ}\"\n\
         [[sources]]\nname = \"feed\"\nkind = \"json\"\nlisten = \"127.0.0.1:{json_port}\"\n"
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let daemon = acdmon::daemon::start(cfg, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(acdmon::daemon::serve_on(listener, daemon.state.clone()));
    let tcp = eventually(Duration::from_secs(5), "json listener", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", json_port))
            .await
            .ok()
    })
    .await;
    Floor { addr, tcp, daemon }
}

impl Floor {
    async fn send(&mut self, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        self.tcp.write_all(text.as_bytes()).await.unwrap();
        self.tcp.flush().await.unwrap();
    }

    async fn queue(&self, name: &str) -> Option<Value> {
        let r = http(
            &self.addr,
            "GET",
            &format!("/api/v1/queues/{name}"),
            Some(READ),
            "",
        )
        .await;
        (r.status == 200)
            .then(|| serde_json::from_str(&r.body).ok())
            .flatten()
    }

    fn rejected(&self, reason: &str) -> u64 {
        let all = self.daemon.state.rejects.all();
        all.iter()
            .filter(|(s, r, _)| s == "feed" && *r == reason)
            .map(|x| x.2)
            .sum()
    }

    async fn metric(&self, series: &str) -> Option<f64> {
        let r = http(&self.addr, "GET", "/metrics", None, "").await;
        r.body
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

fn enqueued(ts: i64, call: &str, queue: &str) -> String {
    format!(r#"{{"ts":{ts},"type":"call_enqueued","call":"{call}","queue":"{queue}"}}"#)
}

fn agent_at(ts: &str, agent: &str) -> String {
    format!(r#"{{"ts":{ts},"type":"agent_state","agent":"{agent}","state":"available"}}"#)
}

/// The hotline has a caller who has waited 3 s; then something else happens.
async fn a_caller_waiting_3_s(f: &mut Floor) -> i64 {
    let now = Ts::now().0;
    f.send(&[enqueued(now - 3_000, "c1", "hotline")]).await;
    eventually(Duration::from_secs(5), "the caller waits", || async {
        f.queue("hotline").await.filter(|q| q["waiting"] == 1)
    })
    .await;
    now
}

/// After the bad clock: a new queue appears (the engine still applies
/// events) and the hotline's caller has still waited seconds, not an hour.
async fn the_floor_is_untouched(f: &mut Floor) {
    let now = Ts::now().0;
    f.send(&[enqueued(now, "n1", "opened-later")]).await;
    eventually(
        Duration::from_secs(5),
        "a queue created afterwards",
        || async { f.queue("opened-later").await.filter(|q| q["waiting"] == 1) },
    )
    .await;
    let q = f.queue("hotline").await.unwrap();
    let wait = q["longest_wait_s"].as_f64().unwrap();
    assert!((2.0..60.0).contains(&wait), "longest_wait_s {wait}: {q}");
    let as_of = Ts::parse_rfc3339(q["as_of"].as_str().unwrap()).unwrap();
    assert!(
        (as_of.0 - Ts::now().0).abs() < 60_000,
        "as_of {as_of} is not the daemon's time"
    );
    let exported = f
        .metric("acd_queue_longest_wait_seconds{queue=\"hotline\"}")
        .await
        .unwrap();
    assert!((2.0..60.0).contains(&exported), "/metrics says {exported}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_an_hour_ahead_does_not_age_every_caller() {
    let mut f = floor().await;
    let now = a_caller_waiting_3_s(&mut f).await;
    f.send(&[agent_at(&(now + 3_600_000).to_string(), "fast-clock")])
        .await;
    the_floor_is_untouched(&mut f).await;
    assert_eq!(f.rejected("ts_in_future"), 1);
    let series = "acd_source_events_rejected_total{source=\"feed\",reason=\"ts_in_future\"}";
    assert_eq!(f.metric(series).await, Some(1.0));
    // A producer a little ahead (within the skew) is applied, at the
    // daemon's time: its agent is there, the hotline's wait unchanged.
    f.send(&[agent_at(
        &(Ts::now().0 + 20_000).to_string(),
        "slightly-fast",
    )])
    .await;
    let agents = eventually(
        Duration::from_secs(5),
        "the agent within the skew",
        || async {
            let r = http(&f.addr, "GET", "/api/v1/agents", Some(READ), "").await;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            v.as_array()?
                .iter()
                .any(|a| a["agent"] == "slightly-fast")
                .then_some(v)
        },
    )
    .await;
    assert!(
        !agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["agent"] == "fast-clock"),
        "{agents}"
    );
    the_floor_is_untouched(&mut f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_timestamps_are_refused_and_the_engine_keeps_going() {
    let mut f = floor().await;
    let now = a_caller_waiting_3_s(&mut f).await;
    f.send(&[
        // The "never" sentinel that froze the engine.
        agent_at("9223372036854775807", "x"),
        agent_at("\"9999-12-31T23:59:59Z\"", "y"),
        agent_at("1000000000000000", "z"),
        agent_at("-9223372036854775808", "w"),
        // Two days ago: before the start of yesterday.
        agent_at(&(now - 2 * 86_400_000).to_string(), "stale"),
        // Not a timestamp at all, and one without its offset.
        agent_at("\"2026-11-23T09:00:00\"", "no-offset"),
    ])
    .await;
    the_floor_is_untouched(&mut f).await;
    assert_eq!(f.rejected("ts_out_of_range"), 4);
    assert_eq!(f.rejected("ts_too_old"), 1);
    assert_eq!(f.rejected("bad_timestamp"), 1);
    let r = http(&f.addr, "GET", "/api/v1/agents", Some(READ), "").await;
    for ghost in ["x", "y", "z", "w", "stale", "no-offset"] {
        assert!(
            !r.body.contains(&format!("\"agent\":\"{ghost}\"")),
            "{}",
            r.body
        );
    }
    let series = "acd_source_events_rejected_total{source=\"feed\",reason=\"ts_out_of_range\"}";
    assert_eq!(f.metric(series).await, Some(4.0));
    let ready = http(&f.addr, "GET", "/readyz", None, "").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
}
