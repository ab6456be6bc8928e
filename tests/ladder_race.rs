//! A sign-out never overtakes the sign-in it undoes: while the phone system
//! has not yet answered an agent's sign-in, the release that signs the same
//! agent out waits for it, and the engine thread never waits for either.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acdmon::config::Config;
use acdmon::cti::{Cti, CtiFuture, CtiOutcome, CtiRegistry, CtiRequest, CtiVerb};
use acdmon::engine_thread::Driver;
use acdmon::escalation::observer::LadderObserver;
use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::sources::RejectCounter;
use acdmon::state::Engine;
use acdmon::store::Store;
use acdmon::time::Ts;
use tokio::sync::Semaphore;

/// A phone system that answers only when the test lets it.
#[derive(Clone)]
struct Gate {
    seen: Arc<Mutex<Vec<(CtiVerb, String)>>>,
    open: Arc<Semaphore>,
}

impl Cti for Gate {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        self.seen
            .lock()
            .unwrap()
            .push((req.verb, req.agent.clone()));
        let open = self.open.clone();
        Box::pin(async move {
            let _p = open.acquire().await;
            CtiOutcome::ok("done")
        })
    }
}

const CONFIG: &str = r#"
[[agents]]
id = "x1"
groups = ["experts"]
[[queues]]
name = "hotline"
ladder = "fast"
[[ladders]]
name = "fast"
release_when = "waiting < 1"
release_hold = "0s"
[[ladders.stages]]
name = "experts"
when = "waiting > 0"
for = "0s"
sign_in = { group = "experts" }
"#;

fn ev(t: i64, kind: EventKind) -> Event {
    Event { ts: Ts(t), kind }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_waits_for_the_sign_in_it_undoes() {
    let cfg = Config::parse("t.toml", CONFIG).unwrap();
    let gate = Gate {
        seen: Arc::default(),
        open: Arc::new(Semaphore::new(0)),
    };
    let reg = CtiRegistry::new();
    reg.insert("gate", Arc::new(gate.clone()));
    reg.set_default("gate");
    let (obs, _) =
        LadderObserver::new(&cfg, Arc::new(Store::in_memory().unwrap()), Arc::new(reg)).unwrap();
    let t0 = 1_800_000_000_000;
    let mut d = Driver::new(
        Engine::starting_at(cfg.engine_config(), Ts(t0)),
        Arc::new(RejectCounter::default()),
    );
    d.observers.push(Box::new(obs));
    d.apply(
        "t",
        ev(
            t0,
            EventKind::AgentState {
                agent: "x1".into(),
                status: AgentStatus::Available,
                reason: None,
                queue: None,
            },
        ),
    );
    let started = Instant::now();
    d.apply(
        "t",
        ev(
            t0 + 1000,
            EventKind::CallEnqueued {
                call: "c1".into(),
                queue: "hotline".into(),
                caller: None,
                priority: None,
            },
        ),
    );
    d.before_publish();
    // The caller leaves at once: the release is decided while the sign-in
    // is still on the wire.
    d.apply(
        "t",
        ev(
            t0 + 2000,
            EventKind::CallAbandoned {
                call: "c1".into(),
                queue: "hotline".into(),
            },
        ),
    );
    let entries = d.before_publish();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the engine never waits"
    );
    assert!(
        entries.iter().any(
            |e| e.stage_name == "experts" && e.direction == acdmon::escalation::Direction::Down
        ),
        "{entries:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    d.before_publish();
    assert_eq!(
        *gate.seen.lock().unwrap(),
        [(CtiVerb::SignIn, "x1".to_string())],
        "the sign-out waits for the sign-in's answer"
    );
    gate.open.add_permits(10);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        d.advance(Ts(t0 + 3000));
        d.before_publish();
        if gate.seen.lock().unwrap().len() == 2 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *gate.seen.lock().unwrap(),
        [
            (CtiVerb::SignIn, "x1".to_string()),
            (CtiVerb::SignOut, "x1".to_string())
        ]
    );
}
