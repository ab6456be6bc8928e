//! The escalation routes (contract section 4): the audit log, approving and
//! rejecting advice, and manual sign-in/out. Reads go to the store's reader
//! connection on a blocking thread; everything that changes the ladder is a
//! command to the engine thread (see `escalation::control`).

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
use crate::escalation::control::{Command, ControlError, LadderHandle};
use crate::time::Ts;

/// Most entries one GET returns (the newest ones from `since`).
const MAX_ENTRIES: usize = 10_000;

pub fn routes(_state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/escalations", get(list))
        .route("/api/v1/escalations/{id}/approve", post(approve))
        .route("/api/v1/escalations/{id}/reject", post(reject))
        .route("/api/v1/agents/{agent}/sign-in", post(sign_in))
        .route("/api/v1/agents/{agent}/sign-out", post(sign_out))
}

/// A JSON error answer (`{"error": ...}`), as every route gives.
pub(crate) fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({"error": msg.into()}))).into_response()
}

fn ladder(s: &AppState) -> Option<LadderHandle> {
    s.ladder.clone()
}

fn no_ladder() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no escalation ladder runs in this process",
    )
}

fn control_error(e: ControlError) -> Response {
    let code = match e {
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Conflict(_) => StatusCode::CONFLICT,
        ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        // The audit log cannot be written now (full disk, read-only file
        // system): nothing was done; try again when storage recovers.
        ControlError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(code, e.to_string())
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    queue: Option<String>,
    /// RFC 3339, or epoch milliseconds.
    since: Option<String>,
    limit: Option<usize>,
}

/// A `since` query value: epoch milliseconds or RFC 3339.
pub(crate) fn parse_since(s: &str) -> Option<Ts> {
    s.parse::<i64>()
        .ok()
        .map(Ts)
        .or_else(|| Ts::parse_rfc3339(s))
}

async fn list(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = read_guard(&s, &h, &raw) {
        return r;
    }
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad query: use ?queue=NAME&since=RFC3339|epoch-ms&limit=N",
        );
    };
    let since = match q.since.as_deref().filter(|x| !x.is_empty()) {
        None => None,
        Some(x) => match parse_since(x) {
            Some(t) => Some(t),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("bad `since` {x:?}: an RFC 3339 time or epoch milliseconds"),
                );
            }
        },
    };
    let Some(l) = ladder(&s) else {
        return no_ladder();
    };
    let limit = q.limit.unwrap_or(MAX_ENTRIES).min(MAX_ENTRIES);
    let queue = q.queue.filter(|x| !x.is_empty());
    let r =
        tokio::task::spawn_blocking(move || l.store.entries(queue.as_deref(), since, limit)).await;
    match r {
        Ok(Ok(entries)) => Json(entries).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DecideBody {
    /// Who answered, for the log (default `admin`).
    by: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AgentBody {
    queue: String,
    by: Option<String>,
}

fn who(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .map(|b| b.chars().take(64).collect())
        .unwrap_or_else(|| "admin".into())
}

async fn decide(
    s: AppState,
    h: HeaderMap,
    raw: Option<String>,
    id: String,
    body: Bytes,
    yes: bool,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &raw) {
        return r;
    }
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::NOT_FOUND, format!("no escalation entry {id}"));
    };
    let body: DecideBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecideBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
        }
    };
    let Some(l) = ladder(&s) else {
        return no_ladder();
    };
    let by = who(body.by);
    let r = l
        .call(|reply| {
            if yes {
                Command::Approve { id, by, reply }
            } else {
                Command::Reject { id, by, reply }
            }
        })
        .await;
    match r {
        Ok(e) => Json(e).into_response(),
        Err(e) => control_error(e),
    }
}

async fn approve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    decide(s, h, raw, id, body, true).await
}

async fn reject(
    State(s): State<AppState>,
    Path(id): Path<String>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    decide(s, h, raw, id, body, false).await
}

async fn manual(
    s: AppState,
    h: HeaderMap,
    raw: Option<String>,
    agent: String,
    body: Bytes,
    sign_in: bool,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &raw) {
        return r;
    }
    let body: AgentBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad body (expected {{\"queue\": \"NAME\"}}): {e}"),
            );
        }
    };
    let Some(l) = ladder(&s) else {
        return no_ladder();
    };
    let by = who(body.by);
    let queue = body.queue;
    let r = l
        .call(|reply| {
            if sign_in {
                Command::SignIn {
                    agent,
                    queue,
                    by,
                    reply,
                }
            } else {
                Command::SignOut {
                    agent,
                    queue,
                    by,
                    reply,
                }
            }
        })
        .await;
    match r {
        Ok(e) => (StatusCode::ACCEPTED, Json(e)).into_response(),
        Err(e) => control_error(e),
    }
}

async fn sign_in(
    State(s): State<AppState>,
    Path(agent): Path<String>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    manual(s, h, raw, agent, body, true).await
}

async fn sign_out(
    State(s): State<AppState>,
    Path(agent): Path<String>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    manual(s, h, raw, agent, body, false).await
}
