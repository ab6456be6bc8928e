//! The shift handover: a recorded day with an early and a late shift runs
//! through the daemon's own observers (ladder, interval history, handover)
//! on event time. Each shift end writes one record whose figures are the
//! interval history's, whose escalations are the escalation log's, and
//! whose duty log holds the notes made during that shift. The late shift
//! ends with a ladder stage still active: its record is flagged. A restart
//! between the shifts loses nothing; a full disk delays a record, never
//! loses it. (The HTTP routes and a SIGKILL of the real binary:
//! tests/handover_crash.rs.)

use std::sync::Arc;

use acdmon::config::Config;
use acdmon::cti::CtiRegistry;
use acdmon::cti::log_only::LogOnly;
use acdmon::engine_thread::Driver;
use acdmon::escalation::Direction;
use acdmon::event::{Event, EventKind};
use acdmon::floor::handover::Handover;
use acdmon::sources::RejectCounter;
use acdmon::state::Engine;
use acdmon::store::{IntervalRow, Store};
use acdmon::time::Ts;

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[storage]
path = "{}/audit.sqlite"
checkpoint_every = "0s"

[time]
zone = "Asia/Shanghai"

[defaults]
sl_threshold = "20s"
ladder = "emergency"

[[queues]]
name = "hotline"
[[queues]]
name = "billing"

[[agents]]
id = "a1"
[[agents]]
id = "a2"
[[agents]]
id = "x1"
groups = ["experts"]

[[ladders]]
name = "emergency"
mode = "auto"
release_when = "waiting < 1"
release_hold = "0s"

[[ladders.stages]]
name = "experts"
when = "waiting > 2"
for = "0s"
sign_in = {{ group = "experts" }}

[[shifts]]
name = "early"
from = "08:00"
to = "12:00"
[[shifts]]
name = "late"
from = "12:00"
to = "16:00"
"#,
        dir.display()
    )
}

/// Local time on the recorded day (2026-11-23, Shanghai).
fn at(hms: &str) -> Ts {
    Ts::parse_rfc3339(&format!("2026-11-23T{hms}+08:00")).unwrap()
}

fn ev(ts: Ts, kind: EventKind) -> Event {
    Event { ts, kind }
}

/// A call waiting `wait` seconds, then answered by `agent` (and finished a
/// minute later), or abandoned when `agent` is `None`.
fn call(out: &mut Vec<Event>, id: &str, queue: &str, from: Ts, wait: i64, agent: Option<&str>) {
    out.push(ev(
        from,
        EventKind::CallEnqueued {
            call: id.into(),
            queue: queue.into(),
            caller: None,
            priority: None,
        },
    ));
    let left = from.plus_ms(wait * 1000);
    match agent {
        Some(a) => {
            out.push(ev(
                left,
                EventKind::CallAnswered {
                    call: id.into(),
                    queue: queue.into(),
                    agent: a.into(),
                },
            ));
            out.push(ev(
                left.plus_ms(60_000),
                EventKind::CallCompleted {
                    call: id.into(),
                    queue: queue.into(),
                    agent: a.into(),
                },
            ));
        }
        None => out.push(ev(
            left,
            EventKind::CallAbandoned {
                call: id.into(),
                queue: queue.into(),
            },
        )),
    }
}

