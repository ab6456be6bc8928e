//! A/B posts, replayed through the `acdmon replay` binary on event time.
//!
//! The floor (Asia/Shanghai, Monday 2026-11-23):
//! - `hotline-desk`: A holder a1, B holder b1, both must be in the hotline
//!   queue to count; a 2-minute grace; a pause for `toilet` still counts.
//! - `night-supervisor`: supervisors s1 and s2 as A holders, at least one
//!   on site from 22:00 to 08:00 (a `select_ladder = false` schedule, so it
//!   does not touch the ladders), a 5-minute grace.

mod support;

use std::process::Command;
use std::time::Duration;

use acdmon::time::Ts;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[time]
zone = "Asia/Shanghai"

[[queues]]
name = "hotline"

[[agents]]
id = "a1"
[[agents]]
id = "b1"
[[agents]]
id = "s1"
[[agents]]
id = "s2"

[[schedules]]
name = "night"
from = "22:00"
to = "08:00"
select_ladder = false

[[posts]]
name = "hotline-desk"
a = ["a1"]
b = ["b1"]
queues = ["hotline"]
grace = "2m"
present_reasons = ["toilet"]

[[posts]]
name = "night-supervisor"
a = ["s1", "s2"]
min = 1
when = "night"
grace = "5m"
"#;

/// Local time on the day of the story (`"+1 02:00:00"`: the next day).
fn at(hms: &str) -> Ts {
    let (day, hms) = match hms.strip_prefix("+1 ") {
        Some(rest) => ("24", rest),
        None => ("23", hms),
    };
    Ts::parse_rfc3339(&format!("2026-11-{day}T{hms}+08:00")).unwrap()
}

struct Feed(Vec<Value>);

impl Feed {
    fn push(&mut self, t: &str, mut v: Value) -> &mut Self {
        v["ts"] = json!(at(t).0);
        self.0.push(v);
        self
    }
    fn state(&mut self, t: &str, agent: &str, state: &str) -> &mut Self {
        self.push(
            t,
            json!({"type": "agent_state", "agent": agent, "state": state}),
        )
    }
    fn pause(&mut self, t: &str, agent: &str, reason: &str) -> &mut Self {
        self.push(
            t,
            json!({"type": "agent_state", "agent": agent, "state": "paused", "reason": reason}),
        )
    }
    fn join(&mut self, t: &str, agent: &str) -> &mut Self {
        self.push(
            t,
            json!({"type": "agent_joined_queue", "agent": agent, "queue": "hotline"}),
        )
    }
    fn leave(&mut self, t: &str, agent: &str) -> &mut Self {
        self.push(
            t,
            json!({"type": "agent_left_queue", "agent": agent, "queue": "hotline"}),
        )
    }
    /// The morning: a1 and b1 in the hotline from 09:00.
    fn morning() -> Feed {
        let mut f = Feed(Vec::new());
        f.join("09:00:00", "a1")
            .state("09:00:00", "a1", "available")
            .join("09:00:00", "b1")
            .state("09:00:00", "b1", "available");
        f
    }
}

fn replay(feed: &Feed) -> Vec<Value> {
    replay_report(CONFIG, feed)["posts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The whole replay report of `feed` under `config`.
fn replay_report(config: &str, feed: &Feed) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("acdmon.toml");
    std::fs::write(&cfg, config).unwrap();
    let input = dir.path().join("day.jsonl");
    let text: String = feed.0.iter().map(|v| format!("{v}\n")).collect();
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

fn post<'a>(posts: &'a [Value], name: &str) -> &'a Value {
    posts
        .iter()
        .find(|p| p["post"] == name)
        .unwrap_or_else(|| panic!("no post {name} in {posts:?}"))
}

fn ts(hms: &str) -> Value {
    json!(at(hms).rfc3339())
}

