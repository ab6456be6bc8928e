//! What one stream message carries: a batch of one source's decoded events,
//! and the headers that identify it.
//!
//! The payload is a JSON array of events in the engine's own vocabulary
//! (including `queue_resync` and `agent_queue_pause`, which the native feed
//! does not have), so every instance applies exactly what the ingester
//! decoded: no instance decodes wire protocols a second time.
//!
//! Identity (`Nats-Msg-Id`): a message id must be the same when the same
//! input is published again (a retried publish, a source re-read after a
//! takeover) and different otherwise.
//! - Re-readable sources (queue_log, a JSON file) hand on batches with
//!   where they end in the file: the id is `<source>:<file>:<end offset>`,
//!   and the position travels in `Acdmon-Position`, so the next ingester
//!   resumes at the end of the last message in the stream.
//! - Live sources (AMI, ESL, HEP, a JSON socket, `POST /api/v1/events`
//!   with an `Idempotency-Key`) hand on each event's wire origin
//!   ([`crate::sources::Origin`]: ESL `Core-UUID` and `Event-Sequence`, a
//!   digest of an AMI event's header block or of a HEP packet...), and
//!   every PBX event becomes one message whose id is `<source>:<origin>`
//!   ([`origin_id`]). The id names the PBX's event, not this ingester's
//!   batch, so two ingesters reading the same event (an old holder still
//!   connected while the new one connects) publish the same id whatever
//!   their batches, and JetStream keeps the first.
//! - Events without an origin (a timer's, a resync's, a POST without a
//!   key) are identified by a digest of the source name and the events'
//!   time and content (times are the PBX's own, to the millisecond, and
//!   name the call), so a retried publish is dropped by JetStream; the
//!   ingester's compare-and-set on the subject's last sequence (see
//!   `forwarder`) stops two ingesters writing at once.

use serde::{Deserialize, Serialize};

use crate::event::{AgentStatus, Event, EventKind, ExitReason, ResyncCaller, ResyncMember};
use crate::state::SourcePosition;
use crate::time::Ts;

/// Header: the source that produced the batch.
pub const SOURCE: &str = "Acdmon-Source";
/// Header: `<file>:<offset>` where a re-readable source's batch ends.
pub const POSITION: &str = "Acdmon-Position";
/// Header: the instance that published the batch.
pub const INSTANCE: &str = "Acdmon-Instance";

#[derive(Serialize, Deserialize)]
struct WireEvent {
    ts: i64,
    #[serde(flatten)]
    kind: WireKind,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireKind {
    CallEnqueued {
        call: String,
        queue: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<i64>,
    },
    CallAnswered {
        call: String,
        queue: String,
        agent: String,
    },
    CallAbandoned {
        call: String,
        queue: String,
    },
    CallExited {
        call: String,
        queue: String,
        reason: String,
    },
    CallCompleted {
        call: String,
        queue: String,
        agent: String,
    },
    AgentState {
        agent: String,
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
    },
    AgentJoinedQueue {
        agent: String,
        queue: String,
    },
    AgentLeftQueue {
        agent: String,
        queue: String,
    },
    AgentQueuePause {
        agent: String,
        queue: String,
        paused: bool,
    },
    QueueResync {
        queue: String,
        callers: Vec<(String, i64)>,
        members: Vec<WireMember>,
    },
}

#[derive(Serialize, Deserialize)]
struct WireMember {
    agent: String,
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default)]
    paused_here: bool,
}

