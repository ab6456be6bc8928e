//! Several sites on one wall, against a real `nats-server` with JetStream.
//!
//! A provincial hotline runs two sites, north and south, each with its own
//! acdmon instance and its own PBX feed; both have a queue called
//! `hotline`. A central instance (`[cluster] sites = ["north", "south"]`)
//! reads both sites' streams. Its `/api/v1/queues` shows both hotlines,
//! apart (`north/hotline`, `south/hotline`, each with its `site`), with
//! exactly the figures each site shows itself; its `/metrics` carry the
//! `site` label. When the south instance dies, the central instance marks
//! south STALE (API, metrics, /readyz) within `stale_after`, while north,
//! quiet but alive (its heartbeat keeps coming), stays live.

mod browser;
mod nats;
mod wsutil;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nats::NatsServer;
use serde_json::Value;
use wsutil::support::{eventually, free_port, http};

const LIMIT: Duration = Duration::from_secs(60);

struct Instance {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Instance {
    /// `body`: the configuration after `[server]`/`[storage]`/`[time]`.
    fn start(dir: &Path, name: &str, body: &str) -> Instance {
        let port = free_port();
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\ncheckpoint_every = \"200ms\"\n[time]\nzone = \"UTC\"\n{body}",
                dir.join(format!("{name}.sqlite")).display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Instance {
            child: Some(child),
            addr: format!("127.0.0.1:{port}"),
            log,
        }
    }

    fn site(dir: &Path, site: &str, nats: &str, feed: &Path) -> Instance {
        Self::start(
            dir,
            site,
            &format!(
                "[[sources]]\nname = \"pbx\"\nkind = \"json\"\npath = \"{}\"\nfollow = true\n[cluster]\nnats = [\"{nats}\"]\nsite = \"{site}\"\ninstance = \"{site}-1\"\nlease_ttl = \"2s\"\n",
                feed.display()
            ),
        )
    }

