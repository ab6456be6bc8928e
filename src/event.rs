//! The domain events every source produces and the state engine consumes.
//!
//! There is exactly one event type in acdmon: AMI, queue_log, ESL, HEP/SIP and
//! the native JSON feed all translate their wire events into [`Event`]. The
//! public shape is the native feed of contract section 3; [`EventKind::QueueResync`]
//! is internal, used by CTI sources that rebuild a queue after (re)connecting.

use std::fmt;

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

/// Why an input line or message was rejected: one closed list, so a new
/// reason is added here once and every place that reports rejections
/// (`acd_source_events_rejected_total{reason}`, the replay report's
/// `rejected`, `POST /api/v1/events` answers, logs) spells it the same way
/// ([`RejectReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// A time that does not parse.
    BadTimestamp,
    /// A field with a value outside its domain.
    BadValue,
    /// A producer refused: too many connected at once.
    ConnectionLimit,
    /// A call that is already known entered again.
    DuplicateCall,
    /// A frame above the size limit.
    FrameTooLarge,
    /// A HEP packet without the configured auth key, or with another.
    HepAuth,
    /// A malformed HEP chunk.
    HepBadChunk,
    /// A HEP payload that cannot be read (bad compression).
    HepBadPayload,
    /// A HEP packet without a payload.
    HepNoPayload,
    /// Bytes that are not a HEP packet.
    HepNotHep,
    /// A HEP packet that carries something other than SIP.
    HepNotSip,
    /// A HEP packet above `max_packet_bytes`.
    HepTooLarge,
    /// A HEP packet cut short.
    HepTruncated,
    /// A line that is not JSON.
    InvalidJson,
    /// A line above the length limit.
    LineTooLong,
    /// A message that does not parse.
    Malformed,
    /// An event that lacks what its kind needs.
    MalformedEvent,
    /// A frame that does not parse.
    MalformedFrame,
    /// A row of a list reply that does not parse.
    MalformedListRow,
    /// A required field is absent.
    MissingField,
    /// The engine could not apply the event (an impossible transition).
    NotApplied,
    /// Events dropped because the engine fell behind (see the source's overflow policy).
    Overflow,
    /// A SIP header that does not parse.
    SipBadHeader,
    /// A SIP start line that does not parse.
    SipBadStartLine,
    /// A new call not followed: `max_dialogs` legs already are.
    SipDialogLimit,
    /// A SIP message `full_parse` refused.
    SipInvalid,
    /// A SIP message without a header it needs.
    SipMissingHeader,
    /// A SIP message with too many headers.
    SipTooManyHeaders,
    /// A SIP message cut short.
    SipTruncated,
    /// A message with too many headers.
    TooManyHeaders,
    /// A recording that ends inside a frame.
    TruncatedFrame,
    /// An event time further ahead than `max_future_skew`.
    TsInFuture,
    /// An event time outside what acdmon accepts.
    TsOutOfRange,
    /// An event time before the engine's day.
    TsTooOld,
    /// A producer that did not authenticate.
    Unauthorized,
    /// A reply nobody asked for.
    UnexpectedReply,
    /// An event about a call the engine does not know.
    UnknownCall,
    /// A hangup cause acdmon cannot map.
    UnknownCause,
    /// An event type acdmon does not know.
    UnknownType,
}

