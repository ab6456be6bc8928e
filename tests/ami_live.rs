//! The live AMI source against a fake Asterisk manager over real TCP
//! (tests/common/ami.rs): no Asterisk can run here, so the fake speaks the
//! protocol as protocols.md section 1 records it, records the actions it
//! receives, and can drop the connection in the middle of a message.

mod common;

use std::sync::Arc;
use std::time::Duration;

use acdmon::config::{HumanDuration, Secret};
use acdmon::cti::{Cti, CtiRequest, CtiVerb};
use acdmon::event::AgentStatus;
use acdmon::sources::ami::cti::SignOutMode;
use acdmon::sources::ami::{AmiConfig, Auth, spawn};
use acdmon::sources::{Envelope, RejectCounter, SourceCtx, SourceHealth};
use acdmon::state::{Engine, EngineConfig};
use acdmon::time::Ts;
use common::ami::{Agent, Caller, FakeAmi, MemberState, Waiting, ev, get};
use tokio::sync::mpsc;

struct Rig {
    server: FakeAmi,
    rx: mpsc::Receiver<Envelope>,
    engine: Engine,
    health: Arc<SourceHealth>,
    rejects: Arc<RejectCounter>,
    cti: Arc<dyn Cti>,
    _task: tokio::task::JoinHandle<()>,
}

fn now_s() -> i64 {
    Ts::now().0 / 1000
}

async fn rig(
    setup: impl FnOnce(&mut common::ami::PbxState),
    tune: impl FnOnce(&mut AmiConfig),
) -> Rig {
    let server = FakeAmi::start("acdmon", "s3cret").await;
    {
        let mut st = server.state.lock().unwrap();
        st.clock = now_s();
        st.queues = vec!["support".into()];
        setup(&mut st);
    }
    let mut cfg = AmiConfig::new(&server.addr.to_string(), "acdmon", Secret::inline("s3cret"));
    cfg.reconnect_min = HumanDuration(Duration::from_millis(30));
    cfg.reconnect_max = HumanDuration(Duration::from_millis(100));
    cfg.action_timeout = HumanDuration(Duration::from_millis(800));
    tune(&mut cfg);
    let (tx, rx) = mpsc::channel(1024);
    let health = SourceHealth::new("pbx1", "ami");
    let rejects = Arc::new(RejectCounter::default());
    let started = spawn(
        cfg,
        SourceCtx::new("pbx1", tx, health.clone(), rejects.clone()),
    );
    let (task, cti) = (started.task, started.cti.expect("AMI has a CTI action"));
    Rig {
        server,
        rx,
        engine: Engine::starting_at(EngineConfig::default(), Ts::now()),
        health,
        rejects,
        cti,
        _task: task,
    }
}

impl Rig {
    /// Applies events until `cond` holds (5 s at most).
    async fn until(&mut self, what: &str, cond: impl Fn(&mut Engine, &SourceHealth) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if cond(&mut self.engine, &self.health) {
                return;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(
                    Envelope::Batch { events, .. }
                    | Envelope::Positioned { events, .. }
                    | Envelope::Checked { events, .. },
                )) => {
                    for e in events {
                        let _ = self.engine.apply(e);
                    }
                }
                Ok(Some(Envelope::Event { event, .. })) => {
                    let _ = self.engine.apply(event);
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("inbox closed while waiting for: {what}"),
                Err(_) => panic!("timed out waiting for: {what}"),
            }
        }
    }

    async fn synced(&mut self) {
        self.until("synced", |_, h| h.synced()).await;
    }

    fn waiting(&mut self, q: &str) -> u32 {
        match self.engine.find_queue(q) {
            Some(i) => self.engine.queue_view(i).waiting,
            None => 0,
        }
    }
}

fn status(e: &Engine, agent: &str) -> Option<AgentStatus> {
    e.find_agent(agent).map(|a| e.agent(a).status)
}

fn member(st: &mut common::ami::PbxState, ext: &str, name: &str, status: u8) {
    let clock = st.clock;
    st.members.insert(
        ("support".into(), format!("PJSIP/{ext}")),
        MemberState::new(name, status, clock - 3600),
    );
}

