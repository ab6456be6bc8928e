//! The shift handover routes: the duty log, the handover records, their
//! acknowledgement, and what the wall's handover banner shows now.
//!
//! Records and the duty log live in the audit database; the routes reach it
//! through the ladder's handle (the daemon's one store, read through its
//! reader connection on a blocking thread), like the escalation log.

// Helpers return the ready error response, as `api::read_guard` does.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::{admin_guard, read_guard};
use super::control::{error, parse_since};
use crate::floor::handover::MAX_DUTY;
use crate::floor::shift;
use crate::store::Store;
use crate::store::handover::AckError;
use crate::time::Ts;

/// Longest duty-log entry, in characters.
pub const MAX_TEXT: usize = 2_000;
/// Longest name in `by`, in characters.
pub const MAX_BY: usize = 64;
/// Most handover records one GET returns.
const MAX_HANDOVERS: usize = 1_000;
/// Without `since`: the duty log and handovers of the last day.
const DEFAULT_BACK_MS: i64 = 86_400_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/duty-log", get(duty_list).post(duty_add))
        .route("/api/v1/handovers", get(list))
        .route("/api/v1/handovers/banner", get(banner))
        .route("/api/v1/handovers/{id}", get(one))
        .route("/api/v1/handovers/{id}/ack", post(ack))
}

fn store(s: &AppState) -> Result<std::sync::Arc<Store>, Response> {
    s.ladder.as_ref().map(|l| l.store.clone()).ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this daemon keeps no audit database",
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Response> + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())))
}

fn internal(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

#[derive(Debug, Default, Deserialize)]
struct SinceQuery {
    /// RFC 3339, or epoch milliseconds.
    since: Option<String>,
    limit: Option<usize>,
}

fn since(q: &SinceQuery) -> Result<Ts, Response> {
    match q.since.as_deref().filter(|x| !x.is_empty()) {
        None => Ok(Ts::now().plus_ms(-DEFAULT_BACK_MS)),
        Some(x) => parse_since(x)
            .filter(|t| t.in_event_range() || t.0 == 0)
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("bad `since` {x:?}: an RFC 3339 time or epoch milliseconds"),
                )
            }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DutyBody {
    text: String,
    by: String,
}

/// Trims a field and checks its length; `None` when empty.
fn field(v: &str, max: usize) -> Result<Option<String>, String> {
    let v = v.trim();
    if v.chars().count() > max {
        return Err(format!("at most {max} characters"));
    }
    Ok((!v.is_empty()).then(|| v.to_string()))
}

async fn duty_add(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &raw) {
        return r;
    }
    let b: DutyBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad body (expected {{\"text\": \"...\", \"by\": \"NAME\"}}): {e}"),
            );
        }
    };
    let (text, by) = match (field(&b.text, MAX_TEXT), field(&b.by, MAX_BY)) {
        (Ok(Some(t)), Ok(Some(by))) => (t, by),
        (Err(e), _) => return error(StatusCode::BAD_REQUEST, format!("`text`: {e}")),
        (_, Err(e)) => return error(StatusCode::BAD_REQUEST, format!("`by`: {e}")),
        _ => {
            return error(StatusCode::BAD_REQUEST, "`text` and `by` must not be empty");
        }
    };
    let st = match store(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = blocking(move || st.insert_duty(Ts::now(), &by, &text).map_err(internal)).await;
    match r {
        Ok(e) => (StatusCode::CREATED, Json(e)).into_response(),
        Err(r) => r,
    }
}

async fn duty_list(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    since_list(&s, &h, &raw, q, MAX_DUTY, |st, from, limit| {
        st.duty_log(from, Ts::LATEST, limit).map(Json)
    })
    .await
}

async fn list(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    since_list(&s, &h, &raw, q, MAX_HANDOVERS, |st, from, limit| {
        st.handovers(from, Ts::LATEST, limit).map(Json)
    })
    .await
}

