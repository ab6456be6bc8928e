//! Reconciling the mapper with mod_callcenter's lists: what the lists say
//! happened to calls whose events were lost, the `QueueResync` itself, and
//! the `members-count` cross-check that asks for a resync when events went
//! missing.

use super::*;

impl Mapper {
    pub(super) fn cross_check(&mut self, ev: &CcEvent<'_>) {
        if !self.check_counts || !self.baseline {
            return;
        }
        if ev.get(Field::Selection).as_deref() != Some("Single-Queue") {
            return;
        }
        let (Some(queue), Some(theirs)) = (ev.text(Field::Queue), ev.int(Field::Count)) else {
            return;
        };
        let ours = self.waiting_in(&queue) as i64;
        let n = self.mismatches.entry(queue.to_string()).or_insert(0);
        if ours == theirs {
            *n = 0;
            return;
        }
        // One mismatch can be a race between mod_callcenter's SQL count and
        // its events; two in a row mean we lost events.
        *n += 1;
        tracing::debug!(%queue, ours, theirs, "members-count differs from tracked callers");
        if *n >= 2 {
            *n = 0;
            self.resync_wanted = Some(format!(
                "members-count for {queue} is {theirs}, we track {ours}"
            ));
        }
    }

    /// Sends what `queue list members` (and the agents' `last_bridge_end`)
    /// tell about calls whose events were lost, in time order, before the
    /// queue's `QueueResync`:
    /// - a `Waiting`/`Trying` or `Answered` caller never seen: an arrival at
    ///   `joined_epoch`;
    /// - `Answered` and not yet answered here: the answer at
    ///   `bridge_epoch`, anchored at the enqueue so the wait is
    ///   `bridge_epoch - joined_epoch`, as mod_callcenter counts it;
    /// - `Abandoned` and not yet ended here: mod_callcenter stores every
    ///   unanswered exit so; a wait of at least the queue's `max-wait-time`
    ///   is the timeout, anything else an abandon (hang-up), at
    ///   `abandoned_epoch`. These rows linger, so ended calls are
    ///   remembered and never counted twice;
    /// - a call answered here whose row is gone and whose agent's
    ///   `last_bridge_end` is later than the answer: completed then, with
    ///   the agent's wrap-up.
    fn outcomes_from_lists(&mut self, ql: &QueueLists, now: Ts, out: &mut Vec<Mapped>) {
        let mut evs: Vec<Event> = Vec::new();
        let q = &ql.queue;
        for m in &ql.members {
            let answered = m.state == "Answered" && m.bridge_epoch > 0;
            let abandoned = m.state == "Abandoned";
            if self.ended.contains_key(&m.uuid) {
                if m.is_waiting() {
                    // Resumed (`abandoned-resume-allowed`): a new arrival.
                    self.ended.remove(&m.uuid);
                } else {
                    continue;
                }
            }
            if !(m.is_waiting() || answered || abandoned) {
                continue;
            }
            if !self.calls.contains_key(&m.uuid)
                && let Some(until) = self.counted_until
            {
                let decided_s = if answered {
                    m.bridge_epoch
                } else if abandoned && m.abandoned_epoch > 0 {
                    m.abandoned_epoch
                } else {
                    i64::MAX
                };
                if decided_s != i64::MAX
                    && Ts::from_secs(decided_s) < until.plus_ms(-COUNTED_MARGIN_MS)
                {
                    // Counted before: remember it so a lingering row stays
                    // skipped, and send nothing.
                    self.ended.insert(m.uuid.clone(), Ts::from_secs(decided_s));
                    continue;
                }
            }
            if !self.calls.contains_key(&m.uuid) {
                let joined = m.joined();
                evs.push(Event {
                    ts: joined,
                    kind: EventKind::CallEnqueued {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                        caller: (!m.cid_number.is_empty()).then(|| m.cid_number.clone()),
                        priority: None,
                    },
                });
                self.calls.insert(
                    m.uuid.clone(),
                    Call {
                        queue: q.clone(),
                        enqueued: joined,
                        anchor_s: joined.0.div_euclid(1000),
                        phase: Phase::Waiting,
                        pending: None,
                        counted: true,
                    },
                );
            }
            let Some(c) = self.calls.get_mut(&m.uuid) else {
                continue;
            };
            if c.phase != Phase::Waiting || c.queue != *q {
                continue;
            }
            let joined_s = if m.rejoined_epoch > 0 {
                m.rejoined_epoch
            } else {
                m.joined_epoch
            };
            let anchored = |at: i64| {
                c.enqueued
                    .plus_ms(at.saturating_sub(joined_s).max(0).saturating_mul(1000))
            };
            if answered {
                let ts = anchored(m.bridge_epoch);
                c.pending = None;
                c.phase = Phase::Answered {
                    agent: m.serving_agent.clone(),
                    answered: ts,
                    answered_s: m.bridge_epoch,
                };
                evs.push(Event {
                    ts,
                    kind: EventKind::CallAnswered {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                        agent: m.serving_agent.clone(),
                    },
                });
                self.agent(&m.serving_agent).pending = None;
            } else if abandoned {
                let left = if m.abandoned_epoch > 0 {
                    m.abandoned_epoch
                } else {
                    joined_s
                };
                let ts = anchored(left);
                let timed_out = ql.max_wait_s > 0 && left.saturating_sub(joined_s) >= ql.max_wait_s;
                let kind = if timed_out {
                    EventKind::CallExited {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                        reason: ExitReason::Timeout,
                    }
                } else {
                    EventKind::CallAbandoned {
                        call: m.uuid.clone(),
                        queue: q.clone(),
                    }
                };
                self.calls.remove(&m.uuid);
                self.ended.insert(m.uuid.clone(), ts);
                evs.push(Event { ts, kind });
            }
        }
        // Answered calls whose bridge ended while we were away: completed at
        // the agent's `last_bridge_end`, then its wrap-up, in time order
        // with the rest (the agent may have answered the next caller since;
        // FreeSWITCH offers none during a wrap-up). A wrap-up still running
        // at `now` goes on from the lists' `last_bridge_end` (see
        // `apply_resync`), ended by the usual timer.
        let listed: std::collections::HashSet<&str> =
            ql.members.iter().map(|m| m.uuid.as_str()).collect();
        let ends: HashMap<&str, i64> = ql
            .agents
            .iter()
            .map(|r| (r.name.as_str(), r.last_bridge_end))
            .collect();
        let gone: Vec<(String, String, Ts)> = self
            .calls
            .iter()
            .filter(|(id, c)| c.queue == *q && c.counted && !listed.contains(id.as_str()))
            .filter_map(|(id, c)| match &c.phase {
                Phase::Answered {
                    agent,
                    answered,
                    answered_s,
                } => ends
                    .get(agent.as_str())
                    .filter(|end| **end >= *answered_s)
                    .map(|end| {
                        let ts =
                            answered.plus_ms(end.saturating_sub(*answered_s).saturating_mul(1000));
                        (id.clone(), agent.clone(), ts)
                    }),
                _ => None,
            })
            .collect();
        for (call, agent, end) in gone {
            self.calls.remove(&call);
            self.ended.insert(call.clone(), end);
            evs.push(Event {
                ts: end,
                kind: EventKind::CallCompleted {
                    call,
                    queue: q.clone(),
                    agent: agent.clone(),
                },
            });
            let wrap = self.wrap_ms(&agent, q);
            if wrap > 0 {
                evs.push(Event {
                    ts: end,
                    kind: EventKind::AgentState {
                        agent: agent.clone(),
                        status: AgentStatus::WrapUp,
                        reason: None,
                        queue: Some(q.clone()),
                    },
                });
            }
            if end.plus_ms(wrap) <= now {
                evs.push(Event {
                    ts: end.plus_ms(wrap),
                    kind: EventKind::AgentState {
                        agent,
                        status: AgentStatus::Available,
                        reason: None,
                        queue: None,
                    },
                });
            }
        }
        // Stable: a completion stays before the wrap-up it starts.
        evs.sort_by_key(|e| e.ts);
        out.extend(evs.into_iter().map(Ok));
    }

