//! What a restart-proof day costs: the engine checkpoint of a large centre.
//!
//! A centre of 1,000 queues, 10,000 agents (10 members each), 5,000 callers
//! waiting and 120,000 outcomes in the rolling windows (40 calls answered and
//! completed per queue in the last 15 minutes).
//!
//! - `capture`: `Engine::checkpoint()`, the part that runs on the engine
//!   thread, against the baseline `baseline_snapshot_clone` (cloning the
//!   published snapshot of the same engine: what readers' views cost).
//! - `serialize_json` and `serialize_and_write_sqlite`: what the checkpoint
//!   writer thread does with it (the engine never waits for these).
//!
//! The serialised size is printed once. Run: `cargo bench --bench checkpoint`.

use std::hint::black_box;

use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::state::{Engine, EngineConfig, Publisher, Snapshot};
use acdmon::store::Store;
use acdmon::time::Ts;
use criterion::{Criterion, criterion_group, criterion_main};

const QUEUES: usize = 1_000;
const AGENTS_PER_QUEUE: usize = 10;
const WAITING_PER_QUEUE: usize = 5;
const CALLS_PER_QUEUE: usize = 40;

fn centre() -> Engine {
    let t0 = 1_800_000_000_000i64;
    let mut e = Engine::starting_at(EngineConfig::default(), Ts(t0));
    let mut apply = |ts: i64, kind: EventKind| {
        let _ = e.apply(Event { ts: Ts(ts), kind });
    };
    for q in 0..QUEUES {
        let queue = format!("queue-{q}");
        for a in 0..AGENTS_PER_QUEUE {
            apply(
                t0,
                EventKind::AgentState {
                    agent: format!("agent-{q}-{a}"),
                    status: AgentStatus::Available,
                    reason: None,
                    queue: Some(queue.clone()),
                },
            );
        }
        for c in 0..CALLS_PER_QUEUE {
            let call = format!("{q}.{c}");
            let agent = format!("agent-{q}-{}", c % AGENTS_PER_QUEUE);
            let t = t0 + c as i64 * 20_000;
            apply(
                t,
                EventKind::CallEnqueued {
                    call: call.clone(),
                    queue: queue.clone(),
                    caller: None,
                    priority: None,
                },
            );
            apply(
                t + 8_000,
                EventKind::CallAnswered {
                    call: call.clone(),
                    queue: queue.clone(),
                    agent: agent.clone(),
                },
            );
            apply(
                t + 15_000,
                EventKind::CallCompleted {
                    call,
                    queue: queue.clone(),
                    agent,
                },
            );
        }
        for w in 0..WAITING_PER_QUEUE {
            apply(
                t0 + 800_000 + w as i64,
                EventKind::CallEnqueued {
                    call: format!("{q}.w{w}"),
                    queue: queue.clone(),
                    caller: None,
                    priority: None,
                },
            );
        }
    }
    e
}

fn checkpoint(c: &mut Criterion) {
    let mut e = centre();
    let p = Publisher::new();
    p.publish(&mut e, Vec::new());
    let snap = p.snapshot();
    let cp = e.checkpoint();
    let body = serde_json::to_string(&cp).unwrap_or_default();
    let rolling: usize = cp.queues.iter().map(|q| q.rolling.len()).sum();
    let waiting: usize = cp.queues.iter().map(|q| q.waiting.len()).sum();
    eprintln!(
        "checkpoint of {} queues, {} agents, {waiting} waiting, {rolling} rolling outcomes: {} bytes of JSON",
        cp.queues.len(),
        cp.agents.len(),
        body.len()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("bench.sqlite").to_string_lossy()).expect("store");
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(20);
    g.bench_function("baseline_snapshot_clone", |b| {
        b.iter(|| black_box(Snapshot::clone(&snap)))
    });
    g.bench_function("capture", |b| b.iter(|| black_box(e.checkpoint())));
    g.bench_function("serialize_json", |b| {
        b.iter(|| black_box(serde_json::to_string(&cp).map(|s| s.len())))
    });
    g.bench_function("serialize_and_write_sqlite", |b| {
        b.iter(|| black_box(store.save_checkpoint(&cp).ok()))
    });
    g.finish();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
