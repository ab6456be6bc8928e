//! What publishing costs at 1,000 queues, as ratios against baselines
//! measured in the same run.
//!
//! - `metrics_render_1000q`: `/metrics` text for 1,000 queues (~53 series
//!   each, wait histograms with samples), through `Metrics::render`, against
//!   `baseline_fmt_same_lines`: writing the same number of exposition lines
//!   with `std::fmt` into one `String` (the floor of producing that text).
//! - `ws_frame_1000q`: serializing one `/ws` delta of 1,000 changed queue
//!   views (what the hub does once per frame for all clients), against
//!   `baseline_json_api`: the `/api/v1/queues` body for the same views.
//!
//! Run: `cargo bench --bench publish`. The WebSocket latency under load is
//! measured by `cargo run --release --example ws_load` (see docs/publishing.md).

use std::fmt::Write;
use std::hint::black_box;
use std::sync::Arc;

use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::publish::metrics::Metrics;
use acdmon::sources::{HealthRegistry, RejectCounter, SourceHealth};
use acdmon::state::{Engine, EngineConfig, Publisher};
use acdmon::time::Ts;
use criterion::{Criterion, criterion_group, criterion_main};

const QUEUES: usize = 1000;

/// An engine with 1,000 queues, each with members, waiting callers and
/// answered calls (so every histogram has samples), published once.
fn floor(metrics: &Metrics) -> (Engine, Arc<Publisher>) {
    let recorder = metrics.recorder();
    metrics::with_local_recorder(&*recorder, || {
        let t0 = 1_800_000_000_000i64;
        let mut e = Engine::starting_at(EngineConfig::default(), Ts(t0));
        for q in 0..QUEUES {
            let queue = format!("queue-{q}");
            for a in 0..3 {
                let _ = e.apply(Event {
                    ts: Ts(t0),
                    kind: EventKind::AgentState {
                        agent: format!("a{q}-{a}"),
                        status: AgentStatus::Available,
                        reason: None,
                        queue: Some(queue.clone()),
                    },
                });
            }
            for c in 0..4 {
                let call = format!("c{q}-{c}");
                let _ = e.apply(Event {
                    ts: Ts(t0 + c * 1000),
                    kind: EventKind::CallEnqueued {
                        call: call.clone(),
                        queue: queue.clone(),
                        caller: None,
                        priority: None,
                    },
                });
                if c < 2 {
                    let _ = e.apply(Event {
                        ts: Ts(t0 + 15_000 + c * 7000),
                        kind: EventKind::CallAnswered {
                            call,
                            queue: queue.clone(),
                            agent: format!("a{q}-{c}"),
                        },
                    });
                }
            }
        }
        let p = Arc::new(Publisher::new());
        p.publish(&mut e, Vec::new());
        (e, p)
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let metrics = Metrics::new(false);
    let (_engine, publisher) = floor(&metrics);
    let health = HealthRegistry::default();
    health.register(SourceHealth::new("pbx1", "ami"));
    let rejects = RejectCounter::default();
    {
        let _g = rt.enter();
        acdmon::publish::metrics::spawn(metrics.clone());
    }
    let text = metrics.render(&publisher, &health, &rejects, &Default::default());
    assert_eq!(text.matches("acd_queue_waiting_calls{").count(), QUEUES);
    let lines = text.lines().filter(|l| !l.starts_with('#')).count();
    eprintln!("/metrics at {QUEUES} queues: {lines} series lines");

    let mut g = c.benchmark_group("metrics");
    g.sample_size(30);
    g.bench_function("metrics_render_1000q", |b| {
        b.iter(|| black_box(metrics.render(&publisher, &health, &rejects, &Default::default())))
    });
    g.bench_function("baseline_fmt_same_lines", |b| {
        b.iter(|| {
            let mut s = String::with_capacity(lines * 64);
            for i in 0..lines {
                let _ = writeln!(
                    s,
                    "acd_queue_agents{{queue=\"queue-{}\",state=\"available\"}} {}",
                    i % QUEUES,
                    black_box(i as f64)
                );
            }
            black_box(s)
        })
    });
    g.finish();

    let snap = publisher.snapshot();
    let mut g = c.benchmark_group("ws");
    g.sample_size(30);
    g.bench_function("ws_frame_1000q", |b| {
        b.iter(|| {
            black_box(acdmon::publish::ws::encode_delta(
                snap.seq,
                snap.as_of,
                &snap.queues,
                &[],
                &[],
            ))
        })
    });
    g.bench_function("baseline_json_api", |b| {
        b.iter(|| black_box(serde_json::to_string(&snap.queues).unwrap()))
    });
    g.finish();
    drop(rt);
}

criterion_group!(benches, bench);
criterion_main!(benches);
