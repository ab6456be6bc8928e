//! Schedule adherence: a scripted day replayed through `acdmon replay` on
//! event time, and the live flag on a running daemon fed a plan over
//! `PUT /api/v1/schedule`.
//!
//! The plan (Asia/Shanghai, Monday 2026-11-23), 8 hours each:
//!
//! | agent | 09:00-12:00 | 12:00-12:30 | 12:30-14:00 | 14:00-17:00 |
//! |-------|-------------|-------------|-------------|-------------|
//! | a1    | phone       | break       | training    | phone       |
//!
//! | agent | 09:00-13:00 | 13:00-13:15 | 13:15-17:00 |
//! |-------|-------------|-------------|-------------|
//! | a2    | phone       | break       | phone       |
//!
//! Rules: `phone` (tolerance 1 min, in the hotline), `break` (2 min, a
//! `meal` pause counts), `training` (logged out counts); anything else 0 s.

mod support;

use std::process::Command;
use std::time::Duration;

use acdmon::time::Ts;
use serde_json::{Value, json};

const PLAN: &str = "agent,start,end,activity
a1,2026-11-23 09:00,2026-11-23 12:00,phone
a1,2026-11-23 12:00,2026-11-23 12:30,break
a1,2026-11-23 12:30,2026-11-23 14:00,training
a1,2026-11-23 14:00,2026-11-23 17:00,phone
a2,2026-11-23 09:00,2026-11-23 13:00,phone
a2,2026-11-23 13:00,2026-11-23 13:15,break
a2,2026-11-23 13:15,2026-11-23 17:00,phone
";

fn config(plan_path: &std::path::Path) -> String {
    format!(
        r#"
[time]
zone = "Asia/Shanghai"

[[queues]]
name = "hotline"

[[agents]]
id = "a1"
[[agents]]
id = "a2"

[adherence]
schedule = "{}"

[[adherence.activities]]
name = "phone"
tolerance = "1m"
queues = ["hotline"]

[[adherence.activities]]
name = "break"
tolerance = "2m"
equivalent = ["meal"]

[[adherence.activities]]
name = "training"
equivalent = ["logged_out"]
"#,
        plan_path.display()
    )
}

fn at(hms: &str) -> Ts {
    Ts::parse_rfc3339(&format!("2026-11-23T{hms}+08:00")).unwrap()
}

fn ev(t: &str, v: Value) -> Value {
    let mut v = v;
    v["ts"] = json!(at(t).0);
    v
}

fn state(t: &str, agent: &str, state: &str) -> Value {
    ev(
        t,
        json!({"type": "agent_state", "agent": agent, "state": state}),
    )
}

fn pause(t: &str, agent: &str, reason: &str) -> Value {
    ev(
        t,
        json!({"type": "agent_state", "agent": agent, "state": "paused", "reason": reason}),
    )
}

fn queue(t: &str, agent: &str, join: bool) -> Value {
    let ty = if join {
        "agent_joined_queue"
    } else {
        "agent_left_queue"
    };
    ev(t, json!({"type": ty, "agent": agent, "queue": "hotline"}))
}

/// The day, with the periods each event starts or ends noted beside it.
fn day() -> Vec<Value> {
    let mut v = vec![
        queue("08:55:00", "a1", true),
        state("08:55:00", "a1", "available"),
        queue("08:55:00", "a2", true),
        state("08:55:00", "a2", "available"),
    ];
    v.extend([
        // a1: a 45 s toilet pause on the phone: within the 1 min tolerance.
        pause("10:00:00", "a1", "toilet"),
        state("10:00:45", "a1", "available"),
        // a1: logged out 11:00-11:10 while on the phone: 600 s out.
        state("11:00:00", "a1", "logged_out"),
        state("11:10:00", "a1", "available"),
        // a1: the break spent paused as `meal` (equivalent); it runs 90 s
        // into training (tolerance 0 s): 90 s out; then logged out for
        // training (equivalent).
        pause("12:00:00", "a1", "meal"),
        state("12:31:30", "a1", "logged_out"),
        // a1: back 5 min late for the afternoon phone slot: 300 s out.
        state("14:05:00", "a1", "available"),
        // a1: out of the hotline 15:00-15:20 while available: 1,200 s out
        // (wrong queue).
        queue("15:00:00", "a1", false),
        queue("15:20:00", "a1", true),
        // a2: back from break 90 s late: the break's 2 min tolerance
        // covers it.
        pause("13:00:00", "a2", "break"),
        state("13:16:30", "a2", "available"),
        // a2: a 3 min lunch pause on the phone: 180 s out.
        pause("15:00:00", "a2", "lunch"),
        state("15:03:00", "a2", "available"),
        // a2: leaves 10 min before the end of the phone slot: 600 s out.
        state("16:50:00", "a2", "logged_out"),
        state("17:30:00", "a1", "logged_out"),
    ]);
    v.sort_by_key(|e| e["ts"].as_i64());
    v
}