#[test]
fn a_leaves_and_b_covers() {
    let mut f = Feed::morning();
    // A short toilet break counts as present: A still holds the post.
    f.pause("09:10:00", "a1", "toilet")
        .state("09:12:00", "a1", "available")
        // A goes to lunch: B covers from 09:30, nobody is missing.
        .pause("09:30:00", "a1", "lunch")
        .state("09:40:00", "b1", "on_call");
    let posts = replay(&f);
    let desk = post(&posts, "hotline-desk");
    assert_eq!(desk["cover"], "b", "{desk}");
    assert_eq!(desk["covered"], true);
    assert_eq!(desk["since"], ts("09:30:00"));
    assert_eq!(desk["present"], json!(["b1"]));
    assert_eq!(desk["breaches"], json!([]));

    // A comes back: A holds it again.
    f.state("09:45:00", "a1", "available");
    let posts = replay(&f);
    let desk = post(&posts, "hotline-desk");
    assert_eq!(desk["cover"], "a");
    assert_eq!(desk["since"], ts("09:45:00"));
    assert_eq!(desk["present"], json!(["a1", "b1"]));
}

/// The hotline desk with `cover = "auto"`: a1 holds it; b1 and b2 cover,
/// b1 is a hotline member already, b2 works the sales queue.
const AUTO: &str = r#"
[time]
zone = "Asia/Shanghai"

[[queues]]
name = "hotline"
[[queues]]
name = "sales"

[[agents]]
id = "a1"
[[agents]]
id = "b1"
[[agents]]
id = "b2"

[[posts]]
name = "hotline-desk"
a = ["a1"]
b = ["b1", "b2"]
queues = ["hotline"]
grace = "2m"
cover = "auto"
"#;

fn agent<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == id)
        .unwrap_or_else(|| panic!("no agent {id} in {report}"))
}

