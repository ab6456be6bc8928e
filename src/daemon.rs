//! `acdmon run` and `acdmon demo`: wires sources -> engine -> publishers and
//! serves until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::config::{Config, SourceSpec};
use crate::publish::metrics::Metrics;
use crate::publish::ws::Hub;
use crate::publish::{AppState, router};
use crate::runtime::{Driver, Observer, spawn_engine};
use crate::sources::json::task::SourceCtx;
use crate::sources::{HealthRegistry, INBOX_CAPACITY, RejectCounter, SourceHealth};
use crate::state::{Engine, Publisher};
use crate::time::Ts;
use crate::watchdog::EngineWatch;

/// A running daemon's shared parts, for sources and publishers.
pub struct Daemon {
    pub state: AppState,
    pub engine_thread: std::thread::JoinHandle<()>,
    /// Each configured source's task, by source name (a reload stops and
    /// starts them).
    pub sources: Vec<(String, tokio::task::JoinHandle<()>)>,
}

/// Starts the engine and the configured sources (no HTTP yet).
pub fn start(config: Config, observers: Vec<Box<dyn Observer>>) -> Daemon {
    start_with(config, observers, None)
}

/// [`start`], registering the CTI action of every source that has one (AMI)
/// in `cti` under the source's name, for the ladder.
pub fn start_with(
    config: Config,
    observers: Vec<Box<dyn Observer>>,
    cti: Option<Arc<crate::cti::CtiRegistry>>,
) -> Daemon {
    start_from(config, observers, cti, None)
}

/// [`start_with`], restoring the engine from `checkpoint` when it belongs to
/// today and fits the configuration (else it is ignored, with a log line),
/// and telling sources that can re-read their input where the restored
/// figures end (docs/failure-modes.md, "Restarts and crashes").
pub fn start_from(
    config: Config,
    observers: Vec<Box<dyn Observer>>,
    cti: Option<Arc<crate::cti::CtiRegistry>>,
    checkpoint: Option<crate::state::EngineCheckpoint>,
) -> Daemon {
    let config = Arc::new(config);
    let now = Ts::now();
    let mut counted_until = None;
    let stream_resume = checkpoint
        .as_ref()
        .and_then(|cp| crate::cluster::stream_position(&cp.positions));
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
    let metrics = Metrics::new(config.server.per_agent_metrics);
    let recorder = metrics.recorder();
    let mut engine = restored.unwrap_or_else(|| Engine::starting_at(config.engine_config(), now));
    let today_start = crate::state::window::day_bounds(now, engine.zone()).0;
    let resume: Vec<(String, crate::sources::queue_log::Restart)> = config
        .sources
        .iter()
        .map(|s| {
            let r = crate::sources::queue_log::Restart {
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
            zone: config.zone.clone(),
            health: health.clone(),
            rejects: rejects.clone(),
            recorder: metrics.recorder(),
        };
        let cluster = crate::cluster::Cluster::attach(c, a);
        if let Some(reg) = &cti {
            cluster.gate_cti(reg, config.cti.iter().map(|c| c.name.clone()).collect());
        }
        cluster
    });
    let tx = cluster.as_ref().map(|c| c.inbox.clone()).unwrap_or(tx);
    crate::publish::health::spawn_watchdog(watch.clone());
    crate::publish::metrics::spawn(metrics.clone());
    let hub = Hub::spawn(publisher.clone(), metrics.clone(), &config.server);
    let state = AppState {
        metrics,
        hub,
        config: Arc::new(arc_swap::ArcSwap::new(config.clone())),
        reloader: Arc::new(std::sync::OnceLock::new()),
        publisher,
        health,
        rejects,
        inbox: tx,
        started: Instant::now(),
        engine: watch,
    };
    let sources = if let Some(c) = &cluster {
        let (state, cti) = (state.clone(), cti.clone());
        c.spawn_ingesters(
            &config.sources,
            Arc::new(move |s, restart| start_source(s, &state, cti.as_deref(), restart)),
        )
    } else {
        config
            .sources
            .iter()
            .filter_map(|s| {
                let restart = resume.iter().find(|(n, _)| *n == s.name).map(|(_, r)| *r);
                start_source(s, &state, cti.as_deref(), restart).map(|h| (s.name.clone(), h))
            })
            .collect()
    };
    Daemon {
        state,
        engine_thread,
        sources,
    }
}

