//! Prometheus metrics (contract section 7), rendered from our own `/metrics`
//! route.
//!
//! Why it is built this way:
//! - One recorder per daemon, not the process-global one: tests run several
//!   daemons in one process, and each must export only its own figures. The
//!   engine thread installs it as its thread-local recorder (so the engine's
//!   `histogram!` calls land here); everything else registers on it directly.
//!   `acdmon run`/`demo` also install it globally, for stray `metrics::` calls.
//! - Gauges and counters are not computed here: they are copied from the
//!   published views (`acd_escalation_actions_total` is counted by the
//!   ladder itself, on the engine thread, when an action reaches its final
//!   result: a delta re-sends an entry whenever a result changes). One task follows the delta channel and updates cached
//!   handles of the queues that changed (a cached handle costs ~8 ns, a
//!   `gauge!` with runtime labels ~120 ns); counters are set with `absolute`
//!   from `QueueView.totals`, so a missed delta cannot make them drift.
//! - Histograms get explicit buckets: otherwise the exporter renders them as
//!   summaries (about 45x slower, and not aggregatable across daemons).
//! - `run_upkeep` runs on a timer: without it histogram samples pile up
//!   between scrapes when nobody scrapes.
//! - Per-agent series are off by default (10,000 agents x 6 states). When on,
//!   gauges get an idle timeout so the series of a state an agent left
//!   disappear; every cached queue handle is re-set on a full refresh well
//!   within that timeout, so queue series never expire.
//! - A ratio with a zero denominator is exported as NaN (the API's `null`):
//!   `acd_queue_service_level_ratio < 0.8` is then false, so an idle queue
//!   raises no alert.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::sync::broadcast::error::RecvError;

use crate::event::{AgentStatus, ExitReason};
use crate::sources::{HealthRegistry, RejectCounter};
use crate::state::{AgentView, Publisher, QueueView};

/// Buckets of `acd_queue_wait_seconds`: the common SL thresholds (10, 15, 20,
/// 30, 60 s) are bucket bounds, so SL can be computed from the histogram.
pub const WAIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
/// Buckets of `acd_event_publish_lag_seconds` (100 us to 1 s).
pub const LAG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Any other histogram (never a summary).
const DEFAULT_BUCKETS: &[f64] = &[0.001, 0.01, 0.1, 1.0, 10.0, 100.0];

/// How often histogram memory is compacted.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Per-agent gauges not touched for this long are dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Every queue's series is re-set from the snapshot this often (well inside
/// [`IDLE_TIMEOUT`]), and after the metrics task lagged.
const FULL_REFRESH_EVERY: Duration = Duration::from_secs(60);

const WINDOWS: [&str; 3] = ["rolling", "interval", "today"];
const QUEUE_STATES: [&str; 6] = [
    "logged_in",
    "available",
    "ringing",
    "on_call",
    "wrap_up",
    "paused",
];

/// A daemon's metrics: its recorder and what `/metrics` renders.
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Live `/ws` clients (the hub counts them; read at render time).
    pub ws_clients: AtomicI64,
    /// Clients that fell behind and were resynced with a fresh snapshot.
    pub ws_resyncs: Counter,
    /// Events accepted by `POST /api/v1/events` (exported as
    /// `acd_source_events_total{source="http"}` once there is one, so the
    /// no-events alert also sees HTTP feeds).
    pub http_events: std::sync::atomic::AtomicU64,
    per_agent: bool,
    /// The last rendering, shared by scrapes that arrive within
    /// [`RENDER_REUSE`] of it (and by concurrent ones: one renders, the
    /// others wait for it). Rendering 1,000 queues takes tens of ms, so an
    /// open `/metrics` hammered by many scrapers costs at most a few renders
    /// a second.
    last: tokio::sync::Mutex<Option<(std::time::Instant, axum::body::Bytes)>>,
}

/// How long one rendering of `/metrics` is served to later scrapes.
pub const RENDER_REUSE: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("per_agent", &self.per_agent)
            .finish_non_exhaustive()
    }
}

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect::<Vec<_>>(),
    )
}

fn opt(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}

/// Forwards to a shared recorder, so one recorder can be both a daemon's and
/// the process's global one.
struct Shared(Arc<PrometheusRecorder>);

impl Recorder for Shared {
    fn describe_counter(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_counter(k, u, d)
    }
    fn describe_gauge(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_gauge(k, u, d)
    }
    fn describe_histogram(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_histogram(k, u, d)
    }
    fn register_counter(&self, k: &Key, m: &Metadata<'_>) -> Counter {
        self.0.register_counter(k, m)
    }
    fn register_gauge(&self, k: &Key, m: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(k, m)
    }
    fn register_histogram(&self, k: &Key, m: &Metadata<'_>) -> metrics::Histogram {
        self.0.register_histogram(k, m)
    }
}

