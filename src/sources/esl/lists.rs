//! The pipe-separated output of `callcenter_config queue list …`
//! (protocols.md 2.4): a header row of column names, data rows, a final
//! `+OK` line; an empty list is the `+OK` line alone (mod_callcenter writes
//! the header only with the first row).
//!
//! mod_callcenter does not escape anything in these rows, so free text can
//! break the grid: an agent `contact` dial string may hold `|` (sequential
//! failover), and a caller's `cid_name` may hold `|` or even a newline. Rows
//! are therefore read against the header: a short row is joined with the
//! next line, and extra fields are folded back into the table's one
//! free-text column. Rows that still do not fit are returned as errors.

use std::collections::HashMap;

use crate::time::Ts;

/// Why a list reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("FreeSWITCH answered {0}")]
    Err(String),
    #[error("list reply does not end with +OK")]
    Unterminated,
    #[error("expected a {expected} list, got columns starting {got:?}")]
    WrongColumns { expected: &'static str, got: String },
}

/// A parsed list: column names and rows of fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Rows that could not be fitted to the header, verbatim.
    pub bad_rows: Vec<String>,
}

impl Table {
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Parses a list body. `free_text` names the column that absorbs extra `|`.
pub fn parse_table(body: &str, free_text: Option<&str>) -> Result<Table, ListError> {
    let trimmed = body.trim_end_matches(['\n', '\r', ' ']);
    if trimmed.starts_with("-ERR") || trimmed.starts_with("-USAGE") {
        return Err(ListError::Err(
            trimmed.lines().next().unwrap_or("").to_string(),
        ));
    }
    let Some(content) = trimmed.strip_suffix("+OK") else {
        return Err(ListError::Unterminated);
    };
    let mut lines = content
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut t = Table::default();
    let Some(header) = lines.by_ref().find(|l| !l.is_empty()) else {
        return Ok(t);
    };
    t.columns = header.split('|').map(str::to_string).collect();
    let n = t.columns.len();
    let free = free_text.and_then(|c| t.col(c));
    let mut pending: Option<String> = None;
    for line in lines {
        let joined = match pending.take() {
            Some(mut p) => {
                p.push('\n');
                p.push_str(line);
                p
            }
            None => {
                if line.is_empty() {
                    continue;
                }
                line.to_string()
            }
        };
        let fields: Vec<&str> = joined.split('|').collect();
        if fields.len() < n {
            pending = Some(joined);
            continue;
        }
        if fields.len() == n {
            t.rows
                .push(fields.into_iter().map(str::to_string).collect());
        } else if let Some(fc) = free {
            let extra = fields.len() - n;
            let mut row: Vec<String> = Vec::with_capacity(n);
            row.extend(fields[..fc].iter().map(|s| s.to_string()));
            row.push(fields[fc..=fc + extra].join("|"));
            row.extend(fields[fc + extra + 1..].iter().map(|s| s.to_string()));
            t.rows.push(row);
        } else {
            t.bad_rows.push(joined.clone());
        }
    }
    if let Some(p) = pending {
        t.bad_rows.push(p);
    }
    Ok(t)
}

fn check(t: &Table, expected: &'static str, first: &[&str]) -> Result<(), ListError> {
    if t.columns.is_empty() {
        return Ok(());
    }
    if t.columns.len() < first.len() || t.columns.iter().zip(first).any(|(a, b)| a != b) {
        return Err(ListError::WrongColumns {
            expected,
            got: t
                .columns
                .iter()
                .take(4)
                .cloned()
                .collect::<Vec<_>>()
                .join("|"),
        });
    }
    Ok(())
}

fn get<'t>(t: &Table, row: &'t [String], ix: &HashMap<&str, usize>, name: &str) -> &'t str {
    let _ = t;
    ix.get(name)
        .and_then(|&i| row.get(i))
        .map(String::as_str)
        .unwrap_or("")
}

fn index(t: &Table) -> HashMap<&str, usize> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect()
}

