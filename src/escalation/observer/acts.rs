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
        self.actions
            .start(&self.cti, source.as_deref(), req, move |outcome| Done {
                act: a,
                outcome,
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
            if !manual && let Some(l) = self.ladders.get_mut(q).and_then(Option::as_mut) {
                l.handle_result(&act, outcome.ok, now);
            }
            self.changed.insert(q);
        }
        let next = self.acts.get_mut(&act.agent).and_then(|s| {
            s.running = None;
            s.queued.pop_front()
        });
        if let Some(n) = next {
            self.start(engine, n);
        }
    }
}
