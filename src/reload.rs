//! Live configuration reload (SIGHUP, `POST /api/v1/reload`).
//!
//! Why it is built this way: a centre changes thresholds, ladders, the agent
//! directory and schedules during the day, and a restart used to cost the
//! day's figures and a reconnect to every PBX. A reload therefore
//! 1. validates the whole new file first; a file with any error changes
//!    nothing (the errors, with `file:line:col`, go to the log, the answer,
//!    `acd_config_reload_success` and the audit trail);
//! 2. keeps what only a restart can change (listener, database, zone, the
//!    WebSocket pacing and per-agent series) as it is and says so;
//! 3. hands the engine the new settings through its inbox, so they apply in
//!    event order on the engine thread, with no lock and without losing a
//!    figure (see `state/engine/reconfigure.rs` and the ladder's `replan`);
//! 4. swaps the configuration the HTTP handlers read (tokens, wall
//!    settings), rebuilds `[[cti]]` sinks, and stops removed or changed
//!    sources and starts new or changed ones (a source whose settings did
//!    not change keeps its connection and its resync). In cluster mode
//!    sources run under leases, so the reload orders their ingesters
//!    instead (`crate::cluster::ingest::Ingesters`): a removed source's
//!    holder hands its last events to the stream and gives the lease up, a
//!    changed one is restarted by its holder where the stream ends;
//! 5. writes the reload to the audit trail beside the escalation log.
//!
//! Reloads are serialised: a second waits for the first.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Ingesters;
use crate::config::diff::{ConfigDiff, diff};
use crate::config::{Config, CtiSpec, SourceConfig};
use crate::cti::CtiRegistry;
use crate::cti::webhook::Webhook;
use crate::daemon::SourceTasks;
use crate::publish::AppState;
use crate::sources::Envelope;
use crate::store::Store;
use crate::store::reloads::ReloadRecord;
use crate::time::Ts;

/// Longest wait for the engine to take a reload before the answer says it
/// has not yet (it still will, in order, once it gets to it).
const ENGINE_TAKES_WITHIN: Duration = Duration::from_secs(10);

/// What a reload did, as the API answers and the audit trail keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    pub ok: bool,
    pub changes: Vec<String>,
    pub needs_restart: Vec<String>,
    pub errors: Vec<String>,
}

pub struct Reloader {
    state: AppState,
    cti: Arc<CtiRegistry>,
    store: Option<Arc<Store>>,
    /// The daemon's source tasks (it owns them; a reload stops and starts
    /// single sources under their lock).
    sources: Arc<SourceTasks>,
    /// Cluster mode: sources run under leases, each by an ingester
    /// (`crate::cluster::ingest`); a reload adds, removes and changes
    /// those instead of the tasks themselves.
    ingesters: Option<Arc<Ingesters>>,
}

impl Reloader {
    pub fn new(
        state: AppState,
        cti: Arc<CtiRegistry>,
        store: Option<Arc<Store>>,
        sources: Arc<SourceTasks>,
        ingesters: Option<Arc<Ingesters>>,
    ) -> Arc<Self> {
        Arc::new(Reloader {
            state,
            cti,
            store,
            sources,
            ingesters,
        })
    }

    /// Re-reads the file the daemon was started with. `by` names who asked
    /// (`SIGHUP`, `api`) for the log and the audit trail.
    pub async fn reload(&self, by: &str) -> ReloadOutcome {
        // Holding the sources' lock serialises reloads.
        let mut sources = self.sources.lock().await;
        let old = self.state.config.load_full();
        let path = old.file.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
        let new = match loaded {
            Ok(Ok(c)) => c,
            Ok(Err(errs)) => {
                let errors: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                return self.refused(by, errors);
            }
            Err(e) => return self.refused(by, vec![format!("reload task failed: {e}")]),
        };
        let d = diff(&old, &new);
        let new = Arc::new(keep_restart_only(&old, new));
        // Sinks first: a `[[cti]]` entry that cannot be built (a CA file
        // that does not parse) refuses the whole file.
        let mut hooks = Vec::new();
        for c in &new.cti {
            match &c.spec {
                CtiSpec::Webhook(w) => match Webhook::new(&c.name, w.clone()) {
                    Ok(h) => hooks.push((c.name.clone(), h)),
                    Err(e) => return self.refused(by, vec![format!("cti `{}`: {e}", c.name)]),
                },
            }
        }
        let mut errors = Vec::new();
        // Sources the reload removes or changes stop first: what they had
        // sent is then ahead of the new settings in the engine's inbox, and
        // the positions the engine answers with are final.
        let agents_moved = interfaces(&old) != interfaces(&new);
        let restarts = |s: &SourceConfig| match new.sources.iter().find(|n| n.name == s.name) {
            None => true,
            Some(n) => n != s || (agents_moved && uses_interfaces(n)),
        };
        // Cluster mode: a removed source's ingester stops it and gives its
        // lease up; changed ones are restarted by their holders below.
        if let Some(ing) = &self.ingesters {
            for s in &old.sources {
                if !new.sources.iter().any(|n| n.name == s.name) {
                    ing.stop(&s.name, sources.remove(&s.name)).await;
                    tracing::info!(source = %s.name, "source removed by a config reload: its ingester stopped");
                }
            }
        }
        for s in old.sources.iter().filter(|_| self.ingesters.is_none()) {
            if restarts(s) {
                if let Some(task) = sources.remove(&s.name) {
                    task.abort();
                    let _ = task.await;
                }
                self.state.health.remove(&s.name);
                self.cti.remove(&s.name);
                tracing::info!(source = %s.name, "source stopped by a config reload");
            }
        }
        // The engine and the ladders, in event order.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let sent = self
            .state
            .inbox
            .send(Envelope::Reconfigure {
                config: new.clone(),
                done: done_tx,
            })
            .await;
        let mut positions = Vec::new();
        if sent.is_err() {
            errors.push("the engine has stopped; queue and ladder settings not applied".into());
        } else {
            match tokio::time::timeout(ENGINE_TAKES_WITHIN, done_rx).await {
                Ok(Ok(p)) => positions = p,
                _ => errors.push(format!(
                    "the engine has not taken the new settings within {ENGINE_TAKES_WITHIN:?}; it will when it catches up"
                )),
            }
        }
        self.state.config.store(new.clone());
        // `[[cti]]` sinks.
        for c in &old.cti {
            if !new.cti.iter().any(|n| n.name == c.name) {
                self.cti.remove(&c.name);
            }
        }
        self.cti.clear_default();
        for (name, h) in hooks {
            self.cti.insert(&name, Arc::new(h));
        }
        for c in new.cti.iter().filter(|c| c.default) {
            self.cti.set_default(&c.name);
        }
        // Start the new and changed sources; a file source resumes where
        // the engine's applied events from it end.
        if let Some(ing) = &self.ingesters {
            for s in &new.sources {
                if !sources.contains_key(&s.name) {
                    sources.insert(s.name.clone(), ing.spawn(s));
                    tracing::info!(source = %s.name, "source added by a config reload: its ingester competes for the lease");
                } else if old.sources.iter().any(|o| o.name == s.name && restarts(o)) {
                    ing.change(s);
                }
            }
        }
        let today_start = crate::state::window::day_bounds(Ts::now(), &new.zone).0;
        for s in &new.sources {
            if sources.contains_key(&s.name) || self.ingesters.is_some() {
                continue;
            }
            let restart = crate::sources::Restart {
                applied: positions
                    .iter()
                    .find(|(n, _)| *n == s.name)
                    .map(|(_, p)| *p),
                today_start,
                // The engine has applied everything the old task sent.
                counted_until: Some(Ts::now()),
            };
            let task = crate::daemon::start_source(s, &self.state, Some(&self.cti), Some(restart));
            sources.insert(s.name.clone(), task);
            tracing::info!(source = %s.name, "source started by a config reload");
        }
        drop(sources);
        let outcome = ReloadOutcome {
            ok: errors.is_empty(),
            changes: d.changes.clone(),
            needs_restart: d.needs_restart.clone(),
            errors,
        };
        self.finish(by, &outcome, &d);
        outcome
    }

