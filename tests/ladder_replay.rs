//! The hotline's plan, replayed through the `acdmon replay` binary on event
//! time: a surge walks the ladder up stage by stage at the due times and back
//! down newest first, an agent on a call is signed out when the call ends,
//! and flapping input leaves the ladder alone.
//!
//! The morning (Asia/Shanghai, 2026-11-23), three phone agents p1..p3 on the
//! hotline, non-phone staff logged in elsewhere:
//!
//! | time          | what                                              | waiting |
//! |---------------|---------------------------------------------------|---------|
//! | 09:00-09:57   | a call every 3 min, answered after 10 s, 300 s talk | 0-1   |
//! | 10:00:00      | s1..s6 enqueued                                   | 6       |
//! | (no events)   | experts due 10:05, outbound due 10:10             | 6       |
//! | 10:14:00      | s7..s12 enqueued: the count jumps past 10          | 12      |
//! | 10:15:10-10:24:50 | a call every 20 s, abandoned after 15 s (30 calls) | 12-13 |
//! | 10:30:00      | s1..s9 abandoned                                  | 3       |
//! | 10:31:00      | s13 enqueued, answered by b2 at 10:31:10          | 3       |
//! | 10:39:30      | b2's call ends                                    | 3       |
//! | 10:50:00      | s10..s12 abandoned                                | 0       |
//!
//! Expected: experts 10:05, outbound 10:10, quality and back-office 10:15
//! (back-office has `for = "0s"` and `waiting > 10` already holds), extend
//! shifts 10:20, overtime 10:25 with an Erlang C seat count; release from
//! 10:30 every 2 minutes: overtime 10:32, extend 10:34, back-office 10:36
//! (b2 on a call: signed out at 10:39:30), quality 10:38, outbound 10:40,
//! experts 10:42.

use std::process::Command;

use acdmon::time::Ts;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[time]
zone = "Asia/Shanghai"

[defaults]
sl_threshold = "20s"
sl_target = 0.8
rolling_window = "15m"
ladder = "emergency"

[[queues]]
name = "hotline"

[[agents]]
id = "p1"
groups = ["phone"]
[[agents]]
id = "p2"
groups = ["phone"]
[[agents]]
id = "p3"
groups = ["phone"]
[[agents]]
id = "x1"
groups = ["floating-experts"]
[[agents]]
id = "x2"
groups = ["floating-experts"]
[[agents]]
id = "x3"
groups = ["floating-experts"]
[[agents]]
id = "o1"
groups = ["outbound"]
[[agents]]
id = "o2"
groups = ["outbound"]
[[agents]]
id = "o3"
groups = ["outbound"]
[[agents]]
id = "o4"
groups = ["outbound"]
[[agents]]
id = "q1"
groups = ["quality"]
[[agents]]
id = "q2"
groups = ["quality"]
[[agents]]
id = "q3"
groups = ["quality"]
[[agents]]
id = "b1"
groups = ["back-office"]
[[agents]]
id = "b2"
groups = ["back-office"]
[[agents]]
id = "b3"
groups = ["back-office"]
[[agents]]
id = "b4"
groups = ["back-office"]

[[ladders]]
name = "emergency"
mode = "auto"
max_added_seats = 12
release_when = "waiting < 5"
release_hold = "2m"

[[ladders.stages]]
name = "experts"
when = "waiting > 5"
for = "5m"
sign_in = { group = "floating-experts" }
[[ladders.stages]]
name = "outbound"
when = "waiting > 5"
for = "5m"
sign_in = { group = "outbound", min = 2, max = 3 }
[[ladders.stages]]
name = "quality"
when = "waiting > 5"
for = "5m"
sign_in = { group = "quality", min = 2, max = 3 }
[[ladders.stages]]
name = "back-office"
when = "waiting > 10"
for = "0s"
sign_in = { group = "back-office", min = 2, max = 3 }
[[ladders.stages]]
name = "extend-shifts"
when = "waiting > 10"
for = "5m"
advise = "Extend shifts to add seats, within the physical seat limit"
[[ladders.stages]]
name = "overtime"
when = "waiting > 10"
for = "5m"
advise = "Call emergency overtime"
staffing = "erlang_c"
"#;

/// 2026-11-23 `hh:mm:ss` in Shanghai.
fn at(hms: &str) -> Ts {
    Ts::parse_rfc3339(&format!("2026-11-23T{hms}+08:00")).unwrap()
}

