//! The real binary (`acdmon run`), killed with SIGKILL between shifts and
//! started again: the handover record, its acknowledgement and the duty
//! log are all still there, and nothing is written twice.
//!
//! The daemon ran during a shift that ended while it was down (its
//! intervals are in the history), so on start it writes that shift's
//! record late from the stored history; the incoming supervisor
//! acknowledges it over HTTP (who and when, once), and the duty log takes
//! notes from admins only. Shift edges are on wall-clock time here, so the
//! shifts are placed around the test's own clock (no waiting for one to
//! end: the event-time story of shift ends is in tests/handover.rs).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acdmon::floor::handover::Handover;
use acdmon::store::Store;
use acdmon::time::Ts;
use serde_json::Value;
use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(15);

/// Minutes after midnight UTC as `HH:MM`.
fn hhmm(m: i64) -> String {
    let m = m.rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

struct Daemon {
    child: Child,
    addr: String,
}

impl Daemon {
    async fn start(cfg: &std::path::Path, port: u16) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let a = addr.clone();
        eventually(LIMIT, "the daemon serves", || {
            let a = a.clone();
            async move {
                if tokio::net::TcpStream::connect(&a).await.is_err() {
                    return None;
                }
                (http(&a, "GET", "/healthz", None, "").await.status == 200).then_some(())
            }
        })
        .await;
        Daemon { child, addr }
    }

    /// SIGKILL: no clean stop, nothing flushed.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn get(&self, path: &str) -> Value {
        let r = http(&self.addr, "GET", path, Some("reader"), "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    async fn handovers(&self) -> Vec<Handover> {
        serde_json::from_value(self.get("/api/v1/handovers?since=0").await).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_shifts_keeps_the_handover_its_ack_and_the_duty_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let now = Ts::now();
    let minute = now.0.rem_euclid(86_400_000) / 60_000;
    // The past shift ended 15 to 30 minutes ago; the current one runs.
    let end = minute / 15 * 15 - 15;
    let cfg_path = dir.path().join("acdmon.toml");
    let db = dir.path().join("audit.sqlite");
    std::fs::write(
        &cfg_path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
read_token = "reader"
admin_token = "boss"
[storage]
path = "{}"
[time]
zone = "UTC"
[handover]
show_after = "1h"
[[queues]]
name = "hotline"
[[shifts]]
name = "past"
from = "{}"
to = "{}"
[[shifts]]
name = "current"
from = "{}"
to = "{}"
"#,
            db.display(),
            hhmm(end - 60),
            hhmm(end),
            hhmm(end),
            hhmm(end + 720)
        ),
    )
    .unwrap();
    // The daemon ran during the past shift: two intervals in the history.
    {
        let store = Store::open(db.to_str().unwrap()).unwrap();
        let start = Ts((now.0 - now.0.rem_euclid(60_000)) - (minute - end + 60) * 60_000);
        let recs: Vec<_> = (0..2)
            .map(|i| {
                let s = start.plus_ms(i * 900_000);
                let t = acdmon::state::window::Tally {
                    answered: 4,
                    answered_in_sl: 3,
                    abandoned: 1,
                    answered_wait_ms: 40_000,
                    ..Default::default()
                };
                acdmon::state::IntervalRecord {
                    queue: "hotline".into(),
                    start: s,
                    end: s.plus_ms(900_000),
                    window: acdmon::state::kpi::WindowView::from_tally(&t, Default::default()),
                    staffed_agents: 3.0,
                    required_agents: Some(3),
                    observed_from: s,
                }
            })
            .collect();
        store.insert_intervals(&recs).unwrap();
    }

    let d = Daemon::start(&cfg_path, port).await;
    let addr = d.addr.clone();
    let list = eventually(LIMIT, "the late handover", || {
        let addr = addr.clone();
        async move {
            let r = http(
                &addr,
                "GET",
                "/api/v1/handovers?since=0",
                Some("reader"),
                "",
            )
            .await;
            let v: Vec<Handover> = serde_json::from_str(&r.body).ok()?;
            (!v.is_empty()).then_some(v)
        }
    })
    .await;
    assert_eq!(list.len(), 1);
    let h = &list[0];
    assert_eq!(h.shift, "past");
    assert!(h.late);
    assert_eq!((h.queues[0].offered, h.queues[0].answered), (10, 8));
    assert_eq!(h.queues[0].asa_s, Some(10.0));
    assert_eq!(
        h.escalations.active, None,
        "no end-of-shift state when late"
    );
    assert!(h.ack.is_none());
    let id = h.id;

    // The wall's banner shows it in the first hour of the next shift.
    let b = d.get("/api/v1/handovers/banner").await;
    assert_eq!(b["phase"], "after", "{b}");
    assert_eq!(b["handover"]["id"], id);

    // Acknowledging needs the admin token and a name.
    let path = format!("/api/v1/handovers/{id}/ack");
    let r = http(
        &addr,
        "POST",
        &path,
        Some("reader"),
        r#"{"by":"Wang Fang"}"#,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http(&addr, "POST", &path, Some("boss"), r#"{"by":"  "}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let before = Ts::now();
    let r = http(&addr, "POST", &path, Some("boss"), r#"{"by":"Wang Fang"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let acked: Handover = serde_json::from_str(&r.body).unwrap();
    let ack = acked.ack.clone().unwrap();
    assert_eq!(ack.by, "Wang Fang");
    assert!(ack.at >= before && ack.at <= Ts::now(), "{ack:?}");
    let r = http(
        &addr,
        "POST",
        "/api/v1/handovers/999/ack",
        Some("boss"),
        r#"{"by":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 404);

    // The duty log: admins write, readers read.
    let note = r#"{"text":"Queue 2 music on hold broken, ticket 4711","by":"Wang Fang"}"#;
    let r = http(&addr, "POST", "/api/v1/duty-log", Some("reader"), note).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http(
        &addr,
        "POST",
        "/api/v1/duty-log",
        Some("boss"),
        r#"{"text":"","by":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let long = format!(r#"{{"text":"{}","by":"x"}}"#, "a".repeat(2001));
    let r = http(&addr, "POST", "/api/v1/duty-log", Some("boss"), &long).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http(&addr, "POST", "/api/v1/duty-log", Some("boss"), note).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http(
        &addr,
        "GET",
        "/api/v1/duty-log?since=soon",
        Some("reader"),
        "",
    )
    .await;
    assert_eq!(r.status, 400);

    d.kill();
    let d = Daemon::start(&cfg_path, port).await;
    // Nothing lost, nothing written twice (the late record is not made
    // again), and the first acknowledgement stands.
    let after = d.handovers().await;
    assert_eq!(after, vec![acked.clone()]);
    let r = http(&d.addr, "POST", &path, Some("boss"), r#"{"by":"Zhao Lei"}"#).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("Wang Fang"), "{}", r.body);
    let log = d.get("/api/v1/duty-log?since=0").await;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log[0]["by"], "Wang Fang");
    assert!(log[0]["text"].as_str().unwrap().contains("4711"));
    // The banner still shows the acknowledged record.
    let b = d.get("/api/v1/handovers/banner").await;
    assert_eq!(b["handover"]["ack"]["by"], "Wang Fang", "{b}");
    d.kill();
}
