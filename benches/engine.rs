//! How fast the core is, as ratios against baselines measured in the same run.
//!
//! - `apply`: native events applied to state, against moving the same events
//!   through a loop and dropping them (the floor any consumer pays).
//! - `decode`: JSON lines decoded, against splitting the same bytes into lines.
//! - `snapshot_read`: a reader taking the latest snapshot through `arc-swap`,
//!   against an uncontended `RwLock` read (the design choice of
//!   `state::snapshot`).
//! - `replay_1m`: `acdmon replay` of a 1,000,000-event file against `wc -l`
//!   on the same file.
//!
//! Run: `cargo bench --bench engine`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use acdmon::sources::json::{LineDecoder, encode};
use acdmon::state::{Engine, EngineConfig, Publisher, Snapshot};
use acdmon::time::Ts;
mod support;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use support::events;

fn apply(c: &mut Criterion) {
    const N: usize = 100_000;
    let evs = events(N);
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("baseline_move_and_drop", |b| {
        b.iter_batched(
            || evs.clone(),
            |v| {
                for e in v {
                    black_box(e);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("engine_apply", |b| {
        b.iter_batched(
            || {
                (
                    Engine::starting_at(EngineConfig::default(), evs[0].ts),
                    evs.clone(),
                )
            },
            |(mut e, v)| {
                for ev in v {
                    let _ = black_box(e.apply(ev));
                }
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("engine_apply_and_publish_every_1000", |b| {
        b.iter_batched(
            || {
                (
                    Engine::starting_at(EngineConfig::default(), evs[0].ts),
                    evs.clone(),
                    Publisher::new(),
                )
            },
            |(mut e, v, p)| {
                for (i, ev) in v.into_iter().enumerate() {
                    let _ = e.apply(ev);
                    if i % 1000 == 999 {
                        black_box(p.publish(&mut e, Vec::new()));
                    }
                }
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut bytes = Vec::new();
    for e in events(N) {
        if let Some(l) = encode(&e) {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
    }
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("baseline_split_lines", |b| {
        b.iter(|| {
            bytes
                .split(|&x| x == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        })
    });
    g.bench_function("json_line_decoder", |b| {
        b.iter(|| {
            let mut d = LineDecoder::new();
            let mut out = Vec::with_capacity(N);
            d.feed(&bytes, &mut out);
            d.finish(&mut out);
            out.len()
        })
    });
    g.finish();
}

fn snapshot_read(c: &mut Criterion) {
    let p = Publisher::new();
    let mut e = Engine::starting_at(EngineConfig::default(), Ts(1_800_000_000_000));
    for ev in events(10_000) {
        let _ = e.apply(ev);
    }
    p.publish(&mut e, Vec::new());
    let lock = RwLock::new(Arc::new(Snapshot::clone(&p.snapshot())));
    let mut g = c.benchmark_group("snapshot_read");
    g.bench_function("baseline_rwlock_read", |b| {
        b.iter(|| black_box(lock.read().map(|s| s.queues.len()).unwrap_or(0)))
    });
    g.bench_function("arcswap_load", |b| {
        b.iter(|| black_box(p.snapshot().queues.len()))
    });
    // The case that matters: the engine publishing continuously while a
    // reader reads. With the lock, a reader waits for each write.
    let p = Arc::new(p);
    let lock = Arc::new(lock);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, lock, stop) = (p.clone(), lock.clone(), stop.clone());
        std::thread::spawn(move || {
            let snap = p.snapshot();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut w) = lock.write() {
                    // A publish replaces the snapshot: clone the view vectors.
                    *w = Arc::new(Snapshot::clone(&snap));
                }
                p.publish(&mut e, Vec::new());
            }
            e
        })
    };
    g.bench_function("rwlock_read_while_publishing", |b| {
        b.iter(|| black_box(lock.read().map(|s| s.queues.len()).unwrap_or(0)))
    });
    g.bench_function("arcswap_load_while_publishing", |b| {
        b.iter(|| black_box(p.snapshot().queues.len()))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.join();
    g.finish();
}

/// A 1,000,000-event JSON-lines file, written once under target/.
fn million_file() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-1m.jsonl");
    if !path.exists() {
        let mut s = String::new();
        for e in events(1_000_000) {
            if let Some(l) = encode(&e) {
                s.push_str(&l);
                s.push('\n');
            }
        }
        std::fs::write(&path, s).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    path
}

fn replay_1m(c: &mut Criterion) {
    let file = million_file();
    let cfg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-empty.toml");
    std::fs::write(&cfg, "").unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("replay_1m");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("baseline_wc_l", |b| {
        b.iter(|| {
            let out = std::process::Command::new("wc")
                .arg("-l")
                .arg(&file)
                .output();
            assert!(out.is_ok_and(|o| o.status.success()));
        })
    });
    g.bench_function("acdmon_replay", |b| {
        b.iter(|| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_acdmon"))
                .arg("replay")
                .arg("--config")
                .arg(&cfg)
                .arg(&file)
                .env("ACDMON_LOG", "error")
                .output();
            assert!(out.is_ok_and(|o| o.status.success()));
        })
    });
    g.finish();
}

criterion_group!(benches, apply, decode, snapshot_read, replay_1m);
criterion_main!(benches);
