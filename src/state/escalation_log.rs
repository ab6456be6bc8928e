//! One escalation log entry (contract section 6): a decision of the ladder and
//! the actions it took, as written to the audit log and sent on `/ws`.
//!
//! Why it lives in `state` although the ladder writes it: the publisher
//! carries new entries in each [`super::Delta`] beside the views it builds,
//! so the entry is part of what `state` publishes, like
//! [`super::view::EscalationStatus`]. Keeping the type here lets `state`
//! depend on nothing above it; `escalation` re-exports it under its own
//! name (`crate::escalation::Entry`).

use serde::{Deserialize, Serialize};

use crate::time::Ts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// `sign_in`, `sign_out` or `advise`.
    pub kind: String,
    pub agent: Option<String>,
    pub target_queue: Option<String>,
    /// `ok`, `failed`, `pending`, `approved`, `rejected`; extensions:
    /// `expired` (advice nobody answered in time) and `cancelled` (a
    /// deferred sign-out dropped because the ladder went back up first).
    pub result: String,
    pub detail: Option<String>,
    /// Extension: for an advice with `staffing = "erlang_c"`, the seats to
    /// add (Erlang C required agents minus logged-in members, at least 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    /// Extension: when `result` was recorded (absent while it is the result
    /// the entry was written with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Ts>,
}

/// Extension: how a manager answered advice (advise mode), or that nobody
/// did. Appended after the entry, never written into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryDecision {
    /// `approved`, `rejected` or `expired`.
    pub result: String,
    pub ts: Ts,
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u64,
    pub ts: Ts,
    pub queue: String,
    pub stage: u32,
    pub stage_name: String,
    pub direction: Direction,
    pub reason: String,
    /// `auto` or `advise`; extension: `manual` for the admin sign-in/out
    /// routes.
    pub mode: String,
    pub actions: Vec<ActionRecord>,
    /// Extension: the ladder the decision came from (schedules switch them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<String>,
    /// Extension: the answer to advice (advise mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<EntryDecision>,
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ts::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s:?}")))
    }
}
