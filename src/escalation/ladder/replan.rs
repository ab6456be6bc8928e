//! A configuration reload reaching one queue's ladder while it may be in the
//! middle of an escalation. The rule is that a reload never strands anyone:
//! - the ladder keeps whom it signed in (its stack of active stages), and
//!   the new plan of the same name takes over: new `when`, `for`, release
//!   rule and mode apply to the next decision;
//! - an active stage that the new plan no longer has at its place (removed,
//!   or moved below one that is not active) is released now, newest first,
//!   through the normal sign-out path (an agent on a call is signed out
//!   when the call ends), with an audit entry that says why;
//! - a ladder removed from the configuration releases all its stages the
//!   same way;
//! - advice waiting for approval about a stage that changed place or went
//!   away expires ("superseded by a configuration reload"), so nobody
//!   approves a decision the configuration no longer makes.

use std::sync::Arc;

use super::{Active, Direction, Entry, Floor, Mark, Output, Plan, QueueLadder};
use crate::time::Ts;

/// Detail on marks and reason on entries this module writes.
const RELOADED: &str = "superseded by a configuration reload";

impl QueueLadder {
    /// Takes the reloaded plans (`plan_named` answers by ladder name; `None`:
    /// no longer configured). Returns what to write and do, in order.
    pub fn replan(
        &mut self,
        plan_named: &dyn Fn(&str) -> Option<Arc<Plan>>,
        now: Ts,
        floor: &dyn Floor,
        ids: &mut u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(Some(next)) = &self.next_plan {
            self.next_plan = Some(plan_named(&next.name));
        }
        let Some(old) = self.plan.clone() else {
            return out;
        };
        let new = plan_named(&old.name);
        // The active stages the new plan still has at their place, as a
        // prefix of its stages; the rest are released.
        let mut kept: Vec<Active> = Vec::new();
        let mut dropped: Vec<Active> = Vec::new();
        for mut a in std::mem::take(&mut self.active) {
            let fits = new
                .as_ref()
                .and_then(|p| p.stages.get(kept.len()))
                .is_some_and(|s| s.name == a.name);
            if fits {
                a.index = kept.len();
                kept.push(a);
            } else {
                dropped.push(a);
            }
        }
        // A proposal about a stage that moved or went away lapses.
        if let Some(p) = &self.proposal {
            let still = match p.direction {
                Direction::Up => {
                    p.index == kept.len()
                        && new
                            .as_ref()
                            .and_then(|n| n.stages.get(p.index))
                            .is_some_and(|s| s.name == p.name)
                }
                Direction::Down => kept.get(p.index).is_some_and(|a| a.name == p.name),
            };
            if !still {
                out.extend(self.expire_as(RELOADED));
            }
        }
        self.active = kept;
        for a in dropped.into_iter().rev() {
            out.extend(self.release_removed(&old, a, now, floor, ids));
        }
        match new {
            Some(p) => self.plan = Some(p),
            None if self.is_idle() => {
                self.plan = None;
                self.up.reset();
                self.down.reset();
            }
            // Unreachable in practice (every stage of a removed ladder is
            // dropped), but an escalation must never lose its plan.
            None => {}
        }
        out
    }

    /// Releases one stage that the configuration no longer has.
    fn release_removed(
        &mut self,
        old: &Plan,
        a: Active,
        now: Ts,
        floor: &dyn Floor,
        ids: &mut u64,
    ) -> Vec<Output> {
        *ids += 1;
        let id = *ids;
        let mut actions = Vec::new();
        let mut people = Vec::new();
        for agent in &a.agents {
            people.push((actions.len(), agent.clone()));
            let detail = floor.busy(agent).then(|| super::ON_A_CALL.to_string());
            actions.push(self.sign_out_record(agent, detail));
        }
        let entry = Entry {
            id,
            ts: now,
            queue: self.queue.clone(),
            stage: (a.index + 1) as u32,
            stage_name: a.name.clone(),
            direction: Direction::Down,
            reason: format!(
                "stage `{}` of ladder `{}` removed by a configuration reload",
                a.name, old.name
            ),
            mode: "auto".into(),
            actions,
            ladder: Some(old.name.clone()),
            decision: None,
        };
        let mut out = vec![Output::Entry(entry)];
        out.extend(self.sign_out(id, people, now, floor, false));
        out
    }

    /// [`QueueLadder::expire`] with another detail.
    fn expire_as(&mut self, detail: &str) -> Vec<Output> {
        let mut out = self.expire();
        for o in &mut out {
            if let Output::Mark(Mark { detail: d, .. }) = o {
                *d = Some(detail.to_string());
            }
        }
        out
    }
}
