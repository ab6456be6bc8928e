//! Prometheus metrics (contract section 7), rendered from our own `/metrics`
//! route.
//!
//! Why it is built this way:
//! - The per-queue series (and per-agent ones, when turned on) are written
//!   from the latest published snapshot by [`super::exposition`]: they are
//!   already computed there, and one snapshot makes a scrape consistent.
//!   Everything else goes through the `metrics` facade and this daemon's
//!   `metrics-exporter-prometheus` recorder: source health and events,
//!   rejections, WebSocket clients and resyncs, `acd_escalation_actions_total`
//!   (counted by the ladder when an action reaches its final result) and the
//!   `acd_event_publish_lag_seconds` histogram (recorded by the engine thread).
//! - One recorder per daemon, not the process-global one: tests run several
//!   daemons in one process, and each must export only its own figures. The
//!   engine thread installs it as its thread-local recorder; `acdmon
//!   run`/`demo` also install it globally, for stray `metrics::` calls.
//! - Histograms get explicit buckets: otherwise the exporter renders them as
//!   summaries (about 45x slower, and not aggregatable across daemons).
//! - `run_upkeep` runs on a timer: without it histogram samples pile up
//!   between scrapes when nobody scrapes.
//! - A ratio with a zero denominator is exported as NaN (the API's `null`):
//!   `acd_queue_service_level_ratio < 0.8` is then false, so an idle queue
//!   raises no alert.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::sources::{HealthRegistry, RejectCounter};
use crate::state::Publisher;
pub use crate::state::WAIT_BUCKETS;
use crate::time::Ts;

/// Buckets of `acd_event_publish_lag_seconds` (100 us to 1 s).
pub const LAG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Any other histogram (never a summary).
const DEFAULT_BUCKETS: &[f64] = &[0.001, 0.01, 0.1, 1.0, 10.0, 100.0];

/// How often histogram memory is compacted.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

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
    /// The engine's state as last set by [`Metrics::set_engine`] (stalled,
    /// lag in ms and backlog folded together), so a cached rendering is
    /// not reused across a change.
    engine_seen: std::sync::atomic::AtomicU64,
    /// The last rendering, shared by concurrent scrapes (one renders, the
    /// others wait for it) and reused by later ones while nothing it shows
    /// has changed (for at most [`RENDER_REUSE`]): a scrape never misses an
    /// applied event, and a scrape storm on a quiet floor costs nothing.
    last: tokio::sync::Mutex<Option<(std::time::Instant, Fingerprint, axum::body::Bytes)>>,
}

/// How long one rendering of `/metrics` may be served to later scrapes
/// when nothing it is made of has changed (the publish-lag histogram and
/// escalation action counters move with the snapshot's `seq`).
pub const RENDER_REUSE: Duration = Duration::from_millis(250);

