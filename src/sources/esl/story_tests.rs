//! Session and mapping stories that the recorded transcripts do not cover:
//! each feeds plain-format frames, as FreeSWITCH writes them, to a session.

use super::session::{EventFormat, Output, Session, SessionConfig};
use crate::config::Secret;
use crate::event::{AgentStatus, EventKind};
use crate::time::Ts;

const T0: i64 = 1_795_395_600; // 2026-11-23 09:00:00 +08:00

fn enc(v: &str) -> String {
    let mut s = String::new();
    for b in v.bytes() {
        if !(0x20..=0x7e).contains(&b) || b"\r\n #%&+:;<=>?@[\\]^`{|}\"".contains(&b) {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push(b as char);
        }
    }
    if s.is_empty() { "_undef_".into() } else { s }
}

/// A plain event at `t` seconds after T0 (plus `ms`).
fn ev(t: i64, seq: u64, h: &[(&str, &str)]) -> Vec<u8> {
    ev_core(t, seq, "core-1", h)
}

fn ev_core(t: i64, seq: u64, core: &str, h: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::from("Event-Subclass: callcenter%3A%3Ainfo\n");
    for (k, v) in h {
        body.push_str(&format!("{k}: {}\n", enc(v)));
    }
    body.push_str(&format!(
        "Event-Name: CUSTOM\nCore-UUID: {core}\nEvent-Date-Timestamp: {}\nEvent-Sequence: {seq}\n\n",
        (T0 + t) * 1_000_000 + 250_000
    ));
    format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n{body}",
        body.len()
    )
    .into_bytes()
}

fn api(body: &str) -> Vec<u8> {
    format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{body}",
        body.len()
    )
    .into_bytes()
}

fn reply(t: &str) -> Vec<u8> {
    format!("Content-Type: command/reply\nReply-Text: {t}\n\n").into_bytes()
}

struct Rig {
    s: Session,
}

impl Rig {
    fn new(f: impl FnOnce(&mut SessionConfig)) -> Rig {
        let mut cfg = SessionConfig::replay();
        cfg.replay = false;
        cfg.check_counts = true;
        cfg.password = Secret::inline("ClueCon");
        f(&mut cfg);
        Rig {
            s: Session::new(cfg),
        }
    }

    fn feed(&mut self, bytes: &[u8], now_s: i64) {
        self.s.handle_input(bytes, Ts::from_secs(T0 + now_s));
        assert_eq!(self.s.buffered(), 0, "whole frames only");
    }

    /// Handshake with one queue, agents 1000 and 1001 Available/Waiting,
    /// wrap-up `wrap` s, busy delay 20 s.
    fn connect(&mut self, wrap: u32, waiting: &[&str]) {
        self.feed(b"Content-Type: auth/request\n\n", 0);
        self.feed(&reply("+OK accepted"), 0);
        self.feed(&reply("+OK event listener enabled plain"), 0);
        self.feed(&api("name|strategy|moh_sound\nq1|ring-all|x\n+OK\n"), 0);
        let agents = format!(
            "name|instance_id|uuid|type|contact|status|state|max_no_answer|wrap_up_time|reject_delay_time|busy_delay_time|no_answer_delay_time|last_bridge_start|last_bridge_end|last_offered_call|last_status_change|no_answer_count|calls_answered|talk_time|ready_time|external_calls_count\n\
1000|single_box||Callback|user/1000|Available|Waiting|3|{wrap}|10|20|30|0|0|0|0|0|0|0|0|0\n\
1001|single_box||Callback|user/1001|Available (On Demand)|Waiting|3|{wrap}|10|20|30|0|0|0|0|0|0|0|0|0\n+OK\n"
        );
        self.feed(&api(&agents), 0);
        let mut members = String::new();
        if !waiting.is_empty() {
            members.push_str("queue|instance_id|uuid|session_uuid|cid_number|cid_name|system_epoch|joined_epoch|rejoined_epoch|bridge_epoch|abandoned_epoch|base_score|skill_score|serving_agent|serving_system|state|score\n");
            for w in waiting {
                members.push_str(&format!(
                    "q1|single_box|{w}|s-{w}|100|X|{T0}|{T0}|0|0|0|0|0|||Waiting|0\n"
                ));
            }
        }
        members.push_str("+OK\n");
        self.feed(&api(&members), 0);
        self.feed(
            &api("queue|agent|state|level|position\nq1|1000|Ready|1|1\nq1|1001|Ready|1|1\n+OK\n"),
            0,
        );
        assert!(self.s.is_synced());
        self.take();
    }

