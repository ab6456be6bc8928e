//! Sign-in and sign-out on FreeSWITCH mod_callcenter, through the ESL
//! source's own connection (protocols.md 2.4).
//!
//! In mod_callcenter an agent's status (`Logged Out`, `Available`, …) is
//! global and queue membership is a tier, so signing in to one queue is
//! "make the agent Available if it is logged out, then `tier add`", and
//! signing out is `tier del` (plus `Logged Out` when configured and no tier
//! is left). Tier changes fire no events, so the source emits
//! `agent_joined_queue` / `agent_left_queue` itself when FreeSWITCH answers
//! `+OK`. A tier that already exists is a successful sign-in: the ladder
//! asked for a state that holds.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::EslCommand;
use super::lists;
use super::session::quote_arg;
use crate::cti::{Cti, CtiFuture, CtiOutcome, CtiRequest, CtiVerb, RelistFuture};
use crate::event::EventKind;
use crate::sources::tcp::Request;

/// The CTI action of one ESL source.
#[derive(Debug, Clone)]
pub struct EslCti {
    tx: mpsc::Sender<Request<EslCommand>>,
    timeout: Duration,
    logs_out: bool,
}

impl EslCti {
    /// `tx` goes to the source task; `timeout` bounds a whole sign-in or
    /// sign-out (all its commands).
    pub fn new(tx: mpsc::Sender<Request<EslCommand>>, timeout: Duration, logs_out: bool) -> Self {
        EslCti {
            tx,
            timeout,
            logs_out,
        }
    }

    async fn api(&self, command: String, effect: Option<EventKind>) -> Result<String, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Cti(EslCommand {
                command,
                effect,
                reply,
            }))
            .await
            .map_err(|_| "the ESL source has stopped".to_string())?;
        rx.await
            .map_err(|_| "the ESL source has stopped".to_string())?
    }

    async fn run(&self, req: CtiRequest) -> Result<String, String> {
        for (what, v) in [("agent", &req.interface), ("queue", &req.queue)] {
            if v.trim().is_empty() || v.contains(['\n', '\r']) {
                return Err(format!("invalid {what} name {v:?}"));
            }
        }
        let agent = quote_arg(&req.interface);
        let queue = quote_arg(&req.queue);
        let cc = "callcenter_config";
        match req.verb {
            CtiVerb::SignIn => {
                let mut done = Vec::new();
                let status = self
                    .api(format!("{cc} agent get status {agent}"), None)
                    .await?;
                let status = status.trim();
                if status.starts_with("-ERR") {
                    return Err(format!("agent get status: {status}"));
                }
                if status == "Logged Out" {
                    let r = self
                        .api(format!("{cc} agent set status {agent} Available"), None)
                        .await?;
                    if !r.starts_with("+OK") {
                        return Err(format!("agent set status Available: {}", r.trim()));
                    }
                    done.push("status Available");
                }
                let joined = EventKind::AgentJoinedQueue {
                    agent: req.agent.clone(),
                    queue: req.queue.clone(),
                };
                let r = self
                    .api(format!("{cc} tier add {queue} {agent}"), Some(joined))
                    .await?;
                if r.starts_with("+OK") {
                    done.push("tier added");
                } else if r.contains("Tier already exist") {
                    done.push("tier already existed");
                } else {
                    return Err(format!("tier add: {}", r.trim()));
                }
                Ok(done.join(", "))
            }
            CtiVerb::SignOut => {
                let left = EventKind::AgentLeftQueue {
                    agent: req.agent.clone(),
                    queue: req.queue.clone(),
                };
                let r = self
                    .api(format!("{cc} tier del {queue} {agent}"), Some(left))
                    .await?;
                if !r.starts_with("+OK") {
                    return Err(format!("tier del: {}", r.trim()));
                }
                if !self.logs_out {
                    return Ok("tier deleted".into());
                }
                let list = self.api(format!("{cc} tier list"), None).await?;
                let (tiers, _) = lists::tiers(&list).map_err(|e| format!("tier list: {e}"))?;
                if tiers.iter().any(|t| t.agent == req.interface) {
                    return Ok("tier deleted; other tiers remain".into());
                }
                let r = self
                    .api(format!("{cc} agent set status {agent} 'Logged Out'"), None)
                    .await?;
                if !r.starts_with("+OK") {
                    return Err(format!("agent set status Logged Out: {}", r.trim()));
                }
                Ok("tier deleted, status Logged Out".into())
            }
        }
    }
}

impl Cti for EslCti {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        let this = self.clone();
        Box::pin(async move {
            match tokio::time::timeout(this.timeout, this.run(req)).await {
                Ok(Ok(detail)) => CtiOutcome::ok(detail),
                Ok(Err(detail)) => CtiOutcome::failed(detail),
                Err(_) => CtiOutcome::failed(format!(
                    "no reply from FreeSWITCH within {:?}",
                    this.timeout
                )),
            }
        })
    }

    /// The `callcenter_config` lists again on this connection.
    fn relist(&self) -> Option<RelistFuture> {
        Some(crate::sources::tcp::relist(self.tx.clone(), "event socket"))
    }
}