fn to_wire(e: &Event) -> WireEvent {
    let kind = match e.kind.clone() {
        EventKind::CallEnqueued {
            call,
            queue,
            caller,
            priority,
        } => WireKind::CallEnqueued {
            call,
            queue,
            caller,
            priority,
        },
        EventKind::CallAnswered { call, queue, agent } => {
            WireKind::CallAnswered { call, queue, agent }
        }
        EventKind::CallAbandoned { call, queue } => WireKind::CallAbandoned { call, queue },
        EventKind::CallExited {
            call,
            queue,
            reason,
        } => WireKind::CallExited {
            call,
            queue,
            reason: reason.as_str().into(),
        },
        EventKind::CallCompleted { call, queue, agent } => {
            WireKind::CallCompleted { call, queue, agent }
        }
        EventKind::AgentState {
            agent,
            status,
            reason,
            queue,
        } => WireKind::AgentState {
            agent,
            state: status.as_str().into(),
            reason,
            queue,
        },
        EventKind::AgentJoinedQueue { agent, queue } => WireKind::AgentJoinedQueue { agent, queue },
        EventKind::AgentLeftQueue { agent, queue } => WireKind::AgentLeftQueue { agent, queue },
        EventKind::AgentQueuePause {
            agent,
            queue,
            paused,
        } => WireKind::AgentQueuePause {
            agent,
            queue,
            paused,
        },
        EventKind::QueueResync {
            queue,
            callers,
            members,
        } => WireKind::QueueResync {
            queue,
            callers: callers.into_iter().map(|c| (c.call, c.joined.0)).collect(),
            members: members
                .into_iter()
                .map(|m| WireMember {
                    agent: m.agent,
                    state: m.status.as_str().into(),
                    reason: m.reason,
                    paused_here: m.paused_here,
                })
                .collect(),
        },
    };
    WireEvent { ts: e.ts.0, kind }
}

fn status(s: &str) -> Result<AgentStatus, String> {
    AgentStatus::parse(s).ok_or_else(|| format!("unknown agent state `{s}`"))
}

fn from_wire(w: WireEvent) -> Result<Event, String> {
    let kind = match w.kind {
        WireKind::CallEnqueued {
            call,
            queue,
            caller,
            priority,
        } => EventKind::CallEnqueued {
            call,
            queue,
            caller,
            priority,
        },
        WireKind::CallAnswered { call, queue, agent } => {
            EventKind::CallAnswered { call, queue, agent }
        }
        WireKind::CallAbandoned { call, queue } => EventKind::CallAbandoned { call, queue },
        WireKind::CallExited {
            call,
            queue,
            reason,
        } => EventKind::CallExited {
            call,
            queue,
            reason: ExitReason::parse(&reason)
                .ok_or_else(|| format!("unknown exit reason `{reason}`"))?,
        },
        WireKind::CallCompleted { call, queue, agent } => {
            EventKind::CallCompleted { call, queue, agent }
        }
        WireKind::AgentState {
            agent,
            state,
            reason,
            queue,
        } => EventKind::AgentState {
            agent,
            status: status(&state)?,
            reason,
            queue,
        },
        WireKind::AgentJoinedQueue { agent, queue } => EventKind::AgentJoinedQueue { agent, queue },
        WireKind::AgentLeftQueue { agent, queue } => EventKind::AgentLeftQueue { agent, queue },
        WireKind::AgentQueuePause {
            agent,
            queue,
            paused,
        } => EventKind::AgentQueuePause {
            agent,
            queue,
            paused,
        },
        WireKind::QueueResync {
            queue,
            callers,
            members,
        } => EventKind::QueueResync {
            queue,
            callers: callers
                .into_iter()
                .map(|(call, joined)| ResyncCaller {
                    call,
                    joined: Ts(joined),
                })
                .collect(),
            members: members
                .into_iter()
                .map(|m| {
                    Ok(ResyncMember {
                        agent: m.agent,
                        status: status(&m.state)?,
                        reason: m.reason,
                        paused_here: m.paused_here,
                    })
                })
                .collect::<Result<_, String>>()?,
        },
    };
    Ok(Event { ts: Ts(w.ts), kind })
}

