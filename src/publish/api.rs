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
        .route("/api/v1/queues/{queue}/trend", get(trend))
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

async fn readyz(State(s): State<AppState>) -> Response {
    let reasons: Vec<String> = s
        .health
        .all()
        .iter()
        .filter_map(|h| h.not_ready_reason())
        .collect();
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

/// `?minutes=N` (1 to the samples kept; default 60): a queue's one-minute
/// samples, oldest first.
async fn trend(
    State(s): State<AppState>,
    Path(name): Path<String>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    use crate::state::trend::{KEEP_MINUTES, STEP_MS};
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    let mut minutes = 60usize;
    for kv in q.as_deref().unwrap_or("").split('&') {
        if let Some(v) = kv.strip_prefix("minutes=") {
            match v.parse::<usize>() {
                Ok(n) if (1..=KEEP_MINUTES).contains(&n) => minutes = n,
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": format!("minutes must be 1 to {KEEP_MINUTES}, got {v:?}")})),
                    )
                        .into_response();
                }
            }
        }
    }
    let snap = s.publisher.snapshot();
    if snap.queue(&name).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown queue {name}")})),
        )
            .into_response();
    }
    let samples = snap.trends.get(&name).map_or(&[][..], |v| &v[..]);
    let from = samples.len().saturating_sub(minutes);
    Json(json!({
        "queue": name,
        "step_s": STEP_MS / 1000,
        "samples": &samples[from..],
    }))
    .into_response()
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
