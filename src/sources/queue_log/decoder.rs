//! One queue_log line to domain events (sans-IO): the columns, the event
//! table (protocols.md 1.9) and what it needs to remember between lines
//! (who is a member, paused, on a call).

use std::collections::{HashMap, HashSet};

use super::MAX_LINE;
use crate::event::{AgentStatus, Event, EventKind, ExitReason};
use crate::sources::ami::mapping::AgentIds;
use crate::sources::{Reject, RejectReason};
use crate::time::Ts;

#[derive(Debug, Default)]
struct AgentTrack {
    queues: HashSet<String>,
    paused: HashSet<String>,
    paused_all: Option<String>,
    on_call: bool,
    reason: Option<String>,
}

impl AgentTrack {
    /// Paused when paused in every queue it is a member of.
    fn is_paused(&self) -> bool {
        self.paused_all.is_some()
            || (!self.paused.is_empty() && self.queues.iter().all(|q| self.paused.contains(q)))
    }

    fn idle_status(&self) -> AgentStatus {
        if self.is_paused() {
            AgentStatus::Paused
        } else {
            AgentStatus::Available
        }
    }
}

/// Turns queue_log lines into domain events.
#[derive(Debug)]
pub struct QueueLogDecoder {
    ids: AgentIds,
    zone: jiff::tz::TimeZone,
    agents: HashMap<String, AgentTrack>,
}

impl QueueLogDecoder {
    pub fn new(ids: AgentIds, zone: jiff::tz::TimeZone) -> Self {
        QueueLogDecoder {
            ids,
            zone,
            agents: HashMap::new(),
        }
    }

