//! The configuration's shape (contract section 2). Every struct denies
//! unknown keys, so a typo is an error with a position, not a silent default.
//! `config/example.toml` is the annotated reference of every key here.

use serde::Deserialize;
use serde_spanned::Spanned;

use super::values::{HumanDuration, Secret};
use crate::state::kpi::{SlFormula, SlRound};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the one HTTP listener (wall, API, `/ws`, `/metrics`).
    pub listen: String,
    /// Bearer token for read routes; without it they are open.
    pub read_token: Option<Secret>,
    /// Bearer token for control routes; without it they answer 403.
    pub admin_token: Option<Secret>,
    /// Whether `/metrics` needs the read token.
    pub metrics_auth: bool,
    /// Per-client coalescing of WebSocket deltas.
    pub ws_coalesce: HumanDuration,
    /// Export per-agent metric series (off: cardinality).
    pub per_agent_metrics: bool,
    /// The live wall's heading.
    pub wall_title: String,
    /// The wall's service-level bands: green at or above a queue's
    /// `sl_target`, amber down to `sl_target - wall_sl_amber`, red below.
    pub wall_sl_amber: f64,
    /// The wall shows "data stale" after this long without a message (the
    /// server sends a heartbeat every 5 s on a quiet connection).
    pub wall_stale_after: HumanDuration,
    /// The language of the wall and its admin texts: `"auto"` follows the
    /// browser (its `Accept-Language`), `"en"` or `"zh-CN"` fix it for
    /// every screen (a TV whose browser says English on a Chinese floor).
    pub wall_locale: WallLocale,
    /// `/readyz` turns 503 (and `acd_engine_stalled` 1) when the engine has
    /// not finished a batch or tick for this long (docs/failure-modes.md).
    pub engine_stall_after: Spanned<HumanDuration>,
    /// A client must send a request's whole header block within this long,
    /// or its connection is closed (slowloris).
    pub header_timeout: HumanDuration,
    /// A client must send a request's whole body within this long, or the
    /// request fails with 408 (a body sent a byte a second).
    pub body_timeout: HumanDuration,
    /// On SIGTERM, requests in flight get this long to finish; then every
    /// connection still open is closed and the daemon goes on stopping.
    pub shutdown_drain: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            read_token: None,
            admin_token: None,
            metrics_auth: false,
            ws_coalesce: HumanDuration(std::time::Duration::from_millis(100)),
            per_agent_metrics: false,
            wall_title: "acdmon".into(),
            wall_sl_amber: 0.05,
            wall_stale_after: HumanDuration(std::time::Duration::from_secs(15)),
            wall_locale: WallLocale::Auto,
            engine_stall_after: Spanned::new(0..0, HumanDuration::from_secs(5)),
            header_timeout: HumanDuration::from_secs(10),
            body_timeout: HumanDuration::from_secs(60),
            shutdown_drain: HumanDuration::from_secs(5),
        }
    }
}

/// `[server] wall_locale`: a fixed language, or the browser's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum WallLocale {
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite file for the audit log and interval history.
    pub path: String,
    /// How often the engine's figures are checkpointed (besides at every
    /// interval close and on a clean stop), so a restart keeps the day;
    /// `"0s"` turns checkpoints (and restoring) off.
    pub checkpoint_every: HumanDuration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: "data/acdmon.sqlite".into(),
            checkpoint_every: HumanDuration(std::time::Duration::from_secs(5)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeConfig {
    /// IANA zone for intervals, "today" and schedules.
    pub zone: Spanned<String>,
    /// `run`/`demo`: an event stamped more than this ahead of the daemon's
    /// clock is rejected (`ts_in_future`); one less far ahead is applied at
    /// the daemon's clock. `replay` does not use it (the file is the clock).
    pub max_future_skew: Spanned<HumanDuration>,
}

/// Default of `[time] max_future_skew`.
pub const DEFAULT_MAX_FUTURE_SKEW: HumanDuration =
    HumanDuration(std::time::Duration::from_secs(300));

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            zone: Spanned::new(0..0, "UTC".into()),
            max_future_skew: Spanned::new(0..0, DEFAULT_MAX_FUTURE_SKEW),
        }
    }
}

/// Per-queue settings. In `[defaults]` every key has a built-in default; in a
/// `[[queues]]` entry a missing key inherits `[defaults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub sl_threshold: Option<HumanDuration>,
    pub sl_target: Option<Spanned<f64>>,
    pub short_abandon: Option<HumanDuration>,
    pub sl_formula: Option<SlFormula>,
    pub sl_round: Option<SlRound>,
    pub rolling_window: Option<HumanDuration>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub wrap_up: Option<HumanDuration>,
    pub ladder: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    pub sl_threshold: Option<HumanDuration>,
    pub sl_target: Option<Spanned<f64>>,
    pub short_abandon: Option<HumanDuration>,
    pub sl_formula: Option<SlFormula>,
    pub sl_round: Option<SlRound>,
    pub rolling_window: Option<HumanDuration>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub wrap_up: Option<HumanDuration>,
    pub ladder: Option<Spanned<String>>,
}

