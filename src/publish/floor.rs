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
