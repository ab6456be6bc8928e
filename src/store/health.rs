//! Whether the storage can be written, as its writers last found.
//!
//! Why the writers report it rather than a probe: a full disk or a file
//! system remounted read-only shows only when something is written, and the
//! audit log and interval history are the only writers. The ladder retries
//! a decision it could not write (so its retries also say when the disk is
//! back) and publishes how many writes wait in [`StorageHealth::pending_writes`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared by the store's writers, `/readyz`, `/metrics` and the wall.
#[derive(Debug)]
pub struct StorageHealth {
    ok: AtomicBool,
    failures: AtomicU64,
    pending: AtomicU64,
    /// The last failure, with what was being written.
    last_error: Mutex<Option<String>>,
}

impl Default for StorageHealth {
    fn default() -> Self {
        StorageHealth {
            ok: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl StorageHealth {
    /// The last write succeeded (true before any write).
    pub fn ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    /// Failed writes since start (`acd_storage_write_failures_total`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The ladder's decisions and results waiting to be written
    /// (`acd_escalation_pending_writes`).
    pub fn pending_writes(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// The last failure, e.g. "the escalation log: storage: database or
    /// disk is full".
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn write_ok(&self) {
        self.ok.store(true, Ordering::Relaxed);
    }

    pub fn write_failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{what}: {e}"));
        self.ok.store(false, Ordering::Relaxed);
    }

    pub fn set_pending_writes(&self, n: usize) {
        self.pending.store(n as u64, Ordering::Relaxed);
    }

    /// Why the daemon is not ready because of storage, if it is not:
    /// a write failed last, or decisions still wait to be written.
    pub fn not_ready_reason(&self) -> Option<String> {
        let pending = self.pending_writes();
        if self.ok() && pending == 0 {
            return None;
        }
        let err = self
            .last_error()
            .unwrap_or_else(|| "writes are failing".into());
        Some(if pending > 0 {
            format!("storage: {err} ({pending} escalation writes waiting)")
        } else {
            format!("storage: {err}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_turns_it_red_until_a_write_succeeds() {
        let h = StorageHealth::default();
        assert_eq!(h.not_ready_reason(), None);
        h.write_failed("the escalation log", &"database or disk is full");
        assert!(!h.ok());
        assert_eq!(
            h.not_ready_reason().as_deref(),
            Some("storage: the escalation log: database or disk is full")
        );
        h.write_ok();
        h.set_pending_writes(2);
        assert!(
            h.not_ready_reason()
                .unwrap()
                .contains("2 escalation writes waiting")
        );
        h.set_pending_writes(0);
        assert_eq!(h.not_ready_reason(), None);
        assert_eq!(h.failures(), 1);
    }
}
