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
//! - `follower/mirror_day`: a cluster follower (`follow_a_leader`) taking
//!   a day of the leader's escalation records for one queue (1,200
//!   records: 300 surges, each a sign-in, its answer, the release and its
//!   answer) through the control channel, 64 at a time as the stream task
//!   hands them over, then the same day again (a restarted follower reads
//!   every retained record, all already in its log). Baseline: the same
//!   records written straight into the audit log (`Store::mirror_*`), the
//!   floor any follower pays.
//!
//! Run: `cargo bench --bench ladder` (prints the best-of-15 ratio first,
//! then criterion's estimates; `cargo bench --bench ladder -- follower`
//! for the follower case alone).

use std::hint::black_box;
use std::sync::Arc;

use acdmon::config::Config;
use acdmon::cti::CtiRegistry;
use acdmon::cti::log_only::LogOnly;
use acdmon::engine_thread::Driver;
use acdmon::escalation::control::Command;
use acdmon::escalation::observer::LadderObserver;
use acdmon::escalation::stream::Record;
use acdmon::escalation::{ActionRecord, Direction, Entry};
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

/// A day of one queue's escalation records, as a site's leader appends
/// them: `surges` sign-ins, each answered, released and answered.
fn day_of_records(start: Ts, surges: u64) -> Vec<Record> {
    let entry = |id: u64, ts: Ts, direction: Direction, kind: &str| Entry {
        id,
        ts,
        queue: "hotline".into(),
        stage: 1,
        stage_name: "experts".into(),
        direction,
        reason: "bench".into(),
        mode: "auto".into(),
        actions: vec![ActionRecord {
            kind: kind.into(),
            agent: Some("x0".into()),
            target_queue: Some("hotline".into()),
            result: "pending".into(),
            detail: None,
            seats: None,
            at: None,
        }],
        ladder: Some("emergency".into()),
        decision: None,
    };
    let ok = |id: u64, ts: Ts| Record::Mark {
        entry: id,
        action: Some(0),
        ts_ms: ts.0 + 200,
        result: "ok".into(),
        detail: Some("HTTP 200".into()),
        by: None,
    };
    (0..surges)
        .flat_map(|i| {
            let (up, down) = (1 + 2 * i, 2 + 2 * i);
            let t = start.plus_ms(i as i64 * 120_000);
            let t2 = t.plus_ms(60_000);
            [
                Record::Entry {
                    entry: entry(up, t, Direction::Up, "sign_in"),
                },
                ok(up, t),
                Record::Entry {
                    entry: entry(down, t2, Direction::Down, "sign_out"),
                },
                ok(down, t2),
            ]
        })
        .collect()
}

/// Mirrors `day` twice into a fresh follower, 64 records per publish (the
/// control channel's capacity).
fn follow_day(cfg: &Config, start: Ts, day: &[Record]) -> usize {
    let mut d = Driver::new(
        Engine::starting_at(cfg.engine_config(), start),
        Arc::new(RejectCounter::default()),
    );
    d.engine.queue_index("hotline");
    let store = Arc::new(Store::in_memory().unwrap());
    let cti = Arc::new(CtiRegistry::only(Arc::new(LogOnly)));
    let (mut obs, handle) = LadderObserver::new(cfg, store, cti).unwrap();
    let _stream = obs.follow_a_leader();
    d.observers.push(Box::new(obs));
    let mut published = d.before_publish().len();
    for _ in 0..2 {
        for r in day {
            while let Err(e) = handle.tx.try_send(Command::Mirror(r.clone())) {
                assert!(matches!(e, tokio::sync::mpsc::error::TrySendError::Full(_)));
                published += d.before_publish().len();
            }
        }
        published += d.before_publish().len();
    }
    published
}

/// The baseline: the same records written straight into an audit log.
fn store_day(day: &[Record]) -> usize {
    let store = Store::in_memory().unwrap();
    let mut new = 0;
    for _ in 0..2 {
        for r in day {
            let written = match r {
                Record::Entry { entry } => store.mirror_entry(entry),
                Record::Mark {
                    entry,
                    action,
                    ts_ms,
                    result,
                    detail,
                    by,
                } => store.mirror_result(
                    *entry,
                    *action,
                    Ts(*ts_ms),
                    result,
                    detail.as_deref(),
                    by.as_deref(),
                ),
            };
            new += usize::from(written.unwrap());
        }
    }
    new
}

fn follower(c: &mut Criterion) {
    let cfg = config();
    let start = Ts(1_780_000_000_000);
    let day = day_of_records(start, 300);
    let mut best = [f64::MAX; 2];
    for _ in 0..5 {
        let t = std::time::Instant::now();
        black_box(store_day(&day));
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        black_box(follow_day(&cfg, start, &day));
        best[1] = best[1].min(t.elapsed().as_secs_f64());
    }
    eprintln!(
        "best of 5, {} records twice: audit log alone {:.1} ms, follower {:.1} ms, ratio {:.2}",
        day.len(),
        best[0] * 1e3,
        best[1] * 1e3,
        best[1] / best[0]
    );
    let mut g = c.benchmark_group("follower");
    g.throughput(Throughput::Elements(2 * day.len() as u64));
    g.sample_size(10);
    g.bench_function("store_only", |b| b.iter(|| store_day(&day)));
    g.bench_function("mirror_day", |b| b.iter(|| follow_day(&cfg, start, &day)));
    g.finish();
}

criterion_group!(benches, bench, follower);
criterion_main!(benches);
