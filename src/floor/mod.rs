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

use std::sync::{Arc, Mutex, Weak};

use crate::state::Publisher;

/// What the floor rules of one daemon share with its HTTP routes.
#[derive(Clone, Default)]
pub struct FloorHandles {
    pub posts: Option<Arc<posts::PostBoard>>,
    pub adherence: Option<Arc<adherence::AdherenceHandle>>,
}

type Registry = Mutex<Vec<(Weak<Publisher>, FloorHandles)>>;

fn registry() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Makes `handles` the floor rules of the daemon publishing through
/// `publisher` (the same keying as the ladder's handle: tests run several
/// daemons in one process).
pub fn attach_all(publisher: &Arc<Publisher>, handles: FloorHandles) {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|(p, _)| p.strong_count() > 0 && !std::ptr::eq(p.as_ptr(), Arc::as_ptr(publisher)));
    r.push((Arc::downgrade(publisher), handles));
}

/// [`attach_all`] with the post board alone.
pub fn attach(publisher: &Arc<Publisher>, board: Arc<posts::PostBoard>) {
    let mut h = handles_for(publisher);
    h.posts = Some(board);
    attach_all(publisher, h);
}

/// The floor rules of the daemon publishing through `publisher`.
pub fn handles_for(publisher: &Publisher) -> FloorHandles {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    r.iter()
        .find(|(p, _)| std::ptr::eq(p.as_ptr(), publisher))
        .map(|(_, h)| h.clone())
        .unwrap_or_default()
}

/// The post board of the daemon publishing through `publisher`, if any.
pub fn board_for(publisher: &Publisher) -> Option<Arc<posts::PostBoard>> {
    handles_for(publisher).posts
}