    fn take(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.s.poll_output()).collect()
    }

    fn events(&mut self) -> Vec<(i64, EventKind)> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(((e.ts.0 - T0 * 1000), e.kind)),
                _ => None,
            })
            .collect()
    }

    fn sent(&mut self) -> Vec<String> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(b) => Some(String::from_utf8_lossy(&b).trim().to_string()),
                _ => None,
            })
            .collect()
    }
}

fn state(agent: &str, status: AgentStatus, reason: Option<&str>, queue: Option<&str>) -> EventKind {
    EventKind::AgentState {
        agent: agent.into(),
        status,
        reason: reason.map(str::to_string),
        queue: queue.map(str::to_string),
    }
}

fn start(t: i64, seq: u64, call: &str) -> Vec<u8> {
    ev(
        t,
        seq,
        &[
            ("CC-Queue", "q1"),
            ("CC-Action", "member-queue-start"),
            ("CC-Member-UUID", call),
            ("CC-Member-Session-UUID", &format!("s-{call}")),
            ("CC-Member-CID-Number", "100"),
            ("variable_cc_queue_joined_epoch", &(T0 + t).to_string()),
        ],
    )
}

#[test]
fn the_handshake_authenticates_subscribes_and_lists() {
    let mut r = Rig::new(|c| c.format = EventFormat::Json);
    r.feed(b"Content-Type: auth/request\n\n", 0);
    r.feed(&reply("+OK accepted"), 0);
    r.feed(&reply("+OK event listener enabled json"), 0);
    r.feed(&api("name|strategy\nq1|ring-all\nq2|top-down\n+OK\n"), 0);
    let sent = r.sent();
    assert_eq!(sent[0], "auth ClueCon");
    assert!(!format!("{:?}", Output::Send(b"auth ClueCon".to_vec())).contains("ClueCon"));
    assert_eq!(sent[1], "event json CUSTOM callcenter::info");
    assert_eq!(sent[2], "api callcenter_config queue list");
    assert_eq!(sent.len(), 3 + 6);
    assert_eq!(sent[8], "api callcenter_config queue list tiers q2");
}

#[test]
fn json_events_map_like_plain_ones() {
    let mut r = Rig::new(|c| c.format = EventFormat::Json);
    r.connect(0, &[]);
    let body = format!(
        r#"{{"Event-Name":"CUSTOM","Event-Subclass":"callcenter::info","CC-Action":"member-queue-start","CC-Queue":"q1","CC-Member-UUID":"m7","CC-Member-CID-Number":"+86 10 1234","Event-Date-Timestamp":"{}","Event-Sequence":"9","_body":""}}"#,
        (T0 + 3) * 1_000_000
    );
    let frame = format!(
        "Content-Length: {}\nContent-Type: text/event-json\n\n{body}",
        body.len()
    );
    r.feed(frame.as_bytes(), 3);
    assert_eq!(
        r.events(),
        [(
            3_000,
            EventKind::CallEnqueued {
                call: "m7".into(),
                queue: "q1".into(),
                caller: Some("+86 10 1234".into()),
                priority: None
            }
        )]
    );
}

