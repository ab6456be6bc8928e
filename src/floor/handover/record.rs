//! The handover record as written and read back: what the outgoing shift
//! leaves behind. Kept apart from the observer that builds it so the store,
//! the API and the report read one type without the shift bookkeeping.

use serde::{Deserialize, Serialize};

use crate::escalation::{Direction, Entry};
use crate::time::Ts;

/// One supervisor's note in the duty log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DutyEntry {
    pub id: u64,
    pub ts: Ts,
    pub by: String,
    pub text: String,
}

/// Who acknowledged a handover, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: Ts,
}

/// Running peaks of one queue in the shift in progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peak {
    pub peak_waiting: u32,
    pub peak_at: Option<Ts>,
    /// Longest wait of a call that left the queue in the shift.
    pub longest_wait_ms: i64,
    /// Join time of the oldest waiting call as last seen: when it changes,
    /// that call has left, and it waited longest of all that left since.
    pub oldest: Option<Ts>,
}

/// One queue's shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueShift {
    pub queue: String,
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub abandoned_in_sl: u64,
    pub short_abandoned: u64,
    pub exited: u64,
    /// The queue's configured formula over the shift's summed intervals.
    pub service_level: Option<f64>,
    /// Answered-weighted mean of the intervals' ASA.
    pub asa_s: Option<f64>,
    /// Longest wait of a call that left the queue during the shift, or of
    /// one still waiting at its end.
    pub longest_wait_s: f64,
    pub peak_waiting: u32,
    pub peak_waiting_at: Option<Ts>,
    /// Interval records added up.
    pub intervals: u32,
    /// Some interval was observed only in part (a restart inside it).
    pub partial: bool,
}

/// An escalation log entry, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryBrief {
    pub id: u64,
    pub ts: Ts,
    pub queue: String,
    pub stage: u32,
    pub stage_name: String,
    pub direction: Direction,
    pub mode: String,
    pub reason: String,
}

impl From<&Entry> for EntryBrief {
    fn from(e: &Entry) -> Self {
        EntryBrief {
            id: e.id,
            ts: e.ts,
            queue: e.queue.clone(),
            stage: e.stage,
            stage_name: e.stage_name.clone(),
            direction: e.direction,
            mode: e.mode.clone(),
            reason: e.reason.clone(),
        }
    }
}

/// A ladder stage still active at the handover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveStage {
    pub queue: String,
    pub stage: u32,
    pub stage_name: String,
    pub since: Ts,
    pub signed_in: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShiftEscalations {
    /// Entries going up during the shift.
    pub started: Vec<EntryBrief>,
    /// Entries going down during the shift.
    pub ended: Vec<EntryBrief>,
    /// Stages active at the end (`None`: not known, a record caught up
    /// after the daemon was down at the shift's end).
    pub active: Option<Vec<ActiveStage>>,
    /// Agents the ladder still had signed in at the end.
    pub signed_in_by_ladder: Option<Vec<String>>,
    /// Advice waiting for an answer at the end.
    pub advice_pending: Vec<EntryBrief>,
}

/// The handover record of one shift occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    /// Assigned by the store (0 until written).
    #[serde(default)]
    pub id: u64,
    pub shift: String,
    /// Local date the shift started on.
    pub day: String,
    pub start: Ts,
    pub end: Ts,
    /// Event time the record was made: the shift's end, or later when
    /// `late`.
    pub written: Ts,
    /// Made after a restart because the daemon was down when the shift
    /// ended: figures from the stored history, no end-of-shift state.
    #[serde(default)]
    pub late: bool,
    pub queues: Vec<QueueShift>,
    pub escalations: ShiftEscalations,
    /// Handed over during an unresolved emergency: a ladder stage still
    /// active or advice still pending at the end.
    pub unresolved: bool,
    pub unresolved_reasons: Vec<String>,
    pub duty_log: Vec<DutyEntry>,
    /// Source outages during the shift, clipped to it (see
    /// [`crate::floor::outages`]); `null` where source health is not watched
    /// (replay, a late record).
    pub source_outages: Option<Vec<serde_json::Value>>,
    /// Post breaches during the shift and adherence at its end (see
    /// [`crate::floor::summary`]); `null` when no floor rule runs (or in a late
    /// record).
    pub floor_rules: Option<serde_json::Value>,
    /// Who acknowledged it and when (stored apart; never in the record
    /// as written).
    #[serde(default)]
    pub ack: Option<Ack>,
}
