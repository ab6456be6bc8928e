//! The workforce plan: who is scheduled for what, when. Read from the WFM
//! system's CSV (`[adherence] schedule`, `PUT /api/v1/schedule`) all or
//! nothing, every bad line reported with its number, so a half-read plan
//! never flags agents who were in fact scheduled.

use super::*;

/// Most slots a plan may hold (a WFM export for 2,000 agents over a week at
/// 20 slots a day is 280,000).
pub const MAX_SLOTS: usize = 500_000;

/// One planned activity of one agent, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub start: Ts,
    pub end: Ts,
    pub activity: Arc<str>,
}

/// The plan: every agent's slots, sorted and without overlaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub agents: BTreeMap<String, Vec<Slot>>,
}

impl Plan {
    pub fn slots(&self) -> usize {
        self.agents.values().map(Vec::len).sum()
    }

    /// The slot of `agent` at `t`.
    #[cfg(test)]
    pub(super) fn at(&self, agent: &str, t: Ts) -> Option<&Slot> {
        let slots = self.agents.get(agent)?;
        let i = slots.partition_point(|s| s.end <= t);
        slots.get(i).filter(|s| s.start <= t)
    }

    /// The first slot start or end after `t`, over every agent.
    #[cfg(test)]
    pub(super) fn next_boundary(&self, t: Ts) -> Option<Ts> {
        self.agents
            .values()
            .filter_map(|slots| {
                let i = slots.partition_point(|s| s.end <= t);
                let s = slots.get(i)?;
                Some(if s.start > t { s.start } else { s.end })
            })
            .min()
    }
}

/// A line of the plan that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanError {
    pub line: usize,
    pub message: String,
}

/// Parses a plan: one slot per line, `agent,start,end,activity`; a first
/// line starting with `agent,` is a header; blank lines and lines starting
/// with `#` are skipped. Times are RFC 3339 or local `YYYY-MM-DD HH:MM[:SS]`
/// in `zone`. Every bad line is reported (unknown agents, `end` not after
/// `start`, overlapping slots of one agent, too many slots).
pub fn parse_plan(
    text: &str,
    zone: &jiff::tz::TimeZone,
    known_agent: &dyn Fn(&str) -> bool,
) -> Result<Plan, Vec<PlanError>> {
    let mut errors = Vec::new();
    let mut plan = Plan::default();
    let mut lines_of: HashMap<String, Vec<usize>> = HashMap::new();
    let mut n = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || (line == 1 && l.starts_with("agent,")) {
            continue;
        }
        let mut err = |m: String| errors.push(PlanError { line, message: m });
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        if f.len() != 4 {
            err(format!(
                "expected 4 fields `agent,start,end,activity`, found {}",
                f.len()
            ));
            continue;
        }
        let (agent, activity) = (f[0], f[3]);
        if agent.is_empty() || activity.is_empty() {
            err("empty agent or activity".into());
            continue;
        }
        if !known_agent(agent) {
            err(format!(
                "unknown agent `{agent}` (no [[agents]] entry has that id)"
            ));
            continue;
        }
        let (Some(start), Some(end)) = (parse_time(f[1], zone), parse_time(f[2], zone)) else {
            err(format!(
                "bad time in `{},{}` (RFC 3339, or local YYYY-MM-DD HH:MM)",
                f[1], f[2]
            ));
            continue;
        };
        if end <= start {
            err(format!("end {} is not after start {}", f[2], f[1]));
            continue;
        }
        n += 1;
        if n > MAX_SLOTS {
            err(format!("more than {MAX_SLOTS} slots"));
            break;
        }
        plan.agents
            .entry(agent.to_string())
            .or_default()
            .push(Slot {
                start,
                end,
                activity: Arc::from(activity),
            });
        lines_of.entry(agent.to_string()).or_default().push(line);
    }
    for (agent, slots) in plan.agents.iter_mut() {
        let lines = &lines_of[agent];
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| (slots[i].start, lines[i]));
        for w in order.windows(2) {
            if slots[w[1]].start < slots[w[0]].end {
                errors.push(PlanError {
                    line: lines[w[1]],
                    message: format!(
                        "agent `{agent}`: this slot overlaps the one on line {}",
                        lines[w[0]]
                    ),
                });
            }
        }
        slots.sort_by_key(|s| s.start);
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

pub(crate) fn parse_time(s: &str, zone: &jiff::tz::TimeZone) -> Option<Ts> {
    if let Some(t) = Ts::parse_rfc3339(s) {
        return Some(t);
    }
    let dt: jiff::civil::DateTime = s.replacen(' ', "T", 1).parse().ok()?;
    let z = dt.to_zoned_datetime(zone.clone()).ok()?;
    let ts = Ts(z.timestamp().as_millisecond());
    ts.in_event_range().then_some(ts)
}
