//! What schedule adherence costs the engine thread per event.
//!
//! A floor of `N` scheduled agents (200 and 2,000), each with one `phone`
//! slot over the whole day, in one queue. Each iteration applies one agent
//! state change (agents take turns: paused for lunch, available again), as
//! a source would, through the engine driver:
//!
//! - `engine_only/N`: the driver without observers (the baseline);
//! - `with_adherence/N`: the same with the adherence observer.
//!
//! The ratio `with_adherence / engine_only` at 200 and at 2,000 agents says
//! whether the observer's cost per event grows with the number of scheduled
//! agents. Run: `cargo bench --bench adherence`.

use std::hint::black_box;
use std::sync::Arc;

use acdmon::engine_thread::Driver;
use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::floor::adherence::{AdherenceObserver, parse_plan};
use acdmon::sources::RejectCounter;
use acdmon::state::Engine;
use acdmon::time::Ts;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const T0: i64 = 1_795_402_800_000; // 2026-11-23 11:00 +08:00

fn floor(n: usize, adherence: bool) -> Driver {
    let mut text =
        String::from("[time]\nzone = \"Asia/Shanghai\"\n[[queues]]\nname = \"hotline\"\n");
    for a in 0..n {
        text.push_str(&format!("[[agents]]\nid = \"a{a}\"\n"));
    }
    text.push_str("[adherence]\n[[adherence.activities]]\nname = \"phone\"\ntolerance = \"1m\"\n");
    let cfg = acdmon::config::Config::parse("bench.toml", &text).expect("config");
    let mut d = Driver::new(
        Engine::starting_at(cfg.engine_config(), Ts(T0)),
        Arc::new(RejectCounter::default()),
    );
    if adherence {
        let (obs, handle) = AdherenceObserver::new(&cfg).expect("adherence");
        let plan: String = (0..n)
            .map(|a| format!("a{a},2026-11-23 00:00,2026-11-24 00:00,phone\n"))
            .collect();
        let plan = parse_plan(&plan, &cfg.zone, &|_| true).expect("plan");
        handle.plan.store(Arc::new(plan));
        d.observers.push(Box::new(obs));
    }
    for a in 0..n {
        d.apply(
            "bench",
            Event {
                ts: Ts(T0),
                kind: EventKind::AgentState {
                    agent: format!("a{a}"),
                    status: AgentStatus::Available,
                    reason: None,
                    queue: Some("hotline".into()),
                },
            },
        );
    }
    d
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("adherence_per_event");
    for n in [200usize, 2_000] {
        for (name, on) in [("engine_only", false), ("with_adherence", true)] {
            let mut d = floor(n, on);
            let ids: Vec<String> = (0..n).map(|a| format!("a{a}")).collect();
            let mut i = 0usize;
            let mut t = T0;
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    i += 1;
                    t += 10;
                    let agent = ids[i % n].clone();
                    let paused = (i / n).is_multiple_of(2);
                    let ev = Event {
                        ts: Ts(t),
                        kind: EventKind::AgentState {
                            agent,
                            status: if paused {
                                AgentStatus::Paused
                            } else {
                                AgentStatus::Available
                            },
                            reason: paused.then(|| "lunch".to_string()),
                            queue: None,
                        },
                    };
                    d.apply("bench", ev);
                    // Deltas are taken at publish, as the daemon does.
                    black_box(d.before_publish());
                    black_box(d.engine.take_dirty());
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
