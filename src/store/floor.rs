//! The floor rules' own audit rows, in the audit database beside the
//! escalation log: what `cover = "auto"` did to whom ([`CoverEntry`]), and
//! the adherence exceptions supervisors approved.
//!
//! The cover log is written like the escalation log: a decision is
//! inserted *before* the phone system is asked, its outcome is a row of its
//! own appended later, and triggers refuse UPDATE and DELETE. It is a table
//! apart from `escalation_entries` because the ladder numbers its entries
//! itself (ids are given in decision order by the ladder's observer); a
//! second writer in that table would take its ids.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, lock};
use crate::time::Ts;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cover_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    post TEXT NOT NULL,
    agent TEXT NOT NULL,
    queue TEXT NOT NULL,
    verb TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS cover_log_no_update BEFORE UPDATE ON cover_log
    BEGIN SELECT RAISE(ABORT, 'cover log entries are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS cover_log_no_delete BEFORE DELETE ON cover_log
    BEGIN SELECT RAISE(ABORT, 'cover log entries are never deleted'); END;
CREATE TABLE IF NOT EXISTS cover_results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER NOT NULL REFERENCES cover_log (id),
    ts_ms INTEGER NOT NULL,
    result TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS cover_results_entry ON cover_results (entry_id, seq);
CREATE TRIGGER IF NOT EXISTS cover_results_no_update BEFORE UPDATE ON cover_results
    BEGIN SELECT RAISE(ABORT, 'cover results are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS cover_results_no_delete BEFORE DELETE ON cover_results
    BEGIN SELECT RAISE(ABORT, 'cover results are never deleted'); END;
CREATE TABLE IF NOT EXISTS source_outages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    down INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS source_outages_ts ON source_outages (ts_ms);
CREATE TRIGGER IF NOT EXISTS source_outages_no_update BEFORE UPDATE ON source_outages
    BEGIN SELECT RAISE(ABORT, 'source outages are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS source_outages_no_delete BEFORE DELETE ON source_outages
    BEGIN SELECT RAISE(ABORT, 'source outages are never deleted'); END;
CREATE TABLE IF NOT EXISTS post_breaches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    post TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER
);
CREATE INDEX IF NOT EXISTS post_breaches_start ON post_breaches (start_ms);
CREATE TRIGGER IF NOT EXISTS post_breaches_no_update BEFORE UPDATE ON post_breaches
    BEGIN SELECT RAISE(ABORT, 'post breaches are never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS post_breaches_no_delete BEFORE DELETE ON post_breaches
    BEGIN SELECT RAISE(ABORT, 'post breaches are never deleted'); END;
CREATE TABLE IF NOT EXISTS shift_adherence_base (
    shift_start_ms INTEGER NOT NULL,
    day TEXT NOT NULL,
    agent TEXT NOT NULL,
    scheduled_ms INTEGER NOT NULL,
    out_ms INTEGER NOT NULL,
    PRIMARY KEY (shift_start_ms, day, agent)
);
CREATE TABLE IF NOT EXISTS adherence_days (
    day TEXT NOT NULL,
    agent TEXT NOT NULL,
    scheduled_ms INTEGER NOT NULL,
    out_ms INTEGER NOT NULL,
    PRIMARY KEY (day, agent)
);
CREATE TABLE IF NOT EXISTS adherence_exceptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    deleted_ms INTEGER,
    deleted_by TEXT
);
";

/// One decision of `cover = "auto"`, with its latest result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoverEntry {
    pub id: u64,
    pub ts: Ts,
    pub post: String,
    pub agent: String,
    pub queue: String,
    /// `sign_in` or `sign_out`.
    pub verb: String,
    pub reason: String,
    /// `pending` until the phone system answered; then `ok` or `failed`;
    /// `not_needed` for a sign-out the rule dropped (the holder had left the
    /// queue already).
    pub result: String,
    pub detail: Option<String>,
    /// When `result` was recorded (`None` while pending).
    pub at: Option<Ts>,
}

impl Store {
    /// Writes a cover decision (before acting on it); returns its id.
    pub fn insert_cover(
        &self,
        ts: Ts,
        post: &str,
        agent: &str,
        queue: &str,
        verb: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let r = (|| {
            let c = lock(&self.writer);
            c.execute(
                "INSERT INTO cover_log (ts_ms, post, agent, queue, verb, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![ts.0, post, agent, queue, verb, reason],
            )?;
            Ok(c.last_insert_rowid() as u64)
        })();
        self.noted("cover log", r)
    }

    /// Appends the outcome of cover decision `id`.
    pub fn append_cover_result(
        &self,
        id: u64,
        ts: Ts,
        result: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let r = lock(&self.writer)
            .execute(
                "INSERT INTO cover_results (entry_id, ts_ms, result, detail) VALUES (?1, ?2, ?3, ?4)",
                params![id as i64, ts.0, result, detail],
            )
            .map(|_| ())
            .map_err(StoreError::from);
        self.noted("cover log", r)
    }

    /// Cover decisions with their latest result, oldest first; `since`
    /// limits them to those decided from then on.
    pub fn cover_entries(&self, since: Option<Ts>) -> Result<Vec<CoverEntry>, StoreError> {
        let c = self.read();
        let mut st = c.prepare(
            "SELECT l.id, l.ts_ms, l.post, l.agent, l.queue, l.verb, l.reason, \
                    r.result, r.detail, r.ts_ms \
             FROM cover_log l LEFT JOIN cover_results r ON r.seq = \
                (SELECT MAX(seq) FROM cover_results WHERE entry_id = l.id) \
             WHERE l.ts_ms >= ?1 ORDER BY l.id",
        )?;
        let rows = st.query_map(params![since.map_or(i64::MIN, |t| t.0)], |r| {
            Ok(CoverEntry {
                id: r.get::<_, i64>(0)? as u64,
                ts: Ts(r.get(1)?),
                post: r.get(2)?,
                agent: r.get(3)?,
                queue: r.get(4)?,
                verb: r.get(5)?,
                reason: r.get(6)?,
                result: r
                    .get::<_, Option<String>>(7)?
                    .unwrap_or_else(|| "pending".into()),
                detail: r.get(8)?,
                at: r.get::<_, Option<i64>>(9)?.map(Ts),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces the stored day totals of these agents and days (the
    /// running totals of today are saved again and again).
    pub fn save_adherence_days(
        &self,
        rows: &[crate::floor::adherence::DayAdherence],
    ) -> Result<(), StoreError> {
        let r = (|| {
            let mut c = lock(&self.writer);
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT OR REPLACE INTO adherence_days (day, agent, scheduled_ms, out_ms) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for r in rows {
                    st.execute(params![
                        r.day,
                        r.agent,
                        (r.scheduled_s * 1000.0).round() as i64,
                        (r.out_s * 1000.0).round() as i64
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })();
        self.noted("adherence day totals", r)
    }

    /// The stored day totals of local day `day` (`YYYY-MM-DD`), by agent.
    pub fn adherence_days(
        &self,
        day: &str,
    ) -> Result<Vec<crate::floor::adherence::DayAdherence>, StoreError> {
        let c = self.read();
        let mut st = c.prepare(
            "SELECT agent, scheduled_ms, out_ms FROM adherence_days WHERE day = ?1 ORDER BY agent",
        )?;
        let rows = st.query_map(params![day], |r| {
            let (agent, sched, out): (String, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(crate::floor::adherence::DayAdherence::new(
                agent,
                day.to_string(),
                sched,
                out,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores an approved adherence exception; returns it with its id.
    pub fn insert_exception(
        &self,
        e: &crate::floor::exceptions::Exception,
    ) -> Result<crate::floor::exceptions::Exception, StoreError> {
        let r = (|| {
            let c = lock(&self.writer);
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO adherence_exceptions (record, created_ms) VALUES ('', ?1)",
                params![e.created.0],
            )?;
            let id = tx.last_insert_rowid() as u64;
            let stored = crate::floor::exceptions::Exception { id, ..e.clone() };
            let record =
                serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE adherence_exceptions SET record = ?1 WHERE id = ?2",
                params![record, id as i64],
            )?;
            tx.commit()?;
            Ok(stored)
        })();
        self.noted("adherence exceptions", r)
    }

    /// Withdraws exception `id` (kept, marked with who and when). `false`:
    /// no such open exception.
    pub fn withdraw_exception(&self, id: u64, by: &str, at: Ts) -> Result<bool, StoreError> {
        let r = lock(&self.writer)
            .execute(
                "UPDATE adherence_exceptions SET deleted_ms = ?1, deleted_by = ?2 \
                 WHERE id = ?3 AND deleted_ms IS NULL",
                params![at.0, by, id as i64],
            )
            .map(|n| n == 1)
            .map_err(StoreError::from);
        self.noted("adherence exceptions", r)
    }

    /// Exceptions not withdrawn that end after `after`, oldest first.
    pub fn open_exceptions(
        &self,
        after: Ts,
    ) -> Result<Vec<crate::floor::exceptions::Exception>, StoreError> {
        let c = self.read();
        let mut st = c.prepare(
            "SELECT record FROM adherence_exceptions WHERE deleted_ms IS NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let e: crate::floor::exceptions::Exception =
                serde_json::from_str(&r?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if e.to > after {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Appends source outage transitions (a source down or back).
    pub fn append_outage_marks(
        &self,
        marks: &[crate::floor::outages::OutageMark],
    ) -> Result<(), StoreError> {
        let r = (|| {
            let mut c = lock(&self.writer);
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT INTO source_outages (source, ts_ms, down, error) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for m in marks {
                    st.execute(params![m.source, m.ts.0, m.down, m.error])?;
                }
            }
            tx.commit()?;
            Ok(())
        })();
        self.noted("source outages", r)
    }

    /// Source outage transitions from `since` on, oldest first, plus the
    /// latest "down" before `since` of each source still down then (an
    /// outage that began earlier and had not ended).
    pub fn outage_marks(
        &self,
        since: Ts,
    ) -> Result<Vec<crate::floor::outages::OutageMark>, StoreError> {
        let c = self.read();
        let mut st = c.prepare(
            "SELECT source, ts_ms, down, error FROM source_outages o              WHERE ts_ms >= ?1                 OR (down = 1 AND ts_ms < ?1 AND seq = (SELECT MAX(seq) FROM source_outages                     WHERE source = o.source AND ts_ms < ?1))              ORDER BY seq",
        )?;
        let rows = st.query_map(params![since.0], |r| {
            Ok(crate::floor::outages::OutageMark {
                source: r.get(0)?,
                ts: Ts(r.get(1)?),
                down: r.get(2)?,
                error: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Appends post breach rows: one when a breach opens (`end` `None`),
    /// another when it ends.
    pub fn append_breaches(
        &self,
        rows: &[(String, crate::floor::posts::Breach)],
    ) -> Result<(), StoreError> {
        let r = (|| {
            let mut c = lock(&self.writer);
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT INTO post_breaches (post, start_ms, end_ms) VALUES (?1, ?2, ?3)",
                )?;
                for (post, b) in rows {
                    st.execute(params![post, b.start.0, b.end.map(|t| t.0)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })();
        self.noted("post breaches", r)
    }

    /// The breaches that started from `since` on, each as its latest row
    /// says (open or ended), ordered by post and start.
    pub fn post_breaches(
        &self,
        since: Ts,
    ) -> Result<Vec<(String, crate::floor::posts::Breach)>, StoreError> {
        let c = self.read();
        let mut st = c.prepare(
            "SELECT post, start_ms, end_ms FROM post_breaches b              WHERE start_ms >= ?1 AND seq = (SELECT MAX(seq) FROM post_breaches                 WHERE post = b.post AND start_ms = b.start_ms)              ORDER BY post, start_ms",
        )?;
        let rows = st.query_map(params![since.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                crate::floor::posts::Breach {
                    start: Ts(r.get(1)?),
                    end: r.get::<_, Option<i64>>(2)?.map(Ts),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores the adherence day totals as the shift starting at
    /// `shift_start` began (the first stored base of a shift stays).
    pub fn save_shift_adherence_base(
        &self,
        shift_start: Ts,
        rows: &[crate::floor::adherence::DayAdherence],
    ) -> Result<(), StoreError> {
        let r = (|| {
            let mut c = lock(&self.writer);
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT OR IGNORE INTO shift_adherence_base                      (shift_start_ms, day, agent, scheduled_ms, out_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                // A marker row: the base is stored even with no agent in it.
                st.execute(params![shift_start.0, "", "", 0, 0])?;
                for r in rows {
                    st.execute(params![
                        shift_start.0,
                        r.day,
                        r.agent,
                        (r.scheduled_s * 1000.0).round() as i64,
                        (r.out_s * 1000.0).round() as i64
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })();
        self.noted("shift adherence base", r)
    }

    /// The stored base of the shift starting at `shift_start`; `None` when
    /// none was stored.
    pub fn shift_adherence_base(
        &self,
        shift_start: Ts,
    ) -> Result<Option<Vec<crate::floor::adherence::DayAdherence>>, StoreError> {
        let c = self.read();
        let mut st = c.prepare(
            "SELECT day, agent, scheduled_ms, out_ms FROM shift_adherence_base              WHERE shift_start_ms = ?1 ORDER BY day, agent",
        )?;
        let rows = st.query_map(params![shift_start.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut marker = false;
        let mut out = Vec::new();
        for row in rows {
            let (day, agent, sched, o) = row?;
            if day.is_empty() && agent.is_empty() {
                marker = true;
            } else {
                out.push(crate::floor::adherence::DayAdherence::new(
                    agent, day, sched, o,
                ));
            }
        }
        Ok(marker.then_some(out))
    }

    /// The newest cover decision's id (0 when none).
    pub fn max_cover_id(&self) -> Result<u64, StoreError> {
        let c = self.read();
        let id: Option<i64> = c
            .query_row("SELECT MAX(id) FROM cover_log", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(id.unwrap_or(0) as u64)
    }
}
