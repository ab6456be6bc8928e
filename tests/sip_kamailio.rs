//! End to end with real SIP peers: Kamailio (Debian's package) proxies calls
//! between SIPp callers, a SIPp queue platform, SIPp agent phones and the
//! platform's SIPp dialer, and mirrors every message as HEPv3 (siptrace
//! `trace_mode=1`, with an auth key) to the acdmon HEP collector listening
//! on 127.0.0.1. The test checks the queue events the collector derives and
//! the KPIs the engine computes from them.
//!
//! The floor, in the first seven seconds (T = 3 s):
//! - sales (8001, the platform answers and plays music on hold):
//!   caller A is answered by agent 1001 after about 1.3 s (within T);
//!   caller B is answered by agent 1002 after about 4.5 s (late).
//! - support (8002/8003, early media): caller C listens to the 183 and gives
//!   up after 1.5 s (CANCEL); caller D is rung to agents 1003 and 1004 at
//!   once, 1004 answers after about 1.3 s, 1003's leg is cancelled.
//!
//! Needs `kamailio` and `sipp` (`scripts/install-sip-test-deps.sh`). Without
//! them the test says so loudly and passes; CI installs them first.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acdmon::config::{Config, SourceSpec};
use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::sources::hep::task::{Listeners, run};
use acdmon::sources::{Envelope, RejectCounter, SourceCtx, SourceHealth};
use acdmon::state::Engine;

const AUTH_KEY: &str = "e2e-hep-key";
const MPATHS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/kamailio/modules/",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules/",
    "/usr/lib/kamailio/modules/",
];

fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Children are stopped when the test ends, whatever happens. Each runs in
/// its own process group: Kamailio forks workers, and killing only the main
/// process would orphan them (holding the port). The group gets SIGTERM
/// (Kamailio then stops its workers), then SIGKILL if still there.
struct Procs(Vec<(String, Child)>);

impl Procs {
    fn spawn(&mut self, name: &str, cmd: &mut Command, log: &Path) {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.0.push((name.to_string(), child));
    }
}

fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &self.0 {
            signal_group(c.id(), "-TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for (_, c) in &mut self.0 {
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for (_, c) in &mut self.0 {
            // Workers may outlive the main process briefly: the group, always.
            signal_group(c.id(), "-KILL");
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Sipp<'a> {
    sipp: &'a Path,
    data: &'a Path,
    kam: u16,
}

impl Sipp<'_> {
    fn uas(
        &self,
        scenario: &str,
        port: u16,
        service: &str,
        calls: u32,
        pause_ms: u32,
        keys: &[(&str, &str)],
    ) -> Command {
        let mut c = Command::new(self.sipp);
        c.args(["-sf", &self.data.join(scenario).to_string_lossy()])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &calls.to_string(), "-d", &pause_ms.to_string()])
            .args([
                "-s",
                service,
                "-nostdin",
                "-timeout",
                "30s",
                "-timeout_error",
            ]);
        for (k, v) in keys {
            c.args(["-key", k, v]);
        }
        c
    }

    fn uac(
        &self,
        scenario: &str,
        service: &str,
        pause_ms: u32,
        cid: &str,
        keys: &[(&str, &str)],
    ) -> Command {
        let mut c = Command::new(self.sipp);
        c.arg(format!("127.0.0.1:{}", self.kam))
            .args(["-sf", &self.data.join(scenario).to_string_lossy()])
            .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
            .args(["-m", "1", "-d", &pause_ms.to_string(), "-s", service])
            .args([
                "-cid_str",
                cid,
                "-nostdin",
                "-timeout",
                "30s",
                "-timeout_error",
            ]);
        for (k, v) in keys {
            c.args(["-key", k, v]);
        }
        c
    }
}

fn config_text(hep_port: u16) -> String {
    format!(
        r#"
[time]
zone = "UTC"

[defaults]
sl_threshold = "3s"
short_abandon = "500ms"

[[queues]]
name = "sales"

[[queues]]
name = "support"

[[sources]]
name = "kamailio"
kind = "hep"
listen_udp = "127.0.0.1:{hep_port}"
auth_key = "{AUTH_KEY}"
queue_header = "X-Queue"
correlation_header = "X-Call-Ref"

[[sources.queues]]
pattern = "^8001$"
queue = "sales"
answer = "platform"

[[sources.queues]]
pattern = "^800[23]$"
queue = "support"
answer = "early_media"

[[sources.agents]]
pattern = "^100\\d$"
"#
    )
}

