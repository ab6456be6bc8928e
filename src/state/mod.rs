//! Per-queue and per-agent state and the KPIs computed from it.

mod agent;
pub mod checkpoint;
mod engine;
pub mod erlang;
pub mod escalation_log;
mod histogram;
pub mod kpi;
mod params;
mod queue;
pub mod snapshot;
pub mod trend;
pub mod view;
pub mod window;

pub use agent::{Agent, Holds};
pub use checkpoint::{EngineCheckpoint, SourcePosition};
pub use engine::{Engine, QueueFigures};
pub use histogram::{WAIT_BUCKETS, WaitHistogram};
pub use kpi::SlRound;
pub use params::{AgentProfile, EngineConfig, QueueParams, SiteNames};
pub use queue::{IntervalRecord, Queue};
pub use snapshot::{Delta, Publisher, Snapshot};
pub use view::{AgentView, QueueView};
