//! A recorded day replayed through the `acdmon replay` binary, checked
//! against figures worked out by hand.
//!
//! The day (tests/data/day.jsonl, Asia/Shanghai, T = 20 s, short abandon 5 s):
//!
//! | call | enqueued | left     | outcome              | wait | talk |
//! |------|----------|----------|----------------------|------|------|
//! | c1   | 09:00:00 | 09:00:10 | answered a1          | 10   | 180  |
//! | c2   | 09:01:00 | 09:01:20 | answered a2          | 20 (exactly T: in SL) | 240 |
//! | c3   | 09:02:00 | 09:02:03 | abandoned (short)    | 3    |      |
//! | c4   | 09:03:00 | 09:03:30 | abandoned            | 30   |      |
//! | c5   | 09:04:00 | 09:04:45 | answered a1          | 45   | 120  |
//! | c6   | 09:10:00 | 09:12:00 | exited (timeout)     | 120  |      |
//! | c7   | 09:14:00 | 09:14:15 | answered a2          | 15   | 180 (ends 09:17:15) |
//! | c8   | 09:14:50 | 09:15:05 | answered a1          | 15   | 300 (ends 09:20:05) |
//! | c9   | 09:20:00 | -        | still waiting at 09:21:30 (90 s) | | |
//!
//! Plus four bad lines: not JSON, an unknown type, a missing `call`, and a
//! completion of a call never seen (c99).

use std::process::Command;

use serde_json::Value;

fn replay() -> Value {
    let dir = env!("CARGO_MANIFEST_DIR");
    replay_inputs(&[format!("{dir}/tests/data/day.jsonl")])
}

fn replay_inputs(inputs: &[String]) -> Value {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--config", &format!("{dir}/tests/data/day.toml")])
        .args(inputs)
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
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-4)
}

#[test]
fn a_recorded_day_gives_the_hand_computed_kpis() {
    let r = replay();
    let q = &r["queues"][0];
    assert_eq!(q["queue"], "hotline");
    assert_eq!(q["waiting"], 1);
    assert!(close(&q["longest_wait_s"], 90.0), "{}", q["longest_wait_s"]);
    assert_eq!(q["agents"]["logged_in"], 2);
    assert_eq!(q["agents"]["paused"], 2);
    assert_eq!(q["agents"]["available"], 0);

    // Today: offered 8 = answered 5 + abandoned 2 + exited 1.
    let t = &q["windows"]["today"];
    assert_eq!(t["offered"], 8);
    assert_eq!(t["answered"], 5);
    assert_eq!(t["answered_in_sl"], 4, "c1, c2 (exactly T), c7, c8");
    assert_eq!(t["abandoned"], 2);
    assert_eq!(t["abandoned_in_sl"], 1, "c3 (3 s)");
    assert_eq!(t["short_abandoned"], 1);
    assert_eq!(t["exited"], 1);
    assert!(close(&t["sl"]["answered"], 4.0 / 5.0));
    assert!(close(&t["sl"]["offered"], 4.0 / 8.0));
    assert!(close(&t["sl"]["abandon_negative"], 4.0 / 7.0));
    assert!(close(&t["sl"]["abandon_positive"], 5.0 / 8.0));
    assert!(close(&t["service_level"], 4.0 / 7.0), "configured formula");
    assert!(close(&t["asa_s"], (10.0 + 20.0 + 45.0 + 15.0 + 15.0) / 5.0));
    assert!(close(
        &t["aht_s"],
        (180.0 + 240.0 + 120.0 + 180.0 + 300.0) / 5.0
    ));
    assert!(close(&t["abandon_rate"], 2.0 / 8.0));

    // Current interval 09:15-09:30: only c8 left the queue in it; c7 and c8
    // were completed in it.
    let i = &q["windows"]["interval"];
    assert_eq!(i["offered"], 1);
    assert_eq!(i["answered_in_sl"], 1);
    assert!(close(&i["service_level"], 1.0));
    assert!(close(&i["asa_s"], 15.0));
    assert!(close(&i["aht_s"], (180.0 + 300.0) / 2.0));

    // Rolling 15 min as of 09:21:30, i.e. (09:06:30, 09:21:30]: c6 exited,
    // c7 and c8 answered in SL; c5, c7, c8 completed.
    let w = &q["windows"]["rolling"];
    assert_eq!(w["offered"], 3);
    assert_eq!(w["answered"], 2);
    assert_eq!(w["exited"], 1);
    assert!(close(&w["service_level"], 2.0 / 3.0));
    assert!(close(&w["aht_s"], (120.0 + 180.0 + 300.0) / 3.0));

    // The 09:00-09:15 interval closed with c1..c7's exits.
    let iv: Vec<&Value> = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["start"] == "2026-11-23T01:00:00.000Z")
        .collect();
    assert_eq!(iv.len(), 1);
    assert_eq!(iv[0]["window"]["offered"], 7);
    assert_eq!(iv[0]["window"]["answered_in_sl"], 3);
    assert!(close(&iv[0]["staffed_agents"], 2.0));

    // Bad lines were counted by reason and skipped; nothing else was lost.
    assert_eq!(r["rejected"]["invalid_json"], 1);
    assert_eq!(r["rejected"]["unknown_type"], 1);
    assert_eq!(r["rejected"]["missing_field"], 1);
    assert_eq!(r["rejected"]["unknown_call"], 1);

    let agents = r["agents"].as_array().unwrap();
    let a2 = agents.iter().find(|a| a["agent"] == "a2").unwrap();
    assert_eq!(a2["state"], "paused");
    assert_eq!(a2["reason"], "lunch");
    assert_eq!(a2["name"], "Wang Wei");
    assert_eq!(a2["since"], "2026-11-23T01:18:00.000Z");
}

