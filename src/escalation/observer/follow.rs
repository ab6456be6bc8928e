//! Leading and following in a cluster (docs/cluster.md, "One CTI leader
//! per site"). The leader sends every entry and result it writes to the
//! escalation stream and starts a decision's actions once the stream has
//! its entry; a follower copies the leader's records into its own audit log
//! and rebuilds the touched queue's ladder from it. Taking the lead is a
//! restart from that log; losing it drops the actions not yet started.

use super::*;

impl LadderObserver {
    pub fn role(&self) -> Role {
        self.role
    }

    /// A site's instance in cluster mode: follows the site's CTI leader
    /// until told to lead ([`Command::Lead`]). Returns what the ladder
    /// writes, for the escalation stream (`LadderHandle::stream`). Called
    /// before the engine starts.
    pub fn follow_a_leader(&mut self) -> mpsc::UnboundedReceiver<Record> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.role = Role::Following;
        self.stream = Some(tx);
        rx
    }

    /// Sends a written entry to the escalation stream; leading, its acts
    /// wait for the stream's acknowledgement ([`Command::Appended`]).
    pub(super) fn append_entry(&mut self, e: Entry) {
        if self.stream.is_none() {
            return;
        }
        if self.role == Role::Leading {
            self.unacked.insert(e.id);
        }
        self.append_record(Record::Entry { entry: e });
    }

    /// Sends a written record to the escalation stream (cluster mode).
    pub(super) fn append_record(&mut self, r: Record) {
        let Some(tx) = &self.stream else {
            return;
        };
        if tx.send(r).is_err() {
            // The cluster's escalation task is gone (the daemon stops): an
            // entry's actions must not wait for an acknowledgement forever.
            tracing::error!("the escalation stream's task is gone; records are not appended");
            self.stream = None;
            self.unacked.clear();
        }
    }

    /// The stream has entry `entry` (or could not take it): its held acts
    /// start (or fail without being carried out).
    pub(super) fn appended(&mut self, engine: &mut Engine, entry: u64, error: Option<String>) {
        if !self.unacked.remove(&entry) {
            return;
        }
        if let Some(why) = error {
            tracing::error!(entry, error = %why,
                "an escalation decision is not in the escalation stream; its actions are not carried out");
            let (failed, kept): (Vec<Act>, Vec<Act>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|a| a.entry == entry);
            self.held = kept;
            for act in failed {
                self.actions.finish(Done {
                    act,
                    outcome: CtiOutcome::failed(format!(
                        "not recorded in the escalation stream, not carried out: {why}"
                    )),
                });
            }
            self.run_inline(engine);
        }
        self.release_held(engine);
        self.sync(engine);
    }

    /// Rebuilds queue `q`'s ladder from the audit log, its outputs
    /// discarded (a follower's ladder is the leader's log).
    pub(super) fn rebuild(&mut self, engine: &mut Engine, q: usize) {
        let queue = engine.queue(q).name.to_string();
        let entries = match self.store.entries(Some(&queue), None, i64::MAX as usize) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(%queue, error = %e, "cannot read the escalation log to mirror the leader's ladder");
                return;
            }
        };
        if self.ladders.len() > q {
            self.ladders[q] = None;
        }
        self.ensure_ladder(engine, q);
        let plans = self.plans.clone();
        if let Some(l) = self.ladders[q].as_mut() {
            drop(l.restore(&entries, &|n| plans.get(n).cloned()));
        }
        self.changed.insert(q);
    }

    /// A record of the leader's, copied into the audit log (a follower).
    pub(super) fn mirror(&mut self, engine: &mut Engine, r: Record) {
        if self.role != Role::Following {
            // The leader reads its own records back; they are in its log.
            return;
        }
        if !self.mirror_retry.is_empty() {
            self.mirror_retry.push_back(r);
            return;
        }
        if !self.apply_mirrored(engine, &r) {
            self.mirror_retry.push_back(r);
        }
    }

    /// Mirrored records the audit log refused, again, in order.
    pub(super) fn retry_mirror(&mut self, engine: &mut Engine) {
        while let Some(r) = self.mirror_retry.pop_front() {
            if self.role != Role::Following {
                continue;
            }
            if !self.apply_mirrored(engine, &r) {
                self.mirror_retry.push_front(r);
                break;
            }
        }
    }

    /// Copies `r` into the audit log and rebuilds its queue's ladder;
    /// false when the log refused it (kept, retried).
    fn apply_mirrored(&mut self, engine: &mut Engine, r: &Record) -> bool {
        let written = match r {
            Record::Entry { entry } => self.store.mirror_entry(entry),
            Record::Mark {
                entry,
                action,
                ts_ms,
                result,
                detail,
                by,
            } => self.store.mirror_result(
                *entry,
                *action,
                Ts(*ts_ms),
                result,
                detail.as_deref(),
                by.as_deref(),
            ),
        };
        let new = match written {
            Ok(new) => new,
            Err(e) => {
                if self.mirror_retry.is_empty() {
                    tracing::error!(entry = r.entry_id(), error = %e,
                        "cannot copy the CTI leader's escalation record into the audit log; kept and retried");
                }
                return false;
            }
        };
        let queue = match r {
            Record::Entry { entry } => {
                self.meta
                    .insert(entry.id, (entry.queue.clone(), entry.stage_name.clone()));
                self.next_id = self.next_id.max(entry.id);
                Some(entry.queue.clone())
            }
            Record::Mark {
                entry,
                action,
                result,
                ..
            } => {
                if new && action.is_some() && result != PENDING {
                    self.count(*entry, result);
                }
                self.meta.get(entry).map(|(q, _)| q.clone())
            }
        };
        if new {
            self.outbox.push(r.entry_id());
        }
        if let Some(q) = queue.and_then(|q| engine.find_queue(&q)) {
            self.rebuild(engine, q);
        }
        true
    }

    /// This instance holds the `cti` lease and its log holds the
    /// escalation stream: every ladder restarts from the log, exactly as
    /// at start-up, and from now on decides. Acts decided but never
    /// answered run again with the same key, unless the engine's
    /// membership shows them done.
    pub(super) fn lead(&mut self, engine: &mut Engine) {
        if self.role != Role::Following {
            return;
        }
        self.retry_mirror(engine);
        tracing::info!("taking over the site's escalation ladders from the audit log");
        self.role = Role::Leading;
        self.clear_ladders(engine);
        self.restore_all(engine, true);
        self.sync(engine);
        // Decide now on what the engine shows, not at the next event.
        self.evaluate_all(engine);
        self.sync(engine);
    }

    /// The `cti` lease is lost: actions not yet started are not started
    /// (running ones finish and their results are written and appended),
    /// and the ladders become the log's.
    pub(super) fn follow(&mut self, engine: &mut Engine) {
        if self.role != Role::Leading {
            return;
        }
        tracing::warn!("no longer the site's CTI leader: the ladders follow the escalation stream");
        self.role = Role::Following;
        self.held.clear();
        self.unacked.clear();
        self.rerun.clear();
        for slot in self.acts.values_mut() {
            slot.queued.clear();
        }
        self.clear_ladders(engine);
        self.restore_all(engine, false);
        self.sync(engine);
    }

    fn clear_ladders(&mut self, engine: &mut Engine) {
        for q in 0..self.ladders.len() {
            if self.ladders[q].is_some() {
                // Set again by `sync` where the log rebuilds a ladder.
                engine.set_escalation(q, None);
                self.changed.insert(q);
            }
        }
        self.ladders.clear();
        self.base_plan.clear();
        self.settling.clear();
        self.deadline_of.clear();
        self.deadlines.clear();
        self.leaving.clear();
    }
}
