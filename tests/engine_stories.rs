//! Stories a supervisor would recognise, told to the state engine directly.

use acdmon::event::{AgentStatus, Event, EventKind, ResyncCaller, ResyncMember};
use acdmon::state::{Engine, EngineConfig, QueueParams};
use acdmon::time::Ts;

fn t(s: i64) -> Ts {
    Ts(1_800_000_000_000 + s * 1000)
}

fn ev(s: i64, kind: EventKind) -> Event {
    Event { ts: t(s), kind }
}

fn enq(call: &str) -> EventKind {
    EventKind::CallEnqueued {
        call: call.into(),
        queue: "q".into(),
        caller: None,
        priority: None,
    }
}

fn answer(call: &str, agent: &str) -> EventKind {
    EventKind::CallAnswered {
        call: call.into(),
        queue: "q".into(),
        agent: agent.into(),
    }
}

fn complete(call: &str, agent: &str) -> EventKind {
    EventKind::CallCompleted {
        call: call.into(),
        queue: "q".into(),
        agent: agent.into(),
    }
}

fn state(agent: &str, status: AgentStatus) -> EventKind {
    EventKind::AgentState {
        agent: agent.into(),
        status,
        reason: None,
        queue: Some("q".into()),
    }
}

#[test]
fn after_a_reconnect_the_queue_is_rebuilt_from_the_pbx_list() {
    let mut e = Engine::starting_at(EngineConfig::default(), t(0));
    e.apply(ev(0, enq("gone"))).unwrap();
    e.apply(ev(1, enq("stays"))).unwrap();
    e.apply(ev(2, state("a1", AgentStatus::Available))).unwrap();
    e.apply(ev(2, state("old", AgentStatus::Available)))
        .unwrap();
    // Disconnected for a minute; the PBX now lists "stays" and "new" (joined
    // 30 s ago) and members a1 (on a call) and a2 (paused).
    e.apply(ev(
        62,
        EventKind::QueueResync {
            queue: "q".into(),
            callers: vec![
                ResyncCaller {
                    call: "stays".into(),
                    joined: t(1),
                },
                ResyncCaller {
                    call: "new".into(),
                    joined: t(32),
                },
            ],
            members: vec![
                ResyncMember {
                    agent: "a1".into(),
                    status: AgentStatus::OnCall,
                    reason: None,
                    paused_here: false,
                },
                ResyncMember {
                    agent: "a2".into(),
                    status: AgentStatus::Paused,
                    reason: Some("lunch".into()),
                    paused_here: false,
                },
            ],
        },
    ))
    .unwrap();
    let v = e.queue_view(0);
    assert_eq!(v.waiting, 2);
    assert_eq!(
        v.longest_wait_s, 61.0,
        "'stays' kept its original join time"
    );
    assert_eq!(
        v.windows.today.offered, 0,
        "the vanished call's outcome is unknown: not counted"
    );
    assert_eq!(
        (v.agents.logged_in, v.agents.on_call, v.agents.paused),
        (2, 1, 1)
    );
    // The resynced caller is counted with its true wait when answered.
    e.apply(ev(70, answer("new", "a2"))).unwrap();
    let v = e.queue_view(0);
    assert_eq!(v.windows.today.answered, 1);
    assert_eq!(v.windows.today.asa_s, Some(38.0));
}

#[test]
fn engine_timed_wrap_up_counts_in_aht_and_ends_on_event_time() {
    let cfg = EngineConfig {
        defaults: QueueParams {
            wrap_up_ms: 30_000,
            ..QueueParams::default()
        },
        ..EngineConfig::default()
    };
    let mut e = Engine::starting_at(cfg, t(0));
    e.apply(ev(0, state("a1", AgentStatus::Available))).unwrap();
    e.apply(ev(10, enq("c1"))).unwrap();
    e.apply(ev(15, answer("c1", "a1"))).unwrap();
    e.apply(ev(115, complete("c1", "a1"))).unwrap();
    let a = e.find_agent("a1").unwrap();
    assert_eq!(e.agent(a).status, AgentStatus::WrapUp);
    e.advance(t(144));
    assert_eq!(e.agent(a).status, AgentStatus::WrapUp);
    e.advance(t(146));
    assert_eq!(e.agent(a).status, AgentStatus::Available);
    assert_eq!(
        e.agent(a).since,
        t(145),
        "wrap-up ended at its due time, not at the tick"
    );
    let v = e.queue_view(0);
    assert_eq!(
        v.windows.today.aht_s,
        Some(130.0),
        "100 s talk + 30 s wrap-up"
    );
}

#[test]
fn reported_wrap_up_is_measured_when_the_agent_leaves_it() {
    let mut e = Engine::starting_at(EngineConfig::default(), t(0));
    e.apply(ev(0, state("a1", AgentStatus::Available))).unwrap();
    e.apply(ev(1, enq("c1"))).unwrap();
    e.apply(ev(2, answer("c1", "a1"))).unwrap();
    e.apply(ev(62, complete("c1", "a1"))).unwrap();
    e.apply(ev(62, state("a1", AgentStatus::WrapUp))).unwrap();
    e.apply(ev(82, state("a1", AgentStatus::Available)))
        .unwrap();
    assert_eq!(e.queue_view(0).windows.today.aht_s, Some(80.0));
}

