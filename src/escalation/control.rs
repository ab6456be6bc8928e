//! How the HTTP routes reach the ladder, which lives on the engine thread:
//! commands on a bounded channel, each with a one-shot reply, drained by the
//! observer before every publish (at least every 100 ms in the daemon).
//!
//! Why a small registry keyed by the daemon's [`Publisher`]: the router is
//! built from the shared `AppState`, which the ladder is not part of; the
//! publisher is unique per daemon, so several daemons in one test process
//! never see each other's ladder.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{mpsc, oneshot};

use super::Entry;
use crate::state::Publisher;
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
}

/// What the routes hold: the command channel and the audit log (read
/// directly, through the store's own reader connection).
#[derive(Clone)]
pub struct LadderHandle {
    pub tx: mpsc::Sender<Command>,
    pub store: Arc<Store>,
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

type Handles = Mutex<Vec<(Weak<Publisher>, LadderHandle)>>;

fn handles() -> &'static Handles {
    static H: std::sync::OnceLock<Handles> = std::sync::OnceLock::new();
    H.get_or_init(|| Mutex::new(Vec::new()))
}

/// Makes `handle` the ladder of the daemon that publishes through `publisher`.
pub fn attach(publisher: &Arc<Publisher>, handle: LadderHandle) {
    let mut h = handles().lock().unwrap_or_else(|e| e.into_inner());
    h.retain(|(p, _)| p.strong_count() > 0 && !std::ptr::eq(p.as_ptr(), Arc::as_ptr(publisher)));
    h.push((Arc::downgrade(publisher), handle));
}

/// The ladder of the daemon publishing through `publisher`, if it runs one.
pub fn handle_for(publisher: &Publisher) -> Option<LadderHandle> {
    let h = handles().lock().unwrap_or_else(|e| e.into_inner());
    h.iter()
        .find(|(p, _)| std::ptr::eq(p.as_ptr(), publisher))
        .map(|(_, l)| l.clone())
}
