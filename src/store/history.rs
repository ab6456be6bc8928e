//! The interval history writer: every closed interval of every queue goes
//! to SQLite, for `acdmon report` and shift planning.
//!
//! Intervals close on the engine thread, all queues at once at each boundary
//! (1,000 queues: 1,000 rows every 15 minutes). The rows go to a writer
//! thread over a bounded channel so the engine does not wait for the disk;
//! if the channel is full (the disk is stalled) the engine thread writes
//! them itself rather than drop history. Dropping the writer flushes: a
//! replay's history is on disk when `replay` returns.
//!
//! A batch that cannot be written (full disk, read-only file system) is kept
//! and retried with a doubling backoff, up to `KEPT_FAILED` batches (a day
//! of 15-minute intervals); older ones are dropped with an error. Every
//! attempt reports to the store's `StorageHealth`, so `/readyz` turns green
//! again only when a write really succeeds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Store;
use crate::engine_thread::Observer;
use crate::state::IntervalRecord;

/// Batches (one per boundary) waiting for the writer thread.
const BACKLOG: usize = 64;
/// Failed batches kept for retry (96: a day of 15-minute boundaries).
const KEPT_FAILED: usize = 96;
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct IntervalHistory {
    store: Arc<Store>,
    tx: Option<SyncSender<Vec<IntervalRecord>>>,
    thread: Option<JoinHandle<()>>,
}

fn write(store: &Store, recs: &[IntervalRecord]) {
    if let Err(e) = store.insert_intervals(recs) {
        tracing::error!(error = %e, rows = recs.len(), "cannot write interval history");
    }
}

/// The writer thread: batches in order; failed ones wait and are retried.
fn run(store: &Store, rx: &std::sync::mpsc::Receiver<Vec<IntervalRecord>>) {
    let mut failed: VecDeque<Vec<IntervalRecord>> = VecDeque::new();
    let mut wait = RETRY_FIRST;
    loop {
        let next = if failed.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(wait)
        };
        let stopping = match next {
            Ok(recs) => {
                failed.push_back(recs);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        while let Some(recs) = failed.front() {
            match store.insert_intervals(recs) {
                Ok(()) => {
                    failed.pop_front();
                    wait = RETRY_FIRST;
                }
                Err(e) => {
                    if wait == RETRY_FIRST {
                        tracing::error!(error = %e, rows = recs.len(), waiting = failed.len(),
                            "cannot write interval history; kept and retried");
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                    break;
                }
            }
        }
        while failed.len() > KEPT_FAILED {
            if let Some(lost) = failed.pop_front() {
                tracing::error!(
                    rows = lost.len(),
                    "interval history dropped: storage has failed for too long"
                );
            }
        }
        if stopping {
            if !failed.is_empty() {
                tracing::error!(
                    batches = failed.len(),
                    "stopping with interval history not written"
                );
            }
            return;
        }
    }
}

impl IntervalHistory {
    pub fn new(store: Arc<Store>) -> Self {
        let (tx, rx) = sync_channel::<Vec<IntervalRecord>>(BACKLOG);
        let s = store.clone();
        let thread = std::thread::Builder::new()
            .name("acdmon-history".into())
            .spawn(move || run(&s, &rx))
            .map_err(
                |e| tracing::error!(error = %e, "cannot start the history writer; writing inline"),
            )
            .ok();
        IntervalHistory {
            store,
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }
}

impl Observer for IntervalHistory {
    fn intervals_closed(&mut self, records: &[IntervalRecord]) {
        match self.tx.as_ref().map(|tx| tx.try_send(records.to_vec())) {
            Some(Ok(())) => {}
            Some(Err(TrySendError::Full(recs))) | Some(Err(TrySendError::Disconnected(recs))) => {
                write(&self.store, &recs)
            }
            None => write(&self.store, records),
        }
    }
}

impl Drop for IntervalHistory {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::kpi::{SlFormula, WindowView};
    use crate::time::Ts;

    fn record(start: i64) -> IntervalRecord {
        IntervalRecord {
            queue: "hotline".into(),
            start: Ts(start),
            end: Ts(start + 900_000),
            window: WindowView::from_tally(&Default::default(), SlFormula::default()),
            staffed_agents: 5.0,
            required_agents: Some(6),
            observed_from: Ts(start),
        }
    }

    /// An interval closed while the disk is full is kept and written once
    /// the disk has room again; storage health says so in between.
    #[test]
    fn history_written_during_a_full_disk_arrives_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("h.sqlite").to_str().unwrap()).unwrap());
        let mut h = IntervalHistory::new(store.clone());
        store.set_full(true).unwrap();
        // Rows big enough to need a page of their own.
        let batch: Vec<IntervalRecord> = (0..40).map(|i| record(i * 900_000)).collect();
        h.intervals_closed(&batch);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.health().ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the write never failed"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(store.health().last_error().unwrap().contains("full"));
        store.set_full(false).unwrap();
        drop(h);
        let rows = store.intervals(Ts(0), Ts(i64::MAX / 2), None).unwrap();
        assert_eq!(rows.len(), 40);
        assert!(store.health().ok());
    }
}
