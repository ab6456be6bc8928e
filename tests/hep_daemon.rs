//! A running daemon with a `kind = "hep"` source: HEP over UDP shows up as
//! a waiting caller in the API, garbage is counted for the metrics, and the
//! source reports ready once it listens.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use acdmon::config::Config;
use acdmon::sources::hep::packet::HepBuilder;
use acdmon::time::Ts;
use serde_json::Value;
use support::{eventually, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hep_source_in_the_daemon_feeds_the_wall() {
    let hep_port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let text = format!(
        r#"
[[sources]]
name = "sbc"
kind = "hep"
listen_udp = "127.0.0.1:{hep_port}"

[[sources.queues]]
pattern = "^q-(\\w+)$"
queue = "$1"
answer = "early_media"
"#
    );
    let cfg = Config::parse("t.toml", &text).unwrap_or_else(|e| panic!("{e:?}"));
    let d = acdmon::daemon::start(cfg, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(acdmon::daemon::serve_on(listener, d.state.clone()));

    eventually(Duration::from_secs(5), "hep source ready", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;

    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to: SocketAddr = format!("127.0.0.1:{hep_port}").parse().unwrap();
    let a: SocketAddr = "10.0.0.50:5060".parse().unwrap();
    let b: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let invite = "INVITE sip:q-support@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.50;branch=z9hG4bKd1\r\n\
                  From: <sip:4930@example.com>;tag=f1\r\nTo: <sip:q-support@example.com>\r\nCall-ID: d1@pbx\r\n\
                  CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let p = HepBuilder::sip(a, b, Ts::now()).build(invite.as_bytes());
    udp.send_to(&p, to).await.unwrap();
    udp.send_to(b"not hep", to).await.unwrap();

    let q: Value = eventually(
        Duration::from_secs(5),
        "caller waiting in support",
        || async {
            let r = http(&addr, "GET", "/api/v1/queues/support", None, "").await;
            (r.status == 200)
                .then(|| serde_json::from_str::<Value>(&r.body).ok())
                .flatten()
                .filter(|q| q["waiting"] == 1)
        },
    )
    .await;
    assert_eq!(
        q["windows"]["today"]["offered"], 0,
        "still waiting, not yet offered"
    );
    // Counted where `/metrics` reads `acd_source_events_rejected_total`.
    let rejects = d.state.rejects.clone();
    eventually(Duration::from_secs(5), "reject counted", || {
        let r = rejects.clone();
        async move {
            r.all()
                .iter()
                .any(|(src, reason, n)| src == "sbc" && *reason == "hep_not_hep" && *n == 1)
                .then_some(())
        }
    })
    .await;
}
