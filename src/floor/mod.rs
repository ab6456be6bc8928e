//! Floor rules: the written rules a contact centre runs its floor by,
//! beyond the emergency ladder: A/B post cover ([`posts`]), schedule
//! adherence ([`adherence`]), and shifts with their handover ([`shift`],
//! [`handover`]).
//!
//! Each rule is an [`crate::engine_thread::Observer`] on the engine thread, so it
//! is computed on event time from the same agent states the wall shows, and
//! a replay gives the same answer as the live daemon. What a rule publishes
//! lives on a board (an `arc-swap`, never a lock the engine holds) that the
//! HTTP routes and `/metrics` read.

pub mod adherence;
pub mod handover;
pub mod posts;
pub mod shift;

use std::sync::Arc;

/// What the floor rules of one daemon share with its HTTP routes and
/// `/metrics`: made with the observers, before the engine starts, and handed
/// to the HTTP state (`AppState::floor`).
#[derive(Clone, Default)]
pub struct FloorHandles {
    pub posts: Option<Arc<posts::PostBoard>>,
    pub adherence: Option<Arc<adherence::AdherenceHandle>>,
}