#[tokio::test]
async fn oversize_line_garbage_and_half_message_are_survived() {
    let mut r = rig(|st| member(st, "1001", "Alice", 1), |_| {}).await;
    r.synced().await;
    assert_eq!(
        r.server.action_names()[..3],
        ["Login".to_string(), "Ping".into(), "QueueStatus".into()]
    );
    let t = now_s();
    let c1 = Caller::new(&format!("{t}.1"), "5550001");
    // A 1025-byte line inside a block: the whole block is dropped.
    let long = ev::join("support", &c1, 1, 1, t, 0).replacen(
        "CallerIDName: Caller 5550001",
        &format!("CallerIDName: {}", "x".repeat(1025 - 14)),
        1,
    );
    assert!(long.lines().any(|l| l.len() == 1025));
    r.server.push(long);
    // Garbage between blocks.
    r.server.push(b"\x00\xff\xfe garbage \x07\r\n".to_vec());
    let c2 = Caller::new(&format!("{t}.2"), "5550002");
    r.server.push(ev::join("support", &c2, 1, 1, t, 100));
    // A half message, the rest later.
    let c3 = Caller::new(&format!("{t}.3"), "5550003");
    let text = ev::join("support", &c3, 2, 2, t, 200);
    let (a, b) = text.split_at(text.len() / 2);
    r.server.push(a.as_bytes().to_vec());
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.server.push(b.as_bytes().to_vec());
    r.until("two callers waiting", |e, _| {
        e.find_queue("support")
            .is_some_and(|q| e.queue_view(q).waiting == 2)
    })
    .await;
    let by = r.rejects.by_reason();
    assert_eq!(by.get("line_too_long"), Some(&1), "{by:?}");
    assert_eq!(by.get("malformed"), Some(&1), "{by:?}");
    assert!(r.health.connected() && r.health.synced());
    assert_eq!(r.server.connections(), 1);
}

#[tokio::test]
async fn reconnect_in_the_middle_of_a_surge_resyncs_waiting_and_agent_states() {
    let mut r = rig(
        |st| {
            member(st, "1001", "Alice", 1);
            member(st, "1002", "Bob", 1);
            member(st, "1003", "Carol", 1);
        },
        |_| {},
    )
    .await;
    r.synced().await;
    let t = now_s();
    let alice = Agent::new("1001", "Alice");
    let bob = Agent::new("1002", "Bob");
    // Surge: 12 callers join.
    let callers: Vec<Caller> = (0..12)
        .map(|i| Caller::new(&format!("{t}.{}", 100 + i), &format!("55510{i:02}")))
        .collect();
    for (i, c) in callers.iter().enumerate() {
        r.server.state.lock().unwrap().waiting.push(Waiting {
            queue: "support".into(),
            caller: c.clone(),
            joined: t,
        });
        r.server.push(ev::join(
            "support",
            c,
            i as u32 + 1,
            i as u32 + 1,
            t,
            i as u32,
        ));
    }
    // Alice and Bob answer the first two.
    for (c, a, st) in [(&callers[0], &alice, "1001"), (&callers[1], &bob, "1002")] {
        r.server.push(ev::leave("support", c, 1, 11, t + 1, 0));
        r.server
            .push(ev::connect("support", c, a, 1, 1, 1, t + 1, 10));
        let mut s = r.server.state.lock().unwrap();
        s.waiting.retain(|w| w.caller.uid != c.uid);
        let m = s
            .members
            .get_mut(&("support".to_string(), format!("PJSIP/{st}")))
            .unwrap();
        m.in_call = true;
        m.status = 2;
    }
    r.until("10 waiting, Alice and Bob on a call", |e, _| {
        e.find_queue("support")
            .is_some_and(|q| e.queue_view(q).waiting == 10)
            && status(e, "Alice") == Some(AgentStatus::OnCall)
            && status(e, "Bob") == Some(AgentStatus::OnCall)
    })
    .await;

    // The connection drops in the middle of a message.
    let half = ev::join(
        "support",
        &Caller::new("lost.1", "5559999"),
        11,
        11,
        t + 2,
        0,
    );
    r.server.push(half.as_bytes()[..half.len() / 3].to_vec());
    // While we are away: 3 more join, 4 hang up, Carol pauses, Bob's call ends.
    {
        let mut s = r.server.state.lock().unwrap();
        s.clock = t + 30;
        for i in 0..3 {
            s.waiting.push(Waiting {
                queue: "support".into(),
                caller: Caller::new(&format!("{t}.{}", 200 + i), "5552000"),
                joined: t + 5,
            });
        }
        let gone: Vec<String> = s
            .waiting
            .iter()
            .take(4)
            .map(|w| w.caller.uid.clone())
            .collect();
        s.waiting.retain(|w| !gone.contains(&w.caller.uid));
        let carol = s
            .members
            .get_mut(&("support".to_string(), "PJSIP/1003".to_string()))
            .unwrap();
        carol.paused = true;
        carol.reason = "Break".into();
        let bob = s
            .members
            .get_mut(&("support".to_string(), "PJSIP/1002".to_string()))
            .unwrap();
        bob.in_call = false;
        bob.status = 1;
    }
    r.server.drop_connection();
    r.server.wait_connections(2).await;
    let expected = r.server.state.lock().unwrap().waiting.len() as u32;
    assert_eq!(expected, 9);
    r.until("resynced after reconnect", |e, h| {
        h.synced()
            && e.find_queue("support")
                .is_some_and(|q| e.queue_view(q).waiting == 9)
            && status(e, "Carol") == Some(AgentStatus::Paused)
            && status(e, "Bob") == Some(AgentStatus::Available)
    })
    .await;
    assert_eq!(r.waiting("support"), 9);
    assert_eq!(status(&r.engine, "Alice"), Some(AgentStatus::OnCall));
    let q = r.engine.find_queue("support").unwrap();
    let v = r.engine.queue_view(q);
    // Joined-while-away callers got join = list time - Wait; the three new
    // ones waited 25 s at list time.
    assert_eq!(v.agents.paused, 1);
    assert_eq!(v.agents.on_call, 1);
    assert_eq!(v.agents.available, 1);
    // Nothing counted for calls whose outcome we never saw.
    assert_eq!(v.windows.today.abandoned, 0);
    let names = r.server.action_names();
    assert_eq!(names.iter().filter(|n| *n == "QueueStatus").count(), 2);
    assert_eq!(names.iter().filter(|n| *n == "Login").count(), 2);
}