    async fn up(&self) {
        eventually(LIMIT, "the instance to serve HTTP", || async {
            tokio::net::TcpStream::connect(&self.addr)
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let r = http(&self.addr, "GET", path, None, "").await;
        serde_json::from_str(&r.body).ok()
    }

    async fn metrics(&self) -> String {
        http(&self.addr, "GET", "/metrics", None, "").await.body
    }

    /// The queue `name`, once it has counted `offered` calls today.
    async fn queue_with(&self, name: &str, offered: u64) -> Value {
        eventually(
            LIMIT,
            &format!("{} to count {offered} calls in {name}", self.addr),
            move || async move {
                let qs = self.get("/api/v1/queues").await?;
                let q = qs.as_array()?.iter().find(|q| q["queue"] == name)?.clone();
                (q["windows"]["today"]["offered"] == offered).then_some(q)
            },
        )
        .await
    }

    async fn site_state(&self, site: &str) -> Option<String> {
        let v = self.get("/api/v1/sites").await?;
        v["sites"]
            .as_array()?
            .iter()
            .find(|s| s["site"] == site)
            .and_then(|s| s["state"].as_str().map(String::from))
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

/// A site's morning in its `hotline` queue: `calls` calls, every fifth
/// abandoned, the rest answered by one of three agents and completed.
fn morning(calls: usize) -> String {
    let now = acdmon::time::Ts::now().0;
    let t0 = now - 60_000;
    let mut out = String::new();
    let mut line = |ts: i64, body: String| out.push_str(&format!("{{\"ts\":{ts},{body}}}\n"));
    for a in 0..3 {
        line(
            t0 + a,
            format!(
                "\"type\":\"agent_state\",\"agent\":\"a{a}\",\"state\":\"available\",\"queue\":\"hotline\""
            ),
        );
    }
    for i in 0..calls {
        let t = t0 + 100 + i as i64 * 100;
        let a = i % 3;
        line(
            t,
            format!("\"type\":\"call_enqueued\",\"call\":\"c{i}\",\"queue\":\"hotline\""),
        );
        if i % 5 == 4 {
            line(
                t + 40,
                format!("\"type\":\"call_abandoned\",\"call\":\"c{i}\",\"queue\":\"hotline\""),
            );
        } else {
            line(
                t + 20,
                format!(
                    "\"type\":\"call_answered\",\"call\":\"c{i}\",\"queue\":\"hotline\",\"agent\":\"a{a}\""
                ),
            );
            line(
                t + 90,
                format!(
                    "\"type\":\"call_completed\",\"call\":\"c{i}\",\"queue\":\"hotline\",\"agent\":\"a{a}\""
                ),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_on_one_central_wall_and_a_dead_site_turns_stale() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (north_feed, south_feed) = (
        dir.path().join("north.jsonl"),
        dir.path().join("south.jsonl"),
    );
    std::fs::write(&north_feed, morning(40)).unwrap();
    std::fs::write(&south_feed, morning(25)).unwrap();
    let north = Instance::site(dir.path(), "north", &server.url(), &north_feed);
    let mut south = Instance::site(dir.path(), "south", &server.url(), &south_feed);
    let central = Instance::start(
        dir.path(),
        "central",
        &format!(
            "[cluster]\nnats = [\"{}\"]\nsite = \"central\"\nsites = [\"north\", \"south\"]\nstale_after = \"10s\"\n",
            server.url()
        ),
    );

    for i in [&north, &south, &central] {
        i.up().await;
    }
    // Each site counts its own morning; the central wall shows both
    // hotlines apart, each with the figures its site shows.
    let own_north = north.queue_with("hotline", 40).await;
    let own_south = south.queue_with("hotline", 25).await;
    let c_north = central.queue_with("north/hotline", 40).await;
    let c_south = central.queue_with("south/hotline", 25).await;
    assert_eq!(own_north["site"], "north");
    assert_eq!(c_north["site"], "north");
    assert_eq!(c_south["site"], "south");
    for (own, central) in [(&own_north, &c_north), (&own_south, &c_south)] {
        assert_eq!(own["windows"]["today"], central["windows"]["today"]);
        assert_eq!(own["windows"]["rolling"], central["windows"]["rolling"]);
        assert_eq!(own["agents"], central["agents"]);
    }
    assert_eq!(c_north["windows"]["today"]["abandoned"], 8);
    let agents = central.get("/api/v1/agents").await.unwrap();
    let a0 = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "south/a0")
        .expect("south's agent a0 on the central wall");
    assert_eq!(a0["site"], "south");
    assert_eq!(a0["queues"], serde_json::json!(["south/hotline"]));

    // Prometheus series carry the site.
    let m = central.metrics().await;
    assert!(
        m.contains("acd_queue_waiting_calls{queue=\"north/hotline\",site=\"north\"} 0"),
        "{m}"
    );
    assert!(m.contains("queue=\"south/hotline\",site=\"south\""), "{m}");
    assert!(
        north
            .metrics()
            .await
            .contains("acd_queue_waiting_calls{queue=\"hotline\",site=\"north\"} 0")
    );

    // Both sites are live (their heartbeats arrive) and the central
    // instance is ready.
    for site in ["north", "south"] {
        eventually(LIMIT, &format!("{site} live"), || async {
            (central.site_state(site).await.as_deref() == Some("live")).then_some(())
        })
        .await;
    }
    eventually(LIMIT, "central ready", || async {
        (http(&central.addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;

    // A /ws client (the wall's feed) sees both hotlines, neither STALE.
    let mut ws = wsutil::connect(&central.addr, "").await;
    let mut seq = 0;
    let snap = wsutil::until(&mut ws, &mut seq, LIMIT, "the snapshot", |v| {
        v["type"] == "snapshot"
    })
    .await;
    for q in ["north/hotline", "south/hotline"] {
        let view = wsutil::queue(&snap, q).unwrap_or_else(|| panic!("{q}: {snap}"));
        assert!(view.get("site_stale").is_none(), "{view}");
    }

    // The central wall groups the tiles by site, each under its heading,
    // the site's name left off the tile (Chromium; skipped loudly without).
    let mut wall = browser::launch(&format!("http://{}/", central.addr)).await;
    if let Some((_, page)) = wall.as_mut() {
        page.until(GROUPS, Duration::from_secs(10), |v| {
            v.as_str() == Some("H:north|T:north/hotline=hotline|H:south|T:south/hotline=hotline")
        })
        .await;
    }

    // South's instance dies. Within stale_after (10 s, plus the half-second
    // check) the central instance calls south STALE everywhere; north,
    // quiet since its morning but alive, stays live.
    south.sigkill();
    let killed = Instant::now();
    eventually(Duration::from_secs(30), "south STALE", || async {
        (central.site_state("south").await.as_deref() == Some("stale")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(12),
        "south turned STALE after {took:?}"
    );
    assert_eq!(central.site_state("north").await.as_deref(), Some("live"));
    let sites = central.get("/api/v1/sites").await.unwrap();
    assert_eq!(sites["stale"], serde_json::json!(["south"]));
    // The gauge and /readyz follow within their half-second check.
    let m = eventually(Duration::from_secs(3), "the stale gauge", || async {
        let m = central.metrics().await;
        m.contains("acd_cluster_site_stale{site=\"south\"} 1")
            .then_some(m)
    })
    .await;
    assert!(
        m.contains("acd_cluster_site_stale{site=\"north\"} 0"),
        "{m}"
    );
    let r = eventually(Duration::from_secs(3), "/readyz 503", || async {
        let r = http(&central.addr, "GET", "/readyz", None, "").await;
        (r.status == 503).then_some(r)
    })
    .await;
    assert!(
        r.body.contains("site:south") && r.body.contains("STALE"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("site:north"), "{}", r.body);
    // The last figures south sent stay on the wall (marked stale, not gone).
    let q = central.queue_with("south/hotline", 25).await;
    assert!(q["site_stale"]["last_message_at"].is_string(), "{q}");
    // /ws carries it in the views: south's queue says STALE (with when its
    // stream last stored anything), north's does not.
    let d = wsutil::until(&mut ws, &mut seq, LIMIT, "south STALE over /ws", |v| {
        wsutil::queue(v, "south/hotline").is_some_and(|q| q["site_stale"].is_object())
    })
    .await;
    assert!(
        wsutil::queue(&d, "north/hotline").is_none_or(|q| q.get("site_stale").is_none()),
        "{d}"
    );
    // On the wall: south's heading says STALE, its tile is dimmed, and the
    // centre-wide summary says it lacks south.
    if let Some((_b, page)) = wall.as_mut() {
        page.until(STALE_ON_WALL, Duration::from_secs(8), |v| {
            v.as_str() == Some("south|south/hotline|true")
        })
        .await;
        page.screenshot(Path::new("test-output/wall-sites.png"))
            .await;
    }
}

/// The tiles' box in order: `H:<site>` for a heading, `T:<queue>=<shown>`
/// for a tile.
const GROUPS: &str = r##"[...document.querySelectorAll("#tiles > *")].map((e) =>
  e.classList.contains("site-head") ? "H:" + e.dataset.site
  : "T:" + e.dataset.queue + "=" + (e.querySelector("h2") || {}).textContent).join("|")"##;

/// Stale headings, dimmed tiles, and whether the summary names south.
const STALE_ON_WALL: &str = r#"[
  [...document.querySelectorAll(".site-head.stale")].map((e) => e.dataset.site).join(","),
  [...document.querySelectorAll(".tile.site-stale")].map((e) => e.dataset.queue).join(","),
  String(document.getElementById("summary").textContent.includes("south"))
].join("|")"#;

/// A site that ran as one process (engine checkpoint in its storage) and is
/// then started in cluster mode on the same storage: the stream replays the
/// day from its start, so the old checkpoint must not be restored on top
/// (it would count every call twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_process_checkpoint_is_not_counted_again_in_cluster_mode() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("north.jsonl");
    std::fs::write(&feed, morning(30)).unwrap();
    let source = format!(
        "[[sources]]\nname = \"pbx\"\nkind = \"json\"\npath = \"{}\"\nfollow = true\n",
        feed.display()
    );
    let mut single = Instance::start(dir.path(), "north", &source);
    single.up().await;
    single.queue_with("hotline", 30).await;
    // A checkpoint is written every 200 ms; let a few pass.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    single.sigkill();

    let clustered = Instance::start(
        dir.path(),
        "north",
        &format!(
            "{source}[cluster]\nnats = [\"{}\"]\nsite = \"north\"\ninstance = \"north-1\"\nlease_ttl = \"2s\"\n",
            server.url()
        ),
    );
    clustered.up().await;
    clustered.queue_with("hotline", 30).await;
    // Caught up with the stream (the whole file is in it), still 30.
    eventually(LIMIT, "caught up", || async {
        let m = clustered.metrics().await;
        (m.contains("acd_cluster_caught_up{site=\"north\"} 1")
            && !m.contains("acd_cluster_stream_applied_sequence{site=\"north\"} 0\n"))
        .then_some(())
    })
    .await;
    let q = clustered.queue_with("hotline", 30).await;
    assert_eq!(q["windows"]["today"]["abandoned"], 6);
    let log = std::fs::read_to_string(&clustered.log).unwrap();
    assert!(log.contains("count them twice"), "{log}");
}

/// `acd_source_events_total{source="cluster:<site>"}`: stream messages the
/// instance read from the site's stream since it started.
async fn read_from(i: &Instance, site: &str) -> Option<u64> {
    let m = i.metrics().await;
    let key = format!("acd_source_events_total{{source=\"cluster:{site}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// `acdmon replay` of one site's feed (the single-process figures).
fn replay(dir: &Path, feed: &Path) -> Vec<Value> {
    let cfg = dir.join("replay.toml");
    std::fs::write(&cfg, "[time]\nzone = \"UTC\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(feed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["queues"].as_array().unwrap().clone()
}

/// The central instance is restarted at midday (an upgrade, a crash):
/// it restores its engine checkpoint and resumes each site's stream right
/// after where the checkpoint's figures end, instead of reading the whole
/// day of every site again. While it was down north took more calls,
/// south none. Once back, it shows both hotlines with the figures it showed
/// before plus north's new calls, equal to each site's own and to a single
/// replay of each site's feed; and it read nothing of south's stream (all
/// of it was in the checkpoint) and only north's new messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_instance_restarted_mid_day_resumes_each_site_after_its_checkpoint() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (north_feed, south_feed) = (
        dir.path().join("north.jsonl"),
        dir.path().join("south.jsonl"),
    );
    std::fs::write(&north_feed, morning(40)).unwrap();
    std::fs::write(&south_feed, morning(25)).unwrap();
    let north = Instance::site(dir.path(), "north", &server.url(), &north_feed);
    let south = Instance::site(dir.path(), "south", &server.url(), &south_feed);
    let central_cfg = format!(
        "[cluster]\nnats = [\"{}\"]\nsite = \"central\"\nsites = [\"north\", \"south\"]\nstale_after = \"10s\"\n",
        server.url()
    );
    let mut central = Instance::start(dir.path(), "central", &central_cfg);
    for i in [&north, &south, &central] {
        i.up().await;
    }
    let before_south = central.queue_with("south/hotline", 25).await;
    central.queue_with("north/hotline", 40).await;
    // (counted every 250 ms)
    eventually(LIMIT, "south's morning read from its stream", || async {
        read_from(&central, "south").await.filter(|n| *n >= 1)
    })
    .await;
    // A checkpoint is written every 200 ms; let a few pass, then kill it.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    central.sigkill();

    // Meanwhile north takes 15 more calls.
    let more: String = morning(55)
        .lines()
        .filter(|l| (40..55).any(|i| l.contains(&format!("\"c{i}\""))))
        .map(|l| format!("{l}\n"))
        .collect();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&north_feed)
            .unwrap();
        f.write_all(more.as_bytes()).unwrap();
    }
    let own_north = north.queue_with("hotline", 55).await;
    let own_south = south.queue_with("hotline", 25).await;

    let central = Instance::start(dir.path(), "central", &central_cfg);
    central.up().await;
    let c_north = central.queue_with("north/hotline", 55).await;
    let c_south = central.queue_with("south/hotline", 25).await;
    // Caught up with both streams, still the same figures: nothing twice.
    eventually(LIMIT, "central ready", || async {
        (http(&central.addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;
    let c_north_now = central.queue_with("north/hotline", 55).await;
    let c_south_now = central.queue_with("south/hotline", 25).await;
    assert_eq!(c_north["windows"]["today"], c_north_now["windows"]["today"]);
    assert_eq!(c_south["windows"]["today"], c_south_now["windows"]["today"]);
    assert_eq!(
        before_south["windows"]["today"],
        c_south["windows"]["today"]
    );
    let north_replay = replay(dir.path(), &north_feed);
    let south_replay = replay(dir.path(), &south_feed);
    let find = |qs: &[Value]| {
        qs.iter()
            .find(|q| q["name"] == "hotline" || q["queue"] == "hotline")
            .cloned()
            .unwrap()
    };
    for (own, central, replayed) in [
        (&own_north, &c_north, find(&north_replay)),
        (&own_south, &c_south, find(&south_replay)),
    ] {
        assert_eq!(own["windows"]["today"], central["windows"]["today"]);
        assert_eq!(replayed["windows"]["today"], central["windows"]["today"]);
        assert_eq!(own["agents"], central["agents"]);
    }
    assert_eq!(c_north["windows"]["today"]["abandoned"], 11);

    // It resumed: nothing of south's stream read again, only north's new
    // messages (a replay of the day would read south's morning again).
    assert_eq!(read_from(&central, "south").await, Some(0));
    let log = std::fs::read_to_string(&central.log).unwrap();
    assert!(
        log.contains("restored today's figures from the engine checkpoint"),
        "{log}"
    );
    assert!(
        log.contains("resuming the site's stream after the restored checkpoint"),
        "{log}"
    );
}
