//! Cluster mode against a real `nats-server` with JetStream: two acdmon
//! instances share one site's event stream.
//!
//! A recorded morning (a few thousand calls in two queues) is written to a
//! JSON file source as a PBX would, in pieces. One instance holds the
//! source's lease and ingests it; both instances read the stream. Their
//! `/api/v1/queues` figures equal each other's and those of `acdmon replay`
//! over the same file, to the call.
//!
//! The second story kills the ingesting instance (SIGKILL) in the middle of
//! the feed: the other takes the source over once the lease runs out and
//! carries on from where the stream says the file was read to; the final
//! figures again equal a single-process replay (nothing lost, nothing
//! twice), and the killed instance, started again, rebuilds the same day
//! from the stream.

mod nats;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nats::{NatsCluster, NatsServer};
use serde_json::Value;
use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(60);
const TOKEN_ENV: &str = "ACDMON_TEST_NATS_TOKEN";
const TOKEN: &str = "s3cret-nats-token";

/// The recorded morning: JSON lines in the last minutes before now, all in
/// the current 15-minute interval (today, never in the future).
struct Day {
    lines: Vec<String>,
    calls: usize,
    abandoned: usize,
}

fn record(calls: usize) -> Day {
    let now = acdmon::time::Ts::now().0;
    let interval = 15 * 60_000;
    let t0 = (now - now.rem_euclid(interval) + 1).max(now - 10 * 60_000);
    let span = now - 2_000 - t0;
    let agents = 8usize;
    let mut lines = Vec::new();
    let ev = |ts: i64, body: String| (ts, format!("{{\"ts\":{ts},{body}}}"));
    let mut evs = Vec::new();
    for a in 0..agents {
        let q = if a.is_multiple_of(2) {
            "sales"
        } else {
            "support"
        };
        evs.push(ev(
            t0 + a as i64,
            format!(
                "\"type\":\"agent_state\",\"agent\":\"a{a}\",\"state\":\"available\",\"queue\":\"{q}\""
            ),
        ));
    }
    // Each agent takes its calls one after the other: call i goes to agent
    // i % 8 in that agent's queue; every 7th caller hangs up first.
    let step = (span - 100) / calls as i64;
    let per_agent = step * agents as i64;
    let mut abandoned = 0;
    for i in 0..calls {
        let a = i % agents;
        let q = if a.is_multiple_of(2) {
            "sales"
        } else {
            "support"
        };
        let t = t0 + 100 + i as i64 * step;
        let c = format!("c{i}");
        evs.push(ev(
            t,
            format!("\"type\":\"call_enqueued\",\"call\":\"{c}\",\"queue\":\"{q}\""),
        ));
        if i % 7 == 3 {
            abandoned += 1;
            evs.push(ev(
                t + per_agent / 3,
                format!("\"type\":\"call_abandoned\",\"call\":\"{c}\",\"queue\":\"{q}\""),
            ));
        } else {
            evs.push(ev(
                t + per_agent / 4,
                format!(
                    "\"type\":\"call_answered\",\"call\":\"{c}\",\"queue\":\"{q}\",\"agent\":\"a{a}\""
                ),
            ));
            evs.push(ev(
                t + per_agent * 3 / 4,
                format!(
                    "\"type\":\"call_completed\",\"call\":\"{c}\",\"queue\":\"{q}\",\"agent\":\"a{a}\""
                ),
            ));
        }
    }
    evs.sort_by_key(|(t, _)| *t);
    lines.extend(evs.into_iter().map(|(_, l)| l + "\n"));
    Day {
        lines,
        calls,
        abandoned,
    }
}

struct Instance {
    child: Option<Child>,
    addr: String,
    cfg: PathBuf,
    log: PathBuf,
}

impl Instance {
    fn new(dir: &Path, name: &str, nats: &str, feed: &Path) -> Instance {
        Self::with(dir, name, &[nats.to_string()], feed, "")
    }

