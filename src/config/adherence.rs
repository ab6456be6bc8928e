//! `[adherence]`: the activities of the workforce plan and where the plan
//! is read from. The plan file is read and checked here, so `check-config`
//! reports its bad lines (unknown agents, overlapping slots) too.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::{HumanDuration, Loader};
use crate::floor::adherence::{Activity, AdherenceRules, Plan, parse_plan};

/// `[adherence]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdherenceConfig {
    /// CSV `agent,start,end,activity` (optional: a WFM system may `PUT
    /// /api/v1/schedule` instead).
    pub schedule: Option<String>,
    /// Tolerance of activities not listed (default 0s).
    pub tolerance: Option<HumanDuration>,
    #[serde(default)]
    pub activities: Vec<ActivityConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityConfig {
    pub name: String,
    /// How long an agent may be out of this activity (or in it when
    /// something else is planned) before it counts.
    pub tolerance: Option<HumanDuration>,
    /// What else adheres: pause reasons, `logged_out`, `phone`.
    #[serde(default)]
    pub equivalent: Vec<String>,
    /// For `phone`-like activities: the agent must be in one of these.
    #[serde(default)]
    pub queues: Vec<String>,
}

impl Loader<'_> {
    pub(super) fn adherence(
        &mut self,
        c: &AdherenceConfig,
        agents: &HashSet<&str>,
        zone: &jiff::tz::TimeZone,
    ) -> AdherenceRules {
        let mut names = HashSet::new();
        for a in &c.activities {
            if !names.insert(a.name.as_str()) {
                self.err(
                    None,
                    format!("adherence activity `{}` is listed twice", a.name),
                );
            }
        }
        let plan = match &c.schedule {
            None => Plan::default(),
            Some(path) => match std::fs::read_to_string(path) {
                Err(e) => {
                    self.err(
                        None,
                        format!("[adherence] schedule `{path}`: cannot read: {e}"),
                    );
                    Plan::default()
                }
                Ok(text) => match parse_plan(&text, zone, &|a| agents.contains(a)) {
                    Ok(p) => p,
                    Err(errors) => {
                        for e in errors {
                            self.errors.push(super::ConfigError {
                                file: path.clone(),
                                line: e.line,
                                col: 1,
                                message: e.message,
                            });
                        }
                        Plan::default()
                    }
                },
            },
        };
        AdherenceRules {
            tolerance_ms: c.tolerance.map(|t| t.millis()).unwrap_or(0),
            activities: c
                .activities
                .iter()
                .map(|a| Activity {
                    name: a.name.clone(),
                    tolerance_ms: a
                        .tolerance
                        .map(|t| t.millis())
                        .unwrap_or(c.tolerance.map(|t| t.millis()).unwrap_or(0)),
                    equivalent: a.equivalent.clone(),
                    queues: a.queues.clone(),
                })
                .collect(),
            plan: Arc::new(plan),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn check_config_reports_the_plans_bad_lines_at_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.csv");
        std::fs::write(
            &plan,
            "agent,start,end,activity\n\
             a1,2026-11-23 09:00,2026-11-23 12:00,phone\n\
             ghost,2026-11-23 09:00,2026-11-23 12:00,phone\n",
        )
        .unwrap();
        let text = format!(
            "[[agents]]\nid = \"a1\"\n[adherence]\nschedule = \"{}\"\n\
             [[adherence.activities]]\nname = \"break\"\n[[adherence.activities]]\nname = \"break\"\n",
            plan.display()
        );
        let e: Vec<String> = Config::parse("t.toml", &text)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            e,
            vec![
                "t.toml:1:1: adherence activity `break` is listed twice".to_string(),
                format!(
                    "{}:3:1: unknown agent `ghost` (no [[agents]] entry has that id)",
                    plan.display()
                ),
            ]
        );
        std::fs::write(&plan, "a1,2026-11-23 09:00,2026-11-23 12:00,phone\n").unwrap();
        let c = Config::parse(
            "t.toml",
            &text.replace("name = \"break\"\n[[adherence.activities]]\n", ""),
        )
        .unwrap();
        let r = c.adherence.unwrap();
        assert_eq!(r.plan.slots(), 1);
        assert_eq!(r.activities.len(), 1);
    }
}
