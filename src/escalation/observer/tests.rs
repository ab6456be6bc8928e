use std::time::Duration;

use super::*;
use crate::sources::ami::cti::{AmiCti, SignOutMode};
use crate::sources::ami::{AgentIds, AmiReplay};
use crate::state::{AgentProfile, EngineConfig};

/// Real Asterisk 20.20.1: static members 2001 and 2002 of `support`
/// paused with reason "acdmon" (a pause-mode sign-out), 2003 paused for
/// lunch, then 2001 unpaused (a pause-mode sign-in) and 2004 added by
/// `queue reload members`. The ladder may sign 2002 in again, and only
/// 2002: not the agent on lunch, not those already taking calls.
#[test]
fn a_member_paused_by_a_pause_mode_sign_out_is_eligible_again() {
    let capture = include_bytes!("../../../tests/data/ami/asterisk20_reload_pause.ami");
    let agents = ["2001", "2002", "2003", "2004"]
        .iter()
        .map(|id| AgentProfile {
            id: id.to_string(),
            interface: Some(format!("Local/{id}@agents/n")),
            source: Some("pbx".into()),
            groups: vec!["backup".into()],
            ..AgentProfile::default()
        })
        .collect();
    let mut r = AmiReplay::new(AgentIds::default());
    let evs: Vec<_> = r
        .feed(capture)
        .into_iter()
        .chain(r.finish())
        .collect::<Result<_, _>>()
        .unwrap();
    let mut engine = Engine::starting_at(
        EngineConfig {
            agents,
            ..EngineConfig::default()
        },
        evs[0].ts,
    );
    for ev in evs {
        engine.apply(ev).unwrap();
    }
    let (tx, _rx) = mpsc::channel(1);
    let cti = CtiRegistry::new();
    let candidates = |cti: &CtiRegistry, engine: &mut Engine| {
        let q = engine.queue_index("support");
        let floor = EngineFloor {
            engine,
            q,
            assignments: &HashMap::new(),
            cti,
        };
        let mut c: Vec<String> = floor
            .candidates("backup")
            .into_iter()
            .map(|c| c.agent)
            .collect();
        c.sort();
        c
    };
    // Signing out by removal: a paused member is still in the queue.
    let remove = AmiCti::new(
        tx.clone(),
        SignOutMode::Remove,
        "acdmon".into(),
        Duration::from_secs(1),
    );
    cti.insert("pbx", Arc::new(remove));
    assert!(candidates(&cti, &mut engine).is_empty());
    let pause = AmiCti::new(
        tx,
        SignOutMode::Pause,
        "acdmon".into(),
        Duration::from_secs(1),
    );
    cti.insert("pbx", Arc::new(pause));
    assert_eq!(candidates(&cti, &mut engine), ["2002"]);
}

/// A site's ladder in cluster mode (it follows until told to lead).
const CLUSTER_LADDER: &str = r#"
[[queues]]
name = "hotline"
ladder = "emergency"
[[agents]]
id = "a1"
groups = ["first"]
[[agents]]
id = "a2"
groups = ["first"]
[[ladders]]
name = "emergency"
mode = "auto"
release_when = "waiting < 1"
release_hold = "10m"
[[ladders.stages]]
name = "first"
when = "waiting > 2"
for = "0s"
sign_in = { group = "first" }
[cluster]
nats = ["nats://127.0.0.1:4222"]
site = "north"
"#;

/// Remembers every action it is asked for, with its idempotency key.
#[derive(Default)]
struct Witness(std::sync::Mutex<Vec<(String, String)>>);

impl crate::cti::Cti for Witness {
    fn execute(&self, req: crate::cti::CtiRequest) -> crate::cti::CtiFuture {
        let key = crate::cti::IDEMPOTENCY_KEY
            .try_with(|k| k.clone())
            .unwrap_or_default();
        self.0.lock().unwrap().push((key, req.agent));
        Box::pin(async { CtiOutcome::ok("HTTP 200") })
    }
}

