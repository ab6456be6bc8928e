//! What readers see: immutable views of a queue and an agent, shaped as in
//! contract section 4 (plus a few documented extension fields).

use std::collections::BTreeMap;

use serde::Serialize;

use super::histogram::WaitHistogram;
use super::kpi::WindowView;
use crate::event::AgentStatus;
use crate::time::Ts;

/// Members of a queue by agent state. `logged_in` counts every member not
/// logged out (paused members included, as Asterisk's QueueSummary does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AgentsByState {
    pub logged_in: u32,
    pub available: u32,
    pub ringing: u32,
    pub on_call: u32,
    pub wrap_up: u32,
    pub paused: u32,
}

impl AgentsByState {
    pub fn from_counts(c: &[u32; 6]) -> Self {
        AgentsByState {
            logged_in: c[1] + c[2] + c[3] + c[4] + c[5],
            available: c[AgentStatus::Available.index()],
            ringing: c[AgentStatus::Ringing.index()],
            on_call: c[AgentStatus::OnCall.index()],
            wrap_up: c[AgentStatus::WrapUp.index()],
            paused: c[AgentStatus::Paused.index()],
        }
    }

    pub fn get(&self, s: AgentStatus) -> u32 {
        match s {
            AgentStatus::LoggedOut => 0,
            AgentStatus::Available => self.available,
            AgentStatus::Ringing => self.ringing,
            AgentStatus::OnCall => self.on_call,
            AgentStatus::WrapUp => self.wrap_up,
            AgentStatus::Paused => self.paused,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Windows {
    pub rolling: WindowView,
    pub interval: WindowView,
    pub today: WindowView,
}

/// The escalation state of a queue, set by the ladder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationStatus {
    pub stage: u32,
    pub stage_name: String,
    pub since: Ts,
    pub signed_in: Vec<String>,
    /// Advice waiting for a manager (entry ids), when the ladder is in advise mode.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub pending: Vec<u64>,
}

/// Counters since the daemon started (Prometheus counters read these).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueTotals {
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub exited: BTreeMap<&'static str, u64>,
    /// Waits of answered calls (`acd_queue_wait_seconds`; not in the JSON).
    #[serde(skip)]
    pub wait: WaitHistogram,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    pub queue: String,
    /// Extension (cluster mode): the site the queue belongs to. Absent
    /// without `[cluster]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Extension (a central instance): present while the queue's site is
    /// STALE, so the wall hears it over `/ws` with the figures it qualifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_stale: Option<SiteStale>,
    pub waiting: u32,
    pub longest_wait_s: f64,
    pub agents: AgentsByState,
    pub windows: Windows,
    pub required_agents: Option<u32>,
    pub escalation: Option<EscalationStatus>,
    /// Extension: the queue's SL threshold (seconds) and target.
    pub sl_threshold_s: f64,
    pub sl_target: f64,
    /// Extension: (on_call + wrap_up) / (on_call + wrap_up + ringing + available),
    /// right now; `null` when nobody is staffed.
    pub occupancy: Option<f64>,
    /// Extension: counters since the daemon started.
    pub totals: QueueTotals,
    /// Extension: the oldest waiting caller's join time.
    pub oldest_since: Option<Ts>,
    /// Extension: the event time this view was computed at.
    pub as_of: Ts,
}

/// A STALE site (docs/cluster.md, "Several sites").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SiteStale {
    /// When the site's stream last stored anything (events or heartbeat);
    /// `null` when nothing was ever read from it.
    pub last_message_at: Option<Ts>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    pub agent: String,
    /// Extension (cluster mode): the agent's site. Absent without `[cluster]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub name: Option<String>,
    pub state: AgentStatus,
    pub reason: Option<String>,
    pub since: Ts,
    pub queues: Vec<String>,
    pub groups: Vec<String>,
    pub signed_in_by_escalation: bool,
    /// Extension: the call the agent is on, if any.
    pub call: Option<String>,
    /// Extension: queues the agent is paused in by itself (Asterisk's
    /// per-queue pause; those queues count it as paused while it is
    /// available). Absent when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paused_in: Vec<String>,
    /// Extension: schedule adherence while the agent has a scheduled
    /// activity (docs/floor.md). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adherence: Option<AdherenceMark>,
}

/// An agent's schedule adherence now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdherenceMark {
    /// The activity the schedule plans now (`phone`, `break`, ...).
    pub scheduled: String,
    /// What the agent is doing: `phone`, `logged_out`, or the pause reason
    /// (`paused` without one).
    pub actual: String,
    /// False once the agent has been out of the scheduled activity for
    /// longer than its tolerance.
    pub in_adherence: bool,
    /// When the agent left the scheduled activity (while it is not doing it,
    /// also within the tolerance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_since: Option<Ts>,
    /// Why it is out: `logged_out`, `paused: lunch`, `phone` (taking calls
    /// when something else is planned), `wrong_queue`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// An approved adherence exception covers the agent now: its reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}
