//! Advise mode through the HTTP API of a running daemon: a manager approves
//! one step (its sign-ins reach the phone system through the webhook),
//! rejects the next, lets the third expire, and approves the release; manual
//! sign-in through the admin route; every decision in the audit log.

mod hook;
mod support;

use std::time::Duration;

use acdmon::config::Config;
use acdmon::time::Ts;
use hook::{Answer, Hook};
use serde_json::Value;
use support::{eventually, http};

fn config(dir: &std::path::Path, hook: &str) -> String {
    format!(
        r#"
[server]
read_token = "reader"
admin_token = "boss"

[storage]
path = "{}/audit.sqlite"

[defaults]
ladder = "ask"

[[queues]]
name = "hotline"

[[agents]]
id = "x1"
name = "Li Na"
interface = "SIP/x1"
groups = ["experts"]
[[agents]]
id = "x2"
groups = ["experts"]
[[agents]]
id = "o1"
groups = ["outbound"]
[[agents]]
id = "o2"
groups = ["outbound"]
[[agents]]
id = "q1"
groups = ["quality"]

[[cti]]
name = "crm"
kind = "webhook"
url = "{hook}"
timeout = "2s"
retries = 0
default = true

[[ladders]]
name = "ask"
mode = "advise"
release_when = "waiting < 1"
release_hold = "0s"
advice_expiry = "2s"

[[ladders.stages]]
name = "experts"
when = "waiting > 0"
for = "0s"
sign_in = {{ group = "experts" }}
[[ladders.stages]]
name = "outbound"
when = "waiting > 0"
for = "0s"
sign_in = {{ group = "outbound" }}
[[ladders.stages]]
name = "quality"
when = "waiting > 0"
for = "0s"
sign_in = {{ group = "quality" }}
"#,
        dir.display()
    )
}

