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
        let profile = engine.find_agent(&a.agent).map(|i| engine.agent(i));
        let req = CtiRequest {
            verb: a.verb,
            agent: a.agent.clone(),
            interface: profile
                .and_then(|p| p.interface.clone())
                .unwrap_or_else(|| a.agent.clone()),
            name: profile.and_then(|p| p.name.clone()),
            queue: a.queue.clone(),
        };
        let source = profile.and_then(|p| p.source.clone());
        self.acts.entry(a.agent.clone()).or_default().running = Some(a.clone());
        let cti = match self.cti.for_source(source.as_deref()) {
            Ok(c) => c,
            Err(why) => {
                self.inline_done.push(Done {
                    act: a,
                    outcome: CtiOutcome::failed(why),
                });
                return;
            }
        };
        let fut = cti.execute(req);
        match &self.runner {
            Runner::Spawn(h) => {
                let tx = self.results_tx.clone();
                h.spawn(async move {
                    let outcome = fut.await;
                    let _ = tx.send(Done { act: a, outcome }).await;
                });
            }
            Runner::Inline => {
                let mut fut = fut;
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let outcome = match fut.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(o) => o,
                    std::task::Poll::Pending => CtiOutcome::failed(
                        "this CTI action cannot run without the daemon's runtime",
                    ),
                };
                self.inline_done.push(Done { act: a, outcome });
            }
        }
    }

    pub(super) fn run_inline(&mut self, engine: &mut Engine) {
        while !self.inline_done.is_empty() {
            let done = std::mem::take(&mut self.inline_done);
            for d in done {
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
