//! The webhook CTI action against a real local HTTP receiver: a 503, a
//! request that is never answered, then success; a refusal that is not
//! retried; and giving up after the configured attempts.

mod hook;

use std::time::{Duration, Instant};

use acdmon::config::{HumanDuration, Secret};
use acdmon::cti::webhook::{Webhook, WebhookConfig};
use acdmon::cti::{Cti, CtiRequest, CtiVerb};
use hook::{Answer, Hook};
use serde_spanned::Spanned;

fn config(url: &str, retries: u32) -> WebhookConfig {
    WebhookConfig {
        url: Spanned::new(0..0, url.to_string()),
        timeout: HumanDuration(Duration::from_millis(300)),
        retries,
        backoff: HumanDuration(Duration::from_millis(50)),
        token: Some(Secret::inline("s3cret")),
        ca_file: None,
    }
}

fn request() -> CtiRequest {
    CtiRequest {
        verb: CtiVerb::SignIn,
        agent: "1017".into(),
        interface: "PJSIP/1017".into(),
        name: Some("Li Na".into()),
        queue: "hotline".into(),
    }
}

#[tokio::test]
async fn fails_times_out_then_succeeds() {
    let hook = Hook::start(Answer::Status(
        200,
        r#"{"ok":true,"detail":"signed in"}"#.into(),
    ))
    .await;
    hook.then(Answer::Status(503, "busy".into()));
    hook.then(Answer::Hang);
    let cti = Webhook::new("crm", config(&hook.url, 3)).unwrap();
    let started = Instant::now();
    let out = cti.execute(request()).await;
    let took = started.elapsed();
    assert!(out.ok, "{out:?}");
    assert_eq!(out.detail, "signed in (attempt 3 of 4)");
    let seen = hook.seen();
    assert_eq!(seen.len(), 3);
    for (i, s) in seen.iter().enumerate() {
        assert!(s.head.starts_with("post /cti http/1.1"), "{}", s.head);
        assert!(s.head.contains("authorization: bearer s3cret"));
        assert!(s.head.contains(&format!("x-acdmon-attempt: {}", i + 1)));
        assert_eq!(s.body["verb"], "sign_in");
        assert_eq!(s.body["agent"], "1017");
        assert_eq!(s.body["interface"], "PJSIP/1017");
        assert_eq!(s.body["name"], "Li Na");
        assert_eq!(s.body["queue"], "hotline");
    }
    // 300 ms timeout + 50 ms and 100 ms backoff (+ up to 25 % jitter).
    assert!(took >= Duration::from_millis(440), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_refusal_is_final_and_an_ok_false_answer_is_a_failure() {
    let hook = Hook::start(Answer::Status(404, "no such agent".into())).await;
    let cti = Webhook::new("crm", config(&hook.url, 3)).unwrap();
    let out = cti.execute(request()).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "HTTP 404: no such agent");
    assert_eq!(hook.seen().len(), 1, "4xx is not retried");

    let hook = Hook::start(Answer::Status(
        200,
        r#"{"ok":false,"detail":"agent is on leave"}"#.into(),
    ))
    .await;
    let cti = Webhook::new("crm", config(&hook.url, 3)).unwrap();
    let out = cti.execute(request()).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "agent is on leave");
    assert_eq!(hook.seen().len(), 1);
}

#[tokio::test]
async fn gives_up_after_the_configured_attempts() {
    let hook = Hook::start(Answer::Status(503, "down".into())).await;
    let cti = Webhook::new("crm", config(&hook.url, 2)).unwrap();
    let out = cti.execute(request()).await;
    assert!(!out.ok);
    assert_eq!(out.detail, "HTTP 503: down (gave up after 3 attempts)");
    assert_eq!(hook.seen().len(), 3);

    // Nobody listening: connection refused, retried, then failed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cti = Webhook::new("crm", config(&format!("http://127.0.0.1:{port}/cti"), 1)).unwrap();
    let out = cti.execute(request()).await;
    assert!(!out.ok);
    assert!(
        out.detail.contains("gave up after 2 attempts"),
        "{}",
        out.detail
    );
}

/// A receiver over TLS with a self-signed certificate: trusted through
/// `ca_file`, the sign-in goes through (token and body encrypted); without
/// it, the certificate is refused and nothing is sent in the clear.
#[tokio::test]
async fn https_with_a_private_ca() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("receiver.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen_tx.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body by Content-Length.
                loop {
                    let Ok(n) = tls.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            let _ = seen.send(text);
                            break;
                        }
                    }
                }
                let body = r#"{"ok":true,"detail":"signed in over tls"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });

    let url = format!("https://localhost:{port}/cti");
    let mut trusted = config(&url, 0);
    trusted.ca_file = Some(ca.to_string_lossy().into_owned());
    let out = Webhook::new("crm", trusted)
        .unwrap()
        .execute(request())
        .await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.detail, "signed in over tls");
    let req = seen_rx.recv().await.unwrap();
    assert!(req.starts_with("POST /cti HTTP/1.1"), "{req}");
    assert!(
        req.to_ascii_lowercase()
            .contains("authorization: bearer s3cret")
    );
    assert!(req.contains("\"agent\":\"1017\""), "{req}");

    // The public roots alone do not vouch for a self-signed receiver.
    let out = Webhook::new("crm", config(&url, 0))
        .unwrap()
        .execute(request())
        .await;
    assert!(!out.ok, "{out:?}");
    assert!(
        out.detail.to_ascii_lowercase().contains("certificate"),
        "{}",
        out.detail
    );
    assert!(seen_rx.try_recv().is_err(), "nothing reached the receiver");
}
