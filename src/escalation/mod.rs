//! The staged escalation ladder. The log entry shape is contract section 6.
//!
//! `ladder` is the sans-IO decision core (figures and time in, decisions
//! out); `observer` runs it on the engine thread, writes every decision to
//! the audit log before acting, and hands CTI actions to async tasks;
//! `schedule` picks the ladder a queue runs at a given local time; `control`
//! is the channel the HTTP routes use to approve, reject and act by hand.

pub mod control;
pub mod expr;
pub mod ladder;
pub mod observer;
pub mod schedule;
pub mod stream;

/// The log entry shape lives beside the snapshot that publishes it.
pub use crate::state::escalation_log::{ActionRecord, Direction, Entry, EntryDecision};
