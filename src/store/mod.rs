//! SQLite storage: the escalation audit log and the interval history.
//!
//! The audit log is append-only. An entry (contract section 6) is inserted
//! once, as decided, *before* anything is acted on; what happens afterwards
//! (the phone system's answer, a manager's approval, an expiry) is appended
//! as a row of `escalation_results`, and the entry that readers see is
//! composed: each action shows its latest result. Triggers refuse UPDATE and
//! DELETE on both tables, so "never rewritten" is enforced by the database,
//! not only by this code.
//!
//! Interval history is one row per queue and interval; a later write of the
//! same interval (a replay of a recorded day) replaces the earlier one.
//!
//! Concurrency: WAL mode, so the HTTP handlers read through their own
//! connection while the engine thread writes; writes are a handful of rows per
//! decision (decisions are rare) and one transaction per closed interval
//! batch, so the engine thread writes directly and stays well inside its
//! budget. `synchronous = NORMAL` keeps every committed row across a process
//! crash (a power loss may lose the last transactions, never corrupt).
//!
//! Health: every write records its outcome in the store's [`StorageHealth`],
//! so `/readyz`, `acd_storage_ok` and the wall say when the disk is full or
//! read-only, whoever was writing. [`Store::open`] writes once before it
//! returns: SQLite opens a file it cannot write read-only without a word,
//! and a daemon whose audit log cannot be written must not start as if it
//! could (see docs/failure-modes.md).

pub mod checkpoint;
pub mod floor;
pub mod handover;
pub mod health;
pub mod history;
pub mod reloads;
pub mod report;

use std::path::Path;
use std::sync::{Arc, Mutex};

pub use health::StorageHealth;

use rusqlite::{Connection, OptionalExtension, params};