/// The dead leader decided stage 1 (sign a1 and a2 in) and died before
/// recording either answer; the phone system shows a1 in the queue (that
/// call went through), a2 not. The follower mirrored the decision and
/// acted on nothing; when it takes the lead, a1's sign-in is marked done
/// without calling the phone system again, and a2's runs with the dead
/// leader's key.
#[test]
fn a_new_leader_reruns_only_the_unanswered_acts_the_phone_system_does_not_show() {
    let cfg = Config::parse("t.toml", CLUSTER_LADDER).unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    let witness = Arc::new(Witness::default());
    let cti = Arc::new(CtiRegistry::only(witness.clone()));
    let (mut obs, _handle) = LadderObserver::new(&cfg, store.clone(), cti).unwrap();
    assert_eq!(obs.role(), Role::Single);
    let _written = obs.follow_a_leader();
    assert_eq!(obs.role(), Role::Following);
    let t0 = Ts(1_780_000_000_000);
    let mut engine = Engine::starting_at(cfg.engine_config(), t0);
    engine
        .apply(crate::event::Event {
            ts: t0,
            kind: crate::event::EventKind::AgentJoinedQueue {
                agent: "a1".into(),
                queue: "hotline".into(),
            },
        })
        .unwrap();
    obs.after_event(&mut engine, None);
    let sign_in = |agent: &str| ActionRecord {
        kind: "sign_in".into(),
        agent: Some(agent.into()),
        target_queue: Some("hotline".into()),
        result: PENDING.into(),
        detail: None,
        seats: None,
        at: None,
    };
    let entry = Entry {
        id: 7,
        ts: t0,
        queue: "hotline".into(),
        stage: 1,
        stage_name: "first".into(),
        direction: Direction::Up,
        reason: "waiting=3 > 2".into(),
        mode: "auto".into(),
        actions: vec![sign_in("a1"), sign_in("a2")],
        ladder: Some("emergency".into()),
        decision: None,
    };
    obs.mirror(&mut engine, Record::Entry { entry });
    obs.before_publish(&mut engine);
    let q = engine.queue_index("hotline");
    let status = obs.ladders[q].as_ref().and_then(|l| l.status()).unwrap();
    assert_eq!(
        (status.stage, status.signed_in),
        (1, vec!["a1".into(), "a2".into()])
    );
    assert!(
        witness.0.lock().unwrap().is_empty(),
        "a follower acts on nothing"
    );

    obs.lead(&mut engine);
    obs.before_publish(&mut engine);
    assert_eq!(
        *witness.0.lock().unwrap(),
        [("north:7:1".to_string(), "a2".to_string())]
    );
    let e = store.entry(7).unwrap().unwrap();
    let results: Vec<(&str, Option<&str>)> = e
        .actions
        .iter()
        .map(|a| (a.result.as_str(), a.detail.as_deref()))
        .collect();
    assert_eq!(
        results,
        [
            ("ok", Some("already in the queue per the phone system")),
            ("ok", Some("HTTP 200"))
        ]
    );
    // Ids continue after the mirrored log's.
    assert_eq!(obs.next_id, 7);
}

/// A follower refuses to act by hand: only the site's CTI leader decides.
#[test]
fn a_follower_refuses_a_manual_sign_in() {
    let cfg = Config::parse("t.toml", CLUSTER_LADDER).unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    let witness = Arc::new(Witness::default());
    let cti = Arc::new(CtiRegistry::only(witness.clone()));
    let (mut obs, _handle) = LadderObserver::new(&cfg, store, cti).unwrap();
    let _written = obs.follow_a_leader();
    let mut engine = Engine::starting_at(cfg.engine_config(), Ts(1_780_000_000_000));
    obs.after_event(&mut engine, None);
    let r = obs.manual(&mut engine, CtiVerb::SignIn, "a1", "hotline", "boss");
    assert!(
        matches!(&r, Err(ControlError::Conflict(m)) if m.contains("follows the site's CTI leader")),
        "{r:?}"
    );
    assert!(witness.0.lock().unwrap().is_empty());
}

fn ev(ts: Ts, kind: crate::event::EventKind) -> crate::event::Event {
    crate::event::Event { ts, kind }
}