/// The recorded day. Early shift: a quiet morning on both queues, then a
/// surge on the hotline at 10:00 (four waiting: the experts stage goes up;
/// the longest wait, 300 s, ends at 10:05; the stage goes down when the
/// queue is empty). Late shift: at 12:10 a call waits 200 s (the late
/// shift's longest); at 15:58 three calls pile up and the experts stage is
/// still active at 16:00.
fn day() -> Vec<Event> {
    let mut v = Vec::new();
    for (a, q) in [("a1", "hotline"), ("a2", "billing")] {
        v.push(ev(
            at("07:50:00"),
            EventKind::AgentJoinedQueue {
                agent: a.into(),
                queue: q.into(),
            },
        ));
    }
    // The expert is logged in (not in the queue) all day; the phone
    // system says so again at 13:00.
    for t in ["07:50:00", "13:00:00"] {
        v.push(ev(
            at(t),
            EventKind::AgentState {
                agent: "x1".into(),
                status: acdmon::event::AgentStatus::Available,
                reason: None,
                queue: None,
            },
        ));
    }
    // Early: hotline 6 answered (waits 5..30 s), 1 abandoned; billing 3 answered.
    for (i, w) in [5, 10, 15, 25, 30, 8].iter().enumerate() {
        let t = at("08:30:00").plus_ms(i as i64 * 600_000);
        call(&mut v, &format!("h{i}"), "hotline", t, *w, Some("a1"));
    }
    call(&mut v, "h-ab", "hotline", at("09:40:00"), 40, None);
    for i in 0..3 {
        let t = at("09:00:00").plus_ms(i * 900_000);
        call(&mut v, &format!("b{i}"), "billing", t, 12, Some("a2"));
    }
    // The surge: four calls from 10:00:00, 10 s apart.
    call(&mut v, "s0", "hotline", at("10:00:00"), 300, Some("a1"));
    call(&mut v, "s1", "hotline", at("10:00:10"), 295, None);
    call(&mut v, "s2", "hotline", at("10:00:20"), 290, None);
    call(&mut v, "s3", "hotline", at("10:00:30"), 285, None);
    // Late: the 200 s wait at 12:10, then ordinary calls.
    call(&mut v, "l0", "hotline", at("12:10:00"), 200, Some("a1"));
    call(&mut v, "l1", "hotline", at("12:11:00"), 20, Some("a1"));
    for i in 0..4 {
        let t = at("13:00:00").plus_ms(i * 1_800_000);
        call(&mut v, &format!("lh{i}"), "hotline", t, 15, Some("a1"));
        call(&mut v, &format!("lb{i}"), "billing", t, 35, Some("a2"));
    }
    call(&mut v, "lb-ab", "billing", at("14:50:00"), 3, None);
    // The late surge, still waiting at 16:00.
    for (i, t) in ["15:58:00", "15:58:10", "15:58:20"].iter().enumerate() {
        v.push(ev(
            at(t),
            EventKind::CallEnqueued {
                call: format!("e{i}"),
                queue: "hotline".into(),
                caller: None,
                priority: None,
            },
        ));
    }
    // The evening: one more call after the late shift.
    v.push(ev(
        at("16:05:00"),
        EventKind::CallAbandoned {
            call: "e0".into(),
            queue: "hotline".into(),
        },
    ));
    v.sort_by_key(|e| e.ts);
    v
}

struct Run {
    driver: Driver,
    store: Arc<Store>,
}

/// The daemon's observers on the configured storage, driven on event time.
fn start(cfg: &Config, first: Ts) -> Run {
    let cti = Arc::new(CtiRegistry::only(Arc::new(LogOnly)));
    let parts = acdmon::daemon::Parts::open(cfg, cti).unwrap();
    let mut driver = Driver::new(
        Engine::starting_at(cfg.engine_config(), first),
        Arc::new(RejectCounter::default()),
    );
    driver.observers = parts.observers;
    Run {
        driver,
        store: parts.store,
    }
}

fn feed(run: &mut Run, events: impl IntoIterator<Item = Event>) {
    for e in events {
        run.driver.apply("recording", e);
        run.driver.before_publish();
    }
}

/// Ends a run; the interval history writer flushes on drop.
fn finish(mut run: Run) -> Arc<Store> {
    let now = run.driver.engine.now();
    run.driver.advance(now);
    run.driver.before_publish();
    let store = run.store.clone();
    drop(run);
    store
}

fn notes(store: &Store) {
    store
        .insert_duty(at("07:59:00"), "night", "quiet night, nothing to hand over")
        .unwrap();
    store
        .insert_duty(
            at("09:30:00"),
            "Zhang Wei",
            "PBX 2 rebooted at 09:25, back at 09:28",
        )
        .unwrap();
    store
        .insert_duty(
            at("12:30:00"),
            "Li Na",
            "billing backlog passed to back office",
        )
        .unwrap();
}

fn all_handovers(store: &Store) -> Vec<Handover> {
    store.handovers(Ts(0), Ts::LATEST, 100).unwrap()
}

