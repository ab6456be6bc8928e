use std::sync::Mutex;

use super::*;
use crate::cti::{Cti, CtiFuture, CtiRequest};
use crate::state::EngineConfig;

/// A phone system that, when asked, looks in the audit log for the
/// decision it is asked to carry out, and refuses sign-outs when told to.
struct Witness {
    store: Arc<Store>,
    seen: Mutex<Vec<(CtiVerb, String, bool)>>,
    refuse_sign_out: bool,
}

impl Cti for Witness {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        let verb = match req.verb {
            CtiVerb::SignIn => "sign_in",
            CtiVerb::SignOut => "sign_out",
        };
        let logged = self.store.cover_entries(None).unwrap().iter().any(|e| {
            e.verb == verb && e.agent == req.agent && e.queue == req.queue && e.result == "pending"
        });
        self.seen
            .lock()
            .unwrap()
            .push((req.verb, req.agent.clone(), logged));
        let refuse = self.refuse_sign_out && req.verb == CtiVerb::SignOut;
        Box::pin(async move {
            if refuse {
                CtiOutcome::failed("busy here")
            } else {
                CtiOutcome {
                    apply_membership: true,
                    ..CtiOutcome::ok("done")
                }
            }
        })
    }
}

fn ev(engine: &mut Engine, t: i64, kind: EventKind) {
    engine.apply(Event { ts: Ts(t), kind }).unwrap();
}

fn state(agent: &str, status: AgentStatus) -> EventKind {
    EventKind::AgentState {
        agent: agent.into(),
        status,
        reason: None,
        queue: None,
    }
}

fn rule() -> PostRule {
    PostRule {
        name: "desk".into(),
        a: vec!["a1".into()],
        b: vec!["b1".into()],
        min: 1,
        queues: vec!["hotline".into()],
        when: None,
        grace_ms: 60_000,
        present_reasons: vec![],
        auto_cover: true,
    }
}

fn setup(refuse_sign_out: bool) -> (Engine, AutoCover, Arc<Witness>, Arc<Store>) {
    let store = Arc::new(Store::in_memory().unwrap());
    let witness = Arc::new(Witness {
        store: store.clone(),
        seen: Mutex::new(Vec::new()),
        refuse_sign_out,
    });
    let cti = Arc::new(CtiRegistry::only(witness.clone()));
    let mut engine = Engine::starting_at(EngineConfig::default(), Ts(1_000));
    ev(
        &mut engine,
        1_000,
        EventKind::AgentJoinedQueue {
            agent: "b1".into(),
            queue: "sales".into(),
        },
    );
    ev(&mut engine, 1_000, state("b1", AgentStatus::Available));
    ev(
        &mut engine,
        1_000,
        EventKind::AgentJoinedQueue {
            agent: "a1".into(),
            queue: "hotline".into(),
        },
    );
    (engine, AutoCover::new(store.clone(), cti), witness, store)
}

#[test]
fn the_decision_is_in_the_audit_log_before_the_phone_system_is_asked() {
    let (mut engine, mut cover, witness, store) = setup(false);
    let r = rule();
    // A is away: b1 is signed in.
    cover.step(&engine, &r, true, Cover::Grace, &[]);
    cover.drain(&mut engine);
    assert_eq!(
        *witness.seen.lock().unwrap(),
        vec![(CtiVerb::SignIn, "b1".to_string(), true)]
    );
    let b1 = engine.find_agent("b1").unwrap();
    let hotline = engine.find_queue("hotline").unwrap();
    assert!(engine.agent(b1).queues.contains(&hotline));
    // A is back: b1 is signed out, again logged first.
    cover.step(&engine, &r, true, Cover::A, &["a1".into()]);
    cover.drain(&mut engine);
    assert_eq!(
        witness.seen.lock().unwrap()[1],
        (CtiVerb::SignOut, "b1".to_string(), true)
    );
    assert!(!engine.agent(b1).queues.contains(&hotline));
    let log: Vec<(String, String)> = store
        .cover_entries(None)
        .unwrap()
        .into_iter()
        .map(|e| (e.verb, e.result))
        .collect();
    assert_eq!(
        log,
        [
            ("sign_in".into(), "ok".into()),
            ("sign_out".into(), "ok".into())
        ]
    );
}

#[test]
fn a_restart_remembers_whom_the_rule_signed_in() {
    let (mut engine, mut cover, _w, store) = setup(true);
    let r = rule();
    cover.step(&engine, &r, true, Cover::Grace, &[]);
    cover.drain(&mut engine);
    // A new observer on the same audit log (a restart) signs b1 out
    // when A is back; a refused sign-out stays the rule's to retry.
    let witness = Arc::new(Witness {
        store: store.clone(),
        seen: Mutex::new(Vec::new()),
        refuse_sign_out: true,
    });
    let mut again = AutoCover::new(store.clone(), Arc::new(CtiRegistry::only(witness.clone())));
    again.step(&engine, &r, true, Cover::A, &["a1".into()]);
    again.drain(&mut engine);
    assert_eq!(
        *witness.seen.lock().unwrap(),
        vec![(CtiVerb::SignOut, "b1".to_string(), true)]
    );
    assert_eq!(again.seats_of("desk")[0].phase, SeatPhase::In);
    assert_eq!(
        again.next_deadline(engine.now()),
        Some(engine.now().plus_ms(SIGN_OUT_RETRY_MS))
    );
}
