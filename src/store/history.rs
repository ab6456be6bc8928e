//! The interval history writer: every closed interval of every queue goes
//! to SQLite, for `acdmon report` and shift planning.
//!
//! Intervals close on the engine thread, all queues at once at each boundary
//! (1,000 queues: 1,000 rows every 15 minutes). The rows go to a writer
//! thread over a bounded channel so the engine does not wait for the disk;
//! if the channel is full (the disk is stalled) the engine thread writes
//! them itself rather than drop history. Dropping the writer flushes: a
//! replay's history is on disk when `replay` returns.

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use super::Store;
use crate::runtime::Observer;
use crate::state::IntervalRecord;

/// Batches (one per boundary) waiting for the writer thread.
const BACKLOG: usize = 64;

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

impl IntervalHistory {
    pub fn new(store: Arc<Store>) -> Self {
        let (tx, rx) = sync_channel::<Vec<IntervalRecord>>(BACKLOG);
        let s = store.clone();
        let thread = std::thread::Builder::new()
            .name("acdmon-history".into())
            .spawn(move || {
                while let Ok(recs) = rx.recv() {
                    write(&s, &recs);
                }
            })
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
