//! The engine's owner: one thread that applies events in order, advances
//! event time, lets observers (the ladder, the interval history) look after
//! each event, and publishes snapshots and deltas. `replay` drives the same
//! [`Driver`] synchronously, so a replay and the daemon run the same code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::escalation::Entry;
use crate::event::{Event, EventKind};
use crate::sources::{Envelope, Reject, RejectCounter, RejectReason};
use crate::state::{Engine, IntervalRecord, Publisher};
use crate::time::Ts;

/// Something that watches the engine on event time: the escalation ladder,
/// the interval history writer. Runs on the engine's thread; must not block
/// for long (hand slow work to a task).
pub trait Observer: Send {
    /// After each applied event, with the queue it touched.
    fn after_event(&mut self, _engine: &mut Engine, _queue: Option<usize>) {}
    /// After a batch of events or a clock tick, before publishing. Returns
    /// new escalation log entries to publish.
    fn before_publish(&mut self, _engine: &mut Engine) -> Vec<Arc<Entry>> {
        Vec::new()
    }
    /// Intervals that closed.
    fn intervals_closed(&mut self, _records: &[IntervalRecord]) {}
    /// A reloaded configuration, after the engine has taken it.
    fn reconfigure(&mut self, _engine: &mut Engine, _config: &crate::config::Config) {}
    /// The engine is stopping (a clean shutdown, or every source closed):
    /// last chance to save what it holds.
    fn on_stop(&mut self, _engine: &mut Engine) {}
    /// The next event time at which this observer wants to run even if no
    /// event arrives (a ladder `for` clock running out). Replay advances the
    /// clock to it between events.
    fn next_deadline(&self) -> Option<Ts> {
        None
    }
}

/// The engine plus its observers: apply, advance, observe.
///
/// Every source's events pass [`Driver::apply`], so it is the one gate
/// where event time is bounded: a producer's clock is an input, and one
/// wrong clock must not move the engine's (which every queue's waits,
/// windows and intervals read).
pub struct Driver {
    pub engine: Engine,
    pub observers: Vec<Box<dyn Observer>>,
    pub rejects: Arc<RejectCounter>,
    /// Live daemon: events more than this many ms ahead of [`Driver::set_clock`]
    /// are rejected. `None` (replay): the events are the clock.
    pub max_future_skew_ms: Option<i64>,
    /// The daemon's clock as of the batch being applied (live only).
    clock: Option<Ts>,
    /// Cached "too old" floor: (valid from, valid until, start of the
    /// previous local day).
    too_old: (Ts, Ts, Ts),
}

impl Driver {
    pub fn new(engine: Engine, rejects: Arc<RejectCounter>) -> Self {
        Driver {
            engine,
            observers: Vec::new(),
            rejects,
            max_future_skew_ms: None,
            clock: None,
            too_old: (Ts::NEVER, Ts::ZERO, Ts::ZERO),
        }
    }

    /// The daemon's wall clock, read by the engine loop once per batch: the
    /// reference for `max_future_skew` and for "too old".
    pub fn set_clock(&mut self, now: Ts) {
        self.clock = Some(now);
    }

    /// Decides whether an event's time can be used, and pins it: outside
    /// the accepted years (`ts_out_of_range`), more than the skew ahead of
    /// the daemon's clock (`ts_in_future`), or before the start of the
    /// previous local day (`ts_too_old`) it is rejected. An event ahead of
    /// the daemon's clock by less than the skew is applied at the daemon's
    /// clock, so the engine's clock never runs ahead of it. Resync join
    /// times are kept between the floor and the event.
    fn admit(&mut self, ev: &mut Event) -> Result<(), Reject> {
        if let Err(e) = Ts::event_time(ev.ts.0) {
            return Err(crate::sources::json::decode::time_reject(e));
        }
        let reference = self
            .clock
            .unwrap_or(self.engine.now())
            .max(self.engine.now());
        if let (Some(skew), Some(clock)) = (self.max_future_skew_ms, self.clock) {
            if ev.ts.0 > clock.0.saturating_add(skew) {
                return Err(Reject::new(
                    RejectReason::TsInFuture,
                    format!(
                        "{} is {:.1} s ahead of the daemon's clock {} (max_future_skew {} s); a producer's clock is wrong",
                        ev.ts,
                        ev.ts.since(clock) as f64 / 1000.0,
                        clock,
                        skew / 1000
                    ),
                ));
            }
            if ev.ts > reference {
                ev.ts = reference;
            }
        }
        let floor = self.too_old_floor(reference);
        if ev.ts < floor {
            return Err(Reject::new(
                RejectReason::TsTooOld,
                format!(
                    "{} is before the start of the previous day ({floor}); a producer's clock is wrong or the event is stale",
                    ev.ts
                ),
            ));
        }
        if let EventKind::QueueResync { callers, .. } = &mut ev.kind {
            for c in callers {
                c.joined = c.joined.clamp(floor, ev.ts);
            }
        }
        Ok(())
    }