/// The payload of one message.
pub fn encode(events: &[Event]) -> Vec<u8> {
    let wire: Vec<WireEvent> = events.iter().map(to_wire).collect();
    // Serializing owned strings and integers into a Vec cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// The events of one message, or why it cannot be read.
pub fn decode(payload: &[u8]) -> Result<Vec<Event>, String> {
    let wire: Vec<WireEvent> =
        serde_json::from_slice(payload).map_err(|e| format!("not an acdmon event batch: {e}"))?;
    wire.into_iter().map(from_wire).collect()
}

/// `Acdmon-Position` of a re-readable source's batch.
pub fn position_header(p: SourcePosition) -> String {
    format!("{}:{}", p.file, p.offset)
}

pub fn parse_position(s: &str) -> Option<SourcePosition> {
    let (file, offset) = s.split_once(':')?;
    Some(SourcePosition {
        file: file.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// `Nats-Msg-Id` of a batch (see the module docs).
pub fn message_id(source: &str, position: Option<SourcePosition>, payload: &[u8]) -> String {
    match position {
        Some(p) => format!("{source}:{}:{}", p.file, p.offset),
        None => format!("{source}:h{:016x}", fnv1a(source.as_bytes(), payload)),
    }
}

/// `Nats-Msg-Id` of one traced message: `<source>:<origin>`, or the
/// digest of its events (see [`message_id`]) for events without an origin.
pub fn origin_id(source: &str, origin: Option<&str>, payload: &[u8]) -> String {
    match origin {
        Some(o) => format!("{source}:{o}"),
        None => message_id(source, None, payload),
    }
}

/// FNV-1a 64 over the source and the payload: stable across processes and
/// versions (std's hasher is not), and quick.
fn fnv1a(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in a.iter().chain(&[0u8]).chain(b) {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Event> {
        let k = vec![
            EventKind::CallEnqueued {
                call: "c1".into(),
                queue: "sales".into(),
                caller: Some("+8613800000000".into()),
                priority: Some(3),
            },
            EventKind::CallAnswered {
                call: "c1".into(),
                queue: "sales".into(),
                agent: "a1".into(),
            },
            EventKind::CallAbandoned {
                call: "c2".into(),
                queue: "sales".into(),
            },
            EventKind::CallExited {
                call: "c3".into(),
                queue: "sales".into(),
                reason: ExitReason::Timeout,
            },
            EventKind::CallCompleted {
                call: "c1".into(),
                queue: "sales".into(),
                agent: "a1".into(),
            },
            EventKind::AgentState {
                agent: "a1".into(),
                status: AgentStatus::Paused,
                reason: Some("lunch".into()),
                queue: None,
            },
            EventKind::AgentJoinedQueue {
                agent: "a1".into(),
                queue: "sales".into(),
            },
            EventKind::AgentLeftQueue {
                agent: "a1".into(),
                queue: "sales".into(),
            },
            EventKind::AgentQueuePause {
                agent: "a1".into(),
                queue: "sales".into(),
                paused: true,
            },
            EventKind::QueueResync {
                queue: "sales".into(),
                callers: vec![ResyncCaller {
                    call: "c9".into(),
                    joined: Ts(1_763_900_000_000),
                }],
                members: vec![ResyncMember {
                    agent: "a2".into(),
                    status: AgentStatus::WrapUp,
                    reason: None,
                    paused_here: true,
                }],
            },
        ];
        k.into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                ts: Ts(1_763_900_000_000 + i as i64),
                kind,
            })
            .collect()
    }

    #[test]
    fn every_event_kind_survives_the_stream() {
        let evs = every_kind();
        assert_eq!(decode(&encode(&evs)).unwrap(), evs);
    }

    #[test]
    fn a_foreign_message_is_refused_with_a_reason() {
        assert!(decode(b"hello").unwrap_err().contains("not an acdmon"));
        let e = decode(br#"[{"ts":1,"type":"agent_state","agent":"a","state":"dancing"}]"#)
            .unwrap_err();
        assert!(e.contains("dancing"), "{e}");
    }

    #[test]
    fn the_same_input_gets_the_same_id_and_other_input_another() {
        let p = SourcePosition {
            file: 7,
            offset: 4096,
        };
        assert_eq!(message_id("pbx", Some(p), b"x"), "pbx:7:4096");
        assert_eq!(parse_position(&position_header(p)), Some(p));
        let a = message_id("esl", None, &encode(&every_kind()));
        assert_eq!(a, message_id("esl", None, &encode(&every_kind())));
        assert_ne!(a, message_id("esl2", None, &encode(&every_kind())));
        assert_ne!(a, message_id("esl", None, &encode(&every_kind()[1..])));
        assert_eq!(
            origin_id("esl", Some("e4a2f:917"), b"whatever"),
            "esl:e4a2f:917"
        );
        assert_eq!(origin_id("esl", None, b"x"), message_id("esl", None, b"x"));
    }
}
