//! The webhook CTI action: sign-in and sign-out as an HTTP POST of JSON, for
//! phone systems acdmon has no adapter for (a CRM, a cloud contact centre, a
//! script in front of the PBX).
//!
//! `http://` or `https://`: the request carries a bearer token and moves
//! people between queues, so anything beyond the local host should be TLS
//! (rustls with the `ring` provider; the Mozilla roots of `webpki-roots`,
//! plus `ca_file` for a private CA or a self-signed receiver).
//!
//! Delivery: each attempt has `timeout`; connection errors, timeouts, 408,
//! 429 and 5xx are retried up to `retries` times with exponential backoff
//! (`backoff`, doubled per retry, capped at 30 s, plus up to 25 % jitter so
//! a burst of failures does not retry in lockstep). Other 4xx answers are
//! final: the receiver understood and refused. A 2xx answer is success
//! unless its JSON body says `"ok": false`. The receiver must treat a
//! repeated request as a no-op (sign-in of a member already in the queue is
//! `ok`): a retry after a lost answer, or a re-issue after a daemon crash,
//! sends the same request again.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::http::Uri;
use hyper::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use serde::Deserialize;

use super::{Cti, CtiFuture, CtiOutcome, CtiRequest};
pub use crate::config::cti::WebhookConfig;
use crate::config::cti::{extra_roots, parse_url};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most bytes of an answer read (the detail needs a line, not a page).
const MAX_ANSWER: usize = 16 * 1024;

impl WebhookConfig {
    /// TLS settings: the public roots, and `ca_file`'s certificates.
    fn tls(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &self.ca_file {
            for cert in extra_roots(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("webhook `ca_file` {path}: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// A webhook CTI action. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Webhook {
    name: Arc<str>,
    uri: Uri,
    cfg: Arc<WebhookConfig>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("uri", &self.uri)
            .finish()
    }
}

/// What one attempt came to.
enum Attempt {
    Done(CtiOutcome),
    Retry(String),
}

#[derive(Deserialize)]
struct Answer {
    ok: Option<bool>,
    detail: Option<String>,
}

impl Webhook {
    pub fn new(name: &str, cfg: WebhookConfig) -> Result<Webhook, String> {
        cfg.check()?;
        let uri = parse_url(cfg.url.get_ref())?;
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(cfg.timeout.0));
        conn.set_nodelay(true);
        conn.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(cfg.tls()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(conn);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Webhook {
            name: Arc::from(name),
            uri,
            cfg: Arc::new(cfg),
            client,
        })
    }

    async fn attempt(&self, body: &Bytes, n: u32) -> Attempt {
        let mut b = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("acdmon/", env!("CARGO_PKG_VERSION")))
            .header("x-acdmon-attempt", n.to_string());
        if let Some(t) = &self.cfg.token {
            b = b.header(AUTHORIZATION, format!("Bearer {}", t.expose()));
        }
        if let Ok(k) = super::IDEMPOTENCY_KEY.try_with(|k| k.clone()) {
            b = b.header("idempotency-key", k);
        }
        let req = match b.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => return Attempt::Done(CtiOutcome::failed(format!("bad request: {e}"))),
        };
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let mut msg = e.to_string();
                if let Some(src) = std::error::Error::source(&e) {
                    msg = format!("{msg}: {src}");
                }
                msg
            })?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
                if let Some(d) = frame.data_ref() {
                    let room = MAX_ANSWER.saturating_sub(buf.len());
                    buf.extend_from_slice(&d[..d.len().min(room)]);
                }
            }
            Ok::<_, String>((status, buf))
        };
        match tokio::time::timeout(self.cfg.timeout.0, exchange).await {
            Err(_) => Attempt::Retry(format!("no answer within {}", self.cfg.timeout)),
            Ok(Err(e)) => Attempt::Retry(e),
            Ok(Ok((status, buf))) => {
                let answer: Option<Answer> = serde_json::from_slice(&buf).ok();
                let text = String::from_utf8_lossy(&buf);
                let snippet: String = text.trim().chars().take(200).collect();
                let detail = answer
                    .as_ref()
                    .and_then(|a| a.detail.clone())
                    .unwrap_or_else(|| {
                        if snippet.is_empty() {
                            format!("HTTP {}", status.as_u16())
                        } else {
                            format!("HTTP {}: {snippet}", status.as_u16())
                        }
                    });
                if status.is_success() {
                    if answer.and_then(|a| a.ok) == Some(false) {
                        Attempt::Done(CtiOutcome::failed(detail))
                    } else {
                        Attempt::Done(CtiOutcome::ok(detail))
                    }
                } else if status.is_server_error()
                    || status.as_u16() == 408
                    || status.as_u16() == 429
                {
                    Attempt::Retry(detail)
                } else {
                    Attempt::Done(CtiOutcome::failed(detail))
                }
            }
        }
    }

    async fn send(self, req: CtiRequest) -> CtiOutcome {
        let body = match serde_json::to_vec(&req) {
            Ok(b) => Bytes::from(b),
            Err(e) => return CtiOutcome::failed(format!("cannot encode the request: {e}")),
        };
        let attempts = self.cfg.retries + 1;
        let mut wait = self.cfg.backoff.0;
        let mut last = String::new();
        for n in 1..=attempts {
            match self.attempt(&body, n).await {
                Attempt::Done(mut o) => {
                    if n > 1 {
                        o.detail = format!("{} (attempt {n} of {attempts})", o.detail);
                    }
                    return o;
                }
                Attempt::Retry(why) => {
                    tracing::warn!(cti = %self.name, agent = %req.agent, verb = ?req.verb,
                        attempt = n, of = attempts, error = %why, "webhook attempt failed");
                    last = why;
                }
            }
            if n < attempts {
                let jitter = rand::rng().random_range(0.0..0.25);
                tokio::time::sleep(wait.mul_f64(1.0 + jitter)).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
        CtiOutcome::failed(format!("{last} (gave up after {attempts} attempts)"))
    }
}

impl Cti for Webhook {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        Box::pin(self.clone().send(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cti::{default_backoff, default_timeout};
    use serde_spanned::Spanned;

    fn cfg(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: Spanned::new(0..0, url.into()),
            timeout: default_timeout(),
            retries: 3,
            backoff: default_backoff(),
            token: None,
            ca_file: None,
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(cfg("http://127.0.0.1:9000/cti").check().is_ok());
        assert!(cfg("https://crm.example/cti").check().is_ok());
        let mut c = cfg("https://crm.example/cti");
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(c.check().unwrap_err().contains("ca_file"));
        assert!(cfg("ftp://x/").check().is_err());
        assert!(cfg("not a url").check().is_err());
        let mut c = cfg("http://h/");
        c.retries = 11;
        assert!(c.check().unwrap_err().contains("at most 10"));
    }
}
