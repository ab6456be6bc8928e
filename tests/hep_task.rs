//! The live collector over real sockets on 127.0.0.1: HEP over UDP and over
//! TCP (split across writes, with garbage in between), rejects counted,
//! health reported, and the source stopping when the engine goes away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use acdmon::config::SourceSpec;
use acdmon::event::{Event, EventKind};
use acdmon::sources::hep::HepSourceConfig;
use acdmon::sources::hep::packet::HepBuilder;
use acdmon::sources::hep::task::{Listeners, run};
use acdmon::sources::sip::mapping::{AnswerMode, QueueRule, UserFrom};
use acdmon::sources::{Envelope, RejectCounter, SourceCtx, SourceHealth};
use acdmon::time::Ts;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

const T0: i64 = 1_767_225_600_000;

fn config() -> HepSourceConfig {
    HepSourceConfig {
        listen_udp: "127.0.0.1:0".into(),
        listen_tcp: Some("127.0.0.1:0".into()),
        queues: vec![QueueRule {
            pattern: "^q-(.+)$".into(),
            queue: Some("$1".into()),
            match_on: UserFrom::RequestUri,
            answer: AnswerMode::EarlyMedia,
        }],
        ..HepSourceConfig::default()
    }
}

fn invite(call: &str, queue: &str) -> String {
    format!(
        "INVITE sip:q-{queue}@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.50;branch=z9hG4bK{call}\r\n\
         From: <sip:4930@example.com>;tag=f-{call}\r\nTo: <sip:q-{queue}@example.com>\r\nCall-ID: {call}\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
}

fn packet(ms: i64, sip: &str) -> Vec<u8> {
    let a: SocketAddr = "10.0.0.50:5060".parse().unwrap();
    let b: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    HepBuilder {
        ip_proto: 6,
        ..HepBuilder::sip(a, b, Ts(T0 + ms))
    }
    .build(sip.as_bytes())
}

async fn next_events(rx: &mut mpsc::Receiver<Envelope>, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(
                Envelope::Batch { events, .. }
                | Envelope::Positioned { events, .. }
                | Envelope::Checked { events, .. },
            )) => out.extend(events),
            Ok(Some(Envelope::Event { event, .. })) => out.push(event),
            Ok(Some(_)) => {}
            Ok(None) => panic!("source stopped"),
            Err(_) => panic!("timed out with {} of {n} events: {out:?}", out.len()),
        }
    }
    out
}