/// The leader of a site decides stage 1 when three callers wait: the
/// decision goes to the escalation stream, and nobody is signed in until
/// the stream has acknowledged it. A decision the stream could not take is
/// not carried out: its actions are marked failed, saying why.
#[test]
fn a_leader_acts_only_once_the_stream_has_the_decision() {
    use crate::event::{AgentStatus, EventKind};
    // `ack`: the stream's answer; `lost`: the lease is lost before it.
    let run_with = |ack: Option<&str>, lost: bool| {
        let cfg = Config::parse("t.toml", CLUSTER_LADDER).unwrap();
        let store = Arc::new(Store::in_memory().unwrap());
        let witness = Arc::new(Witness::default());
        let cti = Arc::new(CtiRegistry::only(witness.clone()));
        let (mut obs, _handle) = LadderObserver::new(&cfg, store.clone(), cti).unwrap();
        let mut written = obs.follow_a_leader();
        let t0 = Ts(1_780_000_000_000);
        let mut engine = Engine::starting_at(cfg.engine_config(), t0);
        obs.after_event(&mut engine, None);
        obs.lead(&mut engine);
        for a in ["a1", "a2"] {
            let kind = EventKind::AgentState {
                agent: a.into(),
                status: AgentStatus::Available,
                reason: None,
                queue: None,
            };
            engine.apply(ev(t0, kind)).unwrap();
        }
        for c in ["c1", "c2", "c3"] {
            let kind = EventKind::CallEnqueued {
                call: c.into(),
                queue: "hotline".into(),
                caller: None,
                priority: None,
            };
            engine.apply(ev(t0, kind)).unwrap();
            let q = engine.find_queue("hotline");
            obs.after_event(&mut engine, q);
        }
        obs.before_publish(&mut engine);
        let Ok(Record::Entry { entry }) = written.try_recv() else {
            panic!("the decision goes to the escalation stream first");
        };
        assert_eq!(entry.actions.len(), 2);
        assert!(
            witness.0.lock().unwrap().is_empty(),
            "nothing before the ack"
        );
        if lost {
            obs.follow(&mut engine);
        }
        obs.appended(&mut engine, entry.id, ack.map(str::to_string));
        obs.before_publish(&mut engine);
        let calls = witness.0.lock().unwrap().clone();
        let stored = store.entry(entry.id).unwrap().unwrap();
        let results: Vec<(String, String)> = stored
            .actions
            .iter()
            .map(|a| (a.result.clone(), a.detail.clone().unwrap_or_default()))
            .collect();
        // The results follow the entry into the stream.
        let marks = std::iter::from_fn(|| written.try_recv().ok())
            .filter(|r| matches!(r, Record::Mark { .. }))
            .count();
        (entry.id, calls, results, marks)
    };
    let run = |ack: Option<&str>| run_with(ack, false);

    let (id, calls, results, marks) = run(None);
    let mut keys: Vec<String> = calls.into_iter().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, [format!("north:{id}:0"), format!("north:{id}:1")]);
    assert!(results.iter().all(|(r, _)| r == "ok"), "{results:?}");
    assert_eq!(marks, 2);

    let (_, calls, results, marks) = run(Some("nats: timed out"));
    assert!(calls.is_empty(), "not carried out: {calls:?}");
    for (r, detail) in &results {
        assert_eq!(r, "failed");
        assert_eq!(
            detail,
            "not recorded in the escalation stream, not carried out: nats: timed out"
        );
    }
    assert_eq!(marks, 2);

    // The lease is lost while the decision waits for the stream: its
    // actions are not started here (the new leader runs them).
    let (_, calls, results, marks) = run_with(None, true);
    assert!(calls.is_empty(), "{calls:?}");
    assert!(results.iter().all(|(r, _)| r == "pending"), "{results:?}");
    assert_eq!(marks, 0);
}

