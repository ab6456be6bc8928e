//! AMI CTI in cluster mode (a real `nats-server`, two instances of one
//! site in this process, the fake Asterisk manager of `tests/common/ami.rs`).
//!
//! Only the instance holding the PBX source's lease has the AMI
//! connection; the ladder acts on the site's CTI leader. When those are two
//! different instances, the leader's sign-in travels to the holder and is
//! carried out there, once; a repeated request with the same idempotency
//! key is answered without a second `QueueAdd`; and a new leader can have
//! the holder relist the PBX's queues and wait until its own figures hold
//! what the PBX said.

mod common;
mod nats;
mod support;

use std::path::Path;
use std::time::Duration;

use acdmon::config::Config;
use acdmon::daemon::Daemon;
use acdmon::time::Ts;
use common::ami::{FakeAmi, MemberState, get};
use nats::NatsServer;
use serde_json::Value;
use support::{eventually, http};

const T: Duration = Duration::from_secs(20);

fn config(dir: &Path, instance: &str, nats: &str, ami: &str) -> Config {
    let text = format!(
        r#"
[server]
admin_token = "boss"
[storage]
path = "{dir}/{instance}.sqlite"
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
address = "{ami}"
username = "acdmon"
secret = "s3cret"
reconnect_min = "50ms"
reconnect_max = "200ms"
[[ladders]]
name = "quick"
release_when = "waiting < 1"
release_hold = "1h"
[[ladders.stages]]
name = "experts"
when = "waiting > 0"
for = "0s"
sign_in = {{ group = "experts" }}
[cluster]
nats = ["{nats}"]
site = "north"
instance = "{instance}"
lease_ttl = "2s"
"#,
        dir = dir.display(),
    );
    Config::parse("t.toml", &text).unwrap()
}

async fn fake_pbx() -> FakeAmi {
    let server = FakeAmi::start("acdmon", "s3cret").await;
    {
        let mut st = server.state.lock().unwrap();
        st.clock = Ts::now().0 / 1000;
        st.queues = vec!["support".into()];
    }
    server
}

