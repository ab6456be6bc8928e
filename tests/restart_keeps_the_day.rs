//! A crash in the middle of the day does not cost the supervisor the day.
//!
//! The real binary runs with a JSON TCP feed (queue `sales`) and a queue_log
//! file (queue `support`). Half the traffic goes in, with two callers
//! waiting and one call being talked in each queue; once a checkpoint
//! covers it the daemon is killed with SIGKILL (no clean stop), a few more
//! queue_log lines are written while it is down, it is started again and
//! the rest of the traffic goes in. Today's, the interval's and the rolling
//! figures then equal those of `acdmon replay` over the same input (an
//! uninterrupted run), and the callers who waited across the crash are
//! counted once: no `unknown_call` rejects for their outcomes.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{eventually, free_port, http};
use tokio::io::AsyncWriteExt;

const LIMIT: Duration = Duration::from_secs(20);
const INTERVAL_MS: i64 = 15 * 60_000;

/// One step of the day: `(tick, json line or None, queue_log line or None)`,
/// written as templates with `{t}` for the time.
struct Day {
    /// Event time of tick 0 and the length of a tick, in ms.
    t0: i64,
    step: i64,
}

impl Day {
    fn ts(&self, tick: i64) -> i64 {
        self.t0 + tick * self.step
    }

    fn json(&self, tick: i64, body: &str) -> String {
        format!("{{\"ts\":{},{body}}}\n", self.ts(tick))
    }

    /// queue_log times are whole seconds.
    fn qlog(&self, tick: i64, rest: &str) -> String {
        format!("{}|{rest}\n", self.ts(tick) / 1000)
    }

    /// Calls of `sales` (JSON) before the crash: five answered and
    /// completed, one abandoned, one being talked, two waiting.
    fn sales_morning(&self) -> String {
        let mut s = String::new();
        for (i, a) in ["s1", "s2", "s3"].iter().enumerate() {
            s += &self.json(
                i as i64,
                &format!(
                    "\"type\":\"agent_state\",\"agent\":\"{a}\",\"state\":\"available\",\"queue\":\"sales\""
                ),
            );
        }
        let enq =
            |c: &str| format!("\"type\":\"call_enqueued\",\"call\":\"{c}\",\"queue\":\"sales\"");
        let ans = |c: &str, a: &str| {
            format!(
                "\"type\":\"call_answered\",\"call\":\"{c}\",\"queue\":\"sales\",\"agent\":\"{a}\""
            )
        };
        let done = |c: &str, a: &str| {
            format!(
                "\"type\":\"call_completed\",\"call\":\"{c}\",\"queue\":\"sales\",\"agent\":\"{a}\""
            )
        };
        for i in 0..5i64 {
            let c = format!("m{i}");
            let a = ["s1", "s2", "s3"][i as usize % 3];
            let t = 4 + i * 10;
            s += &self.json(t, &enq(&c));
            s += &self.json(t + 1 + i, &ans(&c, a));
            s += &self.json(t + 8, &done(&c, a));
        }
        s += &self.json(60, &enq("ab1"));
        s += &self.json(
            62,
            "\"type\":\"call_abandoned\",\"call\":\"ab1\",\"queue\":\"sales\"",
        );
        s += &self.json(64, &enq("talk"));
        s += &self.json(66, &ans("talk", "s1"));
        s += &self.json(70, &enq("w1"));
        s += &self.json(72, &enq("w2"));
        s
    }

    fn sales_afternoon(&self) -> String {
        let mut s = String::new();
        s += &self.json(
            110,
            "\"type\":\"call_answered\",\"call\":\"w1\",\"queue\":\"sales\",\"agent\":\"s2\"",
        );
        s += &self.json(
            112,
            "\"type\":\"call_completed\",\"call\":\"talk\",\"queue\":\"sales\",\"agent\":\"s1\"",
        );
        s += &self.json(
            114,
            "\"type\":\"call_exited\",\"call\":\"w2\",\"queue\":\"sales\",\"reason\":\"timeout\"",
        );
        s += &self.json(
            116,
            "\"type\":\"call_enqueued\",\"call\":\"e1\",\"queue\":\"sales\"",
        );
        s += &self.json(
            118,
            "\"type\":\"call_answered\",\"call\":\"e1\",\"queue\":\"sales\",\"agent\":\"s3\"",
        );
        s += &self.json(
            125,
            "\"type\":\"call_completed\",\"call\":\"w1\",\"queue\":\"sales\",\"agent\":\"s2\"",
        );
        s
    }