/// The figures of one queue's shift equal the sum of its stored intervals.
fn assert_matches_history(store: &Store, h: &Handover) {
    for q in &h.queues {
        let rows: Vec<IntervalRow> = store.intervals(h.start, h.end, Some(&q.queue)).unwrap();
        let sum = |f: fn(&IntervalRow) -> u64| rows.iter().map(f).sum::<u64>();
        assert_eq!(q.offered, sum(|r| r.offered), "{} {}", h.shift, q.queue);
        assert_eq!(q.answered, sum(|r| r.answered), "{} {}", h.shift, q.queue);
        assert_eq!(q.abandoned, sum(|r| r.abandoned), "{} {}", h.shift, q.queue);
        assert_eq!(q.answered_in_sl, sum(|r| r.answered_in_sl));
        assert_eq!(q.short_abandoned, sum(|r| r.short_abandoned));
        assert_eq!(q.intervals as usize, rows.len());
        // abandon_negative over the shift's sums.
        let denom = q.offered - q.short_abandoned;
        let sl = (denom > 0).then(|| q.answered_in_sl as f64 / denom as f64);
        assert_eq!(
            q.service_level,
            sl.map(|x| (x * 10_000.0).round() / 10_000.0)
        );
        let waits: f64 = rows
            .iter()
            .map(|r| r.asa_s.unwrap_or(0.0) * r.answered as f64)
            .sum();
        let asa = (q.answered > 0).then(|| waits / q.answered as f64);
        assert_eq!(
            q.asa_s.map(|x| (x * 100.0).round()),
            asa.map(|x| (x * 100.0).round())
        );
    }
}

/// Its escalations are exactly the log's entries inside the shift.
fn assert_matches_log(store: &Store, h: &Handover) {
    let log: Vec<_> = store
        .entries(None, Some(h.start), 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.ts < h.end)
        .collect();
    let ids = |d: Direction| -> Vec<u64> {
        log.iter()
            .filter(|e| e.direction == d)
            .map(|e| e.id)
            .collect()
    };
    let up: Vec<u64> = h.escalations.started.iter().map(|e| e.id).collect();
    let down: Vec<u64> = h.escalations.ended.iter().map(|e| e.id).collect();
    assert_eq!(up, ids(Direction::Up), "{}", h.shift);
    assert_eq!(down, ids(Direction::Down), "{}", h.shift);
}

fn queue<'a>(h: &'a Handover, name: &str) -> &'a acdmon::floor::handover::QueueShift {
    h.queues.iter().find(|q| q.queue == name).unwrap()
}

#[test]
fn a_replayed_two_shift_day_gives_two_handovers_that_match_the_history_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("day.toml", &config(dir.path())).unwrap();
    let events = day();
    let mut run = start(&cfg, events[0].ts);
    notes(&run.store);
    feed(&mut run, events);
    let store = finish(run);

    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 2, "{hs:#?}");
    let (early, late) = (&hs[0], &hs[1]);
    assert_eq!(
        (early.shift.as_str(), early.day.as_str()),
        ("early", "2026-11-23")
    );
    assert_eq!((early.start, early.end), (at("08:00:00"), at("12:00:00")));
    assert_eq!(early.written, at("12:00:00"));
    assert_eq!((late.shift.as_str(), late.end), ("late", at("16:00:00")));
    for h in &hs {
        assert_matches_history(&store, h);
        assert_matches_log(&store, h);
    }

    // The test's own count of the script.
    let eh = queue(early, "hotline");
    assert_eq!((eh.offered, eh.answered, eh.abandoned), (11, 7, 4));
    assert_eq!(eh.intervals, 16);
    assert_eq!(
        (eh.peak_waiting, eh.peak_waiting_at),
        (4, Some(at("10:00:30")))
    );
    assert_eq!(eh.longest_wait_s, 300.0);
    let eb = queue(early, "billing");
    assert_eq!(
        (eb.offered, eb.answered, eb.service_level),
        (3, 3, Some(1.0))
    );
    let lh = queue(late, "hotline");
    assert_eq!((lh.offered, lh.answered, lh.abandoned), (6, 6, 0));
    assert_eq!(lh.longest_wait_s, 200.0);
    assert_eq!(
        (lh.peak_waiting, lh.peak_waiting_at),
        (3, Some(at("15:58:20")))
    );
    let lb = queue(late, "billing");
    assert_eq!(
        (lb.offered, lb.answered, lb.abandoned, lb.short_abandoned),
        (5, 4, 1, 1)
    );

    // Early: the surge went up and came down; handed over clean.
    assert_eq!(early.escalations.started.len(), 1);
    assert_eq!(early.escalations.ended.len(), 1);
    assert_eq!(early.escalations.started[0].stage_name, "experts");
    assert_eq!(early.escalations.active.as_deref(), Some(&[][..]));
    assert!(!early.unresolved);
    // Late: the stage is still active at 16:00, x1 still signed in by it.
    assert_eq!(late.escalations.started.len(), 1);
    assert!(late.escalations.ended.is_empty());
    let active = late.escalations.active.as_ref().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!((active[0].queue.as_str(), active[0].stage), ("hotline", 1));
    assert_eq!(
        late.escalations.signed_in_by_ladder.as_deref(),
        Some(&["x1".to_string()][..])
    );
    assert!(late.unresolved);
    assert!(
        late.unresolved_reasons[0].contains("experts"),
        "{:?}",
        late.unresolved_reasons
    );

    // Each note in the shift it was made in; the night's note in neither.
    let texts = |h: &Handover| -> Vec<String> { h.duty_log.iter().map(|d| d.by.clone()).collect() };
    assert_eq!(texts(early), ["Zhang Wei"]);
    assert_eq!(texts(late), ["Li Na"]);

    // The report: both shifts of the day, Markdown and JSON.
    let md = acdmon::store::report::handover(
        &cfg,
        "2026-11-23",
        acdmon::store::report::ReportFormat::Markdown,
        "en",
    )
    .unwrap();
    assert!(md.contains("Shift handover — early 2026-11-23"), "{md}");
    assert!(md.contains("UNRESOLVED"), "{md}");
    assert!(md.contains("PBX 2 rebooted"), "{md}");
    let zh = acdmon::store::report::handover(
        &cfg,
        "2026-11-23",
        acdmon::store::report::ReportFormat::Markdown,
        "zh-CN",
    )
    .unwrap();
    assert!(zh.contains("交接班记录"), "{zh}");
    let json = acdmon::store::report::handover(
        &cfg,
        "2026-11-23",
        acdmon::store::report::ReportFormat::Json,
        "en",
    )
    .unwrap();
    let v: Vec<Handover> = serde_json::from_str(&json).unwrap();
    assert_eq!(v, hs);
}

