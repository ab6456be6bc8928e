//! The live ESL source and CTI action against a fake event socket over real
//! TCP (tests/esl_fake): no FreeSWITCH can run here, so the server replays
//! recorded transcripts (tests/data/esl) and records the commands it gets.

mod esl_fake;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acdmon::config::SourceSpec;
use acdmon::cti::{Cti, CtiRequest, CtiVerb};
use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::sources::esl::{EslConfig, spawn};
use acdmon::sources::{Envelope, RejectCounter, SourceCtx, SourceHealth};
use tokio::sync::mpsc;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/esl/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn config(addr: &str, extra: &str) -> EslConfig {
    let text = format!("address = \"{addr}\"\npassword = \"ClueCon\"\n{extra}");
    match SourceSpec::from_toml("esl", &text) {
        Ok(SourceSpec::Esl(c)) => c,
        other => panic!("{other:?}"),
    }
}

/// Receives events until `done` holds for one, or fails after 10 s.
async fn collect_until(
    rx: &mut mpsc::Receiver<Envelope>,
    all: &mut Vec<Event>,
    done: impl Fn(&Event) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let env = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {all:#?}"))
            .expect("source stopped");
        let evs = match env {
            Envelope::Event { event, .. } => vec![event],
            Envelope::Batch { events, .. }
            | Envelope::Positioned { events, .. }
            | Envelope::Checked { events, .. } => events,
            _ => Vec::new(),
        };
        let hit = evs.iter().any(&done);
        all.extend(evs);
        if hit {
            return;
        }
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const HANDSHAKE: [&str; 6] = [
    "auth ClueCon",
    "event plain CUSTOM callcenter::info",
    "api callcenter_config queue list",
    "api callcenter_config queue list agents support@default",
    "api callcenter_config queue list members support@default",
    "api callcenter_config queue list tiers support@default",
];

#[tokio::test]
async fn a_dropped_connection_and_a_sequence_gap_force_resyncs() {
    let srv = esl_fake::start(read("reconnect.esl"), 4096, Arc::new(|_| None)).await;
    let (tx, mut rx) = mpsc::channel(1024);
    let health = SourceHealth::new("fs1", "esl");
    let rejects = Arc::new(RejectCounter::default());
    let _src = spawn(
        config(&srv.addr, "max_sequence_gap = 100"),
        SourceCtx::new("fs1", tx, health.clone(), rejects.clone()),
    );
    let mut events = Vec::new();
    // The last recorded event: m3 joins after the gap's resync.
    collect_until(
        &mut rx,
        &mut events,
        |e| matches!(&e.kind, EventKind::CallEnqueued { call, .. } if call.starts_with("7c0e0103")),
    )
    .await;

    let resyncs: Vec<(Vec<String>, BTreeMap<String, AgentStatus>)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::QueueResync {
                callers, members, ..
            } => Some((
                callers.iter().map(|c| c.call[..8].to_string()).collect(),
                members
                    .iter()
                    .map(|m| (m.agent.clone(), m.status))
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(resyncs.len(), 3, "{events:#?}");
    // Connect: m0 waits. Reconnect: m1 and m2 wait, 1000 went on break
    // while we were away. Gap: m1 abandoned, m2 waits, 1000 back.
    assert_eq!(resyncs[0].0, ["7c0e0100"]);
    assert_eq!(resyncs[1].0, ["7c0e0101", "7c0e0102"]);
    assert_eq!(resyncs[1].1["1000@default"], AgentStatus::Paused);
    assert_eq!(resyncs[2].0, ["7c0e0102"]);
    assert_eq!(resyncs[2].1["1000@default"], AgentStatus::Available);
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::CallAbandoned { .. }))
    );

    // What the switch was asked: the handshake and lists on each connection,
    // and the lists again after the gap.
    let cmds = srv.commands();
    let mut want: Vec<&str> = Vec::new();
    want.extend(HANDSHAKE);
    want.extend(HANDSHAKE);
    want.extend(&HANDSHAKE[2..]);
    assert_eq!(cmds, want);
    assert_eq!(srv.connections(), 2);
    until("ready", || health.connected() && health.synced()).await;
    assert!(rejects.by_reason().is_empty(), "{:?}", rejects.by_reason());
}

#[tokio::test]
async fn garbage_and_half_frames_over_tcp_byte_by_byte() {
    let srv = esl_fake::start(read("garbage.esl"), 1, Arc::new(|_| None)).await;
    let (tx, mut rx) = mpsc::channel(1024);
    let health = SourceHealth::new("fs1", "esl");
    let rejects = Arc::new(RejectCounter::default());
    let _src = spawn(
        config(&srv.addr, ""),
        SourceCtx::new("fs1", tx, health.clone(), rejects.clone()),
    );
    let mut events = Vec::new();
    collect_until(&mut rx, &mut events, |e| {
        matches!(&e.kind, EventKind::CallExited { .. })
    })
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(kinds, ["queue_resync", "call_enqueued", "call_exited"]);
    let by = rejects.by_reason();
    assert_eq!(by.get("malformed_frame"), Some(&3), "{by:?}");
    assert_eq!(by.get("malformed_event"), Some(&2), "{by:?}");
    until("ready", || health.synced()).await;
}

/// A switch where agent 1002 is logged out, with a tier table.
fn switch_responder(
    status: Arc<Mutex<String>>,
    tiers: Arc<Mutex<BTreeSet<(String, String)>>>,
) -> esl_fake::Responder {
    Arc::new(move |cmd: &str| {
        let words: Vec<&str> = cmd.split(' ').collect();
        let now_us = (acdmon::time::Ts::now().0 * 1000).to_string();
        let status_event = |s: &str| {
            esl_fake::event(&[
                ("CC-Agent", "1002@default"),
                ("CC-Action", "agent-status-change"),
                ("CC-Agent-Status", s),
                ("Event-Date-Timestamp", &now_us),
            ])
        };
        match &words[..] {
            [
                "api",
                "callcenter_config",
                "agent",
                "get",
                "status",
                "1002@default",
            ] => Some(esl_fake::api(&status.lock().unwrap())),
            [
                "api",
                "callcenter_config",
                "agent",
                "get",
                "status",
                "9999@default",
            ] => None,
            ["api", "callcenter_config", "agent", "get", "status", _] => {
                Some(esl_fake::api("-ERR Agent not found!\n"))
            }
            [
                "api",
                "callcenter_config",
                "agent",
                "set",
                "status",
                "1002@default",
                rest @ ..,
            ] => {
                let s = rest.join(" ").trim_matches('\'').to_string();
                *status.lock().unwrap() = s.clone();
                let mut b = esl_fake::api("+OK\n");
                b.extend(status_event(&s));
                Some(b)
            }
            ["api", "callcenter_config", "tier", "add", q, a] => {
                if tiers.lock().unwrap().insert((q.to_string(), a.to_string())) {
                    Some(esl_fake::api("+OK\n"))
                } else {
                    Some(esl_fake::api("-ERR Tier already exist!\n"))
                }
            }
            ["api", "callcenter_config", "tier", "del", q, a] => {
                tiers
                    .lock()
                    .unwrap()
                    .remove(&(q.to_string(), a.to_string()));
                Some(esl_fake::api("+OK\n"))
            }
            ["api", "callcenter_config", "tier", "list"] => {
                let t = tiers.lock().unwrap();
                let mut body = String::new();
                if !t.is_empty() {
                    body.push_str("queue|agent|state|level|position\n");
                    for (q, a) in t.iter() {
                        body.push_str(&format!("{q}|{a}|Ready|1|1\n"));
                    }
                }
                body.push_str("+OK\n");
                Some(esl_fake::api(&body))
            }
            _ => Some(esl_fake::api("-ERR Invalid!\n")),
        }
    })
}

fn req(verb: CtiVerb, agent: &str, queue: &str) -> CtiRequest {
    CtiRequest {
        verb,
        agent: agent.into(),
        interface: agent.into(),
        name: None,
        queue: queue.into(),
    }
}

#[tokio::test]
async fn an_escalation_signs_an_agent_in_and_out_through_the_event_socket() {
    let status = Arc::new(Mutex::new("Logged Out".to_string()));
    let tiers = Arc::new(Mutex::new(BTreeSet::from([(
        "support@default".to_string(),
        "1000@default".to_string(),
    )])));
    let srv = esl_fake::start(
        read("cti.esl"),
        4096,
        switch_responder(status.clone(), tiers.clone()),
    )
    .await;
    let (tx, mut rx) = mpsc::channel(1024);
    let health = SourceHealth::new("fs1", "esl");
    let started = spawn(
        config(
            &srv.addr,
            "sign_out_logs_out = true\ncommand_timeout = \"300ms\"",
        ),
        SourceCtx::new(
            "fs1",
            tx,
            health.clone(),
            Arc::new(RejectCounter::default()),
        ),
    );
    // The ladder holds CTI actions as trait objects.
    let cti: Arc<dyn Cti> = started.cti.expect("the event socket has a CTI action");
    until("synced", || health.synced()).await;

    // Stage 1 signs 1002 in to support: logged out, so made Available first.
    let o = cti
        .execute(req(CtiVerb::SignIn, "1002@default", "support@default"))
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "status Available, tier added");
    // Asking again finds the tier in place: still a success.
    let o = cti
        .execute(req(CtiVerb::SignIn, "1002@default", "support@default"))
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "tier already existed");
    let o = cti
        .execute(req(CtiVerb::SignIn, "1002@default", "sales@default"))
        .await;
    assert!(o.ok && o.detail == "tier added", "{o:?}");
    // Release: out of support (sales remains, so still logged in), then
    // out of sales (no tier left: Logged Out).
    let o = cti
        .execute(req(CtiVerb::SignOut, "1002@default", "support@default"))
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "tier deleted; other tiers remain");
    let o = cti
        .execute(req(CtiVerb::SignOut, "1002@default", "sales@default"))
        .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "tier deleted, status Logged Out");
    assert_eq!(*status.lock().unwrap(), "Logged Out");
    // Refusals come back as failures with FreeSWITCH's words.
    let o = cti
        .execute(req(CtiVerb::SignIn, "nobody@default", "support@default"))
        .await;
    assert!(!o.ok);
    assert!(o.detail.contains("Agent not found"), "{o:?}");

    let cmds = srv.commands();
    let cti_cmds: Vec<&str> = cmds[9..].iter().map(String::as_str).collect();
    assert_eq!(
        cti_cmds,
        [
            "api callcenter_config agent get status 1002@default",
            "api callcenter_config agent set status 1002@default Available",
            "api callcenter_config tier add support@default 1002@default",
            "api callcenter_config agent get status 1002@default",
            "api callcenter_config tier add support@default 1002@default",
            "api callcenter_config agent get status 1002@default",
            "api callcenter_config tier add sales@default 1002@default",
            "api callcenter_config tier del support@default 1002@default",
            "api callcenter_config tier list",
            "api callcenter_config tier del sales@default 1002@default",
            "api callcenter_config tier list",
            "api callcenter_config agent set status 1002@default 'Logged Out'",
            "api callcenter_config agent get status nobody@default",
        ]
    );

    // Tier changes fire no events in FreeSWITCH: the source reports them.
    let mut events = Vec::new();
    collect_until(&mut rx, &mut events, |e| {
        matches!(
            &e.kind,
            EventKind::AgentState {
                status: AgentStatus::LoggedOut,
                ..
            }
        )
    })
    .await;
    let story: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentJoinedQueue { agent, queue } => Some(format!("{agent} joined {queue}")),
            EventKind::AgentLeftQueue { agent, queue } => Some(format!("{agent} left {queue}")),
            EventKind::AgentState { agent, status, .. } if agent == "1002@default" => {
                Some(format!("{agent} {}", status.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        story,
        [
            "1002@default available",
            "1002@default joined support@default",
            "1002@default joined support@default",
            "1002@default joined sales@default",
            "1002@default left support@default",
            "1002@default left sales@default",
            "1002@default logged_out",
        ]
    );

    // A switch that never answers: the action fails on its timeout, and the
    // source drops the connection (a lost reply would misalign the rest)
    // and resyncs on a new one.
    let o = cti
        .execute(req(CtiVerb::SignIn, "9999@default", "support@default"))
        .await;
    assert!(!o.ok);
    assert!(o.detail.contains("no reply"), "{o:?}");
    until("a reconnect", || srv.connections() == 2).await;
    until("synced again", || health.synced()).await;
    let o = cti
        .execute(req(CtiVerb::SignIn, "1002@default", "support@default"))
        .await;
    assert!(o.ok, "{o:?}");
}

#[tokio::test]
async fn without_a_switch_actions_fail_fast_and_the_source_is_not_ready() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (tx, _rx) = mpsc::channel(16);
    let health = SourceHealth::new("fs1", "esl");
    let started = spawn(
        config(&format!("127.0.0.1:{port}"), ""),
        SourceCtx::new(
            "fs1",
            tx,
            health.clone(),
            Arc::new(RejectCounter::default()),
        ),
    );
    let cti = started.cti.expect("the event socket has a CTI action");
    until("a connect error", || health.last_error().is_some()).await;
    assert!(!health.connected());
    assert!(health.not_ready_reason().unwrap().contains("connect"));
    let o = cti
        .execute(req(CtiVerb::SignIn, "1002@default", "support@default"))
        .await;
    assert!(!o.ok);
    assert!(o.detail.contains("not connected"), "{o:?}");
}