    /// `support` (queue_log) before the crash: the same shape of morning.
    fn support_morning(&self) -> String {
        let mut s = String::new();
        for (i, a) in ["Li", "Wang"].iter().enumerate() {
            s += &self.qlog(i as i64, &format!("MANAGER|support|{a}|ADDMEMBER|"));
        }
        for i in 0..4i64 {
            let a = ["Li", "Wang"][i as usize % 2];
            let t = 3 + i * 12;
            s += &self.qlog(t, &format!("q{i}|support|NONE|ENTERQUEUE||55510{i}|1"));
            s += &self.qlog(
                t + 2 + i,
                &format!("q{i}|support|{a}|CONNECT|{}|x|1", 2 + i),
            );
            s += &self.qlog(
                t + 9,
                &format!("q{i}|support|{a}|COMPLETECALLER|{}|5|1", 2 + i),
            );
        }
        s += &self.qlog(61, "qab|support|NONE|ENTERQUEUE||5551999|1");
        s += &self.qlog(63, "qab|support|NONE|ABANDON|1|1|2");
        s += &self.qlog(65, "qtalk|support|NONE|ENTERQUEUE||5551888|1");
        s += &self.qlog(67, "qtalk|support|Li|CONNECT|2|x|1");
        s += &self.qlog(71, "qw1|support|NONE|ENTERQUEUE||5551777|1");
        s += &self.qlog(73, "qw2|support|NONE|ENTERQUEUE||5551666|1");
        s
    }

    /// Written while the daemon is down (the phone system goes on).
    fn support_while_down(&self) -> String {
        let mut s = String::new();
        s += &self.qlog(90, "qw1|support|Wang|CONNECT|19|x|1");
        s += &self.qlog(92, "qdown|support|NONE|ENTERQUEUE||5551555|1");
        s
    }

    fn support_afternoon(&self) -> String {
        let mut s = String::new();
        s += &self.qlog(111, "qtalk|support|Li|COMPLETEAGENT|2|44|1");
        s += &self.qlog(113, "qw2|support|NONE|EXITWITHTIMEOUT|1|1|40");
        s += &self.qlog(115, "qdown|support|Li|CONNECT|23|x|1");
        s += &self.qlog(120, "qw1|support|Wang|COMPLETECALLER|19|30|1");
        s
    }
}

fn start(cfg: &std::path::Path, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["run", "--config"])
        .arg(cfg)
        .env("ACDMON_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .unwrap()
}

async fn serving(addr: &str) {
    eventually(LIMIT, "the daemon serves", || {
        let a = addr.to_string();
        async move {
            tokio::net::TcpStream::connect(&a).await.ok()?;
            (http(&a, "GET", "/healthz", None, "").await.status == 200).then_some(())
        }
    })
    .await;
}

async fn queues(addr: &str) -> Vec<Value> {
    let r = http(addr, "GET", "/api/v1/queues", None, "").await;
    serde_json::from_str(&r.body).unwrap_or_default()
}

fn find<'a>(qs: &'a [Value], name: &str) -> Option<&'a Value> {
    qs.iter().find(|q| q["queue"] == name)
}

/// Waits until both queues show `offered` calls today and `waiting` callers.
async fn shows(addr: &str, sales: (u64, u64), support: (u64, u64)) -> Vec<Value> {
    let what = format!("sales {sales:?} and support {support:?} (offered, waiting)");
    eventually(LIMIT, &what, || {
        let a = addr.to_string();
        async move {
            let qs = queues(&a).await;
            let ok = |name: &str, (offered, waiting): (u64, u64)| {
                find(&qs, name).is_some_and(|q| {
                    q["windows"]["today"]["offered"] == offered && q["waiting"] == waiting
                })
            };
            (ok("sales", sales) && ok("support", support)).then_some(qs.clone())
        }
    })
    .await
}

