//! Firing a stage: the step up, in the order its audit entry reads.
//!
//! 1. [`QueueLadder::keep_leaving`]: agents whose sign-out still waits for
//!    a call to end are kept (their sign-out is cancelled) before anyone
//!    new is picked, so the ladder never signs one person out and another
//!    in for the same seat;
//! 2. [`QueueLadder::pick_sign_ins`]: the stage's group, best candidates
//!    first, less the ones kept off the phones and those over the seat
//!    limit; a shortfall becomes advice;
//! 3. [`stage_advice`]: the stage's own advice, sized with Erlang C when
//!    asked;
//! 4. [`QueueLadder::commit_stage`]: the entry, then either a proposal
//!    (advise mode) or the sign-ins and the new active stage.

use super::{
    AWAITING, Act, Active, CANCELLED, Candidate, GroupPlan, Inputs, Mark, OK, Output, PENDING,
    Plan, Proposal, QueueLadder, StagePlan, pick_order, with_for,
};
use crate::config::LadderMode;
use crate::cti::CtiVerb;
use crate::escalation::{ActionRecord, Direction, Entry};

/// What one firing has decided so far.
struct Draft {
    id: u64,
    queue: String,
    advise: bool,
    actions: Vec<ActionRecord>,
    /// (action index, agent) to sign in.
    people: Vec<(usize, String)>,
    /// Agents who were waiting to be signed out and stay instead.
    kept: Vec<String>,
    /// Results for the sign-outs cancelled by keeping.
    marks: Vec<Output>,
}

impl Draft {
    fn push(&mut self, kind: &str, agent: Option<String>, result: &str, detail: Option<String>) {
        self.actions.push(ActionRecord {
            kind: kind.into(),
            agent,
            target_queue: Some(self.queue.clone()),
            result: result.into(),
            detail,
            seats: None,
            at: None,
        });
    }

    /// Advice waits for a decision in advise mode; else it is only said.
    fn advice_result(&self) -> &'static str {
        if self.advise { PENDING } else { OK }
    }
}

impl QueueLadder {
    /// Fires the next stage (see the module doc for the steps).
    pub(super) fn fire(
        &mut self,
        plan: &Plan,
        inp: &Inputs<'_>,
        ids: &mut u64,
        seats_taken: &mut u32,
    ) -> Vec<Output> {
        let k = self.active.len();
        let st = &plan.stages[k];
        *ids += 1;
        let mut d = Draft {
            id: *ids,
            queue: self.queue.clone(),
            advise: plan.mode == LadderMode::Advise,
            actions: Vec::new(),
            people: Vec::new(),
            kept: Vec::new(),
            marks: Vec::new(),
        };
        if let Some(g) = &st.sign_in {
            let want = g.max.map(|m| m as usize).unwrap_or(usize::MAX);
            if !d.advise {
                self.keep_leaving(g, want, inp, &mut d);
            }
            self.pick_sign_ins(plan, g, want, inp, seats_taken, &mut d);
        }
        if let Some(text) = &st.advise {
            stage_advice(plan, st, text, inp, *seats_taken, &mut d);
        }
        self.commit_stage(plan, k, inp, d)
    }

    /// Step 1: agents whose sign-out waits for a call are still here: keep
    /// them rather than sign them out and someone else in.
    fn keep_leaving(&mut self, g: &GroupPlan, want: usize, inp: &Inputs<'_>, d: &mut Draft) {
        let mut i = 0;
        while i < self.leaving.len() && d.kept.len() < want {
            if inp.floor.in_group(&self.leaving[i].agent, &g.group) {
                let l = self.leaving.remove(i);
                d.marks.push(Output::Mark(Mark {
                    entry: l.entry,
                    action: Some(l.action),
                    result: CANCELLED,
                    detail: Some(format!(
                        "kept in the queue: the ladder went back up (entry {})",
                        d.id
                    )),
                    by: None,
                }));
                d.push(
                    "sign_in",
                    Some(l.agent.clone()),
                    OK,
                    Some(format!(
                        "already in the queue; its sign-out (entry {}) was cancelled",
                        l.entry
                    )),
                );
                d.kept.push(l.agent);
            } else {
                i += 1;
            }
        }
    }

