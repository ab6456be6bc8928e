//! Message identity in cluster mode, against a real `nats-server`: the same
//! PBX events read by two ingesters are stored in the site's stream once.
//!
//! The story: FreeSWITCH's event socket is read by instance "east"; its
//! lease runs out while it is still connected, "west" takes the source over
//! and connects, and for a while both hand the same events to their
//! forwarders, each in the batches its own socket reads gave. The stream,
//! read back by an engine, must give the figures of one replay of the
//! recording: every call counted once, none lost.
//!
//! The events are a real FreeSWITCH capture (tests/data/esl/real/outage.esl:
//! two connection cuts, so resyncs too), decoded by the event-socket session
//! with origins on, as a cluster ingester decodes them.

mod esl_fake;
mod nats;
mod support;

use std::sync::Arc;
use std::time::Duration;

use acdmon::cluster::{broker, consumer, forwarder};
use acdmon::config::Config;
use acdmon::event::Event;
use acdmon::sources::ami::{AgentIds, AmiReplay};
use acdmon::sources::esl::{EslReplay, SessionConfig};
use acdmon::sources::{Envelope, Origin, RejectCounter, SourceCtx, SourceHealth};
use acdmon::state::{Engine, EngineConfig};
use nats::NatsServer;
use tokio::sync::{mpsc, watch};

fn capture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The recording decoded as a cluster ingester does: events with their
/// wire origins.
fn decode_esl(bytes: &[u8]) -> (Vec<Event>, Vec<Option<Origin>>) {
    let mut r = EslReplay::traced(SessionConfig::replay());
    let mut evs: Vec<Event> = r.feed(bytes).into_iter().flatten().collect();
    evs.extend(r.finish().into_iter().flatten());
    let origins = r.take_origins();
    assert_eq!(origins.len(), evs.len(), "one origin per event");
    (evs, origins)
}

/// The same for an AMI transcript (origins: digests of the event blocks).
fn decode_ami(bytes: &[u8]) -> (Vec<Event>, Vec<Option<Origin>>) {
    let mut r = AmiReplay::traced(AgentIds::default());
    let mut evs: Vec<Event> = r.feed(bytes).into_iter().flatten().collect();
    evs.extend(r.finish().into_iter().flatten());
    let origins = r.take_origins();
    assert_eq!(origins.len(), evs.len(), "one origin per event");
    (evs, origins)
}

/// The figures of every queue after `events`, as the API shows them.
fn figures(events: &[Event]) -> Vec<serde_json::Value> {
    let t0 = events.first().map(|e| e.ts).unwrap_or_default();
    let mut e = Engine::starting_at(EngineConfig::default(), t0);
    for ev in events {
        let _ = e.apply(ev.clone());
    }
    (0..e.queue_count())
        .map(|q| serde_json::to_value(e.queue_view(q)).unwrap())
        .collect()
}