    /// Decodes one line (without its line end). Blank lines and events that
    /// carry nothing for acdmon (QUEUESTART, PENALTY, RINGNOANSWER, custom
    /// `QueueLog` events, …) produce no event and no rejection.
    pub fn decode_line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), Reject> {
        let line = trim_line(line);
        if line.is_empty() {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            return Err(Reject::new(
                RejectReason::LineTooLong,
                format!("{} bytes (limit {MAX_LINE})", line.len()),
            ));
        }
        let text = String::from_utf8_lossy(line);
        let mut f = text.split('|');
        let (Some(time), Some(call), Some(queue), Some(agent), Some(event)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(Reject::new(
                RejectReason::Malformed,
                format!("fewer than 5 '|' fields: {:?}", preview(&text)),
            ));
        };
        let data: Vec<&str> = f.collect();
        let event = event.trim();
        // Logger start / reload markers, also in the short form without a
        // time (`NONE|NONE|NONE|QUEUESTART|`).
        if [time, call, queue, agent, event]
            .iter()
            .any(|x| matches!(x.trim(), "QUEUESTART" | "CONFIGRELOAD"))
        {
            return Ok(());
        }
        let ts = self.parse_time(time)?;
        let call_event = |kind: EventKind| Event { ts, kind };
        let need_call = || -> Result<(String, String), Reject> {
            if call.is_empty() || call == "NONE" || queue.is_empty() || queue == "NONE" {
                return Err(Reject::new(
                    RejectReason::MissingField,
                    format!("{event} without a call id or queue"),
                ));
            }
            Ok((call.to_string(), queue.to_string()))
        };
        let need_agent = || -> Result<String, Reject> {
            if agent.is_empty() || agent == "NONE" {
                return Err(Reject::new(
                    RejectReason::MissingField,
                    format!("{event} without an agent"),
                ));
            }
            Ok(self.ids.resolve(agent))
        };
        match event {
            "ENTERQUEUE" => {
                let (call, queue) = need_call()?;
                let caller = data
                    .get(1)
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
                    .map(str::to_string);
                out.push(call_event(EventKind::CallEnqueued {
                    call,
                    queue,
                    caller,
                    priority: None,
                }));
            }
            "CONNECT" => {
                let (call, queue) = need_call()?;
                let agent = need_agent()?;
                self.agents.entry(agent.clone()).or_default().on_call = true;
                out.push(call_event(EventKind::CallAnswered { call, queue, agent }));
            }
            "COMPLETECALLER" | "COMPLETEAGENT" | "BLINDTRANSFER" | "ATTENDEDTRANSFER" => {
                let (call, queue) = need_call()?;
                let agent = need_agent()?;
                out.push(call_event(EventKind::CallCompleted {
                    call,
                    queue: queue.clone(),
                    agent: agent.clone(),
                }));
                let t = self.agents.entry(agent.clone()).or_default();
                t.on_call = false;
                if t.is_paused() {
                    // Paused during the call: the engine assumed available.
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status: AgentStatus::Paused,
                        reason: t.reason.clone(),
                        queue: Some(queue),
                    }));
                }
            }
            "ABANDON" => {
                let (call, queue) = need_call()?;
                out.push(call_event(EventKind::CallAbandoned { call, queue }));
            }
            "EXITWITHTIMEOUT" | "EXITEMPTY" | "EXITWITHKEY" | "WITHDRAW" | "SYSCOMPAT" => {
                let (call, queue) = need_call()?;
                let reason = match event {
                    "EXITWITHTIMEOUT" => ExitReason::Timeout,
                    "EXITEMPTY" => ExitReason::Empty,
                    "EXITWITHKEY" => ExitReason::Key,
                    _ => ExitReason::Other,
                };
                out.push(call_event(EventKind::CallExited {
                    call,
                    queue,
                    reason,
                }));
            }
            "ADDMEMBER" => {
                let agent = need_agent()?;
                let queue = nonempty_queue(queue, event)?;
                let t = self.agents.entry(agent.clone()).or_default();
                t.queues.insert(queue.clone());
                let paused_here = data.first().is_some_and(|d| d.trim() == "PAUSED");
                let changed = if paused_here {
                    t.paused.insert(queue.clone())
                } else {
                    t.paused.remove(&queue)
                };
                let status = if t.on_call {
                    AgentStatus::OnCall
                } else {
                    t.idle_status()
                };
                out.push(call_event(EventKind::AgentJoinedQueue {
                    agent: agent.clone(),
                    queue: queue.clone(),
                }));
                if changed {
                    out.push(call_event(EventKind::AgentQueuePause {
                        agent: agent.clone(),
                        queue: queue.clone(),
                        paused: paused_here,
                    }));
                }
                if status != AgentStatus::OnCall {
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status,
                        reason: None,
                        queue: Some(queue),
                    }));
                }
            }
            "REMOVEMEMBER" => {
                let agent = need_agent()?;
                let queue = nonempty_queue(queue, event)?;
                let t = self.agents.entry(agent.clone()).or_default();
                t.queues.remove(&queue);
                t.paused.remove(&queue);
                let gone = t.queues.is_empty();
                out.push(call_event(EventKind::AgentLeftQueue {
                    agent: agent.clone(),
                    queue,
                }));
                if gone {
                    self.agents.remove(&agent);
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status: AgentStatus::LoggedOut,
                        reason: None,
                        queue: None,
                    }));
                }
            }
            "PAUSE" | "UNPAUSE" | "PAUSEALL" | "UNPAUSEALL" => {
                let agent = need_agent()?;
                let reason = data
                    .first()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string);
                let t = self.agents.entry(agent.clone()).or_default();
                let q = (queue != "NONE" && !queue.is_empty()).then(|| queue.to_string());
                // A pause in one queue is that queue's business
                // (`AgentQueuePause`); the agent's own state folds them.
                let pause_in = |queue: &str, paused: bool| {
                    call_event(EventKind::AgentQueuePause {
                        agent: agent.clone(),
                        queue: queue.to_string(),
                        paused,
                    })
                };
                match (event, &q) {
                    ("PAUSE", Some(q)) => {
                        if t.paused.insert(q.clone()) {
                            out.push(pause_in(q, true));
                        }
                    }
                    ("UNPAUSE", Some(q)) => {
                        if t.paused.remove(q) {
                            out.push(pause_in(q, false));
                        }
                        t.paused_all = None;
                    }
                    ("PAUSEALL", _) | ("PAUSE", None) => {
                        t.paused_all = Some(reason.clone().unwrap_or_default());
                    }
                    _ => {
                        let mut was: Vec<String> = t.paused.drain().collect();
                        was.sort();
                        for q in was {
                            out.push(pause_in(&q, false));
                        }
                        t.paused_all = None;
                    }
                }
                if event.starts_with("PAUSE") {
                    t.reason = reason;
                }
                if !t.on_call {
                    let status = t.idle_status();
                    let reason = (status == AgentStatus::Paused)
                        .then(|| t.reason.clone())
                        .flatten();
                    out.push(call_event(EventKind::AgentState {
                        agent,
                        status,
                        reason,
                        queue: q,
                    }));
                }
            }
            "AGENTLOGIN" => {
                let agent = need_agent()?;
                out.push(call_event(EventKind::AgentState {
                    agent,
                    status: AgentStatus::Available,
                    reason: None,
                    queue: None,
                }));
            }
            "AGENTLOGOFF" => {
                let agent = need_agent()?;
                out.push(call_event(EventKind::AgentState {
                    agent,
                    status: AgentStatus::LoggedOut,
                    reason: None,
                    queue: None,
                }));
            }
            // RINGNOANSWER (ms), RINGCANCELED, AGENTDUMP, PENALTY, RINGINUSE,
            // QUEUESTART, CONFIGRELOAD, OUTCALL and custom events carry no
            // queue outcome or state acdmon tracks from queue_log.
            _ => {}
        }
        Ok(())
    }

    /// `1763900000` (file) or `2025-11-23 12:13:20.123456` (realtime/DB).
    fn parse_time(&self, s: &str) -> Result<Ts, Reject> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<i64>()
                .map(Ts::from_secs)
                .map_err(|_| Reject::new(RejectReason::BadTimestamp, format!("{s:?}")));
        }
        let dt: jiff::civil::DateTime = s
            .parse()
            .map_err(|_| Reject::new(RejectReason::BadTimestamp, format!("{:?}", preview(s))))?;
        let t = self
            .zone
            .to_timestamp(dt)
            .map_err(|e| Reject::new(RejectReason::BadTimestamp, format!("{s:?}: {e}")))?;
        Ok(Ts(t.as_millisecond()))
    }
}

