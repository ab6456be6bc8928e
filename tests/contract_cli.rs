//! The command line as a user who read the contract (sections 1 and 2) uses
//! it: the commands, their exit codes and what they print.

use std::process::Command;

fn acdmon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acdmon"))
}

const CONTRACT_EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/contract/example.toml"
);

/// A new user copies the configuration of the contract, sets its secrets and
/// validates it: exit 0. Its ladder names groups (`floating-experts`,
/// `quality`, `back-office`) that no `[[agents]]` entry is in; that is worth
/// a warning with its position, not a refusal (it was exit 1 with three
/// errors).
#[test]
fn the_contracts_example_configuration_validates() {
    let out = acdmon()
        .args(["check-config", CONTRACT_EXAMPLE])
        .env("ACDMON_READ_TOKEN", "r")
        .env("ACDMON_ADMIN_TOKEN", "a")
        .env("AMI_SECRET", "s")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for group in ["floating-experts", "quality", "back-office"] {
        assert!(
            text.lines().any(|l| l.starts_with(CONTRACT_EXAMPLE)
                && l.contains(": warning: ")
                && l.contains(&format!("`{group}`"))),
            "no positioned warning for {group}: {text}"
        );
    }
    assert!(text.contains(&format!("{CONTRACT_EXAMPLE}: ok")), "{text}");
}

/// The same file replays unchanged (contract section 2: "a config written
/// for `run` replays unchanged"): a short surge on the hotline, one JSON
/// report on stdout, exit 0.
#[test]
fn the_contracts_example_configuration_replays() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("surge.jsonl");
    let mut lines = vec![
        r#"{"ts":"2026-12-07T09:00:00+08:00","type":"agent_state","agent":"1017","state":"available"}"#.to_string(),
    ];
    for i in 0..7 {
        lines.push(format!(
            r#"{{"ts":"2026-12-07T09:00:0{i}+08:00","type":"call_enqueued","call":"c{i}","queue":"hotline"}}"#
        ));
    }
    lines.push(
        r#"{"ts":"2026-12-07T09:20:00+08:00","type":"call_abandoned","call":"c0","queue":"hotline"}"#
            .to_string(),
    );
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = acdmon()
        .args(["replay", "--config", CONTRACT_EXAMPLE])
        .arg(&input)
        .env("ACDMON_READ_TOKEN", "r")
        .env("ACDMON_ADMIN_TOKEN", "a")
        .env("AMI_SECRET", "s")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["queues", "agents", "escalations", "rejected"] {
        assert!(!report[key].is_null(), "no {key} in {report}");
    }
    let hotline = report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "hotline")
        .unwrap();
    assert_eq!(hotline["waiting"], 6, "{hotline}");
    // Waiting > 5 for 5 minutes: the experts' stage fired, and with nobody
    // in that group the entry says so instead of signing anyone in.
    let first = &report["escalations"][0];
    assert_eq!(first["stage_name"], "experts", "{report}");
    assert_eq!(first["direction"], "up", "{first}");
}

/// Exit codes are 0 ok, 1 bad config or unreadable input, 2 runtime
/// failure: a command line that cannot be understood is bad input (exit 1),
/// never the 2 a supervisor's script reads as "the daemon failed" (clap's
/// default was 2). Help and version are answers, exit 0.
#[test]
fn a_wrong_command_line_exits_1_and_help_exits_0() {
    for args in [
        vec!["run"],
        vec!["replay", "--config", CONTRACT_EXAMPLE],
        vec!["check-config"],
        vec![
            "replay",
            "--format",
            "csv",
            "--config",
            CONTRACT_EXAMPLE,
            "x",
        ],
        vec!["launch"],
        vec![],
    ] {
        let out = acdmon().args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}: usage goes to stderr");
    }
    for args in [vec!["--help"], vec!["replay", "--help"], vec!["--version"]] {
        let out = acdmon().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}