#[test]
fn a_call_answered_that_was_never_seen_waiting_updates_the_agent_but_not_the_kpis() {
    let mut e = Engine::starting_at(EngineConfig::default(), t(0));
    let r = e.apply(ev(5, answer("ghost", "a1")));
    assert_eq!(r.unwrap_err().reason, "unknown_call");
    let a = e.find_agent("a1").unwrap();
    assert_eq!(e.agent(a).status, AgentStatus::OnCall);
    assert_eq!(e.queue_view(0).windows.today.answered, 0);
    // Its completion is still recognised (the engine saw the answer).
    e.apply(ev(65, complete("ghost", "a1"))).unwrap();
    assert_eq!(e.agent(a).status, AgentStatus::Available);
}

#[test]
fn a_duplicate_enqueue_is_rejected_and_counted_once() {
    let mut e = Engine::starting_at(EngineConfig::default(), t(0));
    e.apply(ev(0, enq("c1"))).unwrap();
    assert_eq!(
        e.apply(ev(1, enq("c1"))).unwrap_err().reason,
        "duplicate_call"
    );
    assert_eq!(e.queue_view(0).waiting, 1);
    assert_eq!(e.queue_view(0).longest_wait_s, 1.0, "first join time kept");
}

#[test]
fn required_agents_follow_the_rolling_arrival_rate() {
    // 100 calls in 30 minutes, 180 s handle time, T = 20 s, target 80 %:
    // the architecture's reference vector needs 14 agents. Replay it with a
    // 30-minute rolling window.
    let cfg = EngineConfig {
        defaults: QueueParams {
            rolling_ms: 30 * 60_000,
            ..QueueParams::default()
        },
        ..EngineConfig::default()
    };
    let mut e = Engine::starting_at(cfg, t(0));
    for i in 0..100 {
        let s = i * 18;
        let c = format!("c{i}");
        e.apply(ev(s, enq(&c))).unwrap();
        e.apply(ev(s, answer(&c, &format!("a{}", i % 20)))).unwrap();
        e.apply(ev(s + 180, complete(&c, &format!("a{}", i % 20))))
            .unwrap();
    }
    e.advance(t(1800));
    let q = e.find_queue("q").unwrap();
    assert_eq!(e.required_agents(q), Some(14));
}

/// A queue builds up over three minutes while the ladder steps up, then
/// drains: the trend has one sample per whole minute (event time, no wall
/// clock), each with what the wall needs for sparklines and stage marks.
#[test]
fn the_trend_samples_each_queue_once_a_minute_on_event_time() {
    use acdmon::state::view::EscalationStatus;
    // t(0) is a whole minute.
    let mut e = Engine::starting_at(EngineConfig::default(), t(0));
    e.apply(ev(1, state("a1", AgentStatus::Available))).unwrap();
    e.apply(ev(5, enq("c1"))).unwrap();
    e.apply(ev(70, enq("c2"))).unwrap(); // after the first whole minute, t(60)
    let q = e.find_queue("q").unwrap();
    e.set_escalation(
        q,
        Some(EscalationStatus {
            stage: 2,
            stage_name: "overflow".into(),
            since: t(70),
            signed_in: vec![],
            pending: vec![],
        }),
    );
    e.apply(ev(130, answer("c1", "a1"))).unwrap(); // after t(120)
    e.set_escalation(q, None);
    e.advance(t(200)); // t(180) sampled; t(240) not yet
    let s = e.queue(q).trend.last(10);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(
        s.iter().map(|x| x.at).collect::<Vec<_>>(),
        vec![t(60), t(120), t(180)]
    );
    assert_eq!(
        s.iter().map(|x| x.waiting).collect::<Vec<_>>(),
        vec![1, 2, 1]
    );
    assert_eq!(s[0].longest_wait_s, 55.0, "c1 waiting since t(5)");
    assert_eq!(s[1].longest_wait_s, 115.0);
    assert_eq!(s[2].longest_wait_s, 110.0, "c2 since t(70)");
    assert_eq!(
        s.iter().map(|x| x.stage).collect::<Vec<_>>(),
        vec![0, 2, 0],
        "stage began and ended"
    );
    assert_eq!(s[1].service_level, None, "nothing answered yet");
    assert_eq!(
        s[2].service_level,
        Some(0.0),
        "c1 answered after 125 s, past 20 s"
    );
    assert_eq!((s[0].available, s[0].logged_in), (1, 1));
    assert_eq!((s[2].available, s[2].logged_in), (0, 1));
    // A replay that jumps a day ahead keeps only the minutes it can hold.
    e.advance(t(86_400));
    assert_eq!(e.queue(q).trend.len(), acdmon::state::trend::KEEP_MINUTES);
}
