//! The two guards of "one ingester per source", against a real
//! `nats-server`: the lease in the key-value bucket (one holder; it passes
//! on within the TTL when the holder stops renewing; a holder presumed dead
//! learns it lost the lease), and the fence on the stream (an ingester that
//! was stalled past its lease cannot append after the new holder did; the
//! same batch sent twice is stored once).

mod nats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use acdmon::cluster::broker::{self, Broker};
use acdmon::cluster::forwarder::{self, Fences};
use acdmon::cluster::ingest::handover;
use acdmon::cluster::lease::{Lease, Renewal};
use acdmon::config::{ClusterConfig, Config};
use acdmon::event::{Event, EventKind};
use acdmon::sources::Envelope;
use acdmon::state::SourcePosition;
use acdmon::time::Ts;
use nats::NatsServer;
use tokio::sync::{mpsc, watch};

const TTL: Duration = Duration::from_secs(2);

fn cluster(url: &str, instance: &str) -> ClusterConfig {
    let text = format!(
        "[cluster]\nnats = [\"{url}\"]\nsite = \"north\"\ninstance = \"{instance}\"\nlease_ttl = \"2s\"\n"
    );
    Config::parse("t.toml", &text).unwrap().cluster.unwrap()
}

async fn connect(url: &str, instance: &str) -> Broker {
    broker::connect(&cluster(url, instance)).await.unwrap()
}

fn lease(b: &Broker) -> Lease {
    Lease::new(
        b.leases.clone(),
        "ingest.feed".into(),
        b.names.instance.clone(),
        TTL,
    )
}

#[tokio::test]
async fn a_lease_has_one_holder_and_passes_on_when_the_holder_goes_quiet() {
    let server = NatsServer::start();
    let (a, b) = (
        connect(&server.url(), "east").await,
        connect(&server.url(), "west").await,
    );
    let (mut la, mut lb) = (lease(&a), lease(&b));
    assert!(la.acquire().await.unwrap(), "the first instance takes it");
    assert!(!lb.acquire().await.unwrap(), "the second cannot");
    assert_eq!(lb.holder().await.as_deref(), Some("east"));
    assert_eq!(la.renew().await, Renewal::Held);

    // East goes quiet (a SIGKILL, a long pause): west takes the lease once
    // it has run out, not before.
    let quiet = Instant::now();
    loop {
        if lb.acquire().await.unwrap() {
            break;
        }
        assert!(quiet.elapsed() < TTL * 3, "the lease never passed on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = quiet.elapsed();
    assert!(
        took >= TTL / 2,
        "taken over after {took:?}, before the TTL ran out"
    );
    assert_eq!(la.holder().await.as_deref(), Some("west"));
    // East wakes up: its compare-and-set renewal fails, it knows.
    assert_eq!(la.renew().await, Renewal::Lost);
    assert!(!la.is_held());
    assert_eq!(lb.renew().await, Renewal::Held);

    // A clean stop hands over at once.
    lb.release().await;
    assert!(la.acquire().await.unwrap());
}

fn batch(calls: std::ops::Range<usize>, end: u64) -> Envelope {
    Envelope::Positioned {
        source: Arc::from("feed"),
        events: calls
            .map(|i| Event {
                ts: Ts(1_763_900_000_000 + i as i64),
                kind: EventKind::CallEnqueued {
                    call: format!("c{i}"),
                    queue: "sales".into(),
                    caller: None,
                    priority: None,
                },
            })
            .collect(),
        position: SourcePosition {
            file: 42,
            offset: end,
        },
    }
}

/// A forwarder for one instance, as the daemon runs it (with the ends it
/// needs kept open).
struct Forwarder {
    tx: mpsc::Sender<Envelope>,
    _engine: mpsc::Receiver<Envelope>,
    _broker: watch::Sender<Option<Broker>>,
}

impl Forwarder {
    fn of(b: &Broker, fences: Arc<Fences>) -> Forwarder {
        let (tx, rx) = mpsc::channel(16);
        let (engine, engine_rx) = mpsc::channel(16);
        let (btx, brx) = watch::channel(Some(b.clone()));
        tokio::spawn(forwarder::run(rx, engine, brx, fences, Default::default()));
        Forwarder {
            tx,
            _engine: engine_rx,
            _broker: btx,
        }
    }

    async fn send(&self, env: Envelope) {
        self.tx.send(env).await.unwrap();
    }
}

async fn subject_count(b: &Broker) -> u64 {
    let mut s = b.stream.clone();
    s.info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_stalled_ingester_cannot_append_after_the_new_one_did() {
    let server = NatsServer::start();
    let (a, b) = (
        connect(&server.url(), "east").await,
        connect(&server.url(), "west").await,
    );
    // East ingests and appends the first lines of the file.
    let fa = Arc::new(Fences::default());
    fa.arm("feed", handover(&a, "feed").await.unwrap().last_seq);
    let east = Forwarder::of(&a, fa.clone());
    east.send(batch(0..3, 300)).await;
    let stored = async |n: u64| {
        let t = Instant::now();
        while subject_count(&a).await != n {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "stream never held {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    stored(1).await;

    // East stalls; west takes over where the stream says east stopped.
    let h = handover(&b, "feed").await.unwrap();
    assert_eq!(
        h.position,
        Some(SourcePosition {
            file: 42,
            offset: 300
        })
    );
    assert_eq!(h.newest, Some(Ts(1_763_900_000_002)));
    let fb = Arc::new(Fences::default());
    fb.arm("feed", h.last_seq);
    let west = Forwarder::of(&b, fb.clone());
    west.send(batch(3..5, 500)).await;
    stored(2).await;

    // East wakes up and sends what it had read meanwhile: refused.
    east.send(batch(3..6, 600)).await;
    let t = Instant::now();
    while !fa.is_fenced("feed") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "east was never fenced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        subject_count(&a).await,
        2,
        "east's late batch is not in the stream"
    );

    // West sends one batch twice (a retry after a lost ack): stored once.
    west.send(batch(5..6, 600)).await;
    stored(3).await;
    west.send(batch(5..6, 600)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(subject_count(&a).await, 3, "the repeat was dropped");
    west.send(batch(6..7, 700)).await;
    stored(4).await;
    assert!(!fb.is_fenced("feed"));
    let last = handover(&b, "feed").await.unwrap();
    assert_eq!(last.position.map(|p| p.offset), Some(700));
}
