//! Adherence exceptions: a supervisor approves that a person or a group is
//! somewhere other than the plan says for a time (a meeting, a system
//! outage, a coaching session). Inside an approved exception an agent is in
//! adherence, and its mark says why.
//!
//! Why it is built this way:
//! - Exceptions are stored in the audit database (`adherence_exceptions`)
//!   with who approved them and when; a withdrawn one is marked, never
//!   deleted, so the record of who excused whom survives. The daemon reads
//!   the open ones at start, so a restart keeps them.
//! - The list reaches the engine thread through an `arc-swap` (as the plan
//!   does): a new or withdrawn exception applies at the engine's next event
//!   or tick, and its start and end are deadlines on event time.
//! - A group is an `[[agents]] groups` name, so "the whole back-office team"
//!   needs no list of ids that goes stale.

use serde::{Deserialize, Serialize};

use crate::time::Ts;

/// Longest exception (a longer absence belongs in the plan).
pub const MAX_SPAN_MS: i64 = 31 * 86_400_000;
/// Most open exceptions at a time.
pub const MAX_OPEN: usize = 10_000;

/// One approved exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    pub id: u64,
    /// Agent ids it covers.
    #[serde(default)]
    pub agents: Vec<String>,
    /// `[[agents]] groups` it covers.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `[from, to)`.
    pub from: Ts,
    pub to: Ts,
    /// Why (shown on the agent's mark).
    pub reason: String,
    /// Who approved it.
    pub by: String,
    /// When it was approved (the server's clock).
    pub created: Ts,
}

impl Exception {
    /// Whether it excuses agent `id` of `groups` at `t`.
    pub fn covers(&self, id: &str, groups: &[String], t: Ts) -> bool {
        self.from <= t
            && t < self.to
            && (self.agents.iter().any(|a| a == id)
                || self.groups.iter().any(|g| groups.contains(g)))
    }
}

/// `POST /api/v1/adherence/exceptions` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionRequest {
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// RFC 3339, local `YYYY-MM-DD HH:MM[:SS]`, or epoch milliseconds.
    pub from: serde_json::Value,
    pub to: serde_json::Value,
    pub reason: String,
    pub by: String,
}

/// Checks a request against the agent directory: every problem is listed.
/// `id` and `created` are left for the store.
pub fn check(
    req: &ExceptionRequest,
    zone: &jiff::tz::TimeZone,
    known_agent: &dyn Fn(&str) -> bool,
    known_group: &dyn Fn(&str) -> bool,
) -> Result<Exception, Vec<String>> {
    let mut errors = Vec::new();
    if req.agents.is_empty() && req.groups.is_empty() {
        errors.push("name `agents` or `groups` (or both)".to_string());
    }
    for a in &req.agents {
        if !known_agent(a) {
            errors.push(format!(
                "unknown agent `{a}` (no [[agents]] entry has that id)"
            ));
        }
    }
    for g in &req.groups {
        if !known_group(g) {
            errors.push(format!(
                "unknown group `{g}` (no [[agents]] entry is in it)"
            ));
        }
    }
    let time = |name: &str, v: &serde_json::Value, errors: &mut Vec<String>| {
        let t = match v {
            serde_json::Value::Number(n) => n.as_i64().map(Ts).filter(|t| t.in_event_range()),
            serde_json::Value::String(s) => super::adherence::parse_time(s, zone),
            _ => None,
        };
        if t.is_none() {
            errors.push(format!(
                "`{name}`: {v} is not a time (RFC 3339, local YYYY-MM-DD HH:MM, or epoch ms)"
            ));
        }
        t
    };
    let from = time("from", &req.from, &mut errors);
    let to = time("to", &req.to, &mut errors);
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            errors.push("`to` must be after `from`".into());
        } else if t.since(f) > MAX_SPAN_MS {
            errors.push("an exception may last at most 31 days".into());
        }
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        errors.push("`reason` must be 1 to 200 characters".into());
    }
    let by = req.by.trim();
    if by.is_empty() || by.chars().count() > 64 {
        errors.push("`by` must be 1 to 64 characters".into());
    }
    match (from, to) {
        (Some(from), Some(to)) if errors.is_empty() => Ok(Exception {
            id: 0,
            agents: req.agents.clone(),
            groups: req.groups.clone(),
            from,
            to,
            reason: reason.to_string(),
            by: by.to_string(),
            created: Ts::now(),
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> ExceptionRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_request_is_checked_against_the_directory_with_every_problem_listed() {
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let e = check(
            &req(
                serde_json::json!({"agents": ["a1", "zz"], "groups": ["nobody"],
                "from": "2026-11-23 10:00", "to": "2026-11-23 09:00", "reason": " ", "by": "lin"}),
            ),
            &zone,
            &|a| a == "a1",
            &|g| g == "backoffice",
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "unknown agent `zz` (no [[agents]] entry has that id)",
                "unknown group `nobody` (no [[agents]] entry is in it)",
                "`to` must be after `from`",
                "`reason` must be 1 to 200 characters",
            ]
        );
        let ok = check(
            &req(
                serde_json::json!({"groups": ["backoffice"], "from": "2026-11-23 10:00",
                "to": "2026-11-23T11:00:00+08:00", "reason": "team meeting", "by": "lin"}),
            ),
            &zone,
            &|_| true,
            &|_| true,
        )
        .unwrap();
        assert_eq!(ok.to.since(ok.from), 3_600_000);
        let groups = vec!["backoffice".to_string()];
        assert!(ok.covers("a7", &groups, ok.from));
        assert!(!ok.covers("a7", &groups, ok.to));
        assert!(!ok.covers("a7", &[], ok.from));
    }
}
