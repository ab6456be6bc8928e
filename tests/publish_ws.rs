//! `/ws` as a wall sees it (contract section 5), against a running daemon
//! over real sockets: a snapshot then deltas with growing `seq`, queue
//! filters, resume after a dropped connection, coalescing. The client that
//! stops reading is in `publish_ws_slow.rs` (its own process, so its memory
//! measurement sees no other test).

mod wsutil;

use std::time::{Duration, Instant};

use serde_json::Value;
use wsutil::support;
use wsutil::*;

const QUEUES: &str = "[[queues]]\nname = \"hotline\"\n[[queues]]\nname = \"billing\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_gets_a_snapshot_then_deltas_with_growing_seq() {
    let d = daemon("", QUEUES).await;
    // Without the read token the upgrade is refused.
    let url = format!("ws://{}/ws", d.addr);
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    // The token may also come in the Authorization header.
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}/ws", d.addr).into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {READ}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
        assert_eq!(snap["type"], "snapshot");
        close(ws).await;
    }

    let mut ws = connect(&d.addr, &format!("token={READ}")).await;
    let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    assert!(snap["queues"].as_array().unwrap().len() >= 2);
    assert!(snap["agents"].is_array());
    let mut seq = snap["seq"].as_u64().unwrap();

    post(
        &d.addr,
        &(enqueue("hotline", "c1") + &agent("a1", "available", "hotline")),
    )
    .await;
    let delta = until(
        &mut ws,
        &mut seq,
        Duration::from_secs(3),
        "hotline waiting 1",
        |v| queue(v, "hotline").is_some_and(|q| q["waiting"] == 1),
    )
    .await;
    assert_eq!(delta["type"], "delta");
    assert!(delta["escalations"].is_array());
    // The agent arrives too (in this delta or a later one).
    if !delta["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["agent"] == "a1")
    {
        until(&mut ws, &mut seq, Duration::from_secs(3), "agent a1", |v| {
            v["agents"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["agent"] == "a1"))
        })
        .await;
    }
    // The same figures as the REST API.
    let api: Value = serde_json::from_str(
        &support::http(&d.addr, "GET", "/api/v1/queues/hotline", Some(READ), "")
            .await
            .body,
    )
    .unwrap();
    assert_eq!(api["waiting"], 1);
    wsutil::support::eventually(Duration::from_secs(2), "one client left", || async {
        (d.state.hub.clients() == 1).then_some(())
    })
    .await;
    close(ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_wall_sees_only_its_queues_and_their_agents() {
    let d = daemon("", QUEUES).await;
    post(
        &d.addr,
        &(agent("b1", "available", "billing") + &agent("h1", "available", "hotline")),
    )
    .await;
    let mut ws = connect(&d.addr, &format!("token={READ}&queues=billing")).await;
    let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    let names: Vec<&str> = snap["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["billing"]);
    let mut seq = snap["seq"].as_u64().unwrap();
    // Agents may still be on their way into the snapshot; wait for b1.
    let mut saw_b1 = snap["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["agent"] == "b1");
    post(
        &d.addr,
        &(enqueue("hotline", "x1") + &enqueue("billing", "y1") + &agent("h1", "paused", "hotline")),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut billing_waiting = false;
    while Instant::now() < deadline && !(billing_waiting && saw_b1) {
        let Some(v) = next(&mut ws, Duration::from_millis(500)).await else {
            continue;
        };
        let s = v["seq"].as_u64().unwrap();
        assert!(s > seq);
        seq = s;
        for q in v["queues"].as_array().unwrap() {
            assert_eq!(q["queue"], "billing", "filtered out: {q}");
            billing_waiting |= q["waiting"] == 1;
        }
        for a in v["agents"].as_array().unwrap() {
            assert_ne!(a["agent"], "h1", "h1 is only in hotline");
            saw_b1 |= a["agent"] == "b1";
        }
        for e in v["escalations"].as_array().into_iter().flatten() {
            assert_eq!(e["queue"], "billing");
        }
    }
    assert!(billing_waiting, "billing's change arrived");
    assert!(saw_b1, "billing's agent arrived");
    close(ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_that_reconnects_with_since_gets_what_it_missed() {
    let d = daemon("", QUEUES).await;
    let mut ws = connect(&d.addr, &format!("token={READ}")).await;
    let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    let mut seq = snap["seq"].as_u64().unwrap();
    post(&d.addr, &enqueue("billing", "r1")).await;
    until(
        &mut ws,
        &mut seq,
        Duration::from_secs(3),
        "billing 1",
        |v| queue(v, "billing").is_some_and(|q| q["waiting"] == 1),
    )
    .await;
    // The connection drops; meanwhile the floor moves on.
    drop(ws);
    post(
        &d.addr,
        &(enqueue("billing", "r2") + &enqueue("hotline", "r3")),
    )
    .await;
    wsutil::support::eventually(Duration::from_secs(3), "engine applied", || async {
        let r = support::http(&d.addr, "GET", "/api/v1/queues/hotline", Some(READ), "").await;
        r.body.contains("\"waiting\":1").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await; // one coalescing period

    let mut ws = connect(&d.addr, &format!("token={READ}&since={seq}")).await;
    let first = next(&mut ws, Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        first["type"], "delta",
        "resumed, not re-snapshotted: {first}"
    );
    assert!(first["seq"].as_u64().unwrap() > seq);
    assert_eq!(queue(&first, "billing").unwrap()["waiting"], 2);
    assert_eq!(queue(&first, "hotline").unwrap()["waiting"], 1);
    close(ws).await;

    // A seq this daemon never issued (it restarted, say): a fresh snapshot.
    let mut ws = connect(&d.addr, &format!("token={READ}&since={}", seq + 1_000_000)).await;
    let first = next(&mut ws, Duration::from_secs(3)).await.unwrap();
    assert_eq!(first["type"], "snapshot");
    assert_eq!(queue(&first, "billing").unwrap()["waiting"], 2);
    close(ws).await;

    // A malformed since is a clear 400, not a silent snapshot.
    let r = support::http(&d.addr, "GET", "/ws?since=abc", Some(READ), "").await;
    assert!(r.status == 400 || r.status == 426, "status {}", r.status);
}

/// A filtered wall that resumes hears of agents that left its queues while
/// it was away, and of agents it already held leaving later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_resume_hears_of_agents_leaving_its_queues() {
    let d = daemon("", QUEUES).await;
    post(
        &d.addr,
        &(agent("a1", "available", "billing") + &agent("a2", "available", "billing")),
    )
    .await;
    let view_of = |msg: &Value, id: &str| -> Option<Value> {
        msg["agents"]
            .as_array()?
            .iter()
            .find(|a| a["agent"] == id)
            .cloned()
    };
    let in_billing = |a: &Value| {
        a["queues"]
            .as_array()
            .is_some_and(|q| q.iter().any(|x| x == "billing"))
    };
    let query = format!("token={READ}&queues=billing");
    let mut ws = connect(&d.addr, &query).await;
    let mut seq = 0;
    until(
        &mut ws,
        &mut seq,
        Duration::from_secs(3),
        "a1 and a2",
        |v| view_of(v, "a1").is_some() && view_of(v, "a2").is_some(),
    )
    .await;
    drop(ws);
    // a1 leaves billing while the wall is away.
    let left = |a: &str| {
        format!(
            "{{\"ts\":{},\"type\":\"agent_left_queue\",\"agent\":\"{a}\",\"queue\":\"billing\"}}\n",
            now_ms()
        )
    };
    post(&d.addr, &left("a1")).await;
    wsutil::support::eventually(Duration::from_secs(3), "engine applied", || async {
        let r = support::http(&d.addr, "GET", "/api/v1/agents", Some(READ), "").await;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        let a1 = v.as_array()?.iter().find(|a| a["agent"] == "a1")?.clone();
        (!in_billing(&a1)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;

    let mut ws = connect(&d.addr, &format!("{query}&since={seq}")).await;
    let first = next(&mut ws, Duration::from_secs(3)).await.unwrap();
    assert_eq!(first["type"], "delta", "{first}");
    let a1 = view_of(&first, "a1").expect("the resume tells of a1");
    assert!(!in_billing(&a1), "{a1}");
    seq = first["seq"].as_u64().unwrap();
    // a2, unchanged while the wall was away, leaves now: the wall hears it.
    post(&d.addr, &left("a2")).await;
    until(
        &mut ws,
        &mut seq,
        Duration::from_secs(3),
        "a2 leaves billing",
        |v| view_of(v, "a2").is_some_and(|a| !in_billing(&a)),
    )
    .await;
    close(ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_are_coalesced_to_one_per_period() {
    let d = daemon("ws_coalesce = \"200ms\"", QUEUES).await;
    let mut ws = connect(&d.addr, &format!("token={READ}")).await;
    let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    let mut seq = snap["seq"].as_u64().unwrap();
    let addr = d.addr.clone();
    let poster = tokio::spawn(async move {
        for i in 0..30 {
            post(&addr, &enqueue("hotline", &format!("k{i}"))).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let start = Instant::now();
    let mut times = Vec::new();
    let last = until(
        &mut ws,
        &mut seq,
        Duration::from_secs(5),
        "30 waiting",
        |v| {
            times.push(Instant::now());
            queue(v, "hotline").is_some_and(|q| q["waiting"] == 30)
        },
    )
    .await;
    poster.await.unwrap();
    assert_eq!(queue(&last, "hotline").unwrap()["waiting"], 30);
    let elapsed = start.elapsed();
    // 30 changes over ~600 ms+ arrive as a handful of messages, spaced by
    // the period (a little slack for scheduling).
    assert!(
        times.len() as f64 <= elapsed.as_secs_f64() / 0.2 + 2.0,
        "{} messages in {elapsed:?}",
        times.len()
    );
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(150),
            "messages {:?} apart",
            w[1] - w[0]
        );
    }
}

/// A client that sends a message over the 64 KiB limit is told why: the
/// server closes with 1009 (Message Too Big) instead of dropping the TCP
/// connection without a close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_client_message_gets_close_1009() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let d = daemon("", QUEUES).await;
    let mut ws = connect(&d.addr, &format!("token={READ}")).await;
    let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    ws.send(Message::text("x".repeat(100 << 10))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let code = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => break Some(u16::from(f.code)),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                break None;
            }
            Ok(Some(Ok(_))) => continue,
        }
    };
    assert_eq!(code, Some(1009), "the server must close with 1009");
}
