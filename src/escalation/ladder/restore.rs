//! Restoring a ladder after a restart: the audit log is the ladder's memory
//! (every decision and every result is written before it is acted on), so
//! the stack of active stages, a proposal waiting for a decision and the
//! sign-outs not yet done are rebuilt from it, and acts that were decided
//! but never answered run again.

use std::sync::Arc;

use super::{
    Act, Active, CANCELLED, EXPIRED, FAILED, Leaving, Output, PENDING, Plan, Proposal, QueueLadder,
    REJECTED,
};
use crate::cti::CtiVerb;
use crate::escalation::{Direction, Entry};

impl QueueLadder {
    /// Rebuilds the ladder from its audit log (entries of this queue in id
    /// order, with their results) after a restart. Returns the acts that
    /// were decided but never answered: they run again (CTI actions are
    /// idempotent), so nobody is forgotten and nobody is picked twice.
    pub fn restore(
        &mut self,
        entries: &[Entry],
        plan_named: &dyn Fn(&str) -> Option<Arc<Plan>>,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        for e in entries {
            if e.queue != self.queue || e.mode == "manual" {
                continue;
            }
            if let Some(name) = &e.ladder
                && self.plan.as_ref().map(|p| p.name.as_str()) != Some(name.as_str())
            {
                let p = plan_named(name).unwrap_or_else(|| Arc::new(Plan::release_only(name)));
                let current = self.plan.replace(p);
                if self.next_plan.is_none() {
                    self.next_plan = Some(current);
                }
            }
            let decision = e.decision.as_ref().map(|d| d.result.as_str());
            let advise = e.mode == "advise";
            let index = (e.stage as usize).saturating_sub(1);
            let people = |kind: &str| -> Vec<(usize, String, String)> {
                e.actions
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.kind == kind)
                    .filter_map(|(i, a)| a.agent.clone().map(|ag| (i, ag, a.result.clone())))
                    .collect()
            };
            if let Some(p) = self.proposal.take() {
                // A newer entry exists, so that proposal was answered or
                // lapsed before the restart without its result being kept.
                out.extend(self.expire_restored(p));
            }
            match (e.direction, decision) {
                (Direction::Up, Some(REJECTED)) => self.active.push(Active {
                    index,
                    name: e.stage_name.clone(),
                    since: e.ts,
                    entry: e.id,
                    agents: Vec::new(),
                }),
                (_, Some(EXPIRED)) | (Direction::Down, Some(REJECTED)) => {}
                (dir, None)
                    if advise && (dir == Direction::Up || !people("sign_out").is_empty()) =>
                {
                    let expiry = self.plan.as_ref().map_or(600_000, |p| p.advice_expiry_ms);
                    self.proposal = Some(Proposal {
                        entry: e.id,
                        direction: dir,
                        index,
                        name: e.stage_name.clone(),
                        ts: e.ts,
                        expires: e.ts.plus_ms(expiry),
                        people: people(if dir == Direction::Up {
                            "sign_in"
                        } else {
                            "sign_out"
                        })
                        .into_iter()
                        .map(|(i, a, _)| (i, a))
                        .collect(),
                        advice: e
                            .actions
                            .iter()
                            .enumerate()
                            .filter(|(_, a)| a.kind == "advise")
                            .map(|(i, _)| i)
                            .collect(),
                    });
                }
                (Direction::Up, _) => {
                    let mut agents = Vec::new();
                    for (i, agent, result) in people("sign_in") {
                        match result.as_str() {
                            FAILED | REJECTED | EXPIRED | CANCELLED => continue,
                            PENDING => out.push(Output::Act(Act {
                                entry: e.id,
                                action: i,
                                verb: CtiVerb::SignIn,
                                agent: agent.clone(),
                                queue: self.queue.clone(),
                                attempt: 1,
                            })),
                            _ => {}
                        }
                        agents.push(agent);
                    }
                    self.active.push(Active {
                        index,
                        name: e.stage_name.clone(),
                        since: e.decision.as_ref().map_or(e.ts, |d| d.ts),
                        entry: e.id,
                        agents,
                    });
                }
                (Direction::Down, _) => {
                    if let Some(pos) = self.active.iter().rposition(|a| a.index == index) {
                        self.active.remove(pos);
                    }
                    for (i, agent, result) in people("sign_out") {
                        if result == PENDING {
                            self.leaving.push(Leaving {
                                entry: e.id,
                                action: i,
                                agent,
                                attempt: 1,
                                at: e.ts,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    fn expire_restored(&mut self, p: Proposal) -> Vec<Output> {
        self.proposal = Some(p);
        let mut out = self.expire();
        for o in &mut out {
            if let Output::Mark(m) = o {
                m.detail = Some("superseded before a restart".into());
            }
        }
        out
    }
}
