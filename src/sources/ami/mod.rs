//! Asterisk Manager Interface source: queue events in, domain events out.
//!
//! Split the quinn way: [`parser`] frames bytes, [`mapping`] turns queue
//! events into domain events, [`session`] is the connection state machine
//! (login, resync, keepalive, actions), all without I/O; [`task`] runs it on
//! the shared reconnecting TCP driver ([`crate::sources::tcp`]), [`cti`] signs
//! agents in and out through that connection, and [`replay`] runs a recorded
//! transcript through the same session.

pub mod cti;
pub mod mapping;
pub mod parser;
pub mod replay;
pub mod session;
pub mod task;

pub use mapping::{AgentIds, AgentNaming};
pub use replay::{AmiReplay, replay_decoder};
pub use session::{ActionReply, AmiAction, Auth, ReplyStatus, Session, SessionConfig};
pub use task::{AmiConfig, spawn};