    /// Applies a resync: updates the agent and call models from the lists and
    /// returns one `QueueResync` per queue, stamped `ts`.
    pub fn apply_resync(&mut self, ts: Ts, lists: Vec<QueueLists>, out: &mut Vec<Mapped>) {
        self.handle_timeout(ts, out);
        self.baseline = true;
        self.mismatches.clear();
        for ql in lists {
            for row in &ql.agents {
                let a = self.agent(&row.name);
                a.status = FsStatus::parse(&row.status);
                a.state = FsState::parse(&row.state);
                let ms = |s: i64| Some(s.max(0) * 1000);
                a.learned = AgentTimers {
                    wrap_up_ms: ms(row.wrap_up_time),
                    reject_delay_ms: ms(row.reject_delay_time),
                    busy_delay_ms: ms(row.busy_delay_time),
                    no_answer_delay_ms: ms(row.no_answer_delay_time),
                };
                a.after_call = a.state == FsState::Idle && row.last_bridge_end > 0;
                a.ready_until = (row.ready_time > 0)
                    .then(|| Ts::from_secs(row.ready_time))
                    .filter(|t| *t > ts);
            }
            // Wrap-up needs the queue for the per-queue override.
            for row in &ql.agents {
                let wrap = self.wrap_ms(&row.name, &ql.queue);
                let a = self.agent(&row.name);
                a.wrap_until = (row.last_bridge_end > 0 && wrap > 0)
                    .then(|| Ts::from_secs(row.last_bridge_end).plus_ms(wrap))
                    .filter(|t| *t > ts);
                if a.wrap_until.is_some() {
                    a.wrap_queue = Some(ql.queue.clone());
                }
            }
            // Membership: the tiers (an agent row without a tier cannot be
            // listed, but a tier may name a deleted agent: skip it).
            let listed: HashMap<&str, &AgentRow> =
                ql.agents.iter().map(|r| (r.name.as_str(), r)).collect();
            let mut names: Vec<&str> = ql
                .tiers
                .iter()
                .map(|t| t.agent.as_str())
                .filter(|a| listed.contains_key(a))
                .collect();
            if ql.tiers.is_empty() {
                names = ql.agents.iter().map(|r| r.name.as_str()).collect();
            }
            names.dedup();
            let mut members = Vec::with_capacity(names.len());
            for name in names {
                let Some(a) = self.agents.get_mut(name) else {
                    continue;
                };
                let (status, reason) = a.derive(ts).unwrap_or((AgentStatus::Available, None));
                a.emitted = Some((status, reason.clone()));
                let next = [a.wrap_until, a.ready_until].into_iter().flatten().min();
                members.push(ResyncMember {
                    agent: name.to_string(),
                    status,
                    reason,
                    // mod_callcenter has no per-queue pause.
                    paused_here: false,
                });
                if let Some(t) = next {
                    self.due.insert((t, name.to_string()));
                }
            }
            // Outcomes the lists carry for calls whose events we missed
            // (an outage): answers, hang-ups and timeouts, each counted once,
            // with a caller first seen here counted as an arrival.
            self.outcomes_from_lists(&ql, ts, out);
            // Callers: the listed waiting ones replace what we had.
            let waiting: Vec<&MemberRow> = ql.members.iter().filter(|m| m.is_waiting()).collect();
            let keep: std::collections::HashSet<&str> =
                waiting.iter().map(|m| m.uuid.as_str()).collect();
            let q = ql.queue.clone();
            self.calls.retain(|id, c| {
                c.queue != q || c.phase != Phase::Waiting || keep.contains(id.as_str())
            });
            out.push(Ok(Event {
                ts,
                kind: EventKind::QueueResync {
                    queue: ql.queue,
                    callers: waiting
                        .iter()
                        .map(|m| ResyncCaller {
                            call: m.uuid.clone(),
                            joined: m.joined(),
                        })
                        .collect(),
                    members,
                },
            }));
        }
    }
}
