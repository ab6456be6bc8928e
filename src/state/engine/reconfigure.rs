//! A configuration reload reaching the engine. Figures already counted are
//! facts about calls that happened under the old settings, so they stay as
//! they are; new settings judge what happens from now on:
//! - a new SL threshold, target, short-abandon threshold or wrap-up judges
//!   calls that leave the queue after the reload (a caller already waiting
//!   is judged when they leave, by the threshold then in force);
//! - a new formula recomputes the shown service level from the same counts
//!   (the counts of every variant are kept, only the choice changes);
//! - a shorter rolling window drops outcomes at the next tick, a longer one
//!   grows forward (what had already expired is gone);
//! - a new interval length takes effect at the next interval boundary: the
//!   interval in progress closes where it was going to, so no interval
//!   record is cut short or doubled.
//!
//! The agent directory (names, interfaces, CTI source, groups) is replaced;
//! an agent removed from the config keeps its live state (events still name
//! it) and loses its configured profile. The time zone is not reloaded
//! (intervals and "today" are aligned to it): the caller reports it as
//! needing a restart.

use super::Engine;
use crate::state::EngineConfig;

impl Engine {
    /// Applies `cfg` without losing state; see the module doc for what
    /// takes effect when.
    pub fn reconfigure(&mut self, mut cfg: EngineConfig) {
        // Intervals and days were cut in the old zone; keep it.
        cfg.zone = self.cfg.zone.clone();
        self.cfg = cfg;
        for q in 0..self.queues.len() {
            let params = self.cfg.queue_params(&self.queues[q].name);
            if params != self.queues[q].params {
                self.queues[q].rolling.set_len_ms(params.rolling_ms);
                self.queues[q].params = params;
                self.touch_queue(q);
            }
        }
        // Queues the new config lists and the engine has not seen yet are
        // shown from now on, in configuration order after the known ones.
        let names: Vec<String> = self.cfg.queues.iter().map(|(n, _)| n.clone()).collect();
        for n in names {
            self.queue_index(&n);
        }
        let profiles = self.cfg.agent_index();
        let profiles: Vec<(String, Option<crate::state::AgentProfile>)> = self
            .agents
            .iter()
            .map(|a| (a.id.to_string(), profiles.get(&*a.id).map(|p| (*p).clone())))
            .collect();
        for (i, (_, p)) in profiles.into_iter().enumerate() {
            if self.agents[i].set_profile(p.unwrap_or_default()) {
                self.touch_agent(i);
            }
        }
        let new_agents: Vec<_> = self.cfg.agents.clone();
        for p in new_agents {
            if self.find_agent(&p.id).is_none() {
                let i = self.agent_index(&p.id);
                self.agents[i].set_profile(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{Event, EventKind};
    use crate::state::Engine;
    use crate::state::{EngineConfig, QueueParams};
    use crate::time::Ts;

    fn ev(ts: i64, kind: EventKind) -> Event {
        Event { ts: Ts(ts), kind }
    }

    fn enqueue(call: &str, ts: i64) -> Event {
        ev(
            ts,
            EventKind::CallEnqueued {
                call: call.into(),
                queue: "hotline".into(),
                caller: None,
                priority: None,
            },
        )
    }

    fn answer(call: &str, ts: i64) -> Event {
        ev(
            ts,
            EventKind::CallAnswered {
                call: call.into(),
                queue: "hotline".into(),
                agent: "a1".into(),
            },
        )
    }

    fn cfg(threshold_ms: i64) -> EngineConfig {
        EngineConfig {
            queues: vec![(
                "hotline".into(),
                QueueParams {
                    sl_threshold_ms: threshold_ms,
                    ..QueueParams::default()
                },
            )],
            ..EngineConfig::default()
        }
    }

    #[test]
    fn a_new_threshold_judges_new_calls_and_keeps_counted_ones() {
        let t0 = 1_800_000_000_000;
        let mut e = Engine::starting_at(cfg(20_000), Ts(t0));
        // Answered after 25 s under a 20 s threshold: outside SL.
        e.apply(enqueue("c1", t0)).unwrap();
        e.apply(answer("c1", t0 + 25_000)).unwrap();
        let q = e.find_queue("hotline").unwrap();
        assert_eq!(e.queue_view(q).windows.today.answered_in_sl, 0);
        e.reconfigure(cfg(30_000));
        // The counted call stays outside; a new 25 s call is inside.
        assert_eq!(e.queue_view(q).windows.today.answered_in_sl, 0);
        e.apply(enqueue("c2", t0 + 30_000)).unwrap();
        e.apply(answer("c2", t0 + 55_000)).unwrap();
        let v = e.queue_view(q);
        assert_eq!(v.windows.today.answered, 2);
        assert_eq!(v.windows.today.answered_in_sl, 1);
        assert_eq!(v.sl_threshold_s, 30.0);
    }
}
