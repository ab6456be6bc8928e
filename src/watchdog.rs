//! The engine's heartbeat, read by `/readyz`, `/metrics` and the wall.
//!
//! Why a heartbeat and not a liveness probe of the thread: the engine runs
//! on its own thread and applies events in batches; a thread can be alive
//! and still apply nothing (an observer that blocks, a bug that loops). So
//! the engine loop stamps the time it *finished* each batch or tick (every
//! 100 ms when the floor is quiet), and the time it last found its inbox
//! empty. Readers compare those stamps with the monotonic clock on demand:
//! nothing on the HTTP side waits for the engine, so `/readyz` answers the
//! truth while the engine is stuck. The stamps are two atomics; the engine
//! pays two relaxed stores per batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the heartbeat says, as of one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineStatus {
    /// Time since the engine last finished a batch or tick.
    pub since_batch: Duration,
    /// How far the engine is behind: time since it last had nothing left to
    /// apply (an upper bound on the age of the oldest unapplied event).
    pub lag: Duration,
    /// `since_batch` exceeds the configured `engine_stall_after`.
    pub stalled: bool,
    /// `lag` exceeds `engine_stall_after` while batches still finish: the
    /// engine works but does not keep up with its inbox.
    pub behind: bool,
}

#[derive(Debug)]
pub struct EngineWatch {
    base: Instant,
    /// Milliseconds after `base` when the last batch or tick finished.
    last_batch: AtomicU64,
    /// Milliseconds after `base` when the inbox was last found empty.
    caught_up: AtomicU64,
    stall_after: Duration,
}

impl EngineWatch {
    pub fn new(stall_after: Duration) -> Self {
        EngineWatch {
            base: Instant::now(),
            last_batch: AtomicU64::new(0),
            caught_up: AtomicU64::new(0),
            stall_after,
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// The engine loop finished a batch or tick; `inbox_empty` if nothing
    /// is left waiting.
    pub fn batch_done(&self, inbox_empty: bool) {
        let now = self.now_ms();
        self.last_batch.store(now, Ordering::Relaxed);
        if inbox_empty {
            self.caught_up.store(now, Ordering::Relaxed);
        }
    }

    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    pub fn status(&self) -> EngineStatus {
        let now = self.now_ms();
        let since_batch =
            Duration::from_millis(now.saturating_sub(self.last_batch.load(Ordering::Relaxed)));
        let lag = Duration::from_millis(now.saturating_sub(self.caught_up.load(Ordering::Relaxed)));
        let stalled = since_batch > self.stall_after;
        EngineStatus {
            since_batch,
            lag,
            stalled,
            behind: !stalled && lag > self.stall_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_heartbeat_is_healthy_and_a_silent_one_stalls() {
        let w = EngineWatch::new(Duration::from_millis(30));
        w.batch_done(true);
        let s = w.status();
        assert!(!s.stalled && !s.behind, "{s:?}");
        std::thread::sleep(Duration::from_millis(60));
        let s = w.status();
        assert!(s.stalled, "{s:?}");
        assert!(s.since_batch >= Duration::from_millis(60));
        // Batches finish again but the inbox never empties: behind.
        w.batch_done(false);
        let s = w.status();
        assert!(!s.stalled && s.behind, "{s:?}");
        w.batch_done(true);
        assert!(!w.status().behind);
    }
}
