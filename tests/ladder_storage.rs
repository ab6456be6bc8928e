//! The ladder when its audit log cannot be written.
//!
//! The story: a surge walks the ladder up (nine agents signed in through the
//! webhook), the disk fills, the queue drains. The release cannot be
//! written, so nobody is signed out yet, but the ladder still knows whom it
//! signed in, and `/readyz` and `/metrics` say storage is failing. The disk
//! is freed: every agent is signed out exactly once, newest stage first,
//! the log has no missing id, and only written results are counted.
//!
//! The full disk is real: a small tmpfs, filled with a ballast file, so
//! SQLite's write of the decision fails with `SQLITE_FULL` as it would in
//! production. Mounting needs root (CI runs as root); elsewhere the test
//! says so and stops.
//!
//! Second story: a daemon started on a database it cannot write (a
//! read-only bind mount as root, file modes otherwise) refuses to start,
//! with exit code 1 and the reason, instead of serving as if it could log.

mod hook;
mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acdmon::config::Config;
use acdmon::time::Ts;
use hook::{Answer, Hook};
use serde_json::Value;
use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(15);

fn config(dir: &Path, hook: &str) -> String {
    let mut agents = String::new();
    for (group, prefix) in [("experts", "e"), ("outbound", "o"), ("quality", "q")] {
        for n in 1..=3 {
            agents.push_str(&format!(
                "[[agents]]\nid = \"{prefix}{n}\"\ngroups = [\"{group}\"]\n"
            ));
        }
    }
    format!(
        r#"
[server]
read_token = "reader"
admin_token = "boss"

[storage]
path = "{}/audit.sqlite"

[defaults]
ladder = "surge"

[[queues]]
name = "hotline"

{agents}

[[cti]]
name = "crm"
kind = "webhook"
url = "{hook}"
timeout = "2s"
retries = 0
default = true

[[ladders]]
name = "surge"
mode = "auto"
release_when = "waiting < 1"
release_hold = "500ms"

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

/// A tmpfs mounted for the test, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "acdmon-test"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { path, _dir: dir })
    }

    fn ballast(&self) -> PathBuf {
        self.path.join("ballast")
    }

    /// Writes a ballast file until the file system refuses another byte.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.ballast()).unwrap();
        let mut chunk = 64 * 1024;
        let buf = vec![0xA5u8; chunk];
        while chunk > 0 {
            match f.write(&buf[..chunk]) {
                Ok(n) if n == chunk => {}
                Ok(_) | Err(_) => chunk /= 2,
            }
        }
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.ballast()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn json(addr: &str, path: &str) -> Value {
    let r = http(addr, "GET", path, Some("reader"), "").await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Sum of a metric's samples whose labels contain every `want` pair.
fn metric(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            continue;
        }
        if want
            .iter()
            .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    found
}

fn actions_by_result(text: &str) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("acd_escalation_actions_total{"))
    {
        let result = line
            .split("result=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *m.entry(result).or_default() += v;
    }
    m
}

async fn metrics(addr: &str) -> String {
    http(addr, "GET", "/metrics", None, "").await.body
}