fn nonempty_queue(queue: &str, event: &str) -> Result<String, Reject> {
    if queue.is_empty() || queue == "NONE" {
        return Err(Reject::new(
            RejectReason::MissingField,
            format!("{event} without a queue"),
        ));
    }
    Ok(queue.to_string())
}

fn trim_line(mut l: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = l {
        l = rest;
    }
    l
}

fn preview(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec() -> QueueLogDecoder {
        let mut ids = AgentIds::default();
        ids.insert("1001", "PJSIP/1001");
        QueueLogDecoder::new(ids, jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
    }

    fn one(d: &mut QueueLogDecoder, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        d.decode_line(line.as_bytes(), &mut out).unwrap();
        out.iter()
            .map(|e| match &e.kind {
                EventKind::CallExited { reason, .. } => format!("exited:{}", reason.as_str()),
                EventKind::AgentState { agent, status, .. } => {
                    format!("{agent}:{}", status.as_str())
                }
                EventKind::CallAnswered { agent, .. } => format!("answered:{agent}"),
                k => k.type_name().to_string(),
            })
            .collect()
    }

    #[test]
    fn every_event_of_the_table() {
        let mut d = dec();
        let t = "1763900000";
        let cases: &[(&str, &[&str])] = &[
            ("NONE|NONE|NONE|QUEUESTART|", &[]),
            ("1|NONE|NONE|CONFIGRELOAD|", &[]),
            (
                "|MANAGER|support|PJSIP/1001|ADDMEMBER|",
                &["agent_joined_queue", "1001:available"],
            ),
            (
                "|1.1|support|NONE|ENTERQUEUE||5551001|1",
                &["call_enqueued"],
            ),
            ("|1.1|support|1001|RINGNOANSWER|15000", &[]),
            ("|1.1|support|1001|RINGCANCELED|1200", &[]),
            (
                "|1.1|support|1001|CONNECT|12|1763900012.5|3",
                &["answered:1001"],
            ),
            // Paused during a call: the queue hears of it now, the agent's
            // state when the call ends.
            ("|NONE|support|1001|PAUSE|Lunch", &["agent_queue_pause"]),
            (
                "|1.1|support|1001|COMPLETECALLER|12|170|1",
                &["call_completed", "1001:paused"],
            ),
            (
                "|NONE|support|1001|UNPAUSE|",
                &["agent_queue_pause", "1001:available"],
            ),
            (
                "|1.2|support|NONE|ENTERQUEUE||5551002|1|Wang Fang",
                &["call_enqueued"],
            ),
            (
                "|1.2|support|1001|CONNECT|2|1763900100.9|1",
                &["answered:1001"],
            ),
            (
                "|1.2|support|1001|COMPLETEAGENT|2|30|1",
                &["call_completed"],
            ),
            (
                "|1.3|support|1001|BLINDTRANSFER|300|default|5|40|1",
                &["call_completed"],
            ),
            (
                "|1.4|support|1001|ATTENDEDTRANSFER|BRIDGE|abc|5|40|1",
                &["call_completed"],
            ),
            ("|1.5|support|NONE|ABANDON|1|1|30", &["call_abandoned"]),
            (
                "|1.6|support|NONE|EXITWITHTIMEOUT|1|1|60",
                &["exited:timeout"],
            ),
            ("|1.7|support|NONE|EXITEMPTY|1|1|3", &["exited:empty"]),
            ("|1.8|support|NONE|EXITWITHKEY|2|1|1|7", &["exited:key"]),
            (
                "|1.9|support|NONE|WITHDRAW|1|1|20|moved to sales",
                &["exited:other"],
            ),
            ("|1.10|support|NONE|SYSCOMPAT|", &["exited:other"]),
            ("|1.11|support|1001|AGENTDUMP|", &[]),
            ("|NONE|support|1001|PENALTY|3", &[]),
            ("|NONE|support|1001|RINGINUSE|1", &[]),
            ("|NONE|NONE|1001|PAUSEALL|Meeting", &["1001:paused"]),
            ("|NONE|NONE|1001|UNPAUSEALL|", &["1001:available"]),
            (
                "|NONE|NONE|Agent/7|AGENTLOGIN|PJSIP/7-0001",
                &["Agent/7:available"],
            ),
            (
                "|NONE|NONE|Agent/7|AGENTLOGOFF|PJSIP/7-0001|3600",
                &["Agent/7:logged_out"],
            ),
            ("|1.12|support|NONE|OUTCALL|ANSWER|30|x", &[]),
            (
                "|MANAGER|support|PJSIP/1001|REMOVEMEMBER|",
                &["agent_left_queue", "1001:logged_out"],
            ),
            ("|1.13|support|NONE|MYCUSTOMEVENT|whatever", &[]),
        ];
        for (line, want) in cases {
            let line = if line.starts_with('|') {
                format!("{t}{line}")
            } else {
                line.to_string()
            };
            assert_eq!(one(&mut d, &line), *want, "{line}");
        }
    }

    #[test]
    fn paused_add_and_membername_as_agent() {
        let mut d = dec();
        assert_eq!(
            one(&mut d, "1|MANAGER|support|Li Na|ADDMEMBER|PAUSED"),
            ["agent_joined_queue", "agent_queue_pause", "Li Na:paused"]
        );
    }

    #[test]
    fn database_time_format_uses_the_zone() {
        let mut d = dec();
        let mut out = Vec::new();
        d.decode_line(
            b"2025-11-23 20:13:20.250000|1.1|support|NONE|ENTERQUEUE||5551001|1",
            &mut out,
        )
        .unwrap();
        // 20:13:20.25 in Shanghai (UTC+8) = 12:13:20.25 UTC.
        assert_eq!(out[0].ts, Ts(1_763_900_000_250));
    }

    #[test]
    fn bad_lines_are_rejected_with_a_reason() {
        let mut d = dec();
        let mut out = Vec::new();
        let r = |d: &mut QueueLogDecoder, l: &str, out: &mut Vec<Event>| {
            d.decode_line(l.as_bytes(), out).unwrap_err().reason
        };
        assert_eq!(r(&mut d, "garbage without pipes", &mut out), "malformed");
        assert_eq!(
            r(&mut d, "yesterday|1.1|q|NONE|ENTERQUEUE|", &mut out),
            "bad_timestamp"
        );
        assert_eq!(
            r(&mut d, "1|NONE|q|NONE|ENTERQUEUE|", &mut out),
            "missing_field"
        );
        assert_eq!(
            r(&mut d, "1|1.1|q|NONE|CONNECT|1|2|3", &mut out),
            "missing_field"
        );
        assert!(out.is_empty());
        assert!(d.decode_line(b"\r\n", &mut out).is_ok());
    }
}
