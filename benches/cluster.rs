//! What the JetStream event log costs, as a ratio against a baseline
//! measured in the same run, against a real `nats-server` (file storage)
//! started by the bench on a free port.
//!
//! - `stream_end_to_end`: 30,000 domain events sent one envelope at a time
//!   (a live source) into cluster mode's forwarder, appended to the stream
//!   (ids, fence, acks), read back by the ordered consumer and applied to an
//!   engine: source to applied state.
//! - `stream_end_to_end_traced`: the same with every event named by its
//!   own origin, as live sources hand them on in cluster mode (message
//!   identity, docs/cluster.md): one message per event, pipelined.
//! - `bare_async_nats`: the same events' bytes (one message per event,
//!   the same encoding) published with async-nats (acks pipelined, up to
//!   the client's 5,000 in flight) and read
//!   back with an ordered consumer, nothing else: the floor of any design
//!   that puts JetStream between sources and the engine that sends one
//!   message per event. It flatters us: the forwarder merges the envelopes
//!   waiting behind a publish into one message, so it sends far fewer.
//! - `bare_async_nats_batched`: the fair floor for our design: the very
//!   messages the forwarder published in a capture run before the
//!   measurements (read back from its stream: the same payload bytes, the
//!   same count), published with async-nats (acks pipelined) and read back
//!   with an ordered consumer, nothing else.
//!
//! Report both ratios (`stream_end_to_end` time over each baseline's).
//!
//! Run: `cargo bench --bench cluster` (needs `nats-server`:
//! scripts/install-nats.sh; skipped with a message without it).

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acdmon::cluster::{broker, consumer, forwarder, wire};
use acdmon::config::Config;
use acdmon::event::Event;
use acdmon::sources::{Envelope, RejectCounter};
use acdmon::state::{Engine, EngineConfig};
use async_nats::jetstream::{self, consumer::pull, stream};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

