//! A configuration reload in cluster mode adds, changes and removes
//! sources, against a real `nats-server` with JetStream.
//!
//! Two instances of one site start with no source. The supervisor adds
//! the PBX's JSON feed to one instance's configuration and reloads it: that
//! instance takes the source's lease and ingests it, and both walls show
//! the calls. The other instance gets the source too and stands by. The
//! feed then moves to another directory (the same file): the holder
//! restarts the source at the new path where the stream ends, counting
//! nothing twice. Removing the source from the holder hands it to the other
//! instance at once (the lease is given up, not left to expire); removing
//! it from that one too stops ingesting: lines written afterwards are
//! counted nowhere.
//!
//! A PBX (AMI) source whose settings change is restarted by its holder on
//! a new connection; the CTI requests and relists the holder answers for
//! the site go to the new connection.

mod common;
mod nats;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nats::NatsServer;
use serde_json::Value;
use support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(30);
const ADMIN: &str = "reload-admin";

/// `pieces` pieces of `per` calls each, JSON lines in the last minutes
/// before now (today, never in the future), in time order.
fn calls(pieces: usize, per: usize) -> Vec<Vec<String>> {
    let now = acdmon::time::Ts::now().0;
    let interval = 15 * 60_000;
    let t0 = (now - now.rem_euclid(interval) + 1).max(now - 10 * 60_000);
    let step = (now - 2_000 - t0) / (pieces * per * 2) as i64;
    (0..pieces)
        .map(|p| {
            (0..per)
                .flat_map(|i| {
                    let n = p * per + i;
                    let t = t0 + 2 * n as i64 * step;
                    let q = if n.is_multiple_of(2) {
                        "sales"
                    } else {
                        "support"
                    };
                    [
                        format!(
                            r#"{{"ts":{t},"type":"call_enqueued","call":"c{n}","queue":"{q}"}}"#
                        ),
                        format!(
                            r#"{{"ts":{},"type":"call_abandoned","call":"c{n}","queue":"{q}"}}"#,
                            t + step
                        ),
                    ]
                })
                .map(|l| l + "\n")
                .collect()
        })
        .collect()
}

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(lines.concat().as_bytes()).unwrap();
}

struct Instance {
    child: Option<Child>,
    name: String,
    addr: String,
    port: u16,
    dir: PathBuf,
    nats: String,
    cfg: PathBuf,
    log: PathBuf,
}

impl Instance {
    fn start(dir: &Path, name: &str, nats: &str) -> Instance {
        let port = free_port();
        let mut i = Instance {
            child: None,
            name: name.into(),
            addr: format!("127.0.0.1:{port}"),
            port,
            dir: dir.into(),
            nats: nats.into(),
            cfg: dir.join(format!("{name}.toml")),
            log: dir.join(format!("{name}.log")),
        };
        i.configure(None);
        let log = std::fs::File::create(&i.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["run", "--config"])
            .arg(&i.cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        i.child = Some(child);
        i
    }

    /// Writes the configuration: the same site, with the feed at `feed`
    /// as source `feed` or without a source.
    fn configure(&self, feed: Option<&Path>) {
        let source = feed
            .map(|f| {
                format!(
                    "[[sources]]\nname = \"feed\"\nkind = \"json\"\npath = \"{}\"\nfollow = true\n",
                    f.display()
                )
            })
            .unwrap_or_default();
        std::fs::write(
            &self.cfg,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
admin_token = "{ADMIN}"
[storage]
path = "{db}"
[time]
zone = "UTC"
[defaults]
rolling_window = "1h"
interval = "15m"
[[queues]]
name = "sales"
[[queues]]
name = "support"
{source}
[cluster]
nats = ["{nats}"]
site = "north"
instance = "{name}"
lease_ttl = "2s"
"#,
                port = self.port,
                db = self.dir.join(format!("{}.sqlite", self.name)).display(),
                nats = self.nats,
                name = self.name,
            ),
        )
        .unwrap();
    }

