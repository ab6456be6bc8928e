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