impl Metrics {
    pub fn new(per_agent: bool) -> Arc<Self> {
        let b = builder(per_agent).unwrap_or_else(|e| {
            // Only empty bucket lists fail, and ours are constants.
            tracing::error!(error = %e, "metrics buckets rejected; histograms fall back to summaries");
            PrometheusBuilder::new()
        });
        let recorder = Arc::new(b.build_recorder());
        let handle = recorder.handle();
        describe(&*recorder);
        let ws_resyncs =
            recorder.register_counter(&key("acd_websocket_resyncs_total", &[]), &meta());
        ws_resyncs.absolute(0);
        Arc::new(Metrics {
            recorder,
            handle,
            ws_clients: AtomicI64::new(0),
            ws_resyncs,
            http_events: std::sync::atomic::AtomicU64::new(0),
            per_agent,
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// The recorder, for the engine thread (`metrics::set_default_local_recorder`).
    pub fn recorder(&self) -> Arc<dyn Recorder + Send + Sync> {
        Arc::new(Shared(self.recorder.clone()))
    }

    /// Makes this daemon's recorder the process's global one too (first caller wins).
    pub fn install_global(&self) {
        if metrics::set_global_recorder(Shared(self.recorder.clone())).is_err() {
            tracing::debug!("a global metrics recorder is already installed");
        }
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &meta())
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &meta())
    }

    /// The text exposition, after refreshing what is read on demand (source
    /// health, rejections, WebSocket clients).
    pub fn render(&self, health: &HealthRegistry, rejects: &RejectCounter) -> String {
        for h in health.all() {
            let s: &str = &h.name;
            self.gauge("acd_source_connected", &[("source", s)])
                .set(h.connected() as u8 as f64);
            self.gauge("acd_source_synced", &[("source", s)])
                .set(h.synced() as u8 as f64);
            self.counter("acd_source_events_total", &[("source", s)])
                .absolute(h.events());
        }
        let http = self.http_events.load(Ordering::Relaxed);
        if http > 0 {
            self.counter("acd_source_events_total", &[("source", "http")])
                .absolute(http);
        }
        for (source, reason, n) in rejects.all() {
            self.counter(
                "acd_source_events_rejected_total",
                &[("source", &source), ("reason", reason)],
            )
            .absolute(n);
        }
        self.gauge("acd_websocket_clients", &[])
            .set(self.ws_clients.load(Ordering::Relaxed).max(0) as f64);
        self.handle.render()
    }

    /// [`Metrics::render`] for the `/metrics` route: off the async workers,
    /// one at a time, reused for [`RENDER_REUSE`].
    pub async fn render_shared(
        self: &Arc<Self>,
        health: &Arc<HealthRegistry>,
        rejects: &Arc<RejectCounter>,
    ) -> Option<axum::body::Bytes> {
        let mut last = self.last.lock().await;
        if let Some((at, text)) = last.as_ref()
            && at.elapsed() < RENDER_REUSE
        {
            return Some(text.clone());
        }
        let (m, h, r) = (self.clone(), health.clone(), rejects.clone());
        let text = axum::body::Bytes::from(
            tokio::task::spawn_blocking(move || m.render(&h, &r))
                .await
                .ok()?,
        );
        *last = Some((std::time::Instant::now(), text.clone()));
        Some(text)
    }

    /// Compacts histogram memory and drops idle series.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn builder(per_agent: bool) -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    let mut b = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("acd_queue_wait_seconds".into()), WAIT_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("acd_event_publish_lag_seconds".into()),
            LAG_BUCKETS,
        )?
        .set_buckets(DEFAULT_BUCKETS)?;
    if per_agent {
        b = b.idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(IDLE_TIMEOUT));
    }
    Ok(b)
}

