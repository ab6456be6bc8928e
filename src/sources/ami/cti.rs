//! Sign-in and sign-out through a live AMI connection.
//!
//! Requests go to the source task over a channel, so they share the
//! connection (and its login) with the event stream, and the `QueueMember*`
//! event that each change raises comes back on that same stream: a success
//! is reported as confirmed once that event is seen (the session waits up to
//! a second for it). Replies that say the change was already in place
//! ("Already there" on sign-in, "Not there" / "Interface not found" on
//! sign-out) are successes: the goal state holds. When such a reply
//! contradicts what the events said, the session relists that queue.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::session::{ActionReply, AmiAction, CONFIRM_WAIT_MS, ReplyStatus};
use super::task::Command;
use crate::cti::{Cti, CtiFuture, CtiOutcome, CtiRequest, CtiVerb, RelistFuture};
use crate::sources::tcp::Request;

pub use crate::config::sources::SignOutMode;

/// The AMI CTI action; cheap to clone.
#[derive(Debug, Clone)]
pub struct AmiCti {
    tx: mpsc::Sender<Request<Command>>,
    sign_out: SignOutMode,
    pause_reason: String,
    timeout: Duration,
}

impl AmiCti {
    pub fn new(
        tx: mpsc::Sender<Request<Command>>,
        sign_out: SignOutMode,
        pause_reason: String,
        timeout: Duration,
    ) -> Self {
        AmiCti {
            tx,
            sign_out,
            pause_reason,
            timeout,
        }
    }
}

impl Cti for AmiCti {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        let this = self.clone();
        Box::pin(async move { this.run(req).await })
    }

    fn sign_out_pause_reason(&self) -> Option<&str> {
        (self.sign_out == SignOutMode::Pause).then_some(self.pause_reason.as_str())
    }

    /// A full `QueueStatus` relist on this connection.
    fn relist(&self) -> Option<RelistFuture> {
        Some(crate::sources::tcp::relist(self.tx.clone(), "AMI"))
    }
}

impl AmiCti {
    async fn run(&self, req: CtiRequest) -> CtiOutcome {
        let queue = req.queue.clone();
        let interface = req.interface.clone();
        match (req.verb, self.sign_out) {
            (CtiVerb::SignIn, SignOutMode::Remove) => self.add(&req).await,
            (CtiVerb::SignIn, SignOutMode::Pause) => {
                let r = self
                    .call(AmiAction::QueuePause {
                        queue,
                        interface,
                        paused: false,
                        reason: None,
                    })
                    .await;
                if r.status == ReplyStatus::Error && says(&r, "interface not found") {
                    return self.add(&req).await;
                }
                outcome(r, &[])
            }
            (CtiVerb::SignOut, SignOutMode::Remove) => {
                let r = self.call(AmiAction::QueueRemove { queue, interface }).await;
                outcome(r, &["not there"])
            }
            (CtiVerb::SignOut, SignOutMode::Pause) => {
                let r = self
                    .call(AmiAction::QueuePause {
                        queue,
                        interface,
                        paused: true,
                        reason: Some(self.pause_reason.clone()),
                    })
                    .await;
                outcome(r, &["interface not found"])
            }
        }
    }

    async fn add(&self, req: &CtiRequest) -> CtiOutcome {
        let r = self
            .call(AmiAction::QueueAdd {
                queue: req.queue.clone(),
                interface: req.interface.clone(),
                // The agent id, not the display name: queue_log call lines
                // and AMI events then name the agent as acdmon does.
                member_name: Some(req.agent.clone()),
            })
            .await;
        outcome(r, &["already there"])
    }

    async fn call(&self, action: AmiAction) -> ActionReply {
        let (tx, rx) = oneshot::channel();
        let limit = self.timeout + Duration::from_millis(CONFIRM_WAIT_MS as u64 + 500);
        let sent = tokio::time::timeout(
            limit,
            self.tx.send(Request::Cti(Command { action, reply: tx })),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return ActionReply {
                status: ReplyStatus::NotConnected,
                message: "AMI source is not running".into(),
                confirmed: None,
            };
        }
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => ActionReply {
                status: ReplyStatus::NotConnected,
                message: "AMI connection ended".into(),
                confirmed: None,
            },
            Err(_) => ActionReply {
                status: ReplyStatus::Timeout,
                message: "no reply from Asterisk in time".into(),
                confirmed: None,
            },
        }
    }
}

fn says(r: &ActionReply, text: &str) -> bool {
    r.message.to_ascii_lowercase().contains(text)
}

/// Maps a reply; `already` lists error messages that mean "already done".
fn outcome(r: ActionReply, already: &[&str]) -> CtiOutcome {
    match r.status {
        ReplyStatus::Success => CtiOutcome::ok(match r.confirmed {
            Some(true) => format!("{} (confirmed by event)", r.message),
            Some(false) => format!("{} (member event not seen)", r.message),
            None => r.message,
        }),
        ReplyStatus::Error if already.iter().any(|a| says(&r, a)) => {
            CtiOutcome::ok(format!("already in place: {}", r.message))
        }
        ReplyStatus::Error => CtiOutcome::failed(format!("Asterisk: {}", r.message)),
        ReplyStatus::Timeout => CtiOutcome::failed(format!("timeout: {}", r.message)),
        ReplyStatus::NotConnected | ReplyStatus::Invalid => CtiOutcome::failed(r.message),
    }
}
