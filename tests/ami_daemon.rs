//! `acdmon run` with `kind = "ami"` and `kind = "queue_log"` sources: the
//! config keys reach the adapters, `/readyz` follows the AMI connection
//! (ready once logged in and resynced, not ready while it is down), and
//! `[[agents]] interface` names agents by their configured id.

mod common;
mod support;

use std::time::Duration;

use acdmon::config::Config;
use common::ami::{Agent, FakeAmi, MemberState, ev};
use support::{eventually, http};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ami_source_in_the_daemon_drives_readyz_and_uses_configured_agent_ids() {
    let server = FakeAmi::start("acdmon", "s3cret").await;
    let now = acdmon::time::Ts::now().0 / 1000;
    {
        let mut st = server.state.lock().unwrap();
        st.clock = now;
        st.queues = vec!["support".into()];
    }
    let dir = tempfile::tempdir().unwrap();
    let qlog = dir.path().join("queue_log");
    std::fs::write(&qlog, "").unwrap();
    let text = format!(
        r#"
[time]
zone = "UTC"
[[agents]]
id = "1017"
name = "Li Na"
interface = "PJSIP/1017"
[[sources]]
name = "pbx1"
kind = "ami"
address = "{}"
username = "acdmon"
secret = "s3cret"
reconnect_min = "50ms"
reconnect_max = "200ms"
[[sources]]
name = "qlog"
kind = "queue_log"
path = {:?}
poll_interval = "50ms"
"#,
        server.addr,
        qlog.display().to_string()
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let d = acdmon::daemon::start(cfg, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(acdmon::daemon::serve_on(listener, d.state.clone()));

    eventually(T, "ready", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;

    // A member added with a MemberName that is not the configured id.
    let a = Agent::new("1017", "Li Na");
    let m = MemberState::new("Li Na", 1, now);
    server.push(ev::member("QueueMemberAdded", "support", &a, &m, now, 0));
    eventually(T, "agent 1017 available", || async {
        let r = http(&addr, "GET", "/api/v1/agents", None, "").await;
        (r.body.contains("\"agent\":\"1017\"") && r.body.contains("\"available\"")).then_some(())
    })
    .await;

    // The connection drops and Asterisk refuses us for a while: not ready.
    server.state.lock().unwrap().secret = "changed".into();
    server.drop_connection();
    eventually(T, "not ready while down", || async {
        let r = http(&addr, "GET", "/readyz", None, "").await;
        (r.status == 503 && r.body.contains("pbx1")).then_some(())
    })
    .await;
    server.state.lock().unwrap().secret = "s3cret".into();
    eventually(T, "ready again", || async {
        (http(&addr, "GET", "/readyz", None, "").await.status == 200).then_some(())
    })
    .await;
}