impl RejectReason {
    /// Every reason, for documentation and for metrics that list them.
    pub const ALL: [RejectReason; 39] = [
        RejectReason::BadTimestamp,
        RejectReason::BadValue,
        RejectReason::ConnectionLimit,
        RejectReason::DuplicateCall,
        RejectReason::FrameTooLarge,
        RejectReason::HepAuth,
        RejectReason::HepBadChunk,
        RejectReason::HepBadPayload,
        RejectReason::HepNoPayload,
        RejectReason::HepNotHep,
        RejectReason::HepNotSip,
        RejectReason::HepTooLarge,
        RejectReason::HepTruncated,
        RejectReason::InvalidJson,
        RejectReason::LineTooLong,
        RejectReason::Malformed,
        RejectReason::MalformedEvent,
        RejectReason::MalformedFrame,
        RejectReason::MalformedListRow,
        RejectReason::MissingField,
        RejectReason::NotApplied,
        RejectReason::Overflow,
        RejectReason::SipBadHeader,
        RejectReason::SipBadStartLine,
        RejectReason::SipDialogLimit,
        RejectReason::SipInvalid,
        RejectReason::SipMissingHeader,
        RejectReason::SipTooManyHeaders,
        RejectReason::SipTruncated,
        RejectReason::TooManyHeaders,
        RejectReason::TruncatedFrame,
        RejectReason::TsInFuture,
        RejectReason::TsOutOfRange,
        RejectReason::TsTooOld,
        RejectReason::Unauthorized,
        RejectReason::UnexpectedReply,
        RejectReason::UnknownCall,
        RejectReason::UnknownCause,
        RejectReason::UnknownType,
    ];

    /// The label: `reason` of the metric, key of the replay report.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadValue => "bad_value",
            RejectReason::ConnectionLimit => "connection_limit",
            RejectReason::DuplicateCall => "duplicate_call",
            RejectReason::FrameTooLarge => "frame_too_large",
            RejectReason::HepAuth => "hep_auth",
            RejectReason::HepBadChunk => "hep_bad_chunk",
            RejectReason::HepBadPayload => "hep_bad_payload",
            RejectReason::HepNoPayload => "hep_no_payload",
            RejectReason::HepNotHep => "hep_not_hep",
            RejectReason::HepNotSip => "hep_not_sip",
            RejectReason::HepTooLarge => "hep_too_large",
            RejectReason::HepTruncated => "hep_truncated",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::Malformed => "malformed",
            RejectReason::MalformedEvent => "malformed_event",
            RejectReason::MalformedFrame => "malformed_frame",
            RejectReason::MalformedListRow => "malformed_list_row",
            RejectReason::MissingField => "missing_field",
            RejectReason::NotApplied => "not_applied",
            RejectReason::Overflow => "overflow",
            RejectReason::SipBadHeader => "sip_bad_header",
            RejectReason::SipBadStartLine => "sip_bad_start_line",
            RejectReason::SipDialogLimit => "sip_dialog_limit",
            RejectReason::SipInvalid => "sip_invalid",
            RejectReason::SipMissingHeader => "sip_missing_header",
            RejectReason::SipTooManyHeaders => "sip_too_many_headers",
            RejectReason::SipTruncated => "sip_truncated",
            RejectReason::TooManyHeaders => "too_many_headers",
            RejectReason::TruncatedFrame => "truncated_frame",
            RejectReason::TsInFuture => "ts_in_future",
            RejectReason::TsOutOfRange => "ts_out_of_range",
            RejectReason::TsTooOld => "ts_too_old",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::UnexpectedReply => "unexpected_reply",
            RejectReason::UnknownCall => "unknown_call",
            RejectReason::UnknownCause => "unknown_cause",
            RejectReason::UnknownType => "unknown_type",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RejectReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for RejectReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A rejected input line or message: why (counted) and what (logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Reject {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

#[cfg(test)]
mod reject_tests {
    use super::*;

    /// Labels are what dashboards and alerts match on: each is distinct,
    /// snake_case, and serializes as itself.
    #[test]
    fn every_reject_reason_has_its_own_snake_case_label() {
        let labels: std::collections::BTreeSet<&str> =
            RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), RejectReason::ALL.len());
        for r in RejectReason::ALL {
            let l = r.as_str();
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{l}\""));
            assert_eq!(r.to_string(), l);
        }
        let r = Reject::new(RejectReason::TsInFuture, "3h ahead");
        assert_eq!(r.to_string(), "ts_in_future: 3h ahead");
    }
}
