//! What a cluster's CTI leader tells the other instances of its site: every
//! audit entry it writes and every result it appends, in the order written,
//! on the escalation stream (`crate::cluster::cti`).
//!
//! Why the log itself and not the ladder's state: the audit log is already
//! the ladder's memory (a restarted single node rebuilds its ladders from
//! it), so a follower that holds the same log holds the same ladders, and a
//! follower that becomes leader resumes exactly as a restarted node would.

use serde::{Deserialize, Serialize};

use super::Entry;
use crate::time::Ts;

/// One record of the escalation stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A decision as written, before any of its actions runs.
    Entry { entry: Entry },
    /// A result appended to an entry's action (`action: None`: to its
    /// decision).
    Mark {
        entry: u64,
        action: Option<usize>,
        ts_ms: i64,
        result: String,
        #[serde(default)]
        detail: Option<String>,
        #[serde(default)]
        by: Option<String>,
    },
}

impl Record {
    /// The id of the entry the record belongs to.
    pub fn entry_id(&self) -> u64 {
        match self {
            Record::Entry { entry } => entry.id,
            Record::Mark { entry, .. } => *entry,
        }
    }

    /// The last subject token (`acdmon.<site>.escalation.<token>`).
    pub fn subject_token(&self) -> &'static str {
        match self {
            Record::Entry { .. } => "entry",
            Record::Mark { .. } => "mark",
        }
    }

    /// JetStream's de-duplication id: a publish retried after a lost ack is
    /// stored once.
    pub fn msg_id(&self) -> String {
        match self {
            Record::Entry { entry } => format!("e:{}", entry.id),
            Record::Mark {
                entry,
                action,
                ts_ms,
                result,
                ..
            } => format!(
                "m:{entry}:{}:{ts_ms}:{result}",
                action.map_or("d".to_string(), |a| a.to_string())
            ),
        }
    }

    pub fn mark_ts(&self) -> Option<Ts> {
        match self {
            Record::Mark { ts_ms, .. } => Some(Ts(*ts_ms)),
            Record::Entry { .. } => None,
        }
    }
}
