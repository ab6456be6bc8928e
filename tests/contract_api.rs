//! The HTTP API as a client written from the contract (section 4) sees it,
//! against a running daemon: what an admin's manual action does to the
//! figures a wall or a script reads.

mod support;

use std::time::Duration;

use acdmon::config::Config;
use acdmon::time::Ts;
use serde_json::Value;
use support::{eventually, http};

const LIMIT: Duration = Duration::from_secs(10);

/// A hotline with a ladder (so the queue has one) and no CTI at all: every
/// sign-in or sign-out sent to the phone system fails.
fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[server]
read_token = "reader"
admin_token = "boss"

[storage]
path = "{}/audit.sqlite"

[defaults]
ladder = "day"

[[queues]]
name = "hotline"

[[agents]]
id = "o1"
groups = ["outbound"]

[[ladders]]
name = "day"
mode = "auto"
release_when = "waiting < 1"
release_hold = "2m"

[[ladders.stages]]
name = "outbound"
when = "waiting > 5"
for = "5m"
sign_in = {{ group = "outbound" }}
"#,
        dir.display()
    )
}

async fn start(dir: &std::path::Path) -> (acdmon::daemon::Daemon, String) {
    let cfg = Config::parse("t.toml", &config(dir)).unwrap();
    let (d, addr) = support::start_daemon(cfg).await;
    (d, addr)
}

async fn get(addr: &str, path: &str) -> Value {
    let r = http(addr, "GET", path, Some("reader"), "").await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// A supervisor takes agent a1 off the hotline by hand; the phone system
/// refuses. The ladder never signed a1 in and no stage is active, so a1 is
/// not "signed in by escalation" and the queue's `escalation` stays `null`
/// (contract section 4). Before the fix, the failed manual sign-out was
/// taken for one of the ladder's own releases: a1 was flagged, the queue
/// showed an escalation with a1 signed in, and the ladder retried the
/// sign-out on its own after each `release_hold`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_manual_sign_out_does_not_make_the_agent_the_ladders() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path()).await;
    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"agent_state\",\"agent\":\"a1\",\"state\":\"available\"}}\n\
         {{\"ts\":{now},\"type\":\"agent_joined_queue\",\"agent\":\"a1\",\"queue\":\"hotline\"}}\n"
    );
    let r = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);

    let r = http(
        &addr,
        "POST",
        "/api/v1/agents/a1/sign-out",
        Some("boss"),
        r#"{"queue":"hotline"}"#,
    )
    .await;
    assert!(
        r.status == 200 || r.status == 202,
        "{}: {}",
        r.status,
        r.body
    );
    let entry: Value = serde_json::from_str(&r.body).unwrap();
    let id = entry["id"].as_u64().unwrap();

    // The phone system's answer is in the log.
    eventually(LIMIT, "the sign-out's result", || {
        let addr = addr.clone();
        async move {
            let log = get(&addr, "/api/v1/escalations").await;
            log.as_array()
                .unwrap()
                .iter()
                .find(|e| e["id"] == id && e["actions"][0]["result"] == "failed")
                .cloned()
        }
    })
    .await;

    let agents = get(&addr, "/api/v1/agents").await;
    let a1 = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "a1")
        .unwrap();
    assert_eq!(a1["signed_in_by_escalation"], false, "{a1}");
    let q = get(&addr, "/api/v1/queues/hotline").await;
    assert!(
        q["escalation"].is_null(),
        "no stage is active: {}",
        q["escalation"]
    );
}