/// The cover log as (time, verb, agent, queue, result) rows.
fn cover_log(desk: &Value) -> Vec<(Value, String, String, String, String)> {
    desk["cover_log"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["ts"].clone(),
                e["verb"].as_str().unwrap().to_string(),
                e["agent"].as_str().unwrap().to_string(),
                e["queue"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn auto_cover_signs_b_in_when_a_leaves_and_out_when_a_is_back() {
    let mut f = Feed(Vec::new());
    f.join("09:00:00", "a1")
        .state("09:00:00", "a1", "available")
        // b1 is a hotline member already, but at lunch.
        .join("09:00:00", "b1")
        .pause("09:00:00", "b1", "lunch")
        // b2 takes sales calls.
        .push(
            "09:00:00",
            json!({"type": "agent_joined_queue", "agent": "b2", "queue": "sales"}),
        )
        .state("09:00:00", "b2", "available")
        // A logs out: b1 is on lunch, so b2 is signed into the hotline.
        .state("09:30:00", "a1", "logged_out")
        .state("09:31:00", "b2", "on_call");
    let report = replay_report(AUTO, &f);
    let desk = post(report["posts"].as_array().unwrap(), "hotline-desk");
    assert_eq!(desk["cover"], "b", "{desk}");
    assert_eq!(desk["present"], json!(["b2"]));
    assert_eq!(desk["breaches"], json!([]), "B covered within the grace");
    assert_eq!(
        cover_log(desk),
        vec![(
            ts("09:30:00"),
            "sign_in".into(),
            "b2".into(),
            "hotline".into(),
            "ok".into()
        )],
        "{desk}"
    );
    assert_eq!(desk["covering"][0]["agent"], "b2");
    assert_eq!(desk["covering"][0]["phase"], "in");
    assert_eq!(agent(&report, "b2")["queues"], json!(["hotline", "sales"]));

    // b1 back from lunch; A logs in again at 09:45 while b2 is still on a
    // call: b2 leaves the hotline when that call ends (09:52), not before.
    f.state("09:40:00", "b1", "available")
        .state("09:45:00", "a1", "available");
    let report = replay_report(AUTO, &f);
    let desk = post(report["posts"].as_array().unwrap(), "hotline-desk");
    assert_eq!(desk["cover"], "a");
    assert_eq!(desk["covering"][0]["phase"], "leaving", "{desk}");
    assert_eq!(cover_log(desk).len(), 1, "no sign-out during the call");
    assert_eq!(agent(&report, "b2")["queues"], json!(["hotline", "sales"]));

    f.state("09:52:00", "b2", "available");
    let report = replay_report(AUTO, &f);
    let desk = post(report["posts"].as_array().unwrap(), "hotline-desk");
    let log = cover_log(desk);
    assert_eq!(
        log[1],
        (
            ts("09:52:00"),
            "sign_out".into(),
            "b2".into(),
            "hotline".into(),
            "ok".into()
        ),
        "{desk}"
    );
    assert_eq!(
        log.len(),
        2,
        "b1 was a member already: never signed in or out"
    );
    assert_eq!(desk["covering"], Value::Null);
    assert_eq!(agent(&report, "b2")["queues"], json!(["sales"]));
    assert_eq!(agent(&report, "b1")["queues"], json!(["hotline"]));
    // Every decision names the post and why.
    assert!(
        desk["cover_log"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no A holder present"),
        "{desk}"
    );
}

#[test]
fn auto_cover_never_signs_out_someone_it_did_not_sign_in() {
    let mut f = Feed(Vec::new());
    f.join("09:00:00", "a1")
        .state("09:00:00", "a1", "available")
        .join("09:00:00", "b1")
        .pause("09:00:00", "b1", "lunch")
        .push(
            "09:00:00",
            json!({"type": "agent_joined_queue", "agent": "b2", "queue": "sales"}),
        )
        .state("09:00:00", "b2", "available")
        // A leaves: b2 is signed in.
        .state("09:30:00", "a1", "logged_out")
        // b2 leaves the hotline by itself, and a supervisor adds b2 again
        // by hand: that membership is the supervisor's, not the rule's.
        .leave("09:35:00", "b2")
        .join("09:36:00", "b2")
        // b1 back from lunch, then A: b1 was a member all along.
        .state("09:40:00", "b1", "available")
        .state("09:45:00", "a1", "available");
    let report = replay_report(AUTO, &f);
    let desk = post(report["posts"].as_array().unwrap(), "hotline-desk");
    assert_eq!(desk["cover"], "a");
    let log = cover_log(desk);
    assert_eq!(
        log,
        vec![(
            ts("09:30:00"),
            "sign_in".into(),
            "b2".into(),
            "hotline".into(),
            "ok".into()
        )],
        "only the one sign-in; no sign-out of b2 (re-added by hand) or b1: {desk}"
    );
    assert_eq!(agent(&report, "b1")["queues"], json!(["hotline"]));
    assert_eq!(agent(&report, "b2")["queues"], json!(["hotline", "sales"]));
}

#[test]
fn both_away_longer_than_the_grace_is_exactly_one_unmanned_period() {
    let mut f = Feed::morning();
    f.state("09:30:00", "a1", "logged_out")
        // B pauses for one minute: within the grace, no breach.
        .pause("09:31:00", "b1", "lunch")
        .state("09:32:00", "b1", "available")
        // B leaves the queue and logs out at 09:40: nobody holds the post.
        .leave("09:40:00", "b1")
        .state("09:40:00", "b1", "logged_out")
        // B logs in at 09:45 but not into the hotline: still unmanned.
        .state("09:45:00", "b1", "available");
    let posts = replay(&f);
    let desk = post(&posts, "hotline-desk");
    assert_eq!(desk["cover"], "unmanned", "{desk}");
    assert_eq!(desk["covered"], false);
    assert_eq!(desk["unmanned_since"], ts("09:40:00"));
    assert_eq!(
        desk["unmanned_s"],
        json!(300.0),
        "09:40 to the last event, 09:45"
    );
    assert_eq!(
        desk["breaches"],
        json!([{"start": ts("09:40:00"), "end": null}])
    );

    // A logs back in at 09:50: the breach ends there.
    f.state("09:50:00", "a1", "available")
        .state("10:00:00", "b1", "paused");
    let posts = replay(&f);
    let desk = post(&posts, "hotline-desk");
    assert_eq!(desk["cover"], "a");
    assert_eq!(desk["unmanned_s"], json!(0.0));
    assert_eq!(
        desk["breaches"],
        json!([{"start": ts("09:40:00"), "end": ts("09:50:00")}]),
        "exactly one unmanned period, 09:40 to 09:50"
    );
}

#[test]
fn the_night_post_needs_one_supervisor_and_only_at_night() {
    let mut f = Feed(Vec::new());
    // Evening: no supervisor on site, but the night post is not on yet.
    f.state("21:00:00", "s1", "logged_out")
        .state("21:00:00", "s2", "logged_out");
    // No event from 21:00 to 22:20: the schedule comes on at 22:00 with
    // nobody there, and after the 5-minute grace the post is unmanned
    // since 22:00.
    f.state("22:20:00", "s1", "available")
        // One supervisor is enough; a hand-over between the two inside the
        // grace leaves no breach.
        .state("+1 02:00:00", "s1", "logged_out")
        .state("+1 02:01:00", "s2", "available")
        // s2 leaves at 07:50: unmanned from 07:50 until the night ends at 08:00.
        .state("+1 07:50:00", "s2", "logged_out")
        .state("+1 09:00:00", "a1", "available");
    let posts = replay(&f);
    let night = post(&posts, "night-supervisor");
    assert_eq!(night["cover"], "off", "{night}");
    assert_eq!(night["covered"], true);
    assert_eq!(
        night["breaches"],
        json!([
            {"start": ts("22:00:00"), "end": ts("22:20:00")},
            {"start": ts("+1 07:50:00"), "end": ts("+1 08:00:00")},
        ])
    );
    // The daytime desk never had anyone, all day: that is the desk's own
    // breach, from the first event.
    let desk = post(&posts, "hotline-desk");
    assert_eq!(desk["unmanned_since"], ts("21:00:00"));
}

/// The same floor on a running daemon, on wall time (grace 0 s so nothing
/// waits): the post board behind the read token, the gauges on /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_shows_the_breach_in_the_api_and_the_metrics() {
    use support::{eventually, http};
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nread_token = \"reader\"\nadmin_token = \"boss\"\n[storage]\npath = \"{}/audit.sqlite\"\n{}",
        dir.path().display(),
        CONFIG.replace("grace = \"2m\"", "grace = \"0s\"")
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
    let desk = |want: &'static str| {
        let addr = addr.clone();
        async move {
            eventually(Duration::from_secs(10), want, || {
                let addr = addr.clone();
                async move {
                    let r = http(&addr, "GET", "/api/v1/posts", Some("reader"), "").await;
                    let v: Value = serde_json::from_str(&r.body).ok()?;
                    let p = v["posts"]
                        .as_array()?
                        .iter()
                        .find(|p| p["post"] == "hotline-desk")?
                        .clone();
                    (p["cover"] == want).then_some(p)
                }
            })
            .await
        }
    };

    let r = http(&addr, "GET", "/api/v1/posts", None, "").await;
    assert_eq!(r.status, 401, "the post board needs the read token");

    send(vec![
        json!({"type": "agent_joined_queue", "agent": "a1", "queue": "hotline"}),
        json!({"type": "agent_state", "agent": "a1", "state": "available"}),
    ])
    .await;
    // The daemon started with nobody at the desk: that was a breach too,
    // closed when a1 arrived.
    let before = desk("a").await["breaches"].as_array().unwrap().len();
    send(vec![
        json!({"type": "agent_state", "agent": "a1", "state": "logged_out"}),
    ])
    .await;
    let p = desk("unmanned").await;
    let breaches = p["breaches"].as_array().unwrap();
    assert_eq!(breaches.len(), before + 1, "{p}");
    assert_eq!(breaches[before]["start"], p["unmanned_since"]);
    assert!(breaches[before]["end"].is_null());
    let metrics = eventually(Duration::from_secs(10), "acd_post_covered 0", || {
        let addr = addr.clone();
        async move {
            let r = http(&addr, "GET", "/metrics", None, "").await;
            r.body
                .contains("acd_post_covered{post=\"hotline-desk\"} 0")
                .then_some(r.body)
        }
    })
    .await;
    assert!(metrics.contains("acd_post_unmanned_seconds{post=\"hotline-desk\"}"));

    // B signs into the hotline: covered again, the gauge goes back to 1.
    send(vec![
        json!({"type": "agent_joined_queue", "agent": "b1", "queue": "hotline"}),
        json!({"type": "agent_state", "agent": "b1", "state": "available"}),
    ])
    .await;
    let p = desk("b").await;
    assert!(p["breaches"][before]["end"].is_string(), "{p}");
    eventually(Duration::from_secs(10), "acd_post_covered 1", || {
        let addr = addr.clone();
        async move {
            let r = http(&addr, "GET", "/metrics", None, "").await;
            r.body
                .contains("acd_post_covered{post=\"hotline-desk\"} 1")
                .then_some(())
        }
    })
    .await;
}

/// The hotline desk with `cover = "auto"` and a ladder on the hotline that
/// signs in one of the backup group when a call waits. b2 and b3 are both
/// B holders of the desk and in the backup group; both work sales, b2
/// idle the longest, so each rule on its own would pick b2 first.
const COVER_AND_LADDER: &str = r#"
[time]
zone = "Asia/Shanghai"

[[queues]]
name = "hotline"
ladder = "backup"
[[queues]]
name = "sales"

[[agents]]
id = "a1"
[[agents]]
id = "b2"
groups = ["backup"]
[[agents]]
id = "b3"
groups = ["backup"]

[[ladders]]
name = "backup"
release_when = "waiting < 1"
release_hold = "0s"
[[ladders.stages]]
name = "one more"
when = "waiting > 0"
for = "0s"
sign_in = { group = "backup", max = 1 }

[[posts]]
name = "hotline-desk"
a = ["a1"]
b = ["b2", "b3"]
queues = ["hotline"]
grace = "2m"
cover = "auto"
"#;

/// The ladder's sign-ins and sign-outs in the replay report, as
/// (verb, agent) pairs.
fn ladder_acts(report: &Value) -> Vec<(String, String)> {
    let mut acts: Vec<(String, String)> = report["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["actions"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["kind"] != "advise")
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["agent"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    acts.sort();
    acts
}

#[test]
fn auto_cover_and_the_ladder_never_pick_the_same_agent_in_the_same_instant() {
    let mut f = Feed(Vec::new());
    f.join("09:00:00", "a1")
        .state("09:00:00", "a1", "available");
    for (t, b) in [("09:00:00", "b2"), ("09:05:00", "b3")] {
        f.push(
            t,
            json!({"type": "agent_joined_queue", "agent": b, "queue": "sales"}),
        )
        .state(t, b, "available");
    }
    // The same instant: A logs out (the desk wants a B holder) and a call
    // starts waiting in the hotline (the ladder wants one of the backup
    // group). b2 is first for both.
    f.state("09:30:00", "a1", "logged_out").push(
        "09:30:00",
        json!({"type": "call_enqueued", "call": "c1", "queue": "hotline"}),
    );
    let report = replay_report(COVER_AND_LADDER, &f);
    let desk = post(report["posts"].as_array().unwrap(), "hotline-desk");
    let covered_by: Vec<String> = cover_log(desk)
        .into_iter()
        .filter(|(_, verb, ..)| verb == "sign_in")
        .map(|(_, _, agent, ..)| agent)
        .collect();
    assert_eq!(covered_by, vec!["b2".to_string()], "{desk}");
    assert_eq!(
        ladder_acts(&report),
        vec![("sign_in".to_string(), "b3".to_string())],
        "the ladder leaves b2 to the desk and takes b3: {}",
        report["escalations"]
    );
    assert_eq!(agent(&report, "b2")["signed_in_by_escalation"], false);
    assert_eq!(agent(&report, "b3")["signed_in_by_escalation"], true);

    // A is back while the call still waits: the desk lets b2 go, and only
    // b2; b3 stays, the ladder's.
    f.state("09:40:00", "a1", "available");
    let report = replay_report(COVER_AND_LADDER, &f);
    let desk = post(report["posts"].as_array().unwrap(), "hotline-desk");
    let log = cover_log(desk);
    assert_eq!(
        log.iter()
            .map(|(_, verb, agent, _, result)| (verb.as_str(), agent.as_str(), result.as_str()))
            .collect::<Vec<_>>(),
        vec![("sign_in", "b2", "ok"), ("sign_out", "b2", "ok")],
        "{desk}"
    );
    assert_eq!(agent(&report, "b2")["queues"], json!(["sales"]));
    assert_eq!(agent(&report, "b3")["queues"], json!(["hotline", "sales"]));

    // The call is answered by b3 and ends: the ladder releases b3 itself.
    f.push(
        "09:41:00",
        json!({"type": "call_answered", "call": "c1", "queue": "hotline", "agent": "b3"}),
    )
    .push(
        "09:43:00",
        json!({"type": "call_completed", "call": "c1", "queue": "hotline", "agent": "b3"}),
    );
    let report = replay_report(COVER_AND_LADDER, &f);
    assert_eq!(
        ladder_acts(&report),
        vec![
            ("sign_in".to_string(), "b3".to_string()),
            ("sign_out".to_string(), "b3".to_string())
        ],
        "{}",
        report["escalations"]
    );
    let desk = post(report["posts"].as_array().unwrap(), "hotline-desk");
    assert_eq!(
        cover_log(desk).len(),
        2,
        "the desk never touched b3: {desk}"
    );
    assert_eq!(agent(&report, "b3")["queues"], json!(["sales"]));
}
