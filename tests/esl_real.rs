//! Captures of a real FreeSWITCH 1.10.12 (mod_callcenter, loopback
//! channels), recorded from the event socket by esl_tee.py in front of a
//! running `acdmon run` (tests/data/esl/real/README.md says exactly how),
//! through `acdmon replay` and the ESL replay decoder. Beside each capture:
//! FreeSWITCH's own figures (`*.freeswitch.txt`, asked at the end of the
//! recording) and the live daemon's API (`*.live-*.json`).

use std::process::Command;

use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::sources::esl::EslReplay;
use acdmon::time::Ts;
use serde_json::Value;

fn data(name: &str) -> String {
    format!("{}/tests/data/esl/real/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn replay(config: &str, capture: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--config", &data(config), "--format", "esl"])
        .arg(data(capture))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn queue<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["queues"]
        .as_array()
        .or_else(|| report.as_array())
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(data(name)).unwrap()).unwrap()
}

/// FreeSWITCH's own `calls_answered` and `calls_abandoned` for a queue, from
/// the `callcenter_config queue list` it answered at the end.
fn freeswitch_counts(file: &str, queue: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(data(file)).unwrap();
    let header = text
        .lines()
        .find(|l| l.starts_with("name|strategy|"))
        .unwrap();
    let cols: Vec<&str> = header.split('|').collect();
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with(&format!("{queue}|")) && l.split('|').count() == cols.len())
        .unwrap()
        .split('|')
        .collect();
    let col = |name: &str| -> u64 {
        row[cols.iter().position(|c| *c == name).unwrap()]
            .parse()
            .unwrap()
    };
    (col("calls_answered"), col("calls_abandoned"))
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 0.001)
}

/// outage.esl: two agents (wrap-up 4 s), max-wait-time 10 s. The recorded
/// connection is cut at 5 s and comes back (daemon backoff) after 27 s;
/// a second, 2 s cut follows at 48 s. The event times are FreeSWITCH's:
///
/// | call | joined | outcome                                   | seen by the recorded socket |
/// |------|--------|-------------------------------------------|-----------------------------|
/// | c01  | 0      | 1000 at 1, talk to 8 (`last_bridge_end`)   | start, answer; end in the outage |
/// | c02  | 1      | 1001 at 2, talk to 37                      | all |
/// | c03  | 3      | waits, 1000 at 13 (after c01's wrap-up)    | start; answer in the outage: `Answered`, `bridge_epoch` |
/// | c04  | 4      | hangs up at 7                              | start; end in the outage: `Abandoned`, waited 3 s |
/// | c05  | 6      | times out at 16 (10 s)                     | nothing: `Abandoned`, waited 10 s = max-wait-time |
/// | c06  | 38     | 1000 at 39, talk to 42                     | all |
///
/// FreeSWITCH's own count: answered 4, abandoned 2 (its abandoned includes
/// the timeout). c04 and c05 are listed `Abandoned` by both resyncs.
#[test]
fn outcomes_during_an_outage_come_back_from_the_lists_once() {
    let r = replay("live.toml", "outage.esl");
    let q = queue(&r, "support@default");
    let t = &q["totals"];
    assert_eq!(t["offered"], 6, "{t}");
    assert_eq!(t["answered"], 4);
    assert_eq!(t["abandoned"], 1);
    assert_eq!(t["exited"]["timeout"], 1);
    let (answered, abandoned) = freeswitch_counts("outage.freeswitch.txt", "support@default");
    assert_eq!((answered, abandoned), (4, 2), "FreeSWITCH's own figures");
    assert_eq!(t["answered"].as_u64(), Some(answered));
    assert_eq!(
        t["abandoned"].as_u64().unwrap() + t["exited"]["timeout"].as_u64().unwrap(),
        abandoned
    );
    // The same figures as the live daemon that was recorded.
    let live = json("outage.live-queues.json");
    let lq = queue(&live, "support@default");
    for k in ["offered", "answered", "abandoned", "exited"] {
        assert_eq!(t[k], lq["totals"][k], "{k}");
    }
    let (w, lw) = (&q["windows"]["today"], &lq["windows"]["today"]);
    for k in ["asa_s", "aht_s", "handled", "answered_in_sl"] {
        assert_eq!(w[k], lw[k], "{k}");
    }
    assert_eq!(r["rejected"], serde_json::json!({}));
    // The caller nobody saw (c05) is an arrival, and its 10 s wait the
    // timeout; c03's wait is bridge_epoch - joined_epoch; both are in the
    // interval's wait figures through the answer count.
    assert_eq!(w["arrivals"], 6);
    assert_eq!(q["waiting"], 0);
}

