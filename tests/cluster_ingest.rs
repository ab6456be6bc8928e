//! `POST /api/v1/events` on a clustered instance, against a real
//! `nats-server` with JetStream: the events go to the site's stream, and
//! the answer still carries the engine's verdict on each of them, as it does
//! in one process (docs/json-feed.md, docs/cluster.md).

mod nats;
mod support;

use std::time::Duration;

use acdmon::config::Config;
use acdmon::time::Ts;
use nats::NatsServer;
use serde_json::Value;
use support::{eventually, http};

const LIMIT: Duration = Duration::from_secs(30);

async fn instance(
    dir: &std::path::Path,
    name: &str,
    nats: &str,
) -> (acdmon::daemon::Daemon, String) {
    let text = format!(
        r#"
[server]
read_token = "reader"
admin_token = "boss"
[storage]
path = "{}/{name}.sqlite"
[time]
zone = "UTC"
[[queues]]
name = "hotline"
[cluster]
nats = ["{nats}"]
site = "north"
instance = "{name}"
"#,
        dir.display()
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    support::start_daemon(cfg).await
}

async fn offered(addr: &str) -> Option<u64> {
    let r = http(addr, "GET", "/api/v1/queues/hotline", Some("reader"), "").await;
    let q: Value = serde_json::from_str(&r.body).ok()?;
    q["windows"]["today"]["offered"].as_u64()
}

async fn waiting(addr: &str) -> Option<u64> {
    let r = http(addr, "GET", "/api/v1/queues/hotline", Some("reader"), "").await;
    let q: Value = serde_json::from_str(&r.body).ok()?;
    q["waiting"].as_u64()
}

/// A supervisor's script posts a correction batch to the east instance of
/// a clustered site: two callers join the hotline, the first one twice
/// (the script's bug), an answer for a call nobody enqueued, and a line of
/// garbage. East answers as a single process would: the garbage with its
/// decoding error, the repeated join `duplicate_call` and the stray answer
/// `unknown_call` from the engine (it applied them from the stream), the
/// rest accepted and confirmed. West, the other instance, shows the same
/// two waiting callers. The script's retry of the same batch is not counted
/// again, and its answer says so for every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_carries_the_engines_verdict_on_each_event() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_east, east) = instance(dir.path(), "east", &server.url()).await;
    let (_west, west) = instance(dir.path(), "west", &server.url()).await;
    eventually(LIMIT, "east caught up with the stream", || async {
        (http(&east, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;

    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{},\"type\":\"call_answered\",\"call\":\"ghost\",\"queue\":\"hotline\",\"agent\":\"a1\"}}\n\
         this is not json\n\
         {{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"c2\",\"queue\":\"hotline\"}}\n",
        now + 1,
        now + 2,
        now + 3
    );
    let r = http(&east, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accepted"], 2, "{v}");
    assert_eq!(v["unconfirmed"], 0, "{v}");
    assert_eq!(v["rejected_total"], 3, "{v}");
    let reasons: Vec<(u64, &str)> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, "duplicate_call"),
            (3, "unknown_call"),
            (4, "invalid_json")
        ],
        "{v}"
    );

    // Both instances applied the same stream.
    for addr in [&east, &west] {
        eventually(LIMIT, "two callers waiting", || async {
            (waiting(addr).await == Some(2)).then_some(())
        })
        .await;
    }

    // The script retries the whole batch: the stream already holds these
    // events (same message id within its duplicate window), so none is
    // applied again, and the answer says so for each.
    let r = http(&east, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accepted"], 0, "{v}");
    assert_eq!(v["rejected_total"], 5, "{v}");
    let not_applied = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "not_applied")
        .count();
    assert_eq!(not_applied, 4, "{v}");
    assert_eq!(waiting(&east).await, Some(2));
    assert_eq!(offered(&east).await, Some(0), "nobody left the queue yet");
}

/// The broker goes away: the route cannot learn the engine's verdict, and
/// after its bounded wait (5 s) it answers `202` with the events counted as
/// accepted but `unconfirmed` (they are queued for the stream, not lost):
/// once the broker is back they are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_broker_the_answer_says_the_verdict_is_not_known_yet() {
    let mut server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_east, east) = instance(dir.path(), "east", &server.url()).await;
    eventually(LIMIT, "east caught up with the stream", || async {
        (http(&east, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;
    server.kill();
    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"c2\",\"queue\":\"hotline\"}}\n",
        now + 1
    );
    let asked = std::time::Instant::now();
    let r = http(&east, "POST", "/api/v1/events", Some("boss"), &body).await;
    let took = asked.elapsed();
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accepted"], 2, "{v}");
    assert_eq!(v["unconfirmed"], 2, "{v}");
    assert_eq!(v["rejected_total"], 0, "{v}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(15),
        "answered after {took:?}"
    );
    server.restart();
    eventually(LIMIT, "the queued events applied", || async {
        (waiting(&east).await == Some(2)).then_some(())
    })
    .await;
}
