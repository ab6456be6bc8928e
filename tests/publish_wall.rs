//! The live wall in a real browser: headless Chromium, driven over the
//! DevTools protocol (tokio-tungstenite), loads `/` from a running daemon.
//! The tiles must show the figures of `/api/v1/queues`, and an event posted
//! to the daemon must show on the page within a second, without a reload.
//! Saves `test-output/wall.png`. Skips loudly when Chromium is not installed
//! (`scripts/install-test-deps.sh` installs it).

mod browser;
mod wsutil;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use browser::{Page, launch};
use serde_json::{Value, json};
use wsutil::support::{self, eventually};
use wsutil::*;

/// Stands in for the escalation ladder (another module): once hotline has
/// four callers waiting, it reports stage 5 with an agent it signed in and
/// advice waiting for a manager, as the ladder does through the engine.
struct StandInLadder {
    done: bool,
}

impl acdmon::engine_thread::Observer for StandInLadder {
    fn before_publish(
        &mut self,
        engine: &mut acdmon::state::Engine,
    ) -> Vec<Arc<acdmon::escalation::Entry>> {
        use acdmon::escalation::{ActionRecord, Direction, Entry};
        use acdmon::state::view::EscalationStatus;
        let Some(q) = engine.find_queue("hotline") else {
            return Vec::new();
        };
        if self.done || engine.figures(q).waiting < 4.0 {
            return Vec::new();
        }
        self.done = true;
        let now = engine.now();
        engine.set_escalation(
            q,
            Some(EscalationStatus {
                stage: 5,
                stage_name: "extend-shifts".into(),
                since: now,
                signed_in: vec!["a1".into()],
                pending: vec![42],
            }),
        );
        vec![Arc::new(Entry {
            id: 42,
            ts: now,
            queue: "hotline".into(),
            stage: 5,
            stage_name: "extend-shifts".into(),
            direction: Direction::Up,
            reason: "waiting=4 > 3 for 1m".into(),
            mode: "advise".into(),
            actions: vec![ActionRecord {
                kind: "advise".into(),
                agent: None,
                target_queue: Some("hotline".into()),
                result: "pending".into(),
                detail: Some("Extend shifts to add seats".into()),
                seats: None,
                at: None,
            }],
            ladder: Some("stand-in".into()),
            decision: None,
        })]
    }
}

async fn waiting(page: &mut Page) -> String {
    page.eval(
        "document.querySelector('article[data-queue=hotline] [data-field=waiting]').textContent",
    )
    .await
    .as_str()
    .unwrap_or("")
    .to_string()
}

/// A TCP relay between the browser and the daemon that the test can cut
/// and restore: a network outage, seen from the wall.
struct Relay {
    addr: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        use std::sync::atomic::Ordering;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused, in effect
                }
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                conns2.lock().unwrap().push(h.abort_handle());
            }
        });
        Relay { addr, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What the page shows per tile, as text.
const READ_TILES: &str = r#"JSON.stringify({
  live: document.getElementById('conn').textContent,
  banner: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
  agentsRows: document.querySelectorAll('#agents tr').length,
  tiles: [...document.querySelectorAll('article.tile')].map(t => {
    const f = (n) => { const e = t.querySelector(`[data-field="${n}"]`); return e ? e.textContent : null; };
    return { queue: t.dataset.queue, waiting: f('waiting'), sl: f('service_level'),
      available: f('agents.available'), on_call: f('agents.on_call'), paused: f('agents.paused'),
      logged_in: f('agents.logged_in'), offered: f('today.offered'), stage: t.querySelector('[data-field=stage]').dataset.value };
  })
})"#;

fn pct(x: &Value) -> String {
    match x.as_f64() {
        None => "\u{2013}".into(),
        Some(v) => format!("{}%", (v * 100.0).round() as i64),
    }
}

