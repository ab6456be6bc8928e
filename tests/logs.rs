//! Logs for machines: with `ACDMON_LOG_FORMAT=json` every stderr line is one
//! JSON object carrying the same structured fields as the text form, so
//! journald, Loki or Elastic can index `reason` and `source` without a
//! parser; the default stays human text.

use std::process::Command;

fn replay_stderr(format: Option<&str>) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acdmon"));
    cmd.args(["replay", "--config"])
        .arg(format!("{root}/tests/data/day.toml"))
        .arg(format!("{root}/tests/data/day.jsonl"))
        .env_remove("ACDMON_LOG_FORMAT");
    if let Some(f) = format {
        cmd.env("ACDMON_LOG_FORMAT", f);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn json_logs_are_one_object_per_line_with_the_fields() {
    let err = replay_stderr(Some("json"));
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "the day's rejected lines are logged");
    let mut rejected = 0;
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        assert!(v["message"].is_string(), "{l}");
        if v["message"] == "input rejected and skipped" {
            rejected += 1;
            assert!(v["reason"].is_string() && v["at"].is_string(), "{l}");
        }
    }
    assert!(rejected > 0, "{err}");
}

#[test]
fn text_logs_stay_the_default_and_an_unknown_format_is_said() {
    let err = replay_stderr(None);
    assert!(err.contains("input rejected and skipped"), "{err}");
    assert!(err.lines().all(|l| !l.starts_with('{')), "{err}");
    let err = replay_stderr(Some("xml"));
    assert!(err.contains("ACDMON_LOG_FORMAT"), "{err}");
}