fn sign_outs(hook: &Hook) -> Vec<String> {
    hook.calls()
        .into_iter()
        .filter(|(v, _)| v == "sign_out")
        .map(|(_, a)| a)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_delays_the_release_and_nobody_is_forgotten() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs this test as root)");
        return;
    };
    let hook = Hook::start(Answer::Status(200, r#"{"ok":true,"detail":"done"}"#.into())).await;
    let cfg = Config::parse("t.toml", &config(&disk.path, &hook.url)).unwrap();
    let (_d, addr) = support::start_daemon(cfg).await;

    // The surge: nine agents available, one caller waiting: all three
    // stages fire at once (`for = "0s"`).
    let now = Ts::now().0;
    let mut body = String::new();
    for a in ["e1", "e2", "e3", "o1", "o2", "o3", "q1", "q2", "q3"] {
        body.push_str(&format!(
            "{{\"ts\":{now},\"type\":\"agent_state\",\"agent\":\"{a}\",\"state\":\"available\"}}\n"
        ));
    }
    body.push_str(&format!(
        "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n"
    ));
    let r = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually(
        LIMIT,
        "nine sign-ins, all answered ok in the log",
        || async {
            let log = json(&addr, "/api/v1/escalations").await;
            let ok = log
                .as_array()?
                .iter()
                .flat_map(|e| e["actions"].as_array().cloned().unwrap_or_default())
                .filter(|a| a["kind"] == "sign_in" && a["result"] == "ok")
                .count();
            (ok == 9).then_some(())
        },
    )
    .await;
    assert_eq!(hook.calls().len(), 9);

    // The disk fills; the queue drains. The release is decided but cannot
    // be written, so nobody is signed out yet.
    disk.fill();
    let drained = format!(
        "{{\"ts\":{},\"type\":\"call_abandoned\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n",
        Ts::now().0
    );
    let r = http(&addr, "POST", "/api/v1/events", Some("boss"), &drained).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let text = eventually(LIMIT, "a release waiting to be written", || async {
        let m = metrics(&addr).await;
        (metric(&m, "acd_escalation_pending_writes", &[]).unwrap_or(0.0) >= 1.0).then_some(m)
    })
    .await;
    assert_eq!(metric(&text, "acd_storage_ok", &[]), Some(0.0), "{text}");
    assert!(metric(&text, "acd_storage_write_failures_total", &[]).unwrap_or(0.0) >= 1.0);
    let r = http(&addr, "GET", "/readyz", None, "").await;
    assert_eq!(r.status, 503, "{}", r.body);
    let ready: Value = serde_json::from_str(&r.body).unwrap();
    let reasons: Vec<String> = ready["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("storage:") && r.contains("full")),
        "{reasons:?}"
    );
    // Several release holds pass: the ladder decides nothing new, signs
    // nobody out, and still knows all nine as its own.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(sign_outs(&hook).is_empty(), "{:?}", hook.calls());
    let agents = json(&addr, "/api/v1/agents").await;
    let flagged: Vec<&str> = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["signed_in_by_escalation"] == true)
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(flagged.len(), 9, "{agents}");
    let q = json(&addr, "/api/v1/queues/hotline").await;
    assert_eq!(
        q["escalation"]["signed_in"].as_array().map(Vec::len),
        Some(9),
        "the wall still shows all nine: {q}"
    );
    // A supervisor's manual sign-in cannot be logged either: refused, and
    // no id is spent on it.
    let r = http(
        &addr,
        "POST",
        "/api/v1/agents/e1/sign-out",
        Some("boss"),
        r#"{"queue":"hotline"}"#,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("nothing was done"), "{}", r.body);
    let ids: Vec<u64> = json(&addr, "/api/v1/escalations")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "only written entries are in the log");
    let counted = actions_by_result(&metrics(&addr).await);
    assert_eq!(counted.get("ok"), Some(&9.0), "{counted:?}");
    assert_eq!(counted.len(), 1, "{counted:?}");

    // The disk is freed: the release is written and acted on, then the
    // next ones, newest stage first.
    disk.free();
    let outs = eventually(LIMIT, "nine sign-outs", || async {
        let s = sign_outs(&hook);
        (s.len() >= 9).then_some(s)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let outs_after = sign_outs(&hook);
    assert_eq!(outs_after, outs, "no agent is signed out twice");
    let stage_of = |a: &str| match &a[..1] {
        "q" => 3,
        "o" => 2,
        _ => 1,
    };
    let order: Vec<u32> = outs.iter().map(|a| stage_of(a)).collect();
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "newest stage first: {outs:?}"
    );
    let mut signed_out = outs.clone();
    signed_out.sort();
    assert_eq!(
        signed_out,
        ["e1", "e2", "e3", "o1", "o2", "o3", "q1", "q2", "q3"],
        "exactly those signed in, once each"
    );
    let log = eventually(LIMIT, "every sign-out answered in the log", || async {
        let log = json(&addr, "/api/v1/escalations").await;
        let done = log
            .as_array()?
            .iter()
            .flat_map(|e| e["actions"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["kind"] == "sign_out" && a["result"] == "ok")
            .count();
        (done == 9).then_some(log)
    })
    .await;
    let ids: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6], "no id goes missing");
    let downs: Vec<&str> = log.as_array().unwrap()[3..]
        .iter()
        .map(|e| e["stage_name"].as_str().unwrap())
        .collect();
    assert_eq!(downs, ["quality", "outbound", "experts"]);
    let m = eventually(LIMIT, "storage healthy again", || async {
        let m = metrics(&addr).await;
        (metric(&m, "acd_storage_ok", &[]) == Some(1.0)).then_some(m)
    })
    .await;
    assert_eq!(metric(&m, "acd_escalation_pending_writes", &[]), Some(0.0));
    let counted = actions_by_result(&m);
    assert_eq!(counted.get("ok"), Some(&18.0), "{counted:?}");
    assert_eq!(counted.len(), 1, "nothing else was counted: {counted:?}");
    let r = http(&addr, "GET", "/readyz", None, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let agents = json(&addr, "/api/v1/agents").await;
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["signed_in_by_escalation"] == false),
        "{agents}"
    );
}