/// The daemon stops between the shifts without a clean stop (nothing
/// flushed by `on_stop`) and starts again on the same database: the early
/// record is kept, and the late record equals the one of a run without the
/// restart, including the 200 s wait seen before the restart.
#[test]
fn a_restart_between_shifts_loses_nothing() {
    let whole = tempfile::tempdir().unwrap();
    let cfg = Config::parse("day.toml", &config(whole.path())).unwrap();
    let events = day();
    let mut run = start(&cfg, events[0].ts);
    notes(&run.store);
    feed(&mut run, events.clone());
    let reference = all_handovers(&finish(run));

    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("day.toml", &config(dir.path())).unwrap();
    // Stopped at 12:40: no call in flight, intervals to 12:30 closed.
    let split = at("12:40:00");
    let (before, after): (Vec<Event>, Vec<Event>) = events.into_iter().partition(|e| e.ts <= split);
    let mut run = start(&cfg, before[0].ts);
    notes(&run.store);
    feed(&mut run, before);
    assert_eq!(
        all_handovers(&run.store).len(),
        1,
        "the early record is written"
    );
    // The daemon's clock ticks on to 12:40 (closing the intervals to 12:30).
    run.driver.advance(split);
    // No on_stop: dropped as a kill leaves it.
    drop(run);

    let mut run = start(&cfg, after[0].ts);
    feed(&mut run, after);
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0], reference[0]);
    let strip = |h: &Handover| {
        let mut h = h.clone();
        for q in &mut h.queues {
            // The restart skipped the empty 12:30 interval.
            q.intervals = 0;
        }
        h.escalations.started.iter_mut().for_each(|e| e.id = 0);
        h.id = 0;
        h
    };
    assert_eq!(strip(&hs[1]), strip(&reference[1]));
    assert_eq!(queue(&hs[1], "hotline").longest_wait_s, 200.0);
    assert_matches_history(&store, &hs[1]);
    assert_matches_log(&store, &hs[1]);
}

#[test]
fn check_config_rejects_overlapping_and_off_grid_shifts() {
    let bad = r#"
[[shifts]]
name = "day"
from = "08:00"
to = "20:00"
[[shifts]]
name = "night"
from = "19:00"
to = "08:00"
[[shifts]]
name = "odd"
from = "20:10"
to = "21:00"
[[shifts]]
name = "bad"
from = "25:00"
to = "21:00"
"#;
    let errs = Config::parse("s.toml", bad).unwrap_err();
    let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("s.toml:8:") && m.contains("overlaps shift `day`")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("`20:10` must be on an interval boundary")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("`25:00` is not a time of day")),
        "{msgs:#?}"
    );
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
}

