//! `/metrics` (contract section 7) as Prometheus sees it: figures that
//! match the engine's, a scrape of the demo that `promtool check metrics`
//! accepts, alert rules that pass `promtool test rules`, and a real
//! Prometheus server scraping a running daemon (the dashboards' queries run
//! against it). Tests that need promtool or prometheus skip loudly when the
//! binary is absent (`scripts/install-test-deps.sh` installs them).

mod wsutil;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wsutil::support::{self, eventually, free_port};
use wsutil::*;

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "\n*** SKIPPED: `{name}` is not installed. Run scripts/install-test-deps.sh (CI does). ***\n"
        );
    }
    found
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Kills a child process we started when the test ends, pass or fail.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

const CONTRACT: &[&str] = &[
    "acd_queue_waiting_calls",
    "acd_queue_longest_wait_seconds",
    "acd_queue_agents",
    "acd_queue_service_level_ratio",
    "acd_queue_asa_seconds",
    "acd_queue_abandon_ratio",
    "acd_queue_required_agents",
    "acd_escalation_stage",
    "acd_source_connected",
    "acd_websocket_clients",
    "acd_queue_calls_offered_total",
    "acd_queue_calls_answered_total",
    "acd_queue_calls_answered_in_sl_total",
    "acd_queue_calls_abandoned_total",
    "acd_queue_calls_exited_total",
    "acd_source_events_total",
    "acd_source_events_rejected_total",
    "acd_queue_wait_seconds",
    "acd_event_publish_lag_seconds",
];

