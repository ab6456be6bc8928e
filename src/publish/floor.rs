//! The floor-rule routes: `GET /api/v1/posts` (read token), the A/B posts
//! as the engine last published them (see [`crate::floor::posts`]);
//! `PUT /api/v1/schedule` (admin token), a new adherence plan from a WFM
//! system, and `GET /api/v1/adherence` (read token), each agent's adherence
//! today and yesterday (see [`crate::floor::adherence`]); and the wall's
//! post strip script.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::AppState;
use super::api::{admin_guard, read_guard};
use crate::floor::posts::PostsSnapshot;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/posts", get(posts))
        .route("/wall/posts.js", get(script))
        .route("/api/v1/schedule", axum::routing::put(put_schedule))
        .route("/api/v1/adherence", get(adherence))
        .route("/api/v1/adherence/seats", get(seats))
        .route(
            "/api/v1/adherence/exceptions",
            get(exceptions).post(approve_exception),
        )
        .route(
            "/api/v1/adherence/exceptions/{id}",
            axum::routing::delete(withdraw_exception),
        )
}

/// `[{queue, interval_start, interval_end, scheduled, logged_in, required,
/// scheduled_minus_required}]` (read token).
async fn seats(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    match &s.floor.adherence {
        Some(a) => Json(a.seats().as_ref().clone()).into_response(),
        None => Json(json!([])).into_response(),
    }
}

fn adherence_off() -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"error": "adherence is off: add an [adherence] section to the configuration"})),
    )
        .into_response()
}

/// `[Exception]`: the approved exceptions not withdrawn (read token).
async fn exceptions(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    match &s.floor.adherence {
        Some(a) => Json(a.exceptions.load().as_ref().clone()).into_response(),
        None => Json(json!([])).into_response(),
    }
}

/// A supervisor approves an exception (admin token): 201 with it, or 400
/// with every problem (`errors`).
async fn approve_exception(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &q) {
        return r;
    }
    let Some(handle) = s.floor.adherence.clone() else {
        return adherence_off();
    };
    let req: crate::floor::exceptions::ExceptionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    let cfg = s.config.load();
    let known = |a: &str| cfg.agents.iter().any(|x| x.id == a);
    let group = |g: &str| cfg.agents.iter().any(|x| x.groups.iter().any(|y| y == g));
    let e = match crate::floor::exceptions::check(&req, &cfg.zone, &known, &group) {
        Ok(e) => e,
        Err(errors) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "the exception was not approved", "errors": errors})),
            )
                .into_response();
        }
    };
    match tokio::task::spawn_blocking(move || handle.approve(e)).await {
        Ok(Ok(e)) => {
            tracing::info!(id = e.id, by = %e.by, reason = %e.reason, "adherence exception approved");
            (StatusCode::CREATED, Json(e)).into_response()
        }
        Ok(Err(why)) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": why}))).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Withdraws an exception (admin token; `?by=` names who): 204, or 404.
async fn withdraw_exception(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    axum::extract::Path(id): axum::extract::Path<u64>,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &q) {
        return r;
    }
    let Some(handle) = s.floor.adherence.clone() else {
        return adherence_off();
    };
    let by = withdrawn_by(q.as_deref());
    match tokio::task::spawn_blocking(move || handle.withdraw(id, &by)).await {
        Ok(Ok(true)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(false)) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no open adherence exception {id}")})),
        )
            .into_response(),
        Ok(Err(why)) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": why}))).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Replaces the adherence plan with the CSV body (`agent,start,end,activity`
/// per line). Every bad line is answered (400, nothing replaced); a good
/// plan applies at the engine's next event or tick. A configuration reload
/// that changes `[adherence] schedule` replaces it again.
async fn put_schedule(
    State(s): State<AppState>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = admin_guard(&s, &h, &q) {
        return r;
    }
    let Some(handle) = s.floor.adherence.clone() else {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "adherence is off: add an [adherence] section to the configuration"})),
        )
            .into_response();
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the schedule must be UTF-8 text"})),
        )
            .into_response();
    };
    let cfg = s.config.load();
    let known = |a: &str| cfg.agents.iter().any(|x| x.id == a);
    match crate::floor::adherence::parse_plan(text, &cfg.zone, &known) {
        Ok(plan) => {
            let (agents, slots) = (plan.agents.len(), plan.slots());
            tracing::info!(agents, slots, "adherence plan replaced over the API");
            handle.plan.store(std::sync::Arc::new(plan));
            Json(json!({"agents": agents, "slots": slots})).into_response()
        }
        Err(errors) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the schedule has bad lines; nothing was replaced", "lines": errors})),
        )
            .into_response(),
    }
}

/// `[{agent, day, scheduled_s, out_s, adherence}]`: today and yesterday.
async fn adherence(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    match &s.floor.adherence {
        Some(a) => Json(a.days().as_ref().clone()).into_response(),
        None => Json(json!([])).into_response(),
    }
}

/// The wall's post strip (loaded by the wall page beside `wall.js`).
const SCRIPT: &str = include_str!("wall/posts.js");

async fn script() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        SCRIPT,
    )
        .into_response()
}

/// `{"as_of": ts, "posts": [PostView]}`; no posts configured (or a daemon
/// without the post observer): an empty list.
async fn posts(State(s): State<AppState>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = read_guard(&s, &h, &q) {
        return r;
    }
    match &s.floor.posts {
        Some(b) => Json(b.snapshot()).into_response(),
        None => Json(PostsSnapshot::default()).into_response(),
    }
}

/// Who withdraws an exception: `?by=`, percent-decoded (a supervisor's
/// name may hold spaces or Chinese characters), at most 64 characters;
/// `admin` when not given.
fn withdrawn_by(q: Option<&str>) -> String {
    super::wall::query_param(q, "by")
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "admin".to_string())
        .chars()
        .take(64)
        .collect()
}

#[cfg(test)]
mod withdrawn_by_tests {
    use super::withdrawn_by;

    #[test]
    fn the_name_is_percent_decoded_and_bounded() {
        assert_eq!(withdrawn_by(Some("by=Li%20Wei")), "Li Wei");
        assert_eq!(withdrawn_by(Some("token=x&by=%E7%8E%8B%E8%8A%B3")), "王芳");
        assert_eq!(withdrawn_by(Some("token=x")), "admin");
        assert_eq!(withdrawn_by(Some("by=")), "admin");
        assert_eq!(withdrawn_by(None), "admin");
        assert_eq!(
            withdrawn_by(Some(&format!("by={}", "a".repeat(100)))).len(),
            64
        );
    }
}
