use super::super::parser::OwnedMessage;
use super::*;
use crate::event::{AgentStatus, Event, EventKind};

fn msg(s: &str) -> OwnedMessage {
    OwnedMessage {
        headers: s
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn timestamps_parse_without_floats() {
    assert_eq!(
        parse_timestamp("1700000000.123456"),
        Some(Ts(1_700_000_000_123))
    );
    assert_eq!(parse_timestamp("1700000000"), Some(Ts(1_700_000_000_000)));
    assert_eq!(parse_timestamp("1700000000.5"), Some(Ts(1_700_000_000_500)));
    assert_eq!(parse_timestamp("x.1"), None);
    assert_eq!(parse_timestamp("1.-5"), None);
}

#[test]
fn ring_time_units_differ_between_events() {
    let rna = msg(
        "Event: AgentRingNoAnswer\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nRingTime: 15000",
    );
    let Ok(Some(QueueEvent::AgentRingNoAnswer { ring_ms, .. })) = classify(&rna) else {
        panic!()
    };
    assert_eq!(ring_ms, 15_000);
    let con = msg(
        "Event: AgentConnect\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 12\nRingTime: 4",
    );
    let Ok(Some(QueueEvent::AgentConnect {
        ring_ms, hold_ms, ..
    })) = classify(&con)
    else {
        panic!()
    };
    assert_eq!((ring_ms, hold_ms), (4_000, 12_000));
}

#[test]
fn list_aliases_match_live_names() {
    let list = msg(
        "Event: QueueMember\nQueue: q\nName: Alice\nLocation: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 5\nLastCall: 0",
    );
    let live = msg(
        "Event: QueueMemberStatus\nQueue: q\nMemberName: Alice\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 5\nLastCall: 0\nRinginuse: 0",
    );
    let Ok(Some(QueueEvent::ListMember(a))) = classify(&list) else {
        panic!()
    };
    let Ok(Some(QueueEvent::Member { block: b, .. })) = classify(&live) else {
        panic!()
    };
    assert_eq!(a, b);
    assert_eq!(a.wrapup_ms, 5000);
}

#[test]
fn missing_and_bad_fields_are_rejected() {
    let r = classify(&msg("Event: QueueCallerJoin\nQueue: q")).unwrap_err();
    assert_eq!(r.reason, "missing_field");
    let r = classify(&msg(
        "Event: QueueMemberStatus\nQueue: q\nInterface: PJSIP/1\nStatus: 42",
    ))
    .unwrap_err();
    assert_eq!(r.reason, "bad_value");
    assert_eq!(classify(&msg("Event: Newexten\nChannel: x")), Ok(None));
}

#[test]
fn agent_ids_follow_the_naming_rule_and_directory() {
    let mut ids = AgentIds::new(AgentNaming::Auto);
    assert_eq!(ids.agent("PJSIP/1017", Some("Li Na")), "Li Na");
    assert_eq!(ids.agent("PJSIP/1017", Some("PJSIP/1017")), "PJSIP/1017");
    assert_eq!(ids.agent("PJSIP/1017", None), "PJSIP/1017");
    ids.insert("1017", "PJSIP/1017");
    assert_eq!(ids.agent("pjsip/1017", Some("Li Na")), "1017");
    let ids = AgentIds::new(AgentNaming::Interface);
    assert_eq!(ids.agent("PJSIP/1", Some("x")), "PJSIP/1");
}

fn run(tr: &mut Tracker, lines: &[(&str, i64)]) -> Vec<Event> {
    let mut out = Vec::new();
    for (m, t) in lines {
        let m = msg(m);
        if let Some(p) = m.get("Privilege") {
            tr.note_privilege(p);
        }
        if let Some(ev) = classify(&m).unwrap() {
            tr.handle_event(&ev, Ts(*t), &mut out);
        }
    }
    out
}

fn kinds(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .map(|e| match &e.kind {
            EventKind::CallExited { reason, .. } => format!("exited:{}", reason.as_str()),
            EventKind::AgentState { status, .. } => format!("agent:{}", status.as_str()),
            k => k.type_name().to_string(),
        })
        .collect()
}

const JOIN: &str =
    "Event: QueueCallerJoin\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1\nCallerIDNum: 100";
const ABANDON: &str =
    "Event: QueueCallerAbandon\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1\nHoldTime: 30";
const LEAVE: &str = "Event: QueueCallerLeave\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1";
const HUP: &str = "Event: HangupRequest\nPrivilege: call,all\nUniqueid: 1.1";
const MEMBER: &str = "Event: QueueMemberAdded\nPrivilege: agent,all\nQueue: q\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 0\nLastCall: 0";

/// Asterisk pauses a member per queue: paused in `q` only, the agent is
/// available, `q` counts it paused and `r` available; unpaused, both
/// count it available; paused in both, it is paused.
#[test]
fn a_pause_in_one_queue_counts_in_that_queue_only() {
    use crate::state::{Engine, EngineConfig};
    let member = |q: &str| {
        format!(
            "Event: QueueMemberAdded\nPrivilege: agent,all\nQueue: {q}\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 0\nLastCall: 0"
        )
    };
    let pause = |q: &str, p: u8| {
        format!(
            "Event: QueueMemberPause\nPrivilege: agent,all\nQueue: {q}\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: {p}\nPausedReason: coaching\nInCall: 0\nWrapuptime: 0\nLastCall: 0"
        )
    };
    let mut tr = Tracker::new(AgentIds::default());
    let mut e = Engine::starting_at(EngineConfig::default(), Ts(0));
    let mut step = |lines: &[String], t: i64, e: &mut Engine| {
        let refs: Vec<(&str, i64)> = lines.iter().map(|l| (l.as_str(), t)).collect();
        for ev in run(&mut tr, &refs) {
            e.apply(ev).unwrap();
        }
    };
    let counts = |e: &mut Engine, q: &str| {
        let i = e.queue_index(q);
        let v = e.queue_view(i);
        (v.agents.available, v.agents.paused)
    };
    step(&[member("q"), member("r")], 1000, &mut e);
    assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((1, 0), (1, 0)));
    step(&[pause("q", 1)], 2000, &mut e);
    assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((0, 1), (1, 0)));
    let a = e.agent_index("a");
    assert_eq!(e.agent_view(a).state, AgentStatus::Available);
    assert_eq!(e.agent_view(a).paused_in, ["q"]);
    step(&[pause("r", 1)], 3000, &mut e);
    assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((0, 1), (0, 1)));
    assert_eq!(e.agent_view(a).state, AgentStatus::Paused);
    step(&[pause("q", 0), pause("r", 0)], 4000, &mut e);
    assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((1, 0), (1, 0)));
    assert!(e.agent_view(a).paused_in.is_empty());
}