/// Starts one configured source; `None` when its settings cannot run (the
/// reason is on its health, so `/readyz` says it).
pub(crate) fn start_source(
    s: &crate::config::SourceConfig,
    state: &AppState,
    cti: Option<&crate::cti::CtiRegistry>,
    restart: Option<crate::sources::queue_log::Restart>,
) -> Option<tokio::task::JoinHandle<()>> {
    let kind: &'static str = match s.kind.as_str() {
        "json" => "json",
        "ami" => "ami",
        "queue_log" => "queue_log",
        "esl" => "esl",
        "hep" => "hep",
        _ => "unknown",
    };
    let health = SourceHealth::new(&s.name, kind);
    state.health.register(health.clone());
    let ctx = SourceCtx {
        name: Arc::from(s.name.as_str()),
        inbox: state.inbox.clone(),
        health,
        rejects: state.rejects.clone(),
    };
    match &s.spec {
        SourceSpec::Json(c) => {
            let mut c = c.clone();
            c.resume = restart.and_then(|r| r.applied);
            Some(crate::sources::json::task::spawn(c, ctx))
        }
        SourceSpec::Other(t) if s.kind == "ami" || s.kind == "queue_log" => {
            // Agents this source may name by interface (`[[agents]] interface`).
            let agents: Vec<(String, String)> = state
                .config
                .load()
                .agents
                .iter()
                .filter(|a| a.source.as_ref().is_none_or(|x| *x.get_ref() == s.name))
                .filter_map(|a| a.interface.clone().map(|i| (a.id.clone(), i)))
                .collect();
            let started = if s.kind == "ami" {
                crate::sources::ami::AmiConfig::from_table(t.clone()).map(|mut c| {
                    c.agents = agents;
                    let (task, action) = crate::sources::ami::spawn_with_cti(
                        ctx.name.clone(),
                        c,
                        ctx.inbox.clone(),
                        ctx.health.clone(),
                        ctx.rejects.clone(),
                    );
                    if let Some(reg) = cti {
                        reg.insert(&s.name, Arc::new(action));
                    }
                    task
                })
            } else {
                crate::sources::queue_log::QueueLogConfig::from_table(t.clone()).map(|mut c| {
                    c.agents = agents;
                    c.restart = restart;
                    crate::sources::queue_log::spawn(
                        ctx.name.clone(),
                        c,
                        ctx.inbox.clone(),
                        ctx.health.clone(),
                        ctx.rejects.clone(),
                    )
                })
            };
            match started {
                Ok(task) => Some(task),
                Err(e) => {
                    ctx.health.set_error(e.clone());
                    tracing::error!(source = %s.name, error = %e, "source not started");
                    None
                }
            }
        }
        SourceSpec::Other(t) if s.kind == "esl" => {
            match crate::sources::esl::EslConfig::from_table(t) {
                Ok(mut c) => {
                    c.counted_until = restart.and_then(|r| r.counted_until);
                    let (task, action) = crate::sources::esl::spawn_with_cti(
                        ctx.name.clone(),
                        c,
                        ctx.inbox.clone(),
                        ctx.health.clone(),
                        ctx.rejects.clone(),
                    );
                    if let Some(reg) = cti {
                        reg.insert(&s.name, Arc::new(action));
                    }
                    Some(task)
                }
                Err(e) => {
                    let e = format!("bad esl settings: {e}");
                    ctx.health.set_error(e.clone());
                    tracing::error!(source = %s.name, error = %e, "source not started");
                    None
                }
            }
        }
        SourceSpec::Other(t) if s.kind == "hep" => {
            match crate::sources::hep::HepSourceConfig::from_table(t) {
                Ok(c) => Some(crate::sources::hep::spawn(
                    ctx.name.clone(),
                    c,
                    ctx.inbox.clone(),
                    ctx.health.clone(),
                    ctx.rejects.clone(),
                )),
                Err(e) => {
                    ctx.health.set_error(e.clone());
                    tracing::error!(source = %s.name, error = %e, "source not started");
                    None
                }
            }
        }
        SourceSpec::Other(_) => {
            ctx.health.set_error(format!(
                "source kind `{}` is not available in this build",
                s.kind
            ));
            tracing::error!(source = %s.name, kind = %s.kind, "source kind not available in this build");
            None
        }
    }
}

/// Serves HTTP on the configured address until a shutdown signal.
pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let addr = state.config.load().server.listen.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    // One daemon per process here: stray `metrics::` calls land in /metrics.
    state.metrics.install_global();
    serve_on(listener, state).await
}

/// Serves HTTP on a bound listener (tests bind 127.0.0.1:0).
pub async fn serve_on(listener: tokio::net::TcpListener, state: AppState) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, "serving the wall, API, /ws and /metrics");
    serve_until(listener, state, shutdown_signal()).await;
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

/// After serving: tells the engine to stop once it has applied what came
/// before, and waits (at most `within`) for its thread to end, so the
/// observers are dropped and the interval history writer flushes.
pub async fn stop_engine(
    inbox: crate::sources::Inbox,
    engine: std::thread::JoinHandle<()>,
    within: std::time::Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    let sent = tokio::time::timeout_at(deadline, inbox.send(crate::sources::Envelope::Shutdown));
    if !matches!(sent.await, Ok(Ok(()))) {
        tracing::warn!("the engine did not take the shutdown; exiting without it");
        return;
    }
    while !engine.is_finished() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("the engine did not stop in time; exiting without it");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let _ = engine.join();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