/// Offered, answered and abandoned calls today, per queue.
fn counts(figures: &[serde_json::Value]) -> Vec<(String, u64, u64, u64)> {
    figures
        .iter()
        .map(|q| {
            let today = &q["windows"]["today"];
            (
                q["queue"].as_str().unwrap_or("?").to_string(),
                today["offered"].as_u64().unwrap_or(0),
                today["answered"].as_u64().unwrap_or(0),
                today["abandoned"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

async fn connect(url: &str, instance: &str) -> broker::Broker {
    let text = format!(
        "[cluster]\nnats = [\"{url}\"]\nsite = \"north\"\ninstance = \"{instance}\"\nstorage = \"memory\"\n"
    );
    let cfg = Config::parse("test.toml", &text)
        .expect("config")
        .cluster
        .expect("[cluster]");
    broker::connect(&cfg).await.expect("broker")
}

/// One ingester's forwarder fed `events` in batches of `batch` PBX events
/// (what its socket reads gave), until they are all acknowledged by the stream.
async fn ingest(
    b: &broker::Broker,
    source: &str,
    events: &[Event],
    origins: &[Option<Origin>],
    batch: usize,
) {
    let (tx, rx) = mpsc::channel(acdmon::sources::INBOX_CAPACITY);
    // Control messages only; none are sent.
    let (engine, _control) = mpsc::channel(1);
    let (_keep, brx) = watch::channel(Some(b.clone()));
    let fwd = tokio::spawn(forwarder::run(
        rx,
        engine,
        brx,
        Arc::new(forwarder::Fences::default()),
        Default::default(),
    ));
    let source: Arc<str> = Arc::from(source);
    // `batch` PBX events per batch (a source never splits the events of
    // one PBX event).
    let mut start = 0;
    while start < events.len() {
        let mut end = start;
        for _ in 0..batch {
            let first = end;
            end += 1;
            while end < events.len() && origins[end].is_some() && origins[end] == origins[first] {
                end += 1;
            }
            if end >= events.len() {
                break;
            }
        }
        let end = end.min(events.len());
        let env = Envelope::Traced {
            source: source.clone(),
            events: events[start..end].to_vec(),
            origins: origins[start..end].to_vec(),
        };
        tx.send(env).await.expect("forwarder running");
        start = end;
    }
    drop(tx);
    tokio::time::timeout(Duration::from_secs(60), fwd)
        .await
        .expect("forwarder done within a minute")
        .expect("forwarder task");
}

/// Everything the stream holds, in order, as the engine of any instance
/// receives it.
async fn read_stream(b: &broker::Broker) -> Vec<Event> {
    let mut stream = b.stream.clone();
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let (tx, mut rx) = mpsc::channel(acdmon::sources::INBOX_CAPACITY);
    let progress = Arc::new(consumer::Progress::default());
    let reader = tokio::spawn(consumer::run(
        b.feed(),
        tx,
        async_nats::jetstream::consumer::DeliverPolicy::All,
        progress,
        Arc::new(RejectCounter::default()),
    ));
    let mut out = Vec::new();
    let mut at = 0;
    while at < last {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(Envelope::Positioned {
                events, position, ..
            })) => {
                out.extend(events);
                at = position.offset;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("the stream was not read to its end ({at} of {last})"),
        }
    }
    reader.abort();
    out
}

/// East publishes the first half of the recording in batches of 7, west
/// (connected meanwhile) all of it in batches of 5, then east the rest,
/// still in batches of 7: every event twice, in other batches. The stream
/// must hold the recording once, in order, and give its figures.
async fn two_ingesters(source: &str, events: Vec<Event>, origins: Vec<Option<Origin>>) {
    let srv = NatsServer::start();
    let traced = origins.iter().filter(|o| o.is_some()).count();
    assert!(
        traced > 10 && events.len() > traced,
        "the recording's events carry origins (and its resyncs' do not): {traced} of {}",
        events.len()
    );
    let want = figures(&events);
    assert!(
        counts(&want)
            .iter()
            .any(|(_, _, answered, _)| *answered > 0),
        "the recording answers calls: {:?}",
        counts(&want)
    );

    let east = connect(&srv.url(), "east").await;
    let west = connect(&srv.url(), "west").await;
    let mut half = events.len() / 2;
    while origins[half].is_some() && origins[half] == origins[half - 1] {
        half += 1;
    }
    ingest(&east, source, &events[..half], &origins[..half], 7).await;
    ingest(&west, source, &events, &origins, 5).await;
    ingest(&east, source, &events[half..], &origins[half..], 7).await;

    let stored = read_stream(&east).await;
    assert_eq!(
        stored.len(),
        events.len(),
        "every event stored once (the recording has {}, the stream {})",
        events.len(),
        stored.len()
    );
    assert_eq!(stored, events, "in the recording's order");
    let got = figures(&stored);
    assert_eq!(counts(&got), counts(&want), "calls counted once");
    assert_eq!(got, want, "the figures of one replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingesters_of_one_event_socket_store_each_event_once() {
    let (events, origins) = decode_esl(&capture("esl/real/outage.esl"));
    two_ingesters("fs", events, origins).await;
}

/// The same with Asterisk: a recorded day of AMI events
/// (`timestampevents = yes`), origins the digests of the event blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingesters_of_one_manager_interface_store_each_event_once() {
    let (events, origins) = decode_ami(&capture("ami/day_sample.ami"));
    two_ingesters("pbx", events, origins).await;
}

/// What a live event-socket source in cluster mode hands on: every event
/// with the origin of the FreeSWITCH event it came from. Two sources
/// reading the same events, one byte by byte and one in 64 KB reads, name
/// every event alike, and as the recording's decoder does: the ids the
/// stories above rely on do not depend on how a socket was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_event_socket_sources_name_each_event_by_its_core_and_sequence() {
    let transcript = capture("esl/real/manual.esl");
    let (events, origins) = decode_esl(&transcript);
    let want: Vec<(Origin, Event)> = origins
        .iter()
        .zip(&events)
        .filter_map(|(o, e)| Some((o.clone()?, e.clone())))
        .collect();
    assert!(want.len() > 10, "{} traced events", want.len());
    let mut got = Vec::new();
    for chunk in [1, 64 * 1024] {
        let switch = esl_fake::start(transcript.clone(), chunk, Arc::new(|_: &str| None)).await;
        let text = format!("address = \"{}\"\npassword = \"ClueCon\"\n", switch.addr);
        let Ok(acdmon::config::SourceSpec::Esl(cfg)) =
            acdmon::config::SourceSpec::from_toml("esl", &text)
        else {
            panic!("esl settings");
        };
        let (tx, mut rx) = mpsc::channel(64);
        let mut ctx = SourceCtx::new(
            "fs",
            tx,
            SourceHealth::new("fs", "esl"),
            Arc::new(RejectCounter::default()),
        );
        ctx.origins = true;
        let started = acdmon::sources::esl::spawn(cfg, ctx);
        let mut traced = Vec::new();
        while traced.len() < want.len() {
            let env = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{chunk}-byte reads: only {traced:#?}"))
                .expect("source running");
            let Envelope::Traced {
                events, origins, ..
            } = env
            else {
                panic!("a cluster source hands on traced batches, not {env:?}");
            };
            traced.extend(
                origins
                    .into_iter()
                    .zip(events)
                    .filter_map(|(o, e)| Some((o?, e))),
            );
        }
        started.task.abort();
        assert!(
            traced
                .iter()
                .all(|(o, _)| o.starts_with("e8602949c-65a0-4cd8-b18f-7cd5eb7eb714:")),
            "named by the recording's Core-UUID and a sequence: {:?}",
            traced.first()
        );
        got.push(traced);
    }
    assert_eq!(
        got[0], want,
        "byte by byte, as the recording's decoder names them"
    );
    assert_eq!(got[1], want, "in 64 KB reads, the same");
}

/// `POST /api/v1/events` in cluster mode with an `Idempotency-Key`: a
/// client's connection drops after it sent 3,000 of its 6,000 lines (the
/// instance publishes what it read, as it must); the client sends the whole
/// request again with the same key. The stream holds each line once, the
/// wall counts 6,000 calls, not 9,000, and the retry's answer lists the
/// first 3,000 lines as `not_applied` (already in the stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_with_an_idempotency_key_is_stored_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nread_token = \"reader\"\nadmin_token = \"boss\"\n[storage]\npath = {:?}\n\
         [cluster]\nnats = [\"{}\"]\nsite = \"north\"\ninstance = \"east\"\nstorage = \"memory\"\n",
        dir.path().join("east.sqlite").display().to_string(),
        srv.url()
    );
    let cfg = Config::parse("east.toml", &text).expect("config");
    let (_daemon, addr) = support::start_daemon(cfg).await;
    let now = acdmon::time::Ts::now().0;
    let body: String = (0..6000)
        .map(|i| {
            format!("{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"k{i}\",\"queue\":\"hotline\"}}\n")
        })
        .collect();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer boss\r\n\
         Idempotency-Key: batch-2026-12-06-0001\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The first attempt: half the lines, then the connection is gone.
    let half = body
        .match_indices('\n')
        .nth(2999)
        .map(|(i, _)| i + 1)
        .unwrap();
    let mut first = support::eventually(Duration::from_secs(5), "the API", || async {
        tokio::net::TcpStream::connect(&addr).await.ok()
    })
    .await;
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&body.as_bytes()[..half]).await.unwrap();
    first.shutdown().await.unwrap();
    let mut ignored = Vec::new();
    let _ = first.read_to_end(&mut ignored).await;
    drop(first);
    // The retry, whole.
    let mut retry = tokio::net::TcpStream::connect(&addr).await.unwrap();
    retry.write_all(head.as_bytes()).await.unwrap();
    retry.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    retry.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").expect("a body");
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    // The answer says so, line by line: the first half was already in the
    // stream (from the dropped attempt) and is not applied again.
    assert_eq!(v["accepted"], 3000, "{}", &json[..json.len().min(400)]);
    assert_eq!(v["rejected_total"], 3000);
    assert_eq!(v["rejected"][0]["line"], 1);
    assert_eq!(v["rejected"][0]["reason"], "not_applied");

    // The answer may come before the last lines are in the stream (the
    // API waits a second for verdicts); the wall shows when all are.
    support::eventually(Duration::from_secs(30), "6,000 calls waiting", || {
        let addr = addr.clone();
        async move {
            let r = support::http(&addr, "GET", "/api/v1/queues/hotline", Some("reader"), "").await;
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            (v["waiting"].as_u64()? == 6000).then_some(())
        }
    })
    .await;
    let east = connect(&srv.url(), "reader").await;
    let stored = read_stream(&east).await;
    assert_eq!(stored.len(), 6000, "each line stored once, not 9,000");
    let r = support::http(&addr, "GET", "/api/v1/queues/hotline", Some("reader"), "").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["windows"]["today"]["arrivals"], 6000, "{v}");

    // A key that cannot name a message is refused with the reason, and
    // nothing of the body is taken.
    let mut bad = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let line = format!(
        "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"x1\",\"queue\":\"hotline\"}}\n"
    );
    bad.write_all(
        format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer boss\r\n\
             Idempotency-Key: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{line}",
            "k".repeat(200),
            line.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    bad.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("Idempotency-Key must be"),
        "{answer}"
    );
}
