//! Publishers: everything that serves state to people and tools, on one
//! `axum` listener. Handlers read the latest snapshot (`arc-swap`, never a
//! lock the engine holds) and send control requests through channels.

pub mod api;
pub mod auth;
pub mod control;
pub mod exposition;
pub mod floor;
pub mod guard;
pub mod handover;
pub mod health;
pub mod info;
pub mod merge_patch;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod wall;
pub mod ws;
pub mod ws_v2;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;

use crate::config::Config;
use crate::sources::{HealthRegistry, Inbox, RejectCounter};
use crate::state::Publisher;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The configuration in force; a reload swaps it (handlers read it per
    /// request, so a new token or wall setting applies at once).
    pub config: Arc<arc_swap::ArcSwap<Config>>,
    /// Set once the daemon can reload its configuration (`acdmon run`).
    pub reloader: Arc<std::sync::OnceLock<Arc<crate::reload::Reloader>>>,
    pub publisher: Arc<Publisher>,
    pub health: Arc<HealthRegistry>,
    pub rejects: Arc<RejectCounter>,
    /// Where sources and `POST /api/v1/events` send events: the engine's
    /// inbox, or in cluster mode the forwarder to the stream.
    pub inbox: Inbox,
    /// The engine's own inbox (`/readyz` and `acd_engine_inbox_backlog`
    /// measure it; in cluster mode the stream's consumer feeds it).
    pub engine_inbox: Inbox,
    pub started: Instant,
    pub metrics: Arc<metrics::Metrics>,
    pub hub: Arc<ws::Hub>,
    /// The engine's heartbeat (stall and lag, for `/readyz` and metrics).
    pub engine: Arc<crate::watchdog::EngineWatch>,
    /// The ladder's command channel and audit log, when this daemon runs a
    /// ladder. Made before the engine starts and handed in here: the routes
    /// never look it up.
    pub ladder: Option<crate::escalation::control::LadderHandle>,
    /// What the floor rules publish and take (posts, adherence).
    pub floor: crate::floor::FloorHandles,
    /// A central instance's sites (`[cluster] sites`), for `/api/v1/sites`.
    pub sites: Option<Arc<crate::cluster::sites::Board>>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    api::routes(state.clone())
        .merge(control::routes(state.clone()))
        .merge(handover::routes())
        .merge(info::routes())
        .merge(reload::routes())
        .merge(metrics_routes())
        .merge(ws::routes())
        .merge(wall::routes())
        .merge(floor::routes())
        .fallback(guard::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::before_body,
        ))
        .layer(axum::middleware::from_fn(guard::json_errors))
        .with_state(state)
}

fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", axum::routing::get(metrics_route))
}

/// `/metrics`: open unless `metrics_auth = true`. Rendering walks every
/// series (a few milliseconds at 1,000 queues), so it runs off the async
/// workers and is shared by scrapes that come close together.
async fn metrics_route(
    axum::extract::State(s): axum::extract::State<AppState>,
    h: axum::http::HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if s.config.load().server.metrics_auth
        && let Err(r) = api::read_guard(&s, &h, &q)
    {
        return r;
    }
    s.metrics
        .set_engine(&s.engine.status(), health::inbox_backlog(&s));
    match s
        .metrics
        .render_shared(
            &s.publisher,
            &s.health,
            &s.rejects,
            metrics::Boards {
                storage: s.ladder.as_ref().map(|l| l.store.health().clone()),
                floor: s.floor.clone(),
            },
        )
        .await
    {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