/// A scrape right after the API shows an event shows it too: renders are
/// reused only while nothing changed, and a scrape shows one snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_never_lags_the_api() {
    let d = daemon("", "[[queues]]\nname = \"hotline\"\n").await;
    let now = now_ms();
    for n in 1..=5u32 {
        // Scrape (caches a rendering), change the state, wait for the API.
        let _ = support::http(&d.addr, "GET", "/metrics", None, "").await;
        post(
            &d.addr,
            &format!(
                "{{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c{n}\",\"queue\":\"hotline\"}}\n"
            ),
        )
        .await;
        eventually(Duration::from_secs(5), "API shows the call", || async {
            let r = support::http(&d.addr, "GET", "/api/v1/queues/hotline", Some(READ), "").await;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            (v["waiting"] == n).then_some(())
        })
        .await;
        let r = support::http(&d.addr, "GET", "/metrics", None, "").await;
        assert_eq!(
            value(&r.body, "acd_queue_waiting_calls{queue=\"hotline\"}"),
            Some(f64::from(n)),
            "scrape {n} lags the API"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_engine() {
    let d = daemon("", "[[queues]]\nname = \"hotline\"\n").await;
    let now = now_ms();
    // A call answered after 12 s (in SL: T = 20 s), one abandoned, one
    // that timed out, one waiting; a bad line.
    let lines = format!(
        "{{\"ts\":{a},\"type\":\"call_enqueued\",\"call\":\"c1\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{now},\"type\":\"call_answered\",\"call\":\"c1\",\"queue\":\"hotline\",\"agent\":\"a1\"}}\n\
         {{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c2\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{now},\"type\":\"call_abandoned\",\"call\":\"c2\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c3\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{now},\"type\":\"call_exited\",\"call\":\"c3\",\"queue\":\"hotline\",\"reason\":\"timeout\"}}\n\
         {{\"ts\":{now},\"type\":\"call_enqueued\",\"call\":\"c4\",\"queue\":\"hotline\"}}\n\
         {{\"ts\":{now},\"type\":\"no_such_type\"}}\n",
        a = now - 12_000
    );
    support::http(&d.addr, "POST", "/api/v1/events", Some(ADMIN), &lines).await;
    let text = eventually(Duration::from_secs(5), "metrics updated", || async {
        let r = support::http(&d.addr, "GET", "/metrics", None, "").await;
        let all = [
            ("acd_queue_calls_offered_total{queue=\"hotline\"}", 3.0),
            ("acd_queue_calls_answered_total{queue=\"hotline\"}", 1.0),
            ("acd_queue_calls_abandoned_total{queue=\"hotline\"}", 1.0),
            ("acd_queue_waiting_calls{queue=\"hotline\"}", 1.0),
            ("acd_queue_wait_seconds_count{queue=\"hotline\"}", 1.0),
        ];
        all.iter()
            .all(|(k, want)| value(&r.body, k) == Some(*want))
            .then_some(r.body)
    })
    .await;
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no series {s}\n{text}"));
    assert_eq!(v("acd_queue_waiting_calls{queue=\"hotline\"}"), 1.0);
    assert_eq!(v("acd_queue_calls_answered_total{queue=\"hotline\"}"), 1.0);
    assert_eq!(
        v("acd_queue_calls_answered_in_sl_total{queue=\"hotline\"}"),
        1.0
    );
    assert_eq!(v("acd_queue_calls_abandoned_total{queue=\"hotline\"}"), 1.0);
    assert_eq!(
        v("acd_queue_calls_exited_total{queue=\"hotline\",reason=\"timeout\"}"),
        1.0
    );
    assert_eq!(
        v("acd_queue_agents{queue=\"hotline\",state=\"on_call\"}"),
        1.0
    );
    assert_eq!(v("acd_escalation_stage{queue=\"hotline\"}"), 0.0);
    // The wait histogram has buckets (not a summary quantile) and the 12 s wait.
    assert!(text.contains("# TYPE acd_queue_wait_seconds histogram"));
    assert_eq!(v("acd_queue_wait_seconds_count{queue=\"hotline\"}"), 1.0);
    assert_eq!(v("acd_queue_wait_seconds_sum{queue=\"hotline\"}"), 12.0);
    assert_eq!(
        v("acd_queue_wait_seconds_bucket{queue=\"hotline\",le=\"10\"}"),
        0.0
    );
    assert_eq!(
        v("acd_queue_wait_seconds_bucket{queue=\"hotline\",le=\"15\"}"),
        1.0
    );
    assert!(text.contains("# TYPE acd_event_publish_lag_seconds histogram"));
    assert!(v("acd_event_publish_lag_seconds_count") >= 1.0);
    // The same as the API's view.
    let api: Value = serde_json::from_str(
        &support::http(&d.addr, "GET", "/api/v1/queues/hotline", Some(READ), "")
            .await
            .body,
    )
    .unwrap();
    assert_eq!(
        v("acd_queue_service_level_ratio{queue=\"hotline\",window=\"rolling\"}"),
        api["windows"]["rolling"]["service_level"].as_f64().unwrap()
    );
    assert_eq!(
        v("acd_queue_abandon_ratio{queue=\"hotline\",window=\"today\"}"),
        api["windows"]["today"]["abandon_rate"].as_f64().unwrap()
    );
    assert_eq!(
        v("acd_queue_asa_seconds{queue=\"hotline\",window=\"interval\"}"),
        12.0
    );
    // Rejected input, by source and reason.
    assert_eq!(
        v("acd_source_events_rejected_total{source=\"http\",reason=\"unknown_type\"}"),
        1.0,
    );
    // HTTP ingest counts as a source of events (7 lines accepted).
    assert_eq!(v("acd_source_events_total{source=\"http\"}"), 7.0);
    // Per-agent series are off by default.
    assert!(!text.contains("acd_agent_state{"));
    // Two clients on /ws are counted.
    let w1 = connect(&d.addr, &format!("token={READ}")).await;
    let w2 = connect(&d.addr, &format!("token={READ}")).await;
    eventually(Duration::from_secs(3), "2 ws clients", || async {
        let r = support::http(&d.addr, "GET", "/metrics", None, "").await;
        (value(&r.body, "acd_websocket_clients") == Some(2.0)).then_some(())
    })
    .await;
    drop((w1, w2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_auth_and_per_agent_series_are_configurable() {
    let d = daemon(
        "metrics_auth = true\nper_agent_metrics = true",
        "[[queues]]\nname = \"hotline\"\n",
    )
    .await;
    post(&d.addr, &agent("a7", "available", "hotline")).await;
    let r = support::http(&d.addr, "GET", "/metrics", None, "").await;
    assert_eq!(r.status, 401);
    let text = eventually(Duration::from_secs(5), "agent series", || async {
        let r = support::http(&d.addr, "GET", "/metrics", Some(READ), "").await;
        (r.status == 200
            && r.body
                .contains("acd_agent_state{agent=\"a7\",state=\"available\"} 1"))
        .then_some(r.body)
    })
    .await;
    assert!(text.contains("acd_queue_waiting_calls{queue=\"hotline\"} 0"));
    post(&d.addr, &agent("a7", "paused", "hotline")).await;
    eventually(Duration::from_secs(5), "state moved", || async {
        let r = support::http(&d.addr, "GET", "/metrics", Some(READ), "").await;
        (r.body
            .contains("acd_agent_state{agent=\"a7\",state=\"paused\"} 1")
            && r.body
                .contains("acd_agent_state{agent=\"a7\",state=\"available\"} 0"))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_a_scrape_of_the_demo() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _demo = Reaper(
        Command::new(env!("CARGO_BIN_EXE_acdmon"))
            .args(["demo", "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start acdmon demo"),
    );
    let text = eventually(Duration::from_secs(15), "demo traffic", || async {
        let r = tokio::net::TcpStream::connect(&addr).await.ok()?;
        drop(r);
        let m = support::http(&addr, "GET", "/metrics", None, "").await;
        (value(&m.body, "acd_source_events_total{source=\"simulator\"}").unwrap_or(0.0) > 0.0)
            .then_some(m.body)
    })
    .await;
    // Rejections appear with their first rejected input; the demo has none.
    for name in CONTRACT
        .iter()
        .filter(|n| **n != "acd_source_events_rejected_total")
    {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing from a scrape of the demo"
        );
    }
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = repo("dashboards");
    let check = Command::new(&promtool)
        .args(["check", "rules", "alerts.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let test = Command::new(&promtool)
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    // Every alert of alerts.yml has a test.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for line in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {line}")),
            "alert {line} has no test"
        );
    }
    let check = Command::new(&promtool)
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

async fn prom_query(prom: &str, q: &str) -> Option<Value> {
    // Prometheus may not listen yet: not an error while waiting for it.
    tokio::net::TcpStream::connect(prom).await.ok()?;
    let enc: String =
        percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC).to_string();
    let r = support::http(prom, "GET", &format!("/api/v1/query?query={enc}"), None, "").await;
    serde_json::from_str(&r.body).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_running_daemon() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let d = daemon("", "[[queues]]\nname = \"hotline\"\n").await;
    post(
        &d.addr,
        &(enqueue("hotline", "p1") + &enqueue("hotline", "p2") + &enqueue("hotline", "p3")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\nscrape_configs:\n  - job_name: acdmon\n    static_configs:\n      - targets: [\"{}\"]\n",
        repo("dashboards/alerts.yml").display().to_string(),
        d.addr
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let prom = format!("127.0.0.1:{port}");
    let _p = Reaper(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let v = eventually(
        Duration::from_secs(30),
        "prometheus has scraped the daemon",
        || async {
            let v = prom_query(&prom, "acd_queue_waiting_calls{queue=\"hotline\"}").await?;
            let r = v["data"]["result"].as_array()?.first()?.clone();
            Some(r)
        },
    )
    .await;
    assert_eq!(v["value"][1], "3", "{v}");
    assert_eq!(v["metric"]["job"], "acdmon");

    // Every query of the Grafana dashboard is valid PromQL over these series.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("dashboards/grafana-acdmon.json")).unwrap(),
    )
    .unwrap();
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$queue", ".*")
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m");
            let v = prom_query(&prom, &expr).await.unwrap();
            assert_eq!(v["status"], "success", "{} -> {v}", p["title"]);
            n += 1;
        }
    }
    assert!(n >= 15);
}