/// The disk is full when the early shift ends: the record is kept, storage
/// health says so, and it is written once the disk has room again.
#[test]
fn a_handover_refused_by_a_full_disk_is_written_when_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("day.toml", &config(dir.path())).unwrap();
    let events = day();
    let (before, after): (Vec<Event>, Vec<Event>) =
        events.into_iter().partition(|e| e.ts < at("11:00:00"));
    let mut run = start(&cfg, before[0].ts);
    // A long note: the record needs pages of its own.
    let note = "the surge at 10:00 came from the outage notice; ".repeat(120);
    run.store
        .insert_duty(at("10:30:00"), "Zhang Wei", &note)
        .unwrap();
    feed(&mut run, before);
    run.store.set_full(true).unwrap();
    run.driver.advance(at("12:00:00"));
    run.driver.advance(at("12:00:01"));
    assert!(all_handovers(&run.store).is_empty());
    assert!(!run.store.health().ok());
    assert!(
        run.store.health().last_error().unwrap().contains("full"),
        "{:?}",
        run.store.health().last_error()
    );
    run.store.set_full(false).unwrap();
    feed(&mut run, after);
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0].shift, "early");
    assert_eq!(hs[0].written, at("12:00:00"));
    assert_eq!(hs[0].duty_log[0].text, note);
    assert_matches_history(&store, &hs[0]);
    assert!(store.health().ok());
}

/// In advise mode the late surge leaves advice nobody has answered at
/// 16:00: the record lists it and is flagged.
#[test]
fn advice_left_pending_at_the_shift_end_is_handed_over_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path()).replace(
        "mode = \"auto\"",
        "mode = \"advise\"\nadvice_expiry = \"1h\"",
    );
    let cfg = Config::parse("day.toml", &text).unwrap();
    let events: Vec<Event> = day()
        .into_iter()
        .filter(|e| e.ts >= at("12:00:00"))
        .collect();
    let mut run = start(&cfg, events[0].ts);
    feed(&mut run, events);
    let store = finish(run);
    let hs = all_handovers(&store);
    let late = hs.iter().find(|h| h.shift == "late").unwrap();
    assert_eq!(late.escalations.advice_pending.len(), 1, "{late:#?}");
    let advice = &late.escalations.advice_pending[0];
    assert_eq!(
        (advice.queue.as_str(), advice.stage_name.as_str()),
        ("hotline", "experts")
    );
    assert_eq!(advice.ts, at("15:58:20"));
    assert!(late.unresolved);
    assert!(
        late.unresolved_reasons.iter().any(|r| r.contains("advice")),
        "{:?}",
        late.unresolved_reasons
    );
    assert_matches_log(&store, late);
}

/// The hotline desk (A: a1, B: a2, a 1-minute grace) through both shifts:
/// each record's `floor_rules` lists the desk's breaches within its shift,
/// clipped to it, and the seconds unmanned.
#[test]
fn each_handover_lists_the_post_breaches_of_its_shift() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[posts]]\nname = \"hotline-desk\"\na = [\"a1\"]\nb = [\"a2\"]\nqueues = [\"hotline\"]\ngrace = \"1m\"\n",
        config(dir.path())
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let state = |t: &str, agent: &str, status: acdmon::event::AgentStatus| {
        ev(
            at(t),
            EventKind::AgentState {
                agent: agent.into(),
                status,
                reason: None,
                queue: None,
            },
        )
    };
    use acdmon::event::AgentStatus::{Available, LoggedOut};
    let events = vec![
        ev(
            at("08:00:00"),
            EventKind::AgentJoinedQueue {
                agent: "a1".into(),
                queue: "hotline".into(),
            },
        ),
        state("08:00:00", "a1", Available),
        // Nobody at the desk 09:00-09:30 (a2 is not in the hotline).
        state("09:00:00", "a1", LoggedOut),
        state("09:30:00", "a1", Available),
        // Nobody from 11:50 across the shift change to 12:20.
        state("11:50:00", "a1", LoggedOut),
        state("12:20:00", "a1", Available),
        state("16:05:00", "a1", Available),
    ];
    let mut run = start(&cfg, at("08:00:00"));
    feed(&mut run, events);
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 2, "{hs:#?}");
    let desk = |h: &Handover| h.floor_rules.as_ref().expect("floor_rules")["posts"][0].clone();
    let ts = |t: &str| serde_json::json!(at(t).rfc3339());
    let early = desk(&hs[0]);
    assert_eq!(early["post"], "hotline-desk");
    assert_eq!(
        early["breaches"],
        serde_json::json!([{"start": ts("09:00:00"), "end": ts("09:30:00")},
                           {"start": ts("11:50:00"), "end": null}]),
        "{early}"
    );
    assert_eq!(early["unmanned_s"], 1800.0 + 600.0);
    assert_eq!(early["cover_at_end"], "unmanned");
    let late = desk(&hs[1]);
    assert_eq!(
        late["breaches"],
        serde_json::json!([{"start": ts("12:00:00"), "end": ts("12:20:00")}]),
        "{late}"
    );
    assert_eq!(late["unmanned_s"], 1200.0);
    assert_eq!(late["cover_at_end"], "a");
}

