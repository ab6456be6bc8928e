//! One agent's live state. An agent has one state across all its queues
//! (a person is either on a call or not); membership is per queue.

use std::sync::Arc;

use crate::event::AgentStatus;
use crate::time::Ts;

/// Which of the rules that sign people in hold an agent (see
/// [`Agent::held`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holds {
    /// A queue's escalation ladder: signed in, proposed, or leaving.
    pub ladder: bool,
    /// A post's auto cover: signing in, in, leaving, or signing out.
    pub cover: bool,
}

#[derive(Debug)]
pub struct Agent {
    pub id: Arc<str>,
    pub name: Option<String>,
    pub interface: Option<String>,
    /// The CTI source that signs this agent in and out.
    pub source: Option<String>,
    pub groups: Vec<String>,
    pub status: AgentStatus,
    /// Pause code, when paused.
    pub reason: Option<String>,
    pub since: Ts,
    /// Queue indices this agent is a member of.
    pub queues: Vec<usize>,
    /// Queues (indices, members only) this agent is paused in by itself.
    pub paused_in: Vec<usize>,
    /// The call the agent is on.
    pub call: Option<String>,
    /// The queue of the last completed call, while in wrap-up: after-call
    /// work is charged to it when wrap-up ends.
    pub wrap_queue: Option<usize>,
    /// When an engine-timed wrap-up ends (queues with `wrap_up` set).
    pub wrap_until: Option<Ts>,
    pub signed_in_by_escalation: bool,
    /// Held by a rule that signs people in (the ladder or a post's auto
    /// cover): signed in by it, or chosen and on the wire. The other rule
    /// does not pick an agent one rule holds, so nobody is signed in twice
    /// and neither rule signs out someone the other signed in. Not shown
    /// and not checkpointed: each rule derives it from its own log.
    pub held: Holds,
    /// Schedule adherence, set by the adherence observer
    /// (`crate::floor::adherence`); `None`: nothing scheduled now.
    pub adherence: Option<crate::state::view::AdherenceMark>,
}

impl Agent {
    pub fn new(id: &str, now: Ts) -> Self {
        Agent {
            id: Arc::from(id),
            name: None,
            interface: None,
            source: None,
            groups: Vec::new(),
            status: AgentStatus::LoggedOut,
            reason: None,
            since: now,
            queues: Vec::new(),
            paused_in: Vec::new(),
            call: None,
            wrap_queue: None,
            wrap_until: None,
            signed_in_by_escalation: false,
            held: Holds::default(),
            adherence: None,
        }
    }
}

impl Agent {
    /// The state queue `q` counts this member in: an available agent paused
    /// in `q` alone is paused there (busy states stay what they are).
    /// Takes the configured profile (`[[agents]]`): name, CTI interface and
    /// source, groups. Returns whether anything changed.
    pub fn set_profile(&mut self, p: super::AgentProfile) -> bool {
        let changed = self.name != p.name
            || self.interface != p.interface
            || self.source != p.source
            || self.groups != p.groups;
        if changed {
            self.name = p.name;
            self.interface = p.interface;
            self.source = p.source;
            self.groups = p.groups;
        }
        changed
    }

    pub fn status_in(&self, q: usize) -> AgentStatus {
        self.status_in_if(self.status, q)
    }

    /// [`Agent::status_in`] were the agent's own state `status`.
    pub fn status_in_if(&self, status: AgentStatus, q: usize) -> AgentStatus {
        if status == AgentStatus::Available && self.paused_in.contains(&q) {
            AgentStatus::Paused
        } else {
            status
        }
    }
}
