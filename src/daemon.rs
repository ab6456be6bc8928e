//! The one place that assembles a daemon (`acdmon run`, `acdmon demo`, the
//! in-process tests): the engine thread with its observers, the sources, the
//! HTTP state and the background tasks, and the [`Daemon`] that owns every
//! one of their handles.
//!
//! Why one owner: a daemon stops in an order that loses nothing (sources,
//! then the engine's drain, then the observers' flush, then HTTP; see
//! [`shutdown`]), and only something that holds every task can keep that
//! order. Everything the HTTP routes reach (the ladder's handle, the floor
//! boards) is made before the engine starts and handed in here, so no route
//! looks anything up by pointer.
//!
//! - [`observers`]: which observers a daemon or a replay runs with, so
//!   `run`, `demo` and `replay` stay the same engine.
//! - [`shutdown`]: the stop sequence and the signals that start it.
//! - this file: [`start`] / [`start_with`] / [`assemble`], and starting one
//!   configured source (`start_source`).

pub mod observers;
pub mod shutdown;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::cti::CtiRegistry;
use crate::engine_thread::{Driver, Observer, spawn_engine};
use crate::escalation::control::LadderHandle;
use crate::floor::FloorHandles;
use crate::publish::metrics::Metrics;
use crate::publish::ws::Hub;
use crate::publish::{AppState, router};
use crate::reload::Reloader;
use crate::sources::{HealthRegistry, INBOX_CAPACITY, RejectCounter, SourceCtx};
use crate::state::{Engine, EngineCheckpoint, Publisher};
use crate::store::Store;
use crate::time::Ts;
use crate::watchdog::EngineWatch;

pub use observers::{Parts, cti_registry, replay_observers, replay_observers_storing};
pub use shutdown::{STOP_WITHIN, stop_engine};

/// Everything a daemon is started with besides its configuration, made
/// before start-up: the engine's observers and the handles the HTTP routes
/// reach them by. [`Parts::open`] makes the full set from the configuration
/// (`run`, `demo`); tests build one by hand.
#[derive(Default)]
pub struct Setup {
    pub observers: Vec<Box<dyn Observer>>,
    /// The ladder's command channel and audit log (`/api/v1/escalations`,
    /// the handover routes, storage health).
    pub ladder: Option<LadderHandle>,
    /// The floor rules' boards (`/api/v1/posts`, `/api/v1/adherence`).
    pub floor: FloorHandles,
    /// Where sources that can sign agents in (AMI, ESL) register their
    /// action. With it, the daemon can also reload its configuration.
    pub cti: Option<Arc<CtiRegistry>>,
    /// The audit log (reloads are recorded beside the escalations).
    pub store: Option<Arc<Store>>,
    /// The stored engine checkpoint, restored at start when it still fits.
    pub checkpoint: Option<EngineCheckpoint>,
}

impl Setup {
    /// Only engine observers: no ladder routes, no reload.
    pub fn observing(observers: Vec<Box<dyn Observer>>) -> Self {
        Setup {
            observers,
            ..Setup::default()
        }
    }
}

impl From<Parts> for Setup {
    fn from(p: Parts) -> Self {
        Setup {
            observers: p.observers,
            ladder: Some(p.ladder),
            floor: p.floor,
            cti: Some(p.cti),
            store: Some(p.store),
            checkpoint: p.checkpoint,
        }
    }
}

/// The running sources' tasks by name. The daemon and the reloader share
/// it: a reload stops and starts single sources under its lock (which also
/// serialises reloads), and a stopping daemon stops them all and closes it,
/// so no reload can start a source after that.
#[derive(Default)]
pub struct SourceTasks {
    running: tokio::sync::Mutex<RunningSources>,
}

/// The map behind [`SourceTasks`]'s lock.
#[derive(Default)]
pub struct RunningSources {
    tasks: HashMap<String, JoinHandle<()>>,
    /// The daemon is stopping: a source started now is stopped at once.
    closed: bool,
}

