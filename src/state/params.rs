//! The engine's settings, resolved from the configuration: per-queue
//! thresholds and windows, the time zone, and the agent directory.

use std::collections::HashMap;

use super::kpi::{SlFormula, SlRound};

/// Thresholds and window lengths of one queue (from `[defaults]`, overridden
/// per `[[queues]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueParams {
    pub sl_threshold_ms: i64,
    pub sl_target: f64,
    pub short_abandon_ms: i64,
    pub sl_formula: SlFormula,
    /// How waits are judged against `sl_threshold_ms`.
    pub sl_round: SlRound,
    pub rolling_ms: i64,
    pub interval_ms: i64,
    /// After a completed call the agent is put in wrap-up for this long,
    /// unless the source reports states itself (0 = straight to available).
    pub wrap_up_ms: i64,
    pub ladder: Option<String>,
}

impl Default for QueueParams {
    fn default() -> Self {
        QueueParams {
            sl_threshold_ms: 20_000,
            sl_target: 0.8,
            short_abandon_ms: 5_000,
            sl_formula: SlFormula::AbandonNegative,
            sl_round: SlRound::Exact,
            rolling_ms: 15 * 60_000,
            interval_ms: 15 * 60_000,
            wrap_up_ms: 0,
            ladder: None,
        }
    }
}

/// A configured agent (`[[agents]]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentProfile {
    pub id: String,
    pub name: Option<String>,
    pub interface: Option<String>,
    pub source: Option<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub zone: jiff::tz::TimeZone,
    pub defaults: QueueParams,
    /// Configured queues in configuration order (shown first, in this order).
    pub queues: Vec<(String, QueueParams)>,
    pub agents: Vec<AgentProfile>,
    /// The event stream(s) the engine reads in cluster mode (`ACDMON_north`;
    /// a central instance: every site's, joined by `+`), `None` without
    /// `[cluster]`. Kept in the checkpoint: figures restored under another
    /// stream would be counted again by that stream's replay of the day.
    pub stream: Option<String>,
    /// Which site a queue or agent belongs to (cluster mode).
    pub sites: SiteNames,
}

/// How views name the site of a queue or agent. Without `[cluster]` they
/// name none (the single-process JSON and metrics stay as they were).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SiteNames {
    #[default]
    None,
    /// A site's own instance: everything is this site's.
    One(String),
    /// A central instance: ids are `<site>/<id>` (the site's consumer
    /// qualifies them, so two sites' `hotline` queues stay apart).
    Qualified,
}

impl SiteNames {
    /// The site of the queue or agent with this id.
    pub fn site_of(&self, id: &str) -> Option<String> {
        match self {
            SiteNames::None => None,
            SiteNames::One(s) => Some(s.clone()),
            SiteNames::Qualified => id.split_once('/').map(|(s, _)| s.to_string()),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            zone: jiff::tz::TimeZone::UTC,
            defaults: QueueParams::default(),
            queues: Vec::new(),
            agents: Vec::new(),
            stream: None,
            sites: SiteNames::None,
        }
    }
}

impl EngineConfig {
    pub fn queue_params(&self, name: &str) -> QueueParams {
        self.queues
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| self.defaults.clone())
    }

    pub fn agent_index(&self) -> HashMap<&str, &AgentProfile> {
        self.agents.iter().map(|a| (a.id.as_str(), a)).collect()
    }
}
