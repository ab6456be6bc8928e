//! Asterisk's `queue_log`: a file (or an export of the realtime table) that
//! app_queue appends one line per queue event to (protocols.md 1.9).
//!
//! Why read it at all when AMI exists: it needs no manager account, it
//! states outcomes directly (`ABANDON` vs `EXITWITHTIMEOUT` vs
//! `EXITWITHKEY`, which AMI only implies), and it survives our restarts: in
//! the daemon the tail re-reads the file from its start and hands on only
//! what the restored engine checkpoint does not hold (see [`Restart`]), so
//! callers already waiting are known again and nothing is counted twice; a
//! tail run on its own keeps its read position in a small state file.
//! Its limits: whole-second times, no device state (no ringing, no
//! unavailable), and no list of waiting callers besides the file itself.
//!
//! The decoder is sans-IO ([`QueueLogDecoder::decode_line`]); the tail task
//! polls the file through `tokio::fs` (file I/O on the blocking pool, so a
//! stalled mount never stalls the runtime; no inotify: works the same on NFS
//! and in containers) and
//! follows rotation (the path names a new inode: finish the old file, then
//! read the new one from its start) and truncation (`copytruncate`: the file
//! got shorter than our position: start again from 0).

//!
//! Files, one step each: [`decoder`] (a line to events), [`splitter`]
//! (bytes to bounded lines), [`position`] (the read-position file of a tail
//! run on its own), [`task`] (the tail), [`replay`] (a recorded file through
//! the same decoder). The settings are [`QueueLogConfig`], in
//! `crate::config::sources`.

pub mod decoder;
pub mod position;
pub mod replay;
pub mod splitter;
pub mod task;

pub use crate::config::{QueueLogConfig, StartAt};
pub use crate::sources::Restart;
pub use decoder::QueueLogDecoder;
pub use replay::{QueueLogReplay, replay_decoder};
pub use splitter::LineSplitter;
pub use task::spawn;

use crate::sources::ami::mapping::AgentIds;

/// Longest accepted line. Real lines are under 300 bytes.
pub const MAX_LINE: usize = 8 * 1024;

impl QueueLogConfig {
    /// The decoder these settings describe, naming agents from `agents`
    /// (`(id, interface)`, see [`crate::sources::SourceCtx::agents`]).
    fn decoder(&self, agents: &[(String, String)]) -> Result<QueueLogDecoder, String> {
        let zone = match &self.time_zone {
            Some(z) => jiff::tz::TimeZone::get(z).map_err(|e| format!("time_zone {z:?}: {e}"))?,
            None => jiff::tz::TimeZone::system(),
        };
        let mut ids = AgentIds::default();
        for (id, iface) in agents {
            ids.insert(id, iface);
        }
        Ok(QueueLogDecoder::new(ids, zone))
    }
}
