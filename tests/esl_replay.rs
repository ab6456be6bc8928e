//! Recorded FreeSWITCH event-socket transcripts (tests/data/esl, written by
//! make_transcripts.py to FreeSWITCH's serializer rules: no FreeSWITCH runs
//! here) through the ESL replay decoder and `acdmon replay --format esl`.
//!
//! The recorded morning (day.esl; queue support@default, T = 20 s, short
//! abandon 5 s, both agents with wrap-up-time 10 s and
//! no-answer-delay-time 30 s in the resync list). Times are the CC-*-Time
//! headers (whole seconds), as mod_callcenter computes them:
//!
//! | call | joined   | left     | outcome                              | wait | talk | wrap-up |
//! |------|----------|----------|--------------------------------------|------|------|---------|
//! | c1   | 09:00:00 | 09:00:08 | answered 1000                        | 8    | 180  | 10 (to 09:03:18) |
//! | c2   | 09:01:00 | 09:01:50 | 1001 NO_ANSWER at 09:01:16 (paused to 09:01:46), then answered 1001 | 50 | 240 | 10 (to 09:06:00) |
//! | c3   | 09:02:00 | 09:02:03 | abandoned (BREAK_OUT), short         | 3    |      |         |
//! | c4   | 09:02:30 | 09:03:00 | abandoned (BREAK_OUT)                | 30   |      |         |
//! | c5   | 09:03:10 | 09:03:25 | answered 1000 (after its wrap-up)    | 15   | 120  | cut by On Break at 09:05:30.25: 5.25 |
//! | c6   | 09:04:00 | 09:04:40 | exited, EXIT_WITH_KEY                | 40   |      |         |
//! | c7   | 09:05:00 | 09:06:00 | exited, TIMEOUT                      | 60   |      |         |
//! | c8   | 09:06:30 | 09:06:40 | answered 1001, still talking         | 10   |      |         |
//! | c9   | 09:07:00 | -        | waiting at the last event (09:08:00) | 60   |      |         |
//!
//! Offered 8 = answered 4 + abandoned 2 + exited 2. In SL (wait <= 20 s):
//! answered c1, c5, c8 = 3; abandoned c3 = 1; short abandons: c3.
//! SL answered 3/4, offered 3/8, abandon_negative 3/(8-1), abandon_positive
//! (3+1)/8. ASA (8+50+15+10)/4 = 20.75 s. AHT over the 3 completed calls:
//! talk 180+240+120 plus wrap-up 10+10+5.25 = 565.25/3 = 188.417 s.
//! Abandon rate 2/8. At 09:08:00 1000 is back from break (available), 1001
//! is on c8.

use std::process::Command;

use acdmon::event::{AgentStatus, Event, EventKind, ExitReason};
use acdmon::sources::esl::EslReplay;
use acdmon::time::Ts;
use serde_json::Value;

