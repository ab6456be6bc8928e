//! Erlang C against an independent oracle: the table in
//! tests/data/erlang_table.json was computed with the PyPI package `erlanglib`
//! (Decimal arithmetic; regenerate with scripts/erlang_table.py).

use acdmon::state::erlang;

#[derive(serde::Deserialize)]
struct Row {
    calls: f64,
    interval_s: f64,
    aht_s: f64,
    threshold_s: f64,
    target: f64,
    traffic: f64,
    agents: u32,
    prob_wait: f64,
    service_level: f64,
    asa_s: f64,
    occupancy: f64,
    required_agents: u32,
}

#[derive(serde::Deserialize)]
struct Table {
    rows: Vec<Row>,
}

#[test]
fn matches_erlanglib_within_1e_6() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/erlang_table.json"
    ))
    .unwrap();
    let t: Table = serde_json::from_str(&text).unwrap();
    assert!(t.rows.len() >= 20);
    for r in &t.rows {
        let rate = r.calls / r.interval_s;
        let a = erlang::traffic(rate, r.aht_s);
        assert!((a - r.traffic).abs() < 1e-9);
        let pw = erlang::prob_wait(a, r.agents);
        let sl = erlang::service_level(a, r.agents, r.aht_s, r.threshold_s);
        let asa = erlang::asa(a, r.agents, r.aht_s);
        let occ = erlang::occupancy(a, r.agents);
        let ctx = format!("A={} N={}", r.traffic, r.agents);
        assert!(
            (pw - r.prob_wait).abs() < 1e-6,
            "P(wait) {pw} vs {} at {ctx}",
            r.prob_wait
        );
        assert!(
            (sl - r.service_level).abs() < 1e-6,
            "SL {sl} vs {} at {ctx}",
            r.service_level
        );
        assert!(
            (asa - r.asa_s).abs() < 1e-6 * r.asa_s.max(1.0),
            "ASA {asa} vs {} at {ctx}",
            r.asa_s
        );
        assert!(
            (occ - r.occupancy / 100.0).abs() < 1e-6,
            "occupancy at {ctx}"
        );
        assert_eq!(
            erlang::required_agents(rate, r.aht_s, r.threshold_s, r.target),
            Some(r.required_agents),
            "required agents at {ctx}"
        );
    }
}
