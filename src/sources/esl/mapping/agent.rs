//! The small model the mapper keeps per agent: mod_callcenter's status (set
//! by people) and state (set by the engine), and when wrap-up and the
//! reject / busy / no-answer delays end, from which one acdmon state is
//! derived (see the parent module's doc for why).

use super::AgentTimers;
use crate::event::AgentStatus;
use crate::time::Ts;

/// `CC-Agent-Status` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FsStatus {
    Unknown,
    LoggedOut,
    Available,
    OnDemand,
    OnBreak,
    Other(String),
}

impl FsStatus {
    pub(super) fn parse(s: &str) -> FsStatus {
        match s {
            "Logged Out" => FsStatus::LoggedOut,
            "Available" => FsStatus::Available,
            "Available (On Demand)" => FsStatus::OnDemand,
            "On Break" => FsStatus::OnBreak,
            "" | "Unknown" => FsStatus::Unknown,
            other => FsStatus::Other(other.to_string()),
        }
    }
}

/// `CC-Agent-State` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FsState {
    Unknown,
    Waiting,
    Receiving,
    InQueueCall,
    Idle,
    Reserved,
}

impl FsState {
    pub(super) fn parse(s: &str) -> FsState {
        match s {
            "Waiting" => FsState::Waiting,
            "Receiving" => FsState::Receiving,
            "In a queue call" => FsState::InQueueCall,
            "Idle" => FsState::Idle,
            "Reserved" => FsState::Reserved,
            _ => FsState::Unknown,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Agent {
    pub(super) status: FsStatus,
    pub(super) state: FsState,
    /// What the engine believes, so only changes are sent.
    pub(super) emitted: Option<(AgentStatus, Option<String>)>,
    pub(super) wrap_until: Option<Ts>,
    pub(super) wrap_queue: Option<String>,
    pub(super) ready_until: Option<Ts>,
    pub(super) delay_reason: &'static str,
    /// The agent's last bridge just ended: `Idle` (on-demand agents) is
    /// after-call work, not a pause.
    pub(super) after_call: bool,
    pub(super) offering: Option<String>,
    /// The call whose answer awaits confirmation.
    pub(super) pending: Option<String>,
    /// Values from the resync lists.
    pub(super) learned: AgentTimers,
}

impl Agent {
    pub(super) fn new() -> Self {
        Agent {
            status: FsStatus::Unknown,
            state: FsState::Unknown,
            emitted: None,
            wrap_until: None,
            wrap_queue: None,
            ready_until: None,
            delay_reason: "delay",
            after_call: false,
            offering: None,
            pending: None,
            learned: AgentTimers::default(),
        }
    }

    /// The acdmon state this agent is in at `now`; `None` when we know too
    /// little to say.
    pub(super) fn derive(&self, now: Ts) -> Option<(AgentStatus, Option<String>)> {
        // A bridged agent is on the call whatever its status says: a status
        // set during a call (`agent set status … 'On Break'`) takes effect
        // when the call ends, as in mod_callcenter, which keeps the agent
        // "In a queue call" until then.
        if self.state == FsState::InQueueCall {
            return Some((AgentStatus::OnCall, None));
        }
        let available_like = match &self.status {
            FsStatus::LoggedOut => return Some((AgentStatus::LoggedOut, None)),
            FsStatus::OnBreak => return Some((AgentStatus::Paused, Some("On Break".into()))),
            FsStatus::Other(s) => return Some((AgentStatus::Paused, Some(s.clone()))),
            FsStatus::Unknown => false,
            FsStatus::Available | FsStatus::OnDemand => true,
        };
        Some(match self.state {
            FsState::Receiving => (AgentStatus::Ringing, None),
            FsState::InQueueCall => (AgentStatus::OnCall, None),
            FsState::Idle if self.after_call => (AgentStatus::WrapUp, None),
            FsState::Idle => (AgentStatus::Paused, Some("Idle".into())),
            FsState::Waiting | FsState::Reserved | FsState::Unknown => {
                if self.wrap_until.is_some_and(|t| t > now) {
                    (AgentStatus::WrapUp, None)
                } else if self.ready_until.is_some_and(|t| t > now) {
                    (AgentStatus::Paused, Some(self.delay_reason.to_string()))
                } else if !available_like && self.state == FsState::Unknown {
                    return None;
                } else {
                    (AgentStatus::Available, None)
                }
            }
        })
    }
}
