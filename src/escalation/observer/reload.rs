//! A configuration reload reaching the ladders. What each queue's ladder
//! does with its own escalation is [`QueueLadder::replan`]'s rule (keep
//! whom it signed in, release removed stages newest first); here the
//! observer swaps its compiled plans and schedules, re-resolves each
//! queue's own ladder (a queue may have been given another one), and runs
//! the outputs through the same path as any decision: written to the audit
//! log first, then acted on.

use super::{LadderObserver, compile_plans};
use crate::config::Config;
use crate::escalation::ladder::QueueLadder;
use crate::state::Engine;

impl LadderObserver {
    pub(super) fn reload(&mut self, engine: &mut Engine, cfg: &Config) {
        let (plans, time_dependent) = match compile_plans(cfg) {
            Ok(p) => p,
            Err(e) => {
                // The file was validated before it got here; a ladder that
                // still fails to compile keeps the old plans running.
                tracing::error!(error = %e, "reloaded ladders do not compile; keeping the old ones");
                return;
            }
        };
        self.plans = plans;
        self.time_dependent = time_dependent;
        self.schedules = cfg.schedules.clone();
        self.schedule_plans = cfg
            .schedules
            .iter()
            .map(|s| s.ladder.as_ref().and_then(|n| self.plans.get(n).cloned()))
            .collect();
        let plans = self.plans.clone();
        for q in 0..self.ladders.len() {
            self.base_plan[q] = engine
                .queue(q)
                .params
                .ladder
                .as_ref()
                .and_then(|n| plans.get(n).cloned());
            let floor = super::EngineFloor {
                engine,
                q,
                assignments: &self.assignments,
                cti: &self.cti,
            };
            let outs = match self.ladders[q].as_mut() {
                Some(l) => {
                    QueueLadder::replan(l, &|n| plans.get(n).cloned(), engine.now(), &floor, {
                        &mut self.next_id
                    })
                }
                None => continue,
            };
            self.changed.insert(q);
            if !outs.is_empty() {
                tracing::info!(queue = %engine.queue(q).name, outputs = outs.len(),
                    "escalation follows the reloaded ladder");
                self.process(engine, outs);
            }
        }
        self.sync(engine);
        // The next decision uses the new rules at once.
        self.evaluate_all(engine);
        self.sync(engine);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::config::Config;
    use crate::engine_thread::Driver;
    use crate::event::{AgentStatus, Event, EventKind};
    use crate::sources::RejectCounter;
    use crate::state::Engine;
    use crate::time::Ts;

    fn cfg(first_when: &str) -> Config {
        Config::parse(
            "t.toml",
            &format!(
                r#"[[queues]]
name = "hotline"
ladder = "emergency"
[[agents]]
id = "a1"
groups = ["first"]
[[ladders]]
name = "emergency"
release_when = "waiting < 1"
[[ladders.stages]]
name = "first"
when = "{first_when}"
for = "0s"
sign_in = {{ group = "first" }}
"#
            ),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn ev(ts: i64, kind: EventKind) -> Event {
        Event { ts: Ts(ts), kind }
    }

    #[test]
    fn the_next_decision_uses_the_reloaded_rule() {
        let t0 = 1_800_000_000_000;
        let old = cfg("waiting > 2");
        let mut d = Driver::new(
            Engine::starting_at(old.engine_config(), Ts(t0)),
            Arc::new(RejectCounter::default()),
        );
        d.observers = crate::daemon::replay_observers(&old);
        d.apply(
            "t",
            ev(
                t0,
                EventKind::AgentState {
                    agent: "a1".into(),
                    status: AgentStatus::Available,
                    reason: None,
                    queue: None,
                },
            ),
        );
        let enq = |c: &str, ts| {
            ev(
                ts,
                EventKind::CallEnqueued {
                    call: c.into(),
                    queue: "hotline".into(),
                    caller: None,
                    priority: None,
                },
            )
        };
        d.apply("t", enq("c1", t0 + 1000));
        let q = d.engine.find_queue("hotline").unwrap();
        assert!(d.engine.queue_view(q).escalation.is_none());
        d.reconfigure(&cfg("waiting > 0"));
        d.apply("t", enq("c2", t0 + 2000));
        let v = d.engine.queue_view(q);
        let e = v
            .escalation
            .expect("the first stage fired under the new rule");
        assert_eq!(e.stage_name, "first");
        assert_eq!(e.signed_in, vec!["a1".to_string()]);
    }
}