    async fn up(&self) {
        let addr = self.addr.clone();
        eventually(LIMIT, "the instance to serve HTTP", move || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) }
        })
        .await;
    }

    /// Rewrites the configuration and reloads it; the reload succeeds.
    async fn reload(&self, feed: Option<&Path>) {
        self.configure(feed);
        let r = http(&self.addr, "POST", "/api/v1/reload", Some(ADMIN), "").await;
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        assert!(
            r.status == 200 && v["ok"] == true,
            "{}: reload answered {} {}",
            self.name,
            r.status,
            r.body
        );
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

    async fn offered(&self) -> Option<u64> {
        let r = http(&self.addr, "GET", "/api/v1/queues", None, "").await;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        let qs = v
            .as_array()
            .cloned()
            .or_else(|| v["queues"].as_array().cloned())?;
        Some(
            qs.iter()
                .map(|q| q["windows"]["today"]["offered"].as_u64().unwrap_or(0))
                .sum(),
        )
    }

    /// Waits until the instance has counted `n` calls in all.
    async fn shows(&self, n: u64) {
        let what = format!("{} to count {n} calls", self.name);
        eventually(LIMIT, &what, || async {
            (self.offered().await == Some(n)).then_some(())
        })
        .await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- last lines of {}:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_moves_and_removes_a_source_across_the_cluster() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    let pieces = calls(4, 30);
    append(&feed, &pieces[0]);
    let east = Instance::start(dir.path(), "east", &nats.url());
    let west = Instance::start(dir.path(), "west", &nats.url());
    east.up().await;
    west.up().await;
    east.shows(0).await;

    // Added on east: east takes the lease and ingests; both walls count.
    east.reload(Some(&feed)).await;
    east.shows(30).await;
    west.shows(30).await;
    assert!(east.ingests().await, "east ingests the added source");

    // A source name that is not a subject token is refused with its
    // position, and changes nothing.
    let text = std::fs::read_to_string(&east.cfg).unwrap();
    std::fs::write(
        &east.cfg,
        text.replace("name = \"feed\"", "name = \"feed.x\""),
    )
    .unwrap();
    let r = http(&east.addr, "POST", "/api/v1/reload", Some(ADMIN), "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("east.toml:"), "{}", r.body);
    assert!(east.ingests().await, "a refused reload changes nothing");

    // Added on west too: west stands by, east keeps the source.
    west.reload(Some(&feed)).await;
    eventually(LIMIT, "west to stand by", || async {
        west.log().contains("standing by").then_some(())
    })
    .await;
    assert!(east.ingests().await && !west.ingests().await);

    // The feed moves to another directory (the same file): the holder
    // restarts the source at the new path where the stream ends.
    let moved_dir = dir.path().join("moved");
    std::fs::create_dir(&moved_dir).unwrap();
    let moved = moved_dir.join("feed.jsonl");
    std::fs::rename(&feed, &moved).unwrap();
    east.reload(Some(&moved)).await;
    west.reload(Some(&moved)).await;
    append(&moved, &pieces[1]);
    east.shows(60).await;
    west.shows(60).await;
    let log = east.log();
    let restart = log
        .find("restarting it where the stream ends")
        .unwrap_or_else(|| panic!("east restarted the source:\n{log}"));
    assert!(
        log[restart..].contains("resuming the event file"),
        "the restarted source resumes at the stream's position:\n{log}"
    );
    assert!(east.ingests().await, "east kept the lease over the restart");

    // Removed from east: it gives the lease up and west, which still has
    // the source, carries on where the stream ends.
    east.reload(None).await;
    assert!(!east.ingests().await);
    eventually(LIMIT, "west to take the source over", || async {
        west.ingests().await.then_some(())
    })
    .await;
    append(&moved, &pieces[2]);
    east.shows(90).await;
    west.shows(90).await;

    // Removed from west too: nobody ingests; what is written afterwards is
    // counted nowhere, and the stream does not grow.
    west.reload(None).await;
    assert!(!west.ingests().await);
    let before = last_feed_message(&nats).await;
    append(&moved, &pieces[3]);
    // Longer than the lease TTL and many times the file's poll interval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in [&east, &west] {
        assert_eq!(i.offered().await, Some(90), "{} after removal", i.name);
        assert!(!i.ingests().await, "{} ingests a removed source", i.name);
    }
    assert_eq!(
        last_feed_message(&nats).await,
        before,
        "the feed's subject grew after the source was removed everywhere"
    );
}

/// The stream sequence of the last message on the feed's subject.
async fn last_feed_message(nats: &NatsServer) -> u64 {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("ACDMON_north").await.unwrap();
    stream
        .get_last_raw_message_by_subject("acdmon.north.events.feed")
        .await
        .unwrap()
        .sequence
}

/// One instance of site north with AMI source `pbx1`; `reconnect_max`
/// is the setting the reload changes.
fn ami_config(dir: &Path, nats: &str, ami: &str, reconnect_max: &str) -> String {
    format!(
        r#"[server]
admin_token = "{ADMIN}"
[storage]
path = "{dir}/east.sqlite"
[[queues]]
name = "support"
[[agents]]
id = "2001"
name = "Chen Jie"
interface = "PJSIP/2001"
source = "pbx1"
[[sources]]
name = "pbx1"
kind = "ami"
address = "{ami}"
username = "acdmon"
secret = "s3cret"
reconnect_min = "50ms"
reconnect_max = "{reconnect_max}"
[cluster]
nats = ["{nats}"]
site = "north"
instance = "east"
lease_ttl = "2s"
"#,
        dir = dir.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_pbx_source_is_restarted_by_its_holder_and_answers_on_the_new_connection() {
    use common::ami::{FakeAmi, get};

    let nats = NatsServer::start();
    let pbx = FakeAmi::start("acdmon", "s3cret").await;
    {
        let mut st = pbx.state.lock().unwrap();
        st.clock = acdmon::time::Ts::now().0 / 1000;
        st.queues = vec!["support".into()];
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("east.toml");
    let ami = pbx.addr.to_string();
    std::fs::write(&path, ami_config(dir.path(), &nats.url(), &ami, "200ms")).unwrap();
    let cfg = acdmon::config::Config::load(path.to_str().unwrap()).unwrap();
    let (east, addr) = support::start_daemon(cfg).await;
    let held = || async {
        let m = http(&addr, "GET", "/metrics", None, "").await.body;
        m.lines().any(|l| {
            l.starts_with("acd_cluster_lease_held{")
                && l.contains("source=\"pbx1\"")
                && l.ends_with(" 1")
        })
    };
    eventually(LIMIT, "east ingests the PBX", || async {
        held().await.then_some(())
    })
    .await;
    pbx.wait_connections(1).await;

    std::fs::write(&path, ami_config(dir.path(), &nats.url(), &ami, "300ms")).unwrap();
    let r = http(&addr, "POST", "/api/v1/reload", Some(ADMIN), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    pbx.wait_connections(2).await;
    assert!(held().await, "the holder kept the lease over the restart");

    // A CTI leader's sign-in reaches the PBX over the new connection.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("Idempotency-Key", "north:in:support:2001:0");
    let request = serde_json::json!({
        "verb": "sign_in", "agent": "2001", "interface": "PJSIP/2001",
        "name": "Chen Jie", "queue": "support"
    });
    let answer = eventually(LIMIT, "the holder answers on the new connection", || {
        let (client, h, request) = (client.clone(), h.clone(), request.clone());
        async move {
            let m = client
                .request_with_headers(
                    "acdmon.north.cti.pbx1",
                    h,
                    serde_json::to_vec(&request).unwrap().into(),
                )
                .await
                .ok()?;
            let v: Value = serde_json::from_slice(&m.payload).ok()?;
            (v["ok"] == true).then_some(v)
        }
    })
    .await;
    let adds: Vec<_> = pbx
        .actions()
        .into_iter()
        .filter(|a| get(a, "Action") == Some("QueueAdd"))
        .collect();
    assert_eq!(adds.len(), 1, "one QueueAdd: {answer}");

    // And a relist for a new leader is answered by the new connection.
    let statuses = |pbx: &FakeAmi| {
        pbx.action_names()
            .iter()
            .filter(|n| n.as_str() == "QueueStatus")
            .count()
    };
    let before = statuses(&pbx);
    east.relister
        .clone()
        .expect("a site instance relists")
        .refresh_membership()
        .await
        .expect("membership refreshed");
    assert!(statuses(&pbx) > before, "relisted on the new connection");
}