fn data(name: &str) -> String {
    format!("{}/tests/data/esl/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

/// 2026-11-23 hh:mm:ss in Asia/Shanghai.
fn at(h: i64, m: i64, s: i64) -> Ts {
    Ts::from_secs(1_795_363_200 + h * 3600 + m * 60 + s)
}

fn decode(bytes: &[u8], chunk: usize) -> (Vec<Event>, Vec<&'static str>) {
    let mut d = EslReplay::new();
    let mut events = Vec::new();
    let mut rejects = Vec::new();
    let mut take = |rs: Vec<Result<Event, acdmon::sources::Reject>>| {
        for r in rs {
            match r {
                Ok(e) => events.push(e),
                Err(r) => rejects.push(r.reason.as_str()),
            }
        }
    };
    for part in bytes.chunks(chunk) {
        take(d.feed(part));
    }
    take(d.finish());
    (events, rejects)
}

fn replay(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-3)
}

#[test]
fn a_recorded_morning_gives_the_hand_computed_kpis() {
    let config = data("day.toml");
    let input = data("day.esl");
    let explicit = replay(&["--config", &config, "--format", "esl", &input]);
    let detected = replay(&["--config", &config, &input]);
    assert_eq!(
        explicit, detected,
        "the format is detected from the transcript"
    );
    let r = explicit;
    assert_eq!(r["rejected"], serde_json::json!({}));
    let q = &r["queues"][0];
    assert_eq!(q["queue"], "support@default");
    assert_eq!(q["waiting"], 1, "c9");
    assert!(close(&q["longest_wait_s"], 60.0), "{}", q["longest_wait_s"]);
    assert_eq!(q["agents"]["logged_in"], 2);
    assert_eq!(q["agents"]["available"], 1, "1000 back from break");
    assert_eq!(q["agents"]["on_call"], 1, "1001 on c8");
    let t = &q["windows"]["today"];
    assert_eq!(t["offered"], 8);
    assert_eq!(t["answered"], 4);
    assert_eq!(t["answered_in_sl"], 3);
    assert_eq!(t["abandoned"], 2);
    assert_eq!(t["abandoned_in_sl"], 1);
    assert_eq!(t["short_abandoned"], 1);
    assert_eq!(t["exited"], 2);
    assert!(close(&t["sl"]["answered"], 3.0 / 4.0));
    assert!(close(&t["sl"]["offered"], 3.0 / 8.0));
    assert!(close(&t["sl"]["abandon_negative"], 3.0 / 7.0));
    assert!(close(&t["sl"]["abandon_positive"], 4.0 / 8.0));
    assert!(close(&t["service_level"], 3.0 / 7.0));
    assert!(close(&t["asa_s"], 83.0 / 4.0));
    assert!(close(&t["aht_s"], 565.25 / 3.0), "{}", t["aht_s"]);
    assert!(close(&t["abandon_rate"], 2.0 / 8.0));
    let agents = r["agents"].as_array().unwrap();
    let a = |id: &str| agents.iter().find(|a| a["agent"] == id).unwrap().clone();
    assert_eq!(a("1000@default")["state"], "available");
    assert_eq!(a("1000@default")["name"], "Li Na");
    assert_eq!(a("1001@default")["state"], "on_call");
}

#[test]
fn the_decoder_times_what_mod_callcenter_never_announces() {
    let (events, rejects) = decode(&read("day.esl"), usize::MAX);
    assert!(rejects.is_empty(), "{rejects:?}");
    let states = |agent: &str| -> Vec<(Ts, AgentStatus, Option<String>)> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::AgentState {
                    agent: a,
                    status,
                    reason,
                    ..
                } if a == agent => Some((e.ts, *status, reason.clone())),
                _ => None,
            })
            .collect()
    };
    // The resync comes first, with both agents available.
    let EventKind::QueueResync {
        queue,
        members,
        callers,
    } = &events[0].kind
    else {
        panic!("{:?}", events[0])
    };
    assert_eq!(queue, "support@default");
    assert!(callers.is_empty());
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.status == AgentStatus::Available));

    let s1000 = states("1000@default");
    // Wrap-up after c1 is timed from the agent's wrap-up-time (10 s).
    assert!(
        s1000.contains(&(at(9, 3, 8), AgentStatus::WrapUp, None)),
        "{s1000:?}"
    );
    assert!(
        s1000.contains(&(at(9, 3, 18), AgentStatus::Available, None)),
        "{s1000:?}"
    );
    let s1001 = states("1001@default");
    // The no-answer delay (30 s) after NO_ANSWER at 09:01:16.
    let paused = s1001
        .iter()
        .find(|s| s.1 == AgentStatus::Paused)
        .expect("paused by the no-answer delay");
    assert_eq!(paused.2.as_deref(), Some("no-answer-delay"));
    assert!(
        s1001.contains(&(at(9, 1, 46), AgentStatus::Available, None)),
        "{s1001:?}"
    );
    // The status-change at 09:00:30 that changed nothing sent nothing.
    assert!(
        !s1001
            .iter()
            .any(|s| s.0 >= at(9, 0, 30) && s.0 < at(9, 1, 0))
    );

    // Call times come from the CC-*-Time headers.
    let answered: Vec<(Ts, &str)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallAnswered { agent, .. } => Some((e.ts, agent.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        answered,
        [
            (at(9, 0, 8), "1000@default"),
            (at(9, 1, 50), "1001@default"),
            (at(9, 3, 25), "1000@default"),
            (at(9, 6, 40), "1001@default"),
        ]
    );
    let exits: Vec<ExitReason> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallExited { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(exits, [ExitReason::Key, ExitReason::Timeout]);
    // URL-decoded caller numbers.
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::CallEnqueued { caller: Some(c), .. } if c == "+86 138 0000 0007")));
}

#[test]
fn garbage_and_half_frames_are_survived_whatever_the_chunking() {
    let bytes = read("garbage.esl");
    let (whole, rejects) = decode(&bytes, usize::MAX);
    // A text block, a bad Content-Length and binary junk are frames we
    // cannot read; an event without header lines and broken JSON are events
    // we cannot read. The log/data frame is not ours and is ignored.
    let mut r = rejects.clone();
    r.sort();
    assert_eq!(
        r,
        [
            "malformed_event",
            "malformed_event",
            "malformed_frame",
            "malformed_frame",
            "malformed_frame"
        ]
    );
    let kinds: Vec<&str> = whole.iter().map(|e| e.kind.type_name()).collect();
    assert_eq!(kinds, ["queue_resync", "call_enqueued", "call_exited"]);
    for chunk in [1, 2, 7, 64, 1000] {
        let (events, rej) = decode(&bytes, chunk);
        assert_eq!(events, whole, "chunk {chunk}");
        assert_eq!(rej.len(), rejects.len(), "chunk {chunk}");
    }
    // A transcript cut inside a frame: everything before it, and one reject.
    let cut = &bytes[..bytes.len() - 10];
    let (events, rej) = decode(cut, 100);
    assert_eq!(events.len(), 2);
    assert_eq!(rej.iter().filter(|r| **r == "truncated_frame").count(), 1);
}

#[test]
fn a_recorded_drop_and_resync_are_followed() {
    let (events, rejects) = decode(&read("reconnect.esl"), 333);
    assert!(rejects.is_empty(), "{rejects:?}");
    let resyncs: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::QueueResync {
                callers, members, ..
            } => Some((callers.len(), members.len())),
            _ => None,
        })
        .collect();
    // First connection: m0 waiting. Second: m1 and m2. After the gap: m2.
    assert_eq!(resyncs, [(1, 2), (2, 2), (1, 2)]);
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::CallAbandoned { .. }))
    );
    assert!(matches!(
        &events.last().unwrap().kind,
        EventKind::CallEnqueued { .. }
    ));
}