    /// The start of the local day before the one containing `now`.
    fn too_old_floor(&mut self, now: Ts) -> Ts {
        let (from, until, floor) = self.too_old;
        if now >= from && now < until {
            return floor;
        }
        let zone = self.engine.zone().clone();
        let (start, end) = crate::state::window::day_bounds(now, &zone);
        let (prev, _) = crate::state::window::day_bounds(start.plus_ms(-1), &zone);
        self.too_old = (start, end, prev);
        prev
    }

    /// Applies one event on event time: first runs any observer deadline that
    /// falls before it, so a ladder stage fires at its due time, not at the
    /// next event. An event whose time cannot be used is counted and skipped
    /// (see `admit`).
    pub fn apply(&mut self, source: &str, ev: Event) {
        self.apply_checked(source, ev);
    }

    /// [`Driver::apply`], returning the reason when the event was refused
    /// (its time, or the engine; already counted and logged).
    pub fn apply_checked(&mut self, source: &str, mut ev: Event) -> Option<Reject> {
        if let Err(rej) = self.admit(&mut ev) {
            self.rejects.record(
                source,
                &format_args!("engine ({})", ev.kind.type_name()),
                &rej,
            );
            return Some(rej);
        }
        self.run_deadlines_until(ev.ts);
        let qi = queue_of(&ev.kind).and_then(|q| self.engine.find_queue(q));
        let has_queue = queue_of(&ev.kind).is_some();
        let queues_before = self.engine.queue_count();
        let kind = ev.kind.type_name();
        let r = self.engine.apply(ev);
        if let Err(rej) = &r {
            self.rejects
                .record(source, &format_args!("engine ({kind})"), rej);
        }
        // A queue first seen in this event was created last.
        let qi = qi.or_else(|| {
            (has_queue && self.engine.queue_count() > queues_before)
                .then(|| self.engine.queue_count() - 1)
        });
        for o in &mut self.observers {
            o.after_event(&mut self.engine, qi);
        }
        self.flush_intervals();
        r.err()
    }

    /// Moves the clock to `now`, running observer deadlines on the way.
    pub fn advance(&mut self, now: Ts) {
        self.run_deadlines_until(now);
        self.engine.tick(now);
        for o in &mut self.observers {
            o.after_event(&mut self.engine, None);
        }
        self.flush_intervals();
    }

    fn run_deadlines_until(&mut self, t: Ts) {
        // Bounded: each deadline must move forward, or we stop.
        for _ in 0..10_000 {
            let next = self
                .observers
                .iter()
                .filter_map(|o| o.next_deadline())
                .min();
            match next {
                Some(d) if d <= t && d > self.engine.now() => {
                    self.engine.tick(d);
                    for o in &mut self.observers {
                        o.after_event(&mut self.engine, None);
                    }
                    self.flush_intervals();
                }
                Some(d) if d <= t && d == self.engine.now() => {
                    for o in &mut self.observers {
                        o.after_event(&mut self.engine, None);
                    }
                    if self
                        .observers
                        .iter()
                        .filter_map(|o| o.next_deadline())
                        .min()
                        == Some(d)
                    {
                        break;
                    }
                }
                _ => break,
            }
        }
    }

    fn flush_intervals(&mut self) {
        let closed = self.engine.drain_closed();
        if !closed.is_empty() {
            for o in &mut self.observers {
                o.intervals_closed(&closed);
            }
        }
    }

    /// A reloaded configuration: the engine first (queue settings, agent
    /// directory), then the observers (ladders, schedules), on the engine's
    /// clock like everything else.
    pub fn reconfigure(&mut self, config: &crate::config::Config) {
        // Only a live daemon bounds skew (replay's clock is the file).
        if self.max_future_skew_ms.is_some() {
            self.max_future_skew_ms = Some(config.max_future_skew_ms);
        }
        self.engine.reconfigure(config.engine_config());
        for o in &mut self.observers {
            o.reconfigure(&mut self.engine, config);
        }
        self.flush_intervals();
    }

    /// Lets every observer see the engine a last time (see [`Observer::on_stop`]).
    pub fn stop(&mut self) {
        for o in &mut self.observers {
            o.on_stop(&mut self.engine);
        }
    }

    pub fn before_publish(&mut self) -> Vec<Arc<Entry>> {
        let mut out = Vec::new();
        for o in &mut self.observers {
            out.extend(o.before_publish(&mut self.engine));
        }
        out
    }
}

