//! Live configuration reload on a running daemon (the real binary, events
//! by `POST /api/v1/events`, CTI by a webhook to a local receiver), as a
//! supervisor changes things during the day:
//! - a new SL threshold judges new calls and leaves counted ones alone, and
//!   a ladder's new `when` decides the next step (SIGHUP);
//! - a file with an error changes nothing and says where the error is;
//! - a stage removed in the middle of an escalation releases its people,
//!   each once, and the rest of the walk carries on;
//! - a new admin token works at once and the old one stops working.

mod hook;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acdmon::time::Ts;
use hook::{Answer, Hook};
use serde_json::Value;
use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(15);

struct Setup<'a> {
    threshold: &'a str,
    token: &'a str,
    first_when: &'a str,
    with_first: bool,
    broken: bool,
    /// Extra TOML at the end (a `[[sources]]` entry).
    extra: String,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            threshold: "20s",
            token: "boss",
            first_when: "waiting > 2",
            with_first: true,
            broken: false,
            extra: String::new(),
        }
    }
}

fn config(dir: &Path, port: u16, hook: &str, s: &Setup) -> String {
    let first = if s.with_first {
        format!(
            "[[ladders.stages]]\nname = \"first\"\nwhen = \"{}\"\nfor = \"0s\"\nsign_in = {{ group = \"first\" }}\n",
            s.first_when
        )
    } else {
        String::new()
    };
    let broken = if s.broken {
        "short_abandon = \"soon\"\n"
    } else {
        ""
    };
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
admin_token = "{token}"

[storage]
path = "{dir}/audit.sqlite"

[defaults]
sl_threshold = "{threshold}"
{broken}
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
release_when = "waiting < 1"
release_hold = "0s"

{first}
[[ladders.stages]]
name = "second"
when = "waiting > 4"
for = "0s"
sign_in = {{ group = "second" }}
{extra}
"#,
        extra = s.extra,
        dir = dir.display(),
        token = s.token,
        threshold = s.threshold,
    )
}

struct Daemon {
    child: Child,
    addr: String,
    cfg: PathBuf,
    token: String,
    _dir: tempfile::TempDir,
    hook: Hook,
    port: u16,
}

