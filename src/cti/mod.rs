//! CTI actions: how the ladder (and the manual sign-in/out routes) reach the
//! phone system. One trait, one implementation per platform, chosen per
//! agent by its `source`. The AMI and event-socket actions travel on their
//! source's own connection, so they live in its folder
//! (`sources/ami/cti.rs`, `sources/esl/cti.rs`) and come back from its
//! `spawn` in [`crate::sources::Started`]; this module keeps the trait, the
//! registry, the webhook and the log-only action. (In cluster mode another
//! instance may hold that connection: `crate::cluster::cti_proxy`.)

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub mod log_only;
pub mod registry;
pub mod runner;
pub mod webhook;

pub use registry::CtiRegistry;

tokio::task_local! {
    /// The idempotency key of the action being carried out, where one is
    /// known (cluster mode's leader gate, `crate::cluster::cti`): the webhook
    /// sends it as `Idempotency-Key`, so a receiver can drop a repeat.
    pub static IDEMPOTENCY_KEY: String;
}

/// Sign an agent into a queue, or out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtiVerb {
    SignIn,
    SignOut,
}

/// One request to the phone system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtiRequest {
    pub verb: CtiVerb,
    /// The agent id events use.
    pub agent: String,
    /// The CTI address (`PJSIP/1017`, `1000@default`); the agent id when none
    /// is configured.
    pub interface: String,
    /// Display name, passed along where the platform takes one (`MemberName`).
    pub name: Option<String>,
    pub queue: String,
}

/// What the phone system answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtiOutcome {
    pub ok: bool,
    pub detail: String,
    /// No phone system stands behind this outcome to report the membership
    /// change as an event (the log-only CTI of `replay`): the ladder applies
    /// it to the engine itself, so a replay shows the members the daemon
    /// showed, where the real CTI's effect (AMI QueueMemberAdded/Removed,
    /// the event-socket source's joined/left) moved them.
    #[serde(skip)]
    pub apply_membership: bool,
}

impl CtiOutcome {
    pub fn ok(detail: impl Into<String>) -> Self {
        CtiOutcome {
            ok: true,
            detail: detail.into(),
            apply_membership: false,
        }
    }
    pub fn failed(detail: impl Into<String>) -> Self {
        CtiOutcome {
            ok: false,
            detail: detail.into(),
            apply_membership: false,
        }
    }
}

pub type CtiFuture = Pin<Box<dyn Future<Output = CtiOutcome> + Send>>;

/// A membership relist in progress: done once the relist's events are
/// handed on (to the engine, or in cluster mode to the stream).
pub type RelistFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A way to sign agents in and out. Implementations own their timeouts and
/// retries; the future always resolves with an outcome, never panics.
pub trait Cti: Send + Sync {
    fn execute(&self, req: CtiRequest) -> CtiFuture;

    /// The pause reason this action signs out with, when it signs out by
    /// pausing the member (Asterisk `sign_out = "pause"`): a member paused
    /// with it is signed out, and eligible to be signed in (unpaused) again.
    fn sign_out_pause_reason(&self) -> Option<&str> {
        None
    }

    /// Re-reads the phone system's queue membership on this action's
    /// connection (AMI `QueueStatus`, the event socket's `callcenter_config`
    /// lists), where it has one: cluster mode's new CTI leader asks for it
    /// before acting (`crate::cluster::relist`).
    fn relist(&self) -> Option<RelistFuture> {
        None
    }
}
