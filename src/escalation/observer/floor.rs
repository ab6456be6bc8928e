//! What the ladder asks of the floor (who may be signed in, who is on a
//! call, who is in a group), answered from the engine's agent states.

use super::*;

/// The answers to the ladder's questions, from the engine.
pub(super) struct EngineFloor<'a> {
    pub(super) engine: &'a Engine,
    pub(super) q: usize,
    pub(super) assignments: &'a HashMap<String, u32>,
    pub(super) cti: &'a CtiRegistry,
}

impl EngineFloor<'_> {
    /// Not in the queue, as far as signing in goes: not a member, or a
    /// member that a pause-mode sign-out left paused there (static members
    /// can only be signed out that way). A member paused in this queue
    /// alone counts (the ladder pauses per queue); a member paused
    /// everywhere counts only with the sign-out pause reason, so that a
    /// lunch break is never cut short.
    fn signed_out(&self, a: &crate::state::Agent) -> bool {
        if !a.queues.contains(&self.q) {
            return true;
        }
        if a.status_in(self.q) != AgentStatus::Paused {
            return false;
        }
        let Some(reason) = self.cti.sign_out_pause_reason(a.source.as_deref()) else {
            return false;
        };
        match a.status {
            AgentStatus::Available => a.paused_in.contains(&self.q),
            AgentStatus::Paused => a
                .reason
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(&reason)),
            _ => false,
        }
    }
}

impl Floor for EngineFloor<'_> {
    fn candidates(&self, group: &str) -> Vec<Candidate> {
        let e = self.engine;
        (0..e.agent_count())
            .map(|a| e.agent(a))
            .filter(|a| {
                a.status != AgentStatus::LoggedOut
                    // A post's auto cover has this one (signed in or on
                    // the wire): never signed in twice by the two rules.
                    && !a.held.cover
                    && a.groups.iter().any(|g| g == group)
                    && self.signed_out(a)
            })
            .map(|a| Candidate {
                agent: a.id.to_string(),
                status: a.status,
                since: a.since,
                assignments: self.assignments.get(&*a.id).copied().unwrap_or(0),
            })
            .collect()
    }

    fn busy(&self, agent: &str) -> bool {
        self.engine.find_agent(agent).is_some_and(|a| {
            matches!(
                self.engine.agent(a).status,
                AgentStatus::Ringing | AgentStatus::OnCall
            )
        })
    }

    fn in_group(&self, agent: &str, group: &str) -> bool {
        self.engine
            .find_agent(agent)
            .is_some_and(|a| self.engine.agent(a).groups.iter().any(|g| g == group))
    }
}

/// Whether the engine has positive evidence that an act is already done,
/// so that a takeover need not run it again: a sign-in whose agent the
/// engine shows in the queue; a sign-out whose agent the engine saw in the
/// queue while the ladder held it there (`seen`, see
/// [`LadderObserver::observe_membership`]) and now shows out of it. Not
/// shown in it at all is no evidence: a webhook phone system may report no
/// membership, so a sign-in it carried out is never seen, and skipping the
/// sign-out would leave the agent signed in. The act then runs again with
/// the same key (the receiver drops a repeat). Unknown agents and queues:
/// `None` (act).
pub(super) fn already_done(
    engine: &Engine,
    cti: &CtiRegistry,
    seen: &HashMap<usize, HashSet<String>>,
    verb: CtiVerb,
    agent: &str,
    queue: &str,
) -> Option<String> {
    let q = engine.find_queue(queue)?;
    let a = engine.agent(engine.find_agent(agent)?);
    let assignments = HashMap::new();
    let floor = EngineFloor {
        engine,
        q,
        assignments: &assignments,
        cti,
    };
    match (verb, floor.signed_out(a)) {
        (CtiVerb::SignIn, false) => Some("already in the queue per the phone system".into()),
        (CtiVerb::SignOut, true) if seen.get(&q).is_some_and(|s| s.contains(agent)) => {
            Some("already out of the queue per the phone system".into())
        }
        _ => None,
    }
}

impl LadderObserver {
    /// Notes which of the agents queue `q`'s ladder holds the engine now
    /// shows as members of `q`: evidence, later, that one shown out of it
    /// has left (see [`already_done`]). Called after each event of the
    /// queue (membership events and relists name it) and after a rebuild;
    /// only the ladder's few agents are looked at.
    pub(super) fn observe_membership(&mut self, engine: &Engine, q: usize) {
        // Only a cluster's takeover asks (a single node restarts, it does
        // not take over): no cost on a single node's hot path.
        if self.role == Role::Single {
            return;
        }
        let Some(l) = self.ladders.get(q).and_then(Option::as_ref) else {
            return;
        };
        // Nothing held (the usual case): nothing to look at, nothing allocated.
        if l.is_idle() && !l.has_leaving() {
            return;
        }
        let floor = EngineFloor {
            engine,
            q,
            assignments: &self.assignments,
            cti: &self.cti,
        };
        for agent in l.tracked() {
            let member = engine
                .find_agent(agent)
                .is_some_and(|i| !floor.signed_out(engine.agent(i)));
            if member && !self.seen_in.get(&q).is_some_and(|s| s.contains(agent)) {
                self.seen_in.entry(q).or_default().insert(agent.to_string());
            }
        }
    }
}
