use super::*;

fn errors(text: &str) -> Vec<String> {
    Config::parse("t.toml", text)
        .unwrap_err()
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn example_config_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
        .unwrap();
    // The example's secrets come from the environment.
    // SAFETY: tests in this module do not read these variables concurrently.
    unsafe {
        std::env::set_var("ACDMON_READ_TOKEN", "r");
        std::env::set_var("ACDMON_ADMIN_TOKEN", "a");
        std::env::set_var("AMI_SECRET", "s");
    }
    let c = Config::parse("example.toml", &text).unwrap();
    assert!(!c.queues.is_empty());
    let e = c.engine_config();
    assert_eq!(e.defaults.sl_threshold_ms, 20_000);
}

#[test]
fn empty_config_uses_defaults() {
    let c = Config::parse("t.toml", "").unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.defaults.sl_target, 0.8);
    assert_eq!(c.zone_name, "UTC");
}

#[test]
fn every_error_is_reported_with_its_position() {
    let text = r#"
[defaults]
sl_threshold = "20 parsecs"
sl_targt = 0.8
sl_formula = "best"

[time]
zone = "Mars/Olympus"

[[queues]]
name = "hotline"
ladder = "nope"

[[queues]]
name = 7

[[ladders]]
name = "emergency"
[[ladders.stages]]
name = "experts"
when = "waiting >> 5"
for = "5m"
sign_in = { group = "ghosts" }

[[sources]]
name = "pbx"
kind = "carrier-pigeon"

[mystery]
x = 1
"#;
    let errs = errors(text);
    let joined = errs.join("\n");
    assert!(
        !joined.contains("missing field `name`"),
        "a bad key is not also missing:\n{joined}"
    );
    for (needle, at) in [
        ("bad duration", "t.toml:3:"),
        ("sl_targt", "t.toml:4:1"),
        ("best", "t.toml:5:"),
        ("unknown time zone", "t.toml:8:"),
        ("unknown ladder `nope`", "t.toml:12:"),
        ("invalid type", "t.toml:15:"),
        ("bad expression", "t.toml:21:"),
        ("unknown source kind", "t.toml:27:"),
        ("unknown section `mystery`", "t.toml:29:"),
    ] {
        assert!(
            errs.iter().any(|e| e.contains(needle) && e.starts_with(at)),
            "missing {needle:?} at {at}:\n{joined}"
        );
    }
}

/// A stage naming a group nobody is in is valid (the contract's own example
/// has three), but almost certainly a mistake: a warning with its position.
#[test]
fn a_stage_of_an_unknown_group_is_a_warning() {
    let text = r#"
[[agents]]
id = "1017"
groups = ["outbound"]

[[ladders]]
name = "emergency"
[[ladders.stages]]
name = "experts"
when = "waiting > 5"
for = "5m"
sign_in = { group = "ghosts" }
"#;
    let c = Config::parse("t.toml", text).unwrap();
    let w: Vec<String> = c.warnings.iter().map(|e| e.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("t.toml:12:21:") && w[0].contains("unknown group `ghosts`"),
        "{w:?}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errs = errors("[server]\nlisten = \n");
    assert!(errs[0].starts_with("t.toml:2:"), "{errs:?}");
}

#[test]
fn unknown_agent_source_is_an_error() {
    let errs = errors("[[agents]]\nid = \"1\"\nsource = \"pbx9\"\n");
    assert!(
        errs[0].contains("unknown source `pbx9`") && errs[0].starts_with("t.toml:3:"),
        "{errs:?}"
    );
}

const LADDERS: &str = r#"
[[agents]]
id = "1"
groups = ["experts"]

[[ladders]]
name = "day"
[[ladders.stages]]
name = "experts"
when = "waiting > 5"
sign_in = { group = "experts" }

[[ladders]]
name = "night"
[[ladders.stages]]
name = "experts"
when = "waiting > 5"
sign_in = { group = "experts", keep = 1 }
"#;

#[test]
fn schedules_and_cti_are_compiled() {
    let text = format!(
        r#"{LADDERS}
[[schedules]]
name = "holidays"
dates = ["2026-10-01", "2026-10-02"]
ladder = "day"

[[schedules]]
name = "night"
weekdays = ["mon", "tue"]
from = "22:00"
to = "08:00"
ladder = "night"
queues = ["hotline"]

[[cti]]
name = "crm"
kind = "webhook"
url = "http://127.0.0.1:9000/cti"
timeout = "2s"
retries = 2
backoff = "100ms"
default = true
"#
    );
    let c = Config::parse("t.toml", &text).unwrap();
    assert_eq!(c.schedules.len(), 2);
    assert_eq!(c.schedules[0].dates.len(), 2);
    assert!(c.schedules[1].window.is_some());
    assert_eq!(c.cti.len(), 1);
    assert!(c.cti[0].default);
    let CtiSpec::Webhook(w) = &c.cti[0].spec;
    assert_eq!(w.retries, 2);
    assert_eq!(
        c.ladder("night").unwrap().stages[0]
            .sign_in
            .as_ref()
            .unwrap()
            .keep,
        Some(1)
    );
}

#[test]
fn bad_schedules_and_cti_are_reported_at_their_positions() {
    let text = format!(
        r#"{LADDERS}
[[schedules]]
name = "holidays"
dates = ["2026-13-01"]
ladder = "weekend"

[[schedules]]
name = "night"
weekdays = ["funday"]
from = "25:00"
to = "08:00"

[[schedules]]
name = "always"
ladder = "day"

[[cti]]
name = "crm"
kind = "webhook"
url = "https://crm.example/cti"
retries = 99

[[cti]]
name = "fax"
kind = "fax"

[[agents]]
id = "2"
source = "crm2"
"#
    );
    let errs = errors(&text);
    let joined = errs.join("\n");
    let line = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| format!("t.toml:{}:", i + 1))
            .unwrap()
    };
    for (needle, at) in [
        ("is not a date", line("2026-13-01")),
        ("unknown ladder `weekend`", line("\"weekend\"")),
        ("is not a weekday", line("funday")),
        ("is not a time of day", line("25:00")),
        ("is too many (at most 10)", line("https://")),
        ("unknown cti kind `fax`", line("kind = \"fax\"")),
        ("unknown source `crm2`", line("\"crm2\"")),
    ] {
        assert!(
            errs.iter()
                .any(|e| e.contains(needle) && e.starts_with(&at)),
            "missing {needle:?} at {at}:\n{joined}"
        );
    }
    assert!(
        joined.contains("schedule `always` is always on"),
        "{joined}"
    );
}