/// A read route over `?since=&limit=` (the duty log, the handovers): the
/// read token, the query checked, the store read off the async workers.
async fn since_list<T, F>(
    s: &AppState,
    h: &HeaderMap,
    raw: &Option<String>,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
    max: usize,
    read: F,
) -> Response
where
    T: IntoResponse + Send + 'static,
    F: FnOnce(&crate::store::Store, Ts, usize) -> Result<T, crate::store::StoreError>
        + Send
        + 'static,
{
    if let Err(r) = read_guard(s, h, raw) {
        return r;
    }
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad query: use ?since=RFC3339|epoch-ms&limit=N",
        );
    };
    let from = match since(&q) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(max).min(max);
    let st = match store(s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match blocking(move || read(&st, from, limit).map_err(internal)).await {
        Ok(v) => v.into_response(),
        Err(r) => r,
    }
}

async fn one(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = read_guard(&s, &h, &raw) {
        return r;
    }
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, format!("no handover {id}"));
    };
    let st = match store(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match blocking(move || st.handover(id).map_err(internal)).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no handover {id}")),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
}

/// The incoming supervisor acknowledges a handover: who and when are
/// recorded once; a second acknowledgement is refused (409).
async fn ack(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &raw) {
        return r;
    }
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, format!("no handover {id}"));
    };
    let by = match serde_json::from_slice::<AckBody>(&body)
        .map_err(|e| e.to_string())
        .and_then(|b| field(&b.by, MAX_BY))
    {
        Ok(Some(by)) => by,
        Ok(None) => return error(StatusCode::BAD_REQUEST, "`by` must not be empty"),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad body (expected {{\"by\": \"NAME\"}}): {e}"),
            );
        }
    };
    let st = match store(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = blocking(move || {
        st.ack_handover(id, &by, Ts::now()).map_err(|e| match e {
            AckError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string()),
            AckError::Already { .. } => error(StatusCode::CONFLICT, e.to_string()),
            AckError::Store(e) => internal(e),
        })
    })
    .await;
    match r {
        Ok(h) => Json(h).into_response(),
        Err(r) => r,
    }
}

/// What the wall shows about the handover now: `phase` `before` during the
/// last `show_before` of a shift (with whether an emergency is unresolved
/// right now), `after` during the first `show_after` after one ended (with
/// its record), else `null`.
async fn banner(State(s): State<AppState>, h: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &raw) {
        return r;
    }
    let cfg = s.config.load_full();
    let now = Ts::now();
    let mut reasons = Vec::new();
    for q in &s.publisher.snapshot().queues {
        if let Some(e) = &q.escalation {
            if e.stage > 0 {
                reasons.push(format!(
                    "{}: ladder stage {} ({}) active",
                    q.queue, e.stage, e.stage_name
                ));
            }
            if !e.pending.is_empty() {
                reasons.push(format!("{}: advice pending", q.queue));
            }
        }
    }
    let before = shift::current(&cfg.shifts, now, &cfg.zone)
        .filter(|c| c.end.since(now) <= cfg.handover.show_before.millis());
    if let Some(c) = before {
        return Json(json!({
            "phase": "before", "shift": c, "now": now,
            "unresolved": !reasons.is_empty(), "reasons": reasons, "handover": null,
        }))
        .into_response();
    }
    let after = shift::last_ended(&cfg.shifts, now, &cfg.zone)
        .filter(|l| now.since(l.end) <= cfg.handover.show_after.millis());
    let Some(last) = after else {
        return Json(json!({"phase": null, "now": now})).into_response();
    };
    let st = match store(&s) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let end = last.end;
    let rec = blocking(move || {
        st.handovers(end, end.plus_ms(1), 1)
            .map(|mut v| v.pop())
            .map_err(internal)
    })
    .await;
    match rec {
        Ok(h) => Json(json!({
            "phase": "after", "shift": last, "now": now,
            "unresolved": h.as_ref().is_some_and(|h| h.unresolved),
            "reasons": h.as_ref().map(|h| h.unresolved_reasons.clone()).unwrap_or_default(),
            "handover": h,
        }))
        .into_response(),
        Err(r) => r,
    }
}