impl QueueConfig {
    pub fn settings(&self) -> QueueSettings {
        QueueSettings {
            sl_threshold: self.sl_threshold,
            sl_target: self.sl_target.clone(),
            short_abandon: self.short_abandon,
            sl_formula: self.sl_formula,
            sl_round: self.sl_round,
            rolling_window: self.rolling_window,
            interval: self.interval.clone(),
            wrap_up: self.wrap_up,
            ladder: self.ladder.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: String,
    pub name: Option<String>,
    pub interface: Option<String>,
    pub source: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[[sources]]`: `name` and `kind` here; the rest is the kind's typed
/// settings, validated when loaded (see [`super::SourceSpec`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: String,
    pub spec: super::SourceSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LadderMode {
    #[default]
    Auto,
    Advise,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub group: Spanned<String>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    /// Leave this many eligible members out (the night ladder keeps one
    /// on-site supervisor off the phones with `keep = 1`).
    pub keep: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub name: String,
    pub when: Spanned<String>,
    #[serde(rename = "for", default)]
    pub for_: HumanDuration,
    pub sign_in: Option<SignIn>,
    pub advise: Option<String>,
    pub staffing: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderConfig {
    pub name: String,
    #[serde(default)]
    pub mode: LadderMode,
    pub max_added_seats: Option<u32>,
    #[serde(default = "default_release_when")]
    pub release_when: Spanned<String>,
    #[serde(default = "default_release_hold")]
    pub release_hold: HumanDuration,
    /// Unanswered advice expires after this long (advise mode).
    #[serde(default = "default_advice_expiry")]
    pub advice_expiry: HumanDuration,
    /// A stage's `for` clock survives its condition failing for at most this
    /// long (debounce; default 0s: the clock restarts at once, as the
    /// contract reads).
    #[serde(default)]
    pub grace: HumanDuration,
    #[serde(default)]
    pub stages: Vec<StageConfig>,
}

fn default_release_when() -> Spanned<String> {
    Spanned::new(0..0, "waiting < 5".into())
}

fn default_release_hold() -> HumanDuration {
    HumanDuration::from_secs(120)
}

fn default_advice_expiry() -> HumanDuration {
    HumanDuration::from_secs(600)
}

/// `[[schedules]]`: a time window (days and/or a time of day) in which
/// queues run another ladder. The first schedule that matches wins; outside
/// every schedule a queue runs its own `ladder`. See docs/escalation.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    /// Local dates `"YYYY-MM-DD"` (a holiday calendar).
    #[serde(default)]
    pub dates: Vec<Spanned<String>>,
    /// `"mon"` .. `"sun"`.
    #[serde(default)]
    pub weekdays: Vec<Spanned<String>>,
    /// Local time of day `"HH:MM"`; `from` > `to` wraps midnight.
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    /// The ladder to run; omitted: no ladder while the schedule is on.
    pub ladder: Option<Spanned<String>>,
    /// Queues the schedule applies to; empty: every queue.
    #[serde(default)]
    pub queues: Vec<String>,
    /// `false`: only a time window for `[[posts]] when`; never chooses a
    /// ladder (default `true`).
    #[serde(default = "yes")]
    pub select_ladder: bool,
}

fn yes() -> bool {
    true
}

/// `[[cti]]`: a way to sign agents in and out that is not an event source
/// (agents name it in `source`). `name`, `kind` and `default` here; the rest
/// belongs to the kind's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CtiConfig {
    pub name: String,
    pub kind: String,
    /// Agents without a `source` are signed in and out through this entry.
    pub default: bool,
    pub spec: CtiSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CtiSpec {
    Webhook(super::cti::WebhookConfig),
}

/// `[[shifts]]`: a named span of local time, every day; at its end acdmon
/// writes the shift's handover record (see `src/floor/handover.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    pub name: String,
    /// Local time `"HH:MM"`, on an interval boundary; `from` > `to` wraps
    /// midnight.
    pub from: Spanned<String>,
    pub to: Spanned<String>,
}

/// `[handover]`: how the wall shows a shift's handover.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandoverConfig {
    /// The wall announces the coming handover this long before a shift ends.
    pub show_before: HumanDuration,
    /// The wall shows the handover record this long into the next shift
    /// (and until it is acknowledged, whichever is shorter).
    pub show_after: HumanDuration,
}

impl Default for HandoverConfig {
    fn default() -> Self {
        HandoverConfig {
            show_before: HumanDuration::from_secs(600),
            show_after: HumanDuration::from_secs(900),
        }
    }
}
