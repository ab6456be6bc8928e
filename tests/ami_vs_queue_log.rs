//! The same day of calls recorded twice, as an AMI transcript and as a
//! queue_log file (tests/common/day.rs writes both from one simulation),
//! gives the same KPIs through either adapter.

mod common;

use acdmon::event::Event;
use acdmon::sources::Reject;
use acdmon::sources::ami::{AgentIds, AmiReplay};
use acdmon::sources::queue_log::QueueLogReplay;
use acdmon::state::{Engine, EngineConfig};

const DAY: i64 = 1_763_942_400; // 2025-11-24 00:00 UTC

fn ids() -> AgentIds {
    let mut ids = AgentIds::default();
    for i in 1..=8 {
        ids.insert(&format!("10{i:02}"), &format!("PJSIP/10{i:02}"));
    }
    ids
}

fn run(events: Vec<Result<Event, Reject>>) -> (Engine, Vec<String>) {
    let mut engine: Option<Engine> = None;
    let mut problems = Vec::new();
    for r in events {
        match r {
            Ok(e) => {
                let en = engine
                    .get_or_insert_with(|| Engine::starting_at(EngineConfig::default(), e.ts));
                if let Err(rej) = en.apply(e) {
                    problems.push(format!("engine: {rej}"));
                }
            }
            Err(rej) => problems.push(format!("decoder: {rej}")),
        }
    }
    (engine.expect("no events"), problems)
}

fn through_ami(text: &str, chunk: usize) -> (Engine, Vec<String>) {
    let mut d = AmiReplay::new(ids());
    let mut all = Vec::new();
    for c in text.as_bytes().chunks(chunk) {
        all.extend(d.feed(c));
    }
    all.extend(d.finish());
    run(all)
}

fn through_queue_log(text: &str) -> (Engine, Vec<String>) {
    let mut d = QueueLogReplay::new(ids(), jiff::tz::TimeZone::UTC);
    let mut all = d.feed(text.as_bytes());
    all.extend(d.finish());
    run(all)
}

fn compare(rec: &common::day::Recording) {
    let (mut a, pa) = through_ami(&rec.ami, 64 * 1024);
    let (mut q, pq) = through_queue_log(&rec.queue_log);
    assert!(pa.is_empty(), "AMI problems: {pa:?}");
    assert!(pq.is_empty(), "queue_log problems: {pq:?}");
    for name in ["sales", "support"] {
        let va = a.queue_view(a.find_queue(name).unwrap());
        let vq = q.queue_view(q.find_queue(name).unwrap());
        assert!(va.windows.today.offered > 0);
        assert_eq!(va.windows.today, vq.windows.today, "{name}: today");
        assert_eq!(va.totals, vq.totals, "{name}: totals");
        assert_eq!(va.waiting, 0);
        assert_eq!(vq.waiting, 0);
    }
    for i in 0..a.agent_count() {
        let ag = a.agent_view(i);
        let other = q.find_agent(&ag.agent).map(|j| q.agent_view(j));
        assert_eq!(Some(ag.state), other.map(|o| o.state), "{}", ag.agent);
    }
}

#[test]
fn a_day_of_traffic_gives_the_same_kpis_through_ami_and_queue_log() {
    let rec = common::day::simulate(7, DAY, 8, 20, 40.0);
    assert!(rec.calls > 1500, "{} calls", rec.calls);
    eprintln!("simulated day: {} calls", rec.calls);
    compare(&rec);
    // Exits of every kind happened, so the abandon/timeout/key rules were
    // exercised.
    let (mut e, _) = through_queue_log(&rec.queue_log);
    let v = e.queue_view(e.find_queue("support").unwrap());
    for reason in ["timeout", "key"] {
        assert!(
            v.totals.exited.get(reason).copied().unwrap_or(0) > 0,
            "{reason}"
        );
    }
    assert!(v.totals.abandoned > 0);
}

#[test]
fn the_committed_sample_recordings_match_the_generator_and_each_other() {
    let rec = common::day::simulate(11, DAY, 8, 9, 60.0);
    let ami = std::fs::read_to_string("tests/data/ami/day_sample.ami").unwrap();
    let qlog = std::fs::read_to_string("tests/data/queue_log/day_sample.queue_log").unwrap();
    assert_eq!(ami, rec.ami, "regenerate with ACDMON_WRITE_SAMPLES=1");
    assert_eq!(qlog, rec.queue_log);
    compare(&rec);
    // Byte-at-a-time feeding changes nothing.
    let (mut a1, _) = through_ami(&rec.ami, 1);
    let (mut a2, _) = through_ami(&rec.ami, 1 << 20);
    let s = a1.find_queue("sales").unwrap();
    assert_eq!(a1.queue_view(s).windows, a2.queue_view(s).windows);
}

/// `ACDMON_WRITE_SAMPLES=1 cargo test --test ami_vs_queue_log write_samples`
#[test]
fn write_samples() {
    if std::env::var_os("ACDMON_WRITE_SAMPLES").is_none() {
        return;
    }
    let rec = common::day::simulate(11, DAY, 8, 9, 60.0);
    std::fs::write("tests/data/ami/day_sample.ami", rec.ami).unwrap();
    std::fs::create_dir_all("tests/data/queue_log").unwrap();
    std::fs::write("tests/data/queue_log/day_sample.queue_log", rec.queue_log).unwrap();
}
