//! `/metrics` as a dashboard or an alert rule written from the contract
//! (section 7) finds it: every required family, with its type, from the
//! first scrape of a fresh daemon.

mod wsutil;

use wsutil::*;

/// The contract's families and their Prometheus types.
const REQUIRED: [(&str, &str); 20] = [
    ("acd_queue_waiting_calls", "gauge"),
    ("acd_queue_longest_wait_seconds", "gauge"),
    ("acd_queue_agents", "gauge"),
    ("acd_queue_service_level_ratio", "gauge"),
    ("acd_queue_asa_seconds", "gauge"),
    ("acd_queue_abandon_ratio", "gauge"),
    ("acd_queue_required_agents", "gauge"),
    ("acd_escalation_stage", "gauge"),
    ("acd_source_connected", "gauge"),
    ("acd_websocket_clients", "gauge"),
    ("acd_queue_calls_offered_total", "counter"),
    ("acd_queue_calls_answered_total", "counter"),
    ("acd_queue_calls_answered_in_sl_total", "counter"),
    ("acd_queue_calls_abandoned_total", "counter"),
    ("acd_queue_calls_exited_total", "counter"),
    ("acd_escalation_actions_total", "counter"),
    ("acd_source_events_total", "counter"),
    ("acd_source_events_rejected_total", "counter"),
    ("acd_queue_wait_seconds", "histogram"),
    ("acd_event_publish_lag_seconds", "histogram"),
];

/// A daemon just started, nothing rejected and no ladder action yet (and
/// here no source and no queue): every family the contract requires is
/// declared, so a check of the names, a Grafana variable query or a
/// recording rule finds it. Before, `acd_escalation_actions_total`,
/// `acd_source_events_rejected_total`, `acd_source_connected` and
/// `acd_source_events_total` were missing until their first series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_daemon_declares_every_contract_family() {
    let d = daemon("", "").await;
    let r = support::http(&d.addr, "GET", "/metrics", None, "").await;
    assert_eq!(r.status, 200);
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|(name, kind)| !r.body.lines().any(|l| l == format!("# TYPE {name} {kind}")))
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    assert!(missing.is_empty(), "missing: {missing:?}\n{}", r.body);
    // Each declared once (a family declared twice is a bad exposition).
    for (name, _) in REQUIRED {
        let n = r
            .body
            .lines()
            .filter(|l| l.starts_with(&format!("# TYPE {name} ")))
            .count();
        assert_eq!(n, 1, "{name} declared {n} times");
    }
}