fn secs(s: &str) -> i64 {
    s.trim().parse().unwrap_or(0)
}

/// `queue list`: the queue names.
pub fn queue_names(body: &str) -> Result<Vec<String>, ListError> {
    Ok(queues(body)?.into_iter().map(|q| q.name).collect())
}

/// One row of `queue list` (the loaded queues' settings).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueRow {
    pub name: String,
    /// `max-wait-time` in seconds, 0 = none. mod_callcenter stores a caller
    /// who timed out as `Abandoned` like one who hung up; the resync tells
    /// them apart by comparing the wait with this.
    pub max_wait_time: i64,
}

/// `queue list`: every loaded queue with the settings the resync reads.
pub fn queues(body: &str) -> Result<Vec<QueueRow>, ListError> {
    let t = parse_table(body, Some("record_template"))?;
    check(&t, "queue", &["name", "strategy"])?;
    let ix = index(&t);
    Ok(t.rows
        .iter()
        .map(|r| QueueRow {
            name: get(&t, r, &ix, "name").to_string(),
            max_wait_time: secs(get(&t, r, &ix, "max_wait_time")),
        })
        .collect())
}

/// One row of `queue list agents <queue>` (the `agents` table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentRow {
    pub name: String,
    pub status: String,
    pub state: String,
    pub wrap_up_time: i64,
    pub reject_delay_time: i64,
    pub busy_delay_time: i64,
    pub no_answer_delay_time: i64,
    pub last_bridge_end: i64,
    pub ready_time: i64,
}

pub fn agents(body: &str) -> Result<(Vec<AgentRow>, Vec<String>), ListError> {
    let t = parse_table(body, Some("contact"))?;
    check(
        &t,
        "agents",
        &["name", "instance_id", "uuid", "type", "contact"],
    )?;
    let ix = index(&t);
    let rows = t
        .rows
        .iter()
        .map(|r| AgentRow {
            name: get(&t, r, &ix, "name").to_string(),
            status: get(&t, r, &ix, "status").to_string(),
            state: get(&t, r, &ix, "state").to_string(),
            wrap_up_time: secs(get(&t, r, &ix, "wrap_up_time")),
            reject_delay_time: secs(get(&t, r, &ix, "reject_delay_time")),
            busy_delay_time: secs(get(&t, r, &ix, "busy_delay_time")),
            no_answer_delay_time: secs(get(&t, r, &ix, "no_answer_delay_time")),
            last_bridge_end: secs(get(&t, r, &ix, "last_bridge_end")),
            ready_time: secs(get(&t, r, &ix, "ready_time")),
        })
        .collect();
    Ok((rows, t.bad_rows))
}

/// One row of `queue list members <queue>` (the `members` table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberRow {
    pub queue: String,
    pub uuid: String,
    pub session_uuid: String,
    pub cid_number: String,
    pub joined_epoch: i64,
    pub rejoined_epoch: i64,
    /// When an agent was bridged (`Answered` rows), epoch seconds.
    pub bridge_epoch: i64,
    /// When the caller left unanswered (`Abandoned` rows: hang-up, timeout
    /// or any other exit), epoch seconds.
    pub abandoned_epoch: i64,
    pub state: String,
    pub serving_agent: String,
}

impl MemberRow {
    /// Still waiting for an agent: `Waiting`, or `Trying` (being offered).
    /// `Abandoned` rows linger until `discard-abandoned-after`; `Answered`
    /// rows are bridged calls.
    pub fn is_waiting(&self) -> bool {
        self.state == "Waiting" || self.state == "Trying"
    }

    /// When this caller joined, as we count it: a resumed caller
    /// (`member-queue-resume`) counts from its rejoin.
    pub fn joined(&self) -> Ts {
        Ts::from_secs(if self.rejoined_epoch > 0 {
            self.rejoined_epoch
        } else {
            self.joined_epoch
        })
    }
}

