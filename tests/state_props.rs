//! Property tests of the state engine's invariants.

use std::collections::{HashMap, HashSet};

use acdmon::event::{AgentStatus, Event, EventKind, ExitReason};
use acdmon::state::{Engine, EngineConfig, QueueParams, QueueView};
use acdmon::time::Ts;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Enqueue(u8, u8),
    Answer(u8, u8, u8),
    Abandon(u8, u8),
    Exit(u8, u8, u8),
    Complete(u8, u8),
    AgentState(u8, u8),
    Join(u8, u8),
    Leave(u8, u8),
    QueuePause(u8, u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, 0u8..3).prop_map(|(c, q)| Op::Enqueue(c, q)),
        2 => (0u8..12, 0u8..3, 0u8..5).prop_map(|(c, q, a)| Op::Answer(c, q, a)),
        1 => (0u8..12, 0u8..3).prop_map(|(c, q)| Op::Abandon(c, q)),
        1 => (0u8..12, 0u8..3, 0u8..5).prop_map(|(c, q, r)| Op::Exit(c, q, r)),
        2 => (0u8..12, 0u8..5).prop_map(|(c, a)| Op::Complete(c, a)),
        2 => (0u8..5, 0u8..6).prop_map(|(a, s)| Op::AgentState(a, s)),
        1 => (0u8..5, 0u8..3).prop_map(|(a, q)| Op::Join(a, q)),
        1 => (0u8..5, 0u8..3).prop_map(|(a, q)| Op::Leave(a, q)),
        1 => (0u8..5, 0u8..3, any::<bool>()).prop_map(|(a, q, p)| Op::QueuePause(a, q, p)),
    ]
}

fn kind(op: &Op) -> EventKind {
    let call = |c: &u8| format!("c{c}");
    let queue = |q: &u8| format!("q{q}");
    let agent = |a: &u8| format!("a{a}");
    match op {
        Op::Enqueue(c, q) => EventKind::CallEnqueued {
            call: call(c),
            queue: queue(q),
            caller: None,
            priority: None,
        },
        Op::Answer(c, q, a) => EventKind::CallAnswered {
            call: call(c),
            queue: queue(q),
            agent: agent(a),
        },
        Op::Abandon(c, q) => EventKind::CallAbandoned {
            call: call(c),
            queue: queue(q),
        },
        Op::Exit(c, q, r) => EventKind::CallExited {
            call: call(c),
            queue: queue(q),
            reason: ExitReason::ALL[*r as usize],
        },
        Op::Complete(c, a) => EventKind::CallCompleted {
            call: call(c),
            queue: "q0".into(),
            agent: agent(a),
        },
        Op::AgentState(a, s) => EventKind::AgentState {
            agent: agent(a),
            status: AgentStatus::ALL[*s as usize],
            reason: Some("r".into()),
            queue: None,
        },
        Op::Join(a, q) => EventKind::AgentJoinedQueue {
            agent: agent(a),
            queue: queue(q),
        },
        Op::QueuePause(a, q, p) => EventKind::AgentQueuePause {
            agent: agent(a),
            queue: queue(q),
            paused: *p,
        },
        Op::Leave(a, q) => EventKind::AgentLeftQueue {
            agent: agent(a),
            queue: queue(q),
        },
    }
}

fn cfg(sl_ms: i64, short_ms: i64) -> EngineConfig {
    EngineConfig {
        defaults: QueueParams {
            sl_threshold_ms: sl_ms,
            short_abandon_ms: short_ms,
            ..QueueParams::default()
        },
        ..EngineConfig::default()
    }
}

