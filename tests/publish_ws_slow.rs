//! A client that stops reading costs the server neither memory nor the other
//! clients' time, and is resynced with a snapshot when it reads again. Its
//! own test binary: it measures the process's memory.

mod wsutil;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use wsutil::support;
use wsutil::*;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// 400 publishes, each touching 100 queues (~100 KB a frame); every 20th
/// round the reading client must see within 2 s. Returns the worst wait.
async fn pump(addr: &str, good: &mut Ws, seq: &mut u64) -> Duration {
    let mut worst = Duration::ZERO;
    for round in 0..400 {
        let mut body = String::new();
        for i in 0..100 {
            let q = format!("q{i}");
            body.push_str(&if round % 2 == 0 {
                enqueue(&q, &format!("c{i}"))
            } else {
                abandon(&q, &format!("c{i}"))
            });
        }
        let sent = Instant::now();
        post(addr, &body).await;
        if round % 20 == 0 {
            let want = if round % 2 == 0 { 1 } else { 0 };
            until(good, seq, Duration::from_secs(2), "round visible", |v| {
                queue(v, "q99").is_some_and(|q| q["waiting"] == want)
            })
            .await;
            worst = worst.max(sent.elapsed());
        } else {
            // Keep draining so the reading client is never the slow one.
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(1), good.next()).await
            {}
        }
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_resynced_and_slows_nobody() {
    // No coalescing: every engine publish becomes a frame, so the stuck
    // client falls off the frame ring quickly.
    let mut queues = String::new();
    for i in 0..100 {
        queues.push_str(&format!("[[queues]]\nname = \"q{i}\"\n"));
    }
    let d = daemon("ws_coalesce = \"0s\"", &queues).await;
    let mut good = connect(&d.addr, &format!("token={READ}")).await;
    let snap = next(&mut good, Duration::from_secs(5)).await.unwrap();
    let mut seq = snap["seq"].as_u64().unwrap();

    // Phase 1, everyone reads: fills the resume history to its bound.
    pump(&d.addr, &mut good, &mut seq).await;
    let rss_before = rss_kib();

    // Phase 2: a client with a tiny receive buffer that never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(d.addr.parse().unwrap()).await.unwrap();
    let (mut stuck, _) = tokio_tungstenite::client_async(
        format!("ws://{}/ws?v=1&token={READ}", d.addr),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let worst = pump(&d.addr, &mut good, &mut seq).await;
    let rss_after = rss_kib();
    eprintln!(
        "RSS {rss_before} KiB -> {rss_after} KiB with a stuck client; reader's worst wait {worst:?}"
    );
    assert!(
        worst < Duration::from_millis(500),
        "the reading client waited {worst:?} behind the stuck one"
    );
    // ~40 MB of frames went by the stuck client; what it may hold is one
    // message and kernel buffers.
    assert!(
        rss_after.saturating_sub(rss_before) < 32 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB with a stuck client"
    );

    // It reads again. Its first message was its connect snapshot; after what
    // was already in flight, a second snapshot is the resync.
    let mut snapshots = 0;
    let mut got_snapshot = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), stuck.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                if t.starts_with("{\"type\":\"snapshot\"") {
                    snapshots += 1;
                    if snapshots == 2 {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        assert_eq!(v["queues"].as_array().unwrap().len(), 100);
                        got_snapshot = true;
                        break;
                    }
                }
            }
            Ok(Some(Ok(_))) => {}
            other => {
                eprintln!("stuck client ended: {other:?}");
                break;
            }
        }
    }
    assert!(
        got_snapshot,
        "the stuck client was resynced with a snapshot"
    );
    let m = support::http(&d.addr, "GET", "/metrics", None, "").await;
    let resyncs: f64 = m
        .body
        .lines()
        .find(|l| l.starts_with("acd_websocket_resyncs_total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(resyncs >= 1.0);
}
