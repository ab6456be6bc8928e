//! The ladder acts through the AMI connection of the agent's `source`: a
//! `QueueAdd` at escalation and a `QueueRemove` at release, against the fake
//! Asterisk manager of `tests/common/ami.rs` (protocol-faithful, real TCP;
//! no Asterisk can run here). The PBX's `QueueMemberAdded` makes the agent a
//! member for the engine, as on a real system.

mod common;
mod support;

use std::time::Duration;

use acdmon::config::Config;
use acdmon::time::Ts;
use common::ami::{FakeAmi, get};
use serde_json::Value;
use support::{eventually, http};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_signs_in_and_out_through_ami() {
    let server = FakeAmi::start("acdmon", "s3cret").await;
    {
        let mut st = server.state.lock().unwrap();
        st.clock = Ts::now().0 / 1000;
        st.queues = vec!["support".into()];
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
admin_token = "boss"
[storage]
path = "{}/audit.sqlite"
[[queues]]
name = "support"
ladder = "quick"
[[agents]]
id = "2001"
name = "Chen Jie"
interface = "PJSIP/2001"
source = "pbx1"
groups = ["experts"]
[[sources]]
name = "pbx1"
kind = "ami"
address = "{}"
username = "acdmon"
secret = "s3cret"
reconnect_min = "50ms"
reconnect_max = "200ms"
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
    eventually(T, "AMI ready", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;

    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"agent_state\",\"agent\":\"2001\",\"state\":\"available\"}}\n\
         {{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"support\"}}\n"
    );
    assert_eq!(
        http(&addr, "POST", "/api/v1/events", Some("boss"), &body)
            .await
            .status,
        202
    );
    let add = eventually(T, "QueueAdd", || async {
        server
            .actions()
            .into_iter()
            .find(|a| get(a, "Action") == Some("QueueAdd"))
    })
    .await;
    assert_eq!(get(&add, "Queue"), Some("support"));
    assert_eq!(get(&add, "Interface"), Some("PJSIP/2001"));
    // The AMI adapter names members by agent id (queue_log lines then match).
    assert_eq!(get(&add, "MemberName"), Some("2001"));
    // The PBX reports the new member; the engine counts it in the queue.
    eventually(T, "member in the queue", || async {
        let r = http(&addr, "GET", "/api/v1/queues/support", Some("boss"), "").await;
        let q: Value = serde_json::from_str(&r.body).ok()?;
        (q["agents"]["logged_in"] == 1).then_some(())
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
    assert_eq!(e["actions"][0]["agent"], "2001");

    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"call_abandoned\",\"call\":\"c1\",\"queue\":\"support\"}}\n"
    );
    assert_eq!(
        http(&addr, "POST", "/api/v1/events", Some("boss"), &body)
            .await
            .status,
        202
    );
    let remove = eventually(T, "QueueRemove", || async {
        server
            .actions()
            .into_iter()
            .find(|a| get(a, "Action") == Some("QueueRemove"))
    })
    .await;
    assert_eq!(get(&remove, "Interface"), Some("PJSIP/2001"));
    let done = eventually(T, "sign-out recorded", || async {
        let l = log(addr.clone()).await;
        (l.len() == 2 && l[1]["actions"][0]["result"] == "ok").then_some(l)
    })
    .await;
    assert_eq!(done[1]["direction"], "down");
    let adds = server
        .action_names()
        .iter()
        .filter(|n| n.as_str() == "QueueAdd")
        .count();
    assert_eq!(adds, 1);
}
