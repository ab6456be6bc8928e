//! The CTI leader dies in the middle of an escalation (cluster mode, a real
//! `nats-server`, two `acdmon run` processes, a webhook CTI to a local
//! receiver).
//!
//! Both instances run the ladder on the same stream; only the holder of the
//! site's `cti` lease calls the webhook, each call with an `Idempotency-Key`.
//! Stage 1 signs a1 and a2 in; the leader is killed (SIGKILL); more callers
//! arrive, and the other instance, once the lease has run out, signs b1 and
//! b2 in (stage 2); the queue drains and it signs all four out, including
//! the two the dead leader signed in. The receiver sees exactly one sign-in
//! and one sign-out per agent (a repeat with the same key would be a retry
//! the receiver can drop, and is counted apart).

mod hook;
mod nats;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acdmon::time::Ts;
use hook::{Answer, Hook};
use nats::NatsServer;
use serde_json::Value;
use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(30);

struct Instance {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Instance {
    async fn start(dir: &Path, name: &str, nats: &str, feed: &Path, hook: &str) -> Instance {
        let port = free_port();
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
admin_token = "boss"
[storage]
path = "{db}"
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
[[sources]]
name = "feed"
kind = "json"
path = "{feed}"
follow = true
[cluster]
nats = ["{nats}"]
site = "north"
instance = "{name}"
lease_ttl = "2s"
"#,
                db = dir.join(format!("{name}.sqlite")).display(),
                feed = feed.display(),
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let a = addr.clone();
        eventually(LIMIT, "the instance serves", move || {
            let a = a.clone();
            async move { tokio::net::TcpStream::connect(&a).await.ok().map(|_| ()) }
        })
        .await;
        Instance {
            child: Some(child),
            addr,
            log,
        }
    }

    async fn is_leader(&self) -> bool {
        let m = http(&self.addr, "GET", "/metrics", None, "").await.body;
        m.lines()
            .any(|l| l.starts_with("acd_cluster_cti_leader{") && l.ends_with(" 1"))
    }

