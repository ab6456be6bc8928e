//! Which observers a daemon or a replay runs with, and the CTI actions the
//! configuration names. Kept in one place so `run`, `demo` and `replay` stay
//! the same engine.

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, CtiSpec};
use crate::cti::CtiRegistry;
use crate::cti::log_only::LogOnly;
use crate::cti::webhook::Webhook;
use crate::engine_thread::Observer;
use crate::escalation::control::LadderHandle;
use crate::escalation::observer::LadderObserver;
use crate::floor::handover::HandoverObserver;
use crate::store::Store;
use crate::store::checkpoint::{self, Checkpointer};
use crate::store::history::IntervalHistory;

/// The CTI actions the config names (`[[cti]]`). Source adapters that can
/// sign agents in (AMI, ESL) add themselves under their source name with
/// [`CtiRegistry::insert`] when they start.
pub fn cti_registry(cfg: &Config) -> anyhow::Result<Arc<CtiRegistry>> {
    let reg = CtiRegistry::new();
    for c in &cfg.cti {
        match &c.spec {
            CtiSpec::Webhook(w) => {
                let hook = Webhook::new(&c.name, w.clone())
                    .map_err(|e| anyhow::anyhow!("cti `{}`: {e}", c.name))?;
                reg.insert(&c.name, Arc::new(hook));
            }
        }
        if c.default {
            reg.set_default(&c.name);
        }
    }
    Ok(Arc::new(reg))
}

/// Observers of a replay: the ladder, acting through the log-only CTI and
/// logging to a private in-memory audit log.
pub fn replay_observers(cfg: &Config) -> Vec<Box<dyn Observer>> {
    replay_with(cfg, false)
}

/// [`replay_observers`], plus the interval history written to `[storage]`
/// (`acdmon replay --store`: backfill history from recordings).
pub fn replay_observers_storing(cfg: &Config) -> Vec<Box<dyn Observer>> {
    replay_with(cfg, true)
}

fn replay_with(cfg: &Config, store_history: bool) -> Vec<Box<dyn Observer>> {
    let mut out: Vec<Box<dyn Observer>> = Vec::new();
    let mut audit = None;
    match Store::in_memory() {
        Ok(store) => {
            let store = Arc::new(store);
            audit = Some(store.clone());
            let cti = Arc::new(CtiRegistry::only(Arc::new(LogOnly)));
            match LadderObserver::new(cfg, store, cti) {
                Ok((obs, _)) => out.push(Box::new(obs)),
                Err(e) => tracing::error!(error = %e, "the ladder cannot run"),
            }
        }
        Err(e) => tracing::error!(error = %e, "no in-memory audit log; the ladder does not run"),
    }
    if store_history {
        match Store::open(&cfg.storage.path) {
            Ok(s) => {
                let s = Arc::new(s);
                out.push(Box::new(IntervalHistory::new(s.clone())));
                // Handovers of the replayed shifts, with the replay's own
                // escalation log.
                if let Some(audit) = audit {
                    out.push(Box::new(HandoverObserver::new(cfg, audit, s)));
                }
            }
            Err(e) => tracing::error!(error = %e, "interval history is not stored"),
        }
    }
    out
}

/// What a daemon runs beside the engine, as its configuration asks for,
/// made before start-up ([`super::start_with`] starts it).
pub struct Parts {
    pub observers: Vec<Box<dyn Observer>>,
    /// For the HTTP control routes (handed to `AppState::ladder`).
    pub ladder: LadderHandle,
    /// Where sources that can sign agents in (AMI) register their action.
    pub cti: Arc<CtiRegistry>,
    /// The audit log (reloads are recorded beside the escalations).
    pub store: Arc<Store>,
    /// The stored engine checkpoint, if any (restored at start when it
    /// still fits).
    pub checkpoint: Option<crate::state::EngineCheckpoint>,
    /// What the floor rules publish (`/api/v1/posts`, `/api/v1/adherence`,
    /// `/metrics`) and take (`PUT /api/v1/schedule`).
    pub floor: crate::floor::FloorHandles,
}

impl Parts {
    /// The daemon's observers: the ladder (audit log in `[storage]`, acting
    /// through `cti`), the interval history, the shift handovers, the floor
    /// rules and the checkpointer. Fails when the storage cannot be opened: a
    /// ladder without its audit log must not act.
    pub fn open(cfg: &Config, cti: Arc<CtiRegistry>) -> anyhow::Result<Parts> {
        let store = Arc::new(
            Store::open(&cfg.storage.path)
                .with_context(|| "the audit log and interval history need [storage] path")?,
        );
        let (mut ladder, handle) =
            LadderObserver::new(cfg, store.clone(), cti.clone()).map_err(|e| anyhow::anyhow!(e))?;
        // A site's instance in cluster mode: only the site's CTI leader
        // decides (crate::cluster::cti); a central instance runs its own.
        if cfg.cluster.as_ref().is_some_and(|c| !c.is_central()) {
            let written = ladder.follow_a_leader();
            *handle.stream.lock().unwrap_or_else(|e| e.into_inner()) = Some(written);
        }
        let every = cfg.storage.checkpoint_every.0;
        let (posts, post_board) = crate::floor::posts::PostsObserver::new(cfg);
        let posts = posts
            .with_store(store.clone())
            .with_cover(store.clone(), cti.clone())
            .with_key_scope(crate::cti::runner::key_scope(cfg));
        let adherence = crate::floor::adherence::AdherenceObserver::new(cfg);
        let floor = crate::floor::FloorHandles {
            posts: Some(post_board),
            adherence: adherence.as_ref().map(|(_, h)| h.clone()),
            ..Default::default()
        };
        let handover =
            HandoverObserver::new(cfg, store.clone(), store.clone()).with_floor(floor.clone());
        let mut observers: Vec<Box<dyn Observer>> = vec![
            Box::new(ladder),
            Box::new(IntervalHistory::new(store.clone())),
        ];
        // Before the handover: at a shift's edge the adherence day totals
        // are published first, and the handover reads them at that instant.
        if let Some((obs, _)) = adherence {
            observers.push(Box::new(obs.with_store(store.clone())));
        }
        observers.push(Box::new(handover));
        observers.push(Box::new(posts));
        let checkpoint = if every.is_zero() {
            None
        } else {
            let cp = checkpoint::load(&store);
            observers.push(Box::new(Checkpointer::new(store.clone(), every)));
            cp
        };
        Ok(Parts {
            observers,
            ladder: handle,
            cti,
            store,
            checkpoint,
            floor,
        })
    }
}