#[test]
fn a_refused_password_closes_without_showing_it() {
    let mut r = Rig::new(|_| {});
    r.feed(b"Content-Type: auth/request\n\n", 0);
    r.feed(&reply("-ERR invalid"), 0);
    let closes: Vec<String> = r
        .take()
        .into_iter()
        .filter_map(|o| match o {
            Output::Close(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(closes.len(), 1);
    assert!(closes[0].contains("authentication refused"));
    assert!(!closes[0].contains("ClueCon"));
}

#[test]
fn a_missing_mod_callcenter_is_named() {
    let mut r = Rig::new(|_| {});
    r.feed(b"Content-Type: auth/request\n\n", 0);
    r.feed(&reply("+OK accepted"), 0);
    r.feed(&reply("+OK event listener enabled plain"), 0);
    r.feed(&api("-ERR callcenter_config Command not found!\n"), 0);
    assert!(
        r.take()
            .iter()
            .any(|o| matches!(o, Output::Close(w) if w.contains("is mod_callcenter loaded?")))
    );
}

#[test]
fn events_during_a_resync_are_applied_after_it() {
    let mut r = Rig::new(|_| {});
    r.feed(b"Content-Type: auth/request\n\n", 0);
    r.feed(&reply("+OK accepted"), 0);
    r.feed(&reply("+OK event listener enabled plain"), 0);
    // A caller joins while the lists are being read; it is also listed.
    r.feed(&start(1, 10, "m1"), 1);
    r.feed(&start(2, 11, "m2"), 2);
    r.feed(&api("name|strategy\nq1|ring-all\n+OK\n"), 2);
    r.feed(&api("+OK\n"), 2);
    r.feed(&api(&format!("queue|instance_id|uuid|session_uuid|cid_number|cid_name|system_epoch|joined_epoch|rejoined_epoch|bridge_epoch|abandoned_epoch|base_score|skill_score|serving_agent|serving_system|state|score\nq1|single_box|m1|s-m1|100|X|0|{}|0|0|0|0|0|||Waiting|1\n+OK\n", T0 + 1)), 2);
    r.feed(&api("+OK\n"), 2);
    let evs = r.events();
    // m1, first seen in the list, is an arrival (at its joined_epoch), then
    // the resync; its held member-queue-start is not counted again. m2
    // joined after the snapshot.
    assert!(matches!(&evs[0].1, EventKind::CallEnqueued { call, .. } if call == "m1"));
    assert!(matches!(&evs[1].1, EventKind::QueueResync { callers, .. } if callers.len() == 1));
    let enq: Vec<&EventKind> = evs
        .iter()
        .map(|e| &e.1)
        .filter(|k| matches!(k, EventKind::CallEnqueued { .. }))
        .collect();
    assert_eq!(enq.len(), 2);
    assert!(matches!(enq[1], EventKind::CallEnqueued { call, .. } if call == "m2"));
}

#[test]
fn a_caller_who_hangs_up_while_being_connected_is_an_abandon_not_an_answer() {
    let mut r = Rig::new(|_| {});
    r.connect(0, &[]);
    r.feed(&start(0, 1, "m1"), 0);
    r.feed(
        &ev(
            5,
            2,
            &[
                ("CC-Agent", "1000"),
                ("CC-Action", "agent-state-change"),
                ("CC-Agent-State", "Receiving"),
            ],
        ),
        5,
    );
    r.feed(
        &ev(
            9,
            3,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "bridge-agent-start"),
                ("CC-Agent", "1000"),
                ("CC-Agent-Answered-Time", &(T0 + 9).to_string()),
                ("CC-Member-Joined-Time", &T0.to_string()),
                ("CC-Member-UUID", "m1"),
            ],
        ),
        9,
    );
    // The bridge fails: the caller is gone.
    r.feed(
        &ev(
            9,
            4,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "bridge-agent-end"),
                ("CC-Agent", "1000"),
                ("CC-Agent-Bridged", "false"),
                ("CC-Member-UUID", "m1"),
            ],
        ),
        9,
    );
    r.feed(
        &ev(
            9,
            5,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "member-queue-end"),
                ("CC-Cause", "Cancel"),
                ("CC-Cancel-Reason", "NONE"),
                ("CC-Member-Leaving-Time", &(T0 + 9).to_string()),
                ("CC-Member-Joined-Time", &T0.to_string()),
                ("CC-Member-UUID", "m1"),
            ],
        ),
        9,
    );
    r.feed(
        &ev(
            9,
            6,
            &[
                ("CC-Agent", "1000"),
                ("CC-Action", "agent-state-change"),
                ("CC-Agent-State", "Waiting"),
            ],
        ),
        9,
    );
    let kinds: Vec<&str> = r.events().iter().map(|e| e.1.type_name()).collect();
    assert_eq!(
        kinds,
        [
            "call_enqueued",
            "agent_state",
            "call_abandoned",
            "agent_state"
        ]
    );
}