use crate::escalation::{ActionRecord, Direction, Entry, EntryDecision};
use crate::state::IntervalRecord;
use crate::time::Ts;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the directory of {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("storage: bad stored value: {0}")]
    Corrupt(String),
    #[error(
        "cannot write {path}: {why}; acdmon does not start on storage it cannot write \
         (the escalation ladder writes every decision before acting on it)"
    )]
    NotWritable { path: String, why: String },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS escalation_entries (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    queue TEXT NOT NULL,
    stage INTEGER NOT NULL,
    stage_name TEXT NOT NULL,
    direction TEXT NOT NULL,
    reason TEXT NOT NULL,
    mode TEXT NOT NULL,
    ladder TEXT,
    actions TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS escalation_entries_queue ON escalation_entries (queue, ts_ms);
CREATE INDEX IF NOT EXISTS escalation_entries_ts ON escalation_entries (ts_ms);
CREATE TABLE IF NOT EXISTS escalation_results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER NOT NULL REFERENCES escalation_entries (id),
    action INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    result TEXT NOT NULL,
    detail TEXT,
    by TEXT
);
CREATE INDEX IF NOT EXISTS escalation_results_entry ON escalation_results (entry_id, seq);
CREATE TRIGGER IF NOT EXISTS escalation_entries_no_update BEFORE UPDATE ON escalation_entries
    BEGIN SELECT RAISE(ABORT, 'escalation log entries are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS escalation_entries_no_delete BEFORE DELETE ON escalation_entries
    BEGIN SELECT RAISE(ABORT, 'escalation log entries are never deleted'); END;
CREATE TRIGGER IF NOT EXISTS escalation_results_no_update BEFORE UPDATE ON escalation_results
    BEGIN SELECT RAISE(ABORT, 'escalation results are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS escalation_results_no_delete BEFORE DELETE ON escalation_results
    BEGIN SELECT RAISE(ABORT, 'escalation results are never deleted'); END;
CREATE TABLE IF NOT EXISTS storage_probe (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS intervals (
    queue TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    offered INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    answered_in_sl INTEGER NOT NULL,
    abandoned INTEGER NOT NULL,
    abandoned_in_sl INTEGER NOT NULL,
    short_abandoned INTEGER NOT NULL,
    exited INTEGER NOT NULL,
    arrivals INTEGER NOT NULL,
    handled INTEGER NOT NULL,
    service_level REAL,
    asa_s REAL,
    aht_s REAL,
    abandon_rate REAL,
    staffed_agents REAL NOT NULL,
    required_agents INTEGER,
    window TEXT NOT NULL,
    observed_from_ms INTEGER,
    PRIMARY KEY (queue, start_ms)
);
";

/// Adds what later versions keep to a database an earlier version created.
fn migrate(c: &Connection) -> Result<(), rusqlite::Error> {
    c.execute_batch(handover::SCHEMA)?;
    c.execute_batch(floor::SCHEMA)?;
    let has = c
        .prepare("SELECT 1 FROM pragma_table_info('intervals') WHERE name = 'observed_from_ms'")?
        .exists([])?;
    if !has {
        c.execute_batch("ALTER TABLE intervals ADD COLUMN observed_from_ms INTEGER")?;
    }
    Ok(())
}

/// Result rows for the entry's own decision use this action index.
const DECISION: i64 = -1;

/// The audit log and interval history. Cheap to share behind an `Arc`.
pub struct Store {
    writer: Mutex<Connection>,
    /// A second connection for readers (HTTP); `None` in memory, where a
    /// second connection would see another database.
    reader: Option<Mutex<Connection>>,
    health: Arc<StorageHealth>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// One stored interval (what `acdmon report` reads).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IntervalRow {
    pub queue: String,
    pub start: Ts,
    pub end: Ts,
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub abandoned_in_sl: u64,
    pub short_abandoned: u64,
    pub exited: u64,
    pub arrivals: u64,
    pub handled: u64,
    pub service_level: Option<f64>,
    pub asa_s: Option<f64>,
    pub aht_s: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub staffed_agents: f64,
    pub required_agents: Option<u32>,
    /// Later than `start` when the daemon began inside the interval (the
    /// figures miss what came before); `None` in rows written before this
    /// was recorded.
    pub observed_from: Option<Ts>,
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One real write, committed: what a read-only file or file system refuses
/// (opening alone does not tell, and `CREATE TABLE IF NOT EXISTS` on an
/// existing database writes nothing).
fn probe(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT OR REPLACE INTO storage_probe (id, ts_ms) VALUES (1, ?1)",
        params![Ts::now().0],
    )?;
    Ok(())
}

fn setup(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating) the database at `path`, in WAL mode, and writes to
    /// it once: [`StoreError::NotWritable`] when that fails.
    pub fn open(path: &str) -> Result<Store, StoreError> {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir {
                path: path.into(),
                source: e,
            })?;
        }
        let open = || -> Result<Connection, rusqlite::Error> {
            let c = Connection::open(path)?;
            setup(&c)?;
            Ok(c)
        };
        let writer = open().map_err(|e| StoreError::Open {
            path: path.into(),
            source: e,
        })?;
        let not_writable = |why: String| StoreError::NotWritable {
            path: path.into(),
            why,
        };
        if writer.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(not_writable(
                "the file or its file system is read-only".into(),
            ));
        }
        writer
            .execute_batch(SCHEMA)
            .and_then(|()| migrate(&writer))
            .and_then(|()| probe(&writer))
            .map_err(|e| not_writable(e.to_string()))?;
        let reader = open().map_err(|e| StoreError::Open {
            path: path.into(),
            source: e,
        })?;
        Ok(Store {
            writer: Mutex::new(writer),
            reader: Some(Mutex::new(reader)),
            health: Arc::default(),
        })
    }

    /// For readers (`acdmon report`): [`Store::open`], or, when the
    /// database cannot be written (a read-only copy), the file read-only
    /// as it is. Writes through it fail.
    pub fn open_to_read(path: &str) -> Result<Store, StoreError> {
        match Store::open(path) {
            Err(StoreError::NotWritable { .. }) => {}
            other => return other,
        }
        let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                Ok(c)
            })
            .map_err(|e| StoreError::Open {
                path: path.into(),
                source: e,
            })?;
        Ok(Store {
            writer: Mutex::new(c),
            reader: None,
            health: Arc::default(),
        })
    }

    /// A private in-memory database (replay, tests).
    pub fn in_memory() -> Result<Store, StoreError> {
        let c = Connection::open_in_memory()?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        c.execute_batch(SCHEMA)?;
        migrate(&c)?;
        Ok(Store {
            writer: Mutex::new(c),
            reader: None,
            health: Arc::default(),
        })
    }

    /// Whether writes succeed, as the last one found (shared with `/readyz`,
    /// the metrics and the wall).
    pub fn health(&self) -> &Arc<StorageHealth> {
        &self.health
    }

    /// Records a write's outcome in [`Store::health`] and passes it on.
    fn noted<T>(&self, what: &str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => self.health.write_ok(),
            Err(e) => self.health.write_failed(what, e),
        }
        r
    }

    /// Test hook: a database of at most its current size, as a full disk
    /// looks to SQLite (`SQLITE_FULL`). The free space left inside the
    /// file is taken by a ballast table first, so the next write that needs
    /// a page fails. `false` lifts the limit and frees the ballast.
    pub fn set_full(&self, full: bool) -> Result<(), StoreError> {
        let c = lock(&self.writer);
        if full {
            c.execute_batch("CREATE TABLE IF NOT EXISTS storage_ballast (b BLOB NOT NULL)")?;
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
            let mut size = 4096usize;
            while size >= 16 {
                match c.execute(
                    "INSERT INTO storage_ballast (b) VALUES (zeroblob(?1))",
                    params![size as i64],
                ) {
                    Ok(_) => {}
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == rusqlite::ErrorCode::DiskFull =>
                    {
                        size /= 2
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        } else {
            c.query_row("PRAGMA max_page_count = 4294967294", [], |_| Ok(()))?;
            c.execute_batch("DROP TABLE IF EXISTS storage_ballast")?;
        }
        Ok(())
    }

    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        lock(self.reader.as_ref().unwrap_or(&self.writer))
    }

    /// Writes a decision, as decided. Must succeed before it is acted on.
    pub fn insert_entry(&self, e: &Entry) -> Result<(), StoreError> {
        let r = self.insert_entry_unnoted(e);
        self.noted("the escalation log", r)
    }

    fn insert_entry_unnoted(&self, e: &Entry) -> Result<(), StoreError> {
        let actions =
            serde_json::to_string(&e.actions).map_err(|x| StoreError::Corrupt(x.to_string()))?;
        lock(&self.writer).execute(
            "INSERT INTO escalation_entries
             (id, ts_ms, queue, stage, stage_name, direction, reason, mode, ladder, actions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                e.id as i64,
                e.ts.0,
                e.queue,
                e.stage,
                e.stage_name,
                direction_str(e.direction),
                e.reason,
                e.mode,
                e.ladder,
                actions
            ],
        )?;
        Ok(())
    }

    /// Appends a result to an action (`action: None`: the entry's decision).
    pub fn append_result(
        &self,
        entry: u64,
        action: Option<usize>,
        ts: Ts,
        result: &str,
        detail: Option<&str>,
        by: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = lock(&self.writer).execute(
            "INSERT INTO escalation_results (entry_id, action, ts_ms, result, detail, by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                entry as i64,
                action.map_or(DECISION, |a| a as i64),
                ts.0,
                result,
                detail,
                by
            ],
        );
        self.noted("the escalation log", r.map(drop).map_err(StoreError::from))
    }

    /// Copies an entry of the cluster's CTI leader (from the escalation
    /// stream) into this log, with the leader's id. Entries are never
    /// rewritten: one already here is kept (reading the stream again after
    /// a restart). Returns whether it was new.
    pub fn mirror_entry(&self, e: &Entry) -> Result<bool, StoreError> {
        if let Some(old) = self.entry(e.id)? {
            if old.ts != e.ts || old.queue != e.queue || old.stage_name != e.stage_name {
                tracing::warn!(
                    id = e.id,
                    "the escalation log holds another entry under the CTI leader's id; kept as it is"
                );
            }
            return Ok(false);
        }
        self.insert_entry(e).map(|()| true)
    }

    /// Appends a result of the cluster's CTI leader (from the escalation
    /// stream) unless this log already has it. Returns whether it was new;
    /// a result for an entry this log lacks is skipped (logged).
    pub fn mirror_result(
        &self,
        entry: u64,
        action: Option<usize>,
        ts: Ts,
        result: &str,
        detail: Option<&str>,
        by: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (known, seen): (bool, bool) = {
            let c = lock(&self.writer);
            let known = c
                .query_row(
                    "SELECT 1 FROM escalation_entries WHERE id = ?1",
                    params![entry as i64],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            let seen = c
                .query_row(
                    "SELECT 1 FROM escalation_results
                     WHERE entry_id = ?1 AND action = ?2 AND ts_ms = ?3 AND result = ?4",
                    params![
                        entry as i64,
                        action.map_or(DECISION, |a| a as i64),
                        ts.0,
                        result
                    ],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            (known, seen)
        };
        if !known {
            tracing::warn!(
                entry,
                result,
                "a result of the CTI leader for an entry this log lacks; skipped"
            );
            return Ok(false);
        }
        if seen {
            return Ok(false);
        }
        self.append_result(entry, action, ts, result, detail, by)
            .map(|()| true)
    }

    /// The highest entry id (0 when empty): ids continue from it.
    pub fn max_entry_id(&self) -> Result<u64, StoreError> {
        let id: Option<i64> =
            lock(&self.writer)
                .query_row("SELECT MAX(id) FROM escalation_entries", [], |r| r.get(0))?;
        Ok(id.unwrap_or(0).max(0) as u64)
    }

    /// Entries, composed with their results, oldest first: of one queue or
    /// all, from `since` on, at most `limit` (the newest `limit`).
    pub fn entries(
        &self,
        queue: Option<&str>,
        since: Option<Ts>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT id, ts_ms, queue, stage, stage_name, direction, reason, mode, ladder, actions
             FROM escalation_entries
             WHERE (?1 IS NULL OR queue = ?1) AND ts_ms >= ?2
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![queue, since.map_or(i64::MIN, |t| t.0), limit as i64],
            row_entry,
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        out.reverse();
        compose(&conn, &mut out)?;
        Ok(out)
    }

    /// Every entry, composed, oldest first (restoring the ladder).
    pub fn all_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let conn = lock(&self.writer);
        let mut stmt = conn.prepare(
            "SELECT id, ts_ms, queue, stage, stage_name, direction, reason, mode, ladder, actions
             FROM escalation_entries ORDER BY id",
        )?;
        let rows = stmt.query_map([], row_entry)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        compose(&conn, &mut out)?;
        Ok(out)
    }

    /// One entry, composed.
    pub fn entry(&self, id: u64) -> Result<Option<Entry>, StoreError> {
        let conn = lock(&self.writer);
        let e = conn
            .query_row(
                "SELECT id, ts_ms, queue, stage, stage_name, direction, reason, mode, ladder, actions
                 FROM escalation_entries WHERE id = ?1",
                params![id as i64],
                row_entry,
            )
            .optional()?;
        match e {
            Some(e) => {
                let mut v = vec![e?];
                compose(&conn, &mut v)?;
                Ok(v.pop())
            }
            None => Ok(None),
        }
    }

    /// Writes closed intervals in one transaction.
    pub fn insert_intervals(&self, recs: &[IntervalRecord]) -> Result<(), StoreError> {
        let r = self.insert_intervals_unnoted(recs);
        self.noted("the interval history", r)
    }

    fn insert_intervals_unnoted(&self, recs: &[IntervalRecord]) -> Result<(), StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO intervals
                 (queue, start_ms, end_ms, offered, answered, answered_in_sl, abandoned,
                  abandoned_in_sl, short_abandoned, exited, arrivals, handled, service_level,
                  asa_s, aht_s, abandon_rate, staffed_agents, required_agents, window,
                  observed_from_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )?;
            for r in recs {
                let w = &r.window;
                let window =
                    serde_json::to_string(w).map_err(|x| StoreError::Corrupt(x.to_string()))?;
                stmt.execute(params![
                    r.queue,
                    r.start.0,
                    r.end.0,
                    w.offered as i64,
                    w.answered as i64,
                    w.answered_in_sl as i64,
                    w.abandoned as i64,
                    w.abandoned_in_sl as i64,
                    w.short_abandoned as i64,
                    w.exited as i64,
                    w.arrivals as i64,
                    w.handled as i64,
                    w.service_level,
                    w.asa_s,
                    w.aht_s,
                    w.abandon_rate,
                    r.staffed_agents,
                    r.required_agents,
                    window,
                    r.observed_from.0
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Stored intervals starting in `[from, to)`, by queue then start.
    pub fn intervals(
        &self,
        from: Ts,
        to: Ts,
        queue: Option<&str>,
    ) -> Result<Vec<IntervalRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT queue, start_ms, end_ms, offered, answered, answered_in_sl, abandoned,
                    abandoned_in_sl, short_abandoned, exited, arrivals, handled, service_level,
                    asa_s, aht_s, abandon_rate, staffed_agents, required_agents, observed_from_ms
             FROM intervals WHERE start_ms >= ?1 AND start_ms < ?2 AND (?3 IS NULL OR queue = ?3)
             ORDER BY queue, start_ms",
        )?;
        let rows = stmt.query_map(params![from.0, to.0, queue], |r| {
            let u = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
            Ok(IntervalRow {
                queue: r.get(0)?,
                start: Ts(r.get(1)?),
                end: Ts(r.get(2)?),
                offered: u(3)?,
                answered: u(4)?,
                answered_in_sl: u(5)?,
                abandoned: u(6)?,
                abandoned_in_sl: u(7)?,
                short_abandoned: u(8)?,
                exited: u(9)?,
                arrivals: u(10)?,
                handled: u(11)?,
                service_level: r.get(12)?,
                asa_s: r.get(13)?,
                aht_s: r.get(14)?,
                abandon_rate: r.get(15)?,
                staffed_agents: r.get(16)?,
                required_agents: r.get(17)?,
                observed_from: r.get::<_, Option<i64>>(18)?.map(Ts),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl IntervalRow {
    /// Observed from after its start (see [`IntervalRow::observed_from`]).
    pub fn is_partial(&self) -> bool {
        self.observed_from.is_some_and(|t| t > self.start)
    }
}

fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Up => "up",
        Direction::Down => "down",
    }
}

type RowEntry = Result<Entry, StoreError>;

fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<RowEntry> {
    let id: i64 = r.get(0)?;
    let direction: String = r.get(5)?;
    let actions: String = r.get(9)?;
    let direction = match direction.as_str() {
        "up" => Direction::Up,
        "down" => Direction::Down,
        other => {
            return Ok(Err(StoreError::Corrupt(format!(
                "entry {id}: direction {other:?}"
            ))));
        }
    };
    let actions: Vec<ActionRecord> = match serde_json::from_str(&actions) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Err(StoreError::Corrupt(format!(
                "entry {id}: actions: {e}"
            ))));
        }
    };
    Ok(Ok(Entry {
        id: id.max(0) as u64,
        ts: Ts(r.get(1)?),
        queue: r.get(2)?,
        stage: r.get(3)?,
        stage_name: r.get(4)?,
        direction,
        reason: r.get(6)?,
        mode: r.get(7)?,
        actions,
        ladder: r.get(8)?,
        decision: None,
    }))
}

/// Applies each entry's results in order: an action shows its latest.
fn compose(conn: &Connection, entries: &mut [Entry]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT action, ts_ms, result, detail, by FROM escalation_results
         WHERE entry_id = ?1 ORDER BY seq",
    )?;
    for e in entries.iter_mut() {
        let rows = stmt.query_map(params![e.id as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Ts(r.get(1)?),
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        for row in rows {
            let (action, ts, result, detail, by) = row?;
            if action == DECISION {
                e.decision = Some(EntryDecision { result, ts, by });
            } else if let Some(a) = usize::try_from(action)
                .ok()
                .and_then(|i| e.actions.get_mut(i))
            {
                a.result = result;
                a.at = Some(ts);
                if detail.is_some() {
                    a.detail = detail;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written before `observed_from_ms` existed opens, gains
    /// the column, and its old rows read as not known to be partial.
    #[test]
    fn an_old_interval_table_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let path = path.to_str().unwrap();
        {
            let c = Connection::open(path).unwrap();
            let old = SCHEMA.replace("    observed_from_ms INTEGER,\n", "");
            assert_ne!(old, SCHEMA);
            c.execute_batch(&old).unwrap();
            c.execute(
                "INSERT INTO intervals (queue, start_ms, end_ms, offered, answered,
                 answered_in_sl, abandoned, abandoned_in_sl, short_abandoned, exited,
                 arrivals, handled, staffed_agents, window)
                 VALUES ('q', 0, 900000, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1.0, '{}')",
                [],
            )
            .unwrap();
        }
        let store = Store::open(path).unwrap();
        let rows = store.intervals(Ts(0), Ts(1_000_000), None).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].observed_from, None);
        assert!(!rows[0].is_partial());
        // Opening again does not try to add the column twice.
        drop(store);
        Store::open(path).unwrap();
    }

    fn entry(id: u64) -> Entry {
        Entry {
            id,
            ts: Ts(1_000 * id as i64),
            queue: "hotline".into(),
            stage: 1,
            stage_name: "experts".into(),
            direction: Direction::Up,
            reason: "waiting=7 > 5 for 5m".into(),
            mode: "auto".into(),
            actions: vec![ActionRecord {
                kind: "sign_in".into(),
                agent: Some("x1".into()),
                target_queue: Some("hotline".into()),
                result: "pending".into(),
                detail: None,
                seats: None,
                at: None,
            }],
            ladder: Some("emergency".into()),
            decision: None,
        }
    }

    #[test]
    fn entries_are_composed_from_appended_results_and_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.sqlite");
        let s = Store::open(path.to_str().unwrap()).unwrap();
        s.insert_entry(&entry(1)).unwrap();
        s.insert_entry(&entry(2)).unwrap();
        s.append_result(1, Some(0), Ts(1500), "failed", Some("HTTP 503"), None)
            .unwrap();
        s.append_result(1, Some(0), Ts(1600), "ok", Some("HTTP 200"), None)
            .unwrap();
        s.append_result(2, None, Ts(2500), "approved", None, Some("admin"))
            .unwrap();
        let all = s.entries(None, None, 100).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].actions[0].result, "ok");
        assert_eq!(all[0].actions[0].detail.as_deref(), Some("HTTP 200"));
        assert_eq!(all[1].decision.as_ref().unwrap().result, "approved");
        assert_eq!(s.max_entry_id().unwrap(), 2);
        assert_eq!(s.entries(None, Some(Ts(2000)), 100).unwrap().len(), 1);
        assert_eq!(s.entries(None, None, 1).unwrap()[0].id, 2, "the newest");
        assert!(s.entries(Some("billing"), None, 10).unwrap().is_empty());
        let w = lock(&s.writer);
        let e = w
            .execute(
                "UPDATE escalation_entries SET reason = 'x' WHERE id = 1",
                [],
            )
            .unwrap_err();
        assert!(e.to_string().contains("never rewritten"), "{e}");
        assert!(
            w.execute("DELETE FROM escalation_results", [])
                .unwrap_err()
                .to_string()
                .contains("never deleted")
        );
        drop(w);
        // Survives a reopen.
        drop(s);
        let s = Store::open(path.to_str().unwrap()).unwrap();
        assert_eq!(s.all_entries().unwrap().len(), 2);
        assert_eq!(s.entry(1).unwrap().unwrap().actions[0].result, "ok");
    }

    /// A follower reads the CTI leader's escalation stream again after a
    /// restart: what its log already holds is not written twice, and a
    /// result for an entry it never got is skipped, not an error that would
    /// hold up the records after it.
    #[test]
    fn mirrored_records_are_written_once() {
        let s = Store::in_memory().unwrap();
        assert!(s.mirror_entry(&entry(4)).unwrap());
        assert!(!s.mirror_entry(&entry(4)).unwrap());
        let ok = |s: &Store| s.mirror_result(4, Some(0), Ts(4500), "ok", Some("HTTP 200"), None);
        assert!(ok(&s).unwrap());
        assert!(!ok(&s).unwrap());
        assert!(
            !s.mirror_result(9, Some(0), Ts(9500), "ok", None, None)
                .unwrap()
        );
        let rows: i64 = lock(&s.writer)
            .query_row("SELECT COUNT(*) FROM escalation_results", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert_eq!(s.entry(4).unwrap().unwrap().actions[0].result, "ok");
        assert_eq!(s.all_entries().unwrap().len(), 1);
    }

    /// A full database refuses a new entry with SQLITE_FULL, health says so,
    /// and the same entry is written once there is room again.
    #[test]
    fn a_full_database_refuses_writes_until_it_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("f.sqlite").to_str().unwrap()).unwrap();
        s.insert_entry(&entry(1)).unwrap();
        s.set_full(true).unwrap();
        let mut e = entry(2);
        e.reason = "x".repeat(5000); // needs a page the file does not have
        let err = s.insert_entry(&e).unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
        assert!(!s.health().ok());
        assert_eq!(s.health().failures(), 1);
        s.set_full(false).unwrap();
        s.insert_entry(&e).unwrap();
        assert!(s.health().ok());
        assert_eq!(s.all_entries().unwrap().len(), 2);
    }
}
