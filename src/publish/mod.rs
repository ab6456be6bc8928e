//! Publishers: everything that serves state to people and tools, on one
//! `axum` listener. Handlers read the latest snapshot (`arc-swap`, never a
//! lock the engine holds) and send control requests through channels.

pub mod api;
pub mod auth;
pub mod control;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;

use crate::config::Config;
use crate::sources::{HealthRegistry, Inbox, RejectCounter};
use crate::state::Publisher;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub publisher: Arc<Publisher>,
    pub health: Arc<HealthRegistry>,
    pub rejects: Arc<RejectCounter>,
    pub inbox: Inbox,
    pub started: Instant,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    api::routes(state.clone())
        .merge(control::routes(state.clone()))
        .with_state(state)
}