impl RunningSources {
    pub fn contains_key(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<JoinHandle<()>> {
        self.tasks.remove(name)
    }

    /// Keeps `task` as source `name`'s; a closed set (the daemon is
    /// stopping) stops it instead.
    pub fn insert(&mut self, name: String, task: JoinHandle<()>) {
        if self.closed {
            task.abort();
            return;
        }
        if let Some(old) = self.tasks.insert(name, task) {
            old.abort();
        }
    }
}

impl SourceTasks {
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, RunningSources> {
        self.running.lock().await
    }

    /// Stops every source and waits for each task to end; later starts are
    /// refused. What they sent before is in the engine's inbox.
    pub async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        running.closed = true;
        for (name, task) in running.tasks.drain() {
            task.abort();
            let _ = task.await;
            tracing::debug!(source = %name, "source stopped");
        }
    }
}

/// A running daemon: its HTTP state and every task it started.
pub struct Daemon {
    pub state: AppState,
    /// The engine thread; it ends after the engine's last publish, once its
    /// observers have flushed (they are dropped with it).
    pub engine_thread: std::thread::JoinHandle<()>,
    /// The configured sources (and any the caller [`Daemon::adopt_source`]s).
    sources: Arc<SourceTasks>,
    /// The HTTP server, once [`Daemon::serve_on`] started it: the stop
    /// signal it waits for and its task.
    http: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    /// Reloads on SIGHUP ([`Daemon::run`]); stopped first, so no reload
    /// starts a source while the daemon stops.
    sighup: Option<JoinHandle<()>>,
    /// The WebSocket hub, the engine watchdog and the metrics upkeep: they
    /// hold no data, so they stop last, by abort.
    background: Vec<JoinHandle<()>>,
    /// Cluster mode (a site's instance): re-reads the PBXs' membership
    /// before this instance's ladder acts as the new CTI leader
    /// (`crate::cluster::relist`).
    pub relister: Option<crate::cluster::relist::Relister>,
}

/// Starts the engine and the configured sources (no HTTP yet), with
/// `observers` and nothing else.
pub fn start(config: Config, observers: Vec<Box<dyn Observer>>) -> Daemon {
    assemble(config, Setup::observing(observers))
}

/// Starts the daemon `parts` describe (no HTTP yet): the ladder and floor
/// rules reachable from their routes, and a configuration reloader (SIGHUP
/// in [`Daemon::run`], `POST /api/v1/reload`).
pub fn start_with(config: Config, parts: Parts) -> Daemon {
    assemble(config, parts.into())
}