/// The leader wrote stage 1 (entry 7: sign a1 and a2 in) to its log and
/// died before appending it to the escalation stream: never acted on.
/// Restarted, it reads the stream to its end (the stream's entries end at
/// 6, its oldest record is an hour old) and sets entry 7 aside; when it
/// takes the lead again it does not carry out entry 7's actions (on the old
/// code it ran both, under keys no other instance's log has). Its older
/// entry 3, from before the stream's oldest record, cannot be judged and
/// stays.
#[test]
fn an_entry_never_appended_is_set_aside_and_not_carried_out_on_takeover() {
    let cfg = Config::parse("t.toml", CLUSTER_LADDER).unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    let t0 = Ts(1_780_000_000_000);
    let sign_in = |agent: &str, result: &str| ActionRecord {
        kind: "sign_in".into(),
        agent: Some(agent.into()),
        target_queue: Some("hotline".into()),
        result: result.into(),
        detail: None,
        seats: None,
        at: None,
    };
    let entry = |id: u64, ts: Ts, result: &str, direction: Direction| Entry {
        id,
        ts,
        queue: "hotline".into(),
        stage: 1,
        stage_name: "first".into(),
        direction,
        reason: "waiting=3 > 2".into(),
        mode: "auto".into(),
        actions: vec![sign_in("a1", result), sign_in("a2", result)],
        ladder: Some("emergency".into()),
        decision: None,
    };
    let old = Entry {
        actions: vec![],
        ..entry(3, Ts(t0.0 - 7_200_000), "ok", Direction::Down)
    };
    store.insert_entry(&old).unwrap();
    store
        .insert_entry(&entry(7, t0, PENDING, Direction::Up))
        .unwrap();
    let witness = Arc::new(Witness::default());
    let cti = Arc::new(CtiRegistry::only(witness.clone()));
    let (mut obs, _handle) = LadderObserver::new(&cfg, store.clone(), cti).unwrap();
    let _written = obs.follow_a_leader();
    let mut engine = Engine::starting_at(cfg.engine_config(), t0);
    obs.after_event(&mut engine, None);
    // The stream, read to its end: the other leader's entry 6.
    let theirs = Entry {
        actions: vec![],
        ..entry(6, Ts(t0.0 - 600_000), "ok", Direction::Down)
    };
    obs.mirror(&mut engine, Record::Entry { entry: theirs });
    obs.command(
        &mut engine,
        Command::ReadToEnd {
            retained_from: Ts(t0.0 - 3_600_000),
        },
    );
    obs.before_publish(&mut engine);
    let ids: Vec<u64> = store.all_entries().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, [3, 6]);
    let aside = store.unappended_records().unwrap();
    assert_eq!(aside.len(), 1);
    assert_eq!((aside[0].0, aside[0].1.as_str()), (7, "entry"));

    obs.lead(&mut engine);
    obs.before_publish(&mut engine);
    assert!(
        witness.0.lock().unwrap().is_empty(),
        "entry 7 is not carried out: {:?}",
        witness.0.lock().unwrap()
    );
    assert_eq!(obs.next_id, 6, "ids continue after the stream's");
}

