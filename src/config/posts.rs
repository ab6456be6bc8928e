//! `[[posts]]`: the floor's A/B posts, checked against the agent directory
//! and the schedules (a post naming someone who is not in `[[agents]]` is a
//! typo that would leave the post unmanned forever).

use std::collections::HashSet;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::{HumanDuration, Loader};
use crate::floor::posts::PostRule;

/// One `[[posts]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostConfig {
    pub name: String,
    /// The A holders (agent ids): the post's own people.
    #[serde(default)]
    pub a: Vec<Spanned<String>>,
    /// The B holders: who covers when A is away.
    #[serde(default)]
    pub b: Vec<Spanned<String>>,
    /// Holders present for the post to count as covered (default 1).
    pub min: Option<Spanned<u32>>,
    /// Queues the post answers: a holder counts only while a member of one
    /// of them. Omitted: logged in anywhere counts.
    #[serde(default)]
    pub queues: Vec<String>,
    /// A `[[schedules]]` name: the post must be manned only while it is on.
    pub when: Option<Spanned<String>>,
    /// How long the post may go without a holder before it is unmanned.
    pub grace: Option<HumanDuration>,
    /// Pause reasons (codes) during which a holder still counts as present.
    #[serde(default)]
    pub present_reasons: Vec<String>,
}

impl Loader<'_> {
    /// Compiles `[[posts]]`: unknown agents and schedules, an empty post, a
    /// `min` no holder list can reach, a name used twice.
    pub(super) fn posts(
        &mut self,
        cfgs: &[PostConfig],
        agents: &HashSet<&str>,
        schedules: &[crate::escalation::schedule::Schedule],
    ) -> Vec<PostRule> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        for c in cfgs {
            if !names.insert(c.name.as_str()) {
                self.err(None, format!("post `{}` is listed twice", c.name));
            }
            for h in c.a.iter().chain(&c.b) {
                if !agents.contains(h.get_ref().as_str()) {
                    self.err(
                        Some(h.span()),
                        format!(
                            "post `{}`: unknown agent `{}` (no [[agents]] entry has that id)",
                            c.name,
                            h.get_ref()
                        ),
                    );
                }
            }
            if c.a.is_empty() && c.b.is_empty() {
                self.err(None, format!("post `{}` has no holders (`a`, `b`)", c.name));
            }
            let min = c.min.as_ref().map(|m| *m.get_ref()).unwrap_or(1);
            if let Some(m) = &c.min
                && (min == 0 || min as usize > c.a.len() + c.b.len())
            {
                self.err(
                    Some(m.span()),
                    format!(
                        "post `{}`: min {min} must be between 1 and the number of holders ({})",
                        c.name,
                        c.a.len() + c.b.len()
                    ),
                );
            }
            if let Some(w) = &c.when
                && !schedules.iter().any(|s| &s.name == w.get_ref())
            {
                self.err(
                    Some(w.span()),
                    format!(
                        "post `{}`: unknown schedule `{}` (no [[schedules]] entry has that name)",
                        c.name,
                        w.get_ref()
                    ),
                );
            }
            let grace_ms = c.grace.map(|g| g.millis()).unwrap_or(0);
            if grace_ms > 86_400_000 {
                self.err(
                    None,
                    format!("post `{}`: grace must be at most 24h", c.name),
                );
            }
            out.push(PostRule {
                name: c.name.clone(),
                a: c.a.iter().map(|h| h.get_ref().clone()).collect(),
                b: c.b.iter().map(|h| h.get_ref().clone()).collect(),
                min,
                queues: c.queues.clone(),
                when: c.when.as_ref().map(|w| w.get_ref().clone()),
                grace_ms,
                present_reasons: c.present_reasons.clone(),
            });
        }
        out
    }
}
