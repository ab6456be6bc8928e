//! CTI actions through the AMI connection: what can be asked, how a reply
//! is judged, and how a success is confirmed by the `QueueMember*` event
//! that should follow it (Asterisk answers `Success` before it has
//! changed anything that other clients see).

use super::super::mapping::MemberChange;
use super::super::parser::MAX_LINE;
use super::{Pending, Session};
use crate::time::Ts;

/// A queue action sent on behalf of the CTI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiAction {
    QueueAdd {
        queue: String,
        interface: String,
        member_name: Option<String>,
    },
    QueueRemove {
        queue: String,
        interface: String,
    },
    QueuePause {
        queue: String,
        interface: String,
        paused: bool,
        reason: Option<String>,
    },
}

impl AmiAction {
    pub(super) fn queue_interface(&self) -> (&str, &str) {
        match self {
            AmiAction::QueueAdd {
                queue, interface, ..
            }
            | AmiAction::QueueRemove { queue, interface }
            | AmiAction::QueuePause {
                queue, interface, ..
            } => (queue, interface),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    Success,
    Error,
    Timeout,
    NotConnected,
    Invalid,
}

/// The answer to an [`AmiAction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReply {
    pub status: ReplyStatus,
    /// Asterisk's `Message:` (or why there is none).
    pub message: String,
    /// After a success: whether the matching `QueueMember*` event came back.
    pub confirmed: Option<bool>,
}

impl ActionReply {
    pub(super) fn local(status: ReplyStatus, message: impl Into<String>) -> Self {
        ActionReply {
            status,
            message: message.into(),
            confirmed: None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Confirm {
    pub(super) token: u64,
    pub(super) action: AmiAction,
    pub(super) message: String,
    pub(super) deadline: Ts,
}

impl Session {
    /// Sends a CTI action. The reply comes back through
    /// [`Session::poll_replies`] with `token`.
    pub fn submit(&mut self, token: u64, action: AmiAction, now: Ts) {
        self.now = self.now.max(now);
        if self.passive || !self.logged_in() {
            self.replies.push((
                token,
                ActionReply::local(ReplyStatus::NotConnected, "AMI session not logged in"),
            ));
            return;
        }
        let mut headers: Vec<(&str, String)> = Vec::new();
        let name = match &action {
            AmiAction::QueueAdd {
                queue,
                interface,
                member_name,
            } => {
                headers.push(("Queue", queue.clone()));
                headers.push(("Interface", interface.clone()));
                if let Some(n) = member_name {
                    headers.push(("MemberName", n.clone()));
                }
                "QueueAdd"
            }
            AmiAction::QueueRemove { queue, interface } => {
                headers.push(("Queue", queue.clone()));
                headers.push(("Interface", interface.clone()));
                "QueueRemove"
            }
            AmiAction::QueuePause {
                queue,
                interface,
                paused,
                reason,
            } => {
                headers.push(("Queue", queue.clone()));
                headers.push(("Interface", interface.clone()));
                headers.push(("Paused", if *paused { "true" } else { "false" }.into()));
                if let Some(r) = reason {
                    headers.push(("Reason", r.clone()));
                }
                "QueuePause"
            }
        };
        // No line breaks or overlong lines: a queue name carrying "\r\n"
        // would inject a second action.
        for (k, v) in &headers {
            if v.is_empty() || v.contains(['\r', '\n']) || k.len() + 2 + v.len() > MAX_LINE {
                self.replies.push((
                    token,
                    ActionReply::local(
                        ReplyStatus::Invalid,
                        format!("{k} is empty, too long or contains a line break"),
                    ),
                ));
                return;
            }
        }
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.send(Pending::Action { token, action }, name, &refs);
    }

    /// "Already there" / "Not there" / "Interface not found" say something
    /// about membership; when it contradicts what we track, relist the queue.
    pub(super) fn reconcile_refusal(&mut self, action: &AmiAction, message: &str) {
        let (queue, interface) = action.queue_interface();
        let known = self.tracker.has_member(queue, interface);
        let m = message.to_ascii_lowercase();
        let says_member = if m.contains("already there") {
            Some(true)
        } else if m.contains("not there") || m.contains("interface not found") {
            Some(false)
        } else {
            None
        };
        if says_member.is_some_and(|s| s != known) {
            tracing::info!(
                queue,
                interface,
                reply = message,
                "membership differs from what AMI events said; relisting the queue"
            );
            if self.resync.is_none() {
                self.start_resync(Some(queue.to_string()));
            } else {
                self.queued_resync = Some(queue.to_string());
            }
        }
    }

    pub(super) fn confirm(
        &mut self,
        change: MemberChange,
        queue: &str,
        interface: &str,
        paused: bool,
    ) {
        let hit = self.confirms.iter().position(|c| {
            let (q, i) = c.action.queue_interface();
            q == queue
                && i.eq_ignore_ascii_case(interface)
                && match (&c.action, change) {
                    (AmiAction::QueueAdd { .. }, MemberChange::Added) => true,
                    (AmiAction::QueueRemove { .. }, MemberChange::Removed) => true,
                    (AmiAction::QueuePause { paused: p, .. }, MemberChange::Pause) => *p == paused,
                    _ => false,
                }
        });
        if let Some(i) = hit {
            let c = self.confirms.swap_remove(i);
            self.replies.push((
                c.token,
                ActionReply {
                    status: ReplyStatus::Success,
                    message: c.message,
                    confirmed: Some(true),
                },
            ));
        }
    }
}