/// PBX 2 drops at 09:25 and is back at 09:28; the CTI link is down from
/// 11:55 into the late shift until 12:10. Each record lists the outages of
/// its shift, clipped to it, as the engine's clock saw them.
#[test]
fn each_handover_lists_the_source_outages_of_its_shift() {
    use acdmon::event::AgentStatus::Available;
    use acdmon::sources::health::{HealthRegistry, SourceHealth};
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("t.toml", &config(dir.path())).unwrap();
    let cti = Arc::new(CtiRegistry::only(Arc::new(LogOnly)));
    let parts = acdmon::daemon::Parts::open(&cfg, cti).unwrap();
    let health = Arc::new(HealthRegistry::default());
    let (pbx, link) = (
        SourceHealth::new("pbx2", "ami"),
        SourceHealth::new("cti-link", "esl"),
    );
    pbx.set_connected(true);
    link.set_connected(true);
    health.register(pbx.clone());
    health.register(link.clone());
    let _ = parts.floor.sources.set(health);
    let mut driver = Driver::new(
        Engine::starting_at(cfg.engine_config(), at("08:00:00")),
        Arc::new(RejectCounter::default()),
    );
    driver.observers = parts.observers;
    let mut run = Run {
        driver,
        store: parts.store,
    };
    let tick = |t: &str| {
        ev(
            at(t),
            EventKind::AgentState {
                agent: "a1".into(),
                status: Available,
                reason: None,
                queue: Some("hotline".into()),
            },
        )
    };
    feed(&mut run, [tick("08:00:00")]);
    pbx.set_connected(false);
    pbx.set_error("connection reset by peer");
    feed(&mut run, [tick("09:25:00")]);
    pbx.set_connected(true);
    feed(&mut run, [tick("09:28:00")]);
    link.set_connected(false);
    feed(&mut run, [tick("11:55:00"), tick("12:05:00")]);
    link.set_connected(true);
    feed(&mut run, [tick("12:10:00"), tick("16:05:00")]);
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 2, "{hs:#?}");
    let ts = |t: &str| serde_json::json!(at(t).rfc3339());
    let outages = |h: &Handover| serde_json::json!(h.source_outages);
    assert_eq!(
        outages(&hs[0]),
        serde_json::json!([
            {"source": "pbx2", "from": ts("09:25:00"), "to": ts("09:28:00"),
             "error": "connection reset by peer"},
            {"source": "cti-link", "from": ts("11:55:00"), "to": null},
        ])
    );
    assert_eq!(
        outages(&hs[1]),
        serde_json::json!([{"source": "cti-link", "from": ts("12:00:00"), "to": ts("12:10:00")}])
    );
}

/// [`start`] with the sources' health watched, as the daemon does.
fn start_watched(
    cfg: &Config,
    first: Ts,
    health: Arc<acdmon::sources::health::HealthRegistry>,
) -> Run {
    let cti = Arc::new(CtiRegistry::only(Arc::new(LogOnly)));
    let parts = acdmon::daemon::Parts::open(cfg, cti).unwrap();
    let _ = parts.floor.sources.set(health);
    let mut driver = Driver::new(
        Engine::starting_at(cfg.engine_config(), first),
        Arc::new(RejectCounter::default()),
    );
    driver.observers = parts.observers;
    Run {
        driver,
        store: parts.store,
    }
}