/// What a rendering depends on, cheap to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    seq: u64,
    source_events: u64,
    sources_up: u64,
    rejected: u64,
    ws_clients: i64,
    http_events: u64,
    engine: u64,
    storage: Option<(bool, u64, u64)>,
}

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
        let b = builder().unwrap_or_else(|e| {
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
        let b = crate::build_info::get();
        recorder
            .register_gauge(
                &key(
                    "acd_build_info",
                    &[
                        ("version", b.version),
                        ("commit", b.commit),
                        ("build_date", b.build_date),
                    ],
                ),
                &meta(),
            )
            .set(1.0);
        Arc::new(Metrics {
            recorder,
            handle,
            ws_clients: AtomicI64::new(0),
            ws_resyncs,
            http_events: std::sync::atomic::AtomicU64::new(0),
            per_agent,
            engine_seen: std::sync::atomic::AtomicU64::new(0),
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

    /// The text exposition: the queue (and agent) series of the latest
    /// snapshot, then the recorder's, after refreshing what is read on demand
    /// (source health, rejections, WebSocket clients, the `boards`).
    pub fn render(
        &self,
        publisher: &Publisher,
        health: &HealthRegistry,
        rejects: &RejectCounter,
        boards: &Boards,
    ) -> String {
        for h in health.all() {
            let s: &str = &h.name;
            self.gauge("acd_source_connected", &[("source", s)])
                .set(h.connected() as u8 as f64);
            self.gauge("acd_source_synced", &[("source", s)])
                .set(h.synced() as u8 as f64);
            self.counter("acd_source_events_total", &[("source", s)])
                .absolute(h.events());
            if h.kind == "hep" {
                self.counter("acd_source_dropped_total", &[("source", s)])
                    .absolute(h.dropped());
            }
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
        if let Some(h) = &boards.storage {
            self.gauge("acd_storage_ok", &[])
                .set((h.ok() && h.pending_writes() == 0) as u8 as f64);
            self.counter("acd_storage_write_failures_total", &[])
                .absolute(h.failures());
            self.gauge("acd_escalation_pending_writes", &[])
                .set(h.pending_writes() as f64);
        }
        if let Some(board) = &boards.floor.posts {
            for p in &board.snapshot().posts {
                let l = [("post", p.post.as_str())];
                self.gauge("acd_post_covered", &l)
                    .set(p.covered as u8 as f64);
                self.gauge("acd_post_unmanned_seconds", &l)
                    .set(p.unmanned_s);
            }
        }
        if let Some(a) = &boards.floor.adherence {
            for q in a.seats().iter() {
                self.gauge("acd_queue_scheduled_seats", &[("queue", q.queue.as_str())])
                    .set(q.scheduled as f64);
            }
        }
        let snap = publisher.snapshot();
        if boards.floor.adherence.is_some() {
            let mut out_of: std::collections::BTreeMap<&str, u32> =
                snap.queues.iter().map(|q| (q.queue.as_str(), 0)).collect();
            for a in &snap.agents {
                if a.adherence.as_ref().is_some_and(|m| !m.in_adherence) {
                    for q in &a.queues {
                        *out_of.entry(q.as_str()).or_default() += 1;
                    }
                }
            }
            for (q, n) in out_of {
                self.gauge("acd_agents_out_of_adherence", &[("queue", q)])
                    .set(n as f64);
            }
        }
        let mut out = String::with_capacity(64 * 64 * (snap.queues.len() + 8));
        super::exposition::write_snapshot(&mut out, &snap, self.per_agent);
        out.push_str(&self.handle.render());
        declare_empty_families(&mut out);
        out
    }

    /// [`Metrics::render`] for the `/metrics` route: off the async workers,
    /// one at a time, reused for [`RENDER_REUSE`].
    pub async fn render_shared(
        self: &Arc<Self>,
        publisher: &Arc<Publisher>,
        health: &Arc<HealthRegistry>,
        rejects: &Arc<RejectCounter>,
        boards: Boards,
    ) -> Option<axum::body::Bytes> {
        let mut last = self.last.lock().await;
        let now = self.fingerprint(publisher, health, rejects, &boards);
        if let Some((at, seen, text)) = last.as_ref()
            && *seen == now
            && at.elapsed() < RENDER_REUSE
        {
            return Some(text.clone());
        }
        let (m, p, h, r) = (
            self.clone(),
            publisher.clone(),
            health.clone(),
            rejects.clone(),
        );
        let text = axum::body::Bytes::from(
            tokio::task::spawn_blocking(move || m.render(&p, &h, &r, &boards))
                .await
                .ok()?,
        );
        *last = Some((std::time::Instant::now(), now, text.clone()));
        Some(text)
    }

    fn fingerprint(
        &self,
        publisher: &Publisher,
        health: &HealthRegistry,
        rejects: &RejectCounter,
        boards: &Boards,
    ) -> Fingerprint {
        let sources = health.all();
        Fingerprint {
            seq: publisher.snapshot().seq,
            source_events: sources.iter().map(|h| h.events()).sum(),
            sources_up: sources
                .iter()
                .map(|h| h.connected() as u64 + ((h.synced() as u64) << 32))
                .sum(),
            rejected: rejects.all().iter().map(|r| r.2).sum(),
            ws_clients: self.ws_clients.load(Ordering::Relaxed),
            http_events: self.http_events.load(Ordering::Relaxed),
            engine: self.engine_seen.load(Ordering::Relaxed),
            storage: boards
                .storage
                .as_ref()
                .map(|h| (h.ok(), h.failures(), h.pending_writes())),
        }
    }

    /// The engine's health gauges, read at scrape time from its heartbeat:
    /// `acd_engine_stalled`, `acd_engine_lag_seconds`,
    /// `acd_engine_inbox_backlog`.
    pub fn set_engine(&self, st: &crate::watchdog::EngineStatus, backlog: usize) {
        // Lag moves every scrape; only whole seconds of it invalidate the
        // cached rendering (a healthy engine's lag is under 0.2 s).
        let lag_s = st.lag.as_secs();
        self.engine_seen.store(
            (st.stalled as u64)
                | ((st.behind as u64) << 1)
                | (lag_s << 2)
                | ((backlog as u64) << 32),
            Ordering::Relaxed,
        );
        self.gauge("acd_engine_stalled", &[])
            .set(st.stalled as u8 as f64);
        self.gauge("acd_engine_lag_seconds", &[])
            .set(st.lag.as_secs_f64());
        self.gauge("acd_engine_inbox_backlog", &[])
            .set(backlog as f64);
    }

    /// The last configuration reload: `acd_config_reload_success` (1 ok,
    /// 0 refused) and, when it succeeded, its time.
    pub fn reload_result(&self, ok: bool) {
        self.gauge("acd_config_reload_success", &[])
            .set(if ok { 1.0 } else { 0.0 });
        if ok {
            self.gauge("acd_config_reload_success_timestamp_seconds", &[])
                .set(Ts::now().secs_f64());
        }
    }

    /// Compacts histogram memory and drops idle series.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// What a daemon's rules show on `/metrics` beside the snapshot, handed in
/// by the caller (the route takes them from `AppState`, where the daemon put
/// them at start-up).
#[derive(Clone, Default)]
pub struct Boards {
    /// The audit log's health, when the daemon runs a ladder (and so a store).
    pub storage: Option<Arc<crate::store::StorageHealth>>,
    /// The post board and adherence plan, when configured.
    pub floor: crate::floor::FloorHandles,
}

fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("acd_event_publish_lag_seconds".into()),
            LAG_BUCKETS,
        )?
        .set_buckets(DEFAULT_BUCKETS)
}

/// The contract's families (section 7) that the recorder renders, which it
/// leaves out until they have a series: with no source configured, nothing
/// rejected or no ladder action yet. Their HELP and TYPE lines are written
/// anyway, as the queue families are with no queue, so dashboards, recording
/// rules and checks of the names find every required family from the first
/// scrape. (name, type, help, unit)
const RECORDER_FAMILIES: [(&str, &str, &str, Option<Unit>); 5] = [
    (
        "acd_source_connected",
        "gauge",
        "1 when the source is connected.",
        None,
    ),
    (
        "acd_escalation_actions_total",
        "counter",
        "Escalation actions by queue, stage name and final result (counted by the ladder).",
        Some(Unit::Count),
    ),
    (
        "acd_source_events_total",
        "counter",
        "Events received from the source.",
        Some(Unit::Count),
    ),
    (
        "acd_source_events_rejected_total",
        "counter",
        "Input rejected (counted and skipped), by source and reason.",
        Some(Unit::Count),
    ),
    // Rendered once the engine has published (its first 100 ms tick); a
    // scrape that comes earlier, on a loaded machine, still finds it.
    (
        "acd_event_publish_lag_seconds",
        "histogram",
        "From an event batch (or tick) reaching the engine to its snapshot being published.",
        Some(Unit::Seconds),
    ),
];

/// Appends the HELP and TYPE lines of each [`RECORDER_FAMILIES`] entry the
/// recorder did not render.
fn declare_empty_families(out: &mut String) {
    use std::fmt::Write;
    for (name, kind, help, _) in RECORDER_FAMILIES {
        if !out.contains(&format!("# TYPE {name} ")) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
    }
}

fn describe(r: &dyn Recorder) {
    for (name, kind, help, unit) in RECORDER_FAMILIES {
        match kind {
            "gauge" => r.describe_gauge(name.into(), unit, help.into()),
            "histogram" => r.describe_histogram(name.into(), unit, help.into()),
            _ => r.describe_counter(name.into(), unit, help.into()),
        }
    }
    let g =
        |n: &'static str, u: Option<Unit>, d: &'static str| r.describe_gauge(n.into(), u, d.into());
    g(
        "acd_source_synced",
        None,
        "1 when the source is connected and has finished its resync.",
    );
    g(
        "acd_post_covered",
        None,
        "1 while the [[posts]] post is covered (by A, by B, within its grace, or off schedule); 0 while unmanned.",
    );
    g(
        "acd_post_unmanned_seconds",
        Some(Unit::Seconds),
        "How long the post has been unmanned (since its last holder left); 0 when covered.",
    );
    g(
        "acd_agents_out_of_adherence",
        Some(Unit::Count),
        "Agents of the queue out of schedule adherence past their activity's tolerance ([adherence]).",
    );
    g(
        "acd_queue_scheduled_seats",
        Some(Unit::Count),
        "Agents the adherence plan has on a seat of the queue now (compare acd_queue_agents logged_in and acd_queue_required_agents).",
    );
    g(
        "acd_engine_stalled",
        None,
        "1 when the engine has not finished a batch for [server] engine_stall_after (/readyz is 503).",
    );
    g(
        "acd_engine_lag_seconds",
        Some(Unit::Seconds),
        "How far the engine is behind: time since its inbox was last empty (0.1 s or less when healthy).",
    );
    g(
        "acd_engine_inbox_backlog",
        Some(Unit::Count),
        "Entries (events or batches) waiting in the engine's inbox.",
    );
    g(
        "acd_config_reload_success",
        None,
        "1 when the last configuration reload was taken, 0 when the file was refused (nothing changed).",
    );
    g(
        "acd_config_reload_success_timestamp_seconds",
        Some(Unit::Seconds),
        "When the configuration was last reloaded successfully (Unix time).",
    );
    g(
        "acd_build_info",
        None,
        "Always 1; the labels say which build this daemon runs (version, git commit, build date).",
    );
    g(
        "acd_storage_ok",
        None,
        "1 when the last write to storage (audit log, interval history) succeeded and no escalation write waits.",
    );
    g(
        "acd_escalation_pending_writes",
        Some(Unit::Count),
        "Escalation decisions and results waiting to be written to the audit log (retried; not acted on until written).",
    );
    g(
        "acd_websocket_clients",
        Some(Unit::Count),
        "Connected /ws clients.",
    );
    let c = |n: &'static str, d: &'static str| {
        r.describe_counter(n.into(), Some(Unit::Count), d.into())
    };
    c(
        "acd_storage_write_failures_total",
        "Writes to storage (audit log, interval history) that failed, retries included.",
    );
    c(
        "acd_source_dropped_total",
        "Input lost before the source read it, as the OS counts it (HEP: UDP datagrams the kernel dropped).",
    );
    c(
        "acd_websocket_resyncs_total",
        "/ws clients that fell behind and were sent a fresh snapshot.",
    );
}

/// Starts the upkeep timer (histogram memory is compacted only by upkeep).
pub fn spawn(metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(UPKEEP_EVERY);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            let m = metrics.clone();
            // Upkeep walks every histogram; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || m.run_upkeep()).await;
        }
    })
}
