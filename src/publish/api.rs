//! The REST API (contract section 4) and the health routes.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::AppState;
use super::auth;
use crate::sources::Envelope;
use crate::sources::json::LineDecoder;

pub fn routes(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/queues/{queue}", get(queue))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/events", post(ingest))
}

#[allow(clippy::result_large_err)]
pub(crate) fn read_guard(s: &AppState, h: &HeaderMap, q: &Option<String>) -> Result<(), Response> {
    auth::check_read(
        &s.config.server.read_token,
        &s.config.server.admin_token,
        auth::presented(h, q.as_deref()).as_deref(),
    )
    .map_err(|c| (c, Json(json!({"error": "a valid read token is required"}))).into_response())
}

#[allow(clippy::result_large_err)]
pub(crate) fn admin_guard(s: &AppState, h: &HeaderMap, q: &Option<String>) -> Result<(), Response> {
    auth::check_admin(
        &s.config.server.admin_token,
        auth::presented(h, q.as_deref()).as_deref(),
    )
    .map_err(|c| {
        let msg = if s.config.server.admin_token.is_none() {
            "control routes are disabled: no admin token is configured"
        } else {
            "a valid admin token is required"
        };
        (c, Json(json!({"error": msg}))).into_response()
    })
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// "storage: <error>" while the audit log or interval history cannot be
/// written, or escalation decisions wait to be written.
pub(crate) fn storage_not_ready_reason(s: &AppState) -> Option<String> {
    crate::escalation::control::handle_for(&s.publisher)
        .and_then(|l| l.store.health().not_ready_reason())
}

async fn readyz(State(s): State<AppState>) -> Response {
    let mut reasons: Vec<String> = s
        .health
        .all()
        .iter()
        .filter_map(|h| h.not_ready_reason())
        .collect();
    reasons.extend(storage_not_ready_reason(&s));
    if reasons.is_empty() {
        (StatusCode::OK, Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reasons": reasons})),
        )
            .into_response()
    }
}

async fn queues(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    Json(s.publisher.snapshot().queues.clone()).into_response()
}

async fn queue(
    State(s): State<AppState>,
    Path(name): Path<String>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    match s.publisher.snapshot().queue(&name) {
        Some(v) => Json(v.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown queue {name}")})),
        )
            .into_response(),
    }
}

async fn agents(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    Json(s.publisher.snapshot().agents.clone()).into_response()
}

/// Native event ingest: a body of JSON lines. Answers with what was accepted
/// and what was rejected (with line numbers), after the events are queued
/// for the engine.
async fn ingest(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &q) {
        return r;
    }
    let mut dec = LineDecoder::new();
    let mut out = Vec::new();
    dec.feed(&body, &mut out);
    dec.finish(&mut out);
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (line, r) in out {
        match r {
            Ok(ev) => events.push(ev),
            Err(rej) => {
                s.rejects.record(
                    "http",
                    &format_args!("POST /api/v1/events line {line}"),
                    &rej,
                );
                rejected.push(json!({"line": line, "reason": rej.reason, "detail": rej.detail}));
            }
        }
    }
    let accepted = events.len();
    s.metrics
        .http_events
        .fetch_add(accepted as u64, std::sync::atomic::Ordering::Relaxed);
    if !events.is_empty()
        && s.inbox
            .send(Envelope::Batch {
                source: "http".into(),
                events,
            })
            .await
            .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the engine is stopping"})),
        )
            .into_response();
    }
    let status = if rejected.is_empty() || accepted > 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        Json(json!({"accepted": accepted, "rejected": rejected})),
    )
        .into_response()
}