/// Builds and starts a daemon: restores the engine from `setup.checkpoint`
/// when it belongs to today and fits the configuration (else it is ignored,
/// with a log line), starts the engine thread with the observers, the
/// background tasks and the configured sources, telling sources that can
/// re-read their input where the restored figures end
/// (docs/failure-modes.md, "Restarts and crashes").
pub fn assemble(config: Config, setup: Setup) -> Daemon {
    let Setup {
        observers,
        ladder,
        floor,
        cti,
        store,
        checkpoint,
    } = setup;
    let config = Arc::new(config);
    let now = Ts::now();
    let mut counted_until = None;
    let stream_resume = checkpoint
        .as_ref()
        .and_then(|cp| crate::cluster::stream_position(&cp.positions));
    // A central instance: where each site's stream resumes.
    let site_resume = checkpoint
        .as_ref()
        .map(|cp| crate::cluster::site_positions(&cp.positions))
        .unwrap_or_default();
    let restored = checkpoint.and_then(|cp| match cp.restore(config.engine_config(), now) {
        Ok(e) => {
            counted_until = Some(Ts(cp.saved_at));
            tracing::info!(
                taken = %Ts(cp.saved_at),
                events = cp.events_applied,
                queues = cp.queues.len(),
                agents = cp.agents.len(),
                "restored today's figures from the engine checkpoint"
            );
            Some(e)
        }
        Err(why) => {
            tracing::warn!(%why, "engine checkpoint not restored; today's figures start from what the sources resend");
            None
        }
    });
    let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
    let publisher = Arc::new(Publisher::new());
    let rejects = Arc::new(RejectCounter::default());
    let health = Arc::new(HealthRegistry::default());
    let _ = floor.sources.set(health.clone());
    let metrics = Metrics::new(config.server.per_agent_metrics);
    let recorder = metrics.recorder();
    let mut engine = restored.unwrap_or_else(|| Engine::starting_at(config.engine_config(), now));
    let today_start = crate::state::window::day_bounds(now, engine.zone()).0;
    let resume: Vec<(String, crate::sources::Restart)> = config
        .sources
        .iter()
        .map(|s| {
            let r = crate::sources::Restart {
                applied: engine.position(&s.name),
                today_start,
                counted_until,
            };
            (s.name.clone(), r)
        })
        .collect();
    // A wall that connects before the first event sees the configured queues.
    publisher.publish(&mut engine, Vec::new());
    let mut driver = Driver::new(engine, rejects.clone());
    driver.observers = observers;
    driver.max_future_skew_ms = Some(config.max_future_skew_ms);
    let watch = Arc::new(EngineWatch::new(
        config.server.engine_stall_after.get_ref().0,
    ));
    let engine_thread = spawn_engine(driver, rx, publisher.clone(), Some(recorder), watch.clone());
    // Cluster mode: sources send to the stream; the engine reads it.
    let cluster = config.cluster.as_ref().map(|c| {
        let a = crate::cluster::Attach {
            engine: tx.clone(),
            resume_after: counted_until.and(stream_resume),
            resume_sites: if counted_until.is_some() {
                site_resume
            } else {
                Default::default()
            },
            zone: config.zone.clone(),
            health: health.clone(),
            rejects: rejects.clone(),
            recorder: metrics.recorder(),
        };
        let cluster = crate::cluster::Cluster::attach(c, a);
        if let Some(reg) = &cti {
            cluster.gate_cti(
                reg,
                config.cti.iter().map(|c| c.name.clone()).collect(),
                &config.sources,
            );
        }
        if let Some(l) = &ladder {
            // A new CTI leader's ladder starts from the PBXs' membership.
            let relist = cluster.relister(crate::cluster::relist::REFRESH_WITHIN);
            cluster.link_ladder(
                l,
                Box::new(move || {
                    let r = relist.clone();
                    Box::pin(async move { r.refresh_membership().await })
                }),
            );
        }
        cluster
    });
    let relister = cluster
        .as_ref()
        .filter(|c| c.board.is_none())
        .map(|c| c.relister(crate::cluster::relist::REFRESH_WITHIN));
    let engine_inbox = tx.clone();
    let tx = cluster.as_ref().map(|c| c.inbox.clone()).unwrap_or(tx);
    let (hub, hub_task) = Hub::spawn(publisher.clone(), metrics.clone(), &config.server);
    let background = vec![
        hub_task,
        crate::publish::health::spawn_watchdog(watch.clone()),
        crate::publish::metrics::spawn(metrics.clone()),
    ];
    let state = AppState {
        metrics,
        hub,
        config: Arc::new(arc_swap::ArcSwap::new(config.clone())),
        reloader: Arc::new(std::sync::OnceLock::new()),
        publisher,
        health,
        rejects,
        inbox: tx,
        engine_inbox,
        started: Instant::now(),
        engine: watch,
        ladder,
        floor,
        sites: cluster.as_ref().and_then(|c| c.board.clone()),
    };
    let mut running = RunningSources::default();
    if let Some(c) = &cluster {
        // One lease-holding ingester per source (crate::cluster::ingest).
        let (state, cti) = (state.clone(), cti.clone());
        let start: crate::cluster::StartSource =
            Arc::new(move |s, restart| Some(start_source(s, &state, cti.as_deref(), restart)));
        for (name, task) in c.spawn_ingesters(&config.sources, start) {
            running.insert(name, task);
        }
    } else {
        for s in &config.sources {
            let restart = resume.iter().find(|(n, _)| *n == s.name).map(|(_, r)| *r);
            let task = start_source(s, &state, cti.as_deref(), restart);
            running.insert(s.name.clone(), task);
        }
    }
    let sources = Arc::new(SourceTasks {
        running: tokio::sync::Mutex::new(running),
    });
    if let Some(cti) = cti {
        let reloader = Reloader::new(state.clone(), cti, store, sources.clone());
        state.metrics.reload_result(true);
        let _ = state.reloader.set(reloader);
    }
    Daemon {
        state,
        engine_thread,
        sources,
        http: None,
        sighup: None,
        background,
        relister,
    }
}

