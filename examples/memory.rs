//! Memory for a large centre: 1,000 queues, 10,000 agents, 5,000 waiting
//! calls, with a published snapshot. Prints the resident set size before and
//! after (Linux `/proc/self/status`), the baseline being the empty process.
//!
//! Run: `cargo run --release --example memory`

use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::state::{Engine, EngineConfig, Publisher};
use acdmon::time::Ts;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let before = rss_kib();
    let t0 = Ts(1_800_000_000_000);
    let mut e = Engine::starting_at(EngineConfig::default(), t0);
    let ev = |kind| Event { ts: t0, kind };
    for a in 0..10_000 {
        let agent = format!("agent-{a}");
        for k in 0..3 {
            let _ = e.apply(ev(EventKind::AgentJoinedQueue {
                agent: agent.clone(),
                queue: format!("queue-{}", (a * 7 + k * 331) % 1000),
            }));
        }
        let _ = e.apply(ev(EventKind::AgentState {
            agent,
            status: AgentStatus::Available,
            reason: None,
            queue: None,
        }));
    }
    for c in 0..5_000 {
        let _ = e.apply(ev(EventKind::CallEnqueued {
            call: format!("call-{c}"),
            queue: format!("queue-{}", c % 1000),
            caller: Some("+8613800000000".into()),
            priority: None,
        }));
    }
    let p = Publisher::new();
    p.publish(&mut e, Vec::new());
    let after = rss_kib();
    println!(
        "queues={} agents={} waiting=5000 rss_before={} KiB rss_after={} KiB delta={:.1} MiB (aim: under 200 MB)",
        e.queue_count(),
        e.agent_count(),
        before,
        after,
        (after - before) as f64 / 1024.0
    );
}
