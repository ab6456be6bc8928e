//! A post's auto cover and a queue's escalation ladder sign people in
//! through the same phone system. While one rule's sign-in is still on the
//! wire the agent is not yet a member of the queue, so the other rule used
//! to see an idle B holder outside the hotline and pick the same person:
//! signed in twice, and the first rule to let go signed out someone the
//! other still counted on. Here the phone system answers only when the test
//! lets it, so the sign-ins stay in flight on event time.
//!
//! The floor: a1 holds the hotline desk; b2 and b3 are its B holders and
//! the hotline ladder's backup group, both taking sales calls, b2 idle the
//! longest (so each rule on its own picks b2 first).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acdmon::config::Config;
use acdmon::cti::{Cti, CtiFuture, CtiOutcome, CtiRegistry, CtiRequest, CtiVerb};
use acdmon::engine_thread::Driver;
use acdmon::escalation::observer::LadderObserver;
use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::floor::posts::{PostBoard, PostsObserver};
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
[[queues]]
name = "hotline"
ladder = "backup"
[[queues]]
name = "sales"

[[agents]]
id = "a1"
[[agents]]
id = "b2"
groups = ["backup"]
[[agents]]
id = "b3"
groups = ["backup"]

[[ladders]]
name = "backup"
release_when = "waiting < 1"
release_hold = "0s"
[[ladders.stages]]
name = "one more"
when = "waiting > 0"
for = "0s"
sign_in = { group = "backup", max = 1 }

[[posts]]
name = "hotline-desk"
a = ["a1"]
b = ["b2", "b3"]
queues = ["hotline"]
grace = "2m"
cover = "auto"
"#;

const T0: i64 = 1_800_000_000_000;

struct Floor {
    d: Driver,
    gate: Gate,
    board: Arc<PostBoard>,
}

fn ev(t: i64, kind: EventKind) -> Event {
    Event { ts: Ts(t), kind }
}

fn state(agent: &str, status: AgentStatus) -> EventKind {
    EventKind::AgentState {
        agent: agent.into(),
        status,
        reason: None,
        queue: None,
    }
}

fn join(agent: &str, queue: &str) -> EventKind {
    EventKind::AgentJoinedQueue {
        agent: agent.into(),
        queue: queue.into(),
    }
}

/// Both rules acting through one gated phone system, and the morning:
/// a1 on the desk, b2 in sales from T0, b3 from T0 + 5 min.
fn floor() -> Floor {
    let cfg = Config::parse("t.toml", CONFIG).unwrap();
    let gate = Gate {
        seen: Arc::default(),
        open: Arc::new(Semaphore::new(0)),
    };
    let reg = CtiRegistry::new();
    reg.insert("gate", Arc::new(gate.clone()));
    reg.set_default("gate");
    let cti = Arc::new(reg);
    let store = Arc::new(Store::in_memory().unwrap());
    let (ladder, _) = LadderObserver::new(&cfg, store.clone(), cti.clone()).unwrap();
    let (posts, board) = PostsObserver::new(&cfg);
    let posts = posts.with_cover(store, cti);
    let mut d = Driver::new(
        Engine::starting_at(cfg.engine_config(), Ts(T0)),
        Arc::new(RejectCounter::default()),
    );
    d.observers.push(Box::new(ladder));
    d.observers.push(Box::new(posts));
    d.apply("t", ev(T0, join("a1", "hotline")));
    d.apply("t", ev(T0, state("a1", AgentStatus::Available)));
    for (t, b) in [(T0, "b2"), (T0 + 300_000, "b3")] {
        d.apply("t", ev(t, join(b, "sales")));
        d.apply("t", ev(t, state(b, AgentStatus::Available)));
    }
    d.before_publish();
    Floor { d, gate, board }
}

fn call_waits(t: i64) -> Event {
    ev(
        t,
        EventKind::CallEnqueued {
            call: "c1".into(),
            queue: "hotline".into(),
            caller: None,
            priority: None,
        },
    )
}

impl Floor {
    fn seen(&self) -> Vec<(CtiVerb, String)> {
        self.gate.seen.lock().unwrap().clone()
    }

