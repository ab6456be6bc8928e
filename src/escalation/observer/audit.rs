//! The audit log's write queue: every decision and result is written
//! before it is acted on; a failed write keeps it, in order, and is
//! retried with a doubling backoff (see the parent module).

use super::*;

impl LadderObserver {
    /// Writes now, or after what already waits (order is kept, so a result
    /// never reaches the log before its entry).
    pub(super) fn write(&mut self, w: Write, now: Ts) {
        if let Write::Entry(e) = &w {
            self.unwritten.insert(e.id);
        }
        let first = self.pending.is_empty();
        self.pending.push_back(w);
        if first {
            self.retry_at = now;
            self.flush_writes(now);
        }
        self.store.health().set_pending_writes(self.pending.len());
    }

    /// Writes what waits, oldest first, until one fails (then again after a
    /// backoff).
    pub(super) fn flush_writes(&mut self, now: Ts) {
        if self.pending.is_empty() || now < self.retry_at {
            return;
        }
        while let Some(w) = self.pending.pop_front() {
            let r = match &w {
                Write::Entry(e) => self.store.insert_entry(e),
                Write::Mark(m, at) => self.store.append_result(
                    m.entry,
                    m.action,
                    *at,
                    m.result,
                    m.detail.as_deref(),
                    m.by.as_deref(),
                ),
            };
            match r {
                Ok(()) => match w {
                    Write::Entry(e) => {
                        self.unwritten.remove(&e.id);
                        self.outbox.push(e.id);
                        self.append_entry(e);
                    }
                    Write::Mark(m, at) => {
                        if m.action.is_some() && m.result != PENDING {
                            self.count(m.entry, m.result);
                        }
                        self.outbox.push(m.entry);
                        self.append_record(Record::Mark {
                            entry: m.entry,
                            action: m.action,
                            ts_ms: at.0,
                            result: m.result.to_string(),
                            detail: m.detail,
                            by: m.by,
                        });
                    }
                },
                Err(err) => {
                    let (what, id) = match &w {
                        Write::Entry(e) => ("decision", e.id),
                        Write::Mark(m, _) => ("result", m.entry),
                    };
                    if self.retry_ms == WRITE_RETRY_FIRST_MS {
                        tracing::error!(entry = id, error = %err, waiting = self.pending.len() + 1,
                            "cannot write an escalation {what} to the audit log; it is kept and \
                             retried, and nothing is acted on or decided until it is written");
                    }
                    self.pending.push_front(w);
                    self.retry_at = now.plus_ms(self.retry_ms);
                    self.retry_ms = (self.retry_ms * 2).min(WRITE_RETRY_MAX_MS);
                    break;
                }
            }
        }
        if self.pending.is_empty() && self.retry_ms != WRITE_RETRY_FIRST_MS {
            tracing::info!(
                "the audit log is written again; waiting escalation decisions are acted on"
            );
            self.retry_ms = WRITE_RETRY_FIRST_MS;
            for l in self.ladders.iter_mut().flatten() {
                l.restart_clocks();
            }
        }
        self.store.health().set_pending_writes(self.pending.len());
    }

    /// Retries waiting writes when due, then starts the acts whose entries
    /// are now written, in the order decided.
    pub(super) fn retry_writes(&mut self, engine: &mut Engine) {
        if self.pending.is_empty() && self.held.is_empty() {
            return;
        }
        self.flush_writes(engine.now());
        self.release_held(engine);
    }

    /// Starts the held acts whose entries are written (and, leading, in
    /// the escalation stream), in the order decided.
    pub(super) fn release_held(&mut self, engine: &mut Engine) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        for a in held {
            if self.unwritten.contains(&a.entry) || self.unacked.contains(&a.entry) {
                self.held.push(a);
            } else {
                if let Some(q) = engine.find_queue(&a.queue) {
                    self.changed.insert(q);
                }
                self.enqueue(engine, a);
            }
        }
        self.run_inline(engine);
    }

    pub(super) fn count(&self, entry: u64, result: &str) {
        if let Some((queue, stage)) = self.meta.get(&entry) {
            metrics::counter!("acd_escalation_actions_total",
                "queue" => queue.clone(), "stage" => stage.clone(), "result" => result.to_string())
            .increment(1);
        }
    }
}