fn describe(r: &dyn Recorder) {
    let g =
        |n: &'static str, u: Option<Unit>, d: &'static str| r.describe_gauge(n.into(), u, d.into());
    g(
        "acd_queue_waiting_calls",
        Some(Unit::Count),
        "Calls waiting in the queue now.",
    );
    g(
        "acd_queue_longest_wait_seconds",
        Some(Unit::Seconds),
        "Wait so far of the oldest waiting call.",
    );
    g(
        "acd_queue_agents",
        Some(Unit::Count),
        "Queue members by state (logged_in counts every member not logged out).",
    );
    g(
        "acd_queue_service_level_ratio",
        None,
        "Service level (the queue's formula) per window; NaN when nothing left the queue in the window.",
    );
    g(
        "acd_queue_asa_seconds",
        Some(Unit::Seconds),
        "Average speed of answer per window; NaN when nothing was answered.",
    );
    g(
        "acd_queue_abandon_ratio",
        None,
        "Abandoned / offered per window; NaN when nothing was offered.",
    );
    g(
        "acd_queue_required_agents",
        Some(Unit::Count),
        "Erlang C agents needed to meet the queue's SL target (rolling window); NaN when unknown.",
    );
    g(
        "acd_queue_service_level_target_ratio",
        None,
        "The queue's configured service-level target (sl_target), for alert rules.",
    );
    g(
        "acd_queue_service_level_threshold_seconds",
        Some(Unit::Seconds),
        "The queue's configured SL threshold T (sl_threshold).",
    );
    g(
        "acd_escalation_stage",
        None,
        "Active escalation stage of the queue (0: none).",
    );
    g(
        "acd_source_connected",
        None,
        "1 when the source is connected.",
    );
    g(
        "acd_source_synced",
        None,
        "1 when the source is connected and has finished its resync.",
    );
    g(
        "acd_websocket_clients",
        Some(Unit::Count),
        "Connected /ws clients.",
    );
    g(
        "acd_agent_state",
        None,
        "1 for the agent's current state (per-agent series; off unless per_agent_metrics).",
    );
    let c = |n: &'static str, d: &'static str| {
        r.describe_counter(n.into(), Some(Unit::Count), d.into())
    };
    c(
        "acd_queue_calls_offered_total",
        "Calls that left the queue (answered, abandoned or exited) since start.",
    );
    c(
        "acd_queue_calls_answered_total",
        "Calls answered since start.",
    );
    c(
        "acd_queue_calls_answered_in_sl_total",
        "Calls answered within the SL threshold since start.",
    );
    c(
        "acd_queue_calls_abandoned_total",
        "Calls abandoned since start.",
    );
    c(
        "acd_queue_calls_exited_total",
        "Calls that exited the queue unanswered, by reason, since start.",
    );
    c(
        "acd_escalation_actions_total",
        "Escalation actions by queue, stage name and final result (counted by the ladder).",
    );
    c(
        "acd_source_events_total",
        "Events received from the source.",
    );
    c(
        "acd_source_events_rejected_total",
        "Input rejected (counted and skipped), by source and reason.",
    );
    c(
        "acd_websocket_resyncs_total",
        "/ws clients that fell behind and were sent a fresh snapshot.",
    );
    r.describe_histogram(
        "acd_queue_wait_seconds".into(),
        Some(Unit::Seconds),
        "Wait of answered calls.".into(),
    );
    r.describe_histogram(
        "acd_event_publish_lag_seconds".into(),
        Some(Unit::Seconds),
        "From an event batch (or tick) reaching the engine to its snapshot being published.".into(),
    );
}

/// Cached handles of one queue's series.
struct QueueSeries {
    waiting: Gauge,
    longest_wait: Gauge,
    agents: [Gauge; 6],
    service_level: [Gauge; 3],
    asa: [Gauge; 3],
    abandon: [Gauge; 3],
    required: Gauge,
    target: Gauge,
    threshold: Gauge,
    stage: Gauge,
    offered: Counter,
    answered: Counter,
    answered_in_sl: Counter,
    abandoned: Counter,
    exited: Vec<(&'static str, Counter)>,
}

impl QueueSeries {
    fn new(m: &Metrics, q: &str) -> Self {
        // The queue label is shared (`Arc<str>`) and the others are static:
        // the exporter clones every key on each render, and shared labels
        // make those clones allocation-free.
        let q = SharedString::from(Arc::<str>::from(q));
        let one = |name: &'static str| Key::from_parts(name, vec![Label::new("queue", q.clone())]);
        let two = |name: &'static str, k: &'static str, v: &'static str| {
            Key::from_parts(name, vec![Label::new("queue", q.clone()), Label::new(k, v)])
        };
        let g = |k: Key| m.recorder.register_gauge(&k, &meta());
        let c = |k: Key| m.recorder.register_counter(&k, &meta());
        let per_window = |name: &'static str| WINDOWS.map(|w| g(two(name, "window", w)));
        QueueSeries {
            waiting: g(one("acd_queue_waiting_calls")),
            longest_wait: g(one("acd_queue_longest_wait_seconds")),
            agents: QUEUE_STATES.map(|s| g(two("acd_queue_agents", "state", s))),
            service_level: per_window("acd_queue_service_level_ratio"),
            asa: per_window("acd_queue_asa_seconds"),
            abandon: per_window("acd_queue_abandon_ratio"),
            required: g(one("acd_queue_required_agents")),
            target: g(one("acd_queue_service_level_target_ratio")),
            threshold: g(one("acd_queue_service_level_threshold_seconds")),
            stage: g(one("acd_escalation_stage")),
            offered: c(one("acd_queue_calls_offered_total")),
            answered: c(one("acd_queue_calls_answered_total")),
            answered_in_sl: c(one("acd_queue_calls_answered_in_sl_total")),
            abandoned: c(one("acd_queue_calls_abandoned_total")),
            exited: ExitReason::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str(),
                        c(two("acd_queue_calls_exited_total", "reason", r.as_str())),
                    )
                })
                .collect(),
        }
    }

    fn set(&self, v: &QueueView) {
        self.waiting.set(v.waiting as f64);
        self.longest_wait.set(v.longest_wait_s);
        let a = &v.agents;
        for (g, n) in self.agents.iter().zip([
            a.logged_in,
            a.available,
            a.ringing,
            a.on_call,
            a.wrap_up,
            a.paused,
        ]) {
            g.set(n as f64);
        }
        let w = &v.windows;
        for (i, win) in [&w.rolling, &w.interval, &w.today].into_iter().enumerate() {
            self.service_level[i].set(opt(win.service_level));
            self.asa[i].set(opt(win.asa_s));
            self.abandon[i].set(opt(win.abandon_rate));
        }
        self.required.set(opt(v.required_agents.map(|n| n as f64)));
        self.target.set(v.sl_target);
        self.threshold.set(v.sl_threshold_s);
        self.stage
            .set(v.escalation.as_ref().map(|e| e.stage as f64).unwrap_or(0.0));
        let t = &v.totals;
        self.offered.absolute(t.offered);
        self.answered.absolute(t.answered);
        self.answered_in_sl.absolute(t.answered_in_sl);
        self.abandoned.absolute(t.abandoned);
        for (reason, c) in &self.exited {
            c.absolute(t.exited.get(reason).copied().unwrap_or(0));
        }
    }
}