    fn refused(&self, by: &str, errors: Vec<String>) -> ReloadOutcome {
        for e in &errors {
            tracing::error!(by, error = %e, "configuration reload refused; nothing changed");
        }
        let outcome = ReloadOutcome {
            ok: false,
            changes: Vec::new(),
            needs_restart: Vec::new(),
            errors,
        };
        self.finish(by, &outcome, &ConfigDiff::default());
        outcome
    }

    fn finish(&self, by: &str, o: &ReloadOutcome, d: &ConfigDiff) {
        self.state.metrics.reload_result(o.ok);
        if o.ok {
            if d.is_empty() {
                tracing::info!(by, "configuration reloaded: nothing changed");
            }
            for c in &o.changes {
                tracing::info!(by, change = %c, "configuration reloaded");
            }
            for c in &o.needs_restart {
                tracing::warn!(by, setting = %c, "changed in the file; takes effect at the next restart");
            }
        }
        if let Some(store) = &self.store {
            let rec = ReloadRecord {
                id: 0,
                ts: Ts::now(),
                by: by.to_string(),
                ok: o.ok,
                changes: o.changes.clone(),
                needs_restart: o.needs_restart.clone(),
                errors: o.errors.clone(),
            };
            if let Err(e) = store.insert_reload(&rec) {
                tracing::error!(error = %e, "cannot write the reload to the audit trail");
            }
        }
    }

    /// The audit trail, newest first.
    pub fn history(&self, limit: usize) -> Vec<ReloadRecord> {
        self.store
            .as_ref()
            .and_then(|s| s.reloads(limit).ok())
            .unwrap_or_default()
    }
}

/// `new`, with the settings only a restart changes taken from `old`.
fn keep_restart_only(old: &Config, mut new: Config) -> Config {
    new.server.listen = old.server.listen.clone();
    new.server.ws_coalesce = old.server.ws_coalesce;
    new.server.per_agent_metrics = old.server.per_agent_metrics;
    new.server.engine_stall_after = old.server.engine_stall_after.clone();
    new.server.header_timeout = old.server.header_timeout;
    new.server.shutdown_drain = old.server.shutdown_drain;
    new.storage = old.storage.clone();
    new.zone = old.zone.clone();
    new.zone_name = old.zone_name.clone();
    new
}

/// The interface -> agent map AMI and queue_log sources are started with.
fn interfaces(c: &Config) -> Vec<(String, Option<String>, Option<String>)> {
    let mut v: Vec<_> = c
        .agents
        .iter()
        .map(|a| {
            (
                a.id.clone(),
                a.interface.clone(),
                a.source.as_ref().map(|s| s.get_ref().clone()),
            )
        })
        .collect();
    v.sort();
    v
}

fn uses_interfaces(s: &SourceConfig) -> bool {
    s.kind == "ami" || s.kind == "queue_log"
}

/// Reloads on every SIGHUP until the task is stopped.
pub fn spawn_sighup(reloader: Arc<Reloader>) -> tokio::task::JoinHandle<()> {
    #[cfg(not(unix))]
    return tokio::spawn(async move {
        let _ = reloader;
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /api/v1/reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            reloader.reload("SIGHUP").await;
        }
    })
}
