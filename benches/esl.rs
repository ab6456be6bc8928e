//! ESL throughput on one core, as ratios against a baseline measured in the
//! same run over the same bytes.
//!
//! The stream is the recorded morning of tests/data/esl/day.esl (every
//! mod_callcenter call path, bridge events with channel data), its events
//! repeated with fresh call ids to ~100k events.
//!
//! - `baseline_line_split`: splitting the bytes into lines with `memchr`
//!   (the least any reader of this text protocol does);
//! - `frame`: framing each message (`Framer`), no decoding;
//! - `frame_decode`: framing plus picking out and URL-decoding the headers
//!   the mapping reads (`CcEvent`);
//! - `frame_decode_map`: plus the mod_callcenter mapping (`Mapper`);
//! - `replay_decoder`: the whole replay decoder (session included);
//! - `replay_decoder_traced`: the same, also naming each event by its
//!   `Core-UUID` and `Event-Sequence` (cluster mode's message identity):
//!   its ratio to `replay_decoder` is what the identity costs a cluster
//!   ingester; the single-node path does not compute it.
//!
//! Run: `cargo bench --bench esl`.

use std::hint::black_box;

use acdmon::sources::esl::mapping::{Mapper, TimerConfig};
use acdmon::sources::esl::parser::{Framer, Message, Parse};
use acdmon::sources::esl::{EslReplay, SessionConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Event frames of the recorded morning, repeated with fresh call ids.
fn stream(target_events: usize) -> (Vec<u8>, Vec<u8>, usize) {
    let day = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/esl/day.esl"
    ))
    .expect("tests/data/esl/day.esl");
    // Split off the handshake and lists: everything before the first event.
    let first = day
        .windows(b"text/event-plain".len())
        .position(|w| w == b"text/event-plain")
        .expect("an event");
    let start = day[..first]
        .windows(b"Content-Length".len())
        .rposition(|w| w == b"Content-Length")
        .expect("frame start");
    let (head, events) = day.split_at(start);
    let per_copy = count_events(events);
    let copies = target_events.div_ceil(per_copy);
    let mut out = Vec::with_capacity(events.len() * copies);
    for i in 0..copies {
        // Same length, so Content-Length stays right.
        let tag = format!("{:04x}", i % 0x10000);
        let mut e = events.to_vec();
        let mut p = 0;
        while let Some(k) = e[p..].windows(4).position(|w| w == b"7c0e") {
            e[p + k..p + k + 4].copy_from_slice(tag.as_bytes());
            p += k + 4;
        }
        out.extend_from_slice(&e);
    }
    (head.to_vec(), out, per_copy * copies)
}

fn count_events(b: &[u8]) -> usize {
    b.windows(b"text/event-plain".len())
        .filter(|w| *w == b"text/event-plain")
        .count()
}

fn benches(c: &mut Criterion) {
    let (head, bytes, n) = stream(100_000);
    let mut g = c.benchmark_group("esl");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);

    g.bench_function("baseline_line_split", |b| {
        b.iter(|| black_box(memchr::memchr_iter(b'\n', black_box(&bytes)).count()))
    });

    g.bench_function("frame", |b| {
        b.iter(|| {
            let mut f = Framer::default();
            let mut rest = &bytes[..];
            let mut frames = 0usize;
            while let Parse::Frame(fr, k) = f.next(rest) {
                black_box(fr.content_type);
                frames += 1;
                rest = &rest[k..];
            }
            frames
        })
    });

    g.bench_function("frame_decode", |b| {
        b.iter(|| {
            let mut f = Framer::default();
            let mut rest = &bytes[..];
            let mut events = 0usize;
            while let Parse::Frame(fr, k) = f.next(rest) {
                if let Ok(Message::Event(ev)) = fr.message() {
                    black_box(ev.get(acdmon::sources::esl::parser::Field::Action));
                    events += 1;
                }
                rest = &rest[k..];
            }
            events
        })
    });

    g.bench_function("frame_decode_map", |b| {
        b.iter_batched(
            || Mapper::new(TimerConfig::default()),
            |mut m| {
                let mut f = Framer::default();
                let mut rest = &bytes[..];
                let mut out = Vec::with_capacity(16);
                let mut mapped = 0usize;
                while let Parse::Frame(fr, k) = f.next(rest) {
                    if let Ok(Message::Event(ev)) = fr.message() {
                        m.handle_event(&ev, &mut out);
                        mapped += out.len();
                        out.clear();
                    }
                    rest = &rest[k..];
                }
                (m, mapped)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("replay_decoder", |b| {
        b.iter_batched(
            || {
                let mut d = EslReplay::new();
                let _ = d.feed(&head);
                d
            },
            |mut d| {
                let mut total = 0usize;
                for chunk in bytes.chunks(64 * 1024) {
                    total += d.feed(chunk).len();
                }
                (d, total)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("replay_decoder_traced", |b| {
        b.iter_batched(
            || {
                let mut d = EslReplay::traced(SessionConfig::replay());
                let _ = d.feed(&head);
                let _ = d.take_origins();
                d
            },
            |mut d| {
                let mut total = 0usize;
                for chunk in bytes.chunks(64 * 1024) {
                    total += d.feed(chunk).len();
                    total += d.take_origins().len();
                }
                (d, total)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(esl, benches);
criterion_main!(esl);
