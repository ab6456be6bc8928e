//! acdmon: a real-time ACD/queue monitor for contact centres.
//!
//! Data flows one way: `sources` turn wire events into domain events, `state`
//! folds them into per-queue and per-agent figures, `escalation` reads those
//! figures and acts through `cti`, and `publish` serves them.

pub mod build_info;
pub mod cluster;
pub mod config;
pub mod cti;
pub mod daemon;
pub mod demo;
pub mod engine_thread;
pub mod escalation;
pub mod event;
pub mod floor;
pub mod publish;
pub mod reload;
pub mod replay;
pub mod sources;
pub mod state;
pub mod store;
pub mod time;
pub mod watchdog;
