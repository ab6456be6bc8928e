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
    /// `"auto"`: sign B holders into `queues` while A is away; `"off"`
    /// (default): only report.
    pub cover: Option<Spanned<String>>,
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
            let auto_cover = match c.cover.as_ref().map(|c| (c.get_ref().as_str(), c.span())) {
                None | Some(("off", _)) => false,
                Some(("auto", span)) => {
                    if c.queues.is_empty() {
                        self.err(
                            Some(span.clone()),
                            format!("post `{}`: cover = \"auto\" needs `queues` (the queues B is signed into)", c.name),
                        );
                    }
                    if c.b.is_empty() {
                        self.err(
                            Some(span),
                            format!("post `{}`: cover = \"auto\" needs B holders (`b`)", c.name),
                        );
                    }
                    true
                }
                Some((other, span)) => {
                    self.err(
                        Some(span),
                        format!(
                            "post `{}`: cover must be \"auto\" or \"off\", not `{other}`",
                            c.name
                        ),
                    );
                    false
                }
            };
            out.push(PostRule {
                name: c.name.clone(),
                a: c.a.iter().map(|h| h.get_ref().clone()).collect(),
                b: c.b.iter().map(|h| h.get_ref().clone()).collect(),
                min,
                queues: c.queues.clone(),
                when: c.when.as_ref().map(|w| w.get_ref().clone()),
                grace_ms,
                present_reasons: c.present_reasons.clone(),
                auto_cover,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const FLOOR: &str = r#"
[[agents]]
id = "a1"
[[agents]]
id = "b1"

[[schedules]]
name = "night"
from = "22:00"
to = "08:00"
select_ladder = false
"#;

    fn errors(posts: &str) -> Vec<String> {
        match Config::parse("t.toml", &format!("{FLOOR}{posts}")) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_post_is_compiled_with_its_defaults() {
        let c = Config::parse(
            "t.toml",
            &format!(
                "{FLOOR}[[posts]]\nname = \"desk\"\na = [\"a1\"]\nb = [\"b1\"]\nwhen = \"night\"\n"
            ),
        )
        .unwrap();
        let p = &c.posts[0];
        assert_eq!(
            (p.min, p.grace_ms, p.when.as_deref()),
            (1, 0, Some("night"))
        );
        assert!(!c.schedules[0].select_ladder);
    }

    #[test]
    fn unknown_agents_and_schedules_are_reported_at_their_position() {
        let e = errors(
            r#"
[[posts]]
name = "desk"
a = ["a1", "a2"]
b = ["b9"]
when = "nights"
min = 4
"#,
        );
        assert_eq!(
            e,
            vec![
                "t.toml:15:12: post `desk`: unknown agent `a2` (no [[agents]] entry has that id)",
                "t.toml:16:6: post `desk`: unknown agent `b9` (no [[agents]] entry has that id)",
                "t.toml:17:8: post `desk`: unknown schedule `nights` (no [[schedules]] entry has that name)",
                "t.toml:18:7: post `desk`: min 4 must be between 1 and the number of holders (3)",
            ],
            "{e:#?}"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_the_keys_a_post_takes() {
        let e = errors("[[posts]]\nname = \"desk\"\na = [\"a1\"]\nleader = \"a1\"\n");
        assert_eq!(
            e,
            vec![
                "t.toml:15:1: unknown field `leader`, expected one of `name`, `a`, `b`, `min`, `queues`, `when`, `grace`, `present_reasons`, `cover`"
            ]
        );
    }

    #[test]
    fn auto_cover_needs_queues_and_b_holders() {
        let e = errors(
            "[[posts]]\nname = \"desk\"\na = [\"a1\"]\ncover = \"auto\"\n[[posts]]\nname = \"door\"\na = [\"a1\"]\ncover = \"always\"\n",
        );
        assert_eq!(
            e,
            vec![
                "t.toml:15:9: post `desk`: cover = \"auto\" needs `queues` (the queues B is signed into)",
                "t.toml:15:9: post `desk`: cover = \"auto\" needs B holders (`b`)",
                "t.toml:19:9: post `door`: cover must be \"auto\" or \"off\", not `always`",
            ],
            "{e:#?}"
        );
    }

    #[test]
    fn a_post_without_holders_or_listed_twice_is_an_error() {
        let e = errors("[[posts]]\nname = \"desk\"\n[[posts]]\nname = \"desk\"\na = [\"a1\"]\n");
        assert!(
            e.iter()
                .any(|m| m.ends_with("post `desk` has no holders (`a`, `b`)")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.ends_with("post `desk` is listed twice")),
            "{e:?}"
        );
    }
}