async fn feed(port: u16, text: &str) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("json feed");
    s.write_all(text.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn checkpoint_taken_at(db: &std::path::Path) -> Option<i64> {
    let c = rusqlite::Connection::open(db).ok()?;
    c.query_row(
        "SELECT saved_at_ms FROM engine_checkpoint WHERE id = 1",
        [],
        |r| r.get(0),
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_day_keeps_todays_figures_and_the_callers_waiting() {
    let now = acdmon::time::Ts::now().0;
    // The whole day fits in the current 15-minute interval (UTC), up to a
    // second ago: today, not in the future, one interval for both runs.
    let interval_start = now - now.rem_euclid(INTERVAL_MS);
    let t0 = (interval_start + 1).max(now - 10 * 60_000);
    let day = Day {
        t0,
        step: ((now - 1_000 - t0) / 130).max(1),
    };

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let feed_port = free_port();
    let qlog = dir.path().join("queue_log");
    let db = dir.path().join("acdmon.sqlite");
    std::fs::write(&qlog, "").unwrap();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{db}"
checkpoint_every = "100ms"
[time]
zone = "UTC"
[defaults]
rolling_window = "1h"
interval = "15m"
[[queues]]
name = "sales"
[[queues]]
name = "support"
[[sources]]
name = "feed"
kind = "json"
listen = "127.0.0.1:{feed_port}"
[[sources]]
name = "pbx"
kind = "queue_log"
path = "{qlog}"
poll_interval = "50ms"
"#,
            db = db.display(),
            qlog = qlog.display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}");

    // Morning, then a crash.
    let mut first = start(&cfg, &dir.path().join("first.log"));
    serving(&addr).await;
    feed(feed_port, &day.sales_morning()).await;
    append(&qlog, &day.support_morning());
    // sales: 5 answered, 1 abandoned, 1 being talked; support: 4, 1, 1.
    shows(&addr, (7, 2), (6, 2)).await;
    let seen = acdmon::time::Ts::now().0;
    eventually(LIMIT, "a checkpoint taken after the morning", || {
        let db = db.clone();
        async move { checkpoint_taken_at(&db).filter(|&t| t > seen + 200) }
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    append(&qlog, &day.support_while_down());

    // After the restart: the morning is still there, and the queue_log
    // lines written while down are read once.
    let mut second = start(&cfg, &dir.path().join("second.log"));
    serving(&addr).await;
    shows(&addr, (7, 2), (7, 2)).await;
    feed(feed_port, &day.sales_afternoon()).await;
    append(&qlog, &day.support_afternoon());
    let live = shows(&addr, (10, 0), (9, 0)).await;
    let metrics = http(&addr, "GET", "/metrics", None, "").await.body;
    assert!(metrics.contains("acd_queue_waiting_calls"), "{metrics}");
    let _ = second.kill();
    let _ = second.wait();

    // The uninterrupted run: the same input through `acdmon replay`.
    let jsonl = dir.path().join("sales.jsonl");
    std::fs::write(&jsonl, day.sales_morning() + &day.sales_afternoon()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(&jsonl)
        .arg(&qlog)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["rejected"],
        serde_json::json!({}),
        "the input is clean"
    );
    let replayed = report["queues"].as_array().unwrap();

    let same_interval = acdmon::time::Ts::now().0 - interval_start < INTERVAL_MS;
    for name in ["sales", "support"] {
        let (a, b) = (find(&live, name).unwrap(), find(replayed, name).unwrap());
        assert_eq!(
            a["windows"]["today"], b["windows"]["today"],
            "{name}: today"
        );
        assert_eq!(
            a["windows"]["rolling"], b["windows"]["rolling"],
            "{name}: rolling"
        );
        if same_interval {
            assert_eq!(
                a["windows"]["interval"], b["windows"]["interval"],
                "{name}: interval"
            );
        }
        assert_eq!(a["agents"], b["agents"], "{name}: agents");
    }
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("acd_source_events_rejected_total") && !l.ends_with(" 0")),
        "no rejects after the restart (an outcome of a caller who waited across it would be unknown_call):\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("rejected"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
