//! Source health for `/readyz` and `acd_source_connected`.
//!
//! Each source owns one [`SourceHealth`] and flips its atomics; readers never
//! wait on a source. A source is ready when it is connected and (for CTI
//! sources) has finished its resync.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

#[derive(Debug)]
pub struct SourceHealth {
    pub name: Arc<str>,
    pub kind: &'static str,
    connected: AtomicBool,
    synced: AtomicBool,
    events: AtomicU64,
    /// Input lost before the source could read it (HEP: datagrams the
    /// kernel dropped), as the OS counts it.
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SourceHealth {
    pub fn new(name: &str, kind: &'static str) -> Arc<Self> {
        Arc::new(SourceHealth {
            name: Arc::from(name),
            kind,
            connected: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            events: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        if !connected {
            self.synced.store(false, Ordering::Relaxed);
        }
    }

    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Relaxed);
    }

    pub fn set_error(&self, err: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(err.into());
    }

    pub fn add_events(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_dropped(&self, n: u64) {
        self.dropped.store(n, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why this source is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        if !self.connected() {
            let err = self.last_error().unwrap_or_else(|| "not connected".into());
            Some(format!("{} ({}): {}", self.name, self.kind, err))
        } else if !self.synced() {
            Some(format!(
                "{} ({}): connected, resync not complete",
                self.name, self.kind
            ))
        } else {
            None
        }
    }
}

/// All sources of the daemon, in configuration order.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    sources: RwLock<Vec<Arc<SourceHealth>>>,
}

impl HealthRegistry {
    pub fn register(&self, h: Arc<SourceHealth>) {
        self.sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(h);
    }

    /// Forgets a source a config reload stopped (a restarted one registers
    /// its new health under the same name).
    pub fn remove(&self, name: &str) {
        self.sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|h| &*h.name != name);
    }

    pub fn all(&self) -> Vec<Arc<SourceHealth>> {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
