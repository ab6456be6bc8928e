//! Floor rules: the written rules a contact centre runs its floor by,
//! beyond the emergency ladder. Today: A/B post cover ([`posts`]).
//!
//! Each rule is an [`crate::runtime::Observer`] on the engine thread, so it
//! is computed on event time from the same agent states the wall shows, and
//! a replay gives the same answer as the live daemon. What a rule publishes
//! lives on a board (an `arc-swap`, never a lock the engine holds) that the
//! HTTP routes and `/metrics` read.

pub mod posts;

use std::sync::{Arc, Mutex, Weak};

use crate::state::Publisher;

type Boards = Mutex<Vec<(Weak<Publisher>, Arc<posts::PostBoard>)>>;

fn boards() -> &'static Boards {
    static B: std::sync::OnceLock<Boards> = std::sync::OnceLock::new();
    B.get_or_init(|| Mutex::new(Vec::new()))
}

/// Makes `board` the post board of the daemon publishing through
/// `publisher` (the same keying as the ladder's handle: tests run several
/// daemons in one process).
pub fn attach(publisher: &Arc<Publisher>, board: Arc<posts::PostBoard>) {
    let mut b = boards().lock().unwrap_or_else(|e| e.into_inner());
    b.retain(|(p, _)| p.strong_count() > 0 && !std::ptr::eq(p.as_ptr(), Arc::as_ptr(publisher)));
    b.push((Arc::downgrade(publisher), board));
}

/// The post board of the daemon publishing through `publisher`, if any.
pub fn board_for(publisher: &Publisher) -> Option<Arc<posts::PostBoard>> {
    let b = boards().lock().unwrap_or_else(|e| e.into_inner());
    b.iter()
        .find(|(p, _)| std::ptr::eq(p.as_ptr(), publisher))
        .map(|(_, board)| board.clone())
}
