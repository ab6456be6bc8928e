//! FreeSWITCH mod_callcenter over the inbound event socket (protocols.md 2).
//!
//! Split the quinn way: [`parser`] frames bytes, [`session`] runs the
//! conversation (auth, subscription, resync, gap detection) as a state
//! machine, [`mapping`] turns `CC-Action`s into domain events and times what
//! mod_callcenter never announces (wrap-up, reject/busy/no-answer delays),
//! [`lists`] reads the `callcenter_config` list output. [`task`] is the thin
//! tokio driver, [`replay`] the transcript decoder; both run the same session.

pub mod lists;
pub mod mapping;
pub mod parser;
pub mod replay;
pub mod session;
pub mod task;

#[cfg(test)]
mod story_tests;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{HumanDuration, Secret};

pub use replay::EslReplay;
pub use session::{EventFormat, Output, Session, SessionConfig};
pub use task::{EslCommand, spawn, spawn_with_cti};

/// Settings of a `kind = "esl"` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EslConfig {
    /// mod_event_socket's `listen-ip:listen-port`.
    #[serde(default = "default_address")]
    pub address: String,
    /// mod_event_socket's `password` (`"env:NAME"`, `"file:/path"` or inline).
    pub password: Secret,
    /// Log in with `userauth <user>:<password>` (a directory user with
    /// `esl-password`) instead of `auth <password>`.
    #[serde(default)]
    pub user: Option<String>,
    /// Event encoding asked for: `plain` (URL-encoded headers) or `json`.
    #[serde(default)]
    pub format: EventFormat,
    /// mod_callcenter queues to follow (e.g. `"support@default"`); empty
    /// means every queue `callcenter_config queue list` shows.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Wrap-up after a call for agents whose own `wrap-up-time` has not been
    /// read from FreeSWITCH yet.
    #[serde(default)]
    pub wrap_up_time: HumanDuration,
    /// Same, for the pause after a rejected offer (`reject-delay-time`).
    #[serde(default)]
    pub reject_delay_time: HumanDuration,
    /// Same, after a busy agent (`busy-delay-time`).
    #[serde(default)]
    pub busy_delay_time: HumanDuration,
    /// Same, after an unanswered offer (`no-answer-delay-time`).
    #[serde(default)]
    pub no_answer_delay_time: HumanDuration,
    /// Wrap-up per queue, overriding what FreeSWITCH says per agent.
    #[serde(default)]
    pub queue_wrap_up_time: BTreeMap<String, HumanDuration>,
    /// Per-agent overrides of the four times, by agent name.
    #[serde(default)]
    pub agent_timers: BTreeMap<String, AgentTimersConfig>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// How long a CTI command may wait for its reply.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// How long a resync may take before the connection is dropped and
    /// retried.
    #[serde(default = "default_resync_timeout")]
    pub resync_timeout: HumanDuration,
    /// Resync also on this period (picks up tier changes made outside
    /// acdmon, which fire no events). Off when absent.
    #[serde(default)]
    pub resync_interval: Option<HumanDuration>,
    /// Resync when `Event-Sequence` jumps by more than this. Off when
    /// absent: the sequence counts every event FreeSWITCH fires, so only
    /// set it where the listener sees nearly all of them.
    #[serde(default)]
    pub max_sequence_gap: Option<u64>,
    /// Resync when `members-count` twice disagrees with the callers tracked.
    #[serde(default = "yes")]
    pub members_count_check: bool,
    /// On sign-out, also set the agent `Logged Out` when it has no tier left.
    #[serde(default)]
    pub sign_out_logs_out: bool,
    /// Set by the daemon, not the file: the engine already counted every
    /// call that ended before this (a restored checkpoint, or a reload that
    /// restarted the source), so list rows of such calls are not counted
    /// again.
    #[serde(skip)]
    pub counted_until: Option<crate::time::Ts>,
}

/// `[sources.agent_timers."1000@default"]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTimersConfig {
    pub wrap_up_time: Option<HumanDuration>,
    pub reject_delay_time: Option<HumanDuration>,
    pub busy_delay_time: Option<HumanDuration>,
    pub no_answer_delay_time: Option<HumanDuration>,
}

fn default_address() -> String {
    "127.0.0.1:8021".into()
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_resync_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn yes() -> bool {
    true
}

impl EslConfig {
    /// Reads the adapter's keys from a `[[sources]]` table (without `name`
    /// and `kind`).
    pub fn from_table(t: &toml::Table) -> Result<EslConfig, String> {
        toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())
    }

    /// The session's part of the settings.
    pub fn session_config(&self) -> SessionConfig {
        let ms = |d: HumanDuration| d.millis();
        let timers = mapping::TimerConfig {
            wrap_up_ms: ms(self.wrap_up_time),
            reject_delay_ms: ms(self.reject_delay_time),
            busy_delay_ms: ms(self.busy_delay_time),
            no_answer_delay_ms: ms(self.no_answer_delay_time),
            queue_wrap_up_ms: self
                .queue_wrap_up_time
                .iter()
                .map(|(q, d)| (q.clone(), ms(*d)))
                .collect(),
            agents: self
                .agent_timers
                .iter()
                .map(|(a, t)| {
                    (
                        a.clone(),
                        mapping::AgentTimers {
                            wrap_up_ms: t.wrap_up_time.map(ms),
                            reject_delay_ms: t.reject_delay_time.map(ms),
                            busy_delay_ms: t.busy_delay_time.map(ms),
                            no_answer_delay_ms: t.no_answer_delay_time.map(ms),
                        },
                    )
                })
                .collect(),
        };
        SessionConfig {
            password: self.password.clone(),
            user: self.user.clone(),
            format: self.format,
            queues: self.queues.clone(),
            max_sequence_gap: self.max_sequence_gap,
            check_counts: self.members_count_check,
            resync_timeout_ms: ms(self.resync_timeout),
            timers,
            replay: false,
            counted_until: self.counted_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_keys() {
        let t: toml::Table = toml::from_str(
            r#"password = "ClueCon"
queues = ["support@default"]
queue_wrap_up_time = { "support@default" = "30s" }
[agent_timers."1000@default"]
wrap_up_time = "10s""#,
        )
        .unwrap();
        let c = EslConfig::from_table(&t).unwrap();
        assert_eq!(c.address, "127.0.0.1:8021");
        assert_eq!(c.format, EventFormat::Plain);
        assert!(c.members_count_check);
        assert!(!format!("{c:?}").contains("ClueCon"));
        let s = c.session_config();
        assert_eq!(s.timers.queue_wrap_up_ms["support@default"], 30_000);
        assert_eq!(s.timers.agents["1000@default"].wrap_up_ms, Some(10_000));
        let bad: toml::Table = toml::from_str("password = \"x\"\npasword = \"y\"").unwrap();
        assert!(EslConfig::from_table(&bad).unwrap_err().contains("pasword"));
    }
}
