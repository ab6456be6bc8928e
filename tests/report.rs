//! `acdmon report` over a replayed history: two Mondays a week apart are
//! replayed with `--store`, and the second Monday's report is checked
//! against figures this test works out from the calls it generated: volumes,
//! SL, ASA, AHT, staffed seats, Erlang C seats, and the forecast from the
//! week before.

use std::process::Command;

use acdmon::state::erlang;
use acdmon::time::Ts;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[time]
zone = "Asia/Shanghai"
[defaults]
sl_threshold = "20s"
sl_target = 0.8
short_abandon = "5s"
interval = "15m"
[storage]
path = "STORE"
[[queues]]
name = "hotline"
"#;

/// What the test expects of one interval.
#[derive(Debug, Default, Clone)]
struct Want {
    arrivals: u64,
    answered: u64,
    in_sl: u64,
    abandoned: u64,
    wait_sum: f64,
    talk_sum: f64,
    handled: u64,
}

fn day(date: &str) -> Ts {
    Ts::parse_rfc3339(&format!("{date}T00:00:00+08:00")).unwrap()
}

const H: i64 = 3_600_000;
const MIN: i64 = 60_000;

/// Events of one day and the expected figures per interval start.
fn generate(
    date: &str,
    d: i64,
    out: &mut Vec<(Ts, Value)>,
) -> std::collections::BTreeMap<i64, Want> {
    let base = day(date);
    let mut want: std::collections::BTreeMap<i64, Want> = Default::default();
    let mut push = |t: Ts, v: Value| {
        let mut v = v;
        v["ts"] = json!(t.0);
        out.push((t, v));
    };
    let agents = ["a1", "a2", "a3", "a4", "a5"];
    for a in agents {
        push(
            base.plus_ms(8 * H),
            json!({"type":"agent_joined_queue","agent":a,"queue":"hotline"}),
        );
        push(
            base.plus_ms(8 * H),
            json!({"type":"agent_state","agent":a,"state":"available"}),
        );
    }
    let a6 = base.plus_ms(9 * H + 37 * MIN + 30_000);
    push(
        a6,
        json!({"type":"agent_joined_queue","agent":"a6","queue":"hotline"}),
    );
    push(
        a6,
        json!({"type":"agent_state","agent":"a6","state":"available"}),
    );
    for a in agents.iter().chain(&["a6"]) {
        push(
            base.plus_ms(12 * H),
            json!({"type":"agent_left_queue","agent":a,"queue":"hotline"}),
        );
    }
    let slot = |t: Ts| t.0 - (t.0 - base.0).rem_euclid(15 * MIN);
    for k in 0..8i64 {
        let start = base.plus_ms(9 * H + k * 15 * MIN);
        for i in 0..(3 + k + 2 * d) {
            let call = format!("{date}-{k}-{i}");
            let t = start.plus_ms(i * MIN + 5_000);
            let w = (i * 7 + k * 3 + d) % 40;
            let agent = agents[(i % 5) as usize];
            push(
                t,
                json!({"type":"call_enqueued","call":call,"queue":"hotline"}),
            );
            let iv = want.entry(start.0).or_default();
            iv.arrivals += 1;
            let left = t.plus_ms(w * 1000);
            if w < 33 {
                push(
                    left,
                    json!({"type":"call_answered","call":call,"queue":"hotline","agent":agent}),
                );
                iv.answered += 1;
                iv.in_sl += (w <= 20) as u64;
                iv.wait_sum += w as f64;
                let talk = 120 + 10 * i + k;
                let end = left.plus_ms(talk * 1000);
                push(
                    end,
                    json!({"type":"call_completed","call":call,"queue":"hotline","agent":agent}),
                );
                let done = want.entry(slot(end)).or_default();
                done.handled += 1;
                done.talk_sum += talk as f64;
            } else {
                push(
                    left,
                    json!({"type":"call_abandoned","call":call,"queue":"hotline"}),
                );
                iv.abandoned += 1;
            }
        }
    }
    want
}

fn close(v: &Value, want: f64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {v} is not a number"));
    assert!((got - want).abs() < 1e-3, "{what}: got {got}, want {want}");
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A temporary directory with a config whose history goes to it.
fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("history.sqlite");
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(&cfg, CONFIG.replace("STORE", &store.display().to_string())).unwrap();
    (dir, cfg)
}

/// `acdmon replay --store` of `input` into the config's history.
fn replay_into_history(cfg: &std::path::Path, input: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["replay", "--store", "--config"])
        .arg(cfg)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `acdmon report` of 2026-11-23 for hotline, in `format`.