/// PBX 2 drops at 09:25 and is back at 09:28; the CTI link goes down at
/// 10:00 and the daemon is killed at 10:30 while it is still down. The
/// restarted daemon (10:45) sees the link come back at 10:50. The early
/// shift's record, written by the second process, lists both outages.
#[test]
fn a_restart_mid_shift_keeps_the_source_outages_before_it() {
    use acdmon::event::AgentStatus::Available;
    use acdmon::sources::health::{HealthRegistry, SourceHealth};
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("t.toml", &config(dir.path())).unwrap();
    let tick = |t: &str| {
        ev(
            at(t),
            EventKind::AgentState {
                agent: "a1".into(),
                status: Available,
                reason: None,
                queue: Some("hotline".into()),
            },
        )
    };
    let sources = || {
        let health = Arc::new(HealthRegistry::default());
        let pbx = SourceHealth::new("pbx2", "ami");
        let link = SourceHealth::new("cti-link", "esl");
        health.register(pbx.clone());
        health.register(link.clone());
        (health, pbx, link)
    };

    let (health, pbx, link) = sources();
    pbx.set_connected(true);
    link.set_connected(true);
    let mut run = start_watched(&cfg, at("08:00:00"), health);
    feed(&mut run, [tick("08:00:00")]);
    pbx.set_connected(false);
    pbx.set_error("connection reset by peer");
    feed(&mut run, [tick("09:25:00")]);
    pbx.set_connected(true);
    feed(&mut run, [tick("09:28:00")]);
    link.set_connected(false);
    feed(&mut run, [tick("10:00:00"), tick("10:30:00")]);
    // Killed: no on_stop.
    drop(run);

    // The new process: PBX 2 connects at once, the link only at 10:50.
    let (health, pbx, link) = sources();
    pbx.set_connected(true);
    let mut run = start_watched(&cfg, at("10:45:00"), health);
    feed(&mut run, [tick("10:45:00")]);
    link.set_connected(true);
    feed(&mut run, [tick("10:50:00"), tick("12:05:00")]);
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 1, "{hs:#?}");
    let ts = |t: &str| serde_json::json!(at(t).rfc3339());
    assert_eq!(
        serde_json::json!(hs[0].source_outages),
        serde_json::json!([
            {"source": "pbx2", "from": ts("09:25:00"), "to": ts("09:28:00"),
             "error": "connection reset by peer"},
            {"source": "cti-link", "from": ts("10:00:00"), "to": ts("10:50:00")},
        ]),
        "{:#?}",
        hs[0]
    );
}

/// The hotline desk is unmanned 09:00-09:30, and again from 09:50; the
/// daemon is killed at 10:00 with that breach open and started again at
/// 10:15; a1 is back at 10:20. The early shift's record, written by the
/// second process, has both breaches, the second one whole.
#[test]
fn a_restart_mid_shift_keeps_the_post_breaches_before_it() {
    use acdmon::event::AgentStatus::{Available, LoggedOut};
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[posts]]\nname = \"hotline-desk\"\na = [\"a1\"]\nb = [\"a2\"]\nqueues = [\"hotline\"]\ngrace = \"1m\"\n",
        config(dir.path())
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let state = |t: &str, agent: &str, status: acdmon::event::AgentStatus| {
        ev(
            at(t),
            EventKind::AgentState {
                agent: agent.into(),
                status,
                reason: None,
                queue: None,
            },
        )
    };
    let join = |t: &str| {
        ev(
            at(t),
            EventKind::AgentJoinedQueue {
                agent: "a1".into(),
                queue: "hotline".into(),
            },
        )
    };
    let mut run = start(&cfg, at("08:00:00"));
    feed(
        &mut run,
        [
            join("08:00:00"),
            state("08:00:00", "a1", Available),
            state("09:00:00", "a1", LoggedOut),
            state("09:30:00", "a1", Available),
            state("09:50:00", "a1", LoggedOut),
        ],
    );
    run.driver.advance(at("10:00:00"));
    // Killed: no on_stop.
    drop(run);

    let mut run = start(&cfg, at("10:15:00"));
    feed(
        &mut run,
        [
            state("10:15:00", "a2", Available),
            join("10:20:00"),
            state("10:20:00", "a1", Available),
            state("12:05:00", "a1", Available),
        ],
    );
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 1, "{hs:#?}");
    let desk = hs[0].floor_rules.as_ref().expect("floor_rules")["posts"][0].clone();
    let ts = |t: &str| serde_json::json!(at(t).rfc3339());
    assert_eq!(
        desk["breaches"],
        serde_json::json!([{"start": ts("09:00:00"), "end": ts("09:30:00")},
                           {"start": ts("09:50:00"), "end": ts("10:20:00")}]),
        "{desk}"
    );
    assert_eq!(desk["unmanned_s"], 1800.0 + 1800.0);
    assert_eq!(desk["cover_at_end"], "a");
}

