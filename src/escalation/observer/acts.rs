//! CTI actions: one at a time per agent (a sign-out waits for that
//! agent's sign-in on the wire), run on the daemon's runtime or inline in
//! replay, their outcomes folded back into the ladder and the log.

use super::*;

impl LadderObserver {
    pub(super) fn enqueue(&mut self, engine: &Engine, a: Act) {
        let slot = self.acts.entry(a.agent.clone()).or_default();
        if slot.running.is_some() {
            slot.queued.push_back(a);
        } else {
            self.start(engine, a);
        }
    }

    pub(super) fn start(&mut self, engine: &Engine, a: Act) {
        let (req, source) = request_for(engine, a.verb, &a.agent, &a.queue);
        self.acts.entry(a.agent.clone()).or_default().running = Some(a.clone());
        if self.rerun.remove(&(a.entry, a.action))
            && let Some(done) =
                floor::already_done(engine, &self.cti, &self.seen_in, a.verb, &a.agent, &a.queue)
        {
            // A takeover's unanswered act the phone system shows done: the
            // dead leader's call went through before it could record it.
            tracing::info!(agent = %a.agent, queue = %a.queue, verb = ?a.verb, entry = a.entry,
                "not carried out again: {done}");
            self.actions.finish(Done {
                act: a,
                outcome: CtiOutcome::ok(done),
            });
            return;
        }
        let key = action_key(a.entry, a.action, a.attempt);
        self.actions
            .start(&self.cti, source.as_deref(), req, &key, move |outcome| {
                Done { act: a, outcome }
            });
    }

    pub(super) fn run_inline(&mut self, engine: &mut Engine) {
        while self.actions.has_inline() {
            for d in self.actions.take_inline() {
                self.complete(engine, d);
            }
        }
    }

    pub(super) fn complete(&mut self, engine: &mut Engine, d: Done) {
        let now = engine.now();
        let Done { act, outcome } = d;
        let result = if outcome.ok { "ok" } else { "failed" };
        if !outcome.ok {
            tracing::warn!(agent = %act.agent, queue = %act.queue, verb = ?act.verb,
                detail = %outcome.detail, "escalation action failed");
        }
        self.write(
            Write::Mark(
                Mark {
                    entry: act.entry,
                    action: Some(act.action),
                    result,
                    detail: Some(outcome.detail.clone()),
                    by: None,
                },
                now,
            ),
            now,
        );
        if outcome.ok && outcome.apply_membership {
            let (agent, queue) = (act.agent.clone(), act.queue.clone());
            let kind = match act.verb {
                CtiVerb::SignIn => crate::event::EventKind::AgentJoinedQueue { agent, queue },
                CtiVerb::SignOut => crate::event::EventKind::AgentLeftQueue { agent, queue },
            };
            self.membership.push(crate::event::Event { ts: now, kind });
        }
        let manual = self.manual.remove(&act.entry);
        if let Some(q) = engine.find_queue(&act.queue) {
            if self.role == Role::Following {
                // Started while this instance led: its result is written
                // (and goes to the stream); the ladder is the log's.
                self.dirty.insert(q);
            } else if !manual && let Some(l) = self.ladders.get_mut(q).and_then(Option::as_mut) {
                l.handle_result(&act, outcome.ok, now);
            }
            self.changed.insert(q);
        }
        // Only the act on the wire frees the agent's slot (an act failed
        // before it started, e.g. not in the escalation stream, never held it).
        let next = self.acts.get_mut(&act.agent).and_then(|s| {
            if s.running
                .as_ref()
                .is_some_and(|r| r.entry == act.entry && r.action == act.action)
            {
                s.running = None;
                s.queued.pop_front()
            } else {
                None
            }
        });
        if let Some(n) = next {
            self.start(engine, n);
        }
    }
}
