//! Layers every route goes through, for clients that are slow, oversized or
//! unauthenticated:
//!
//! - a request that can carry a body (anything but GET/HEAD/OPTIONS) needs
//!   the admin token, checked from the headers *before* a byte of the body
//!   is read, so an anonymous client cannot hold a connection by sending a
//!   body slowly;
//! - every request body has a deadline (`body_timeout`) for the whole body.
//!   tower-http's `RequestBodyTimeout` restarts its clock at each frame, so
//!   a client sending a byte a second would never trip it; this one does;
//! - every error answer is JSON (`{"error": "..."}`): axum's own rejections
//!   (404, 405, 413, a bad body) are plain text, which a tool reading the
//!   API cannot parse.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::AppState;

/// The body deadline passed: the handler sees this as the body's error.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body was not received within {}",
            humantime::format_duration(self.0)
        )
    }
}

impl std::error::Error for BodyTimedOut {}

/// Was this body error our deadline?
pub fn is_body_timeout(e: &axum::Error) -> Option<&BodyTimedOut> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<BodyTimedOut>() {
            return Some(t);
        }
        src = s.source();
    }
    None
}

/// A request body that fails once its deadline passes.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    within: Duration,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(r) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(r);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(self.within)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Admin token from the headers before any body; a body deadline.
pub async fn before_body(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let bodiless = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !bodiless {
        let q = req.uri().query().map(str::to_string);
        if let Err(r) = super::api::admin_guard(&s, req.headers(), &q) {
            return r;
        }
    }
    let within = s.config.load().server.body_timeout.0;
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(within)),
            within,
        })
    });
    next.run(req).await
}

/// Longest plain-text error body turned into JSON.
const MAX_ERROR_TEXT: usize = 4096;

/// Turns every non-JSON error answer into `{"error": "..."}`.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut out = (status, axum::Json(serde_json::json!({ "error": text }))).into_response();
    // Keep headers such as `Allow` (405) and `WWW-Authenticate`.
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// A 404 for paths no route knows.
pub async fn not_found(req: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": format!("no route for {} {}", req.method(), req.uri().path())
        })),
    )
        .into_response()
}
