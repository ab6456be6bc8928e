//! `GET /api/v1/info`: which build answers, since when, and what it was
//! configured with at a glance. Open like `/healthz`: the build and uptime
//! are what an operator (or a package upgrade check) asks before anything
//! else, and nothing here is a figure or a name from the floor.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/info", get(info))
}

async fn info(State(s): State<AppState>) -> Json<Value> {
    let b = crate::build_info::get();
    Json(json!({
        "version": b.version,
        "commit": b.commit,
        "build_date": b.build_date,
        "uptime_s": s.started.elapsed().as_secs(),
    }))
}