    /// `urls`: the servers; `extra`: more `[cluster]` lines.
    fn with(dir: &Path, name: &str, urls: &[String], feed: &Path, extra: &str) -> Instance {
        let nats = urls
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let port = free_port();
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{db}"
checkpoint_every = "200ms"
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
path = "{feed}"
follow = true
[cluster]
nats = [{nats}]
site = "north"
instance = "{name}"
token = "env:{TOKEN_ENV}"
lease_ttl = "2s"
{extra}
"#,
                db = dir.join(format!("{name}.sqlite")).display(),
                feed = feed.display(),
            ),
        )
        .unwrap();
        let mut i = Instance {
            child: None,
            addr: format!("127.0.0.1:{port}"),
            cfg,
            log: dir.join(format!("{name}.log")),
        };
        i.start();
        i
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["run", "--config"])
            .arg(&self.cfg)
            .env(TOKEN_ENV, TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits until the instance serves HTTP.
    async fn up(&self) {
        let addr = self.addr.clone();
        eventually(LIMIT, "the instance to serve HTTP", move || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) }
        })
        .await;
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn queues(&self) -> Option<Vec<Value>> {
        let r = http(&self.addr, "GET", "/api/v1/queues", None, "").await;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        v.as_array()
            .cloned()
            .or_else(|| v["queues"].as_array().cloned())
    }

    /// Waits until the instance has counted `offered` calls in all.
    async fn shows(&self, offered: u64) -> Vec<Value> {
        let me = self;
        eventually(
            LIMIT,
            &format!("{} to count {offered} calls", self.addr),
            move || async move {
                let qs = me.queues().await?;
                let n: u64 = qs
                    .iter()
                    .map(|q| q["windows"]["today"]["offered"].as_u64().unwrap_or(0))
                    .sum();
                (n == offered).then_some(qs)
            },
        )
        .await
    }

    /// The stream sequence this instance has applied up to.
    async fn applied(&self) -> u64 {
        let m = http(&self.addr, "GET", "/metrics", None, "").await.body;
        m.lines()
            .find_map(|l| l.strip_prefix("acd_cluster_stream_applied_sequence{site=\"north\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    /// Whether this instance ingests the feed now (its lease gauge).
    async fn ingests(&self) -> bool {
        let m = http(&self.addr, "GET", "/metrics", None, "").await.body;
        m.lines().any(|l| {
            l.starts_with("acd_cluster_lease_held{")
                && l.contains("source=\"feed\"")
                && l.ends_with(" 1")
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- last lines of {}:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(lines.concat().as_bytes()).unwrap();
}

fn replay(cfg: &Path, feed: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--config"])
        .arg(cfg)
        .arg(feed)
        .env(TOKEN_ENV, TOKEN)
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
    report["queues"].as_array().unwrap().clone()
}

fn find<'a>(qs: &'a [Value], name: &str) -> &'a Value {
    qs.iter()
        .find(|q| q["name"] == name || q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {qs:?}"))
}

/// Today's figures and agents of both queues equal.
fn same(a: &[Value], b: &[Value], what: &str) {
    for q in ["sales", "support"] {
        let (x, y) = (find(a, q), find(b, q));
        assert_eq!(
            x["windows"]["today"], y["windows"]["today"],
            "{what}: {q} today"
        );
        assert_eq!(
            x["windows"]["rolling"], y["windows"]["rolling"],
            "{what}: {q} rolling"
        );
        assert_eq!(x["agents"], y["agents"], "{what}: {q} agents");
    }
}

async fn ready(i: &Instance) {
    eventually(
        LIMIT,
        "/readyz 200 (caught up with the stream)",
        move || async move {
            let r = http(&i.addr, "GET", "/readyz", None, "").await;
            (r.status == 200).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_show_the_figures_a_single_replay_gives() {
    let nats = NatsServer::start_with(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").unwrap();
    let day = record(2_400);
    let a = Instance::new(dir.path(), "east", &nats.url(), &feed);
    let b = Instance::new(dir.path(), "west", &nats.url(), &feed);
    a.up().await;
    b.up().await;

    // The day arrives in four pieces, as a PBX writes it.
    let n = day.lines.len();
    for part in day.lines.chunks(n / 4 + 1) {
        append(&feed, part);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let qa = a.shows(day.calls as u64).await;
    let qb = b.shows(day.calls as u64).await;
    let replayed = replay(&a.cfg, &feed);
    same(&qa, &qb, "east vs west");
    same(&qa, &replayed, "cluster vs acdmon replay");
    let abandoned: u64 = ["sales", "support"]
        .iter()
        .map(|q| {
            find(&qa, q)["windows"]["today"]["abandoned"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(abandoned as usize, day.abandoned);

    // Exactly one of them ingested the file; both are ready and say how far
    // into the stream they are.
    assert!(
        a.ingests().await != b.ingests().await,
        "one ingester:\n{}\n{}",
        a.log(),
        b.log()
    );
    for i in [&a, &b] {
        ready(i).await;
        let m = http(&i.addr, "GET", "/metrics", None, "").await.body;
        assert!(
            m.contains("acd_cluster_stream_lag_messages{site=\"north\"} 0"),
            "{m}"
        );
        assert!(m.contains("acd_cluster_caught_up{site=\"north\"} 1"), "{m}");
        assert!(!i.log().contains(TOKEN), "the NATS token reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_ingesting_instance_loses_nothing_and_counts_nothing_twice() {
    let nats = NatsServer::start_with(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").unwrap();
    let day = record(1_200);
    let mut a = Instance::new(dir.path(), "east", &nats.url(), &feed);
    let mut b = Instance::new(dir.path(), "west", &nats.url(), &feed);
    a.up().await;
    b.up().await;
    let parts: Vec<&[String]> = day.lines.chunks(day.lines.len() / 3 + 1).collect();

    append(&feed, parts[0]);
    // Both have applied the first piece from the stream.
    for i in [&a, &b] {
        eventually(
            LIMIT,
            "the first piece through the stream",
            move || async move { (i.applied().await > 0).then_some(()) },
        )
        .await;
    }
    let (ra, rb) = (&a, &b);
    let a_ingests = eventually(LIMIT, "an ingester", move || async move {
        match (ra.ingests().await, rb.ingests().await) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    })
    .await;
    let (dead, alive) = if a_ingests {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    // Mid-feed: part of the second piece is written (and a checkpoint
    // taken), the ingester dies.
    let half = parts[1].len() / 2;
    append(&feed, &parts[1][..half]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    dead.sigkill();
    append(&feed, &parts[1][half..]);
    append(&feed, parts[2]);

    let survivor = alive.shows(day.calls as u64).await;
    assert!(
        alive.ingests().await,
        "the survivor took the source over:\n{}",
        alive.log()
    );
    let replayed = replay(&alive.cfg, &feed);
    same(&survivor, &replayed, "after failover vs acdmon replay");

    // The killed instance comes back and rebuilds the same day from the
    // stream (its checkpoint, then what came after it).
    dead.start();
    dead.up().await;
    let back = dead.shows(day.calls as u64).await;
    same(&back, &replayed, "restarted instance vs acdmon replay");
    let restarts: Vec<String> = dead
        .log()
        .lines()
        .filter(|l| l.contains("events go through the stream"))
        .map(String::from)
        .collect();
    assert!(
        restarts.len() == 2 && restarts[1].contains("ByStartSequence"),
        "the restart resumed after the stream position in its checkpoint, not from the day's start: {restarts:#?}\n{}",
        dead.log()
    );
    ready(&*dead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_under_load_loses_nothing() {
    let mut nats = NatsServer::start_with(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").unwrap();
    let day = record(1_200);
    let a = Instance::new(dir.path(), "east", &nats.url(), &feed);
    let b = Instance::new(dir.path(), "west", &nats.url(), &feed);
    a.up().await;
    b.up().await;
    let parts: Vec<&[String]> = day.lines.chunks(day.lines.len() / 3 + 1).collect();
    append(&feed, parts[0]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The broker dies (SIGKILL) while the feed goes on, and comes back with
    // its file store.
    nats.kill();
    append(&feed, parts[1]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart();
    append(&feed, parts[2]);
    let qa = a.shows(day.calls as u64).await;
    let qb = b.shows(day.calls as u64).await;
    let replayed = replay(&a.cfg, &feed);
    same(
        &qa,
        &replayed,
        "east after the broker restart vs acdmon replay",
    );
    same(
        &qb,
        &replayed,
        "west after the broker restart vs acdmon replay",
    );
    ready(&a).await;
    ready(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_jetstream_cluster_keeps_serving_with_one_node_down() {
    let mut cluster = NatsCluster::start(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").unwrap();
    let day = record(900);
    let urls = cluster.urls();
    // Each instance prefers a different node first.
    let east_urls = urls.clone();
    let west_urls: Vec<String> = urls.iter().rev().cloned().collect();
    let a = Instance::with(dir.path(), "east", &east_urls, &feed, "replicas = 3");
    let b = Instance::with(dir.path(), "west", &west_urls, &feed, "replicas = 3");
    a.up().await;
    b.up().await;
    let parts: Vec<&[String]> = day.lines.chunks(day.lines.len() / 2 + 1).collect();
    append(&feed, parts[0]);
    for i in [&a, &b] {
        eventually(
            LIMIT,
            "the first piece through the stream",
            move || async move { (i.applied().await > 0).then_some(()) },
        )
        .await;
    }
    // One node dies (the first choice of one instance, the last of the
    // other); the stream has two of its three replicas left.
    cluster.nodes[0].kill();
    append(&feed, parts[1]);
    let qa = a.shows(day.calls as u64).await;
    let qb = b.shows(day.calls as u64).await;
    let replayed = replay(&a.cfg, &feed);
    same(&qa, &replayed, "east with a node down vs acdmon replay");
    same(&qb, &replayed, "west with a node down vs acdmon replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_reach_its_broker_says_so_on_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(&feed, "").unwrap();
    // Nothing listens there.
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let a = Instance::new(dir.path(), "east", &nowhere, &feed);
    a.up().await;
    let r = eventually(LIMIT, "/readyz naming the cluster", || async {
        let r = http(&a.addr, "GET", "/readyz", None, "").await;
        r.body.contains("cluster:north").then_some(r)
    })
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("cannot connect to NATS"), "{}", r.body);
    let m = http(&a.addr, "GET", "/metrics", None, "").await.body;
    assert!(
        m.contains("acd_source_connected{source=\"cluster:north\"} 0"),
        "{m}"
    );
}