fn queue_of(k: &EventKind) -> Option<&str> {
    match k {
        EventKind::CallEnqueued { queue, .. }
        | EventKind::CallAnswered { queue, .. }
        | EventKind::CallAbandoned { queue, .. }
        | EventKind::CallExited { queue, .. }
        | EventKind::CallCompleted { queue, .. }
        | EventKind::AgentJoinedQueue { queue, .. }
        | EventKind::AgentLeftQueue { queue, .. }
        | EventKind::AgentQueuePause { queue, .. }
        | EventKind::QueueResync { queue, .. } => Some(queue),
        EventKind::AgentState { queue, .. } => queue.as_deref(),
    }
}

/// How often the live engine advances to wall time when no event arrives.
pub const TICK: Duration = Duration::from_millis(100);
/// Most events applied before publishing, so a flood cannot starve readers.
pub const MAX_BATCH: usize = 8192;

/// Runs the live engine on its own thread until every inbox sender is gone.
/// `recorder`, when given, receives the engine thread's metrics (the
/// daemon's own recorder rather than the process-global one).
pub fn spawn_engine(
    mut driver: Driver,
    mut rx: mpsc::Receiver<Envelope>,
    publisher: Arc<Publisher>,
    recorder: Option<Arc<dyn metrics::Recorder + Send + Sync>>,
    watch: Arc<crate::watchdog::EngineWatch>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("acdmon-engine".into())
        .spawn(move || {
            let _metrics = recorder
                .as_deref()
                .map(|r| metrics::set_default_local_recorder(r));
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the engine runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let lag = metrics::histogram!("acd_event_publish_lag_seconds");
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    let started;
                    let mut stop = false;
                    tokio::select! {
                        env = rx.recv() => {
                            let Some(env) = env else { break };
                            started = Instant::now();
                            driver.set_clock(Ts::now());
                            let mut n = apply_envelope(&mut driver, env, &mut stop);
                            while n < MAX_BATCH && !stop {
                                match rx.try_recv() {
                                    Ok(env) => n += apply_envelope(&mut driver, env, &mut stop),
                                    Err(_) => break,
                                }
                            }
                        }
                        _ = tick.tick() => {
                            started = Instant::now();
                            let now = Ts::now();
                            driver.set_clock(now);
                            driver.advance(now);
                        }
                    }
                    let entries = driver.before_publish();
                    if publisher.publish(&mut driver.engine, entries).is_some() {
                        lag.record(started.elapsed().as_secs_f64());
                    }
                    watch.batch_done(rx.is_empty());
                    if stop {
                        drain(&mut driver, &mut rx, &publisher).await;
                        driver.stop();
                        tracing::info!("engine stopped: shutdown");
                        return;
                    }
                }
                driver.stop();
                tracing::info!("engine stopped: all sources closed");
            });
        })
        .unwrap_or_else(|e| panic!("cannot spawn the engine thread: {e}"))
}

/// After a shutdown: closes the inbox to new entries (a sender then sees
/// the engine as stopped) and applies every entry already in it, so nothing
/// whose send succeeded is lost, then publishes a last time.
async fn drain(driver: &mut Driver, rx: &mut mpsc::Receiver<Envelope>, publisher: &Publisher) {
    rx.close();
    let mut stop = true;
    let mut n = 0usize;
    while let Some(env) = rx.recv().await {
        n += apply_envelope(driver, env, &mut stop);
    }
    if n > 0 {
        tracing::info!(
            events = n,
            "engine stopping: applied what was still in its inbox"
        );
    }
    let entries = driver.before_publish();
    publisher.publish(&mut driver.engine, entries);
}