fn calls(ev: &[Event]) -> Vec<(String, String)> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallEnqueued { call, queue, .. } => Some((call.clone(), queue.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn hep_over_udp_and_tcp_reaches_the_engine_and_garbage_is_counted() {
    let cfg = config();
    let listeners = Listeners::bind(&cfg).await.unwrap();
    let udp_addr = listeners.udp_addr().unwrap();
    let tcp_addr = listeners.tcp_addr().unwrap();
    let health = SourceHealth::new("sbc", "hep");
    let rejects = Arc::new(RejectCounter::default());
    let (tx, mut rx) = mpsc::channel(16);
    let task = tokio::spawn(run(
        listeners,
        cfg.ingest().unwrap(),
        SourceCtx::new("sbc", tx, health.clone(), rejects.clone()),
    ));

    // UDP: one good datagram, one that is not HEP.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&packet(0, &invite("u1", "sales")), udp_addr)
        .await
        .unwrap();
    udp.send_to(b"GET / HTTP/1.1\r\n\r\n", udp_addr)
        .await
        .unwrap();
    let ev = next_events(&mut rx, 1).await;
    assert_eq!(calls(&ev), vec![("u1".to_string(), "sales".to_string())]);
    assert_eq!(ev[0].ts, Ts(T0));
    assert!(health.connected() && health.synced());

    // TCP: two packets, then garbage, then a third, written in small pieces;
    // and one SIP payload holding two messages (a TCP segment capture).
    let mut stream = Vec::new();
    stream.extend(packet(10, &invite("t1", "billing")));
    stream.extend(packet(20, &invite("t2", "billing")));
    stream.extend(b"\x00\x01 not hep at all \xff");
    let two = format!("{}{}", invite("t3", "billing"), invite("t4", "sales"));
    stream.extend(packet(30, &two));
    let mut tcp = TcpStream::connect(tcp_addr).await.unwrap();
    for piece in stream.chunks(7) {
        tcp.write_all(piece).await.unwrap();
        tcp.flush().await.unwrap();
    }
    let ev = next_events(&mut rx, 4).await;
    assert_eq!(
        calls(&ev),
        vec![
            ("t1".to_string(), "billing".to_string()),
            ("t2".to_string(), "billing".to_string()),
            ("t3".to_string(), "billing".to_string()),
            ("t4".to_string(), "sales".to_string()),
        ]
    );
    // A sender that closes in the middle of a packet.
    let half = packet(40, &invite("t5", "sales"));
    tcp.write_all(&half[..half.len() / 2]).await.unwrap();
    drop(tcp);

    // Rejects: the UDP garbage, the TCP garbage, the cut packet.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let by = rejects.by_reason();
        if by.get("hep_not_hep") == Some(&2) && by.get("hep_truncated") == Some(&1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "rejects: {by:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(health.events(), 5, "{:?}", rx.try_recv());
    // Captures dated months ago are not expired by the local clock's tick
    // (the tracker runs on the senders' clock).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(rx.try_recv().is_err());

    // The engine goes away: the source notices on its next event and stops.
    drop(rx);
    udp.send_to(&packet(50, &invite("u2", "sales")), udp_addr)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(!health.connected());
}

/// When the collector cannot keep up (here: the engine stops taking
/// batches, so it stops reading), datagrams the kernel drops are counted
/// from the kernel's own table once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_the_kernel_drops_are_counted() {
    if std::fs::read_to_string("/proc/net/udp").is_err() {
        eprintln!("*** SKIPPED: /proc/net/udp is not readable here ***");
        return;
    }
    let cfg = config();
    let listeners = Listeners::bind(&cfg).await.unwrap();
    let udp_addr = listeners.udp_addr().unwrap();
    let health = SourceHealth::new("sbc", "hep");
    let (tx, mut rx) = mpsc::channel(1);
    let _task = tokio::spawn(run(
        listeners,
        cfg.ingest().unwrap(),
        SourceCtx::new(
            "sbc",
            tx,
            health.clone(),
            Arc::new(RejectCounter::default()),
        ),
    ));
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Two batches: the first fills the inbox, the second blocks the task.
    for (i, call) in ["d1", "d2"].iter().enumerate() {
        udp.send_to(&packet(i as i64 * 10, &invite(call, "sales")), udp_addr)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nobody reads the socket now: a flood overflows its receive buffer.
    let junk = vec![b'x'; 1200];
    for _ in 0..20_000 {
        let _ = udp.send_to(&junk, udp_addr).await;
    }
    assert_eq!(health.dropped(), 0, "nothing counted while blocked");
    // The engine takes batches again; within a tick the drops are known.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while health.dropped() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no drops counted");
        let _ = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
    }
}

#[tokio::test]
async fn spawn_retries_a_busy_address_and_reports_why() {
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let cfg = HepSourceConfig {
        listen_udp: addr.to_string(),
        ..config()
    };
    let health = SourceHealth::new("sbc", "hep");
    let (tx, mut rx) = mpsc::channel(16);
    let h = acdmon::sources::hep::spawn(
        cfg,
        SourceCtx::new("sbc", tx, health.clone(), Arc::default()),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!health.connected());
    assert!(
        health.last_error().unwrap().contains("cannot listen"),
        "{:?}",
        health.last_error()
    );
    // Freed: the next attempt (backoff starts at 0.25..0.5 s) binds.
    drop(busy);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !health.connected() {
        assert!(tokio::time::Instant::now() < deadline, "never bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&packet(0, &invite("s1", "sales")), addr)
        .await
        .unwrap();
    assert_eq!(calls(&next_events(&mut rx, 1).await).len(), 1);
    h.task.abort();
}

#[test]
fn bad_configuration_is_refused_with_a_reason() {
    let t = r#"
        listen_udp = "127.0.0.1:9060"
        platform_hangup = "lunch"
        "#;
    assert!(
        SourceSpec::from_toml("hep", t)
            .unwrap_err()
            .contains("platform_hangup")
    );
    let t = "listen_udp = \"\"\nbogus = 1";
    assert!(
        SourceSpec::from_toml("hep", t)
            .unwrap_err()
            .contains("bogus")
    );
    let t = "listen_udp = \"\"";
    assert!(
        SourceSpec::from_toml("hep", t)
            .unwrap_err()
            .contains("listen")
    );
    let t = "[[queues]]\npattern = \"([\"";
    assert!(
        SourceSpec::from_toml("hep", t)
            .unwrap_err()
            .contains("pattern")
    );
    let t = "record = \"/surely/not/a/dir/acdmon/capture.hep\"";
    let e = SourceSpec::from_toml("hep", t).unwrap_err();
    assert!(e.contains("record") && e.contains("directory"), "{e}");
    let t = "[members]\nsales = [\"1001\", 7]";
    assert!(
        SourceSpec::from_toml("hep", t)
            .unwrap_err()
            .contains("members")
    );
    let t = "auth_key = \"env:ACDMON_TEST_SURELY_UNSET_HEP\"";
    let e = SourceSpec::from_toml("hep", t).unwrap_err();
    assert!(e.contains("ACDMON_TEST_SURELY_UNSET_HEP"), "{e}");
}

/// `record`: the live collector appends what it accepts (here a HEPv2
/// datagram from real Kamailio and a HEPv3 one) to the file as HEPv3, and
/// leaves out what it refused; the file replays into the live events.
#[tokio::test]
async fn the_record_file_holds_accepted_packets_for_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.hep");
    let mut cfg = config();
    cfg.listen_tcp = None;
    cfg.record = Some(path.clone());
    cfg.queues.push(QueueRule {
        pattern: "^8002$".into(),
        queue: Some("support".into()),
        match_on: UserFrom::RequestUri,
        answer: AnswerMode::EarlyMedia,
    });
    let listeners = Listeners::bind(&cfg).await.unwrap();
    let udp_addr = listeners.udp_addr().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let task = tokio::spawn(run(
        listeners,
        cfg.ingest().unwrap(),
        SourceCtx::new(
            "sbc",
            tx,
            SourceHealth::new("sbc", "hep"),
            Arc::new(RejectCounter::default()),
        ),
    ));
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The first datagram of the real HEPv2 capture: caller V2's INVITE.
    let v2_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hep/kamailio_v2");
    let mut files: Vec<_> = std::fs::read_dir(v2_dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    let v2 = std::fs::read(&files[0]).unwrap();
    assert_eq!(v2[0], 2, "a HEPv2 datagram");
    udp.send_to(&v2, udp_addr).await.unwrap();
    udp.send_to(b"not hep at all", udp_addr).await.unwrap();
    udp.send_to(&packet(0, &invite("r1", "sales")), udp_addr)
        .await
        .unwrap();
    let live = next_events(&mut rx, 2).await;
    drop(rx);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let bytes = std::fs::read(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut d = acdmon::sources::hep::HepReplayDecoder::new(&cfg).unwrap();
    let mut replayed: Vec<Event> = d.feed(&bytes).into_iter().map(Result::unwrap).collect();
    replayed.extend(d.finish().into_iter().map(Result::unwrap));
    assert_eq!(replayed, live);
    assert_eq!(
        calls(&replayed),
        vec![
            ("callerV2-1@rec".to_string(), "support".to_string()),
            ("r1".to_string(), "sales".to_string())
        ]
    );
}

/// Cluster mode: a capture agent sends the same packet to two collectors
/// (or a new ingester receives what the old one did). Each names the
/// packet's events by the packet, so the stream stores them once; another
/// packet of the same call gets another name.
#[tokio::test]
async fn in_cluster_mode_two_collectors_name_a_packets_events_alike() {
    let mut named = Vec::new();
    for name in ["east", "west"] {
        let cfg = config();
        let listeners = Listeners::bind(&cfg).await.unwrap();
        let udp_addr = listeners.udp_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let mut ctx = SourceCtx::new(
            "sbc",
            tx,
            SourceHealth::new(name, "hep"),
            Arc::new(RejectCounter::default()),
        );
        ctx.origins = true;
        let task = tokio::spawn(run(listeners, cfg.ingest().unwrap(), ctx));
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.send_to(&packet(0, &invite("u1", "sales")), udp_addr)
            .await
            .unwrap();
        let env = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("events within 5 s")
            .expect("source running");
        let Envelope::Traced {
            events, origins, ..
        } = env
        else {
            panic!("a cluster collector hands on traced batches, not {env:?}");
        };
        assert_eq!(
            calls(&events),
            vec![("u1".to_string(), "sales".to_string())]
        );
        assert_eq!(origins.len(), events.len());
        named.push(origins[0].clone().expect("the packet's origin"));
        task.abort();
    }
    assert_eq!(named[0], named[1], "one packet, one name");
    assert!(
        named[0].starts_with('p') && named[0].len() == 33,
        "{}",
        named[0]
    );
    let other = acdmon::sources::hep::task::packet_origin(&packet(1, &invite("u1", "sales")));
    assert_ne!(
        other, named[0],
        "a packet captured a millisecond later is another"
    );
}
