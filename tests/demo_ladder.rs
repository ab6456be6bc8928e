//! The demo's surge walks the ladder up and back down, on event time: the
//! demo configuration, the simulated centre and the ladder acting on the
//! simulator (as `acdmon demo` wires them), forty simulated minutes in well
//! under a second.

use std::sync::{Arc, Mutex};

use acdmon::cti::{Cti, CtiFuture, CtiOutcome, CtiRegistry, CtiRequest, CtiVerb};
use acdmon::demo::sim::{Centre, Simulator};
use acdmon::engine_thread::Driver;
use acdmon::escalation::observer::LadderObserver;
use acdmon::sources::RejectCounter;
use acdmon::state::Engine;
use acdmon::store::Store;
use acdmon::time::Ts;

/// The simulator's phone system, answering at once (the demo's `SimCti`
/// does the same through a channel to the simulator task).
struct Direct(Arc<Mutex<Simulator>>);

impl Cti for Direct {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        let mut sim = self.0.lock().unwrap();
        let r = match req.verb {
            CtiVerb::SignIn => sim.sign_in(&req.agent, &req.queue),
            CtiVerb::SignOut => sim.sign_out(&req.agent, &req.queue),
        };
        let o = match r {
            Ok(()) => CtiOutcome::ok("simulator accepted"),
            Err(e) => CtiOutcome::failed(e),
        };
        Box::pin(async move { o })
    }
}

#[test]
fn the_demo_surge_walks_the_ladder_up_and_back_down() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = acdmon::demo::demo_config("127.0.0.1:0", &dir.path().to_string_lossy()).unwrap();
    let start = Ts::parse_rfc3339("2026-11-23T09:00:00+08:00").unwrap();
    let sim = Arc::new(Mutex::new(Simulator::new(Centre::hotline(), 7, start)));
    let reg = CtiRegistry::new();
    reg.insert("simulator", Arc::new(Direct(sim.clone())));
    reg.set_default("simulator");
    let (ladder, _) =
        LadderObserver::new(&cfg, Arc::new(Store::in_memory().unwrap()), Arc::new(reg)).unwrap();
    let mut d = Driver::new(
        Engine::starting_at(cfg.engine_config(), start),
        Arc::new(RejectCounter::default()),
    );
    d.observers.push(Box::new(ladder));
    let mut log = Vec::new();
    let mut peak_stage = 0;
    let mut joined = 0;
    for s in 0..40 * 60 {
        let now = start.plus_ms(s * 1000);
        let events = sim.lock().unwrap().step(now);
        for ev in events {
            if let acdmon::event::EventKind::AgentJoinedQueue { agent, .. } = &ev.kind {
                joined += !agent.starts_with('a') as usize;
            }
            d.apply("simulator", ev);
        }
        d.advance(now);
        log.extend(d.before_publish());
        let q = d.engine.find_queue("hotline").unwrap();
        let v = d.engine.queue_view(q);
        peak_stage = peak_stage.max(v.escalation.map_or(0, |e| e.stage));
    }
    let mut by_id = std::collections::BTreeMap::new();
    for e in log {
        by_id.insert(e.id, e);
    }
    let walk: Vec<(String, String)> = by_id
        .values()
        .map(|e| (format!("{:?}", e.direction), e.stage_name.clone()))
        .collect();
    let stages = [
        "experts",
        "outbound",
        "quality",
        "back-office",
        "extend-shifts",
        "overtime",
    ];
    let want: Vec<(String, String)> = stages
        .iter()
        .map(|s| ("Up".to_string(), s.to_string()))
        .chain(
            stages
                .iter()
                .rev()
                .map(|s| ("Down".to_string(), s.to_string())),
        )
        .collect();
    assert_eq!(walk, want, "the whole plan, up and back down");
    assert_eq!(peak_stage, 6);
    assert_eq!(
        joined, 9,
        "non-phone staff joined the hotline, up to the seat limit"
    );
    let back_office = by_id
        .values()
        .find(|e| e.stage_name == "back-office")
        .unwrap();
    assert!(
        back_office
            .actions
            .iter()
            .any(|a| a.kind == "advise" && a.detail.as_deref().unwrap_or("").contains("seat limit")),
        "{back_office:?}"
    );
    let q = d.engine.find_queue("hotline").unwrap();
    assert!(d.engine.queue_view(q).escalation.is_none());
    for e in by_id.values() {
        for a in &e.actions {
            assert_ne!(a.result, "failed", "{e:?}");
        }
    }
}