impl Daemon {
    async fn start(s: &Setup<'_>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let hook = Hook::start(Answer::Status(200, r#"{"ok":true}"#.into())).await;
        let port = free_port();
        let cfg = dir.path().join("acdmon.toml");
        std::fs::write(&cfg, config(dir.path(), port, &hook.url, s)).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["run", "--config"])
            .arg(&cfg)
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
                tokio::net::TcpStream::connect(&a).await.ok()?;
                (http(&a, "GET", "/healthz", None, "").await.status == 200).then_some(())
            }
        })
        .await;
        Daemon {
            child,
            addr,
            cfg,
            token: s.token.into(),
            _dir: dir,
            hook,
            port,
        }
    }

    fn rewrite(&self, s: &Setup) {
        let dir = self.cfg.parent().unwrap();
        std::fs::write(&self.cfg, config(dir, self.port, &self.hook.url, s)).unwrap();
    }

    async fn post(&self, lines: &[String]) {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let r = http(
            &self.addr,
            "POST",
            "/api/v1/events",
            Some(&self.token),
            &body,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }

    async fn get(&self, path: &str) -> Value {
        let r = http(&self.addr, "GET", path, Some(&self.token), "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    async fn reload(&self) -> (u16, Value) {
        let r = http(&self.addr, "POST", "/api/v1/reload", Some(&self.token), "").await;
        (
            r.status,
            serde_json::from_str(&r.body).unwrap_or(Value::Null),
        )
    }

    async fn today(&self) -> Value {
        self.get("/api/v1/queues/hotline").await["windows"]["today"].clone()
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let r = http(&self.addr, "GET", "/metrics", None, "").await;
        r.body
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.cfg.parent().unwrap().join("daemon.log");
            eprintln!("{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn at(offset_ms: i64) -> i64 {
    Ts::now().0 + offset_ms
}

fn call(kind: &str, id: &str, ts: i64, agent: Option<&str>) -> String {
    let agent = agent
        .map(|a| format!(r#","agent":"{a}""#))
        .unwrap_or_default();
    format!(r#"{{"ts":{ts},"type":"{kind}","call":"{id}","queue":"hotline"{agent}}}"#)
}

fn available(agents: &[&str]) -> Vec<String> {
    let now = at(0);
    agents
        .iter()
        .map(|a| {
            format!(r#"{{"ts":{now},"type":"agent_state","agent":"{a}","state":"available"}}"#)
        })
        .collect()
}

fn calls(kind: &str, ids: &[&str]) -> Vec<String> {
    let now = at(0);
    ids.iter().map(|c| call(kind, c, now, None)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_takes_a_new_threshold_and_a_new_ladder_rule_without_losing_the_day() {
    let d = Daemon::start(&Setup::default()).await;
    d.post(&available(&["a1", "a2"])).await;
    // A caller answered after 25 s: outside a 20 s threshold.
    d.post(&[
        call("call_enqueued", "c1", at(-25_000), None),
        call("call_answered", "c1", at(0), Some("x9")),
    ])
    .await;
    let t = eventually(LIMIT, "c1 counted", || async {
        let t = d.today().await;
        (t["answered"] == 1).then_some(t)
    })
    .await;
    assert_eq!(t["answered_in_sl"], 0);

    d.rewrite(&Setup {
        threshold: "30s",
        first_when: "waiting > 0",
        ..Setup::default()
    });
    let kill = Command::new("kill")
        .args(["-HUP", &d.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rec = eventually(LIMIT, "the reload recorded", || async {
        let list = d.get("/api/v1/reloads").await;
        list.as_array()
            .and_then(|l| l.first().cloned())
            .filter(|r| r["by"] == "SIGHUP")
    })
    .await;
    assert_eq!(rec["ok"], true, "{rec}");
    let changes = rec["changes"].to_string();
    assert!(
        changes.contains("queue hotline: sl_threshold 20s -> 30s"),
        "{rec}"
    );
    assert!(changes.contains("ladders changed: emergency"), "{rec}");

    // What was counted stays; the next 25 s caller is inside 30 s.
    let q = d.get("/api/v1/queues/hotline").await;
    assert_eq!(q["sl_threshold_s"], 30.0);
    assert_eq!(q["windows"]["today"]["answered"], 1);
    assert_eq!(q["windows"]["today"]["answered_in_sl"], 0);
    d.post(&[
        call("call_enqueued", "c2", at(-25_000), None),
        call("call_answered", "c2", at(0), Some("x9")),
    ])
    .await;
    let t = eventually(LIMIT, "c2 counted", || async {
        let t = d.today().await;
        (t["answered"] == 2).then_some(t)
    })
    .await;
    assert_eq!(t["answered_in_sl"], 1);

    // Under the old rule (waiting > 2) c1 moved nothing; under the new
    // one (waiting > 0) c2's arrival signed the first group in.
    let log = d.get("/api/v1/escalations").await;
    let first = &log[0];
    assert_eq!(first["stage_name"], "first", "{log}");
    assert_eq!(first["reason"], "waiting=1 > 0", "{log}");
    let mut who: Vec<&str> = first["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "sign_in")
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    who.sort();
    assert_eq!(who, ["a1", "a2"], "{log}");
    assert_eq!(d.metric("acd_config_reload_success").await, Some(1.0));
    let m = http(&d.addr, "GET", "/metrics", None, "").await.body;
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        m.lines()
            .any(|l| l.starts_with("acd_build_info{") && l.contains(&version) && l.ends_with(" 1")),
        "acd_build_info is exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_changes_nothing_and_says_where() {
    let d = Daemon::start(&Setup::default()).await;
    d.rewrite(&Setup {
        threshold: "45s",
        broken: true,
        ..Setup::default()
    });
    let (status, body) = d.reload().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["ok"], false);
    let err = body["errors"][0].as_str().unwrap();
    // file:line:col of `short_abandon = "soon"`.
    let cfg = d.cfg.display().to_string();
    assert!(err.starts_with(&format!("{cfg}:10:17: ")), "{err}");
    assert_eq!(d.metric("acd_config_reload_success").await, Some(0.0));
    // The threshold in force is still the old one.
    let q = d.get("/api/v1/queues/hotline").await;
    assert_eq!(q["sl_threshold_s"], 20.0);
    let rec = d.get("/api/v1/reloads").await;
    assert_eq!(rec[0]["ok"], false);
    assert_eq!(rec[0]["by"], "api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_removed_mid_escalation_releases_its_people_once() {
    let d = Daemon::start(&Setup::default()).await;
    d.post(&available(&["a1", "a2", "b1", "b2"])).await;
    d.post(&calls("call_enqueued", &["c1", "c2", "c3", "c4", "c5"]))
        .await;
    eventually(LIMIT, "both stages active", || async {
        let q = d.get("/api/v1/queues/hotline").await;
        (q["escalation"]["stage"] == 2).then_some(())
    })
    .await;
    eventually(LIMIT, "four sign-ins", || async {
        (d.hook.calls().len() == 4).then_some(())
    })
    .await;

    // The first stage is taken out of the plan while it is active.
    d.rewrite(&Setup {
        with_first: false,
        ..Setup::default()
    });
    let (status, body) = d.reload().await;
    assert_eq!(status, 200, "{body}");
    eventually(LIMIT, "a1 and a2 signed out", || async {
        (d.hook.calls().len() == 6).then_some(())
    })
    .await;
    let q = d.get("/api/v1/queues/hotline").await;
    let mut still: Vec<&str> = q["escalation"]["signed_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    still.sort();
    assert_eq!(still, ["b1", "b2"], "{q}");
    assert_eq!(q["escalation"]["stage_name"], "second");

    // The queue drains: the remaining stage is released as usual.
    d.post(&calls("call_abandoned", &["c1", "c2", "c3", "c4", "c5"]))
        .await;
    eventually(LIMIT, "b1 and b2 signed out", || async {
        (d.hook.calls().len() >= 8).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = d.hook.calls();
    seen.sort();
    let mut want: Vec<(String, String)> = ["a1", "a2", "b1", "b2"]
        .iter()
        .flat_map(|a| {
            [
                ("sign_in".to_string(), a.to_string()),
                ("sign_out".to_string(), a.to_string()),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(seen, want, "one sign-in and one sign-out each");
    let log = d.get("/api/v1/escalations").await;
    let reasons: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("removed by a configuration reload")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_admin_token_works_at_once_and_the_old_one_stops() {
    let mut d = Daemon::start(&Setup::default()).await;
    d.rewrite(&Setup {
        token: "chief",
        ..Setup::default()
    });
    let (status, body) = d.reload().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["changes"]
            .to_string()
            .contains("server.admin_token changed")
    );
    assert!(!body.to_string().contains("chief"), "secrets never shown");
    let old = http(&d.addr, "POST", "/api/v1/events", Some("boss"), "").await;
    assert!(old.status == 401 || old.status == 403, "{}", old.status);
    d.token = "chief".into();
    d.post(&calls("call_enqueued", &["c1"])).await;
}

fn json_source(name: &str, port: u16) -> String {
    format!("[[sources]]\nname = \"{name}\"\nkind = \"json\"\nlisten = \"127.0.0.1:{port}\"\n")
}

async fn feed(port: u16, line: &str) -> bool {
    use tokio::io::AsyncWriteExt;
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    s.write_all(format!("{line}\n").as_bytes()).await.is_ok() && s.shutdown().await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_source_stops_and_a_new_one_starts() {
    let (p1, p2) = (free_port(), free_port());
    let d = Daemon::start(&Setup {
        extra: json_source("feed-a", p1),
        ..Setup::default()
    })
    .await;
    eventually(LIMIT, "feed-a listens", || async {
        feed(p1, &call("call_enqueued", "c1", at(0), None))
            .await
            .then_some(())
    })
    .await;
    eventually(LIMIT, "c1 arrives through feed-a", || async {
        let q = d.get("/api/v1/queues/hotline").await;
        (q["waiting"] == 1).then_some(())
    })
    .await;
    d.rewrite(&Setup {
        extra: json_source("feed-b", p2),
        ..Setup::default()
    });
    let (status, body) = d.reload().await;
    assert_eq!(status, 200, "{body}");
    let changes = body["changes"].to_string();
    assert!(changes.contains("sources added: feed-b"), "{body}");
    assert!(changes.contains("sources removed: feed-a"), "{body}");
    // feed-a no longer listens; feed-b does, and its events count.
    eventually(LIMIT, "feed-a closed", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", p1))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    eventually(LIMIT, "feed-b listens", || async {
        feed(p2, &call("call_enqueued", "c2", at(0), None))
            .await
            .then_some(())
    })
    .await;
    eventually(LIMIT, "c2 arrives through feed-b", || async {
        let q = d.get("/api/v1/queues/hotline").await;
        (q["waiting"] == 2).then_some(())
    })
    .await;
    let r = http(&d.addr, "GET", "/readyz", None, "").await;
    assert!(
        !r.body.contains("feed-a"),
        "the removed source is gone from /readyz: {}",
        r.body
    );
}
