//! FreeSWITCH mod_callcenter over the inbound event socket (protocols.md 2).
//!
//! Split the quinn way: [`parser`] frames bytes, [`session`] runs the
//! conversation (auth, subscription, resync, gap detection) as a state
//! machine, [`mapping`] turns `CC-Action`s into domain events and times what
//! mod_callcenter never announces (wrap-up, reject/busy/no-answer delays),
//! [`lists`] reads the `callcenter_config` list output. [`task`] runs the
//! session on the shared reconnecting TCP driver ([`crate::sources::tcp`]),
//! [`cti`] signs agents in and out through that connection, [`replay`] is
//! the transcript decoder; all run the same session.

pub mod cti;
pub mod lists;
pub mod mapping;
pub mod parser;
pub mod replay;
pub mod session;
pub mod task;

#[cfg(test)]
mod story_tests;

use crate::config::HumanDuration;

pub use crate::config::{AgentTimersConfig, EslConfig};
pub use replay::{EslReplay, replay_decoder};
pub use session::{EventFormat, Output, Session, SessionConfig};
pub use task::{EslCommand, spawn};

impl EslConfig {
    /// The session's part of the settings. `counted_until`: the engine
    /// already counted every call that ended before it (a restored
    /// checkpoint, or a reload that restarted the source), so list rows of
    /// such calls are not counted again.
    pub fn session_config(&self, counted_until: Option<crate::time::Ts>) -> SessionConfig {
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
            counted_until,
            origins: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceSpec;

    #[test]
    fn config_defaults_and_unknown_keys() {
        let text = r#"password = "ClueCon"
queues = ["support@default"]
queue_wrap_up_time = { "support@default" = "30s" }
[agent_timers."1000@default"]
wrap_up_time = "10s""#;
        let Ok(SourceSpec::Esl(c)) = SourceSpec::from_toml("esl", text) else {
            panic!("not an esl spec")
        };
        assert_eq!(c.address, "127.0.0.1:8021");
        assert_eq!(c.format, EventFormat::Plain);
        assert!(c.members_count_check);
        assert!(!format!("{c:?}").contains("ClueCon"));
        let s = c.session_config(None);
        assert_eq!(s.timers.queue_wrap_up_ms["support@default"], 30_000);
        assert_eq!(s.timers.agents["1000@default"].wrap_up_ms, Some(10_000));
        let bad = SourceSpec::from_toml("esl", "password = \"x\"\npasword = \"y\"");
        assert!(bad.unwrap_err().contains("pasword"));
    }
}