#[test]
fn a_busy_agent_is_paused_for_its_busy_delay_then_available() {
    let mut r = Rig::new(|_| {});
    r.connect(0, &[]);
    r.feed(
        &ev(
            3,
            1,
            &[
                ("CC-Agent", "1000"),
                ("CC-Action", "agent-state-change"),
                ("CC-Agent-State", "Receiving"),
            ],
        ),
        3,
    );
    r.feed(
        &ev(
            4,
            2,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "bridge-agent-fail"),
                ("CC-Agent", "1000"),
                ("CC-Hangup-Cause", "USER_BUSY"),
                ("CC-Agent-Aborted-Time", &(T0 + 4).to_string()),
                ("CC-Member-UUID", "m9"),
            ],
        ),
        4,
    );
    r.s.handle_timeout(Ts::from_secs(T0 + 10));
    r.s.handle_timeout(Ts::from_secs(T0 + 30));
    let evs = r.events();
    assert_eq!(
        evs,
        [
            (3_250, state("1000", AgentStatus::Ringing, None, None)),
            (
                4_250,
                state("1000", AgentStatus::Paused, Some("busy-delay"), None)
            ),
            (24_000, state("1000", AgentStatus::Available, None, None)),
        ]
    );
}

#[test]
fn the_end_of_a_busy_delay_is_the_sessions_next_deadline() {
    let mut r = Rig::new(|_| {});
    r.connect(0, &[]);
    assert_eq!(r.s.poll_timeout(), None, "nothing timed yet");
    r.feed(
        &ev(
            4,
            1,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "bridge-agent-fail"),
                ("CC-Agent", "1000"),
                ("CC-Hangup-Cause", "USER_BUSY"),
                ("CC-Agent-Aborted-Time", &(T0 + 4).to_string()),
                ("CC-Member-UUID", "m9"),
            ],
        ),
        4,
    );
    let end = Ts(T0 * 1000 + 24_000);
    assert_eq!(r.s.poll_timeout(), Some(end), "busy delay of 20 s");
    r.take();
    r.s.handle_timeout(end);
    assert_eq!(
        r.events(),
        [(24_000, state("1000", AgentStatus::Available, None, None))]
    );
    assert_eq!(r.s.poll_timeout(), None);
}

#[test]
fn on_demand_agents_wrap_up_until_set_waiting_and_a_repeated_status_is_silent() {
    let mut r = Rig::new(|_| {});
    r.connect(0, &["m1"]);
    let t = |s: i64| (T0 + s).to_string();
    r.feed(
        &ev(
            5,
            1,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "bridge-agent-start"),
                ("CC-Agent", "1001"),
                ("CC-Agent-Answered-Time", &t(5)),
                ("CC-Member-Joined-Time", &t(0)),
                ("CC-Member-UUID", "m1"),
            ],
        ),
        5,
    );
    r.feed(
        &ev(
            5,
            2,
            &[
                ("CC-Agent", "1001"),
                ("CC-Action", "agent-state-change"),
                ("CC-Agent-State", "In a queue call"),
            ],
        ),
        5,
    );
    r.feed(
        &ev(
            65,
            3,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "bridge-agent-end"),
                ("CC-Agent", "1001"),
                ("CC-Agent-Bridged", "true"),
                ("CC-Agent-Answered-Time", &t(5)),
                ("CC-Bridge-Terminated-Time", &t(65)),
                ("CC-Member-UUID", "m1"),
            ],
        ),
        65,
    );
    r.feed(
        &ev(
            65,
            4,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "member-queue-end"),
                ("CC-Cause", "Terminated"),
                ("CC-Agent", "1001"),
                ("CC-Member-UUID", "m1"),
                ("CC-Member-Leaving-Time", &t(65)),
            ],
        ),
        65,
    );
    r.feed(
        &ev(
            65,
            5,
            &[
                ("CC-Agent", "1001"),
                ("CC-Action", "agent-state-change"),
                ("CC-Agent-State", "Idle"),
            ],
        ),
        65,
    );
    r.feed(
        &ev(
            70,
            6,
            &[
                ("CC-Agent", "1001"),
                ("CC-Action", "agent-status-change"),
                ("CC-Agent-Status", "Available (On Demand)"),
            ],
        ),
        70,
    );
    r.feed(
        &ev(
            90,
            7,
            &[
                ("CC-Agent", "1001"),
                ("CC-Action", "agent-state-change"),
                ("CC-Agent-State", "Waiting"),
            ],
        ),
        90,
    );
    let evs = r.events();
    assert_eq!(
        evs,
        [
            (
                5_000,
                EventKind::CallAnswered {
                    call: "m1".into(),
                    queue: "q1".into(),
                    agent: "1001".into()
                }
            ),
            (
                65_000,
                EventKind::CallCompleted {
                    call: "m1".into(),
                    queue: "q1".into(),
                    agent: "1001".into()
                }
            ),
            (65_000, state("1001", AgentStatus::WrapUp, None, Some("q1"))),
            (90_250, state("1001", AgentStatus::Available, None, None)),
        ]
    );
}

