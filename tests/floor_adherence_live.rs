//! Schedule adherence on a running daemon, as the floor manager's screen
//! sees it: the WebSocket feed's out-of-adherence count follows the agents'
//! states, and a supervisor's approved exception puts a group back in
//! adherence, with its reason, and is still there after a restart.

mod wsutil;

use std::collections::BTreeMap;
use std::time::Duration;

use acdmon::time::Ts;
use serde_json::{Value, json};
use wsutil::support::{eventually, http};
use wsutil::{ADMIN, READ};

fn config(dir: &std::path::Path) -> String {
    format!(
        "[server]\nread_token = \"{READ}\"\nadmin_token = \"{ADMIN}\"\n\
         [storage]\npath = \"{}/audit.sqlite\"\n[time]\nzone = \"Asia/Shanghai\"\n\
         [[queues]]\nname = \"hotline\"\n\
         [[agents]]\nid = \"a1\"\n[[agents]]\nid = \"a2\"\ngroups = [\"backoffice\"]\n\
         [[agents]]\nid = \"a3\"\ngroups = [\"backoffice\"]\n\
         [adherence]\n[[adherence.activities]]\nname = \"break\"\nequivalent = [\"meal\"]\n",
        dir.display()
    )
}

/// A daemon on the configuration, serving on a free port.
async fn start(text: &str) -> String {
    let cfg = acdmon::config::Config::parse("t.toml", text).unwrap();
    let (d, addr) = wsutil::support::start_daemon(cfg).await;
    // The daemon lives as long as the test's runtime.
    std::mem::forget(d);
    addr
}

