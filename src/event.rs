//! The domain events every source produces and the state engine consumes.
//!
//! There is exactly one event type in acdmon: AMI, queue_log, ESL, HEP/SIP and
//! the native JSON feed all translate their wire events into [`Event`]. The
//! public shape is the native feed of contract section 3; [`EventKind::QueueResync`]
//! is internal, used by CTI sources that rebuild a queue after (re)connecting.

use serde::Serialize;

use crate::time::Ts;

/// One domain event, stamped with the time it happened (event time, not
/// arrival time: replay and live ingest share one clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ts: Ts,
    pub kind: EventKind,
}

/// Why a caller left a queue without being answered or abandoning
/// (contract section 3, `call_exited.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    Timeout,
    Empty,
    Key,
    Transfer,
    Other,
}

impl ExitReason {
    pub const ALL: [ExitReason; 5] = [
        ExitReason::Timeout,
        ExitReason::Empty,
        ExitReason::Key,
        ExitReason::Transfer,
        ExitReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Timeout => "timeout",
            ExitReason::Empty => "empty",
            ExitReason::Key => "key",
            ExitReason::Transfer => "transfer",
            ExitReason::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What an agent is doing (contract section 3, `agent_state.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    #[default]
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    WrapUp,
    Paused,
}

impl AgentStatus {
    pub const ALL: [AgentStatus; 6] = [
        AgentStatus::LoggedOut,
        AgentStatus::Available,
        AgentStatus::Ringing,
        AgentStatus::OnCall,
        AgentStatus::WrapUp,
        AgentStatus::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::LoggedOut => "logged_out",
            AgentStatus::Available => "available",
            AgentStatus::Ringing => "ringing",
            AgentStatus::OnCall => "on_call",
            AgentStatus::WrapUp => "wrap_up",
            AgentStatus::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_logged_in(self) -> bool {
        self != AgentStatus::LoggedOut
    }
}

/// A caller found waiting during a resync, with the time it joined
/// (for AMI: `now - Wait` from `QueueEntry`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResyncCaller {
    pub call: String,
    pub joined: Ts,
}

/// A queue member found during a resync.
#[derive(Debug, Clone, PartialEq)]
pub struct ResyncMember {
    pub agent: String,
    pub status: AgentStatus,
    pub reason: Option<String>,
    /// Paused in this queue only (Asterisk pauses a member per queue).
    pub paused_here: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    CallEnqueued {
        call: String,
        queue: String,
        caller: Option<String>,
        priority: Option<i64>,
    },
    CallAnswered {
        call: String,
        queue: String,
        agent: String,
    },
    CallAbandoned {
        call: String,
        queue: String,
    },
    CallExited {
        call: String,
        queue: String,
        reason: ExitReason,
    },
    CallCompleted {
        call: String,
        queue: String,
        agent: String,
    },
    AgentState {
        agent: String,
        status: AgentStatus,
        reason: Option<String>,
        queue: Option<String>,
    },
    AgentJoinedQueue {
        agent: String,
        queue: String,
    },
    AgentLeftQueue {
        agent: String,
        queue: String,
    },
    /// A member paused (or unpaused) in one queue only, as Asterisk allows:
    /// the queue counts an available agent paused there as `paused`; the
    /// agent's own state is unchanged. Not a wire event of the native feed;
    /// the AMI and queue_log adapters emit it.
    AgentQueuePause {
        agent: String,
        queue: String,
        paused: bool,
    },
    /// Authoritative picture of one queue from a CTI list command. Waiting
    /// callers not listed are dropped without being counted (their outcome is
    /// unknown); listed callers not yet known are added with their join time;
    /// members are replaced by the listed ones with the listed states.
    QueueResync {
        queue: String,
        callers: Vec<ResyncCaller>,
        members: Vec<ResyncMember>,
    },
}

impl EventKind {
    /// The wire name of the event type (contract section 3).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::CallEnqueued { .. } => "call_enqueued",
            EventKind::CallAnswered { .. } => "call_answered",
            EventKind::CallAbandoned { .. } => "call_abandoned",
            EventKind::CallExited { .. } => "call_exited",
            EventKind::CallCompleted { .. } => "call_completed",
            EventKind::AgentState { .. } => "agent_state",
            EventKind::AgentJoinedQueue { .. } => "agent_joined_queue",
            EventKind::AgentLeftQueue { .. } => "agent_left_queue",
            EventKind::AgentQueuePause { .. } => "agent_queue_pause",
            EventKind::QueueResync { .. } => "queue_resync",
        }
    }
}