fn apply_envelope(driver: &mut Driver, env: Envelope, stop: &mut bool) -> usize {
    match env {
        Envelope::Reconfigure { config, done } => {
            driver.reconfigure(&config);
            let positions = config
                .sources
                .iter()
                .filter_map(|s| Some((s.name.clone(), driver.engine.position(&s.name)?)))
                .collect();
            let _ = done.send(positions);
            1
        }
        Envelope::Shutdown => {
            *stop = true;
            0
        }
        Envelope::SiteFreshness { site, stale } => {
            driver.engine.set_site_stale(&site, stale);
            0
        }
        Envelope::Event { source, event } => {
            driver.apply(&source, event);
            1
        }
        Envelope::Batch { source, events } => {
            let n = events.len();
            for ev in events {
                driver.apply(&source, ev);
            }
            n
        }
        Envelope::Positioned {
            source,
            events,
            position,
        } => {
            let n = events.len();
            for ev in events {
                driver.apply(&source, ev);
            }
            driver.engine.set_position(&source, position);
            n.max(1)
        }
        Envelope::Awaited {
            source,
            events,
            position,
            awaiting,
        } => {
            let n = events.len();
            let refused: Vec<_> = events
                .into_iter()
                .enumerate()
                .filter_map(|(i, ev)| driver.apply_checked(&source, ev).map(|r| (i, r)))
                .collect();
            driver.engine.set_position(&source, position);
            crate::sources::Awaiter::answer(awaiting, &refused);
            n.max(1)
        }
        Envelope::Checked {
            source,
            events,
            verdict,
        } => {
            let n = events.len();
            let refused: Vec<_> = events
                .into_iter()
                .enumerate()
                .filter_map(|(i, ev)| driver.apply_checked(&source, ev).map(|r| (i, r)))
                .collect();
            // The sender may have gone (client disconnected): nothing to do.
            let _ = verdict.send(refused);
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ResyncCaller;
    use crate::state::EngineConfig;

    const T0: i64 = 1_795_424_400_000; // 2026-11-23T09:00:00Z, a Monday

    fn driver() -> Driver {
        Driver::new(
            Engine::starting_at(EngineConfig::default(), Ts(T0)),
            Arc::new(RejectCounter::default()),
        )
    }

    fn enqueue(ts: i64, call: &str) -> Event {
        Event {
            ts: Ts(ts),
            kind: EventKind::CallEnqueued {
                call: call.into(),
                queue: "q".into(),
                caller: None,
                priority: None,
            },
        }
    }

    /// Whatever the source (queue_log's `Ts::from_secs` saturates a huge
    /// epoch to `i64::MAX`; ESL and AMI carry epochs from the wire), the
    /// engine never sees a time outside the accepted years.
    #[test]
    fn no_source_reaches_the_sentinel() {
        let mut d = driver();
        for ts in [
            Ts::NEVER.0,
            Ts::from_secs(i64::MAX / 10).0,
            i64::MIN,
            0,
            Ts::LATEST.0,
        ] {
            d.apply("queue_log", enqueue(ts, "c"));
        }
        assert_eq!(d.rejects.by_reason().get("ts_out_of_range"), Some(&5));
        assert_eq!(d.engine.now(), Ts(T0));
        assert_eq!(d.engine.events_applied(), 0);
        d.apply("queue_log", enqueue(T0 + 1_000, "c"));
        assert_eq!(d.engine.events_applied(), 1);
    }

    #[test]
    fn the_daemons_clock_bounds_the_future_and_yesterday_bounds_the_past() {
        let mut d = driver();
        d.max_future_skew_ms = Some(300_000);
        d.set_clock(Ts(T0));
        d.apply("ami", enqueue(T0 + 300_001, "far"));
        d.apply("ami", enqueue(T0 + 60_000, "near"));
        // Within the skew: applied, at the daemon's clock.
        assert_eq!(d.engine.now(), Ts(T0));
        let q = d.engine.find_queue("q").unwrap();
        assert_eq!(d.engine.queue(q).waiting.get("near"), Some(&Ts(T0)));
        // Yesterday 00:00 UTC is still accepted; a millisecond before is not.
        let yesterday = T0 - 9 * 3_600_000 - 86_400_000;
        d.apply("ami", enqueue(yesterday, "yesterday"));
        d.apply("ami", enqueue(yesterday - 1, "older"));
        let by = d.rejects.by_reason();
        assert_eq!(by.get("ts_in_future"), Some(&1));
        assert_eq!(by.get("ts_too_old"), Some(&1));
        assert_eq!(d.engine.queue(q).waiting.len(), 2);
    }

    #[test]
    fn replay_is_its_own_clock_and_resync_join_times_are_kept_sane() {
        let mut d = driver();
        // No skew in replay: a day later in the file is just later.
        d.apply("file", enqueue(T0 + 86_400_000, "tomorrow"));
        assert_eq!(d.engine.now(), Ts(T0 + 86_400_000));
        let now = T0 + 86_400_000;
        d.apply(
            "esl",
            Event {
                ts: Ts(now),
                kind: EventKind::QueueResync {
                    queue: "r".into(),
                    callers: vec![
                        ResyncCaller {
                            call: "ahead".into(),
                            joined: Ts(now + 3_600_000),
                        },
                        ResyncCaller {
                            call: "epoch".into(),
                            joined: Ts(0),
                        },
                    ],
                    members: Vec::new(),
                },
            },
        );
        let r = d.engine.find_queue("r").unwrap();
        let w = &d.engine.queue(r).waiting;
        assert_eq!(w.get("ahead"), Some(&Ts(now)));
        // Joined no earlier than the start of the previous day.
        assert_eq!(w.get("epoch"), Some(&Ts(T0 - 9 * 3_600_000)));
    }
}