/// a1 is planned on the phone 09:00-16:00: three hours in the early shift,
/// four in the late one. Logged out 10:00-10:10 (600 s out) and 13:00-13:30
/// (1,800 s out). Each record's `floor_rules.adherence.shift` is that
/// shift's own adherence; `day` stays the day's totals so far.
#[test]
fn each_handover_gives_the_adherence_of_its_own_shift() {
    use acdmon::event::AgentStatus::{Available, LoggedOut};
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    std::fs::write(&plan, "a1,2026-11-23 09:00,2026-11-23 16:00,phone\n").unwrap();
    let text = format!(
        "{}\n[adherence]\nschedule = \"{}\"\n[[adherence.activities]]\nname = \"phone\"\ntolerance = \"1m\"\n",
        config(dir.path()),
        plan.display()
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let state = |t: &str, status: acdmon::event::AgentStatus| {
        ev(
            at(t),
            EventKind::AgentState {
                agent: "a1".into(),
                status,
                reason: None,
                queue: None,
            },
        )
    };
    let mut run = start(&cfg, at("08:55:00"));
    feed(
        &mut run,
        [
            ev(
                at("08:55:00"),
                EventKind::AgentJoinedQueue {
                    agent: "a1".into(),
                    queue: "hotline".into(),
                },
            ),
            state("08:55:00", Available),
            state("10:00:00", LoggedOut),
            state("10:10:00", Available),
            state("13:00:00", LoggedOut),
            state("13:30:00", Available),
            state("16:05:00", Available),
        ],
    );
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 2, "{hs:#?}");
    let adherence =
        |h: &Handover| h.floor_rules.as_ref().expect("floor_rules")["adherence"].clone();
    let row = |sched: f64, out: f64| {
        serde_json::json!([{"agent": "a1", "scheduled_s": sched, "out_s": out,
                            "adherence": (sched - out) / sched}])
    };
    let early = adherence(&hs[0]);
    assert_eq!(early["shift"], row(3.0 * 3600.0, 600.0), "{early}");
    let late = adherence(&hs[1]);
    assert_eq!(late["shift"], row(4.0 * 3600.0, 1800.0), "{late}");
    assert_eq!(late["day"][0]["scheduled_s"], 7.0 * 3600.0, "{late}");
    assert_eq!(late["day"][0]["out_s"], 2400.0, "{late}");
}

/// The same plan; the daemon is killed at 13:15 while a1 is logged out
/// (since 13:00) and started again at 13:20; a1 is back at 13:30. The late
/// shift's own adherence still counts from 12:00, as the base stored at the
/// shift's start says: the 20 minutes the daemon was down count neither as
/// scheduled nor as out, the 10 minutes after the restart count as out.
#[test]
fn a_restart_mid_shift_keeps_the_start_of_the_shifts_adherence() {
    use acdmon::event::AgentStatus::{Available, LoggedOut};
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    std::fs::write(&plan, "a1,2026-11-23 09:00,2026-11-23 16:00,phone\n").unwrap();
    let text = format!(
        "{}\n[adherence]\nschedule = \"{}\"\n[[adherence.activities]]\nname = \"phone\"\ntolerance = \"1m\"\n",
        config(dir.path()),
        plan.display()
    );
    let cfg = Config::parse("t.toml", &text).unwrap();
    let state = |t: &str, status: acdmon::event::AgentStatus| {
        ev(
            at(t),
            EventKind::AgentState {
                agent: "a1".into(),
                status,
                reason: None,
                queue: None,
            },
        )
    };
    let join = |t: &str| {
        ev(
            at(t),
            EventKind::AgentJoinedQueue {
                agent: "a1".into(),
                queue: "hotline".into(),
            },
        )
    };
    let mut run = start(&cfg, at("08:55:00"));
    feed(
        &mut run,
        [
            join("08:55:00"),
            state("08:55:00", Available),
            state("12:30:00", Available),
            state("13:00:00", LoggedOut),
        ],
    );
    run.driver.advance(at("13:15:00"));
    // Killed: no on_stop.
    drop(run);

    let mut run = start(&cfg, at("13:20:00"));
    feed(
        &mut run,
        [
            // The source's resync on connecting: a1 is logged out.
            state("13:20:00", LoggedOut),
            join("13:30:00"),
            state("13:30:00", Available),
            state("16:05:00", Available),
        ],
    );
    let store = finish(run);
    let hs = all_handovers(&store);
    assert_eq!(hs.len(), 2, "{hs:#?}");
    let late = hs[1].floor_rules.as_ref().expect("floor_rules")["adherence"].clone();
    let (sched, out) = (4.0 * 3600.0 - 20.0 * 60.0, 10.0 * 60.0);
    assert_eq!(
        late["shift"],
        serde_json::json!([{"agent": "a1", "scheduled_s": sched, "out_s": out,
                            "adherence": (sched - out) / sched}]),
        "{late}"
    );
}