fn replay(events: &[Value]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    std::fs::write(&plan, PLAN).unwrap();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(&cfg, config(&plan)).unwrap();
    let input = dir.path().join("day.jsonl");
    let text: String = events.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&input, text).unwrap();
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
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rejected"], json!({}), "{report}");
    report
}

#[test]
fn a_scripted_day_gives_each_agents_adherence() {
    let report = replay(&day());
    let rows = report["adherence"]
        .as_array()
        .expect("an adherence section");
    let row = |agent: &str| {
        rows.iter()
            .find(|r| r["agent"] == agent)
            .unwrap_or_else(|| panic!("no row for {agent}: {rows:?}"))
            .clone()
    };
    // The test's own computation: 8 scheduled hours each, minus the
    // periods out of adherence past their tolerance, as noted in `day()`.
    let scheduled = 8.0 * 3600.0;
    let out_a1 = 600.0 + 90.0 + 300.0 + 1200.0;
    let out_a2 = 180.0 + 600.0;
    for (agent, out) in [("a1", out_a1), ("a2", out_a2)] {
        let r = row(agent);
        assert_eq!(r["day"], "2026-11-23");
        assert_eq!(r["scheduled_s"], json!(scheduled), "{agent}: {r}");
        assert_eq!(r["out_s"], json!(out), "{agent}: {r}");
        let want = (scheduled - out) / scheduled;
        let got = r["adherence"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{agent}: {got} != {want}");
    }
    // After the plan ends nobody is flagged.
    for a in report["agents"].as_array().unwrap() {
        assert!(a.get("adherence").is_none(), "{a}");
    }
}

/// The same day replayed with `--store`, then `acdmon report --adherence`:
/// the percentages the floor manager reads are the test's own sums.
#[test]
fn the_adherence_report_of_a_day_equals_the_tests_own_computation() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    std::fs::write(&plan, PLAN).unwrap();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\npath = \"{}/audit.sqlite\"\n{}",
            dir.path().display(),
            config(&plan)
        ),
    )
    .unwrap();
    let input = dir.path().join("day.jsonl");
    let text: String = day().iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let acdmon = || Command::new(env!("CARGO_BIN_EXE_acdmon"));
    let out = acdmon()
        .args(["replay", "--store", "--config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report = |format: &str, lang: &str| {
        let out = acdmon()
            .args(["report", "--config"])
            .arg(&cfg)
            .args([
                "--adherence",
                "2026-11-23",
                "--format",
                format,
                "--lang",
                lang,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let rows: Value = serde_json::from_str(&report("json", "en")).unwrap();
    let scheduled = 8.0 * 3600.0;
    let out_a1 = 600.0 + 90.0 + 300.0 + 1200.0;
    let out_a2 = 180.0 + 600.0;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, (agent, out)) in rows.iter().zip([("a1", out_a1), ("a2", out_a2)]) {
        assert_eq!(row["agent"], agent);
        assert_eq!(row["day"], "2026-11-23");
        assert_eq!(row["scheduled_s"], json!(scheduled), "{row}");
        assert_eq!(row["out_s"], json!(out), "{row}");
        let want = (scheduled - out) / scheduled;
        let got = row["adherence"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{agent}: {got} != {want}");
    }

    let md = report("markdown", "en");
    // a1: 28,800 s scheduled, 2,190 s out: 92.4 %; a2: 780 s out: 97.3 %.
    assert!(md.contains("| a1 | 8:00:00 | 0:36:30 | 92.4 % |"), "{md}");
    assert!(md.contains("| a2 | 8:00:00 | 0:13:00 | 97.3 % |"), "{md}");
    let zh = report("markdown", "zh-CN");
    assert!(zh.contains("排班遵从度 2026-11-23"), "{zh}");

    // A day with nothing stored says so.
    let out = acdmon()
        .args(["report", "--config"])
        .arg(&cfg)
        .args(["--adherence", "2026-11-24"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing scheduled"));
}

#[test]
fn mid_day_the_agent_shows_out_of_adherence_since_when_and_why() {
    // Cut the day at 15:10: a1 has been out of the hotline since 15:00.
    let cut = at("15:10:00").0;
    let mut events: Vec<Value> = day()
        .into_iter()
        .filter(|e| e["ts"].as_i64().unwrap() <= cut)
        .collect();
    events.push(state("15:10:00", "a2", "available"));
    let report = replay(&events);
    let agent = |id: &str| {
        report["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == id)
            .unwrap()["adherence"]
            .clone()
    };
    assert_eq!(
        agent("a1"),
        json!({"scheduled": "phone", "actual": "phone", "in_adherence": false,
               "out_since": at("15:00:00").rfc3339(), "why": "wrong_queue"})
    );
    assert_eq!(
        agent("a2"),
        json!({"scheduled": "phone", "actual": "phone", "in_adherence": true})
    );
}

/// On a running daemon: a WFM system puts today's plan; the count of agents
/// out of adherence in the hotline follows their states (the 1 min
/// tolerance is not waited for: the plan here has no tolerance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_out_of_adherence_count_follows_state_changes_live() {
    use support::{eventually, http};
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nread_token = \"reader\"\nadmin_token = \"boss\"\n[storage]\npath = \"{}/audit.sqlite\"\n\
         [[queues]]\nname = \"hotline\"\n[[agents]]\nid = \"a1\"\n[[agents]]\nid = \"a2\"\n\
         [adherence]\n[[adherence.activities]]\nname = \"break\"\nequivalent = [\"meal\"]\n",
        dir.path().display()
    );
    let cfg = acdmon::config::Config::parse("t.toml", &text).unwrap();
    let (_d, addr) = support::start_daemon(cfg).await;

    let send = |lines: Vec<Value>| {
        let addr = addr.clone();
        async move {
            let now = Ts::now().0;
            let body: String = lines
                .into_iter()
                .map(|mut v| {
                    v["ts"] = json!(now);
                    format!("{v}\n")
                })
                .collect();
            let r = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
            assert_eq!(r.status, 202, "{}", r.body);
        }
    };
    let out_of_adherence = |want: u32| {
        let addr = addr.clone();
        async move {
            let line = format!("acd_agents_out_of_adherence{{queue=\"hotline\"}} {want}");
            eventually(Duration::from_secs(10), "the gauge", || {
                let (addr, line) = (addr.clone(), line.clone());
                async move {
                    let r = http(&addr, "GET", "/metrics", None, "").await;
                    r.body.contains(&line).then_some(())
                }
            })
            .await
        }
    };

    send(vec![
        json!({"type": "agent_joined_queue", "agent": "a1", "queue": "hotline"}),
        json!({"type": "agent_state", "agent": "a1", "state": "available"}),
        json!({"type": "agent_joined_queue", "agent": "a2", "queue": "hotline"}),
        json!({"type": "agent_state", "agent": "a2", "state": "available"}),
    ])
    .await;

    // The plan, from an hour ago for two hours: a1 on the phone, a2 on a
    // break. Bad lines are refused with their numbers, and need the admin token.
    let zone = "+08:00";
    let t = |ms: i64| {
        Ts(ms)
            .to_jiff()
            .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
            + zone
    };
    let now = Ts::now().0;
    let (from, to) = (t(now - 3_600_000), t(now + 3_600_000));
    let plan = format!("agent,start,end,activity\na1,{from},{to},phone\na2,{from},{to},break\n");
    let r = http(&addr, "PUT", "/api/v1/schedule", Some("reader"), &plan).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let bad = format!("{plan}zz,{from},{to},phone\n");
    let r = http(&addr, "PUT", "/api/v1/schedule", Some("boss"), &bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("\"line\":4"), "{}", r.body);
    let r = http(&addr, "PUT", "/api/v1/schedule", Some("boss"), &plan).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // a2 is planned on a break but available: out of adherence.
    out_of_adherence(1).await;
    let r = http(&addr, "GET", "/api/v1/agents", Some("reader"), "").await;
    let agents: Value = serde_json::from_str(&r.body).unwrap();
    let a2 = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "a2")
        .unwrap();
    assert_eq!(a2["adherence"]["why"], "phone", "{a2}");
    assert_eq!(a2["adherence"]["in_adherence"], false);

    // a2 takes the break as a meal: nobody out.
    send(vec![
        json!({"type": "agent_state", "agent": "a2", "state": "paused", "reason": "meal"}),
    ])
    .await;
    out_of_adherence(0).await;

    // a1 logs out during a phone slot, then a2 comes back early: two out.
    send(vec![
        json!({"type": "agent_state", "agent": "a1", "state": "logged_out"}),
        json!({"type": "agent_state", "agent": "a2", "state": "available"}),
    ])
    .await;
    out_of_adherence(2).await;

    // Both put right: none.
    send(vec![
        json!({"type": "agent_state", "agent": "a1", "state": "available"}),
        json!({"type": "agent_state", "agent": "a2", "state": "paused", "reason": "break"}),
    ])
    .await;
    out_of_adherence(0).await;
    // Today's totals (published at most once a second): a1 and a2.
    let rows = eventually(Duration::from_secs(10), "day totals", || {
        let addr = addr.clone();
        async move {
            let r = http(&addr, "GET", "/api/v1/adherence", Some("reader"), "").await;
            let rows: Value = serde_json::from_str(&r.body).ok()?;
            (rows.as_array()?.len() == 2).then_some(rows)
        }
    })
    .await;
    for r in rows.as_array().unwrap() {
        assert!(r["scheduled_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["out_s"].as_f64().unwrap() <= r["scheduled_s"].as_f64().unwrap());
    }
}