/// Follows the published state and keeps the series up to date.
struct Follower {
    metrics: Arc<Metrics>,
    queues: HashMap<String, QueueSeries>,
    /// Last exported state per agent (per-agent series only).
    agents: HashMap<String, AgentStatus>,
    seq: u64,
}

impl Follower {
    fn queue(&mut self, v: &QueueView) {
        if !self.queues.contains_key(&v.queue) {
            let s = QueueSeries::new(&self.metrics, &v.queue);
            self.queues.insert(v.queue.clone(), s);
        }
        if let Some(s) = self.queues.get(&v.queue) {
            s.set(v);
        }
    }

    fn agent(&mut self, v: &AgentView, full: bool) {
        if !self.metrics.per_agent {
            return;
        }
        let m = &self.metrics;
        match self.agents.insert(v.agent.clone(), v.state) {
            Some(old) if old == v.state && !full => return,
            Some(old) if old != v.state => {
                // Left at 0; the idle timeout removes it later.
                m.gauge(
                    "acd_agent_state",
                    &[("agent", &v.agent), ("state", status_name(old))],
                )
                .set(0.0);
            }
            _ => {}
        }
        m.gauge(
            "acd_agent_state",
            &[("agent", &v.agent), ("state", status_name(v.state))],
        )
        .set(1.0);
    }

    fn full(&mut self, p: &Publisher) {
        let snap = p.snapshot();
        for q in &snap.queues {
            self.queue(q);
        }
        for a in &snap.agents {
            self.agent(a, true);
        }
        self.seq = self.seq.max(snap.seq);
    }
}

fn status_name(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::LoggedOut => "logged_out",
        AgentStatus::Available => "available",
        AgentStatus::Ringing => "ringing",
        AgentStatus::OnCall => "on_call",
        AgentStatus::WrapUp => "wrap_up",
        AgentStatus::Paused => "paused",
    }
}

/// Starts the task that keeps queue series current, and the upkeep timer.
pub fn spawn(metrics: Arc<Metrics>, publisher: Arc<Publisher>) {
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(UPKEEP_EVERY);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            let m = upkeep.clone();
            // Upkeep walks every histogram; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || m.run_upkeep()).await;
        }
    });
    tokio::spawn(async move {
        let mut rx = publisher.subscribe();
        let mut f = Follower {
            metrics,
            queues: HashMap::new(),
            agents: HashMap::new(),
            seq: 0,
        };
        f.full(&publisher);
        let mut refresh = tokio::time::interval(FULL_REFRESH_EVERY);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.tick().await;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(d) => {
                        if d.seq > f.seq {
                            for q in &d.queues {
                                f.queue(q);
                            }
                            for a in &d.agents {
                                f.agent(a, false);
                            }
                            f.seq = d.seq;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "metrics fell behind the engine; refreshing from the snapshot");
                        f.full(&publisher);
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = refresh.tick() => f.full(&publisher),
            }
        }
    });
}