    /// Lets the phone system answer, and reports the sign-ins as the
    /// source would (a queue member added).
    async fn answer_sign_ins(&mut self, t: i64) {
        self.gate.open.add_permits(100);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.d.before_publish();
        let signed_in: Vec<String> = self
            .seen()
            .into_iter()
            .filter(|(v, _)| *v == CtiVerb::SignIn)
            .map(|(_, a)| a)
            .collect();
        for a in signed_in {
            self.d.apply("t", ev(t, join(&a, "hotline")));
        }
        self.d.before_publish();
    }

    /// Runs the engine at `t` until the phone system has been asked `n`
    /// times (the actions run as tasks), at most 5 s of wall time.
    async fn until_asked(&mut self, t: i64, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.seen().len() < n && Instant::now() < deadline {
            self.d.advance(Ts(t));
            self.d.before_publish();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn covering(&self) -> Vec<String> {
        self.board.snapshot().posts[0]
            .covering
            .iter()
            .map(|s| s.agent.clone())
            .collect()
    }

    fn ladders(&self, agent: &str) -> bool {
        let e = &self.d.engine;
        e.agent(e.find_agent(agent).unwrap())
            .signed_in_by_escalation
    }
}

fn sign_in(a: &str) -> (CtiVerb, String) {
    (CtiVerb::SignIn, a.to_string())
}

fn sign_out(a: &str) -> (CtiVerb, String) {
    (CtiVerb::SignOut, a.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_does_not_take_the_b_holder_the_desk_is_signing_in() {
    let mut f = floor();
    let t = T0 + 1_800_000;
    // A logs out: the desk signs b2 in; the phone system has not answered
    // when, 200 ms later, a call starts waiting and the ladder looks for
    // one of the backup group.
    f.d.apply("t", ev(t, state("a1", AgentStatus::LoggedOut)));
    f.d.before_publish();
    f.d.apply("t", call_waits(t + 200));
    f.d.before_publish();
    assert_eq!(
        f.seen(),
        [sign_in("b2"), sign_in("b3")],
        "b2 is the desk's while on the wire: the ladder takes b3"
    );
    assert_eq!(f.covering(), ["b2"]);
    assert!(f.ladders("b3") && !f.ladders("b2"));

    // Both answered; A is back while the call still waits: the desk lets
    // b2 go and nobody else; b3 stays, the ladder's.
    f.answer_sign_ins(t + 1_000).await;
    f.d.apply("t", ev(t + 60_000, state("a1", AgentStatus::Available)));
    f.d.before_publish();
    f.until_asked(t + 60_000, 3).await;
    assert_eq!(
        f.seen(),
        [sign_in("b2"), sign_in("b3"), sign_out("b2")],
        "the desk signs out only whom it signed in"
    );
    assert!(f.ladders("b3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_does_not_take_the_agent_the_ladder_is_signing_in() {
    let mut f = floor();
    let t = T0 + 1_800_000;
    // A call waits: the ladder signs b2 in; before the phone system has
    // answered, A logs out and the desk looks for a B holder.
    f.d.apply("t", call_waits(t));
    f.d.before_publish();
    f.d.apply("t", ev(t + 200, state("a1", AgentStatus::LoggedOut)));
    f.d.before_publish();
    assert_eq!(
        f.seen(),
        [sign_in("b2"), sign_in("b3")],
        "b2 is the ladder's while on the wire: the desk takes b3"
    );
    assert_eq!(f.covering(), ["b3"]);
    assert!(f.ladders("b2") && !f.ladders("b3"));

    // Both answered; the caller hangs up: the ladder releases b2 and
    // nobody else; b3 stays on the desk while A is away.
    f.answer_sign_ins(t + 1_000).await;
    f.d.apply(
        "t",
        ev(
            t + 30_000,
            EventKind::CallAbandoned {
                call: "c1".into(),
                queue: "hotline".into(),
            },
        ),
    );
    f.d.before_publish();
    f.until_asked(t + 30_000, 3).await;
    assert_eq!(
        f.seen(),
        [sign_in("b2"), sign_in("b3"), sign_out("b2")],
        "the ladder signs out only whom it signed in"
    );
    assert_eq!(f.covering(), ["b3"]);
}
