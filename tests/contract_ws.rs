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