/// onbreak.esl: 1000 is bridged to c10; 4 s into the call both agents are
/// set `On Break` (`agent set status … 'On Break'`), FreeSWITCH lists 1000
/// as `On Break|In a queue call` (onbreak.drive.log) and keeps the call up;
/// the caller hangs up 5 s later. Then both are set Available; 1001 is set
/// `Logged Out` (listed with state `Waiting`) and Available again.
#[test]
fn a_break_set_during_a_call_applies_when_the_call_ends() {
    let bytes = std::fs::read(data("onbreak.esl")).unwrap();
    let mut d = EslReplay::new();
    let mut evs: Vec<Event> = Vec::new();
    for r in d.feed(&bytes).into_iter().chain(d.finish()) {
        evs.push(r.expect("no rejects in a real capture"));
    }
    let answered = evs
        .iter()
        .find(
            |e| matches!(&e.kind, EventKind::CallAnswered { agent, .. } if agent == "1000@default"),
        )
        .unwrap()
        .ts;
    let ended = evs
        .iter()
        .find(|e| matches!(&e.kind, EventKind::CallCompleted { agent, .. } if agent == "1000@default"))
        .unwrap()
        .ts;
    let states = |who: &str| -> Vec<(Ts, AgentStatus, Option<String>)> {
        evs.iter()
            .filter_map(|e| match &e.kind {
                EventKind::AgentState {
                    agent,
                    status,
                    reason,
                    ..
                } if agent == who => Some((e.ts, *status, reason.clone())),
                _ => None,
            })
            .collect()
    };
    let on_break = Some("On Break".to_string());
    // 1001, idle, goes on break at once (during 1000's call).
    let b = states("1001@default");
    let (set_at, ..) = b
        .iter()
        .find(|(ts, s, r)| {
            *ts > answered && *ts < ended && *s == AgentStatus::Paused && *r == on_break
        })
        .unwrap_or_else(|| panic!("{b:?}"))
        .clone();
    assert!(b.iter().any(|(_, s, _)| *s == AgentStatus::LoggedOut));
    // 1000: still on the call from the status change to the call's end;
    // On Break from then.
    let a = states("1000@default");
    assert!(
        a.iter().all(|(ts, ..)| *ts < set_at || *ts >= ended),
        "no state change during the call: {a:?}"
    );
    let after: Vec<_> = a.iter().filter(|(ts, ..)| *ts >= ended).collect();
    assert_eq!(
        after[0],
        &(ended, AgentStatus::Paused, on_break.clone()),
        "{a:?}"
    );
    assert_eq!(after.last().unwrap().1, AgentStatus::Available);
    // The queue's on_call counted 1000 for the whole call: the replay's
    // engine at the end agrees with the live daemon.
    let r = replay("live.toml", "onbreak.esl");
    let live = json("onbreak.live-agents.json");
    for a in r["agents"].as_array().unwrap() {
        let l = live
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["agent"] == a["agent"])
            .unwrap();
        assert_eq!(a["state"], l["state"], "{}", a["agent"]);
    }
    assert_eq!(queue(&r, "support@default")["totals"]["answered"], 1);
}