#[tokio::test]
async fn periodic_relist_heals_a_lost_event() {
    let mut r = rig(
        |st| member(st, "1001", "Alice", 1),
        |c| c.resync_interval = HumanDuration(Duration::from_millis(150)),
    )
    .await;
    r.synced().await;
    // A caller joins, but its QueueCallerJoin never reaches us.
    let t = now_s();
    r.server.state.lock().unwrap().waiting.push(Waiting {
        queue: "support".into(),
        caller: Caller::new(&format!("{t}.77"), "5557777"),
        joined: t,
    });
    r.until("the relist shows the caller", |e, _| {
        e.find_queue("support")
            .is_some_and(|q| e.queue_view(q).waiting == 1)
    })
    .await;
    assert!(r.health.synced());
    assert!(
        r.server
            .action_names()
            .iter()
            .filter(|n| *n == "QueueStatus")
            .count()
            >= 2
    );
}

#[tokio::test]
async fn a_list_that_never_completes_is_a_stuck_connection() {
    let r = rig(
        |st| st.stall_lists = true,
        |c| c.action_timeout = HumanDuration(Duration::from_millis(100)),
    )
    .await;
    r.server.wait_connections(2).await;
    assert!(!r.health.synced());
    let err = r.health.last_error().unwrap_or_default();
    assert!(err.contains("did not complete"), "{err}");
}

#[tokio::test]
async fn md5_login_never_sends_the_secret() {
    let mut r = rig(|_| {}, |c| c.auth = Auth::Md5).await;
    r.synced().await;
    let actions = r.server.actions();
    assert_eq!(get(&actions[0], "Action"), Some("Challenge"));
    assert_eq!(get(&actions[1], "AuthType"), Some("MD5"));
    assert!(get(&actions[1], "Key").is_some());
    assert!(get(&actions[1], "Secret").is_none());
}

#[tokio::test]
async fn a_wrong_secret_is_reported_and_retried() {
    let r = rig(|st| st.secret = "other".into(), |_| {}).await;
    r.server.wait_connections(2).await;
    assert!(!r.health.connected());
    let err = r.health.last_error().unwrap_or_default();
    assert!(err.contains("Authentication failed"), "{err}");
    assert!(!err.contains("s3cret"));
}

fn req(verb: CtiVerb, ext: &str) -> CtiRequest {
    CtiRequest {
        verb,
        agent: ext.into(),
        interface: format!("PJSIP/{ext}"),
        name: None,
        queue: "support".into(),
    }
}

