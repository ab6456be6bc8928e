//! A recorded AMI transcript (tests/data/ami/basic.ami, protocol-faithful:
//! banner, login, QueueStatus list with QueueParams/QueueMember/QueueEntry,
//! live events with Privilege/Timestamp) replayed through the same session
//! code the daemon runs, into the real state engine.

use acdmon::event::{AgentStatus, Event, EventKind, ExitReason};
use acdmon::sources::ami::{AgentIds, AmiReplay};
use acdmon::state::{Engine, EngineConfig};
use acdmon::time::Ts;

const BASIC: &[u8] = include_bytes!("data/ami/basic.ami");

fn replay(bytes: &[u8], chunk: usize) -> (Vec<Event>, Vec<String>) {
    let mut r = AmiReplay::new(AgentIds::default());
    let mut evs = Vec::new();
    let mut rejects = Vec::new();
    let mut take = |out: Vec<Result<Event, acdmon::sources::Reject>>| {
        for x in out {
            match x {
                Ok(e) => evs.push(e),
                Err(e) => rejects.push(e.to_string()),
            }
        }
    };
    for piece in bytes.chunks(chunk) {
        take(r.feed(piece));
    }
    take(r.finish());
    (evs, rejects)
}

#[test]
fn any_chunking_gives_the_same_events() {
    let (whole, rej) = replay(BASIC, BASIC.len());
    assert!(rej.is_empty(), "{rej:?}");
    for chunk in [1, 2, 13, 512] {
        assert_eq!(replay(BASIC, chunk).0, whole, "chunk {chunk}");
    }
}

#[test]
fn resync_rebuilds_members_and_waiting_callers_from_the_list() {
    let (evs, _) = replay(BASIC, 4096);
    let EventKind::QueueResync {
        queue,
        callers,
        members,
    } = &evs[0].kind
    else {
        panic!("first event is {:?}", evs[0]);
    };
    assert_eq!(queue, "support");
    // List time is the Ping reply's Timestamp; join = list time - Wait.
    assert_eq!(evs[0].ts, Ts(1_763_900_000_000));
    let joins: Vec<(&str, Ts)> = callers
        .iter()
        .map(|c| (c.call.as_str(), c.joined))
        .collect();
    assert_eq!(
        joins,
        [
            ("1763899950.11", Ts(1_763_899_950_000)),
            ("1763899990.12", Ts(1_763_899_990_000))
        ]
    );
    let states: Vec<(&str, AgentStatus, Option<&str>)> = members
        .iter()
        .map(|m| (m.agent.as_str(), m.status, m.reason.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            ("Alice", AgentStatus::Available, None),
            ("Bob", AgentStatus::OnCall, None),
            ("Carol", AgentStatus::Paused, Some("Lunch")),
            ("Dave", AgentStatus::LoggedOut, None),
        ]
    );
}

#[test]
fn outcomes_follow_the_wire_rules() {
    let (evs, _) = replay(BASIC, 4096);
    let outcome = |call: &str| {
        evs.iter()
            .find_map(|e| match &e.kind {
                EventKind::CallAnswered { call: c, agent, .. } if c == call => {
                    Some(format!("answered by {agent}"))
                }
                EventKind::CallAbandoned { call: c, .. } if c == call => Some("abandoned".into()),
                EventKind::CallExited {
                    call: c, reason, ..
                } if c == call => Some(format!("exited {}", reason.as_str())),
                _ => None,
            })
            .unwrap_or_default()
    };
    assert_eq!(outcome("1763899950.11"), "answered by Alice");
    // HangupRequest right before QueueCallerAbandon: the caller hung up.
    assert_eq!(outcome("1763899990.12"), "abandoned");
    // QueueCallerAbandon with no HangupRequest: Queue() timed out.
    assert_eq!(outcome("1763900010.13"), "exited timeout");
    // QueueCallerLeave with no abandon and no AgentConnect: EXITWITHKEY.
    assert_eq!(outcome("1763900080.14"), "exited key");
    // Ringing shown while AgentCalled, cleared by AgentRingNoAnswer.
    let alice: Vec<AgentStatus> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentState { agent, status, .. } if agent == "Alice" => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        alice[..3],
        [
            AgentStatus::Ringing,
            AgentStatus::Available,
            AgentStatus::Ringing
        ]
    );
}

#[test]
fn the_engine_ends_with_the_right_figures() {
    let (evs, _) = replay(BASIC, 4096);
    let mut engine = Engine::starting_at(EngineConfig::default(), evs[0].ts);
    let mut engine_rejects = Vec::new();
    for e in evs {
        if let Err(r) = engine.apply(e) {
            engine_rejects.push(r);
        }
    }
    assert!(engine_rejects.is_empty(), "{engine_rejects:?}");
    let q = engine.find_queue("support").unwrap();
    let v = engine.queue_view(q);
    assert_eq!(v.waiting, 0);
    let t = &v.windows.today;
    assert_eq!(
        (
            t.offered,
            t.answered,
            t.abandoned,
            t.exited,
            t.answered_in_sl
        ),
        (4, 1, 1, 2, 0)
    );
    assert_eq!(v.totals.exited.get(ExitReason::Timeout.as_str()), Some(&1));
    assert_eq!(v.totals.exited.get(ExitReason::Key.as_str()), Some(&1));
    // Waited 80 s (joined 50 s before the list, answered 30 s after it).
    assert_eq!(t.asa_s, Some(80.121));
    let status = |id: &str| engine.agent(engine.find_agent(id).unwrap()).status;
    assert_eq!(status("Alice"), AgentStatus::Available);
    assert_eq!(status("Bob"), AgentStatus::OnCall);
    assert_eq!(status("Carol"), AgentStatus::Available);
    assert_eq!(status("Dave"), AgentStatus::LoggedOut);
}

#[test]
fn acdmon_replay_reads_the_transcript_with_the_configured_agent_ids() {
    let cfg = acdmon::config::Config::parse(
        "t.toml",
        "[time]\nzone = \"UTC\"\n[[agents]]\nid = \"a-1001\"\ninterface = \"PJSIP/1001\"\n",
    )
    .unwrap();
    let report = acdmon::replay::replay(
        &cfg,
        &["tests/data/ami/basic.ami".to_string()],
        None,
        &|_| Vec::new(),
    )
    .unwrap();
    let agents: Vec<&str> = report.agents.iter().map(|a| a.agent.as_str()).collect();
    assert!(agents.contains(&"a-1001"), "{agents:?}");
    assert!(!agents.contains(&"Alice"), "{agents:?}");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let q = &report.queues[0];
    assert_eq!((q.queue.as_str(), q.windows.today.offered), ("support", 4));
}
