//! Plan compilation: a ladder's configuration, checked and turned into the
//! form evaluation reads (expressions parsed, durations in ms, defaults
//! applied), once per configuration load rather than on every look.

use crate::config::{LadderConfig, LadderMode};
use crate::escalation::expr::Expr;

/// A ladder's configuration, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub mode: LadderMode,
    pub max_added_seats: Option<u32>,
    pub release_when: Expr,
    pub release_hold_ms: i64,
    pub advice_expiry_ms: i64,
    pub grace_ms: i64,
    pub stages: Vec<StagePlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    pub name: String,
    pub when: Expr,
    pub for_ms: i64,
    pub sign_in: Option<GroupPlan>,
    pub advise: Option<String>,
    /// Size the advice with Erlang C.
    pub erlang_c: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub group: String,
    /// Fewer than this signed in raises advice (default 1).
    pub min: u32,
    /// At most this many (default: every eligible member).
    pub max: Option<u32>,
    /// Eligible members left out (the on-site supervisor at night).
    pub keep: u32,
}

impl Plan {
    pub fn compile(c: &LadderConfig) -> Result<Plan, String> {
        let expr = |s: &str| Expr::parse(s).map_err(|e| format!("ladder `{}`: {e}", c.name));
        let stages = c
            .stages
            .iter()
            .map(|s| {
                Ok(StagePlan {
                    name: s.name.clone(),
                    when: expr(s.when.get_ref())?,
                    for_ms: s.for_.millis(),
                    sign_in: s.sign_in.as_ref().map(|g| GroupPlan {
                        group: g.group.get_ref().clone(),
                        min: g.min.unwrap_or(1),
                        max: g.max,
                        keep: g.keep.unwrap_or(0),
                    }),
                    advise: s.advise.clone(),
                    erlang_c: s
                        .staffing
                        .as_ref()
                        .is_some_and(|x| x.get_ref() == "erlang_c"),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Plan {
            name: c.name.clone(),
            mode: c.mode,
            max_added_seats: c.max_added_seats,
            release_when: expr(c.release_when.get_ref())?,
            release_hold_ms: c.release_hold.millis(),
            advice_expiry_ms: c.advice_expiry.millis(),
            grace_ms: c.grace.millis(),
            stages,
        })
    }

    /// A plan with no stages that only releases, with the default release
    /// rule (`waiting < 5` held for 2m): what a restored escalation runs
    /// when its ladder is no longer in the configuration, so the people it
    /// signed in are still signed out.
    pub fn release_only(name: &str) -> Plan {
        Plan {
            name: name.to_string(),
            mode: LadderMode::Auto,
            max_added_seats: None,
            release_when: Expr::parse("waiting < 5").unwrap_or(Expr { any: Vec::new() }),
            release_hold_ms: 120_000,
            advice_expiry_ms: 600_000,
            grace_ms: 0,
            stages: Vec::new(),
        }
    }

    pub(super) fn mode_str(&self) -> &'static str {
        match self.mode {
            LadderMode::Auto => "auto",
            LadderMode::Advise => "advise",
        }
    }
}
