//! The engine checkpoint in SQLite: one row, replaced in one transaction,
//! so a crash leaves either the previous checkpoint or the new one, never a
//! mix (WAL, like the rest of `[storage]`).
//!
//! Who writes when: [`Checkpointer`] runs on the engine thread as an
//! [`Observer`]. Every `[storage] checkpoint_every` of wall time, after each
//! interval close and when the engine stops, it copies the engine's state
//! into an owned [`EngineCheckpoint`] (a copy, no formatting: measured in
//! `benches/checkpoint.rs`) and hands it to a writer thread, which
//! serialises it to JSON and writes it. One checkpoint is in flight at a
//! time: while the writer is still busy with the previous one (a slow disk)
//! none is taken, and the next is taken at the first publish after it is
//! done, so a stalled disk never stalls the engine and memory stays bounded. The checkpoint taken at stop is written
//! after the writer has finished, on the stopping thread, so it is the last.
//!
//! Reading: [`load`] returns the stored checkpoint, or `None` (with a log
//! line saying why) when there is none or it cannot be read; whether it
//! still fits the day and the configuration is [`EngineCheckpoint::restore`]'s
//! decision.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, lock};
use crate::engine_thread::Observer;
use crate::state::checkpoint::VERSION;
use crate::state::{Engine, EngineCheckpoint, IntervalRecord};

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS engine_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    saved_at_ms INTEGER NOT NULL,
    day_start_ms INTEGER NOT NULL,
    events_applied INTEGER NOT NULL,
    body TEXT NOT NULL
);
";

impl Store {
    /// Replaces the stored checkpoint with `cp`, in one transaction.
    /// Returns the size of what was written, in bytes.
    pub fn save_checkpoint(&self, cp: &EngineCheckpoint) -> Result<usize, StoreError> {
        let body = serde_json::to_string(cp).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = lock(&self.writer);
        conn.execute_batch(TABLE)?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO engine_checkpoint
             (id, version, saved_at_ms, day_start_ms, events_applied, body)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![
                cp.version,
                cp.saved_at,
                cp.day_start,
                cp.events_applied as i64,
                body
            ],
        )?;
        tx.commit()?;
        Ok(body.len())
    }

    /// The stored checkpoint's body (JSON), if there is one.
    pub fn checkpoint_body(&self) -> Result<Option<(u32, String)>, StoreError> {
        let conn = lock(&self.writer);
        conn.execute_batch(TABLE)?;
        Ok(conn
            .query_row(
                "SELECT version, body FROM engine_checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?)
    }
}

/// The stored checkpoint, or `None` with a log line when there is none or it
/// cannot be read (never an error: a restart without it starts empty).
pub fn load(store: &Store) -> Option<EngineCheckpoint> {
    match store.checkpoint_body() {
        Ok(None) => None,
        Ok(Some((v, _))) if v != VERSION => {
            tracing::warn!(
                version = v,
                "stored engine checkpoint has another format; starting without it"
            );
            None
        }
        Ok(Some((_, body))) => match serde_json::from_str(&body) {
            Ok(cp) => Some(cp),
            Err(e) => {
                tracing::warn!(error = %e, "stored engine checkpoint is unreadable; starting without it");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the engine checkpoint; starting without it");
            None
        }
    }
}

fn write(store: &Store, cp: &EngineCheckpoint, failing: &mut bool) {
    let t = Instant::now();
    match store.save_checkpoint(cp) {
        Ok(bytes) => {
            if *failing {
                tracing::info!("engine checkpoints are written again");
                store.health().write_ok();
            }
            *failing = false;
            tracing::debug!(
                bytes,
                ms = t.elapsed().as_millis() as u64,
                "engine checkpoint written"
            );
        }
        Err(e) => {
            // Storage health (/readyz, acd_storage_ok, the wall) says so.
            store.health().write_failed("the engine checkpoint", &e);
            // Once per failing streak: a full disk would log every 5 s.
            if !*failing {
                tracing::error!(error = %e, "cannot write the engine checkpoint; a restart would lose the figures since the last one");
            }
            *failing = true;
        }
    }
}

/// Checkpoints the engine from its thread (see the module docs).
pub struct Checkpointer {
    store: Arc<Store>,
    every: Duration,
    last: Instant,
    interval_closed: bool,
    /// Set while the writer thread holds a checkpoint: at most one is
    /// captured and waiting at a time, whatever the disk does.
    writing: Arc<AtomicBool>,
    tx: Option<SyncSender<Box<EngineCheckpoint>>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn new(store: Arc<Store>, every: Duration) -> Self {
        let (tx, rx) = sync_channel::<Box<EngineCheckpoint>>(1);
        let s = store.clone();
        let writing = Arc::new(AtomicBool::new(false));
        let done = writing.clone();
        let thread = std::thread::Builder::new()
            .name("acdmon-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                while let Ok(cp) = rx.recv() {
                    write(&s, &cp, &mut failing);
                    done.store(false, Ordering::Release);
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the checkpoint writer; writing inline"))
            .ok();
        Checkpointer {
            store,
            every,
            last: Instant::now(),
            interval_closed: false,
            writing,
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    fn take(&mut self, engine: &Engine) {
        if self.writing.load(Ordering::Acquire) {
            // The writer is still on the previous one: take this one as
            // soon as it is done (checked at every publish), not before.
            return;
        }
        self.last = Instant::now();
        self.interval_closed = false;
        let cp = Box::new(engine.checkpoint());
        match &self.tx {
            Some(tx) => {
                self.writing.store(true, Ordering::Release);
                if let Err(TrySendError::Full(cp) | TrySendError::Disconnected(cp)) =
                    tx.try_send(cp)
                {
                    self.writing.store(false, Ordering::Release);
                    write(&self.store, &cp, &mut false);
                }
            }
            None => write(&self.store, &cp, &mut false),
        }
    }
}

impl Observer for Checkpointer {
    fn intervals_closed(&mut self, _records: &[IntervalRecord]) {
        self.interval_closed = true;
    }

    fn before_publish(&mut self, engine: &mut Engine) -> Vec<Arc<crate::escalation::Entry>> {
        if self.interval_closed || self.last.elapsed() >= self.every {
            self.take(engine);
        }
        Vec::new()
    }

    fn on_stop(&mut self, engine: &mut Engine) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        write(&self.store, &engine.checkpoint(), &mut false);
    }
}

impl Drop for Checkpointer {
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
    use crate::state::EngineConfig;
    use crate::time::Ts;

    #[test]
    fn a_checkpoint_round_trips_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let store = Store::open(path.to_str().unwrap()).unwrap();
        assert!(load(&store).is_none(), "none yet");
        let mut e = Engine::starting_at(EngineConfig::default(), Ts(1_700_000_000_000));
        e.queue_index("hotline");
        let cp = e.checkpoint();
        store.save_checkpoint(&cp).unwrap();
        store.save_checkpoint(&cp).unwrap();
        drop(store);
        let store = Store::open(path.to_str().unwrap()).unwrap();
        assert_eq!(load(&store), Some(cp));
        lock(&store.writer)
            .execute("UPDATE engine_checkpoint SET body = '{\"version\":1,' ", [])
            .unwrap();
        assert!(load(&store).is_none(), "unreadable: ignored");
        lock(&store.writer)
            .execute("UPDATE engine_checkpoint SET version = 7", [])
            .unwrap();
        assert!(load(&store).is_none(), "another format: ignored");
    }
}