#[test]
fn adapter_keys_are_checked_with_positions() {
    let errs = errors(
        "[[sources]]\nname = \"pbx\"\nkind = \"ami\"\naddress = \"127.0.0.1:5038\"\nusername = \"u\"\nsecret = \"s\"\nsign_out = \"vanish\"\nport = 5038\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:7:") && e.contains("vanish")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:8:") && e.contains("port")),
        "{errs:?}"
    );
}

#[test]
fn clock_and_watchdog_limits_are_checked_with_positions() {
    let c = Config::parse("t.toml", "").unwrap();
    assert_eq!(c.max_future_skew_ms, 300_000);
    assert_eq!(c.server.engine_stall_after.get_ref().millis(), 5_000);
    let c = Config::parse(
        "t.toml",
        "[server]\nengine_stall_after = \"2s\"\n[time]\nmax_future_skew = \"30s\"\n",
    )
    .unwrap();
    assert_eq!(c.max_future_skew_ms, 30_000);
    assert_eq!(c.server.engine_stall_after.get_ref().millis(), 2_000);
    let e = errors("[server]\nengine_stall_after = \"0s\"\n[time]\nmax_future_skew = \"2d\"\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("t.toml:2:")
            && e[0].contains("engine_stall_after 0s must be between 1s and 1h"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("t.toml:4:")
            && e[1].contains("max_future_skew 2days must be between 1s and 24h"),
        "{e:?}"
    );
}

#[test]
fn sl_round_is_per_queue_and_checked() {
    use crate::state::SlRound;
    let c = Config::parse(
        "t.toml",
        "[defaults]\nsl_threshold = \"20s\"\n\n[[queues]]\nname = \"pbx-support\"\nsl_round = \"whole_seconds\"\n\n[[queues]]\nname = \"web\"\n",
    )
    .unwrap();
    let e = c.engine_config();
    assert_eq!(e.defaults.sl_round, SlRound::Exact);
    assert_eq!(
        e.queue_params("pbx-support").sl_round,
        SlRound::WholeSeconds
    );
    assert_eq!(e.queue_params("web").sl_round, SlRound::Exact);
    let errs = errors("[defaults]\nsl_round = \"nearest\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("t.toml:2:"), "{errs:?}");
    assert!(errs[0].contains("whole_seconds"), "{errs:?}");
}

#[test]
fn ami_settings_read_with_defaults_and_unknown_keys_refused() {
    let SourceSpec::Ami(c) = SourceSpec::from_toml(
        "ami",
        "address = \"10.0.0.2:5038\"\nusername = \"acdmon\"\nsecret = \"inline-secret\"\nauth = \"md5\"\nagent_id = \"interface\"\nsign_out = \"pause\"\nping_interval = \"10s\"",
    )
    .unwrap() else {
        panic!("not an ami spec")
    };
    assert_eq!(c.auth, Auth::Md5);
    assert_eq!(c.agent_id, AgentNaming::Interface);
    assert_eq!(c.sign_out, SignOutMode::Pause);
    assert_eq!(c.events, "agent,call");
    assert_eq!(c.ping_interval.millis(), 10_000);
    assert_eq!(c.action_timeout.millis(), 5_000);
    assert!(!format!("{c:?}").contains("inline-secret"));
    let e = SourceSpec::from_toml(
        "ami",
        "address = \"x:1\"\nusername = \"u\"\nsecret = \"s\"\nport = 5038",
    )
    .unwrap_err();
    assert!(e.contains("port"), "{e}");
}