/// Runs `acdmon run` on `cfg`, the storage directory `dir` made read-only:
/// a read-only bind mount in a private mount namespace as root (file modes
/// do not stop root), file modes otherwise. `None` when neither works here.
fn run_read_only(dir: &Path, cfg: &Path) -> Option<std::process::Child> {
    let bin = env!("CARGO_BIN_EXE_acdmon");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if root {
        let probe = Command::new("unshare")
            .args(["--mount", "--", "sh", "-c"])
            .arg(format!(
                "mount --bind -o ro '{0}' '{0}' && ! touch '{0}/x' 2>/dev/null",
                dir.display()
            ))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !probe {
            return None;
        }
        let mut c = Command::new("unshare");
        c.args(["--mount", "--", "sh", "-c"]).arg(format!(
            "mount --bind -o ro '{0}' '{0}' && exec '{1}' run --config '{2}'",
            dir.display(),
            bin,
            cfg.display()
        ));
        c
    } else {
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir).ok()? {
            let p = e.ok()?.path();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).ok()?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).ok()?;
        let mut c = Command::new(bin);
        c.args(["run", "--config"]).arg(cfg);
        c
    };
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()
}

#[test]
fn a_daemon_on_storage_it_cannot_write_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("audit.sqlite");
    // An existing database, as a daemon killed with SIGKILL leaves it (its
    // `-wal` and `-shm` beside it): the store stays open in this process.
    let earlier = acdmon::store::Store::open(db.to_str().unwrap()).unwrap();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n\n[storage]\npath = {:?}\n",
            free_port(),
            db.to_str().unwrap()
        ),
    )
    .unwrap();
    let Some(mut child) = run_read_only(&data, &cfg) else {
        eprintln!("SKIPPED: cannot make a directory read-only here");
        return;
    };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started on a database it cannot write");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write"), "{err}");
    assert!(err.contains(db.to_str().unwrap()), "{err}");
    assert!(
        err.contains("read-only") || err.contains("readonly"),
        "{err}"
    );
    drop(earlier);
}

/// A phone system that answers at once and remembers every request.
#[derive(Clone, Default)]
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<(acdmon::cti::CtiVerb, String)>>>);

impl acdmon::cti::Cti for Recorder {
    fn execute(&self, req: acdmon::cti::CtiRequest) -> acdmon::cti::CtiFuture {
        self.0.lock().unwrap().push((req.verb, req.agent));
        Box::pin(async { acdmon::cti::CtiOutcome::ok("done") })
    }
}

