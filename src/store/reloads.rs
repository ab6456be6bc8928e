//! The audit trail of configuration reloads: who asked, when, whether the
//! file was taken, what changed and what waits for a restart. Kept beside
//! the escalation log in the same database (a reload can change who the
//! ladder signs in, so the two are read together), never rewritten.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, lock};
use crate::time::Ts;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS config_reloads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    by TEXT NOT NULL,
    ok INTEGER NOT NULL,
    changes TEXT NOT NULL,
    needs_restart TEXT NOT NULL,
    errors TEXT NOT NULL
);
";

/// One reload, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadRecord {
    pub id: u64,
    pub ts: Ts,
    /// `SIGHUP` or `api`.
    pub by: String,
    /// The new file was valid and taken.
    pub ok: bool,
    pub changes: Vec<String>,
    pub needs_restart: Vec<String>,
    /// `file:line:col: message` when the file was refused.
    pub errors: Vec<String>,
}

impl Store {
    /// Appends a reload to the trail and returns its id.
    pub fn insert_reload(&self, r: &ReloadRecord) -> Result<u64, StoreError> {
        let c = lock(&self.writer);
        c.execute_batch(SCHEMA)?;
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        c.execute(
            "INSERT INTO config_reloads (ts_ms, by, ok, changes, needs_restart, errors)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                r.ts.millis(),
                r.by,
                r.ok as i64,
                json(&r.changes),
                json(&r.needs_restart),
                json(&r.errors)
            ],
        )?;
        Ok(c.last_insert_rowid() as u64)
    }

    /// The newest `limit` reloads, newest first.
    pub fn reloads(&self, limit: usize) -> Result<Vec<ReloadRecord>, StoreError> {
        {
            // A database no reload has touched yet has no table.
            let w = lock(&self.writer);
            w.execute_batch(SCHEMA)?;
        }
        let c = self.read();
        let mut st = c.prepare(
            "SELECT id, ts_ms, by, ok, changes, needs_restart, errors FROM config_reloads
             ORDER BY id DESC LIMIT ?1",
        )?;
        let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
        let rows = st.query_map([limit as i64], |r| {
            Ok(ReloadRecord {
                id: r.get::<_, i64>(0)? as u64,
                ts: Ts(r.get(1)?),
                by: r.get(2)?,
                ok: r.get::<_, i64>(3)? != 0,
                changes: list(r.get(4)?),
                needs_restart: list(r.get(5)?),
                errors: list(r.get(6)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