#[test]
fn hangup_request_before_abandon_means_abandoned() {
    let mut tr = Tracker::new(AgentIds::default());
    let ev = run(
        &mut tr,
        &[
            (MEMBER, 0),
            (JOIN, 1000),
            (HUP, 5000),
            (ABANDON, 5000),
            (LEAVE, 5000),
        ],
    );
    assert_eq!(
        kinds(&ev),
        [
            "agent_joined_queue",
            "agent:available",
            "call_enqueued",
            "call_abandoned"
        ]
    );
}

#[test]
fn abandon_without_hangup_request_is_a_timeout_or_empty() {
    let mut tr = Tracker::new(AgentIds::default());
    let other_call = "Event: Hangup\nPrivilege: call,all\nUniqueid: 9.9";
    let ev = run(
        &mut tr,
        &[
            (MEMBER, 0),
            (other_call, 1),
            (JOIN, 1000),
            (ABANDON, 31000),
            (LEAVE, 31000),
        ],
    );
    assert_eq!(kinds(&ev)[3], "exited:timeout");
    // No member at all: leavewhenempty.
    let mut tr = Tracker::new(AgentIds::default());
    let ev = run(&mut tr, &[(other_call, 1), (JOIN, 1000), (ABANDON, 2000)]);
    assert_eq!(kinds(&ev)[1], "exited:empty");
    // No call-class events ever: cannot tell; counted as abandoned.
    let mut tr = Tracker::new(AgentIds::default());
    let ev = run(&mut tr, &[(JOIN, 1000), (ABANDON, 2000)]);
    assert_eq!(kinds(&ev)[1], "call_abandoned");
}

#[test]
fn leave_then_connect_is_an_answer_and_bare_leave_is_a_key_exit() {
    let connect = "Event: AgentConnect\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 4\nRingTime: 2";
    let mut tr = Tracker::new(AgentIds::default());
    let ev = run(
        &mut tr,
        &[(MEMBER, 0), (JOIN, 1000), (LEAVE, 5000), (connect, 5000)],
    );
    assert_eq!(
        kinds(&ev),
        [
            "agent_joined_queue",
            "agent:available",
            "call_enqueued",
            "call_answered"
        ]
    );
    let mut tr = Tracker::new(AgentIds::default());
    let mut ev = run(&mut tr, &[(JOIN, 1000), (LEAVE, 5000)]);
    assert_eq!(kinds(&ev), ["call_enqueued"]);
    tr.handle_timeout(Ts(5000 + LEAVE_GRACE_MS), &mut ev);
    assert_eq!(kinds(&ev), ["call_enqueued", "exited:key"]);
    assert_eq!(ev[1].ts, Ts(5000));
    // The channel hanging up settles it at once.
    let mut tr = Tracker::new(AgentIds::default());
    let ev = run(&mut tr, &[(JOIN, 1000), (LEAVE, 5000), (HUP, 5100)]);
    assert_eq!(kinds(&ev), ["call_enqueued", "exited:key"]);
}

#[test]
fn member_wrapup_is_reported_and_ends() {
    let added = "Event: QueueMemberAdded\nQueue: q\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 10\nLastCall: 0";
    let connect = "Event: AgentConnect\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 4\nRingTime: 2";
    let complete = "Event: AgentComplete\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 4\nTalkTime: 60\nReason: caller";
    let mut tr = Tracker::new(AgentIds::default());
    let mut ev = run(
        &mut tr,
        &[
            (added, 0),
            (JOIN, 1000),
            (LEAVE, 5000),
            (connect, 5000),
            (complete, 65_000),
        ],
    );
    assert_eq!(
        kinds(&ev)[3..],
        ["call_answered", "call_completed", "agent:wrap_up"]
    );
    assert_eq!(tr.poll_timeout(), Some(Ts(75_000)));
    tr.handle_timeout(Ts(80_000), &mut ev);
    assert_eq!(kinds(&ev).last().unwrap(), "agent:available");
    assert_eq!(ev.last().unwrap().ts, Ts(75_000));
}
