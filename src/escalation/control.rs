//! How the HTTP routes reach the ladder, which lives on the engine thread:
//! commands on a bounded channel, each with a one-shot reply, drained by the
//! observer before every publish (at least every 100 ms in the daemon).
//!
//! The [`LadderHandle`] is made with the ladder, before the engine starts,
//! and the daemon hands it to the HTTP state (`AppState::ladder`): each
//! daemon's routes hold their own ladder, so several daemons in one test
//! process never see each other's.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Entry;
use crate::store::Store;

/// Commands waiting for the engine thread; a full channel makes the HTTP
/// handler wait (a person clicking, never a flood).
pub const CONTROL_CAPACITY: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Storage(String),
}

pub type Reply = oneshot::Sender<Result<Entry, ControlError>>;

#[derive(Debug)]
pub enum Command {
    Approve {
        id: u64,
        by: String,
        reply: Reply,
    },
    Reject {
        id: u64,
        by: String,
        reply: Reply,
    },
    SignIn {
        agent: String,
        queue: String,
        by: String,
        reply: Reply,
    },
    SignOut {
        agent: String,
        queue: String,
        by: String,
        reply: Reply,
    },
    /// Cluster mode, a follower: a record of the leader's escalation stream
    /// to copy into the local audit log.
    Mirror(super::stream::Record),
    /// Cluster mode, the leader: entry `entry` is in the escalation stream
    /// (`error: None`), or could not be appended; its actions wait for this.
    Appended {
        entry: u64,
        error: Option<String>,
    },
    /// Cluster mode: this instance holds the site's `cti` lease now and has
    /// read the escalation stream to its end; take over the ladders.
    Lead,
    /// Cluster mode: the `cti` lease is lost; decide nothing more.
    Follow,
}

/// What the routes hold: the command channel and the audit log (read
/// directly, through the store's own reader connection).
#[derive(Clone)]
pub struct LadderHandle {
    pub tx: mpsc::Sender<Command>,
    pub store: Arc<Store>,
    /// Cluster mode: what the ladder writes, for the escalation stream
    /// (taken once, by the cluster's escalation task).
    pub stream: Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<super::stream::Record>>>>,
}

impl LadderHandle {
    /// Sends a command and waits for the engine thread's answer.
    pub async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<Entry, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| ControlError::Unavailable("the engine is stopping".into()))?;
        match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ControlError::Unavailable("the engine is stopping".into())),
            Err(_) => Err(ControlError::Unavailable(
                "the engine did not answer within 10s".into(),
            )),
        }
    }
}
