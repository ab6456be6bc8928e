//! Leading and following in a cluster (docs/cluster.md, "One CTI leader
//! per site"). The leader sends every entry and result it writes to the
//! escalation stream and starts a decision's actions once the stream has
//! its entry; a follower copies the leader's records into its own audit log
//! and rebuilds the touched queue's ladder from it, once per batch of
//! records: a rebuild reads the queue's whole day from the log, and a
//! restarted follower receives every record the stream retains, most of
//! them already held (those change nothing). Taking the lead is a restart
//! from that log; losing it drops the actions not yet started.

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
        if error.is_none() {
            self.stream_max = self.stream_max.max(entry);
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

    /// The escalation stream refused this instance's record: another
    /// instance leads. The record is not the stream's, so it leaves the
    /// log (`unappended_records`, with the reason): a refused entry was
    /// never acted on (its acts wait for the stream); a refused result is
    /// of an action the new leader runs again with the same key. Then
    /// follow.
    pub(super) fn deposed(&mut self, engine: &mut Engine, refused: Record, why: &str) {
        let id = refused.entry_id();
        let set_aside = match &refused {
            Record::Entry { .. } => {
                self.unacked.remove(&id);
                self.held.retain(|a| a.entry != id);
                let reason = format!("not carried out: {why}");
                self.store.set_aside_entry(id, &reason)
            }
            Record::Mark {
                action,
                ts_ms,
                result,
                ..
            } => self
                .store
                .set_aside_result(id, *action, Ts(*ts_ms), result, why),
        };
        match set_aside {
            Ok(true) => {
                tracing::warn!(
                    entry = id,
                    record = refused.subject_token(),
                    "an escalation record the escalation stream refused is set aside (unappended_records)"
                );
                self.outbox.push(id);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(entry = id, error = %e,
                "cannot set aside an escalation record the escalation stream refused"),
        }
        self.follow(engine);
    }

    /// The escalation stream is read to its end (at start-up, and before
    /// taking the lead): this instance's entries from after the oldest
    /// retained record with a higher id than any in the stream were written
    /// by it as leader and never appended (it died first). Never acted on,
    /// not the stream's: they leave the log (`unappended_records`), so
    /// neither its API nor a takeover (which would run their actions again)
    /// sees them. An entry older than the stream's oldest record cannot be
    /// judged and stays.
    pub(super) fn read_to_end(&mut self, engine: &mut Engine, retained_from: Ts) {
        if self.stream.is_none() || self.role != Role::Following {
            return;
        }
        // A minute's margin: an entry's time is event time, the stream's wall time.
        let since = retained_from.plus_ms(60_000);
        let mine = match self.store.entries(None, Some(since), i64::MAX as usize) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the escalation log to compare it with the escalation stream");
                return;
            }
        };
        let mut moved = 0;
        for e in mine.iter().filter(|e| e.id > self.stream_max) {
            let reason = "written by this instance as CTI leader, never appended to the escalation \
                          stream (never acted on): the stream, read to its end, does not have it";
            match self.store.set_aside_entry(e.id, reason) {
                Ok(_) => {
                    tracing::warn!(entry = e.id, queue = %e.queue, stage = %e.stage_name,
                        "an escalation entry this instance wrote but never appended to the escalation stream is set aside (unappended_records); never acted on");
                    self.meta.remove(&e.id);
                    moved += 1;
                }
                Err(err) => tracing::error!(entry = e.id, error = %err,
                    "cannot set aside an escalation entry the escalation stream does not have"),
            }
        }
        if moved > 0 {
            self.dirty.clear();
            self.clear_ladders(engine);
            self.restore_all(engine, false);
            self.sync(engine);
        }
    }

    /// Rebuilds queue `q`'s ladder from the audit log, its outputs
    /// discarded (a follower's ladder is the leader's log).
    fn rebuild(&mut self, engine: &mut Engine, q: usize) {
        self.rebuilds += 1;
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

    /// Rebuilds the ladders of the queues mirrored records changed since
    /// the last call: once per batch, before the ladders are published.
    pub(super) fn rebuild_mirrored(&mut self, engine: &mut Engine) {
        for q in std::mem::take(&mut self.dirty) {
            if self.role == Role::Following {
                self.rebuild(engine, q);
                self.observe_membership(engine, q);
            }
        }
    }

    /// A record of the leader's, copied into the audit log (a follower).
    pub(super) fn mirror(&mut self, engine: &mut Engine, r: Record) {
        if self.role != Role::Following {
            // Another leader's record (this instance's own are not handed
            // over): this one was deposed, and learns it on its next
            // append or renewal; copied in then.
            self.mirror_later.push_back(r);
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

    /// Copies `r` into the audit log and, when the log did not hold it
    /// yet, marks its queue's ladder for a rebuild (`rebuild_mirrored`);
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
                self.stream_max = self.stream_max.max(entry.id);
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
        if !new {
            // Already in the log, so already in the ladder rebuilt from it.
            return true;
        }
        self.outbox.push(r.entry_id());
        if let Some(q) = queue.and_then(|q| engine.find_queue(&q)) {
            self.dirty.insert(q);
        }
        true
    }

    /// This instance holds the `cti` lease and its log holds the
    /// escalation stream: every ladder restarts from the log, exactly as
    /// at start-up, and from now on decides. Acts decided but never
    /// answered run again with the same key, unless the engine has
    /// positive evidence they are done (`floor::already_done`).
    pub(super) fn lead(&mut self, engine: &mut Engine) {
        if self.role != Role::Following {
            return;
        }
        self.retry_mirror(engine);
        self.mirror_later.clear();
        self.dirty.clear();
        tracing::info!("taking over the site's escalation ladders from the audit log");
        self.role = Role::Leading;
        self.clear_ladders(engine);
        self.restore_all(engine, true);
        self.sync(engine);
        // Decide now on what the engine shows, not at the next event, with
        // the clocks kept while following (`shadow`): a stage that came
        // due while nobody led fires now if its condition still holds.
        self.evaluate_all(engine);
        self.onsets.clear();
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
        let later = std::mem::take(&mut self.mirror_later);
        self.mirror_retry.extend(later);
        self.held.clear();
        self.unacked.clear();
        self.rerun.clear();
        for slot in self.acts.values_mut() {
            slot.queued.clear();
        }
        self.retry_mirror(engine);
        // Its clocks, kept on from here as a follower's (`shadow`).
        for (q, l) in self.ladders.iter().enumerate() {
            if let Some(l) = l {
                self.onsets.insert(q, l.onsets());
            }
        }
        self.dirty.clear();
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
