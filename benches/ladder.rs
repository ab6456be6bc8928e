//! What the ladder costs the engine thread, as a ratio against the same
//! driver without it, measured in the same run.
//!
//! - `driver/no_observers`: 100,000 native events through `engine_thread::Driver`.
//! - `driver/with_ladder`: the same, with the ladder observer on all 50
//!   queues (in-memory audit log, log-only CTI). The stream keeps about six
//!   callers waiting per queue, so ladders climb and release: decisions,
//!   audit writes and CTI acts are part of the measurement, not only the
//!   idle check after each event.
//!
//! Run: `cargo bench --bench ladder` (prints the best-of-15 ratio first,
//! then criterion's estimates).

use std::hint::black_box;
use std::sync::Arc;

use acdmon::config::Config;
use acdmon::cti::CtiRegistry;
use acdmon::cti::log_only::LogOnly;
use acdmon::engine_thread::Driver;
use acdmon::escalation::observer::LadderObserver;
use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::sources::RejectCounter;
use acdmon::state::Engine;
use acdmon::store::Store;
use acdmon::time::Ts;
mod support;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use support::events;

fn config() -> Config {
    let mut text = String::from(
        r#"
[defaults]
ladder = "emergency"
[[ladders]]
name = "emergency"
max_added_seats = 9
release_when = "waiting < 2"
release_hold = "2m"
[[ladders.stages]]
name = "experts"
when = "waiting > 4"
for = "1m"
sign_in = { group = "experts", min = 2, max = 3 }
[[ladders.stages]]
name = "overtime"
when = "waiting > 5"
for = "1m"
advise = "Call emergency overtime"
staffing = "erlang_c"
"#,
    );
    for i in 0..20 {
        text.push_str(&format!(
            "[[agents]]\nid = \"x{i}\"\ngroups = [\"experts\"]\n"
        ));
    }
    Config::parse("bench.toml", &text).unwrap()
}

fn driver(cfg: &Config, start: Ts, ladder: bool) -> Driver {
    let mut d = Driver::new(
        Engine::starting_at(cfg.engine_config(), start),
        Arc::new(RejectCounter::default()),
    );
    if ladder {
        let store = Arc::new(Store::in_memory().unwrap());
        let cti = Arc::new(CtiRegistry::only(Arc::new(LogOnly)));
        let (obs, _) = LadderObserver::new(cfg, store, cti).unwrap();
        d.observers.push(Box::new(obs));
    }
    // The experts are logged in, doing other work.
    for i in 0..20 {
        d.apply(
            "bench",
            Event {
                ts: start,
                kind: EventKind::AgentState {
                    agent: format!("x{i}"),
                    status: AgentStatus::Available,
                    reason: None,
                    queue: None,
                },
            },
        );
    }
    d
}

fn bench(c: &mut Criterion) {
    const N: usize = 100_000;
    let evs = events(N);
    let cfg = config();
    {
        let mut d = driver(&cfg, evs[0].ts, true);
        let mut entries = 0;
        for ev in evs.clone() {
            d.apply("bench", ev);
            entries += d.before_publish().len();
        }
        eprintln!("with_ladder: {entries} escalation entries over {N} events");
    }
    // The machine is shared: interleave the two and keep each one's best
    // run, which other processes can only make slower.
    let mut best = [f64::MAX; 2];
    for _ in 0..15 {
        for (k, ladder) in [false, true].into_iter().enumerate() {
            let mut d = driver(&cfg, evs[0].ts, ladder);
            let v = evs.clone();
            let t = std::time::Instant::now();
            for (i, ev) in v.into_iter().enumerate() {
                d.apply("bench", ev);
                if i % 1000 == 999 {
                    black_box(d.before_publish());
                }
            }
            best[k] = best[k].min(t.elapsed().as_secs_f64());
        }
    }
    eprintln!(
        "best of 15: no_observers {:.1} ms ({:.0} ns/event), with_ladder {:.1} ms ({:.0} ns/event), ratio {:.2}",
        best[0] * 1e3,
        best[0] * 1e9 / N as f64,
        best[1] * 1e3,
        best[1] * 1e9 / N as f64,
        best[1] / best[0]
    );
    let mut g = c.benchmark_group("driver");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    for (name, ladder) in [("no_observers", false), ("with_ladder", true)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || (driver(&cfg, evs[0].ts, ladder), evs.clone()),
                |(mut d, v)| {
                    let mut entries = 0;
                    for (i, ev) in v.into_iter().enumerate() {
                        d.apply("bench", ev);
                        if i % 1000 == 999 {
                            entries += d.before_publish().len();
                        }
                    }
                    black_box(entries);
                    d
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
