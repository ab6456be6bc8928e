//! AMI ingest speed on one core, against a baseline over the same bytes.
//!
//!     cargo bench --bench ami
//!
//! Input: tests/data/ami/day_sample.ami (protocol-faithful, ~25 headers per
//! event). Every figure is "AMI events per second" over the same stream, so
//! the ratios between rows are what to read:
//! * `baseline_line_split`: memchr over the bytes, counting lines and blank
//!   lines (the least any AMI reader must do);
//! * `parse`: the framer (blocks with borrowed headers);
//! * `parse_map`: framer + session + queue mapping → domain events;
//! * `parse_map_traced`: `parse_map`, also naming each event by a digest of
//!   its block (cluster mode's message identity; off on a single node);
//! * `parse_map_engine`: the same as `parse_map`, applied to the state engine.

use std::hint::black_box;

use acdmon::sources::ami::parser::{Item, Parser};
use acdmon::sources::ami::{AgentIds, AmiReplay};
use acdmon::state::{Engine, EngineConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn input() -> (Vec<u8>, u64) {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ami/day_sample.ami"
    ))
    .expect("tests/data/ami/day_sample.ami");
    let events = bytes.windows(7).filter(|w| w == b"Event: ").count() as u64;
    (bytes, events)
}

fn bench(c: &mut Criterion) {
    let (bytes, events) = input();
    let mut g = c.benchmark_group("ami");
    g.throughput(Throughput::Elements(events));

    g.bench_function("baseline_line_split", |b| {
        b.iter(|| {
            let mut lines = 0u64;
            let mut blocks = 0u64;
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &bytes) {
                lines += 1;
                if nl - start <= 1 {
                    blocks += 1;
                }
                start = nl + 1;
            }
            black_box((lines, blocks))
        })
    });

    g.bench_function("parse", |b| {
        let mut p = Parser::new();
        b.iter(|| {
            let mut pos = 0;
            let mut n = 0u64;
            loop {
                let (used, item) = p.parse(&bytes[pos..]);
                pos += used;
                match item {
                    Some(Item::Message(m)) => n += m.len() as u64,
                    Some(_) => {}
                    None => break,
                }
            }
            black_box(n)
        })
    });

    g.bench_function("parse_map", |b| {
        b.iter(|| {
            let mut r = AmiReplay::new(AgentIds::default());
            let mut out = r.feed(&bytes);
            out.extend(r.finish());
            black_box(out.len())
        })
    });

    // Also naming each event by the digest of its block (cluster mode's
    // message identity): the ratio to `parse_map` is what it costs.
    g.bench_function("parse_map_traced", |b| {
        b.iter(|| {
            let mut r = AmiReplay::traced(AgentIds::default());
            let mut out = r.feed(&bytes);
            out.extend(r.finish());
            black_box((out.len(), r.take_origins().len()))
        })
    });

    g.bench_function("parse_map_engine", |b| {
        b.iter(|| {
            let mut r = AmiReplay::new(AgentIds::default());
            let mut out = r.feed(&bytes);
            out.extend(r.finish());
            let mut e: Option<Engine> = None;
            for ev in out.into_iter().flatten() {
                let en =
                    e.get_or_insert_with(|| Engine::starting_at(EngineConfig::default(), ev.ts));
                let _ = en.apply(ev);
            }
            black_box(e.map(|e| e.events_applied()))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