const N: usize = 30_000;

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> Option<Server> {
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let s = Server {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Cluster mode's path: forwarder -> stream -> consumer -> engine.
/// `traced`: the events come as a live source hands them on in cluster
/// mode, each with its own origin (one message per event, pipelined);
/// else as plain envelopes (merged into batches).
async fn end_to_end(url: &str, site: &str, evs: &[Event], traced: bool) -> Duration {
    let text = format!("[cluster]\nnats = [\"{url}\"]\nsite = \"{site}\"\nstorage = \"file\"\n");
    let cfg = Config::parse("bench.toml", &text)
        .ok()
        .and_then(|c| c.cluster)
        .expect("bench config");
    let b = broker::connect(&cfg).await.expect("broker");
    let fences = Arc::new(forwarder::Fences::default());
    fences.arm("pbx", 0);
    let (src_tx, src_rx) = mpsc::channel(acdmon::sources::INBOX_CAPACITY);
    let (eng_tx, mut eng_rx) = mpsc::channel(acdmon::sources::INBOX_CAPACITY);
    let (_btx, brx) = watch::channel(Some(b.clone()));
    let started = Instant::now();
    tokio::spawn(forwarder::run(
        src_rx,
        eng_tx.clone(),
        brx,
        fences,
        Default::default(),
    ));
    let progress = Arc::new(consumer::Progress::default());
    tokio::spawn(consumer::run(
        b.feed(),
        eng_tx,
        async_nats::jetstream::consumer::DeliverPolicy::All,
        progress,
        Arc::new(RejectCounter::default()),
    ));
    let t0 = evs.first().map(|e| e.ts).unwrap_or_default();
    let engine = tokio::task::spawn_blocking(move || {
        let mut e = Engine::starting_at(EngineConfig::default(), t0);
        let mut applied = 0;
        while applied < N {
            match eng_rx.blocking_recv() {
                Some(Envelope::Positioned { events, .. }) => {
                    applied += events.len();
                    for ev in events {
                        let _ = e.apply(ev);
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        applied
    });
    let source: Arc<str> = Arc::from("pbx");
    for (i, ev) in evs.iter().enumerate() {
        let env = if traced {
            Envelope::Traced {
                source: source.clone(),
                events: vec![ev.clone()],
                origins: vec![Some(Arc::from(format!("ebench:{i}")))],
            }
        } else {
            Envelope::Event {
                source: source.clone(),
                event: ev.clone(),
            }
        };
        if src_tx.send(env).await.is_err() {
            break;
        }
    }
    let applied = engine.await.unwrap_or(0);
    assert_eq!(applied, N, "every event applied");
    started.elapsed()
}

/// The same bytes with async-nats alone.
async fn bare(url: &str, site: &str, payloads: &[Vec<u8>]) -> Duration {
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client);
    let s = js
        .get_or_create_stream(stream::Config {
            name: format!("BARE_{site}"),
            subjects: vec![format!("bare.{site}.>")],
            ..Default::default()
        })
        .await
        .expect("stream");
    let started = Instant::now();
    let subject = format!("bare.{site}.pbx");
    for p in payloads {
        // Dropping the ack future hands it to the client's acker: acks are
        // pipelined, and `wait_for_acks` waits for the last of them.
        drop(
            js.publish(subject.clone(), p.clone().into())
                .await
                .expect("publish"),
        );
    }
    js.wait_for_acks().await;
    let c = s
        .create_consumer(pull::OrderedConfig::default())
        .await
        .expect("consumer");
    let mut msgs = c.messages().await.expect("messages");
    let mut n = 0;
    while n < payloads.len() {
        match msgs.next().await {
            Some(Ok(m)) => {
                std::hint::black_box(&m.payload);
                n += 1;
            }
            _ => break,
        }
    }
    assert_eq!(n, payloads.len());
    started.elapsed()
}

/// The payloads of every message the forwarder published to `site`'s
/// stream, in stream order.
async fn published(url: &str, site: &str) -> Vec<Vec<u8>> {
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client);
    let mut s = js
        .get_stream(format!("ACDMON_{site}"))
        .await
        .expect("the capture run's stream");
    let count = s.info().await.expect("stream info").state.messages as usize;
    let c = s
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("acdmon.{site}.events.pbx"),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut msgs = c.messages().await.expect("messages");
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match msgs.next().await {
            Some(Ok(m)) => out.push(m.payload.to_vec()),
            _ => break,
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let Some(srv) = server() else {
        eprintln!("cluster bench skipped: no nats-server (scripts/install-nats.sh)");
        return;
    };
    let url = format!("nats://127.0.0.1:{}", srv.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let evs = support::events(N);
    let payloads: Vec<Vec<u8>> = evs
        .iter()
        .map(|e| wire::encode(std::slice::from_ref(e)))
        .collect();
    // The capture run: what our forwarder publishes for these events.
    rt.block_on(end_to_end(&url, "capture", &evs, false));
    let batched = rt.block_on(published(&url, "capture"));
    let events: usize = batched
        .iter()
        .map(|p| wire::decode(p).map(|e| e.len()).unwrap_or(0))
        .sum();
    assert_eq!(events, N, "the capture run published every event once");
    eprintln!(
        "cluster bench: the forwarder published {N} events as {} messages ({} bytes; {:.1} events per message); the per-event baseline sends {N} messages ({} bytes)",
        batched.len(),
        batched.iter().map(Vec::len).sum::<usize>(),
        N as f64 / batched.len().max(1) as f64,
        payloads.iter().map(Vec::len).sum::<usize>(),
    );
    let mut g = c.benchmark_group("cluster");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let mut run = 0u64;
    g.bench_function("stream_end_to_end", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                total += rt.block_on(end_to_end(&url, &format!("e{run}"), &evs, false));
            }
            total
        })
    });
    g.bench_function("stream_end_to_end_traced", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                total += rt.block_on(end_to_end(&url, &format!("t{run}"), &evs, true));
            }
            total
        })
    });
    g.bench_function("bare_async_nats", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                total += rt.block_on(bare(&url, &format!("b{run}"), &payloads));
            }
            total
        })
    });
    g.bench_function("bare_async_nats_batched", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                total += rt.block_on(bare(&url, &format!("m{run}"), &batched));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
