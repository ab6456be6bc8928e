//! The mapping rules: which SIP users are queues and which are agents, as
//! configured (see the parent module's doc), compiled once.

use regex::Regex;

use super::super::message::{SipMessage, unescape};
use crate::event::ExitReason;

pub use crate::config::sources::{AgentRule, AnswerMode, QueueRule, UserFrom};

#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub(super) re: Regex,
    pub(super) template: Option<String>,
    pub(super) on: UserFrom,
    pub(super) answer: AnswerMode,
}

impl Rule {
    pub(super) fn apply(&self, user: &str) -> Option<String> {
        let caps = self.re.captures(user)?;
        let whole = caps.get(0)?.as_str();
        Some(match &self.template {
            Some(t) => {
                let mut s = String::new();
                caps.expand(t, &mut s);
                s
            }
            None => whole.to_string(),
        })
        .filter(|s| !s.is_empty())
    }
}

/// The compiled rules of one source.
#[derive(Debug, Clone)]
pub struct MappingRules {
    pub(super) queues: Vec<Rule>,
    pub(super) agents: Vec<Rule>,
    pub queue_header: Option<String>,
    pub correlation_header: Option<String>,
    pub hep_correlation: bool,
    pub fifo_fallback: bool,
    pub blf: bool,
    /// Why a waiting caller left when the platform hung up on it (BYE from
    /// the platform before any agent answered).
    pub platform_hangup: ExitReason,
    /// Static membership from the configuration: (agent, queue).
    pub(super) members: Vec<(String, String)>,
}

/// Everything that configures the mapping, as written in the config.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub queues: Vec<QueueRule>,
    pub agents: Vec<AgentRule>,
    pub queue_header: Option<String>,
    pub correlation_header: Option<String>,
    pub hep_correlation: bool,
    pub fifo_fallback: bool,
    pub blf: bool,
    pub platform_hangup: ExitReason,
    /// Static membership: queue → agent ids.
    pub members: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            queues: Vec::new(),
            agents: Vec::new(),
            queue_header: None,
            correlation_header: None,
            hep_correlation: true,
            fifo_fallback: true,
            blf: true,
            platform_hangup: ExitReason::Other,
            members: Default::default(),
        }
    }
}

impl MappingRules {
    pub fn new(c: &MappingConfig) -> Result<Self, String> {
        let re =
            |p: &str, what: &str| Regex::new(p).map_err(|e| format!("{what} pattern {p:?}: {e}"));
        let mut queues = Vec::new();
        for q in &c.queues {
            queues.push(Rule {
                re: re(&q.pattern, "queue")?,
                template: q.queue.clone(),
                on: q.match_on,
                answer: q.answer,
            });
        }
        let mut agents = Vec::new();
        for a in &c.agents {
            agents.push(Rule {
                re: re(&a.pattern, "agent")?,
                template: a.agent.clone(),
                on: a.match_on,
                answer: AnswerMode::Platform,
            });
        }
        Ok(MappingRules {
            queues,
            agents,
            queue_header: c.queue_header.clone().filter(|h| !h.trim().is_empty()),
            correlation_header: c
                .correlation_header
                .clone()
                .filter(|h| !h.trim().is_empty()),
            hep_correlation: c.hep_correlation,
            fifo_fallback: c.fifo_fallback,
            blf: c.blf,
            platform_hangup: c.platform_hangup,
            members: c
                .members
                .iter()
                .flat_map(|(q, agents)| agents.iter().map(move |a| (a.clone(), q.clone())))
                .filter(|(a, q)| !a.trim().is_empty() && !q.trim().is_empty())
                .collect(),
        })
    }

    /// The agent id for a user by the agent rules only (fork targets: a
    /// proxy also forwards to non-agents, e.g. the queue platform).
    pub(super) fn agent_by_rule(&self, user: &str) -> Option<String> {
        self.agents.iter().find_map(|r| r.apply(user))
    }

    /// The agent id for a bare user (BLF entity, Contact user), by the
    /// first agent rule that matches; without agent rules, the user itself.
    pub(super) fn agent_of_user(&self, user: &str) -> Option<String> {
        if self.agents.is_empty() {
            return Some(user.to_string()).filter(|u| !u.is_empty());
        }
        self.agents.iter().find_map(|r| r.apply(user))
    }
}

pub(super) fn pick_user<'m>(
    msg: &'m SipMessage<'_>,
    on: UserFrom,
) -> Option<std::borrow::Cow<'m, str>> {
    let u = match on {
        UserFrom::RequestUri => msg.request_user(),
        UserFrom::To => msg.to().user(),
    }?;
    Some(unescape(u))
}