/// Three callers wait on the hotline from 10:00:00; stage 1 wants that
/// for 30 seconds. This instance follows; the leader dies without deciding,
/// and this instance takes the lead at `takeover_s` seconds, the queue
/// still bad or (`drained`) empty again. Returns when stage 1 was decided
/// (seconds after the surge began), if it was, looking until 90 s.
fn stage_one_after_a_takeover(takeover_s: i64, drained: bool) -> Option<i64> {
    use crate::event::{AgentStatus, EventKind};
    let cfg = Config::parse(
        "t.toml",
        &CLUSTER_LADDER.replace(r#"for = "0s""#, r#"for = "30s""#),
    )
    .unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    let cti = Arc::new(CtiRegistry::only(Arc::new(Witness::default())));
    let (mut obs, _handle) = LadderObserver::new(&cfg, store.clone(), cti).unwrap();
    let _written = obs.follow_a_leader();
    let t0 = Ts(1_780_000_000_000);
    let mut engine = Engine::starting_at(cfg.engine_config(), t0);
    let q = engine.queue_index("hotline");
    obs.after_event(&mut engine, None);
    for a in ["a1", "a2"] {
        let kind = EventKind::AgentState {
            agent: a.into(),
            status: AgentStatus::Available,
            reason: None,
            queue: None,
        };
        engine.apply(ev(t0, kind)).unwrap();
        obs.after_event(&mut engine, None);
    }
    for c in ["c1", "c2", "c3"] {
        let kind = EventKind::CallEnqueued {
            call: c.into(),
            queue: "hotline".into(),
            caller: None,
            priority: None,
        };
        engine.apply(ev(t0, kind)).unwrap();
        obs.after_event(&mut engine, Some(q));
    }
    // The follower looks once a second, as the engine thread has it.
    for s in 1..=takeover_s {
        engine.tick(t0.plus_ms(s * 1000));
        obs.after_event(&mut engine, None);
    }
    if drained {
        for c in ["c1", "c2", "c3"] {
            let kind = EventKind::CallAbandoned {
                call: c.into(),
                queue: "hotline".into(),
            };
            engine
                .apply(ev(t0.plus_ms(takeover_s * 1000), kind))
                .unwrap();
            obs.after_event(&mut engine, Some(q));
        }
    }
    obs.lead(&mut engine);
    for s in takeover_s..=90 {
        engine.tick(t0.plus_ms(s * 1000));
        obs.after_event(&mut engine, None);
    }
    obs.before_publish(&mut engine);
    let entries = store.all_entries().unwrap();
    entries.first().map(|e| e.ts.since(t0) / 1000)
}

/// The follower kept the stage's clock on event time, as the leader did:
/// taking the lead 20 s into the surge, the new leader decides stage 1 at
/// 30 s, not 30 s after the takeover (the old code restarted the wait).
#[test]
fn a_takeover_during_a_surge_keeps_the_stage_s_clock() {
    assert_eq!(stage_one_after_a_takeover(20, false), Some(30));
}

/// Stage 1 came due at 30 s while nobody led (the old leader died at 25 s,
/// its lease ran out at 40 s). The callers still wait at the takeover, so
/// the new leader decides it at once, as a single instance would have at
/// 30 s; had the queue drained meanwhile, nobody is signed in for callers
/// no longer there.
#[test]
fn a_stage_due_while_nobody_led_is_decided_at_the_takeover_if_still_due() {
    assert_eq!(stage_one_after_a_takeover(40, false), Some(40));
    assert_eq!(stage_one_after_a_takeover(40, true), None);
}

/// The records a site's leader wrote for one surge of `hotline`: entry
/// `id` signs `agent` in (answered ok), entry `id + 1` releases the stage
/// and signs `agent` out (not answered yet).
fn surge_then_release(id: u64, ts: Ts, agent: &str) -> [Record; 3] {
    let act = |kind: &str| ActionRecord {
        kind: kind.into(),
        agent: Some(agent.into()),
        target_queue: Some("hotline".into()),
        result: PENDING.into(),
        detail: None,
        seats: None,
        at: None,
    };
    let entry = |id: u64, ts: Ts, direction: Direction, kind: &str, reason: &str| Entry {
        id,
        ts,
        queue: "hotline".into(),
        stage: 1,
        stage_name: "first".into(),
        direction,
        reason: reason.into(),
        mode: "auto".into(),
        actions: vec![act(kind)],
        ladder: Some("emergency".into()),
        decision: None,
    };
    [
        Record::Entry {
            entry: entry(id, ts, Direction::Up, "sign_in", "waiting=3 > 2"),
        },
        Record::Mark {
            entry: id,
            action: Some(0),
            ts_ms: ts.0 + 200,
            result: "ok".into(),
            detail: Some("HTTP 200".into()),
            by: None,
        },
        Record::Entry {
            entry: entry(
                id + 1,
                ts.plus_ms(60_000),
                Direction::Down,
                "sign_out",
                "waiting=0 < 1",
            ),
        },
    ]
}

/// A follower of a site that phones a webhook (which reports no
/// membership: the engine never sees a1 join `hotline`). The leader
/// signed a1 in, then decided the release and died before calling the
/// webhook. Taking the lead, this instance signs a1 out with the dead
/// leader's key: "not in the queue" is no evidence that a1 left it.
#[test]
fn a_new_leader_signs_out_a_webhook_agent_whose_membership_it_never_saw() {
    let cfg = Config::parse("t.toml", CLUSTER_LADDER).unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    let witness = Arc::new(Witness::default());
    let cti = Arc::new(CtiRegistry::only(witness.clone()));
    let (mut obs, _handle) = LadderObserver::new(&cfg, store.clone(), cti).unwrap();
    let _written = obs.follow_a_leader();
    let t0 = Ts(1_780_000_000_000);
    // A minute on: the release is due.
    let mut engine = Engine::starting_at(cfg.engine_config(), t0.plus_ms(61_000));
    obs.after_event(&mut engine, None);
    for r in surge_then_release(7, t0, "a1") {
        obs.mirror(&mut engine, r);
    }
    obs.before_publish(&mut engine);
    assert!(
        witness.0.lock().unwrap().is_empty(),
        "a follower acts on nothing"
    );

    obs.lead(&mut engine);
    obs.before_publish(&mut engine);
    assert_eq!(
        *witness.0.lock().unwrap(),
        [("north:8:0".to_string(), "a1".to_string())]
    );
    let e = store.entry(8).unwrap().unwrap();
    assert_eq!(
        (e.actions[0].result.as_str(), e.actions[0].detail.as_deref()),
        ("ok", Some("HTTP 200"))
    );
}

/// The same release, on a phone system that reports membership: the
/// engine saw a1 join `hotline` after the sign-in and then leave it (the
/// dead leader's sign-out went through before it could record it). The
/// new leader marks the sign-out done without calling again.
#[test]
fn a_new_leader_skips_a_sign_out_the_engine_saw_go_through() {
    use crate::event::EventKind;
    let cfg = Config::parse("t.toml", CLUSTER_LADDER).unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    let witness = Arc::new(Witness::default());
    let cti = Arc::new(CtiRegistry::only(witness.clone()));
    let (mut obs, _handle) = LadderObserver::new(&cfg, store.clone(), cti).unwrap();
    let _written = obs.follow_a_leader();
    let t0 = Ts(1_780_000_000_000);
    let mut engine = Engine::starting_at(cfg.engine_config(), t0);
    obs.after_event(&mut engine, None);
    let [signed_in, answered, released] = surge_then_release(7, t0, "a1");
    obs.mirror(&mut engine, signed_in);
    obs.mirror(&mut engine, answered);
    obs.before_publish(&mut engine);
    let q = engine.find_queue("hotline");
    engine
        .apply(ev(
            t0.plus_ms(300),
            EventKind::AgentJoinedQueue {
                agent: "a1".into(),
                queue: "hotline".into(),
            },
        ))
        .unwrap();
    obs.after_event(&mut engine, q);
    obs.mirror(&mut engine, released);
    obs.before_publish(&mut engine);
    engine
        .apply(ev(
            t0.plus_ms(60_300),
            EventKind::AgentLeftQueue {
                agent: "a1".into(),
                queue: "hotline".into(),
            },
        ))
        .unwrap();
    obs.after_event(&mut engine, q);

    obs.lead(&mut engine);
    obs.before_publish(&mut engine);
    assert!(
        witness.0.lock().unwrap().is_empty(),
        "{:?}",
        witness.0.lock().unwrap()
    );
    let e = store.entry(8).unwrap().unwrap();
    assert_eq!(
        (e.actions[0].result.as_str(), e.actions[0].detail.as_deref()),
        ("ok", Some("already out of the queue per the phone system"))
    );
}

/// A restarted follower receives every record the escalation stream
/// retains, most of them already in its log. Its ladder is rebuilt from
/// the log (the queue's whole day, read from SQLite) once per batch of
/// mirrored records, not once per record: a day of 300 surges costs one
/// rebuild, and receiving it all again costs none.
#[test]
fn a_follower_rebuilds_a_ladder_once_per_batch_of_mirrored_records() {
    let cfg = Config::parse("t.toml", CLUSTER_LADDER).unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    let cti = Arc::new(CtiRegistry::only(Arc::new(Witness::default())));
    let (mut obs, _handle) = LadderObserver::new(&cfg, store.clone(), cti).unwrap();
    let _written = obs.follow_a_leader();
    let t0 = Ts(1_780_000_000_000);
    let mut engine = Engine::starting_at(cfg.engine_config(), t0);
    obs.after_event(&mut engine, None);
    let day: Vec<Record> = (0..300u64)
        .flat_map(|i| {
            let [a, b, c] = surge_then_release(1 + 2 * i, t0.plus_ms(i as i64 * 120_000), "a1");
            let d = Record::Mark {
                entry: 2 + 2 * i,
                action: Some(0),
                ts_ms: t0.0 + i as i64 * 120_000 + 60_200,
                result: "ok".into(),
                detail: Some("HTTP 200".into()),
                by: None,
            };
            [a, b, c, d]
        })
        .collect();
    for r in day.iter().cloned() {
        obs.mirror(&mut engine, r);
    }
    obs.before_publish(&mut engine);
    assert_eq!(
        obs.rebuilds, 1,
        "one rebuild for 1,200 new records of one queue"
    );
    assert_eq!(store.all_entries().unwrap().len(), 600);

    // Restarted: the stream hands the whole day over again.
    for r in day {
        obs.mirror(&mut engine, r);
    }
    obs.before_publish(&mut engine);
    assert_eq!(obs.rebuilds, 1, "records already held change nothing");
    let q = engine.queue_index("hotline");
    assert!(obs.ladders[q].as_ref().is_some_and(|l| l.is_idle()));
}