/// The value of the series `name` whose labels include all of `labels`.
async fn metric(addr: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let m = http(addr, "GET", "/metrics", None, "").await.body;
    m.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn leads(addr: &str, instance: &str) -> bool {
    let i = format!("instance=\"{instance}\"");
    metric(addr, "acd_cluster_cti_leader", &[&i]).await == Some(1.0)
}

async fn ingests(addr: &str, instance: &str) -> bool {
    let i = format!("instance=\"{instance}\"");
    metric(addr, "acd_cluster_lease_held", &[&i, "source=\"pbx1\""]).await == Some(1.0)
}

/// East ingests the PBX (and answers for it); west is the CTI leader.
struct Site {
    _nats: NatsServer,
    pbx: FakeAmi,
    _dir: tempfile::TempDir,
    east: (Daemon, String),
    west: (Daemon, String),
    client: async_nats::Client,
}

async fn site() -> Site {
    let nats = NatsServer::start();
    let pbx = fake_pbx().await;
    let dir = tempfile::tempdir().unwrap();
    let ami = pbx.addr.to_string();
    let east = support::start_daemon(config(dir.path(), "east", &nats.url(), &ami)).await;
    eventually(T, "east ingests the PBX", || async {
        ingests(&east.1, "east").await.then_some(())
    })
    .await;
    let west = support::start_daemon(config(dir.path(), "west", &nats.url(), &ami)).await;
    // East took the `cti` lease too (it came first). Take it away until
    // west has it: a lease whose key vanished goes to whoever asks first,
    // and west asks within a renewal period while east first finds out
    // it lost it.
    let b = acdmon::cluster::broker::connect(
        config(dir.path(), "test", &nats.url(), &ami)
            .cluster
            .as_ref()
            .unwrap(),
    )
    .await
    .unwrap();
    eventually(T, "west leads, east ingests", || async {
        if leads(&west.1, "west").await && !leads(&east.1, "east").await {
            return Some(());
        }
        let _ = b.leases.purge("cti").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        None
    })
    .await;
    assert!(ingests(&east.1, "east").await, "east still holds the PBX");
    assert!(
        !ingests(&west.1, "west").await,
        "west has no AMI connection"
    );
    Site {
        client: b.client.clone(),
        _nats: nats,
        pbx,
        _dir: dir,
        east,
        west,
    }
}

fn queue_adds(pbx: &FakeAmi) -> Vec<Vec<(String, String)>> {
    pbx.actions()
        .into_iter()
        .filter(|a| get(a, "Action") == Some("QueueAdd"))
        .collect()
}

async fn escalations(addr: &str) -> Vec<Value> {
    let r = http(addr, "GET", "/api/v1/escalations", Some("boss"), "").await;
    serde_json::from_str(&r.body).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_signs_in_through_the_instance_that_holds_the_pbx() {
    let s = site().await;
    let now = Ts::now().0;
    let body = format!(
        "{{\"ts\":{now},\"type\":\"agent_state\",\"agent\":\"2001\",\"state\":\"available\"}}\n\
         {{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"support\"}}\n"
    );
    let posted = http(&s.west.1, "POST", "/api/v1/events", Some("boss"), &body).await;
    assert_eq!(posted.status, 202, "{}", posted.body);

    // West's ladder decides; east's AMI connection carries it out.
    let add = eventually(T, "QueueAdd at the PBX", || async {
        queue_adds(&s.pbx).into_iter().next()
    })
    .await;
    assert_eq!(get(&add, "Queue"), Some("support"));
    assert_eq!(get(&add, "Interface"), Some("PJSIP/2001"));
    // Both instances' audit logs hold the leader's result.
    for (addr, who) in [(&s.west.1, "west"), (&s.east.1, "east")] {
        let e = eventually(T, "sign-in recorded", || async {
            escalations(addr)
                .await
                .into_iter()
                .find(|e| e["actions"][0]["result"] == "ok")
        })
        .await;
        assert_eq!(e["actions"][0]["agent"], "2001", "{who}: {e}");
    }
    // The PBX's QueueMemberAdded reaches both engines through the stream.
    for addr in [&s.west.1, &s.east.1] {
        eventually(T, "member in the queue", || async {
            let r = http(addr, "GET", "/api/v1/queues/support", Some("boss"), "").await;
            let q: Value = serde_json::from_str(&r.body).ok()?;
            (q["agents"]["logged_in"] == 1).then_some(())
        })
        .await;
    }
    assert_eq!(queue_adds(&s.pbx).len(), 1, "one sign-in, carried out once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_is_answered_without_acting_again() {
    let s = site().await;
    let request = serde_json::json!({
        "verb": "sign_in", "agent": "2001", "interface": "PJSIP/2001",
        "name": "Chen Jie", "queue": "support"
    });
    let ask = || async {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Idempotency-Key", "north:in:support:2001:0");
        let m = s
            .client
            .request_with_headers(
                "acdmon.north.cti.pbx1",
                h,
                serde_json::to_vec(&request).unwrap().into(),
            )
            .await
            .expect("the holder answers");
        serde_json::from_slice::<Value>(&m.payload).unwrap()
    };
    let first = ask().await;
    assert_eq!(first["ok"], true, "{first}");
    // The leader's answer was lost, say, and it asks again.
    let again = ask().await;
    assert_eq!(again["ok"], true, "{again}");
    let detail = again["detail"].as_str().unwrap();
    assert!(
        detail.contains("repeat of north:in:support:2001:0"),
        "{detail}"
    );
    assert_eq!(queue_adds(&s.pbx).len(), 1, "the PBX was asked once");
    let repeats = metric(
        &s.east.1,
        "acd_cluster_cti_repeats_total",
        &["source=\"pbx1\""],
    )
    .await;
    assert_eq!(repeats, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_reads_the_pbx_membership_before_acting() {
    let s = site().await;
    let queue = |addr: String| async move {
        let r = http(&addr, "GET", "/api/v1/queues/support", Some("boss"), "").await;
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    assert_eq!(queue(s.west.1.clone()).await["agents"]["logged_in"], 0);
    // A supervisor signed 2001 in on the PBX itself, and the event never
    // reached the stream (it came while nobody held the PBX, say).
    s.pbx.state.lock().unwrap().members.insert(
        ("support".into(), "PJSIP/2001".into()),
        MemberState::new("2001", 1, Ts::now().0 / 1000),
    );
    let relister = s.west.0.relister.clone().expect("a site instance relists");
    relister
        .refresh_membership()
        .await
        .expect("membership refreshed");
    let statuses = s
        .pbx
        .action_names()
        .iter()
        .filter(|n| n.as_str() == "QueueStatus")
        .count();
    assert!(statuses >= 2, "east relisted (login and on request)");
    // West's engine has applied the relist when the refresh returns (its
    // figures are published right after, with that batch).
    let q = eventually(Duration::from_secs(2), "member shown", || async {
        let q = queue(s.west.1.clone()).await;
        (q["agents"]["logged_in"] == 1).then_some(q)
    })
    .await;
    assert_eq!(q["agents"]["logged_in"], 1);
}

/// During a takeover nobody holds the PBX for a moment: the leader's
/// request waits for the new holder, and fails saying why once the lease
/// has had time to pass on and still nobody answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_holder_then_fails_saying_why() {
    use acdmon::cluster::cti_proxy::{PbxSource, Proxy};
    use acdmon::cti::{Cti, CtiOutcome, CtiRequest, CtiVerb};
    use futures_util::StreamExt;

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "west", &nats.url(), "127.0.0.1:9");
    let b = acdmon::cluster::broker::connect(cfg.cluster.as_ref().unwrap())
        .await
        .unwrap();
    let client = b.client.clone();
    let (_keep, broker) = tokio::sync::watch::channel(Some(b));
    let proxy = |patience| Proxy {
        source: PbxSource {
            name: "pbx1".into(),
            pause_reason: None,
        },
        broker: broker.clone(),
        patience,
    };
    let req = CtiRequest {
        verb: CtiVerb::SignIn,
        agent: "2001".into(),
        interface: "PJSIP/2001".into(),
        name: None,
        queue: "support".into(),
    };

    let started = std::time::Instant::now();
    let failed = proxy(Duration::from_secs(1)).execute(req.clone()).await;
    assert!(!failed.ok);
    assert!(
        failed.detail.contains("no instance holds the source pbx1"),
        "{}",
        failed.detail
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A holder that turns up half a second later answers the retry.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut sub = client.subscribe("acdmon.north.cti.pbx1").await.unwrap();
        if let Some(m) = sub.next().await {
            let body = serde_json::to_vec(&CtiOutcome::ok("Added interface to queue")).unwrap();
            client.publish(m.reply.unwrap(), body.into()).await.unwrap();
        }
    });
    let done = proxy(Duration::from_secs(10)).execute(req).await;
    assert!(done.ok, "{}", done.detail);
    assert_eq!(done.detail, "Added interface to queue");
}