    async fn escalations(&self) -> Vec<Value> {
        let r = http(&self.addr, "GET", "/api/v1/escalations", Some("boss"), "").await;
        serde_json::from_str(&r.body).unwrap_or_default()
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- {}:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

fn append(path: &Path, lines: Vec<String>) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
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

/// What the receiver saw: (verb, agent) -> the idempotency keys, in order.
fn by_action(hook: &Hook) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for s in hook.seen() {
        let key = s
            .head
            .lines()
            .find_map(|l| l.strip_prefix("idempotency-key:"))
            .map(|k| k.trim().to_string())
            .unwrap_or_default();
        let verb = s.body["verb"].as_str().unwrap_or("?").to_string();
        let agent = s.body["agent"].as_str().unwrap_or("?").to_string();
        out.entry((verb, agent)).or_default().push(key);
    }
    out
}

/// `north:<entry id>:<action index>`: the site, then the audit entry and
/// the action, the same on every instance that holds the log.
fn is_action_key(k: &str) -> bool {
    let parts: Vec<&str> = k.split(':').collect();
    parts.len() == 3 && parts[0] == "north" && parts[1..].iter().all(|p| p.parse::<u64>().is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cti_leader_dies_mid_escalation_and_the_other_finishes_the_walk() {
    let nats = NatsServer::start();
    let hook = Hook::start(Answer::Status(200, r#"{"ok":true}"#.into())).await;
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").unwrap();
    let mut east = Instance::start(dir.path(), "east", &nats.url(), &feed, &hook.url).await;
    let mut west = Instance::start(dir.path(), "west", &nats.url(), &feed, &hook.url).await;
    let (e, w) = (&east, &west);
    let east_leads = eventually(LIMIT, "a CTI leader", move || async move {
        match (e.is_leader().await, w.is_leader().await) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    })
    .await;

    // Stage 1: three callers wait; the leader signs a1 and a2 in.
    append(&feed, available(&["a1", "a2", "b1", "b2"]));
    append(&feed, calls("call_enqueued", &["c1", "c2", "c3"]));
    let h = hook.clone();
    eventually(LIMIT, "stage 1's two sign-ins", move || {
        let h = h.clone();
        async move { (h.seen().len() >= 2).then_some(()) }
    })
    .await;

    // The leader dies; the other instance mirrored stage 1.
    let (dead, alive) = if east_leads {
        (&mut east, &mut west)
    } else {
        (&mut west, &mut east)
    };
    dead.sigkill();
    let killed = Instant::now();

    // Stage 2 and the walk down happen under the new leader.
    append(&feed, calls("call_enqueued", &["d1", "d2"]));
    let a = &*alive;
    eventually(LIMIT, "the survivor leads", move || async move {
        a.is_leader().await.then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    let h = hook.clone();
    eventually(LIMIT, "stage 2's two sign-ins", move || {
        let h = h.clone();
        async move { (by_action(&h).len() >= 4).then_some(()) }
    })
    .await;
    append(
        &feed,
        calls("call_abandoned", &["c1", "c2", "c3", "d1", "d2"]),
    );
    let h = hook.clone();
    eventually(
        LIMIT,
        "eight actions (a sign-in and a sign-out each)",
        move || {
            let h = h.clone();
            async move { (by_action(&h).len() >= 8).then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let seen = by_action(&hook);
    let mut want = Vec::new();
    for a in ["a1", "a2", "b1", "b2"] {
        for v in ["sign_in", "sign_out"] {
            want.push((v.to_string(), a.to_string()));
        }
    }
    want.sort();
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        want,
        "one sign-in and one sign-out per agent: {seen:#?}"
    );
    let mut repeats = 0;
    for ((verb, agent), keys) in &seen {
        let first = &keys[0];
        assert!(
            is_action_key(first),
            "{verb} {agent} carries the idempotency key north:<entry>:<action>: {keys:?}"
        );
        assert!(
            keys.iter().all(|k| k == first),
            "{verb} {agent}: one action (every call with the same key): {keys:?}"
        );
        repeats += keys.len() - 1;
    }
    eprintln!(
        "takeover after SIGKILL: {:.1} s (lease_ttl 2 s); repeats with the same key: {repeats}",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(5),
        "took over in {takeover:?}"
    );

    // The survivor's log walked up and back down, every action ok.
    let a = &*alive;
    let log = eventually(
        LIMIT,
        "the walk up and down in the survivor's log",
        move || async move {
            let log = a.escalations().await;
            let done = log.len() == 4
                && log.iter().all(|e| {
                    e["actions"]
                        .as_array()
                        .is_some_and(|x| x.iter().all(|a| a["result"] == "ok"))
                });
            done.then_some(log)
        },
    )
    .await;
    let walk: Vec<(&str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["direction"].as_str().unwrap_or("?"),
                e["stage_name"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        walk,
        [
            ("up", "first"),
            ("up", "second"),
            ("down", "second"),
            ("down", "first")
        ]
    );
}

/// Waits until the leader's `/api/v1/escalations` has `entries` entries,
/// none with an action pending, and the follower's is the same, field for
/// field; returns it.
async fn wait_same_log(leader: &Instance, follower: &Instance, entries: usize) -> Vec<Value> {
    eventually(
        LIMIT,
        "the follower's escalation log equal to the leader's",
        move || async move {
            let (l, f) = (leader.escalations().await, follower.escalations().await);
            let settled = l.len() == entries
                && l.iter().all(|e| {
                    e["actions"]
                        .as_array()
                        .is_some_and(|x| x.iter().all(|a| a["result"] != "pending"))
                });
            (settled && l == f).then_some(l)
        },
    )
    .await
}

/// Distinct actions the receiver saw, per (verb, agent): how many keys.
fn distinct_keys(hook: &Hook) -> BTreeMap<(String, String), usize> {
    by_action(hook)
        .into_iter()
        .map(|(k, keys)| {
            let mut keys = keys;
            keys.sort();
            keys.dedup();
            (k, keys.len())
        })
        .collect()
}

/// A follower is restarted in the middle of the day's second escalation,
/// then the leader dies: the restarted instance reads the escalation stream
/// again, takes over and finishes the walk. Every action reaches the
/// receiver under its own key (a1 is signed in and out twice today: four
/// keys), none twice under different keys and none dropped because an
/// earlier action had the same key. On the old code the restarted instance
/// counted keys from zero, so its sign-out of a1 reused the morning's key
/// and a receiver that drops repeats would have left a1 in the queue.
///
/// Along the way: the restarted follower's `/api/v1/escalations` equals the
/// leader's, entry for entry (ids, actions, results, details, times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_takes_over_and_no_action_is_lost_or_doubled() {
    let nats = NatsServer::start();
    let hook = Hook::start(Answer::Status(200, r#"{"ok":true}"#.into())).await;
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").unwrap();
    let mut east = Instance::start(dir.path(), "east", &nats.url(), &feed, &hook.url).await;
    let mut west = Instance::start(dir.path(), "west", &nats.url(), &feed, &hook.url).await;
    let (e, w) = (&east, &west);
    let east_leads = eventually(LIMIT, "a CTI leader", move || async move {
        match (e.is_leader().await, w.is_leader().await) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    })
    .await;
    let (leader, follower, follower_name) = if east_leads {
        (&mut east, &mut west, "west")
    } else {
        (&mut west, &mut east, "east")
    };
    let actions = |n: usize| {
        let h = hook.clone();
        move || {
            let h = h.clone();
            async move {
                let seen: usize = distinct_keys(&h).values().sum();
                (seen >= n).then_some(())
            }
        }
    };

    // The morning: stage 1 signs a1 and a2 in, the queue drains, they are
    // signed out.
    append(&feed, available(&["a1", "a2", "b1", "b2"]));
    append(&feed, calls("call_enqueued", &["c1", "c2", "c3"]));
    eventually(LIMIT, "the morning's two sign-ins", actions(2)).await;
    append(&feed, calls("call_abandoned", &["c1", "c2", "c3"]));
    eventually(LIMIT, "the morning's two sign-outs", actions(4)).await;

    // The afternoon: stage 1 again. The follower is restarted meanwhile.
    append(&feed, calls("call_enqueued", &["e1", "e2", "e3"]));
    eventually(LIMIT, "the afternoon's two sign-ins", actions(6)).await;
    follower.sigkill();
    *follower = Instance::start(dir.path(), follower_name, &nats.url(), &feed, &hook.url).await;
    let log = wait_same_log(leader, follower, 3).await;
    let walk: Vec<(u64, &str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap_or(0),
                e["direction"].as_str().unwrap_or("?"),
                e["stage_name"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        walk,
        [(1, "up", "first"), (2, "down", "first"), (3, "up", "first")],
        "the restarted follower's log is the leader's"
    );
    let f = &*follower;
    eventually(
        LIMIT,
        "the follower's wall shows stage 1",
        move || async move {
            let q = http(&f.addr, "GET", "/api/v1/queues", Some("boss"), "")
                .await
                .body;
            let q: Value = serde_json::from_str(&q).ok()?;
            (q[0]["escalation"]["stage"] == 1).then_some(())
        },
    )
    .await;

    // The leader dies; the restarted follower takes over, climbs to stage
    // 2 and walks everything down.
    leader.sigkill();
    append(&feed, calls("call_enqueued", &["f1", "f2"]));
    let f = &*follower;
    eventually(LIMIT, "the restarted follower leads", move || async move {
        f.is_leader().await.then_some(())
    })
    .await;
    eventually(LIMIT, "stage 2's two sign-ins", actions(8)).await;
    append(
        &feed,
        calls("call_abandoned", &["e1", "e2", "e3", "f1", "f2"]),
    );
    eventually(LIMIT, "every sign-out", actions(12)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut want = BTreeMap::new();
    for (v, a, n) in [
        ("sign_in", "a1", 2),
        ("sign_in", "a2", 2),
        ("sign_out", "a1", 2),
        ("sign_out", "a2", 2),
        ("sign_in", "b1", 1),
        ("sign_in", "b2", 1),
        ("sign_out", "b1", 1),
        ("sign_out", "b2", 1),
    ] {
        want.insert((v.to_string(), a.to_string()), n);
    }
    let seen = by_action(&hook);
    assert_eq!(
        distinct_keys(&hook),
        want,
        "every action once under its own key: {seen:#?}"
    );
    let repeats: usize = seen.values().map(Vec::len).sum::<usize>() - 12;
    eprintln!("repeats with the same key: {repeats}");
    for keys in seen.values() {
        assert!(keys.iter().all(|k| is_action_key(k)), "{keys:?}");
    }
    let f = &*follower;
    let log = eventually(
        LIMIT,
        "the walk down in the new leader's log",
        move || async move {
            let log = f.escalations().await;
            let done = log.len() == 6
                && log.iter().all(|e| {
                    e["actions"]
                        .as_array()
                        .is_some_and(|x| x.iter().all(|a| a["result"] == "ok"))
                });
            done.then_some(log)
        },
    )
    .await;
    let walk: Vec<(&str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["direction"].as_str().unwrap_or("?"),
                e["stage_name"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        walk,
        [
            ("up", "first"),
            ("down", "first"),
            ("up", "first"),
            ("up", "second"),
            ("down", "second"),
            ("down", "first")
        ]
    );
}