fn hms(t: Ts) -> String {
    let secs = (t.0 / 1000 + 8 * 3600).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

struct Feed(Vec<(Ts, Value)>);

impl Feed {
    fn push(&mut self, t: Ts, mut v: Value) {
        v["ts"] = json!(t.0);
        self.0.push((t, v));
    }
    fn enqueue(&mut self, t: Ts, call: &str) {
        self.push(
            t,
            json!({"type": "call_enqueued", "call": call, "queue": "hotline"}),
        );
    }
    fn answer(&mut self, t: Ts, call: &str, agent: &str) {
        self.push(
            t,
            json!({"type": "call_answered", "call": call, "queue": "hotline", "agent": agent}),
        );
    }
    fn complete(&mut self, t: Ts, call: &str, agent: &str) {
        self.push(
            t,
            json!({"type": "call_completed", "call": call, "queue": "hotline", "agent": agent}),
        );
    }
    fn abandon(&mut self, t: Ts, call: &str) {
        self.push(
            t,
            json!({"type": "call_abandoned", "call": call, "queue": "hotline"}),
        );
    }
    fn write(mut self, path: &std::path::Path) {
        self.0.sort_by_key(|(t, _)| *t);
        let text: String = self.0.iter().map(|(_, v)| format!("{v}\n")).collect();
        std::fs::write(path, text).unwrap();
    }
}

fn morning() -> (Feed, usize) {
    let mut f = Feed(Vec::new());
    let t9 = at("09:00:00");
    for a in ["p1", "p2", "p3"] {
        f.push(
            t9,
            json!({"type": "agent_joined_queue", "agent": a, "queue": "hotline"}),
        );
        f.push(
            t9,
            json!({"type": "agent_state", "agent": a, "state": "available"}),
        );
    }
    for a in [
        "x1", "x2", "x3", "o1", "o2", "o3", "o4", "q1", "q2", "q3", "b1", "b2", "b3", "b4",
    ] {
        f.push(
            t9,
            json!({"type": "agent_state", "agent": a, "state": "available"}),
        );
    }
    // Background: a call every 3 minutes, 300 s of talk (AHT = 300 s).
    for i in 0..20 {
        let t = t9.plus_ms(i * 180_000);
        let call = format!("bg{i}");
        let agent = ["p1", "p2", "p3"][i as usize % 3];
        f.enqueue(t, &call);
        f.answer(t.plus_ms(10_000), &call, agent);
        f.complete(t.plus_ms(310_000), &call, agent);
    }
    for i in 1..=6 {
        f.enqueue(at("10:00:00").plus_ms(i), &format!("s{i}"));
    }
    for i in 7..=12 {
        f.enqueue(at("10:14:00").plus_ms(i), &format!("s{i}"));
    }
    let mut churn = 0;
    for i in 0..30 {
        let t = at("10:15:10").plus_ms(i * 20_000);
        f.enqueue(t, &format!("c{i}"));
        f.abandon(t.plus_ms(15_000), &format!("c{i}"));
        churn += 1;
    }
    for i in 1..=9 {
        f.abandon(at("10:30:00").plus_ms(i), &format!("s{i}"));
    }
    f.enqueue(at("10:31:00"), "s13");
    f.answer(at("10:31:10"), "s13", "b2");
    f.complete(at("10:39:30"), "s13", "b2");
    for i in 10..=12 {
        f.abandon(at("10:50:00").plus_ms(i), &format!("s{i}"));
    }
    // Arrivals in the rolling window (10:10, 10:25] when overtime fires.
    (f, 6 + churn)
}

fn replay(config: &str, feed: Feed) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ladder.toml");
    let input = dir.path().join("morning.jsonl");
    std::fs::write(&cfg, config).unwrap();
    feed.write(&input);
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn agents_of(e: &Value, kind: &str) -> Vec<String> {
    e["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .map(|a| a["agent"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_surge_walks_the_plan_up_and_back_down() {
    let (feed, arrivals) = morning();
    let r = replay(CONFIG, feed);
    assert!(
        r["rejected"].as_object().unwrap().is_empty(),
        "{}",
        r["rejected"]
    );
    let log = r["escalations"].as_array().unwrap();
    let walk: Vec<(String, String, String)> = log
        .iter()
        .map(|e| {
            (
                hms(Ts::parse_rfc3339(e["ts"].as_str().unwrap()).unwrap()),
                e["direction"].as_str().unwrap().to_string(),
                e["stage_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("10:05:00", "up", "experts"),
        ("10:10:00", "up", "outbound"),
        ("10:15:00", "up", "quality"),
        ("10:15:00", "up", "back-office"),
        ("10:20:00", "up", "extend-shifts"),
        ("10:25:00", "up", "overtime"),
        ("10:32:00", "down", "overtime"),
        ("10:34:00", "down", "extend-shifts"),
        ("10:36:00", "down", "back-office"),
        ("10:38:00", "down", "quality"),
        ("10:40:00", "down", "outbound"),
        ("10:42:00", "down", "experts"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(walk, want);

    // Stage numbers, modes, reasons, ids.
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["id"], i + 1);
        assert_eq!(e["mode"], "auto");
        assert_eq!(e["queue"], "hotline");
    }
    assert_eq!(log[0]["stage"], 1);
    assert_eq!(log[0]["reason"], "waiting=6 > 5 for 5m");
    assert_eq!(log[3]["stage"], 4);
    assert_eq!(log[3]["reason"], "waiting=12 > 10");
    assert_eq!(log[6]["reason"], "waiting=3 < 5 for 2m");

    // Who: every expert; outbound and back-office capped at max = 3, the
    // longest idle first; every action went through the log-only CTI.
    assert_eq!(agents_of(&log[0], "sign_in"), ["x1", "x2", "x3"]);
    assert_eq!(agents_of(&log[1], "sign_in"), ["o1", "o2", "o3"]);
    assert_eq!(agents_of(&log[2], "sign_in"), ["q1", "q2", "q3"]);
    assert_eq!(agents_of(&log[3], "sign_in"), ["b1", "b2", "b3"]);
    for e in log {
        for a in e["actions"].as_array().unwrap() {
            assert_eq!(a["result"], "ok", "{a}");
        }
    }

    // The overtime advice carries the Erlang C seat count: the rolling 15
    // minutes hold `arrivals` calls, AHT is 300 s (every handled call), the
    // target is 80 % in 20 s, and 15 agents are logged in to the hotline:
    // the 3 phone agents and the 12 the ladder has signed in (replay applies
    // the log-only CTI's membership changes, as the daemon's CTI would).
    let required =
        acdmon::state::erlang::required_agents(arrivals as f64 / 900.0, 300.0, 20.0, 0.8).unwrap();
    assert!(required > 3, "the test should need more seats: {required}");
    let advice = &log[5]["actions"][0];
    assert_eq!(advice["kind"], "advise");
    let more = required.saturating_sub(15);
    assert_eq!(advice["seats"], more);
    let detail = advice["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{more} more seats"))
            && detail.contains(&format!("{required} agents needed"))
            && detail.contains("15 logged in")
            && detail.ends_with("[added seats in use: 12 of 12]"),
        "{detail}"
    );

    // Release newest first, each stage signing out whom it signed in; b2 was
    // on a call at 10:36 and was signed out when it ended, at 10:39:30.
    assert_eq!(agents_of(&log[8], "sign_out"), ["b1", "b2", "b3"]);
    assert_eq!(agents_of(&log[9], "sign_out"), ["q1", "q2", "q3"]);
    assert_eq!(agents_of(&log[10], "sign_out"), ["o1", "o2", "o3"]);
    assert_eq!(agents_of(&log[11], "sign_out"), ["x1", "x2", "x3"]);
    assert!(
        agents_of(&log[6], "sign_out").is_empty(),
        "advice has nobody to sign out"
    );
    let when = |e: &Value, agent: &str| {
        let a = e["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == agent)
            .unwrap();
        hms(Ts::parse_rfc3339(a["at"].as_str().unwrap()).unwrap())
    };
    assert_eq!(when(&log[8], "b1"), "10:36:00");
    assert_eq!(when(&log[8], "b3"), "10:36:00");
    assert_eq!(
        when(&log[8], "b2"),
        "10:39:30",
        "b2 left when the call ended"
    );
    assert_eq!(when(&log[3], "b2"), "10:15:00");

    // At the end: nothing escalated, nobody flagged.
    let q = &r["queues"][0];
    assert!(q["escalation"].is_null(), "{}", q["escalation"]);
    assert!(
        r["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["signed_in_by_escalation"] == false)
    );
}

#[test]
fn flapping_around_the_threshold_does_not_move_the_ladder() {
    // For an hour the queue swings between 4 and 6 every 30 s.
    let mut f = Feed(Vec::new());
    let t = at("10:00:00");
    for i in 1..=4 {
        f.enqueue(t, &format!("base{i}"));
    }
    for k in 0..120 {
        let call = format!("flap{k}");
        let s = t.plus_ms(k * 30_000 + 1_000);
        f.enqueue(s, &format!("{call}a"));
        f.enqueue(s, &format!("{call}b"));
        f.abandon(s.plus_ms(15_000), &format!("{call}a"));
        f.abandon(s.plus_ms(15_000), &format!("{call}b"));
    }
    f.enqueue(at("11:10:00"), "late");
    let r = replay(CONFIG, f);
    assert_eq!(
        r["escalations"].as_array().unwrap().len(),
        0,
        "{}",
        r["escalations"]
    );
}

/// Replays `feed` with config/example.toml (its secrets from the environment).
fn replay_example(feed: Feed) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("feed.jsonl");
    feed.write(&input);
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
        .arg(&input)
        .env("ACDMON_READ_TOKEN", "r")
        .env("ACDMON_ADMIN_TOKEN", "a")
        .env("AMI_SECRET", "s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn staff(f: &mut Feed, t: Ts) {
    for a in ["p1", "p2", "p3"] {
        f.push(
            t,
            json!({"type": "agent_joined_queue", "agent": a, "queue": "hotline"}),
        );
        f.push(
            t,
            json!({"type": "agent_state", "agent": a, "state": "available"}),
        );
    }
    for a in ["1017", "1018", "1019", "1020", "1021"] {
        f.push(
            t,
            json!({"type": "agent_state", "agent": a, "state": "available"}),
        );
    }
}

#[test]
fn at_night_every_non_phone_group_joins_at_once_but_one_supervisor() {
    // 2026-11-24 23:00 in Shanghai: the example's night schedule.
    let t = Ts::parse_rfc3339("2026-11-24T23:00:00+08:00").unwrap();
    let mut f = Feed(Vec::new());
    staff(&mut f, t);
    for i in 1..=6 {
        f.enqueue(t.plus_ms(1000 + i), &format!("n{i}"));
    }
    f.enqueue(t.plus_ms(10 * 60_000), "late");
    let r = replay_example(f);
    let log = r["escalations"].as_array().unwrap();
    let walk: Vec<(&str, &str, String)> = log
        .iter()
        .map(|e| {
            (
                e["ladder"].as_str().unwrap(),
                e["stage_name"].as_str().unwrap(),
                hms(Ts::parse_rfc3339(e["ts"].as_str().unwrap()).unwrap()),
            )
        })
        .collect();
    let at = "23:05:01".to_string();
    assert_eq!(
        walk,
        [
            ("night", "night-experts", at.clone()),
            ("night", "night-outbound", at.clone()),
            ("night", "night-quality", at.clone()),
            ("night", "night-back-office", at.clone()),
            ("night", "night-supervisors", at.clone()),
        ]
    );
    let signed: Vec<Vec<String>> = log.iter().map(|e| agents_of(e, "sign_in")).collect();
    assert_eq!(
        signed,
        [
            vec!["1017".to_string()],
            vec!["1018".into()],
            vec!["1019".into()],
            vec!["1020".into()],
            vec![],
        ],
        "the one on-site supervisor (1021) stays off the phones"
    );
}

#[test]
fn on_a_holiday_the_ladder_keeps_five_spare_seats() {
    // 2026-10-01 is in the example's holiday calendar; three phone agents
    // are idle, fewer than the five spare seats wanted.
    let t = Ts::parse_rfc3339("2026-10-01T10:00:00+08:00").unwrap();
    let mut f = Feed(Vec::new());
    staff(&mut f, t);
    f.enqueue(t.plus_ms(3 * 60_000), "h1");
    let r = replay_example(f);
    let log = r["escalations"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    let e = &log[0];
    assert_eq!(
        (e["ladder"].as_str(), e["stage_name"].as_str()),
        (Some("holiday"), Some("spare-experts"))
    );
    assert_eq!(
        hms(Ts::parse_rfc3339(e["ts"].as_str().unwrap()).unwrap()),
        "10:02:00"
    );
    assert_eq!(e["reason"], "available=3 < 5 for 2m");
    assert_eq!(agents_of(e, "sign_in"), ["1017"]);
    let advice = e["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "advise")
        .unwrap();
    assert!(
        advice["detail"]
            .as_str()
            .unwrap()
            .contains("only 1 of the 2 wanted"),
        "{advice}"
    );
}