fn events(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn log(addr: &str, query: &str) -> Vec<Value> {
    let r = http(
        addr,
        "GET",
        &format!("/api/v1/escalations{query}"),
        Some("reader"),
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

async fn entry(addr: &str, id: u64) -> Option<Value> {
    log(addr, "").await.into_iter().find(|e| e["id"] == id)
}

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_reject_expire_and_manual_actions_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start(Answer::Status(200, r#"{"ok":true,"detail":"done"}"#.into())).await;
    let cfg = Config::parse("t.toml", &config(dir.path(), &hook.url)).unwrap();
    let (_d, addr) = support::start_daemon(cfg).await;

    let now = Ts::now().0;
    let mut lines: Vec<String> = ["x1", "x2", "o1", "o2", "q1"]
        .iter()
        .map(|a| {
            format!(r#"{{"ts":{now},"type":"agent_state","agent":"{a}","state":"available"}}"#)
        })
        .collect();
    lines.push(format!(
        r#"{{"ts":{now},"type":"call_enqueued","call":"c1","queue":"hotline"}}"#
    ));
    let r = http(
        &addr,
        "POST",
        "/api/v1/events",
        Some("boss"),
        &events(&lines),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);

    // Step 1 is proposed, not acted on.
    let e1 = eventually(LIMIT, "experts proposed", || async {
        entry(&addr, 1).await
    })
    .await;
    assert_eq!(e1["stage_name"], "experts");
    assert_eq!(e1["mode"], "advise");
    assert!(
        e1["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["result"] == "pending")
    );
    // The entry is in the log as soon as it is written; the queue's
    // published view follows at the engine's next publish.
    let q: Value = eventually(LIMIT, "the queue's view shows the proposal", || async {
        let body = http(&addr, "GET", "/api/v1/queues/hotline", Some("reader"), "")
            .await
            .body;
        serde_json::from_str::<Value>(&body)
            .ok()
            .filter(|q| !q["escalation"].is_null())
    })
    .await;
    assert_eq!(q["escalation"]["pending"][0], 1, "{}", q["escalation"]);
    assert!(hook.seen().is_empty());

    // Only the admin token decides.
    let r = http(
        &addr,
        "POST",
        "/api/v1/escalations/1/approve",
        Some("reader"),
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = http(&addr, "POST", "/api/v1/escalations/1/approve", None, "").await;
    assert_eq!(r.status, 401);

    let r = http(
        &addr,
        "POST",
        "/api/v1/escalations/1/approve",
        Some("boss"),
        r#"{"by":"Wang Wei"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(e["decision"]["result"], "approved");
    assert_eq!(e["decision"]["by"], "Wang Wei");

    // The sign-ins went out through the webhook, and their results are in the log.
    let e1 = eventually(LIMIT, "experts signed in", || async {
        entry(&addr, 1).await.filter(|e| {
            e["actions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["result"] == "ok")
        })
    })
    .await;
    assert_eq!(e1["actions"][0]["detail"], "done");
    let mut calls = hook.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("sign_in".to_string(), "x1".to_string()),
            ("sign_in".into(), "x2".into())
        ]
    );
    let x1 = hook
        .seen()
        .into_iter()
        .find(|s| s.body["agent"] == "x1")
        .unwrap();
    assert_eq!(x1.body["interface"], "SIP/x1");
    // One node: the key is the audit entry and the action's index in it.
    let i = e1["actions"]
        .as_array()
        .unwrap()
        .iter()
        .position(|a| a["agent"] == "x1")
        .unwrap();
    assert!(
        x1.head.contains(&format!("idempotency-key: 1:{i}\r\n")),
        "{}",
        x1.head
    );
    assert_eq!(x1.body["queue"], "hotline");
    let agents: Value = serde_json::from_str(
        &http(&addr, "GET", "/api/v1/agents", Some("reader"), "")
            .await
            .body,
    )
    .unwrap();
    let flagged: Vec<&str> = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["signed_in_by_escalation"] == true)
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, ["x1", "x2"]);

    // Step 2 is proposed at once (for = 0s) and rejected: nobody is signed in.
    eventually(LIMIT, "outbound proposed", || async {
        entry(&addr, 2).await
    })
    .await;
    let r = http(
        &addr,
        "POST",
        "/api/v1/escalations/2/reject",
        Some("boss"),
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(e["decision"]["result"], "rejected");
    assert_eq!(e["decision"]["by"], "admin");
    assert!(
        e["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["result"] == "rejected")
    );

    // Step 3 is proposed and nobody answers: it expires after 2 s and is
    // proposed again.
    let e3 = eventually(LIMIT, "quality expired", || async {
        entry(&addr, 3)
            .await
            .filter(|e| e["decision"]["result"] == "expired")
    })
    .await;
    assert_eq!(e3["stage_name"], "quality");
    assert_eq!(e3["actions"][0]["result"], "expired");
    let r = http(
        &addr,
        "POST",
        "/api/v1/escalations/3/approve",
        Some("boss"),
        "",
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("already expired"), "{}", r.body);
    let r = http(
        &addr,
        "POST",
        "/api/v1/escalations/999/approve",
        Some("boss"),
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    let e4 = eventually(LIMIT, "quality proposed again", || async {
        entry(&addr, 4).await
    })
    .await;
    assert_eq!(e4["stage_name"], "quality");
    let r = http(
        &addr,
        "POST",
        "/api/v1/escalations/4/reject",
        Some("boss"),
        "",
    )
    .await;
    assert_eq!(r.status, 200);

    // Manual sign-in by the admin route.
    let r = http(
        &addr,
        "POST",
        "/api/v1/agents/o1/sign-in",
        Some("boss"),
        r#"{"queue":"hotline"}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let m: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (m["mode"].as_str(), m["stage_name"].as_str()),
        (Some("manual"), Some("manual"))
    );
    let manual_id = m["id"].as_u64().unwrap();
    eventually(LIMIT, "manual sign-in done", || async {
        entry(&addr, manual_id)
            .await
            .filter(|e| e["actions"][0]["result"] == "ok")
    })
    .await;
    assert!(hook.calls().contains(&("sign_in".into(), "o1".into())));
    let r = http(
        &addr,
        "POST",
        "/api/v1/agents/nobody/sign-in",
        Some("boss"),
        r#"{"queue":"hotline"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = http(
        &addr,
        "POST",
        "/api/v1/agents/o1/sign-out",
        Some("boss"),
        "{}",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(
        &addr,
        "POST",
        "/api/v1/agents/o1/sign-in",
        Some("reader"),
        r#"{"queue":"hotline"}"#,
    )
    .await;
    assert_eq!(r.status, 403);

    // The queue drains: the declined steps go without asking, the experts'
    // release is proposed and approved; x1 and x2 are signed out.
    let now = Ts::now().0;
    let r = http(
        &addr,
        "POST",
        "/api/v1/events",
        Some("boss"),
        &format!(
            "{{\"ts\":{now},\"type\":\"call_abandoned\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n"
        ),
    )
    .await;
    assert_eq!(r.status, 202);
    let release = eventually(LIMIT, "experts release proposed", || async {
        log(&addr, "")
            .await
            .into_iter()
            .find(|e| e["direction"] == "down" && e["stage_name"] == "experts")
    })
    .await;
    let id = release["id"].as_u64().unwrap();
    let downs: Vec<String> = log(&addr, "")
        .await
        .iter()
        .filter(|e| e["direction"] == "down")
        .map(|e| e["stage_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(downs, ["quality", "outbound", "experts"], "newest first");
    let r = http(
        &addr,
        "POST",
        &format!("/api/v1/escalations/{id}/approve"),
        Some("boss"),
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(LIMIT, "experts signed out", || async {
        let c = hook.calls();
        (c.contains(&("sign_out".into(), "x1".into()))
            && c.contains(&("sign_out".into(), "x2".into())))
        .then_some(())
    })
    .await;
    assert!(
        !hook.calls().contains(&("sign_out".into(), "o1".into())),
        "o1 was signed in by hand, not by the ladder"
    );

    // Filters.
    assert!(log(&addr, "?queue=billing").await.is_empty());
    let all = log(&addr, "?queue=hotline").await;
    let later = log(&addr, &format!("?since={}", Ts::now().0 + 60_000)).await;
    assert!(later.is_empty());
    assert!(all.len() >= 8, "{}", all.len());
    let r = http(
        &addr,
        "GET",
        "/api/v1/escalations?since=yesterday",
        Some("reader"),
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(&addr, "GET", "/api/v1/escalations", None, "").await;
    assert_eq!(r.status, 401);
}
