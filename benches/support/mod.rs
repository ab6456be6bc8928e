//! The event stream both engine and ladder benchmarks replay.

use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::time::Ts;

/// A synthetic but realistic stream: 50 queues, 500 agents, each call
/// enqueued, answered (or abandoned), completed, with agent state changes.
pub fn events(n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    let t0 = 1_800_000_000_000i64;
    let mut i = 0u64;
    while out.len() < n {
        let q = format!("q{}", i % 50);
        let a = format!("a{}", i % 500);
        let c = format!("c{i}");
        let t = t0 + i as i64 * 40;
        out.push(Event {
            ts: Ts(t),
            kind: EventKind::CallEnqueued {
                call: c.clone(),
                queue: q.clone(),
                caller: None,
                priority: None,
            },
        });
        if i % 10 == 7 {
            out.push(Event {
                ts: Ts(t + 9_000),
                kind: EventKind::CallAbandoned { call: c, queue: q },
            });
        } else {
            out.push(Event {
                ts: Ts(t + 12_000),
                kind: EventKind::CallAnswered {
                    call: c.clone(),
                    queue: q.clone(),
                    agent: a.clone(),
                },
            });
            out.push(Event {
                ts: Ts(t + 150_000),
                kind: EventKind::CallCompleted {
                    call: c,
                    queue: q,
                    agent: a.clone(),
                },
            });
            out.push(Event {
                ts: Ts(t + 150_000),
                kind: EventKind::AgentState {
                    agent: a,
                    status: AgentStatus::Available,
                    reason: None,
                    queue: None,
                },
            });
        }
        i += 1;
    }
    out.truncate(n);
    out.sort_by_key(|e| e.ts);
    out
}