#[test]
fn members_count_disagreeing_twice_forces_a_resync() {
    let mut r = Rig::new(|_| {});
    r.connect(0, &["m1"]);
    let count = |t, seq, n: &str| {
        ev(
            t,
            seq,
            &[
                ("CC-Queue", "q1"),
                ("CC-Action", "members-count"),
                ("CC-Count", n),
                ("CC-Selection", "Single-Queue"),
            ],
        )
    };
    r.feed(&count(1, 1, "1"), 1);
    r.feed(&count(2, 2, "3"), 2);
    assert!(r.sent().is_empty(), "one mismatch may be a race");
    r.feed(&count(3, 3, "3"), 3);
    assert_eq!(r.sent(), ["api callcenter_config queue list"]);
    assert!(!r.s.is_synced());
}

#[test]
fn a_restarted_switch_or_a_sequence_going_back_forces_a_resync() {
    let mut r = Rig::new(|c| c.max_sequence_gap = Some(1000));
    r.connect(0, &[]);
    fn status(s: &str) -> [(&str, &str); 3] {
        [
            ("CC-Agent", "1000"),
            ("CC-Action", "agent-status-change"),
            ("CC-Agent-Status", s),
        ]
    }
    r.feed(&ev(1, 100, &status("Available")), 1);
    r.feed(&ev(2, 900, &status("Available")), 2);
    assert!(
        r.sent().is_empty(),
        "a jump within max_sequence_gap is normal"
    );
    r.feed(&ev_core(3, 901, "core-2", &status("On Break")), 3);
    assert_eq!(r.sent(), ["api callcenter_config queue list"]);
    // The event that showed the gap is held and applied after the lists.
    r.feed(&api("name|strategy\nq1|ring-all\n+OK\n"), 3);
    r.feed(&api("+OK\n"), 3);
    r.feed(&api("+OK\n"), 3);
    r.feed(&api("+OK\n"), 3);
    let evs = r.events();
    assert!(matches!(&evs[0].1, EventKind::QueueResync { .. }));
    assert_eq!(
        evs[1].1,
        state("1000", AgentStatus::Paused, Some("On Break"), None)
    );
    r.feed(&ev_core(4, 5, "core-2", &status("Available")), 4);
    assert_eq!(
        r.sent(),
        ["api callcenter_config queue list"],
        "sequence went back"
    );
}

#[test]
fn cti_commands_are_answered_in_order_and_tier_changes_become_events() {
    let mut r = Rig::new(|_| {});
    assert!(
        r.s.submit(1, "callcenter_config tier add q1 1002", None)
            .is_err()
    );
    r.connect(0, &[]);
    let joined = EventKind::AgentJoinedQueue {
        agent: "1002".into(),
        queue: "q1".into(),
    };
    r.s.submit(
        7,
        "callcenter_config tier add q1 1002",
        Some(joined.clone()),
    )
    .unwrap();
    r.s.submit(8, "callcenter_config tier add q1 1003", Some(joined))
        .unwrap();
    assert_eq!(
        r.sent(),
        [
            "api callcenter_config tier add q1 1002",
            "api callcenter_config tier add q1 1003"
        ]
    );
    r.feed(&api("+OK\n"), 5);
    r.feed(&api("-ERR Agent not found!\n"), 5);
    let out = r.take();
    let replies: Vec<(u64, String)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reply { id, result } => Some((*id, result.clone().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(
        replies,
        [
            (7, "+OK\n".to_string()),
            (8, "-ERR Agent not found!\n".to_string())
        ]
    );
    let joins = out.iter().filter(|o| matches!(o, Output::Event(e) if matches!(e.kind, EventKind::AgentJoinedQueue { .. }))).count();
    assert_eq!(joins, 1, "only the +OK one");
    // A lost connection fails what is still pending.
    r.s.submit(9, "callcenter_config tier del q1 1002", None)
        .unwrap();
    r.take();
    r.s.handle_disconnect("reset by peer");
    assert!(r.take().iter().any(
        |o| matches!(o, Output::Reply { id: 9, result: Err(e) } if e.contains("reset by peer"))
    ));
}