fn report_of_the_23rd(cfg: &std::path::Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_acdmon"))
        .args(["report", "--config"])
        .arg(cfg)
        .args([
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-23",
            "--queue",
            "hotline",
            "--format",
            format,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_report_of_a_replayed_day_matches_the_calls() {
    let (dir, cfg) = setup();
    let mut events = Vec::new();
    let last_week = generate("2026-11-16", 0, &mut events);
    let this_week = generate("2026-11-23", 1, &mut events);
    events.sort_by_key(|(t, _)| *t);
    let input = dir.path().join("two-mondays.jsonl");
    std::fs::write(
        &input,
        events
            .iter()
            .map(|(_, v)| format!("{v}\n"))
            .collect::<String>(),
    )
    .unwrap();
    replay_into_history(&cfg, &input);
    let bin = env!("CARGO_BIN_EXE_acdmon");
    let report = |format: &str| report_of_the_23rd(&cfg, format);
    let rows: Vec<Value> = serde_json::from_str(&report("json")).unwrap();
    assert_eq!(
        rows.len(),
        48,
        "00:00 to 12:00 of the 23rd was closed by the replay"
    );
    let base = day("2026-11-23");
    assert_eq!(rows[0]["start"], "2026-11-23T00:00:00+08:00");
    let by_start = |t: Ts| &rows[((t.0 - base.0) / (15 * MIN)) as usize];
    let mut checked = 0;
    for (start, w) in &this_week {
        let r = by_start(Ts(*start));
        let what = |f: &str| format!("{} {f}", r["start"]);
        let offered = w.answered + w.abandoned;
        assert_eq!(r["offered"], offered, "{}", what("offered"));
        if w.arrivals == 0 {
            // 11:00: only calls of 10:45 ending.
            close(&r["aht_s"], w.talk_sum / w.handled as f64, &what("aht"));
            continue;
        }
        assert_eq!(r["answered"], w.answered, "{}", what("answered"));
        assert_eq!(r["answered_in_sl"], w.in_sl, "{}", what("in sl"));
        assert_eq!(r["abandoned"], w.abandoned, "{}", what("abandoned"));
        close(
            &r["service_level"],
            w.in_sl as f64 / offered as f64,
            &what("sl"),
        );
        close(&r["asa_s"], w.wait_sum / w.answered as f64, &what("asa"));
        let aht = w.talk_sum / w.handled as f64;
        close(&r["aht_s"], aht, &what("aht"));
        let minutes = (start - base.0) / MIN;
        let staffed = match minutes {
            m if m < 9 * 60 + 30 => 5.0,
            m if m < 9 * 60 + 45 => 5.5,
            _ => 6.0,
        };
        close(&r["staffed_agents"], staffed, &what("staffed"));
        let required = erlang::required_agents(w.arrivals as f64 / 900.0, aht, 20.0, 0.8).unwrap();
        assert_eq!(r["required_agents"], required, "{}", what("required"));
        close(&r["staffing_gap"], staffed - required as f64, &what("gap"));
        // The forecast is last Monday's same interval.
        let lw = &last_week[&(start - 7 * 24 * H)];
        let lw_offered = (lw.answered + lw.abandoned) as f64;
        assert_eq!(r["forecast_weeks"], 1, "{}", what("weeks"));
        close(&r["forecast_offered"], lw_offered, &what("forecast"));
        close(
            &r["forecast_error"],
            offered as f64 - lw_offered,
            &what("forecast error"),
        );
        let lw_aht = round3(lw.talk_sum / lw.handled as f64);
        let lw_required =
            erlang::required_agents(lw.arrivals as f64 / 900.0, lw_aht, 20.0, 0.8).unwrap();
        assert_eq!(
            r["forecast_required"],
            lw_required,
            "{}",
            what("forecast required")
        );
        checked += 1;
    }
    assert!(checked >= 8, "{checked}");
    // Before the agents come in: no calls, no seats.
    let evening = by_start(base.plus_ms(3 * H));
    assert_eq!(evening["offered"], 0);
    close(&evening["staffed_agents"], 0.0, "evening staffed");
    assert!(evening["service_level"].is_null());

    let csv = report("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "queue");
    assert!(header.contains(&"forecast_required"));
    let nine: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("hotline,2026-11-23T09:00:00+08:00,"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(nine.len(), header.len());
    let col = |name: &str| nine[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("start"), "2026-11-23T09:00:00+08:00");
    assert_eq!(col("end"), "2026-11-23T09:15:00+08:00");
    let w = &this_week[&base.plus_ms(9 * H).0];
    assert_eq!(col("offered"), (w.answered + w.abandoned).to_string());
    assert_eq!(col("partial"), "false");
    assert!(rows.iter().all(|r| r["partial"] == false));

    // Bad bounds are an error with exit 1.
    let out = Command::new(bin)
        .args(["report", "--config"])
        .arg(&cfg)
        .args(["--from", "someday", "--to", "2026-11-23"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a date"));
}

/// A daemon (here a replay) that begins inside an interval stores that
/// interval as partial: its figures miss what came before. Later ones are
/// whole.
#[test]
fn an_interval_the_daemon_began_inside_is_marked_partial() {
    let (dir, cfg) = setup();
    let input = dir.path().join("late-start.jsonl");
    let lines = [
        r#"{"ts":"2026-11-23T09:07:00+08:00","type":"call_enqueued","call":"c1","queue":"hotline"}"#,
        r#"{"ts":"2026-11-23T09:07:30+08:00","type":"call_abandoned","call":"c1","queue":"hotline"}"#,
        r#"{"ts":"2026-11-23T09:20:00+08:00","type":"call_enqueued","call":"c2","queue":"hotline"}"#,
        r#"{"ts":"2026-11-23T09:31:00+08:00","type":"call_abandoned","call":"c2","queue":"hotline"}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    replay_into_history(&cfg, &input);
    let rows: Vec<Value> = serde_json::from_str(&report_of_the_23rd(&cfg, "json")).unwrap();
    let at = |hm: &str| {
        rows.iter()
            .find(|r| r["start"] == format!("2026-11-23T{hm}:00+08:00"))
            .unwrap_or_else(|| panic!("no {hm} row in {rows:?}"))
    };
    assert_eq!(at("09:00")["partial"], true);
    assert_eq!(at("09:00")["offered"], 1);
    assert_eq!(at("09:15")["partial"], false);
}
