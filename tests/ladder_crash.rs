//! Kill the daemon with SIGKILL in the middle of an escalation and start it
//! again: the audit log is intact, the ladder carries on from it (the next
//! stage signs in new people, nobody is signed in twice) and releases
//! everyone it signed in, including those signed in before the crash.
//!
//! The real binary (`acdmon run`), events by `POST /api/v1/events`, CTI by
//! a webhook to a local receiver.

mod hook;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acdmon::time::Ts;
use hook::{Answer, Hook};
use serde_json::Value;
use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(15);

fn config(dir: &std::path::Path, port: u16, hook: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_token = "boss"

[storage]
path = "{}/audit.sqlite"

[[queues]]
name = "hotline"
ladder = "emergency"

[[agents]]
id = "a1"
groups = ["first"]
[[agents]]
id = "a2"
groups = ["first"]
[[agents]]
id = "b1"
groups = ["second"]
[[agents]]
id = "b2"
groups = ["second"]

[[cti]]
name = "crm"
kind = "webhook"
url = "{hook}"
timeout = "2s"
retries = 0
default = true

[[ladders]]
name = "emergency"
mode = "auto"
release_when = "waiting < 1"
release_hold = "1s"

[[ladders.stages]]
name = "first"
when = "waiting > 2"
for = "0s"
sign_in = {{ group = "first" }}
[[ladders.stages]]
name = "second"
when = "waiting > 4"
for = "0s"
sign_in = {{ group = "second" }}
"#,
        dir.display()
    )
}

struct Daemon {
    child: Child,
    addr: String,
}

impl Daemon {
    async fn start(cfg: &std::path::Path, port: u16, log: &std::path::Path) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["run", "--config"])
            .arg(cfg)
            .env("ACDMON_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let a = addr.clone();
        eventually(LIMIT, "the daemon serves", || {
            let a = a.clone();
            async move {
                let ok = tokio::net::TcpStream::connect(&a).await.is_ok();
                if !ok {
                    return None;
                }
                (http(&a, "GET", "/healthz", None, "").await.status == 200).then_some(())
            }
        })
        .await;
        Daemon { child, addr }
    }

    async fn post(&self, lines: &[String]) {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let r = http(&self.addr, "POST", "/api/v1/events", Some("boss"), &body).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }

    async fn log(&self) -> Vec<Value> {
        let r = http(&self.addr, "GET", "/api/v1/escalations", Some("boss"), "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn available(agents: &[&str]) -> Vec<String> {
    let now = Ts::now().0;
    agents
        .iter()
        .map(|a| {
            format!(r#"{{"ts":{now},"type":"agent_state","agent":"{a}","state":"available"}}"#)
        })
        .collect()
}

fn calls(kind: &str, ids: &[&str]) -> Vec<String> {
    let now = Ts::now().0;
    ids.iter()
        .map(|c| format!(r#"{{"ts":{now},"type":"{kind}","call":"{c}","queue":"hotline"}}"#))
        .collect()
}

fn all_done(e: &Value) -> bool {
    e["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["result"] == "ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_escalation_then_the_ladder_carries_on_from_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start(Answer::Status(200, r#"{"ok":true}"#.into())).await;
    let port = free_port();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(&cfg, config(dir.path(), port, &hook.url)).unwrap();
    let logfile = dir.path().join("daemon.log");

    // Stage 1: three callers wait, a1 and a2 are signed in.
    let d = Daemon::start(&cfg, port, &logfile).await;
    d.post(&available(&["a1", "a2", "b1", "b2"])).await;
    d.post(&calls("call_enqueued", &["c1", "c2", "c3"])).await;
    let before = eventually(LIMIT, "stage 1 signed in", || async {
        let log = d.log().await;
        (log.len() == 1 && all_done(&log[0])).then_some(log)
    })
    .await;
    assert_eq!(before[0]["stage_name"], "first");

    // SIGKILL, no goodbye.
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    drop(d);

    // Restart: the log is as it was, and the ladder knows whom it signed in.
    let d = Daemon::start(&cfg, port, &logfile).await;
    assert_eq!(d.log().await, before, "the audit log survived intact");

    // The engine forgot the floor; the sources tell it again. Five callers:
    // stage 2 signs in b1 and b2, never a1 or a2 again.
    d.post(&available(&["a1", "a2", "b1", "b2"])).await;
    d.post(&calls("call_enqueued", &["d1", "d2", "d3", "d4", "d5"]))
        .await;
    let q: Value = eventually(LIMIT, "stage 2 active", || async {
        let r = http(&d.addr, "GET", "/api/v1/queues/hotline", Some("boss"), "").await;
        let q: Value = serde_json::from_str(&r.body).ok()?;
        (q["escalation"]["stage"] == 2).then_some(q)
    })
    .await;
    let mut signed: Vec<String> = q["escalation"]["signed_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    signed.sort();
    assert_eq!(
        signed,
        ["a1", "a2", "b1", "b2"],
        "stage 1's people are remembered"
    );

    // The queue drains: both stages are released, newest first.
    d.post(&calls("call_abandoned", &["d1", "d2", "d3", "d4", "d5"]))
        .await;
    let log = eventually(LIMIT, "both stages released", || async {
        let log = d.log().await;
        (log.len() == 4 && log.iter().all(all_done)).then_some(log)
    })
    .await;
    let walk: Vec<(u64, &str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["direction"].as_str().unwrap(),
                e["stage_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        walk,
        [
            (1, "up", "first"),
            (2, "up", "second"),
            (3, "down", "second"),
            (4, "down", "first")
        ]
    );
    assert_eq!(log[0], before[0], "entry 1 was never rewritten");

    // What the phone system saw: one sign-in and one sign-out per person.
    eventually(LIMIT, "eight webhook calls", || async {
        (hook.calls().len() >= 8).then_some(())
    })
    .await;
    let mut seen = hook.calls();
    seen.sort();
    let want: Vec<(String, String)> = ["a1", "a2", "b1", "b2"]
        .iter()
        .flat_map(|a| {
            [
                ("sign_in".to_string(), a.to_string()),
                ("sign_out".to_string(), a.to_string()),
            ]
        })
        .collect::<Vec<_>>();
    let mut want = want;
    want.sort();
    assert_eq!(seen, want);
    let q: Value = serde_json::from_str(
        &http(&d.addr, "GET", "/api/v1/queues/hotline", Some("boss"), "")
            .await
            .body,
    )
    .unwrap();
    assert!(q["escalation"].is_null(), "{}", q["escalation"]);
}