#[test]
fn check_config_reports_errors_with_positions_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[defaults]\nsl_threshold = \"soon\"\nbogus = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("{}:2:16: bad duration", bad.display())),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:3:1: unknown field `bogus`", bad.display())),
        "{text}"
    );

    let ok = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"),
        ])
        .env("ACDMON_READ_TOKEN", "r")
        .env("ACDMON_ADMIN_TOKEN", "a")
        .env("AMI_SECRET", "s")
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}

/// Several inputs are merged by event time: the day split into an agents
/// file and a calls file, given calls first, replays to the same report.
#[test]
fn several_inputs_are_merged_by_event_time() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let day = std::fs::read_to_string(format!("{dir}/tests/data/day.jsonl")).unwrap();
    let (agents, calls): (Vec<&str>, Vec<&str>) = day.lines().partition(|l| l.contains("\"agent_"));
    assert!(agents.len() > 3 && calls.len() > 10);
    let tmp = std::env::temp_dir().join(format!("acdmon-merge-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let a = tmp.join("agents.jsonl");
    let c = tmp.join("calls.jsonl");
    std::fs::write(&a, agents.join("\n") + "\n").unwrap();
    std::fs::write(&c, calls.join("\n") + "\n").unwrap();
    let merged = replay_inputs(&[
        c.to_string_lossy().into_owned(),
        a.to_string_lossy().into_owned(),
    ]);
    let whole = replay();
    let _ = std::fs::remove_dir_all(&tmp);
    for key in ["queues", "agents", "rejected", "intervals"] {
        assert_eq!(merged[key], whole[key], "{key} differs");
    }
}

#[test]
fn replay_of_an_unreadable_input_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args([
            "replay",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/day.toml"),
            "/nonexistent/file.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

/// Contract section 1 spells the format `queue_log`; the CLI takes that
/// spelling (and `queue-log`), and both give the same report.
#[test]
fn replay_takes_the_contract_spelling_of_queue_log() {
    let root = env!("CARGO_MANIFEST_DIR");
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["replay", "--config"])
            .arg(format!("{root}/tests/data/day.toml"))
            .args(["--format", format])
            .arg(format!("{root}/tests/data/queue_log/day_sample.queue_log"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "--format {format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let a = run("queue_log");
    assert!(!a["queues"].as_array().unwrap().is_empty());
    assert_eq!(a, run("queue-log"));
}

/// The annotated example on a machine without its `env:` secrets set:
/// check-config names each one as a warning with its position and exits 0
/// (the file is valid); `run` still refuses to start without them.
#[test]
fn unset_env_secrets_are_warnings_in_check_config_and_errors_in_run() {
    let example = format!("{}/config/example.toml", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["check-config", &example])
        .env_remove("ACDMON_READ_TOKEN")
        .env_remove("ACDMON_ADMIN_TOKEN")
        .env_remove("AMI_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.lines().any(|l| l.contains("example.toml:")
            && l.contains(": warning: environment variable AMI_SECRET is not set")),
        "{text}"
    );
    let run = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["run", "--config", &example])
        .env_remove("ACDMON_READ_TOKEN")
        .env_remove("ACDMON_ADMIN_TOKEN")
        .env_remove("AMI_SECRET")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("AMI_SECRET is not set"));
}