fn all_ratios(v: &QueueView) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for w in [&v.windows.rolling, &v.windows.interval, &v.windows.today] {
        out.extend([
            w.service_level,
            w.sl.answered,
            w.sl.offered,
            w.sl.abandon_negative,
            w.sl.abandon_positive,
            w.abandon_rate,
        ]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Counts stay consistent and non-negative, every enqueued call leaves its
    /// queue at most once, and every service level is in [0, 1] or null.
    #[test]
    fn invariants_hold_for_any_event_sequence(
        ops in prop::collection::vec((op(), 0i64..30_000), 1..200)
    ) {
        let t0 = Ts::parse_rfc3339("2026-11-23T08:00:00Z").unwrap();
        let mut e = Engine::starting_at(cfg(20_000, 5_000), t0);
        let mut t = t0;
        // Model: which (queue, call) are waiting; how many leaves happened.
        let mut waiting: HashSet<(String, String)> = HashSet::new();
        let mut leaves: HashMap<String, u64> = HashMap::new();
        for (op, dt) in &ops {
            t = t.plus_ms(*dt);
            let k = kind(op);
            let key = match &k {
                EventKind::CallEnqueued { call, queue, .. }
                | EventKind::CallAnswered { call, queue, .. }
                | EventKind::CallAbandoned { call, queue }
                | EventKind::CallExited { call, queue, .. } => Some((queue.clone(), call.clone())),
                _ => None,
            };
            let is_enqueue = matches!(k, EventKind::CallEnqueued { .. });
            let r = e.apply(Event { ts: t, kind: k });
            if let Some(key) = key {
                if is_enqueue {
                    prop_assert_eq!(r.is_ok(), waiting.insert(key.clone()));
                } else if waiting.remove(&key) {
                    *leaves.entry(key.0.clone()).or_default() += 1;
                }
            }
        }
        for q in 0..e.queue_count() {
            let v = e.queue_view(q);
            let model_waiting = waiting.iter().filter(|(qq, _)| *qq == v.queue).count();
            prop_assert_eq!(v.waiting as usize, model_waiting);
            prop_assert_eq!(v.totals.offered, leaves.get(&v.queue).copied().unwrap_or(0));
            let w = &v.windows.today;
            prop_assert_eq!(w.offered, w.answered + w.abandoned + w.exited);
            prop_assert!(w.answered_in_sl <= w.answered);
            prop_assert!(w.abandoned_in_sl <= w.abandoned);
            prop_assert!(w.short_abandoned <= w.abandoned);
            for x in all_ratios(&v).into_iter().flatten() {
                prop_assert!((0.0..=1.0).contains(&x), "ratio {} out of range", x);
            }
            // Agents by state equal a recount from the agents themselves
            // (an available agent paused in this queue alone counts paused).
            let mut recount = [0u32; 6];
            for a in 0..e.agent_count() {
                let ag = e.agent(a);
                prop_assert!(ag.paused_in.iter().all(|p| ag.queues.contains(p)));
                if ag.queues.contains(&q) {
                    let s = if ag.status == AgentStatus::Available && ag.paused_in.contains(&q) {
                        AgentStatus::Paused
                    } else {
                        ag.status
                    };
                    recount[s.index()] += 1;
                }
            }
            let by = v.agents;
            prop_assert_eq!(by.logged_in, recount[1..].iter().sum::<u32>());
            prop_assert_eq!(by.available, recount[AgentStatus::Available.index()]);
            prop_assert_eq!(by.on_call, recount[AgentStatus::OnCall.index()]);
            prop_assert_eq!(by.paused, recount[AgentStatus::Paused.index()]);
        }
    }

    /// A wait of exactly T is in SL, T + 1 ms is not; a short abandon is
    /// strictly below its threshold.
    #[test]
    fn thresholds_are_inclusive_for_sl_and_strict_for_short_abandon(
        t_s in 1i64..120, short_s in 1i64..30, delta in -2i64..=2
    ) {
        let t_ms = t_s * 1000;
        let short_ms = short_s * 1000;
        let t0 = Ts(1_800_000_000_000);
        let mut e = Engine::starting_at(cfg(t_ms, short_ms), t0);
        let ev = |ts: Ts, k: EventKind| Event { ts, kind: k };
        let enq = |c: &str| EventKind::CallEnqueued { call: c.into(), queue: "q".into(), caller: None, priority: None };
        e.apply(ev(t0, enq("ans"))).unwrap();
        e.apply(ev(t0, enq("ab"))).unwrap();
        e.apply(ev(t0.plus_ms(t_ms + delta), EventKind::CallAnswered { call: "ans".into(), queue: "q".into(), agent: "a".into() })).unwrap();
        let abandon_at = (short_ms + delta).max(0);
        let mut e2 = Engine::starting_at(cfg(t_ms, short_ms), t0);
        e2.apply(ev(t0, enq("ab"))).unwrap();
        e2.apply(ev(t0.plus_ms(abandon_at), EventKind::CallAbandoned { call: "ab".into(), queue: "q".into() })).unwrap();
        let q = e.find_queue("q").unwrap();
        let v = e.queue_view(q);
        prop_assert_eq!(v.windows.today.answered_in_sl, (delta <= 0) as u64);
        let v2 = e2.queue_view(0);
        prop_assert_eq!(v2.windows.today.short_abandoned, (abandon_at < short_ms) as u64);
    }

    /// Windows roll on event time across interval boundaries, local midnight
    /// and a DST change: closed intervals plus the current one hold every
    /// call exactly once, and today holds exactly the calls since local
    /// midnight.
    #[test]
    fn windows_roll_across_intervals_midnight_and_dst(
        gaps in prop::collection::vec(1i64..1_500_000, 1..150),
        zone in prop_oneof![Just("Europe/Berlin"), Just("America/New_York"), Just("Asia/Shanghai"), Just("Australia/Lord_Howe")],
        start in prop_oneof![Just("2026-10-24T20:00:00Z"), Just("2026-03-29T00:30:00Z"), Just("2026-11-01T03:00:00Z"), Just("2026-04-04T13:00:00Z")],
    ) {
        let tz = jiff::tz::TimeZone::get(zone).unwrap();
        let t0 = Ts::parse_rfc3339(start).unwrap();
        let mut e = Engine::starting_at(EngineConfig { zone: tz.clone(), ..cfg(20_000, 5_000) }, t0);
        let mut t = t0;
        let mut times = Vec::new();
        let mut closed = Vec::new();
        for (i, g) in gaps.iter().enumerate() {
            t = t.plus_ms(*g);
            let call = format!("c{i}");
            e.apply(Event { ts: t, kind: EventKind::CallEnqueued { call: call.clone(), queue: "q".into(), caller: None, priority: None } }).unwrap();
            e.apply(Event { ts: t, kind: EventKind::CallExited { call, queue: "q".into(), reason: ExitReason::Other } }).unwrap();
            times.push(t);
            closed.extend(e.drain_closed());
        }
        let v = e.queue_view(0);
        let total: u64 = closed.iter().map(|r| r.window.offered).sum::<u64>() + v.windows.interval.offered;
        prop_assert_eq!(total, times.len() as u64);
        // Intervals are contiguous and each is 15 minutes of real time.
        for w in closed.windows(2) {
            prop_assert_eq!(w[0].end, w[1].start);
        }
        for r in &closed {
            prop_assert!(r.end.0 - r.start.0 == 900_000 || zone == "Australia/Lord_Howe");
            let in_it = times.iter().filter(|x| **x >= r.start && **x < r.end).count() as u64;
            prop_assert_eq!(r.window.offered, in_it);
        }
        // Today: events since local midnight of the last event.
        let last = *times.last().unwrap();
        let midnight = last.to_jiff().to_zoned_datetime(tz.clone()).start_of_day().unwrap().timestamp().as_millisecond();
        let today = times.iter().filter(|x| x.0 >= midnight).count() as u64;
        prop_assert_eq!(v.windows.today.offered, today);
        // Rolling: the last 15 minutes.
        let rolling = times.iter().filter(|x| x.0 > last.0 - 900_000).count() as u64;
        prop_assert_eq!(v.windows.rolling.offered, rolling);
    }
}

proptest! {
    /// Any bytes, in any chunking, decode to events or rejections: never a
    /// panic, and every complete line is accounted for.
    #[test]
    fn json_decoder_survives_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        chunk in 1usize..64,
    ) {
        let mut d = acdmon::sources::json::LineDecoder::new();
        let mut out = Vec::new();
        for c in bytes.chunks(chunk) {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        let lines = bytes.split(|&b| b == b'\n').filter(|l| l.iter().any(|b| !b.is_ascii_whitespace())).count();
        prop_assert_eq!(out.len(), lines);
    }
}
