//! The ladder acts through the event-socket connection of the agent's
//! `source`: `tier add` at escalation and `tier del` at release, against the
//! fake FreeSWITCH of tests/esl_fake (recorded transcript, real TCP; no
//! FreeSWITCH can run here). Tier changes fire no events in FreeSWITCH, so
//! the agent's membership comes from the ESL source's own report of the
//! `+OK`.

mod esl_fake;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acdmon::config::Config;
use acdmon::time::Ts;
use serde_json::Value;
use support::{eventually, http};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_signs_in_and_out_through_the_event_socket() {
    let tiers: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let t = tiers.clone();
    let responder: esl_fake::Responder = Arc::new(move |cmd: &str| {
        let words: Vec<&str> = cmd.split(' ').collect();
        Some(esl_fake::api(match &words[..] {
            [.., "agent", "get", "status", "2001@default"] => "Available",
            [.., "tier", "add", q, "2001@default"] => {
                t.lock().unwrap().push(q.to_string());
                "+OK\n"
            }
            [.., "tier", "del", q, "2001@default"] => {
                t.lock().unwrap().retain(|x| x != q);
                "+OK\n"
            }
            _ => "-ERR Invalid!\n",
        }))
    });
    let transcript = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/esl/cti.esl"
    ))
    .unwrap();
    let server = esl_fake::start(transcript, 4096, responder).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
admin_token = "boss"
[storage]
path = "{}/audit.sqlite"
[[queues]]
name = "support@default"
ladder = "quick"
[[agents]]
id = "2001@default"
name = "Chen Jie"
source = "fs1"
groups = ["experts"]
[[sources]]
name = "fs1"
kind = "esl"
address = "{}"
password = "ClueCon"
[[ladders]]
name = "quick"
release_when = "waiting < 1"
release_hold = "0s"
[[ladders.stages]]
name = "experts"
when = "waiting > 0"
for = "0s"
sign_in = {{ group = "experts" }}
"#,
        dir.path().display(),
        server.addr
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let (_d, addr) = support::start_daemon(cfg).await;
    eventually(T, "ESL ready", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;

    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"agent_state\",\"agent\":\"2001@default\",\"state\":\"available\"}}\n\
         {{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"support@default\"}}\n"
    );
    let posted = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(posted.status, 202);
    eventually(T, "tier add", || async {
        tiers
            .lock()
            .unwrap()
            .contains(&"support@default".to_string())
            .then_some(())
    })
    .await;
    // The source reports the new tier; the engine counts the agent.
    eventually(T, "member of the queue", || async {
        let r = http(&addr, "GET", "/api/v1/agents", Some("boss"), "").await;
        let agents: Vec<Value> = serde_json::from_str(&r.body).ok()?;
        let a = agents.iter().find(|a| a["agent"] == "2001@default")?;
        (a["queues"] == serde_json::json!(["support@default"])).then_some(())
    })
    .await;
    let log = |addr: String| async move {
        let r = http(&addr, "GET", "/api/v1/escalations", Some("boss"), "").await;
        serde_json::from_str::<Vec<Value>>(&r.body).unwrap()
    };
    let e = eventually(T, "sign-in recorded", || async {
        log(addr.clone())
            .await
            .into_iter()
            .find(|e| e["actions"][0]["result"] == "ok")
    })
    .await;
    assert_eq!(e["actions"][0]["agent"], "2001@default");
    assert_eq!(e["actions"][0]["detail"], "tier added");

    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"call_abandoned\",\"call\":\"c1\",\"queue\":\"support@default\"}}\n"
    );
    let posted = http(&addr, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(posted.status, 202);
    let done = eventually(T, "sign-out recorded", || async {
        let l = log(addr.clone()).await;
        (l.len() == 2 && l[1]["actions"][0]["result"] == "ok").then_some(l)
    })
    .await;
    assert_eq!(done[1]["direction"], "down");
    assert!(tiers.lock().unwrap().is_empty());
    let cmds = server.commands();
    let cti: Vec<&str> = cmds[9..].iter().map(String::as_str).collect();
    assert_eq!(
        cti,
        [
            "api callcenter_config agent get status 2001@default",
            "api callcenter_config tier add support@default 2001@default",
            "api callcenter_config tier del support@default 2001@default",
        ]
    );
}