/// Steady load on a disk that is full some of the time: a surge every ten
/// minutes for a day's afternoon, the disk filling and freeing at times
/// that fall in every phase of the ladder (some writes still fit in the
/// file's free space, others do not). Every agent alternates sign-in and
/// sign-out (never signed in twice), everyone is out at the end, the log's
/// ids run without a gap, and no write failed for any reason but a full
/// disk (no `FOREIGN KEY constraint failed`).
#[test]
fn a_disk_that_fills_and_frees_under_load_never_breaks_the_ladder() {
    use acdmon::event::{AgentStatus, Event, EventKind};
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("t.toml", &config(dir.path(), "http://127.0.0.1:9/unused")).unwrap();
    let store = std::sync::Arc::new(acdmon::store::Store::in_memory().unwrap());
    let phone = Recorder::default();
    let reg = acdmon::cti::CtiRegistry::only(std::sync::Arc::new(phone.clone()));
    let (obs, _) = acdmon::escalation::observer::LadderObserver::new(
        &cfg,
        store.clone(),
        std::sync::Arc::new(reg),
    )
    .unwrap();
    let t0 = 1_800_000_000_000i64;
    let mut d = acdmon::engine_thread::Driver::new(
        acdmon::state::Engine::starting_at(cfg.engine_config(), Ts(t0)),
        std::sync::Arc::new(acdmon::sources::RejectCounter::default()),
    );
    d.observers.push(Box::new(obs));
    for a in ["e1", "e2", "e3", "o1", "o2", "o3", "q1", "q2", "q3"] {
        d.apply(
            "t",
            Event {
                ts: Ts(t0),
                kind: EventKind::AgentState {
                    agent: a.into(),
                    status: AgentStatus::Available,
                    reason: None,
                    queue: None,
                },
            },
        );
    }
    let mut failures_seen = 0;
    let mut full = false;
    // One step = 250 ms of event time; a surge (a caller waiting 20 s)
    // every 10 minutes; the disk toggles every 37 s, so its edges fall on
    // every phase of the ladder.
    let steps = 4 * 60 * 60 * 4;
    for step in 0..steps {
        let t = t0 + 1_000 + step * 250;
        let in_cycle = (step * 250) % 600_000;
        let call = format!("c{}", step * 250 / 600_000);
        if in_cycle == 0 {
            d.apply(
                "t",
                Event {
                    ts: Ts(t),
                    kind: EventKind::CallEnqueued {
                        call: call.clone(),
                        queue: "hotline".into(),
                        caller: None,
                        priority: None,
                    },
                },
            );
        } else if in_cycle == 20_000 {
            d.apply(
                "t",
                Event {
                    ts: Ts(t),
                    kind: EventKind::CallAbandoned {
                        call,
                        queue: "hotline".into(),
                    },
                },
            );
        }
        let want_full = step < steps - 4 * 600 && (step * 250 / 37_000) % 2 == 1;
        if want_full != full {
            store.set_full(want_full).unwrap();
            full = want_full;
        }
        d.advance(Ts(t));
        d.before_publish();
        if !store.health().ok() {
            failures_seen += 1;
            let err = store.health().last_error().unwrap();
            assert!(err.contains("full"), "only a full disk: {err}");
        }
    }
    assert!(
        failures_seen > 100,
        "the disk was full often: {failures_seen}"
    );
    // Every agent alternates, starting with a sign-in, and ends signed out.
    let calls = phone.0.lock().unwrap().clone();
    let mut by_agent: HashMap<String, Vec<acdmon::cti::CtiVerb>> = HashMap::new();
    for (v, a) in &calls {
        by_agent.entry(a.clone()).or_default().push(*v);
    }
    assert_eq!(by_agent.len(), 9, "{calls:?}");
    for (a, vs) in &by_agent {
        for (i, v) in vs.iter().enumerate() {
            let want = if i % 2 == 0 {
                acdmon::cti::CtiVerb::SignIn
            } else {
                acdmon::cti::CtiVerb::SignOut
            };
            assert_eq!(*v, want, "{a}: {vs:?}");
        }
        assert_eq!(vs.len() % 2, 0, "{a} is still signed in: {vs:?}");
        assert!(vs.len() >= 2 * 10, "{a} took part in the day: {vs:?}");
    }
    let entries = store.all_entries().unwrap();
    let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
    let want: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, want, "no id goes missing");
    // Every action of every entry has its answer in the log.
    for e in &entries {
        for a in &e.actions {
            assert_eq!(a.result, "ok", "entry {}: {a:?}", e.id);
        }
    }
    assert!(store.health().ok());
}
