//! A daemon stopping (SIGTERM, as systemd does) loses nothing a source had
//! delivered: the sources stop first, the engine applies everything still
//! in its inbox, and only then do the observers save the day. The
//! checkpoint written as the daemon stops holds every call the phone system
//! had reported, up to the last one before the stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use acdmon::config::Config;
use acdmon::event::{Event, EventKind};
use acdmon::sources::Envelope;
use acdmon::time::Ts;

/// A busy phone system: a new caller joins `hotline` as fast as the engine
/// takes them, right up to the moment the daemon stops. Counts the callers
/// whose delivery to the engine succeeded.
fn busy_feed(
    inbox: acdmon::sources::Inbox,
    delivered: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let source: Arc<str> = Arc::from("pbx");
        for n in 0u64.. {
            let event = Event {
                ts: Ts::now(),
                kind: EventKind::CallEnqueued {
                    call: format!("call-{n}"),
                    queue: "hotline".into(),
                    caller: None,
                    priority: None,
                },
            };
            let sent = inbox
                .send(Envelope::Event {
                    source: source.clone(),
                    event,
                })
                .await;
            if sent.is_err() {
                return;
            }
            delivered.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_delivered_before_the_stop_is_in_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        "t.toml",
        &format!(
            "[server]\nadmin_token = \"boss\"\n\
             [storage]\npath = \"{}/acdmon.sqlite\"\ncheckpoint_every = \"1h\"\n\
             [[queues]]\nname = \"hotline\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let cti = acdmon::daemon::cti_registry(&cfg).unwrap();
    let parts = acdmon::daemon::Parts::open(&cfg, cti).unwrap();
    let store = parts.store.clone();
    let mut d = acdmon::daemon::start_with(cfg, parts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    d.serve_on(listener);

    let delivered = Arc::new(AtomicU64::new(0));
    let feed = busy_feed(d.state.inbox.clone(), delivered.clone());
    d.adopt_source("pbx", feed).await;

    // The floor is busy: callers keep arriving.
    let publisher = d.state.publisher.clone();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = publisher
            .snapshot()
            .queue("hotline")
            .map_or(0.0, |q| f64::from(q.waiting));
        if waiting >= 200.0 {
            break;
        }
        assert!(Instant::now() < until, "no callers reached the engine");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    d.shutdown(acdmon::daemon::STOP_WITHIN).await;

    let delivered = delivered.load(Ordering::SeqCst);
    let cp = acdmon::store::checkpoint::load(&store).expect("a checkpoint written at stop");
    assert_eq!(
        cp.events_applied, delivered,
        "the checkpoint holds {} calls; the phone system had delivered {delivered}",
        cp.events_applied
    );
    let last = publisher.snapshot();
    assert_eq!(
        last.queue("hotline").map(|q| q.waiting as u64),
        Some(delivered),
        "the last published wall shows every caller"
    );
}
