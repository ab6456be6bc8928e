//! `POST /api/v1/reload` (admin) re-reads the configuration file like
//! SIGHUP and answers what changed; `GET /api/v1/reloads` (read) is the
//! audit trail. Both answer 503 where the daemon cannot reload (`demo`,
//! which has no file).

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::AppState;
use super::api::{admin_guard, read_guard};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/reloads", get(history))
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "this daemon has no configuration file to reload"})),
    )
        .into_response()
}

async fn reload(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = admin_guard(&s, &h, &q) {
        return r;
    }
    let Some(r) = s.reloader.get().cloned() else {
        return unavailable();
    };
    let outcome = r.reload("api").await;
    let code = if outcome.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (code, Json(outcome)).into_response()
}

async fn history(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    let Some(r) = s.reloader.get().cloned() else {
        return unavailable();
    };
    let list = tokio::task::spawn_blocking(move || r.history(100))
        .await
        .unwrap_or_default();
    Json(list).into_response()
}