/// `acdmon run`: the daemon the configuration describes, until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let cti = cti_registry(&cfg)?;
    let parts = Parts::open(&cfg, cti)?;
    start_with(cfg, parts).run().await
}

impl Daemon {
    /// Takes a source started outside the configuration (the demo's
    /// simulator), so it stops with the others.
    pub async fn adopt_source(&self, name: &str, task: JoinHandle<()>) {
        self.sources.lock().await.insert(name.to_string(), task);
    }

    /// Serves HTTP on `listener` until [`Daemon::shutdown`] closes it.
    pub fn serve_on(&mut self, listener: tokio::net::TcpListener) {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(%addr, "serving the wall, API, /ws and /metrics");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_until(listener, self.state.clone(), async move {
            let _ = stop_rx.await;
        }));
        self.http = Some((stop_tx, task));
    }

    /// `acdmon run` and `acdmon demo`: serves HTTP on the configured address
    /// and reloads on SIGHUP until SIGINT/SIGTERM, then stops in order.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let addr = self.state.config.load().server.listen.clone();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        // One daemon per process here: stray `metrics::` calls land in /metrics.
        self.state.metrics.install_global();
        self.serve_on(listener);
        if let Some(r) = self.state.reloader.get() {
            self.sighup = Some(crate::reload::spawn_sighup(r.clone()));
        }
        shutdown::signal().await;
        self.shutdown(STOP_WITHIN).await;
        Ok(())
    }
}

/// Starts one configured source with the daemon's shared handles (its
/// health entry is registered, its CTI action, if any, goes into `cti`
/// under the source's name). Its settings were validated when the
/// configuration was loaded, so it always starts; what goes wrong later
/// (a refused connection) is on its health.
pub(crate) fn start_source(
    s: &crate::config::SourceConfig,
    state: &AppState,
    cti: Option<&crate::cti::CtiRegistry>,
    restart: Option<crate::sources::Restart>,
) -> tokio::task::JoinHandle<()> {
    let health = crate::sources::SourceHealth::new(&s.name, s.spec.kind());
    state.health.register(health.clone());
    let mut ctx = SourceCtx::new(&s.name, state.inbox.clone(), health, state.rejects.clone());
    // Agents this source may name by interface (`[[agents]] interface`).
    ctx.agents = state
        .config
        .load()
        .agents
        .iter()
        .filter(|a| a.source.as_ref().is_none_or(|x| *x.get_ref() == s.name))
        .filter_map(|a| a.interface.clone().map(|i| (a.id.clone(), i)))
        .collect();
    ctx.restart = restart;
    let started = crate::sources::spawn(&s.spec, ctx);
    if let (Some(reg), Some(action)) = (cti, started.cti) {
        reg.insert(&s.name, action);
    }
    started.task
}

/// Serves HTTP on a bound listener until SIGINT/SIGTERM, outside any
/// [`Daemon`]'s stop sequence (tests bind 127.0.0.1:0 and let the process
/// end it; a daemon serves with [`Daemon::serve_on`]).
pub async fn serve_on(listener: tokio::net::TcpListener, state: AppState) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, "serving the wall, API, /ws and /metrics");
    serve_until(listener, state, shutdown::signal()).await;
    Ok(())
}

/// Serves HTTP until `stop` completes, then gives requests in flight
/// `shutdown_drain` to finish and closes every connection still open.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: impl std::future::Future<Output = ()>,
) {
    let limits = crate::publish::server::HttpLimits {
        header_timeout: state.config.load().server.header_timeout.0,
        shutdown_drain: state.config.load().server.shutdown_drain.0,
    };
    crate::publish::server::serve(listener, router(state), limits, stop).await;
}
