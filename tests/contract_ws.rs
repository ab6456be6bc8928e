//! `/ws` as a client written from the contract (section 5) opens it: the
//! query is built from a template, `?queues=a,b` and `?since=SEQ`, whose
//! values may be empty on a first connect.

mod wsutil;

use std::time::Duration;

use wsutil::*;

const QUEUES: &str = "[[queues]]\nname = \"hotline\"\n[[queues]]\nname = \"billing\"\n";

/// A wall's first connect has no last `seq` and no queue list yet, so its
/// template gives `?queues=&since=`. An empty value is a parameter not
/// given, as on `/api/v1/escalations?queue=&since=`: the whole snapshot.
/// Before, `since=` was a 400 and `queues=` a filter that let no queue
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_query_values_are_parameters_not_given() {
    let d = daemon("", QUEUES).await;
    for query in ["queues=&since=", "since=", "queues=", "queues=&since=&v="] {
        let url = format!("ws://{}/ws?token={READ}&{query}", d.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("?{query}: {e}"));
        let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
        assert_eq!(snap["type"], "snapshot", "?{query}");
        let names: Vec<&str> = snap["queues"]
            .as_array()
            .unwrap_or_else(|| panic!("?{query}: version 1 lists queues: {snap}"))
            .iter()
            .filter_map(|q| q["queue"].as_str())
            .collect();
        assert!(
            names.contains(&"hotline") && names.contains(&"billing"),
            "?{query}: {names:?}"
        );
        close(ws).await;
    }
}

/// A client written from the contract's section 5 knows two message types,
/// `snapshot` and `delta`. On a quiet connection version 1 keeps it alive
/// with WebSocket Pings, never with a text message of a third type (before,
/// it got `{"type":"heartbeat"}` every 5 s, which such a client reads as a
/// delta without queues). Version 2 keeps its text heartbeat (it carries the
/// server clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_version_1_connection_gets_pings_and_only_contract_messages() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let d = daemon("", QUEUES).await;
    let url = format!("ws://{}/ws?token={READ}", d.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut types = Vec::new();
    let mut pings = 0;
    let end = tokio::time::Instant::now() + Duration::from_millis(11_000);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
        match m {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                types.push(v["type"].as_str().unwrap_or("").to_string());
            }
            Message::Ping(_) => pings += 1,
            _ => {}
        }
    }
    assert_eq!(types.first().map(String::as_str), Some("snapshot"));
    assert!(
        types.iter().all(|t| t == "snapshot" || t == "delta"),
        "only the contract's message types: {types:?}"
    );
    assert!(pings >= 1, "a quiet connection is kept alive with pings");
    close(ws).await;

    let url = format!("ws://{}/ws?token={READ}&v=2", d.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut heartbeats = 0;
    let end = tokio::time::Instant::now() + Duration::from_millis(11_000);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "heartbeat" {
                assert!(v["now"].is_string(), "{v}");
                heartbeats += 1;
            }
        }
    }
    assert!(heartbeats >= 1, "version 2 keeps its text heartbeat");
    close(ws).await;
}

/// Section 5: a snapshot `seq` N, then deltas N+1, ... A client written
/// from it treats a gap as lost data and reconnects. While callers queue up
/// over several coalescing periods (each period merging many engine
/// changes), a wall that keeps up sees every `seq`, one after the other,
/// and its figures end where the floor is. Before, `seq` was the last
/// engine change a message held, so it jumped by about ten per period.
/// Resuming from any of those numbers still gets what was missed, merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_wall_that_keeps_up_sees_seq_step_by_one() {
    let d = daemon("ws_coalesce = \"200ms\"", QUEUES).await;
    // The floor is already busy when the wall connects.
    post(&d.addr, &agent("a1", "available", "billing")).await;
    post(&d.addr, &enqueue("billing", "b1")).await;
    let mut ws = connect(&d.addr, &format!("token={READ}")).await;
    let snap = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    let first = snap["seq"].as_u64().unwrap();
    let addr = d.addr.clone();
    let poster = tokio::spawn(async move {
        for i in 0..30 {
            post(&addr, &enqueue("hotline", &format!("k{i}"))).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut seqs = vec![first];
    let mut seq = first;
    until(
        &mut ws,
        &mut seq,
        Duration::from_secs(10),
        "30 callers waiting on hotline",
        |v| {
            seqs.push(v["seq"].as_u64().unwrap());
            queue(v, "hotline").is_some_and(|q| q["waiting"] == 30)
        },
    )
    .await;
    poster.await.unwrap();
    assert!(seqs.len() >= 4, "several periods: {seqs:?}");
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "seq steps by one: {seqs:?}");
    }
    close(ws).await;

    // A wall that dropped after the snapshot, or mid-burst, resumes from
    // the `seq` it last had: one delta with everything since, numbered as
    // the last period.
    let last = *seqs.last().unwrap();
    for since in [first, seqs[seqs.len() / 2]] {
        let mut ws = connect(&d.addr, &format!("token={READ}&since={since}")).await;
        let m = next(&mut ws, Duration::from_secs(5)).await.unwrap();
        assert_eq!(m["type"], "delta", "since={since}: {m}");
        assert_eq!(m["seq"].as_u64(), Some(last), "since={since}");
        assert_eq!(
            queue(&m, "hotline").unwrap()["waiting"],
            30,
            "since={since}"
        );
        close(ws).await;
    }
}
