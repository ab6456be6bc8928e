//! The floor-rule routes: `GET /api/v1/posts` (read token), the A/B posts
//! as the engine last published them (see [`crate::floor::posts`]), and
//! the wall's post strip script.

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::api::read_guard;
use crate::floor::posts::PostsSnapshot;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/posts", get(posts))
        .route("/wall/posts.js", get(script))
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
    match crate::floor::board_for(&s.publisher) {
        Some(b) => Json(b.snapshot()).into_response(),
        None => Json(PostsSnapshot::default()).into_response(),
    }
}