    /// Step 2: picks who to sign in from the stage's group, under the seat
    /// limit; says so in advice when fewer than wanted can come.
    fn pick_sign_ins(
        &self,
        plan: &Plan,
        g: &GroupPlan,
        want: usize,
        inp: &Inputs<'_>,
        seats_taken: &mut u32,
        d: &mut Draft,
    ) {
        let pending_detail = d.advise.then(|| AWAITING.to_string());
        let tracked = self.tracked();
        let mut cands: Vec<Candidate> = inp
            .floor
            .candidates(&g.group)
            .into_iter()
            .filter(|c| !tracked.contains(c.agent.as_str()) && !d.kept.contains(&c.agent))
            .collect();
        cands.sort_by(pick_order);
        let eligible = cands.len();
        let keep = (g.keep as usize).min(eligible);
        cands.truncate(eligible - keep);
        let mut seats_left = plan
            .max_added_seats
            .map(|m| m.saturating_sub((inp.seats_used)() + *seats_taken) as usize);
        let mut no_seat = 0usize;
        for c in cands {
            if d.kept.len() + d.people.len() >= want {
                break;
            }
            if c.assignments == 0 {
                if let Some(s) = seats_left.as_mut() {
                    if *s == 0 {
                        no_seat += 1;
                        continue;
                    }
                    *s -= 1;
                }
                *seats_taken += 1;
            }
            d.people.push((d.actions.len(), c.agent.clone()));
            d.push("sign_in", Some(c.agent), PENDING, pending_detail.clone());
        }
        let got = d.kept.len() + d.people.len();
        let result = d.advice_result();
        if got < g.min as usize {
            let mut why = format!(
                "only {got} of the {} wanted from group `{}` can be signed in: {eligible} eligible (logged in, not in the queue)",
                g.min, g.group
            );
            if keep > 0 {
                why.push_str(&format!(", {keep} kept off the phones"));
            }
            if no_seat > 0 {
                why.push_str(&format!(
                    ", {no_seat} left out by the seat limit of {}",
                    plan.max_added_seats.unwrap_or(0)
                ));
            }
            d.push("advise", None, result, Some(why));
        } else if no_seat > 0 {
            d.push(
                "advise",
                None,
                result,
                Some(format!(
                    "seat limit reached: {} seats are in use by the ladder; {no_seat} more eligible from group `{}` not signed in",
                    plan.max_added_seats.unwrap_or(0),
                    g.group
                )),
            );
        }
    }

    /// Step 4: writes the entry, then proposes (advise mode) or signs in
    /// and makes the stage active.
    fn commit_stage(&mut self, plan: &Plan, k: usize, inp: &Inputs<'_>, d: Draft) -> Vec<Output> {
        let st = &plan.stages[k];
        let now = inp.now;
        let advice: Vec<usize> = d
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.kind == "advise")
            .map(|(i, _)| i)
            .collect();
        let entry = Entry {
            id: d.id,
            ts: now,
            queue: self.queue.clone(),
            stage: (k + 1) as u32,
            stage_name: st.name.clone(),
            direction: Direction::Up,
            reason: with_for(st.when.explain(&inp.figures), st.for_ms),
            mode: plan.mode_str().into(),
            actions: d.actions,
            ladder: Some(plan.name.clone()),
            decision: None,
        };
        let mut out = vec![Output::Entry(entry)];
        out.extend(d.marks);
        if d.advise {
            self.proposal = Some(Proposal {
                entry: d.id,
                direction: Direction::Up,
                index: k,
                name: st.name.clone(),
                ts: now,
                expires: now.plus_ms(plan.advice_expiry_ms),
                people: d.people,
                advice,
            });
        } else {
            let mut agents = d.kept;
            for (ix, agent) in d.people {
                out.push(Output::Act(Act {
                    entry: d.id,
                    action: ix,
                    verb: CtiVerb::SignIn,
                    agent: agent.clone(),
                    queue: self.queue.clone(),
                    attempt: 1,
                }));
                agents.push(agent);
            }
            self.active.push(Active {
                index: k,
                name: st.name.clone(),
                since: now,
                entry: d.id,
                agents,
            });
        }
        out
    }
}

/// Step 3: the stage's advice text, sized with Erlang C when the stage asks
/// (`staffing = "erlang_c"`), with the seats in use when a limit is set.
fn stage_advice(
    plan: &Plan,
    st: &StagePlan,
    text: &str,
    inp: &Inputs<'_>,
    seats_taken: u32,
    d: &mut Draft,
) {
    let (detail, seats) = if st.erlang_c {
        match (inp.required_agents)() {
            Some(req) => {
                let li = inp.figures.logged_in.max(0.0) as u32;
                let more = req.saturating_sub(li);
                (
                    format!(
                        "{text}: {more} more seats (Erlang C: {req} agents needed for the service-level target, {li} logged in)"
                    ),
                    Some(more),
                )
            }
            None => (
                format!("{text} (Erlang C cannot size it yet: no handle time measured)"),
                None,
            ),
        }
    } else {
        (text.to_string(), None)
    };
    let detail = match plan.max_added_seats {
        Some(max) => format!(
            "{detail} [added seats in use: {} of {max}]",
            ((inp.seats_used)() + seats_taken).min(max)
        ),
        None => detail,
    };
    let result = d.advice_result();
    d.push("advise", None, result, Some(detail));
    if let Some(a) = d.actions.last_mut() {
        a.seats = seats;
    }
}