async fn send(addr: &str, lines: Vec<Value>) {
    let now = Ts::now().0;
    let body: String = lines
        .into_iter()
        .map(|mut v| {
            v["ts"] = json!(now);
            format!("{v}\n")
        })
        .collect();
    let r = http(addr, "POST", "/api/v1/events", Some(ADMIN), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
}

fn local(ms: i64) -> String {
    Ts(ms)
        .to_jiff()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Everyone logged in to the hotline; the plan from an hour ago for two
/// hours: a1 on the phone, a2 and a3 on a break.
async fn floor_with_plan(addr: &str) {
    let mut lines = Vec::new();
    for a in ["a1", "a2", "a3"] {
        lines.push(json!({"type": "agent_joined_queue", "agent": a, "queue": "hotline"}));
        lines.push(json!({"type": "agent_state", "agent": a, "state": "available"}));
    }
    send(addr, lines).await;
    let now = Ts::now().0;
    let (from, to) = (local(now - 3_600_000), local(now + 3_600_000));
    let plan = format!(
        "agent,start,end,activity\na1,{from},{to},phone\na2,{from},{to},break\na3,{from},{to},break\n"
    );
    let r = http(addr, "PUT", "/api/v1/schedule", Some(ADMIN), &plan).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The agents' adherence marks as a WebSocket client keeps them: the
/// snapshot, then each delta's agents replacing theirs.
struct Marks(BTreeMap<String, Value>);

impl Marks {
    fn take(&mut self, msg: &Value) {
        for a in msg["agents"].as_array().into_iter().flatten() {
            if let Some(id) = a["agent"].as_str() {
                self.0.insert(id.to_string(), a["adherence"].clone());
            }
        }
    }
    fn out(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, m)| m["in_adherence"] == false)
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

/// Reads the feed until the agents out of adherence are `want`.
async fn out_becomes(ws: &mut wsutil::Ws, seq: &mut u64, marks: &mut Marks, want: &[&str]) {
    if marks.out() == want {
        return;
    }
    wsutil::until(
        ws,
        seq,
        Duration::from_secs(10),
        "the out-of-adherence count",
        |m| {
            marks.take(m);
            marks.out() == want
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_out_of_adherence_count_on_the_websocket_follows_state_changes() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start(&config(dir.path())).await;
    let mut ws = wsutil::connect(&addr, &format!("token={READ}")).await;
    let mut marks = Marks(BTreeMap::new());
    let first = wsutil::next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first["type"], "snapshot", "{first}");
    let mut seq = first["seq"].as_u64().unwrap();
    marks.take(&first);
    assert!(marks.out().is_empty());

    floor_with_plan(&addr).await;
    // a2 and a3 are planned on a break but taking calls: two out.
    out_becomes(&mut ws, &mut seq, &mut marks, &["a2", "a3"]).await;
    assert_eq!(marks.0["a2"]["why"], "phone");

    // a2 takes the break as a meal: one out.
    send(
        &addr,
        vec![json!({"type": "agent_state", "agent": "a2", "state": "paused", "reason": "meal"})],
    )
    .await;
    out_becomes(&mut ws, &mut seq, &mut marks, &["a3"]).await;

    // a1 logs out during its phone slot: two out, a1 for being logged out.
    send(
        &addr,
        vec![json!({"type": "agent_state", "agent": "a1", "state": "logged_out"})],
    )
    .await;
    out_becomes(&mut ws, &mut seq, &mut marks, &["a1", "a3"]).await;
    assert_eq!(marks.0["a1"]["why"], "logged_out");

    // Both put right: none.
    send(
        &addr,
        vec![
            json!({"type": "agent_state", "agent": "a1", "state": "available"}),
            json!({"type": "agent_state", "agent": "a3", "state": "paused", "reason": "break"}),
        ],
    )
    .await;
    out_becomes(&mut ws, &mut seq, &mut marks, &[]).await;
    wsutil::close(ws).await;

    // Seats this interval: a1's phone slot is the hotline's one scheduled
    // seat (a2 and a3 are planned on a break); three members are logged
    // in; the Erlang C requirement is the queue's own figure.
    let seats = eventually(Duration::from_secs(5), "the seats", || {
        let addr = addr.clone();
        async move {
            let r = http(&addr, "GET", "/api/v1/adherence/seats", Some(READ), "").await;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            // The plan reaches the seats on the engine's next once-a-second
            // count: wait for it as well as for the logins.
            (v[0]["logged_in"] == 3 && v[0]["scheduled"].as_u64().is_some_and(|n| n > 0))
                .then_some(v)
        }
    })
    .await;
    let r = http(&addr, "GET", "/api/v1/queues", Some(READ), "").await;
    let queues: Value = serde_json::from_str(&r.body).unwrap();
    let hotline = &queues.as_array().unwrap()[0];
    assert_eq!(seats[0]["queue"], "hotline", "{seats}");
    assert_eq!(seats[0]["scheduled"], 1, "{seats}");
    assert_eq!(
        seats[0]["required"], hotline["required_agents"],
        "{seats} {hotline}"
    );
    let metrics = http(&addr, "GET", "/metrics", None, "").await.body;
    assert!(
        metrics.contains("acd_queue_scheduled_seats{queue=\"hotline\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_exception_puts_a_group_in_adherence_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path());
    let addr = start(&text).await;
    floor_with_plan(&addr).await;
    let agents = |addr: String| async move {
        let r = http(&addr, "GET", "/api/v1/agents", Some(READ), "").await;
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["agent"].as_str().unwrap().to_string(),
                    a["adherence"].clone(),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let out = |marks: &BTreeMap<String, Value>| {
        marks
            .iter()
            .filter(|(_, m)| m["in_adherence"] == false)
            .map(|(a, _)| a.clone())
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(10), "a2 and a3 out", || {
        let addr = addr.clone();
        async move { (out(&agents(addr).await) == ["a2", "a3"]).then_some(()) }
    })
    .await;

    // The back office is called to a meeting; the supervisor excuses the
    // group for it. A reader may not; bad requests list every problem.
    let now = Ts::now().0;
    let body = json!({"groups": ["backoffice"], "from": local(now - 60_000),
        "to": local(now + 1_800_000), "reason": "team meeting", "by": "lin"})
    .to_string();
    let r = http(
        &addr,
        "POST",
        "/api/v1/adherence/exceptions",
        Some(READ),
        &body,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let bad =
        json!({"agents": ["zz"], "from": "soon", "to": local(now), "reason": "x", "by": "lin"});
    let r = http(
        &addr,
        "POST",
        "/api/v1/adherence/exceptions",
        Some(ADMIN),
        &bad.to_string(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let errors: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(errors["errors"].as_array().unwrap().len(), 2, "{errors}");
    let r = http(
        &addr,
        "POST",
        "/api/v1/adherence/exceptions",
        Some(ADMIN),
        &body,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let approved: Value = serde_json::from_str(&r.body).unwrap();
    let id = approved["id"].as_u64().unwrap();

    let marks = eventually(Duration::from_secs(10), "the group excused", || {
        let addr = addr.clone();
        async move {
            let m = agents(addr).await;
            out(&m).is_empty().then_some(m)
        }
    })
    .await;
    assert_eq!(marks["a2"]["exception"], "team meeting", "{marks:?}");
    assert_eq!(marks["a2"]["in_adherence"], true);
    assert_eq!(marks["a1"].get("exception"), None);

    // A restart (another daemon on the same audit database) still has it.
    let again = start(&text).await;
    let r = http(
        &again,
        "GET",
        "/api/v1/adherence/exceptions",
        Some(READ),
        "",
    )
    .await;
    let list: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["reason"], "team meeting");
    assert_eq!(list[0]["by"], "lin");

    // Withdrawn: the group is out again; a second withdrawal is a 404.
    let path = format!("/api/v1/adherence/exceptions/{id}?by=lin");
    let r = http(&addr, "DELETE", &path, Some(ADMIN), "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http(&addr, "DELETE", &path, Some(ADMIN), "").await;
    assert_eq!(r.status, 404, "{}", r.body);
    eventually(Duration::from_secs(10), "a2 and a3 out again", || {
        let addr = addr.clone();
        async move { (out(&agents(addr).await) == ["a2", "a3"]).then_some(()) }
    })
    .await;
}
