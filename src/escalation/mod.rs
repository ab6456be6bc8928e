//! The staged escalation ladder. The log entry shape is contract section 6.

pub mod entry;
pub mod expr;

pub use entry::{ActionRecord, Direction, Entry};