fn describe(t0: i64, e: &Event) -> String {
    let t = e.ts.0 - t0;
    match &e.kind {
        EventKind::CallEnqueued { call, queue, .. } => format!("enqueued {call} {queue} @{t}"),
        EventKind::CallAnswered { call, queue, agent } => {
            format!("answered {call} {queue} {agent} @{t}")
        }
        EventKind::CallAbandoned { call, queue } => format!("abandoned {call} {queue} @{t}"),
        EventKind::CallExited {
            call,
            queue,
            reason,
        } => format!("exited {call} {queue} {} @{t}", reason.as_str()),
        EventKind::CallCompleted { call, queue, agent } => {
            format!("completed {call} {queue} {agent} @{t}")
        }
        EventKind::AgentState {
            agent,
            status,
            queue,
            ..
        } => {
            format!(
                "{agent} {} {} @{t}",
                status.as_str(),
                queue.as_deref().unwrap_or("-")
            )
        }
        other => format!("{other:?} @{t}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_mirrors_a_queue_floor_to_the_collector() {
    let (Some(kamailio), Some(sipp)) = (which("kamailio"), which("sipp")) else {
        eprintln!(
            "\n\n********************************************************************\n\
             SKIPPED tests/sip_kamailio.rs: `kamailio` and/or `sipp` not installed.\n\
             Run scripts/install-sip-test-deps.sh (Debian: kamailio, sip-tester).\n\
             ********************************************************************\n"
        );
        return;
    };
    let Some(mpath) = MPATHS
        .iter()
        .find(|p| Path::new(p).join("siptrace.so").is_file())
    else {
        panic!("kamailio is installed but its siptrace module is not in any of {MPATHS:?}");
    };
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip");
    let work = tempfile::tempdir().unwrap();

    // The collector, configured through the real config loader.
    let hep_port = free_udp_port();
    let cfg = Config::parse("e2e.toml", &config_text(hep_port)).unwrap_or_else(|e| panic!("{e:?}"));
    let SourceSpec::Hep(hep_cfg) = &cfg.sources[0].spec else {
        panic!("hep source not parsed as its own table")
    };
    let listeners = Listeners::bind(hep_cfg).await.unwrap();
    let ingest = hep_cfg.ingest().unwrap();
    let health = SourceHealth::new("kamailio", "hep");
    let rejects = Arc::new(RejectCounter::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let collector = tokio::spawn(run(
        listeners,
        ingest,
        SourceCtx::new("kamailio", tx, health.clone(), rejects.clone()),
    ));
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(env) = rx.recv().await {
            let mut ev = sink.lock().unwrap();
            match env {
                Envelope::Batch { events, .. }
                | Envelope::Positioned { events, .. }
                | Envelope::Checked { events, .. } => ev.extend(events),
                Envelope::Event { event, .. } => ev.push(event),
                _ => {}
            }
        }
    });
    // Ports and the proxy.
    let kam = free_udp_port();
    let (moh, em_cancel, em_answer) = (free_udp_port(), free_udp_port(), free_udp_port());
    let (a1001, a1002, a1003, a1004) = (
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
    );
    let cfg_text = std::fs::read_to_string(data.join("kamailio.cfg"))
        .unwrap()
        .replace("{{KAM_PORT}}", &kam.to_string())
        .replace("{{HEP_PORT}}", &hep_port.to_string())
        .replace("{{MPATH}}", mpath)
        .replace("{{AUTH_KEY}}", AUTH_KEY)
        .replace("{{PLATFORM_MOH}}", &moh.to_string())
        .replace("{{PLATFORM_EM_CANCEL}}", &em_cancel.to_string())
        .replace("{{PLATFORM_EM_ANSWER}}", &em_answer.to_string())
        .replace("{{AGENT_1001}}", &a1001.to_string())
        .replace("{{AGENT_1002}}", &a1002.to_string())
        .replace("{{AGENT_1003}}", &a1003.to_string())
        .replace("{{AGENT_1004}}", &a1004.to_string());
    let kcfg = work.path().join("kamailio.cfg");
    std::fs::write(&kcfg, cfg_text).unwrap();
    let log = |n: &str| work.path().join(format!("{n}.log"));
    let mut procs = Procs(Vec::new());
    procs.spawn(
        "kamailio",
        Command::new(&kamailio)
            .arg("-f")
            .arg(&kcfg)
            .args(["-DD", "-E", "-n", "1"])
            .arg("-Y")
            .arg(work.path())
            .arg("-w")
            .arg(work.path()),
        &log("kamailio"),
    );
    // Ready when its port is taken.
    let started = Instant::now();
    while UdpSocket::bind(("127.0.0.1", kam)).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "kamailio did not start: {}",
            std::fs::read_to_string(log("kamailio")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let s = Sipp {
        sipp: &sipp,
        data: &data,
        kam,
    };
    // The platform and the phones.
    procs.spawn(
        "platform-moh",
        &mut s.uas("uas_answer.xml", moh, "8001", 2, 0, &[]),
        &log("platform-moh"),
    );
    procs.spawn(
        "platform-em-cancel",
        &mut s.uas("uas_early_no_answer.xml", em_cancel, "8002", 1, 0, &[]),
        &log("platform-em-cancel"),
    );
    procs.spawn(
        "platform-em-answer",
        &mut s.uas("uas_early_media.xml", em_answer, "8003", 1, 1800, &[]),
        &log("platform-em-answer"),
    );
    procs.spawn(
        "agent-1001",
        &mut s.uas("uas_answer.xml", a1001, "1001", 1, 1000, &[]),
        &log("agent-1001"),
    );
    procs.spawn(
        "agent-1004",
        &mut s.uas("uas_answer.xml", a1004, "1004", 1, 1000, &[]),
        &log("agent-1004"),
    );
    procs.spawn(
        "agent-1002",
        &mut s.uas("uas_answer.xml", a1002, "1002", 1, 4000, &[]),
        &log("agent-1002"),
    );
    procs.spawn(
        "agent-1003",
        &mut s.uas("uas_no_answer.xml", a1003, "1003", 1, 0, &[]),
        &log("agent-1003"),
    );
    for port in [moh, em_cancel, em_answer, a1001, a1002, a1003, a1004] {
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sipp did not start on {port}: {:?}",
                std::fs::read_dir(work.path())
                    .unwrap()
                    .flatten()
                    .map(|f| (
                        f.file_name(),
                        std::fs::read_to_string(f.path()).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    assert!(health.connected() && health.synced(), "listening is ready");

    // Callers and the platform's dialer, on a timeline (ms from now).
    let plat = [("caller", "platform")];
    let runs: Vec<(u64, &str, Command)> = vec![
        (
            0,
            "caller-A",
            s.uac(
                "uac_caller.xml",
                "8001",
                3500,
                "callerA-%u@e2e",
                &[("caller", "4930111")],
            ),
        ),
        (
            0,
            "caller-B",
            s.uac(
                "uac_caller.xml",
                "8001",
                6000,
                "callerB-%u@e2e",
                &[("caller", "4930222")],
            ),
        ),
        (
            0,
            "caller-C",
            s.uac(
                "uac_caller_cancel.xml",
                "8002",
                1500,
                "callerC-%u@e2e",
                &[("caller", "4930333")],
            ),
        ),
        (
            300,
            "dialer-A",
            s.uac(
                "uac_dialer.xml",
                "1001",
                1500,
                "dialA-%u@e2e",
                &[plat[0], ("queue", "sales"), ("callref", "callerA-1@e2e")],
            ),
        ),
        (
            500,
            "dialer-B",
            s.uac(
                "uac_dialer.xml",
                "1002",
                1000,
                "dialB-%u@e2e",
                &[plat[0], ("queue", "sales"), ("callref", "callerB-1@e2e")],
            ),
        ),
        (
            1000,
            "caller-D",
            s.uac(
                "uac_caller.xml",
                "8003",
                1000,
                "callerD-%u@e2e",
                &[("caller", "4930444")],
            ),
        ),
        (
            1300,
            "dialer-D1",
            s.uac(
                "uac_dialer_cancel.xml",
                "1003",
                1500,
                "dialD1-%u@e2e",
                &[plat[0], ("queue", "support"), ("callref", "callerD-1@e2e")],
            ),
        ),
        (
            1300,
            "dialer-D2",
            s.uac(
                "uac_dialer.xml",
                "1004",
                2000,
                "dialD2-%u@e2e",
                &[plat[0], ("queue", "support"), ("callref", "callerD-1@e2e")],
            ),
        ),
    ];
    let t_start = Instant::now();
    let mut uacs = Procs(Vec::new());
    for (at, name, mut cmd) in runs {
        let due = Duration::from_millis(at);
        if let Some(wait) = due.checked_sub(t_start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        uacs.spawn(name, &mut cmd, &log(name));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, child) in &mut uacs.0 {
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert!(
                    st.success(),
                    "{name} failed ({st}): {}\nkamailio: {}",
                    std::fs::read_to_string(log(name)).unwrap_or_default(),
                    std::fs::read_to_string(log("kamailio")).unwrap_or_default()
                );
                break;
            }
            assert!(Instant::now() < deadline, "{name} did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Let the last mirrored messages arrive (loopback: milliseconds).
    let want = 16;
    let settle = Instant::now();
    while events.lock().unwrap().len() < want && settle.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(procs);
    collector.abort();

    let events = events.lock().unwrap().clone();
    assert!(
        !events.is_empty(),
        "no events: is HEP reaching the collector? kamailio log in {:?}",
        work.path()
    );
    let t0 = events.iter().map(|e| e.ts.0).min().unwrap();
    let story: Vec<String> = events.iter().map(|e| describe(t0, e)).collect();
    eprintln!("events:\n  {}", story.join("\n  "));
    assert!(rejects.all().is_empty(), "rejected: {:?}", rejects.all());

    // The story, call by call (timings checked below, with slack for a
    // loaded machine).
    let find = |pred: &dyn Fn(&EventKind) -> bool| -> Vec<&Event> {
        events.iter().filter(|e| pred(&e.kind)).collect()
    };
    let one = |what: &str, pred: &dyn Fn(&EventKind) -> bool| -> i64 {
        let v = find(pred);
        assert_eq!(
            v.len(),
            1,
            "expected exactly one `{what}`:\n{}",
            story.join("\n")
        );
        v[0].ts.0
    };
    let enq_a = one(
        "A enqueued",
        &|k| matches!(k, EventKind::CallEnqueued { call, queue, .. } if call == "callerA-1@e2e" && queue == "sales"),
    );
    let enq_b = one(
        "B enqueued",
        &|k| matches!(k, EventKind::CallEnqueued { call, queue, .. } if call == "callerB-1@e2e" && queue == "sales"),
    );
    let enq_c = one(
        "C enqueued",
        &|k| matches!(k, EventKind::CallEnqueued { call, queue, .. } if call == "callerC-1@e2e" && queue == "support"),
    );
    let enq_d = one(
        "D enqueued",
        &|k| matches!(k, EventKind::CallEnqueued { call, queue, .. } if call == "callerD-1@e2e" && queue == "support"),
    );
    let ans_a = one(
        "A answered by 1001",
        &|k| matches!(k, EventKind::CallAnswered { call, queue, agent } if call == "callerA-1@e2e" && queue == "sales" && agent == "1001"),
    );
    let ans_b = one(
        "B answered by 1002",
        &|k| matches!(k, EventKind::CallAnswered { call, queue, agent } if call == "callerB-1@e2e" && queue == "sales" && agent == "1002"),
    );
    let ab_c = one(
        "C abandoned",
        &|k| matches!(k, EventKind::CallAbandoned { call, queue } if call == "callerC-1@e2e" && queue == "support"),
    );
    let ans_d = one(
        "D answered by 1004",
        &|k| matches!(k, EventKind::CallAnswered { call, queue, agent } if call == "callerD-1@e2e" && queue == "support" && agent == "1004"),
    );
    one(
        "A completed",
        &|k| matches!(k, EventKind::CallCompleted { call, agent, .. } if call == "callerA-1@e2e" && agent == "1001"),
    );
    one(
        "B completed",
        &|k| matches!(k, EventKind::CallCompleted { call, agent, .. } if call == "callerB-1@e2e" && agent == "1002"),
    );
    one(
        "D completed",
        &|k| matches!(k, EventKind::CallCompleted { call, agent, .. } if call == "callerD-1@e2e" && agent == "1004"),
    );
    assert!(
        find(&|k| matches!(k, EventKind::CallExited { .. })).is_empty(),
        "{}",
        story.join("\n")
    );

    let within = |what: &str, ms: i64, lo: i64, hi: i64| {
        assert!(
            (lo..=hi).contains(&ms),
            "{what} took {ms} ms, expected {lo}..{hi}:\n{}",
            story.join("\n")
        );
    };
    within("A's wait", ans_a - enq_a, 900, 2900);
    within("B's wait", ans_b - enq_b, 3600, 6500);
    within("C's wait before giving up", ab_c - enq_c, 1300, 2900);
    within("D's wait", ans_d - enq_d, 900, 2900);

    // Agent phone states: 1003 rang and was let go; the others rang (and
    // then went on call through call_answered).
    let states = |agent: &str| -> Vec<AgentStatus> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::AgentState {
                    agent: a, status, ..
                } if a == agent => Some(*status),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        states("1003"),
        vec![AgentStatus::Ringing, AgentStatus::Available],
        "{}",
        story.join("\n")
    );
    for agent in ["1001", "1002", "1004"] {
        assert_eq!(
            states(agent),
            vec![AgentStatus::Ringing],
            "{agent}: {}",
            story.join("\n")
        );
    }
    assert!(health.events() >= events.len() as u64);

    // The engine's KPIs from these events.
    let mut engine = Engine::starting_at(cfg.engine_config(), acdmon::time::Ts(t0));
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| e.ts);
    for e in sorted {
        engine
            .apply(e.clone())
            .unwrap_or_else(|r| panic!("engine rejected {e:?}: {r}"));
    }
    let mut view = |name: &str| {
        let q = engine.find_queue(name).unwrap();
        serde_json::to_value(engine.queue_view(q)).unwrap()
    };
    let sales = view("sales");
    let today = &sales["windows"]["today"];
    eprintln!("sales: {sales}");
    assert_eq!(today["offered"], 2);
    assert_eq!(today["answered"], 2);
    assert_eq!(today["answered_in_sl"], 1, "A within 3 s, B late");
    assert_eq!(today["abandoned"], 0);
    assert_eq!(sales["waiting"], 0);
    let support = view("support");
    let today = &support["windows"]["today"];
    eprintln!("support: {support}");
    assert_eq!(today["offered"], 2);
    assert_eq!(today["answered"], 1);
    assert_eq!(today["answered_in_sl"], 1);
    assert_eq!(today["abandoned"], 1);
    assert_eq!(today["short_abandoned"], 0, "C waited over 500 ms");
    assert_eq!(support["waiting"], 0);
    // abandon_negative: answered_in_sl / (offered - short_abandoned) = 1 / 2.
    assert_eq!(today["service_level"].as_f64(), Some(0.5));
}

const AUTH_SECRET: &str = "phone-secret";

fn real_config_text(hep_port: u16, record: &Path) -> String {
    format!(
        r#"
[time]
zone = "UTC"

[defaults]
sl_threshold = "3s"
short_abandon = "500ms"

[[queues]]
name = "sales"

[[queues]]
name = "hunt"

[[queues]]
name = "lines"

[[sources]]
name = "kamailio"
kind = "hep"
listen_udp = "127.0.0.1:{hep_port}"
auth_key = "{AUTH_KEY}"
queue_header = "X-Queue"
correlation_header = "X-Call-Ref"
record = "{}"

[sources.members]
sales = ["1001", "1007"]

[[sources.queues]]
pattern = "^8001$"
queue = "sales"
answer = "platform"

[[sources.queues]]
pattern = "^8004$"
queue = "hunt"
answer = "early_media"

[[sources.queues]]
pattern = "^8005$"
queue = "lines"
answer = "early_media"

[[sources.agents]]
pattern = "^100\\d$"
"#,
        record.display()
    )
}

/// Real Kamailio behaving as issue 15 saw it, each call a story:
/// - G (4930407) calls sales from a phone that must authenticate: Kamailio
///   challenges the INVITE (407), the phone sends it again with CSeq 2 and
///   credentials; the platform answers, agent 1001 picks up after ~1 s.
/// - F calls sales and gives up after 3.5 s on music on hold. Meanwhile the
///   platform rings 1001 for a caller it names in X-Call-Ref that acdmon
///   never saw (a redirected call): that must not take F by FIFO. The
///   platform also offers F to 1007, whose phone is in do-not-disturb (486
///   at once); 1007 registered first and is a configured member of sales.
/// - H calls the hunt group 8004, which Kamailio forks to 1005 and 1006
///   (ring-all): both ring, 1005 answers after 1 s, 1006 is cancelled.
/// - V calls 8005, whose platform refuses at once (480); V's Via names a port
///   it does not send from, without rport, so Kamailio answers there.
/// The collector records what it accepted; the recording replays into the
/// same call events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_challenges_forks_registers_and_answers_to_the_via_port() {
    let (Some(kamailio), Some(sipp)) = (which("kamailio"), which("sipp")) else {
        eprintln!(
            "\n\n********************************************************************\n\
             SKIPPED tests/sip_kamailio.rs: `kamailio` and/or `sipp` not installed.\n\
             Run scripts/install-sip-test-deps.sh (Debian: kamailio, sip-tester).\n\
             ********************************************************************\n"
        );
        return;
    };
    let Some(mpath) = MPATHS
        .iter()
        .find(|p| Path::new(p).join("registrar.so").is_file())
    else {
        panic!("kamailio is installed but its registrar module is not in any of {MPATHS:?}");
    };
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip");
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("capture.hep");

    let hep_port = free_udp_port();
    let cfg = Config::parse("e2e.toml", &real_config_text(hep_port, &record))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let SourceSpec::Hep(hep_cfg) = &cfg.sources[0].spec else {
        panic!("hep source not parsed as its own table")
    };
    let listeners = Listeners::bind(hep_cfg).await.unwrap();
    let ingest = hep_cfg.ingest().unwrap();
    let health = SourceHealth::new("kamailio", "hep");
    let rejects = Arc::new(RejectCounter::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let collector = tokio::spawn(run(
        listeners,
        ingest,
        SourceCtx::new("kamailio", tx, health.clone(), rejects.clone()),
    ));
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(env) = rx.recv().await {
            let mut ev = sink.lock().unwrap();
            match env {
                Envelope::Batch { events, .. } | Envelope::Positioned { events, .. } => {
                    ev.extend(events)
                }
                Envelope::Event { event, .. } => ev.push(event),
                _ => {}
            }
        }
    });

    let kam = free_udp_port();
    let (moh, refuse) = (free_udp_port(), free_udp_port());
    let (a1001, a1005, a1006, a1007) = (
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
    );
    let cfg_text = std::fs::read_to_string(data.join("kamailio_real.cfg"))
        .unwrap()
        .replace("{{KAM_PORT}}", &kam.to_string())
        .replace("{{HEP_PORT}}", &hep_port.to_string())
        .replace("{{MPATH}}", mpath)
        .replace("{{AUTH_KEY}}", AUTH_KEY)
        .replace("{{AUTH_SECRET}}", AUTH_SECRET)
        .replace("{{PLATFORM_MOH}}", &moh.to_string())
        .replace("{{PLATFORM_REFUSE}}", &refuse.to_string())
        .replace("{{AGENT_1001}}", &a1001.to_string())
        .replace("{{AGENT_1005}}", &a1005.to_string())
        .replace("{{AGENT_1006}}", &a1006.to_string())
        .replace("{{AGENT_1007}}", &a1007.to_string());
    let kcfg = work.path().join("kamailio.cfg");
    std::fs::write(&kcfg, cfg_text).unwrap();
    let log = |n: &str| work.path().join(format!("{n}.log"));
    let mut procs = Procs(Vec::new());
    procs.spawn(
        "kamailio",
        Command::new(&kamailio)
            .arg("-f")
            .arg(&kcfg)
            .args(["-DD", "-E", "-n", "1"])
            .arg("-Y")
            .arg(work.path())
            .arg("-w")
            .arg(work.path()),
        &log("kamailio"),
    );
    let started = Instant::now();
    while UdpSocket::bind(("127.0.0.1", kam)).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "kamailio did not start: {}",
            std::fs::read_to_string(log("kamailio")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = Sipp {
        sipp: &sipp,
        data: &data,
        kam,
    };
    let uas: Vec<(&str, Command)> = vec![
        (
            "platform-moh",
            s.uas("uas_answer.xml", moh, "8001", 2, 0, &[]),
        ),
        (
            "platform-refuse",
            s.uas("uas_refuse.xml", refuse, "8005", 1, 0, &[]),
        ),
        (
            "agent-1001",
            s.uas("uas_answer.xml", a1001, "1001", 2, 1000, &[]),
        ),
        (
            "agent-1005",
            s.uas("uas_answer.xml", a1005, "1005", 1, 1000, &[]),
        ),
        (
            "agent-1006",
            s.uas("uas_no_answer.xml", a1006, "1006", 1, 0, &[]),
        ),
        (
            "agent-1007",
            s.uas("uas_busy.xml", a1007, "1007", 1, 0, &[]),
        ),
    ];
    for (name, mut cmd) in uas {
        procs.spawn(name, &mut cmd, &log(name));
    }
    for port in [moh, refuse, a1001, a1005, a1006, a1007] {
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sipp did not start on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // V's Via port: held by the test, so the responses sent there land
    // somewhere (nobody reads them).
    let via_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let via_port = via_sock.local_addr().unwrap().port().to_string();
    let plat = ("caller", "platform");
    let mut auth = s.uac(
        "uac_caller_auth.xml",
        "8001",
        3000,
        "callerG-%u@e2e",
        &[("caller", "4930407")],
    );
    auth.args(["-au", "4930407", "-ap", AUTH_SECRET]);
    let runs: Vec<(u64, &str, Command)> = vec![
        (
            0,
            "register-1007",
            s.uac(
                "uac_register.xml",
                "1007",
                0,
                "reg1007-%u@e2e",
                &[("contact_port", &a1007.to_string()), ("expires", "60")],
            ),
        ),
        (0, "caller-G", auth),
        (
            0,
            "caller-F",
            s.uac(
                "uac_caller.xml",
                "8001",
                3500,
                "callerF-%u@e2e",
                &[("caller", "4930555")],
            ),
        ),
        (
            0,
            "caller-V",
            s.uac(
                "uac_caller_via_port.xml",
                "8005",
                1500,
                "callerV-%u@e2e",
                &[("caller", "4930999"), ("via_port", &via_port)],
            ),
        ),
        (
            300,
            "dialer-G",
            s.uac(
                "uac_dialer.xml",
                "1001",
                1500,
                "dialG-%u@e2e",
                &[plat, ("queue", "sales"), ("callref", "callerG-1@e2e")],
            ),
        ),
        (
            500,
            "caller-H",
            s.uac(
                "uac_caller_hunt.xml",
                "8004",
                1500,
                "callerH-%u@e2e",
                &[("caller", "4930888")],
            ),
        ),
        (
            500,
            "dialer-R",
            s.uac(
                "uac_dialer_refused.xml",
                "1007",
                0,
                "dialR-%u@e2e",
                &[plat, ("queue", "sales"), ("callref", "callerF-1@e2e")],
            ),
        ),
        (
            800,
            "dialer-X",
            s.uac(
                "uac_dialer.xml",
                "1001",
                1000,
                "dialX-%u@e2e",
                &[plat, ("queue", "sales"), ("callref", "redirected-1@e2e")],
            ),
        ),
    ];
    let t_start = Instant::now();
    let mut uacs = Procs(Vec::new());
    for (at, name, mut cmd) in runs {
        let due = Duration::from_millis(at);
        if let Some(wait) = due.checked_sub(t_start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        uacs.spawn(name, &mut cmd, &log(name));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, child) in &mut uacs.0 {
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert!(
                    st.success(),
                    "{name} failed ({st}): {}\nkamailio: {}",
                    std::fs::read_to_string(log(name)).unwrap_or_default(),
                    std::fs::read_to_string(log("kamailio")).unwrap_or_default()
                );
                break;
            }
            assert!(Instant::now() < deadline, "{name} did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(procs);
    collector.abort();
    drop(via_sock);

    let events = events.lock().unwrap().clone();
    let t0 = events.iter().map(|e| e.ts.0).min().unwrap();
    let story: Vec<String> = events.iter().map(|e| describe(t0, e)).collect();
    eprintln!("events:\n  {}", story.join("\n  "));
    assert!(rejects.all().is_empty(), "rejected: {:?}", rejects.all());
    let count = |pred: &dyn Fn(&EventKind) -> bool| events.iter().filter(|e| pred(&e.kind)).count();
    let one = |what: &str, pred: &dyn Fn(&EventKind) -> bool| -> i64 {
        let v: Vec<&Event> = events.iter().filter(|e| pred(&e.kind)).collect();
        assert_eq!(
            v.len(),
            1,
            "expected exactly one `{what}`:\n{}",
            story.join("\n")
        );
        v[0].ts.0
    };
    let is = |call: &str, want: &str, k: &EventKind| -> bool {
        match (want, k) {
            ("enqueued", EventKind::CallEnqueued { call: c, .. })
            | ("answered", EventKind::CallAnswered { call: c, .. })
            | ("abandoned", EventKind::CallAbandoned { call: c, .. })
            | ("exited", EventKind::CallExited { call: c, .. })
            | ("completed", EventKind::CallCompleted { call: c, .. }) => c == call,
            _ => false,
        }
    };

    // G: challenged, then a normal queue call (issue 15 item 4).
    let enq_g = one("G enqueued", &|k| is("callerG-1@e2e", "enqueued", k));
    let ans_g = one(
        "G answered by 1001",
        &|k| matches!(k, EventKind::CallAnswered { call, queue, agent } if call == "callerG-1@e2e" && queue == "sales" && agent == "1001"),
    );
    one("G completed", &|k| is("callerG-1@e2e", "completed", k));
    assert_eq!(count(&|k| is("callerG-1@e2e", "exited", k)), 0);
    assert!(
        (700..=2900).contains(&(ans_g - enq_g)),
        "G's wait {}",
        ans_g - enq_g
    );

    // F: abandoned; never answered by the agent on the unknown call (item 5).
    one("F enqueued", &|k| is("callerF-1@e2e", "enqueued", k));
    one("F abandoned", &|k| is("callerF-1@e2e", "abandoned", k));
    assert_eq!(
        count(&|k| is("callerF-1@e2e", "answered", k)),
        0,
        "{}",
        story.join("\n")
    );

    // H: the hunt group's forks are agent legs (item 7).
    let enq_h = one(
        "H enqueued in hunt",
        &|k| matches!(k, EventKind::CallEnqueued { call, queue, .. } if call == "callerH-1@e2e" && queue == "hunt"),
    );
    for agent in ["1005", "1006"] {
        one(
            &format!("{agent} joins hunt"),
            &|k| matches!(k, EventKind::AgentJoinedQueue { agent: a, queue } if a == agent && queue == "hunt"),
        );
    }
    let ans_h = one(
        "H answered by 1005",
        &|k| matches!(k, EventKind::CallAnswered { call, agent, .. } if call == "callerH-1@e2e" && agent == "1005"),
    );
    assert!(
        (700..=2900).contains(&(ans_h - enq_h)),
        "H's wait {}",
        ans_h - enq_h
    );
    one("H completed", &|k| is("callerH-1@e2e", "completed", k));
    let states = |agent: &str| -> Vec<AgentStatus> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::AgentState {
                    agent: a, status, ..
                } if a == agent => Some(*status),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        states("1006"),
        vec![AgentStatus::Ringing, AgentStatus::Available],
        "{}",
        story.join("\n")
    );
    assert_eq!(states("1005").first(), Some(&AgentStatus::Ringing));

    // 1007: a configured member, logged in by its REGISTER, and still
    // logged in after refusing at once (item 6).
    one(
        "1007 member of sales",
        &|k| matches!(k, EventKind::AgentJoinedQueue { agent, queue } if agent == "1007" && queue == "sales"),
    );
    assert_eq!(
        states("1007"),
        vec![AgentStatus::Available],
        "{}",
        story.join("\n")
    );

    // V: refused by the platform, the 480 sent to V's Via port (item 9).
    one("V enqueued", &|k| is("callerV-1@e2e", "enqueued", k));
    one(
        "V exited on timeout",
        &|k| matches!(k, EventKind::CallExited { call, reason, .. } if call == "callerV-1@e2e" && *reason == acdmon::event::ExitReason::Timeout),
    );

    // The engine: sales has both configured members logged in.
    let mut engine = Engine::starting_at(cfg.engine_config(), acdmon::time::Ts(t0));
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| e.ts);
    for e in sorted {
        engine
            .apply(e.clone())
            .unwrap_or_else(|r| panic!("engine rejected {e:?}: {r}"));
    }
    let q = engine.find_queue("sales").unwrap();
    let sales = serde_json::to_value(engine.queue_view(q)).unwrap();
    assert_eq!(sales["agents"]["logged_in"], 2, "{sales}");
    assert_eq!(sales["windows"]["today"]["offered"], 2, "{sales}");
    assert_eq!(sales["windows"]["today"]["answered"], 1, "{sales}");
    assert_eq!(sales["windows"]["today"]["abandoned"], 1, "{sales}");

    // The recording replays into the same call and agent events (item 10);
    // static members are dated at the first packet instead of start-up.
    let bytes = std::fs::read(&record).unwrap();
    assert_eq!(acdmon::replay::detect(&bytes), acdmon::replay::Format::Hep);
    let mut d = acdmon::sources::hep::HepReplayDecoder::new(hep_cfg).unwrap();
    let mut replayed: Vec<Event> = d.feed(&bytes).into_iter().map(Result::unwrap).collect();
    replayed.extend(d.finish().into_iter().map(Result::unwrap));
    let static_member = |e: &Event| matches!(&e.kind, EventKind::AgentJoinedQueue { queue, .. } if queue == "sales");
    let live: Vec<&Event> = events.iter().filter(|e| !static_member(e)).collect();
    let again: Vec<&Event> = replayed.iter().filter(|e| !static_member(e)).collect();
    assert_eq!(again, live);
}
