//! `acdmon replay` on a recorded HEP stream (a real Kamailio capture) and
//! `acdmon check-config` on hep source settings, through the binary.

use std::process::Command;

use serde_json::Value;

fn dir() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

#[test]
fn replaying_a_kamailio_capture_gives_queue_kpis() {
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args([
            "replay",
            "--config",
            &format!("{}/tests/data/hep/replay.toml", dir()),
            &format!("{}/tests/data/hep/kamailio_calls.hep", dir()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let q = |name: &str| {
        r["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == name)
            .unwrap_or_else(|| panic!("no queue {name}: {r}"))
            .clone()
    };
    // The format was detected from the HEP3 magic.
    let sales = q("sales");
    let t = &sales["windows"]["today"];
    assert_eq!(t["offered"], 1, "{sales}");
    assert_eq!(t["answered"], 1);
    assert_eq!(t["answered_in_sl"], 1, "answered after 1.2 s, T = 3 s");
    let support = q("support");
    let t = &support["windows"]["today"];
    assert_eq!(t["offered"], 1, "{support}");
    assert_eq!(t["abandoned"], 1);
    assert_eq!(t["short_abandoned"], 0, "gave up after 2 s");
    assert_eq!(r["rejected"], serde_json::json!({}));
}

#[test]
fn check_config_reports_hep_key_errors_with_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.toml");
    std::fs::write(
        &p,
        "[[sources]]\nname = \"k\"\nkind = \"hep\"\nlisten_udp = \"127.0.0.1:9060\"\nqueue_headr = \"X-Queue\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["check-config", &p.to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("queue_headr"), "{err}");
    // What serde cannot see: a pattern that does not compile.
    std::fs::write(
        &p,
        "[[sources]]\nname = \"k\"\nkind = \"hep\"\n[[sources.queues]]\npattern = \"^8(\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["check-config", &p.to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("bad.toml:1:") && err.contains("pattern"),
        "{err}"
    );
}