async fn tiles(page: &mut Page) -> Value {
    let s = page.eval(READ_TILES).await;
    serde_json::from_str(s.as_str().unwrap_or("{}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_the_api_figures_and_moves_with_events() {
    let d = daemon_with(
        "wall_title = \"Contact centre <floor 3>\"",
        "[[queues]]\nname = \"hotline\"\n[[queues]]\nname = \"billing\"\nsl_threshold = \"30s\"\n\
         [[agents]]\nid = \"a1\"\nname = \"Li Na\"\n[[agents]]\nid = \"a2\"\nname = \"Wang Wei\"\n",
        vec![Box::new(StandInLadder { done: false })],
    )
    .await;
    let now = now_ms();
    let mut seed = String::new();
    for (i, ago) in [95_000, 40_000, 5_000].iter().enumerate() {
        seed.push_str(&format!(
            "{{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"h{i}\",\"queue\":\"hotline\"}}\n",
            now - ago
        ));
    }
    seed.push_str(&format!(
        "{{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"b1\",\"queue\":\"billing\"}}\n\
         {{\"ts\":{now},\"type\":\"call_answered\",\"call\":\"b1\",\"queue\":\"billing\",\"agent\":\"a2\"}}\n\
         {{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"b2\",\"queue\":\"billing\"}}\n\
         {{\"ts\":{now},\"type\":\"call_abandoned\",\"call\":\"b2\",\"queue\":\"billing\"}}\n",
        now - 10_000,
        now - 60_000
    ));
    seed.push_str(&agent("a1", "available", "hotline"));
    seed.push_str(&format!(
        "{{\"ts\":{now},\"type\":\"agent_state\",\"agent\":\"a3\",\"state\":\"paused\",\"reason\":\"lunch\",\"queue\":\"hotline\"}}\n"
    ));
    post(&d.addr, &seed).await;
    let api_queues = || async {
        let r = support::http(&d.addr, "GET", "/api/v1/queues", Some(READ), "").await;
        serde_json::from_str::<Value>(&r.body).ok()
    };
    eventually(Duration::from_secs(5), "seed applied", || async {
        let v = api_queues().await?;
        v.as_array()?
            .iter()
            .any(|q| q["queue"] == "hotline" && q["waiting"] == 3 && q["agents"]["paused"] == 1)
            .then_some(())
    })
    .await;

    // Without the token, the wall asks for it.
    let r = support::http(&d.addr, "GET", "/", None, "").await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("read token"));

    let relay = Relay::start(d.addr.clone()).await;
    let url = format!("http://{}/?token={READ}&admin={ADMIN}", relay.addr);
    let Some((_browser, mut page)) = launch(&url).await else {
        return;
    };
    let shown = {
        let start = Instant::now();
        loop {
            let t = tiles(&mut page).await;
            if t["live"] == "live"
                && t["tiles"].as_array().is_some_and(|a| a.len() == 2)
                && t["agentsRows"].as_u64().unwrap_or(0) >= 3
            {
                break t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the wall did not come up: {t}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let title = page.eval("document.title").await;
    assert_eq!(
        title, "Contact centre <floor 3>",
        "the title is text, not markup"
    );

    // Tiles show the API's figures.
    let api = api_queues().await.unwrap();
    for q in api.as_array().unwrap() {
        let name = q["queue"].as_str().unwrap();
        let t = shown["tiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["queue"] == name)
            .unwrap_or_else(|| panic!("no tile for {name}: {shown}"));
        let a = &q["agents"];
        assert_eq!(t["waiting"], q["waiting"].to_string(), "{name} waiting");
        assert_eq!(t["available"], a["available"].to_string(), "{name}");
        assert_eq!(t["on_call"], a["on_call"].to_string(), "{name}");
        assert_eq!(t["paused"], a["paused"].to_string(), "{name}");
        assert_eq!(t["logged_in"], a["logged_in"].to_string(), "{name}");
        assert_eq!(
            t["sl"],
            pct(&q["windows"]["rolling"]["service_level"]),
            "{name} SL"
        );
        assert_eq!(
            t["offered"],
            q["windows"]["today"]["offered"].to_string(),
            "{name}"
        );
        assert_eq!(t["stage"], "0");
    }
    assert!(shown["banner"].is_null(), "no banner while live: {shown}");

    // An event reaches the page within a second, without a reload.
    let before = shown["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["queue"] == "hotline")
        .unwrap()["waiting"]
        .as_str()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    page.eval("window.__noReload = 1").await;
    let sent = Instant::now();
    post(&d.addr, &enqueue("hotline", "live-1")).await;
    loop {
        let w = page
            .eval("document.querySelector('article[data-queue=hotline] [data-field=waiting]').textContent")
            .await;
        if w.as_str() == Some(&(before + 1).to_string()) {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "the wall still shows {w} a second after the event"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latency = sent.elapsed();
    assert_eq!(page.eval("window.__noReload").await, 1, "the page reloaded");
    eprintln!("event to wall: {latency:?}");

    // The agent board: names, states, pause reasons.
    let board = page
        .eval("[...document.querySelectorAll('#agents tr')].map(r => r.textContent).join('|')")
        .await;
    let board = board.as_str().unwrap();
    assert!(
        board.contains("Li Na") && board.contains("available"),
        "{board}"
    );
    assert!(board.contains("lunch"), "{board}");

    // The ladder's stage, who it signed in, and its advice with buttons.
    let esc = r#"JSON.stringify((() => {
      const t = document.querySelector('article[data-queue=hotline]');
      const a = t.querySelector('[data-advice="42"]');
      return { stage: t.querySelector('[data-field=stage]').dataset.value,
        stageText: t.querySelector('[data-field=stage]').textContent,
        who: (t.querySelector('[data-field=signed_in]') || {}).textContent,
        advice: a ? a.textContent : null, approve: !!(a && a.querySelector('button.approve')) };
    })())"#;
    let start = Instant::now();
    let e = loop {
        let e: Value = serde_json::from_str(page.eval(esc).await.as_str().unwrap()).unwrap();
        if e["stage"] == "5" && !e["advice"].is_null() {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no escalation shown: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        e["stageText"].as_str().unwrap().contains("extend-shifts"),
        "{e}"
    );
    assert_eq!(e["who"], "Li Na");
    assert!(
        e["advice"]
            .as_str()
            .unwrap()
            .contains("Extend shifts to add seats"),
        "{e}"
    );
    assert_eq!(e["approve"], true, "an admin sees the buttons");
    let metrics = support::http(&d.addr, "GET", "/metrics", None, "")
        .await
        .body;
    assert!(metrics.contains("acd_escalation_stage{queue=\"hotline\"} 5"));

    let shot = page
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-output");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("wall.png"), png).unwrap();

    // Approve calls POST /api/v1/escalations/42/approve with the admin
    // token; the page reports the answer (the ladder's routes decide it).
    page.eval("document.querySelector('[data-advice=\"42\"] button.approve').click()")
        .await;
    let start = Instant::now();
    loop {
        let note = page
            .eval("(document.querySelector('[data-advice=\"42\"] .act-note') || {}).textContent || ''")
            .await;
        let note = note.as_str().unwrap_or("").to_string();
        if note == "approved" || note.starts_with("failed (") {
            eprintln!("approve answered: {note}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "approve: {note}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The network drops: the wall says so, keeps its figures, reconnects
    // with backoff and resumes with ?since (a delta, not a new snapshot).
    let before = waiting(&mut page).await;
    let snapshots_before = page.eval("window.acdmonWall.snapshots").await;
    relay.cut();
    let start = Instant::now();
    let banner = loop {
        let b = page
            .eval("(b => b.hidden ? '' : b.textContent)(document.getElementById('banner'))")
            .await;
        let b = b.as_str().unwrap_or("").to_string();
        if b.contains("Connection lost") {
            break b;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "no banner: {b:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(banner.contains("not live"), "{banner}");
    assert_eq!(waiting(&mut page).await, before, "figures are kept");
    post(&d.addr, &enqueue("hotline", "during-outage")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.restore();
    let want = (before.parse::<u32>().unwrap() + 1).to_string();
    let start = Instant::now();
    loop {
        let s: Value = serde_json::from_str(
            page.eval(
                "JSON.stringify({live: document.getElementById('conn').textContent, \
                 banner: document.getElementById('banner').hidden, \
                 snapshots: window.acdmonWall.snapshots})",
            )
            .await
            .as_str()
            .unwrap(),
        )
        .unwrap();
        if s["live"] == "live" && s["banner"] == true && waiting(&mut page).await == want {
            assert_eq!(
                s["snapshots"], snapshots_before,
                "resumed with ?since (deltas), not a new snapshot: {s}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not recover: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("recovered after the outage in {:?}", start.elapsed());
}

/// With the real ladder in advise mode: a backed-up queue gets a proposal on
/// the wall; the manager approves it there; the ladder takes the step and
/// the wall shows the stage, with the proposal gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_approves_advice_on_the_wall() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nread_token = \"{READ}\"\nadmin_token = \"{ADMIN}\"\n\
         [storage]\npath = {:?}\n\
         [[queues]]\nname = \"hotline\"\nladder = \"floor\"\n\
         [[ladders]]\nname = \"floor\"\nmode = \"advise\"\nrelease_when = \"waiting < 2\"\n\
         [[ladders.stages]]\nname = \"extend-shifts\"\nwhen = \"waiting > 3\"\nfor = \"0s\"\n\
         advise = \"Extend shifts to add seats\"\n",
        dir.path().join("a.sqlite").display().to_string()
    );
    let cfg = acdmon::config::Config::parse("t.toml", &text).expect("config");
    let (_d, addr) = wsutil::support::start_daemon(cfg).await;

    let url = format!("http://{addr}/?token={READ}&admin={ADMIN}");
    let Some((_browser, mut page)) = launch(&url).await else {
        return;
    };
    let start = Instant::now();
    while page
        .eval("document.getElementById('conn').textContent")
        .await
        != "live"
    {
        assert!(start.elapsed() < Duration::from_secs(15), "wall not live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut calls = String::new();
    for i in 0..4 {
        calls.push_str(&enqueue("hotline", &format!("s{i}")));
    }
    post(&addr, &calls).await;

    let advice = r#"(() => { const a = document.querySelector('article[data-queue=hotline] .advice');
      return a ? a.textContent : ''; })()"#;
    let start = Instant::now();
    let shown = loop {
        let t = page.eval(advice).await.as_str().unwrap_or("").to_string();
        if t.contains("Extend shifts") && t.contains("Approve") {
            break t;
        }
        if start.elapsed() > Duration::from_secs(5) {
            let q = support::http(&addr, "GET", "/api/v1/queues/hotline", Some(READ), "").await;
            let l = support::http(&addr, "GET", "/api/v1/escalations", Some(READ), "").await;
            panic!("no proposal: {t:?}\nqueue: {}\nlog: {}", q.body, l.body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(shown.contains("extend-shifts"), "{shown}");

    page.eval(
        "document.querySelector('article[data-queue=hotline] .advice button.approve').click()",
    )
    .await;
    let start = Instant::now();
    loop {
        let s: Value = serde_json::from_str(
            page.eval(
                "JSON.stringify({advice: !!document.querySelector('article[data-queue=hotline] .advice'), \
                 stage: document.querySelector('article[data-queue=hotline] [data-field=stage]').textContent, \
                 inForce: (document.querySelector('article[data-queue=hotline] [data-field=advice-in-force]') || {}).textContent || ''})",
            )
            .await
            .as_str()
            .unwrap(),
        )
        .unwrap();
        if s["advice"] == false
            && s["stage"].as_str().unwrap().contains("extend-shifts")
            && s["inForce"]
                .as_str()
                .unwrap()
                .contains("Extend shifts to add seats")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "approval not shown: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The log says who decided what.
    let r = support::http(
        &addr,
        "GET",
        "/api/v1/escalations?queue=hotline",
        Some(READ),
        "",
    )
    .await;
    let log: Value = serde_json::from_str(&r.body).unwrap();
    let e = log.as_array().unwrap().last().unwrap();
    assert_eq!(e["decision"]["result"], "approved", "{e}");
    // The approved advice still says what was advised.
    assert_eq!(e["actions"][0]["kind"], "advise", "{e}");
    assert_eq!(e["actions"][0]["result"], "approved", "{e}");
    assert!(
        e["actions"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Extend shifts to add seats")),
        "{e}"
    );
}

/// Holds the engine thread the first time it sees agent `jam`, until the
/// test releases it (a stand-in for whatever could stall the engine).
struct Jam {
    release: std::sync::mpsc::Receiver<()>,
    jammed: bool,
}

impl acdmon::engine_thread::Observer for Jam {
    fn after_event(&mut self, engine: &mut acdmon::state::Engine, _queue: Option<usize>) {
        if !self.jammed && engine.find_agent("jam").is_some() {
            self.jammed = true;
            let _ = self.release.recv();
        }
    }
}

const BANNER: &str = r#"(() => { const b = document.getElementById("banner");
  return b.hidden ? "" : b.className + "|" + b.textContent; })()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_a_red_banner_while_the_engine_is_stalled() {
    let (release, rx) = std::sync::mpsc::channel();
    let d = daemon_with(
        "engine_stall_after = \"1s\"",
        "[[queues]]\nname = \"hotline\"\n",
        vec![Box::new(Jam {
            release: rx,
            jammed: false,
        })],
    )
    .await;
    let url = format!("http://{}/?token={READ}", d.addr);
    let Some((_browser, mut page)) = launch(&url).await else {
        return;
    };
    let start = Instant::now();
    while page
        .eval("window.acdmonWall && window.acdmonWall.connected")
        .await
        != true
        || page.eval(BANNER).await != ""
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the wall did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The engine jams: within the stall limit plus one poll, the banner
    // says why, in red, while the connection itself stays live.
    post(
        &d.addr,
        &format!(
            "{{\"ts\":{},\"type\":\"agent_state\",\"agent\":\"jam\",\"state\":\"available\"}}\n",
            now_ms()
        ),
    )
    .await;
    let start = Instant::now();
    let shown = loop {
        let b = page.eval(BANNER).await;
        let text = b.as_str().unwrap_or("").to_string();
        if text.starts_with("health|Not ready") {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no banner: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        shown.contains("engine stalled: no batch finished"),
        "{shown}"
    );

    // It clears when the engine moves again.
    release.send(()).unwrap();
    let start = Instant::now();
    while page.eval(BANNER).await != "" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the banner stayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The shift handover on the wall: a shift ended while the daemon was down,
/// so its record is written late on start; the wall shows it in a banner,
/// the incoming supervisor acknowledges it there (their name recorded), and
/// adds a note to the duty log from the wall's box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_supervisor_acknowledges_the_handover_on_the_wall() {
    let dir = tempfile::tempdir().unwrap();
    let now = acdmon::time::Ts::now();
    let minute = now.0.rem_euclid(86_400_000) / 60_000;
    let end = minute / 15 * 15 - 15;
    let hhmm = |m: i64| format!("{:02}:{:02}", m.rem_euclid(1440) / 60, m.rem_euclid(60));
    let text = format!(
        "[server]\nread_token = \"{READ}\"\nadmin_token = \"{ADMIN}\"\n\
         [storage]\npath = {:?}\n[time]\nzone = \"UTC\"\n[handover]\nshow_after = \"1h\"\n\
         [[queues]]\nname = \"hotline\"\n\
         [[shifts]]\nname = \"early\"\nfrom = \"{}\"\nto = \"{}\"\n\
         [[shifts]]\nname = \"late\"\nfrom = \"{}\"\nto = \"{}\"\n",
        dir.path().join("a.sqlite").display().to_string(),
        hhmm(end - 60),
        hhmm(end),
        hhmm(end),
        hhmm(end + 720),
    );
    let cfg = acdmon::config::Config::parse("t.toml", &text).expect("config");
    {
        let store = acdmon::store::Store::open(&cfg.storage.path).unwrap();
        let s = acdmon::time::Ts(now.0 - now.0.rem_euclid(60_000) - (minute - end + 30) * 60_000);
        let t = acdmon::state::window::Tally {
            answered: 12,
            answered_in_sl: 9,
            ..Default::default()
        };
        store
            .insert_intervals(&[acdmon::state::IntervalRecord {
                queue: "hotline".into(),
                start: s,
                end: s.plus_ms(900_000),
                window: acdmon::state::kpi::WindowView::from_tally(&t, Default::default()),
                staffed_agents: 3.0,
                required_agents: Some(3),
                observed_from: s,
            }])
            .unwrap();
    }
    let (_d, addr) = wsutil::support::start_daemon(cfg).await;
    // The late record is written on the engine's first tick.
    eventually(Duration::from_secs(10), "the handover record", || async {
        let v = get_json_auth(&addr, "/api/v1/handovers").await?;
        (!v.as_array()?.is_empty()).then_some(())
    })
    .await;

    let url = format!("http://{addr}/?token={READ}&admin={ADMIN}");
    let Some((_browser, mut page)) = launch(&url).await else {
        return;
    };
    let banner = "(() => { const h = document.getElementById('handover'); return h.hidden ? '' : h.textContent; })()";
    let start = Instant::now();
    let shown = loop {
        let t = page.eval(banner).await.as_str().unwrap_or("").to_string();
        if t.contains("Acknowledge") {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no banner: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(shown.contains("early"), "{shown}");
    assert!(shown.contains("hotline offered 12, SL 75.0%"), "{shown}");

    page.eval("window.prompt = () => 'Wang Fang'; document.getElementById('handover-ack').click()")
        .await;
    let start = Instant::now();
    loop {
        let t = page.eval(banner).await.as_str().unwrap_or("").to_string();
        if t.contains("acknowledged by Wang Fang") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not acknowledged: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = get_json_auth(&addr, "/api/v1/handovers").await.unwrap();
    assert_eq!(v[0]["ack"]["by"], "Wang Fang", "{v}");

    // The duty-log box, shown to an admin.
    page.eval(
        "document.getElementById('duty-text').value = 'Trunk 3 noisy, carrier ticket 881'; \
         document.getElementById('duty-by').value = 'Wang Fang'; \
         document.querySelector('#duty button').click()",
    )
    .await;
    let log = eventually(Duration::from_secs(5), "the duty-log entry", || async {
        let v = get_json_auth(&addr, "/api/v1/duty-log?since=0").await?;
        (!v.as_array()?.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(log[0]["text"], "Trunk 3 noisy, carrier ticket 881");
    assert_eq!(log[0]["by"], "Wang Fang");
}

async fn get_json_auth(addr: &str, path: &str) -> Option<Value> {
    let r = support::http(addr, "GET", path, Some(READ), "").await;
    (r.status == 200).then(|| serde_json::from_str(&r.body).ok())?
}

/// The last hour on each tile: the floor manager sees hotline's queue build
/// up minute by minute, its SL under the dashed target line, and an amber
/// mark where the ladder stepped up. A new minute appears without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparklines_show_the_hour_with_the_target_line_and_stage_marks() {
    // A producer whose clock runs ahead: the engine's clock is moved to
    // each group's time before it is posted (the daemon never lets one
    // event's word move it; see docs/failure-modes.md), so whole minutes
    // of event time pass in a second of the test.
    let ahead = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let d = daemon_with(
        "",
        "[[queues]]\nname = \"hotline\"\n",
        vec![
            Box::new(EventClock(ahead.clone())),
            Box::new(StandInLadder { done: false }),
        ],
    )
    .await;
    let base = (now_ms() / 60_000 + 1) * 60_000;
    let clock_to = |ms: i64| {
        let ahead = ahead.clone();
        async move { wsutil::clock_to(&ahead, base + ms).await }
    };
    let ev = |ms: i64, body: &str| format!("{{\"ts\":{},{body}}}\n", base + ms);
    let enq = |ms: i64, call: &str| {
        ev(
            ms,
            &format!("\"type\":\"call_enqueued\",\"call\":\"{call}\",\"queue\":\"hotline\""),
        )
    };
    clock_to(10_000).await;
    post(
        &d.addr,
        &(enq(-1_000, "h0") + &enq(10_000, "h1") + &enq(10_000, "h2") + &enq(10_000, "h3")),
    )
    .await;
    // Four waiting: the stand-in ladder reports stage 5.
    eventually(Duration::from_secs(5), "stage 5", || async {
        let r = support::http(&d.addr, "GET", "/api/v1/queues/hotline", Some(READ), "").await;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        (v["escalation"]["stage"] == 5).then_some(())
    })
    .await;
    clock_to(70_000).await;
    post(
        &d.addr,
        &ev(
            70_000,
            "\"type\":\"call_answered\",\"call\":\"h0\",\"queue\":\"hotline\",\"agent\":\"a1\"",
        ),
    )
    .await;
    clock_to(130_000).await;
    post(
        &d.addr,
        &ev(130_000, "\"type\":\"agent_state\",\"agent\":\"a2\",\"state\":\"available\",\"queue\":\"hotline\""),
    )
    .await;
    eventually(Duration::from_secs(5), "three minutes sampled", || async {
        let r = support::http(
            &d.addr,
            "GET",
            "/api/v1/queues/hotline/trend",
            Some(READ),
            "",
        )
        .await;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        (v["samples"].as_array()?.len() >= 3).then_some(())
    })
    .await;
    let url = format!("http://{}/?token={READ}", d.addr);
    let Some((_browser, mut page)) = launch(&url).await else {
        return;
    };
    let read = r#"(() => {
      const t = document.querySelector('article[data-queue=hotline]');
      const w = t && t.querySelector('svg[data-field=spark-waiting]');
      const s = t && t.querySelector('svg[data-field=spark-sl]');
      if (!w || !s) return '';
      const target = s.querySelector('line.target');
      return JSON.stringify({
        waiting_points: +w.dataset.points, sl_points: +s.dataset.points,
        path: w.querySelector('path').getAttribute('d'),
        target: target ? +target.dataset.target : null,
        target_y: target ? +target.getAttribute('y1') : null,
        marks_up: s.querySelectorAll('line.stage-mark.up').length,
        marks_down: s.querySelectorAll('line.stage-mark.down').length,
      });
    })()"#;
    let mut shown = Value::Null;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let t = page.eval(read).await;
        if let Some(v) = t
            .as_str()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
        {
            shown = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!shown.is_null(), "sparklines did not appear");
    // Minutes base, base+1, base+2 (the daemon may have sampled one more
    // minute before the story began).
    let pts = shown["waiting_points"].as_u64().unwrap();
    assert!((3..=4).contains(&pts), "{shown}");
    assert_eq!(shown["target"], 0.8, "the queue's SL target: {shown}");
    let y = shown["target_y"].as_f64().unwrap();
    assert!(
        y > 2.0 && y < 40.0,
        "the target line lies inside the chart: {shown}"
    );
    assert_eq!(shown["marks_up"], 1, "where stage 5 began: {shown}");
    assert_eq!(
        shown["sl_points"], 1,
        "SL exists only once a call was answered: {shown}"
    );
    // The next minute arrives live.
    clock_to(190_000).await;
    post(
        &d.addr,
        &ev(
            190_000,
            "\"type\":\"agent_state\",\"agent\":\"a2\",\"state\":\"paused\",\"queue\":\"hotline\"",
        ),
    )
    .await;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let t = page.eval(read).await;
        let v: Value = t
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if v["waiting_points"].as_u64() == Some(pts + 1) {
            break;
        }
        assert!(Instant::now() < until, "no new minute on the wall: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The post strip (`[[posts]]`): the front desk shows A holding it, then
/// UNMANNED in red when a1 logs out, then B covering when b1 logs in, each
/// without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_strip_shows_a_breach_and_who_covers() {
    let floor = "[[agents]]\nid = \"a1\"\n[[agents]]\nid = \"b1\"\n\
                 [[posts]]\nname = \"front-desk\"\na = [\"a1\"]\nb = [\"b1\"]\n[adherence]\n";
    let cfg = acdmon::config::Config::parse("t.toml", floor).unwrap();
    let (posts, board) = acdmon::floor::posts::PostsObserver::new(&cfg);
    let (adherence, plan) = acdmon::floor::adherence::AdherenceObserver::new(&cfg).unwrap();
    let d = daemon_set_up(
        "",
        floor,
        acdmon::daemon::Setup {
            floor: acdmon::floor::FloorHandles {
                posts: Some(board),
                adherence: Some(plan),
                ..Default::default()
            },
            ..acdmon::daemon::Setup::observing(vec![Box::new(posts), Box::new(adherence)])
        },
    )
    .await;
    post(&d.addr, &agent("a1", "available", "hotline")).await;
    // a1 is planned on the phone for the hour around now.
    let now = now_ms();
    let iso = |ms: i64| acdmon::time::Ts(ms).rfc3339();
    let plan = format!(
        "a1,{},{},phone\n",
        iso(now - 1_800_000),
        iso(now + 1_800_000)
    );
    let r = support::http(&d.addr, "PUT", "/api/v1/schedule", Some(ADMIN), &plan).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let url = format!("http://{}/?token={READ}", d.addr);
    let Some((_browser, mut page)) = launch(&url).await else {
        return;
    };
    let v = post_strip(&mut page, "a").await;
    assert_eq!(v[0], "front-desk");
    assert_eq!(v[2], "front-desk A a1");
    assert_eq!(
        adherence_flag(&mut page, "a1", "in").await,
        "planned: phone"
    );

    post(&d.addr, &agent("a1", "logged_out", "hotline")).await;
    let v = post_strip(&mut page, "unmanned").await;
    assert!(
        v[2].as_str()
            .unwrap()
            .starts_with("front-desk UNMANNED 0:0"),
        "{v}"
    );

    // ... and the agent board flags a1 out of adherence (planned on the
    // phone, logged out).
    let title = adherence_flag(&mut page, "a1", "out").await;
    assert!(
        title.starts_with("planned: phone \u{b7} out of adherence since"),
        "{title}"
    );
    assert!(title.ends_with("why: logged_out"), "{title}");

    post(&d.addr, &agent("b1", "available", "hotline")).await;
    let v = post_strip(&mut page, "b").await;
    assert_eq!(v[2], "front-desk B covers b1");
}

/// Waits until agent `id`'s row on the board has `data-adherence` `want`;
/// returns the row's title.
async fn adherence_flag(page: &mut Page, id: &str, want: &str) -> String {
    let read = format!(
        "JSON.stringify((() => {{ const r = document.querySelector('tr[data-agent=\"{id}\"]'); \
         return r ? [r.dataset.adherence, r.title, r.className] : null; }})())"
    );
    let start = Instant::now();
    loop {
        let s = page.eval(&read).await;
        let v: Value = serde_json::from_str(s.as_str().unwrap_or("null")).unwrap();
        if v[0] == want {
            assert_eq!(
                v[2].as_str().unwrap().contains("adh-out"),
                want == "out",
                "{v}"
            );
            return v[1].as_str().unwrap_or("").to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "agent {id} never showed adherence {want}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the first post of the strip has class `post {want}`; returns
/// `[name, class, text]`.
async fn post_strip(page: &mut Page, want: &str) -> Value {
    const READ_STRIP: &str = "JSON.stringify([...document.querySelectorAll('#posts .post')]\
        .map((e) => [e.dataset.post, e.className, e.textContent]))";
    let start = Instant::now();
    loop {
        let s = page.eval(READ_STRIP).await;
        let v: Value = serde_json::from_str(s.as_str().unwrap_or("[]")).unwrap();
        if v[0][1] == format!("post {want}") {
            return v[0].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the strip never showed {want}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The floor texts come from the wall's locale tables: with `?lang=zh-CN`
/// the post strip and the adherence flag speak Chinese.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_post_strip_and_the_adherence_flag_speak_the_walls_language() {
    let floor = "[[agents]]\nid = \"a1\"\n[[agents]]\nid = \"b1\"\n\
                 [[posts]]\nname = \"front-desk\"\na = [\"a1\"]\nb = [\"b1\"]\n[adherence]\n";
    let cfg = acdmon::config::Config::parse("t.toml", floor).unwrap();
    let (posts, board) = acdmon::floor::posts::PostsObserver::new(&cfg);
    let (adherence, plan) = acdmon::floor::adherence::AdherenceObserver::new(&cfg).unwrap();
    let d = daemon_set_up(
        "",
        floor,
        acdmon::daemon::Setup {
            floor: acdmon::floor::FloorHandles {
                posts: Some(board),
                adherence: Some(plan),
                ..Default::default()
            },
            ..acdmon::daemon::Setup::observing(vec![Box::new(posts), Box::new(adherence)])
        },
    )
    .await;
    post(&d.addr, &agent("a1", "available", "hotline")).await;
    let now = now_ms();
    let iso = |ms: i64| acdmon::time::Ts(ms).rfc3339();
    let plan = format!(
        "a1,{},{},phone\n",
        iso(now - 1_800_000),
        iso(now + 1_800_000)
    );
    let r = support::http(&d.addr, "PUT", "/api/v1/schedule", Some(ADMIN), &plan).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let url = format!("http://{}/?token={READ}&lang=zh-CN", d.addr);
    let Some((_browser, mut page)) = launch(&url).await else {
        return;
    };
    let v = post_strip(&mut page, "a").await;
    assert_eq!(v[2], "front-desk A岗 a1");
    let heading = page
        .eval("document.querySelector('#posts h2').textContent")
        .await;
    assert_eq!(heading, "岗位");
    post(&d.addr, &agent("a1", "logged_out", "hotline")).await;
    let v = post_strip(&mut page, "unmanned").await;
    assert!(
        v[2].as_str().unwrap().starts_with("front-desk 岗位空缺"),
        "{v}"
    );
    let title = adherence_flag(&mut page, "a1", "out").await;
    assert!(
        title.starts_with("排班: phone \u{b7} 未遵从排班，自"),
        "{title}"
    );
    assert!(title.ends_with("原因: logged_out"), "{title}");
}
