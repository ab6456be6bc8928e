//! The engine's owner: one thread that applies events in order, advances
//! event time, lets observers (the ladder, the interval history) look after
//! each event, and publishes snapshots and deltas. `replay` drives the same
//! [`Driver`] synchronously, so a replay and the daemon run the same code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::escalation::Entry;
use crate::event::{Event, EventKind};
use crate::sources::{Envelope, RejectCounter};
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
pub struct Driver {
    pub engine: Engine,
    pub observers: Vec<Box<dyn Observer>>,
    pub rejects: Arc<RejectCounter>,
}

impl Driver {
    pub fn new(engine: Engine, rejects: Arc<RejectCounter>) -> Self {
        Driver {
            engine,
            observers: Vec::new(),
            rejects,
        }
    }

    /// Applies one event on event time: first runs any observer deadline that
    /// falls before it, so a ladder stage fires at its due time, not at the
    /// next event.
    pub fn apply(&mut self, source: &str, ev: Event) {
        self.run_deadlines_until(ev.ts);
        let qi = queue_of(&ev.kind).and_then(|q| self.engine.find_queue(q));
        let has_queue = queue_of(&ev.kind).is_some();
        let queues_before = self.engine.queue_count();
        let kind = ev.kind.type_name();
        let r = self.engine.apply(ev);
        if let Err(rej) = r {
            self.rejects
                .record(source, &format_args!("engine ({kind})"), &rej);
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
                            driver.advance(Ts::now());
                        }
                    }
                    let entries = driver.before_publish();
                    if publisher.publish(&mut driver.engine, entries).is_some() {
                        lag.record(started.elapsed().as_secs_f64());
                    }
                    if stop {
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

fn apply_envelope(driver: &mut Driver, env: Envelope, stop: &mut bool) -> usize {
    match env {
        Envelope::Shutdown => {
            *stop = true;
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
    }
}