/// ladder.esl (ladder.toml, ladder.esl.sent holds what the daemon sent):
/// 1000 and 1001 busy (c21, c22), c23 waits 2 s, the ladder signs
/// 2001@default (an expert on backoffice@default) into support@default
/// (`tier add`); 2001 answers c23 at once, nobody waits, the release is
/// decided while 2001 is busy and the `tier del` goes out when its call
/// ends. The recording's last event is that end; 2001's wrap-up (6 s) is
/// still running then.
///
/// | call | agent | wait | talk | wrap-up |
/// |------|-------|------|------|---------|
/// | c21  | 1000  | 0    | 12   | 4       |
/// | c22  | 1001  | 0    | 13   | 4       |
/// | c23  | 2001  | 2    | 13   | 6 (after the last event) |
///
/// ASA 2/3 s; AHT (38 + 14) / 3 = 17.333 s. Members, states, escalations
/// and figures equal the live daemon's (recorded with the engine fix of
/// `a_wrap_up_ending_after_a_sign_out_reaches_the_published_figures`).
#[test]
fn a_replayed_ladder_day_shows_members_and_wrap_ups_as_live() {
    let r = replay("ladder.toml", "ladder.esl");
    let live = json("ladder.live-agents.json");
    for l in live.as_array().unwrap() {
        let a = r["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == l["agent"])
            .unwrap();
        assert_eq!(
            a["queues"], l["queues"],
            "{}: membership as live",
            l["agent"]
        );
        assert_eq!(a["state"], l["state"], "{}", l["agent"]);
    }
    let esc = r["escalations"].as_array().unwrap();
    let live_esc = json("ladder.live-escalations.json");
    assert_eq!(esc.len(), live_esc.as_array().unwrap().len());
    for (e, l) in esc.iter().zip(live_esc.as_array().unwrap()) {
        assert_eq!(e["direction"], l["direction"]);
        assert_eq!(e["actions"][0]["agent"], l["actions"][0]["agent"]);
        assert_eq!(e["actions"][0]["result"], "ok");
    }
    let q = queue(&r, "support@default");
    let w = &q["windows"]["today"];
    assert_eq!(w["handled"], 3);
    assert!(close(&w["asa_s"], 2.0 / 3.0), "{w}");
    assert!(
        close(&w["aht_s"], 52.0 / 3.0),
        "2001's wrap-up counted: {w}"
    );
    let lq = json("ladder.live-queues.json");
    let lw = &queue(&lq, "support@default")["windows"]["today"];
    for k in ["offered", "answered", "handled", "asa_s", "aht_s"] {
        assert_eq!(w[k], lw[k], "{k} as live");
    }
    assert_eq!(r["rejected"], serde_json::json!({}), "CTI replies skipped");
    let (answered, abandoned) = freeswitch_counts("ladder.freeswitch.txt", "support@default");
    assert_eq!(q["totals"]["answered"].as_u64(), Some(answered));
    assert_eq!(abandoned, 0);
}

/// manual.esl (live.toml, no ladder): the ladder scenario with the tier
/// added and deleted by hand (`tier add` at 5 s, `tier del` after 2001's
/// call). The recording stops while 2001's wrap-up runs; the live daemon,
/// asked 10 s later, counted it. Replay finishes it too, and every figure
/// equals the live daemon's.
#[test]
fn a_wrap_up_running_at_the_end_of_a_recording_counts_as_live() {
    let r = replay("live.toml", "manual.esl");
    let live = json("manual.live-queues.json");
    let (q, lq) = (
        queue(&r, "support@default"),
        queue(&live, "support@default"),
    );
    for k in ["offered", "answered", "handled", "asa_s", "aht_s"] {
        assert_eq!(q["windows"]["today"][k], lq["windows"]["today"][k], "{k}");
    }
    assert!(close(&q["windows"]["today"]["aht_s"], 52.0 / 3.0));
    let a = r["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "2001@default")
        .unwrap();
    assert_eq!(a["state"], "available", "wrap-up finished");
}

/// What made the live daemon's AHT for the first ladder recording lack
/// 2001's wrap-up (15.333 s against 17.333 s): the wrap-up was counted when
/// it ended, but
/// 2001 had left the queue by then (the ladder's `tier del`), so the queue
/// was not marked changed and the published figures stayed as they were
/// until something else happened in it. The events are the ones the live
/// engine applied (traced from the daemon).
#[test]
fn a_wrap_up_ending_after_a_sign_out_reaches_the_published_figures() {
    let cfg = acdmon::config::Config::parse(
        "t.toml",
        "[[queues]]\nname = \"support@default\"\n[[queues]]\nname = \"backoffice@default\"\n",
    )
    .unwrap();
    let t0 = 1_796_548_200_000; // 09:10:00 UTC: no interval boundary
    let mut e = acdmon::state::Engine::starting_at(cfg.engine_config(), Ts(t0));
    let ev = |ms: i64, kind: EventKind| Event {
        ts: Ts(t0 + ms),
        kind,
    };
    let agent = || "2001@default".to_string();
    let q = || "support@default".to_string();
    for event in [
        ev(
            0,
            EventKind::AgentState {
                agent: agent(),
                status: AgentStatus::Available,
                reason: None,
                queue: Some("backoffice@default".into()),
            },
        ),
        ev(
            2_000,
            EventKind::CallEnqueued {
                call: "c23".into(),
                queue: q(),
                caller: None,
                priority: None,
            },
        ),
        ev(
            4_368,
            EventKind::AgentJoinedQueue {
                agent: agent(),
                queue: q(),
            },
        ),
        ev(
            4_000,
            EventKind::CallAnswered {
                call: "c23".into(),
                queue: q(),
                agent: agent(),
            },
        ),
        ev(
            17_000,
            EventKind::CallCompleted {
                call: "c23".into(),
                queue: q(),
                agent: agent(),
            },
        ),
        ev(
            17_000,
            EventKind::AgentState {
                agent: agent(),
                status: AgentStatus::WrapUp,
                reason: None,
                queue: Some(q()),
            },
        ),
        ev(
            17_423,
            EventKind::AgentLeftQueue {
                agent: agent(),
                queue: q(),
            },
        ),
    ] {
        let _ = e.apply(event);
    }
    let support = e.find_queue("support@default").unwrap();
    e.take_dirty();
    let _ = e.apply(ev(
        23_000,
        EventKind::AgentState {
            agent: agent(),
            status: AgentStatus::Available,
            reason: None,
            queue: None,
        },
    ));
    let (queues, _) = e.take_dirty();
    assert!(
        queues.contains(&support),
        "support's AHT changed: {queues:?}"
    );
    let v = e.queue_view(support);
    assert_eq!(v.windows.today.aht_s, Some(19.0), "13 s talk + 6 s wrap-up");
}