#[tokio::test]
async fn escalation_sign_in_and_out_through_the_live_session() {
    let mut r = rig(|st| member(st, "1001", "Alice", 1), |_| {}).await;
    r.synced().await;
    // Sign-in: QueueAdd, confirmed by the QueueMemberAdded that comes back.
    let out = r.cti.execute(req(CtiVerb::SignIn, "1004")).await;
    assert!(out.ok, "{out:?}");
    assert!(out.detail.contains("Added interface to queue"), "{out:?}");
    assert!(out.detail.contains("confirmed"), "{out:?}");
    r.until("1004 member and available", |e, _| {
        status(e, "1004") == Some(AgentStatus::Available)
    })
    .await;
    let add = r
        .server
        .actions()
        .into_iter()
        .find(|a| get(a, "Action") == Some("QueueAdd"))
        .unwrap();
    assert_eq!(get(&add, "Interface"), Some("PJSIP/1004"));
    assert_eq!(get(&add, "Queue"), Some("support"));
    assert_eq!(get(&add, "MemberName"), Some("1004"));
    // Again: "Already there" is a success.
    let out = r.cti.execute(req(CtiVerb::SignIn, "1004")).await;
    assert!(out.ok && out.detail.contains("Already there"), "{out:?}");
    // Sign-out, then again: "Not there" is a success.
    let out = r.cti.execute(req(CtiVerb::SignOut, "1004")).await;
    assert!(out.ok && out.detail.contains("Removed"), "{out:?}");
    r.until("1004 logged out", |e, _| {
        status(e, "1004") == Some(AgentStatus::LoggedOut)
    })
    .await;
    let out = r.cti.execute(req(CtiVerb::SignOut, "1004")).await;
    assert!(out.ok && out.detail.contains("Not there"), "{out:?}");
    // A queue that does not exist is a failure with Asterisk's words.
    let mut bad = req(CtiVerb::SignIn, "1004");
    bad.queue = "nosuch".into();
    let out = r.cti.execute(bad).await;
    assert!(!out.ok && out.detail.contains("No such queue"), "{out:?}");
    // A value with a line break never reaches the wire.
    let mut evil = req(CtiVerb::SignIn, "1004");
    evil.queue = "support\r\nAction: Originate".into();
    let out = r.cti.execute(evil).await;
    assert!(!out.ok, "{out:?}");
    assert!(!r.server.action_names().contains(&"Originate".to_string()));
    // Asterisk stays silent: the action times out, the session survives.
    r.server.state.lock().unwrap().answer_actions = false;
    let started = std::time::Instant::now();
    let out = r.cti.execute(req(CtiVerb::SignIn, "1005")).await;
    assert!(!out.ok && out.detail.contains("timeout"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.server.connections(), 1);
}

#[tokio::test]
async fn already_there_for_an_unknown_member_relists_the_queue() {
    let mut r = rig(|_| {}, |_| {}).await;
    r.synced().await;
    // Someone added 1007 behind our back and we missed the event.
    member(&mut r.server.state.lock().unwrap(), "1007", "1007", 1);
    let out = r.cti.execute(req(CtiVerb::SignIn, "1007")).await;
    assert!(out.ok, "{out:?}");
    r.until("1007 known after relist", |e, _| {
        status(e, "1007") == Some(AgentStatus::Available)
    })
    .await;
    let relist = r
        .server
        .actions()
        .into_iter()
        .filter(|a| get(a, "Action") == Some("QueueStatus"))
        .nth(1)
        .unwrap();
    assert_eq!(get(&relist, "Queue"), Some("support"));
}

#[tokio::test]
async fn pause_mode_signs_out_by_pausing_and_in_by_unpausing() {
    let mut r = rig(
        |st| member(st, "1001", "Alice", 1),
        |c| c.sign_out = SignOutMode::Pause,
    )
    .await;
    r.synced().await;
    let out = r.cti.execute(req(CtiVerb::SignOut, "1001")).await;
    assert!(
        out.ok && out.detail.contains("paused successfully"),
        "{out:?}"
    );
    r.until("Alice paused", |e, _| {
        status(e, "Alice") == Some(AgentStatus::Paused)
    })
    .await;
    let out = r.cti.execute(req(CtiVerb::SignIn, "1001")).await;
    assert!(out.ok && out.detail.contains("unpaused"), "{out:?}");
    // Not a member yet: unpause says "Interface not found", so it adds.
    let out = r.cti.execute(req(CtiVerb::SignIn, "1009")).await;
    assert!(out.ok && out.detail.contains("Added"), "{out:?}");
    let pause = r
        .server
        .actions()
        .into_iter()
        .find(|a| get(a, "Action") == Some("QueuePause"))
        .unwrap();
    assert_eq!(get(&pause, "Paused"), Some("true"));
    assert_eq!(get(&pause, "Reason"), Some("acdmon"));
}
