//! The native feed reaches the engine over TCP, HTTP and a file, in a running
//! daemon; bad lines are counted and skipped without stopping anything.

mod support;

use std::time::Duration;

use acdmon::config::Config;
use serde_json::Value;
use support::{eventually, free_port, http};
use tokio::io::AsyncWriteExt;

async fn queue(addr: &str, token: &str, name: &str) -> Option<Value> {
    let r = http(
        addr,
        "GET",
        &format!("/api/v1/queues/{name}"),
        Some(token),
        "",
    )
    .await;
    (r.status == 200)
        .then(|| serde_json::from_str(&r.body).ok())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_by_tcp_http_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.jsonl");
    // In `run` a file is read on the daemon's clock: stamped now (a time
    // more than `max_future_skew` ahead would be rejected as ts_in_future).
    std::fs::write(
        &file,
        format!(
            "{{\"ts\":{},\"type\":\"call_enqueued\",\"call\":\"f1\",\"queue\":\"files\"}}\nnot json\n",
            acdmon::time::Ts::now().0
        ),
    )
    .unwrap();
    let json_port = free_port();
    let text = format!(
        r#"
[server]
read_token = "reader"
admin_token = "boss"
[[sources]]
name = "feed"
kind = "json"
listen = "127.0.0.1:{json_port}"
[[sources]]
name = "archive"
kind = "json"
path = {:?}
"#,
        file.display().to_string()
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let d = acdmon::daemon::start(cfg, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = d.state.clone();
    tokio::spawn(acdmon::daemon::serve_on(listener, state));

    // TCP: a producer connects and writes lines, one of them garbage.
    let mut tcp = eventually(Duration::from_secs(5), "json listener", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", json_port))
            .await
            .ok()
    })
    .await;
    let now = acdmon::time::Ts::now().0;
    tcp.write_all(
        format!(
            "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"t1\",\"queue\":\"hotline\"}}\n\u{0}\u{1}garbage\n{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"t2\",\"queue\":\"hotline\"}}\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tcp.flush().await.unwrap();
    let q = eventually(Duration::from_secs(5), "two waiting via TCP", || async {
        queue(&addr, "reader", "hotline")
            .await
            .filter(|q| q["waiting"] == 2)
    })
    .await;
    assert_eq!(q["queue"], "hotline");

    // HTTP: needs the admin token; the read token is refused.
    let body = format!(
        "{{\"ts\":{now},\"type\":\"call_abandoned\",\"call\":\"t1\",\"queue\":\"hotline\"}}\n{{\"bad\":1}}\n"
    );
    assert_eq!(
        http(&addr, "POST", "/api/v1/events", Some("reader"), &body)
            .await
            .status,
        403
    );
    assert_eq!(
        http(&addr, "POST", "/api/v1/events", None, &body)
            .await
            .status,
        401
    );
    let r = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["rejected"][0]["line"], 2);
    eventually(Duration::from_secs(5), "abandon via HTTP", || async {
        queue(&addr, "reader", "hotline")
            .await
            .filter(|q| q["waiting"] == 1 && q["windows"]["today"]["abandoned"] == 1)
    })
    .await;

    // File: read once.
    eventually(Duration::from_secs(5), "file source", || async {
        queue(&addr, "reader", "files")
            .await
            .filter(|q| q["waiting"] == 1)
    })
    .await;

    // Reads need the read token; unknown queues are 404; health is open.
    assert_eq!(
        http(&addr, "GET", "/api/v1/queues", None, "").await.status,
        401
    );
    assert_eq!(
        http(&addr, "GET", "/api/v1/queues/nope", Some("reader"), "")
            .await
            .status,
        404
    );
    assert_eq!(http(&addr, "GET", "/healthz", None, "").await.status, 200);
    let ready = http(&addr, "GET", "/readyz", None, "").await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    // Rejections were counted by source and reason.
    let all = d.state.rejects.all();
    let count = |s: &str, r: &str| all.iter().find(|(a, b, _)| a == s && *b == r).map(|x| x.2);
    assert_eq!(count("feed", "invalid_json"), Some(1));
    assert_eq!(count("archive", "invalid_json"), Some(1));
    assert_eq!(count("http", "missing_field"), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_routes_answer_403_without_an_admin_token() {
    let cfg = Config::parse("t.toml", "").unwrap();
    let d = acdmon::daemon::start(cfg, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(acdmon::daemon::serve_on(listener, d.state.clone()));
    let r = http(&addr, "POST", "/api/v1/events", Some("anything"), "{}").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("no admin token"));
    assert_eq!(
        http(&addr, "GET", "/api/v1/queues", None, "").await.status,
        200,
        "reads are open without a read token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_client_source_reconnects_after_the_producer_drops() {
    let producer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let paddr = producer.local_addr().unwrap().to_string();
    let text = format!("[[sources]]\nname = \"up\"\nkind = \"json\"\naddress = \"{paddr}\"\n");
    let cfg = Config::parse("t.toml", &text).unwrap();
    let d = acdmon::daemon::start(cfg, Vec::new());
    let now = acdmon::time::Ts::now().0;
    for call in ["r1", "r2"] {
        let (mut s, _) = producer.accept().await.unwrap();
        s.write_all(
            format!(
                "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"{call}\",\"queue\":\"q\"}}\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        drop(s); // the producer goes away; the source must come back
    }
    let p = d.state.publisher.clone();
    eventually(Duration::from_secs(10), "both connections' events", || {
        let p = p.clone();
        async move {
            p.snapshot()
                .queue("q")
                .filter(|q| q.waiting == 2)
                .map(|_| ())
        }
    })
    .await;
    let h = d.state.health.all();
    assert_eq!(h[0].events(), 2);
}