pub fn members(body: &str) -> Result<(Vec<MemberRow>, Vec<String>), ListError> {
    let t = parse_table(body, Some("cid_name"))?;
    check(
        &t,
        "members",
        &["queue", "instance_id", "uuid", "session_uuid"],
    )?;
    let ix = index(&t);
    let rows = t
        .rows
        .iter()
        .map(|r| MemberRow {
            queue: get(&t, r, &ix, "queue").to_string(),
            uuid: get(&t, r, &ix, "uuid").to_string(),
            session_uuid: get(&t, r, &ix, "session_uuid").to_string(),
            cid_number: get(&t, r, &ix, "cid_number").to_string(),
            joined_epoch: secs(get(&t, r, &ix, "joined_epoch")),
            rejoined_epoch: secs(get(&t, r, &ix, "rejoined_epoch")),
            bridge_epoch: secs(get(&t, r, &ix, "bridge_epoch")),
            abandoned_epoch: secs(get(&t, r, &ix, "abandoned_epoch")),
            state: get(&t, r, &ix, "state").to_string(),
            serving_agent: get(&t, r, &ix, "serving_agent").to_string(),
        })
        .collect();
    Ok((rows, t.bad_rows))
}

/// One row of `queue list tiers <queue>` / `tier list`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TierRow {
    pub queue: String,
    pub agent: String,
    pub state: String,
}

pub fn tiers(body: &str) -> Result<(Vec<TierRow>, Vec<String>), ListError> {
    let t = parse_table(body, None)?;
    check(&t, "tiers", &["queue", "agent", "state"])?;
    let ix = index(&t);
    let rows = t
        .rows
        .iter()
        .map(|r| TierRow {
            queue: get(&t, r, &ix, "queue").to_string(),
            agent: get(&t, r, &ix, "agent").to_string(),
            state: get(&t, r, &ix, "state").to_string(),
        })
        .collect();
    Ok((rows, t.bad_rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENTS: &str = "name|instance_id|uuid|type|contact|status|state|max_no_answer|wrap_up_time|reject_delay_time|busy_delay_time|no_answer_delay_time|last_bridge_start|last_bridge_end|last_offered_call|last_status_change|no_answer_count|calls_answered|talk_time|ready_time|external_calls_count\n\
1000@default|single_box||Callback|[call_timeout=10]user/1000@default|sofia/gw/x/1000|Available|Waiting|3|10|10|60|0|0|0|0|1700000000|0|0|0|0|0\n\
+OK\n";

    #[test]
    fn a_pipe_in_the_contact_is_folded_back() {
        let (rows, bad) = agents(AGENTS).unwrap();
        assert!(bad.is_empty());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, "Available");
        assert_eq!(rows[0].wrap_up_time, 10);
        assert_eq!(rows[0].busy_delay_time, 60);
    }

    #[test]
    fn a_newline_in_a_caller_name_is_joined() {
        let body = "queue|instance_id|uuid|session_uuid|cid_number|cid_name|system_epoch|joined_epoch|rejoined_epoch|bridge_epoch|abandoned_epoch|base_score|skill_score|serving_agent|serving_system|state|score\n\
support@default|single_box|m1|s1|1001|Li\nNa|1700000000|1700000000|0|0|0|0|0|||Waiting|5\n+OK\n";
        let (rows, bad) = members(body).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(rows[0].uuid, "m1");
        assert!(rows[0].is_waiting());
    }

    #[test]
    fn empty_lists_and_errors() {
        assert_eq!(agents("+OK\n").unwrap().0, Vec::new());
        assert_eq!(
            queue_names("-ERR callcenter_config Command not found!\n"),
            Err(ListError::Err(
                "-ERR callcenter_config Command not found!".into()
            ))
        );
        assert_eq!(tiers("queue|agent|state\n"), Err(ListError::Unterminated));
        assert!(matches!(
            tiers("name|strategy\nq|x\n+OK\n"),
            Err(ListError::WrongColumns { .. })
        ));
    }
}
