//! The duty log and the shift handover records, beside the escalation log
//! in the audit database.
//!
//! Both are written like the escalation log: rows are appended, never
//! rewritten (triggers refuse UPDATE and DELETE), and every write reports
//! to the store's [`super::StorageHealth`]. An acknowledgement is its own
//! row (one per handover: the primary key refuses a second), so the record
//! as written at the shift's end stays as it was.
//!
//! `handover_progress` is the exception: the running peaks of the shift in
//! progress (peak waiting and when, longest wait), replaced at every
//! interval close, so a restart in the middle of a shift keeps them.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, lock};
use crate::floor::handover::{Ack, DutyEntry, Handover, Peak};
use crate::time::Ts;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS duty_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    by TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS duty_log_ts ON duty_log (ts_ms);
CREATE TRIGGER IF NOT EXISTS duty_log_no_update BEFORE UPDATE ON duty_log
    BEGIN SELECT RAISE(ABORT, 'duty log entries are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS duty_log_no_delete BEFORE DELETE ON duty_log
    BEGIN SELECT RAISE(ABORT, 'duty log entries are never deleted'); END;
CREATE TABLE IF NOT EXISTS handovers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    shift TEXT NOT NULL,
    day TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (shift, start_ms)
);
CREATE INDEX IF NOT EXISTS handovers_end ON handovers (end_ms);
CREATE TRIGGER IF NOT EXISTS handovers_no_update BEFORE UPDATE ON handovers
    BEGIN SELECT RAISE(ABORT, 'handover records are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS handovers_no_delete BEFORE DELETE ON handovers
    BEGIN SELECT RAISE(ABORT, 'handover records are never deleted'); END;
CREATE TABLE IF NOT EXISTS handover_acks (
    handover_id INTEGER PRIMARY KEY REFERENCES handovers (id),
    by TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS handover_acks_no_update BEFORE UPDATE ON handover_acks
    BEGIN SELECT RAISE(ABORT, 'acknowledgements are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS handover_acks_no_delete BEFORE DELETE ON handover_acks
    BEGIN SELECT RAISE(ABORT, 'acknowledgements are never deleted'); END;
CREATE TABLE IF NOT EXISTS handover_progress (
    shift_start_ms INTEGER NOT NULL,
    queue TEXT NOT NULL,
    peak_waiting INTEGER NOT NULL,
    peak_at_ms INTEGER,
    longest_wait_ms INTEGER NOT NULL,
    PRIMARY KEY (shift_start_ms, queue)
);
";

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no handover {0}")]
    NotFound(u64),
    #[error("handover {id} was already acknowledged by {} at {}", .ack.by, .ack.at)]
    Already { id: u64, ack: Ack },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Store {
    /// Appends a duty-log entry; returns it with its id.
    pub fn insert_duty(&self, ts: Ts, by: &str, text: &str) -> Result<DutyEntry, StoreError> {
        let r = (|| {
            let c = lock(&self.writer);
            c.execute(
                "INSERT INTO duty_log (ts_ms, by, text) VALUES (?1, ?2, ?3)",
                params![ts.0, by, text],
            )?;
            Ok(DutyEntry {
                id: c.last_insert_rowid().max(0) as u64,
                ts,
                by: by.into(),
                text: text.into(),
            })
        })();
        self.noted("the duty log", r)
    }

    /// Duty-log entries in `[from, to)`, oldest first, at most `limit`
    /// (the oldest `limit`).
    pub fn duty_log(&self, from: Ts, to: Ts, limit: usize) -> Result<Vec<DutyEntry>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT id, ts_ms, by, text FROM duty_log WHERE ts_ms >= ?1 AND ts_ms < ?2
             ORDER BY ts_ms, id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![from.0, to.0, limit as i64], |r| {
            Ok(DutyEntry {
                id: r.get::<_, i64>(0)?.max(0) as u64,
                ts: Ts(r.get(1)?),
                by: r.get(2)?,
                text: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Writes a handover record once: a second record for the same shift
    /// occurrence (a replay of a recorded day) leaves the first. Returns
    /// the stored record's id.
    pub fn insert_handover(&self, h: &Handover) -> Result<u64, StoreError> {
        let r = (|| {
            let body = serde_json::to_string(h).map_err(json_err)?;
            let c = lock(&self.writer);
            c.execute(
                "INSERT OR IGNORE INTO handovers (shift, day, start_ms, end_ms, record)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![h.shift, h.day, h.start.0, h.end.0, body],
            )?;
            let id: i64 = c.query_row(
                "SELECT id FROM handovers WHERE shift = ?1 AND start_ms = ?2",
                params![h.shift, h.start.0],
                |r| r.get(0),
            )?;
            Ok(id.max(0) as u64)
        })();
        self.noted("the handover records", r)
    }

    /// Whether the shift occurrence starting at `start` has its record.
    pub fn has_handover(&self, shift: &str, start: Ts) -> Result<bool, StoreError> {
        Ok(lock(&self.writer)
            .prepare_cached("SELECT 1 FROM handovers WHERE shift = ?1 AND start_ms = ?2")?
            .exists(params![shift, start.0])?)
    }

    /// Handover records of shifts that ended in `[from, to)`, oldest first,
    /// at most `limit` (the newest `limit`), with their acknowledgements.
    pub fn handovers(&self, from: Ts, to: Ts, limit: usize) -> Result<Vec<Handover>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT h.id, h.record, a.by, a.ts_ms FROM handovers h
             LEFT JOIN handover_acks a ON a.handover_id = h.id
             WHERE h.end_ms >= ?1 AND h.end_ms < ?2 ORDER BY h.end_ms DESC, h.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![from.0, to.0, limit as i64], row_handover)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        out.reverse();
        Ok(out)
    }

    /// One handover record.
    pub fn handover(&self, id: u64) -> Result<Option<Handover>, StoreError> {
        let conn = self.read();
        let h = conn
            .query_row(
                "SELECT h.id, h.record, a.by, a.ts_ms FROM handovers h
                 LEFT JOIN handover_acks a ON a.handover_id = h.id WHERE h.id = ?1",
                params![id as i64],
                row_handover,
            )
            .optional()?;
        h.transpose()
    }

    /// Records who acknowledged a handover, and when; refuses a second.
    pub fn ack_handover(&self, id: u64, by: &str, at: Ts) -> Result<Handover, AckError> {
        let Some(h) = self.handover(id)? else {
            return Err(AckError::NotFound(id));
        };
        if let Some(ack) = h.ack {
            return Err(AckError::Already { id, ack });
        }
        let r = lock(&self.writer).execute(
            "INSERT INTO handover_acks (handover_id, by, ts_ms) VALUES (?1, ?2, ?3)",
            params![id as i64, by, at.0],
        );
        match r {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                // Acknowledged in between by someone else.
                let ack = self.handover(id)?.and_then(|h| h.ack);
                match ack {
                    Some(ack) => Err(AckError::Already { id, ack }),
                    None => Err(AckError::NotFound(id)),
                }
            }
            other => {
                self.noted(
                    "the handover records",
                    other.map(drop).map_err(StoreError::from),
                )?;
                Ok(self.handover(id)?.ok_or(AckError::NotFound(id))?)
            }
        }
    }

    /// Saves the running peaks of the shift that started at `shift_start`.
    pub fn save_progress(
        &self,
        shift_start: Ts,
        peaks: &[(String, Peak)],
    ) -> Result<(), StoreError> {
        let r = (|| {
            let mut c = lock(&self.writer);
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO handover_progress
                     (shift_start_ms, queue, peak_waiting, peak_at_ms, longest_wait_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (q, p) in peaks {
                    stmt.execute(params![
                        shift_start.0,
                        q,
                        p.peak_waiting,
                        p.peak_at.map(|t| t.0),
                        p.longest_wait_ms
                    ])?;
                }
            }
            tx.execute(
                "DELETE FROM handover_progress WHERE shift_start_ms < ?1",
                params![shift_start.0],
            )?;
            tx.commit()?;
            Ok(())
        })();
        self.noted("the handover progress", r)
    }

    /// The running peaks saved for the shift that started at `shift_start`.
    pub fn progress(&self, shift_start: Ts) -> Result<Vec<(String, Peak)>, StoreError> {
        let conn = lock(&self.writer);
        let mut stmt = conn.prepare_cached(
            "SELECT queue, peak_waiting, peak_at_ms, longest_wait_ms FROM handover_progress
             WHERE shift_start_ms = ?1",
        )?;
        let rows = stmt.query_map(params![shift_start.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Peak {
                    peak_waiting: r.get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32,
                    peak_at: r.get::<_, Option<i64>>(2)?.map(Ts),
                    longest_wait_ms: r.get::<_, i64>(3)?.max(0),
                    oldest: None,
                },
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn row_handover(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Handover, StoreError>> {
    let id: i64 = r.get(0)?;
    let body: String = r.get(1)?;
    let by: Option<String> = r.get(2)?;
    let at: Option<i64> = r.get(3)?;
    Ok(serde_json::from_str::<Handover>(&body)
        .map_err(|e| StoreError::Corrupt(format!("handover {id}: {e}")))
        .map(|mut h| {
            h.id = id.max(0) as u64;
            h.ack = by.zip(at).map(|(by, at)| Ack { by, at: Ts(at) });
            h
        }))
}
