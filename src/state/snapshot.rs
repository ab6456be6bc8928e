//! How readers see state without ever waiting on the engine.
//!
//! After each batch the engine's owner publishes a new immutable [`Snapshot`]
//! through `arc-swap` (a reader's `load` is a few atomic operations and never
//! blocks the writer) and a [`Delta`] with only what changed on a bounded
//! broadcast channel. Views are `Arc`ed and rebuilt only for queues and agents
//! that changed, so publishing costs O(changed), plus one `Arc` clone per
//! unchanged entry. The broadcast channel drops the oldest deltas for a
//! receiver that lags (it then gets `Lagged` and must take a fresh snapshot),
//! so a slow reader can never hold memory or slow the engine.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::broadcast;

use super::engine::Engine;
use super::escalation_log::Entry;
use super::trend::{KEEP_MINUTES, TrendSample};
use super::view::{AgentView, QueueView};
use crate::time::Ts;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub seq: u64,
    pub as_of: Ts,
    pub queues: Vec<Arc<QueueView>>,
    pub agents: Vec<Arc<AgentView>>,
    /// One-minute samples per queue (oldest first), replaced once a minute.
    #[serde(skip)]
    pub trends: Arc<Trends>,
}

/// Trend samples by queue name.
pub type Trends = BTreeMap<String, Arc<Vec<TrendSample>>>;

impl Snapshot {
    pub fn queue(&self, name: &str) -> Option<&Arc<QueueView>> {
        self.queues.iter().find(|q| q.queue == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub seq: u64,
    pub as_of: Ts,
    pub queues: Vec<Arc<QueueView>>,
    pub agents: Vec<Arc<AgentView>>,
    pub escalations: Vec<Arc<Entry>>,
    /// New trend samples were taken (each queue's newest is in the snapshot).
    pub trend: bool,
}

/// Capacity of the delta channel: ~100 s of deltas at 10 per second.
pub const DELTA_CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct Publisher {
    current: ArcSwap<Snapshot>,
    deltas: broadcast::Sender<Arc<Delta>>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(DELTA_CAPACITY);
        Publisher {
            current: ArcSwap::from_pointee(Snapshot::default()),
            deltas: tx,
        }
    }

    /// The latest snapshot. Never blocks.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Deltas from now on. Take the snapshot *after* subscribing and skip
    /// deltas with `seq <= snapshot.seq`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delta>> {
        self.deltas.subscribe()
    }

    /// Publishes what changed in `engine` since the last call, with new
    /// escalation log entries. Returns the delta, or `None` if nothing changed.
    /// Called only by the engine's owner.
    pub fn publish(&self, engine: &mut Engine, escalations: Vec<Arc<Entry>>) -> Option<Arc<Delta>> {
        let (dq, da) = engine.take_dirty();
        let trend = engine.take_trend_dirty();
        let prev = self.current.load_full();
        if dq.is_empty() && da.is_empty() && escalations.is_empty() && !trend {
            return None;
        }
        let trends = if trend {
            Arc::new(
                (0..engine.queue_count())
                    .map(|q| {
                        let qs = engine.queue(q);
                        (qs.name.to_string(), Arc::new(qs.trend.last(KEEP_MINUTES)))
                    })
                    .collect(),
            )
        } else {
            prev.trends.clone()
        };
        let mut queues = prev.queues.clone();
        let mut agents = prev.agents.clone();
        let mut changed_q = Vec::with_capacity(dq.len());
        for q in dq {
            let v = Arc::new(engine.queue_view(q));
            if q >= queues.len() {
                queues.resize_with(q + 1, || v.clone());
            }
            queues[q] = v.clone();
            changed_q.push(v);
        }
        let mut changed_a = Vec::with_capacity(da.len());
        for a in da {
            let v = Arc::new(engine.agent_view(a));
            if a >= agents.len() {
                agents.resize_with(a + 1, || v.clone());
            }
            agents[a] = v.clone();
            changed_a.push(v);
        }
        let seq = prev.seq + 1;
        let as_of = engine.now();
        self.current.store(Arc::new(Snapshot {
            seq,
            as_of,
            queues,
            agents,
            trends,
        }));
        let delta = Arc::new(Delta {
            seq,
            as_of,
            queues: changed_q,
            agents: changed_a,
            escalations,
            trend,
        });
        // No receivers is fine: nobody is watching.
        let _ = self.deltas.send(delta.clone());
        Some(delta)
    }
}
