//! The AMI source on the shared reconnecting TCP driver
//! ([`crate::sources::tcp`], which holds the overflow policy): this file is
//! the glue between the driver and the sans-IO [`Session`], and the CTI
//! channel's end.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::cti::AmiCti;
use super::mapping::AgentIds;
use super::session::{ActionReply, AmiAction, ReplyStatus, Session, SessionConfig};
pub use crate::config::AmiConfig;
use crate::sources::tcp::{self, Link, Protocol, Transmit};
use crate::sources::{SourceCtx, Started};
use crate::time::Ts;

/// CTI requests waiting for the task.
const COMMANDS: usize = 64;

impl AmiConfig {
    /// The agent-id rule plus the `[[agents]]` directory (`(id, interface)`).
    pub fn agent_ids(&self, agents: &[(String, String)]) -> AgentIds {
        let mut ids = AgentIds::new(self.agent_id);
        for (id, interface) in agents {
            ids.insert(id, interface);
        }
        ids
    }

    fn session_config(&self, agents: &[(String, String)]) -> SessionConfig {
        SessionConfig {
            username: self.username.clone(),
            secret: self.secret.clone(),
            auth: self.auth,
            events: self.events.clone(),
            ping_interval_ms: self.ping_interval.millis().max(1),
            action_timeout_ms: self.action_timeout.millis().max(1),
            resync_interval_ms: self.resync_interval.millis().max(0),
            ids: self.agent_ids(agents),
        }
    }

    fn link(&self) -> Link {
        Link {
            address: self.address.clone(),
            connect_timeout: self.connect_timeout.0,
            reconnect_min: self.reconnect_min.0,
            reconnect_max: self.reconnect_max.0,
            label: "ami",
            what: "AMI",
            pbx: "Asterisk",
            max_pending: tcp::MAX_PENDING,
        }
    }
}

/// One queue action from the CTI, answered through `reply`.
#[derive(Debug)]
pub struct Command {
    pub action: AmiAction,
    pub reply: oneshot::Sender<ActionReply>,
}

/// Starts the live source; its [`Started::cti`] signs agents in and out
/// through this connection.
pub fn spawn(cfg: AmiConfig, ctx: SourceCtx) -> Started {
    let (tx, rx) = mpsc::channel(COMMANDS);
    let cti = AmiCti::new(
        tx,
        cfg.sign_out,
        cfg.pause_reason.clone(),
        cfg.action_timeout.0,
    );
    let ami = Ami {
        name: ctx.name.clone(),
        config: cfg.session_config(&ctx.agents),
        session: None,
        waiters: HashMap::new(),
        next_token: 1,
        was_logged_in: false,
        origins: ctx.origins,
    };
    let task = tokio::spawn(tcp::run(cfg.link(), ami, ctx, rx));
    Started {
        task,
        cti: Some(Arc::new(cti)),
    }
}

/// The AMI protocol for the TCP driver.
struct Ami {
    name: Arc<str>,
    config: SessionConfig,
    /// The session of the current (or the last) connection: a reconnect
    /// starts from it, so what it knew carries over until the relist.
    session: Option<Session>,
    /// CTI actions sent and not answered, by token.
    waiters: HashMap<u64, oneshot::Sender<ActionReply>>,
    next_token: u64,
    was_logged_in: bool,
    /// Hand on each event's origin ([`crate::sources::SourceCtx::origins`]).
    origins: bool,
}

impl Protocol for Ami {
    type Command = Command;

    fn handle_connected(&mut self, now: Ts) {
        let config = self.config.clone();
        let mut session = match self.session.take() {
            Some(previous) => Session::reconnect(config, previous, now),
            None => Session::new(config, now),
        };
        if self.origins {
            session.trace_origins();
        }
        self.session = Some(session);
        self.was_logged_in = false;
    }

    fn handle_input(&mut self, bytes: &[u8], now: Ts) {
        if let Some(s) = self.session.as_mut() {
            s.handle_input(bytes, now);
        }
    }

    fn handle_command(&mut self, c: Command, now: Ts) {
        let Some(s) = self.session.as_mut() else {
            let _ = c.reply.send(not_connected("no session"));
            return;
        };
        let token = self.next_token;
        self.next_token += 1;
        self.waiters.insert(token, c.reply);
        s.submit(token, c.action, now);
    }

    fn handle_timeout(&mut self, now: Ts) {
        if let Some(s) = self.session.as_mut() {
            s.handle_timeout(now);
        }
    }

    fn handle_overflow(&mut self, _now: Ts) {
        if let Some(s) = self.session.as_mut() {
            s.request_resync();
        }
    }

    fn handle_disconnected(&mut self, why: &str, _now: Ts) {
        for (_, w) in self.waiters.drain() {
            let _ = w.send(not_connected(why));
        }
    }

    fn poll_timeout(&self) -> Option<Ts> {
        self.session.as_ref().and_then(Session::poll_timeout)
    }

    fn poll_transmit(&mut self, out: &mut Transmit) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        out.bytes.extend_from_slice(&s.poll_transmit());
        if self.origins {
            out.origins.resize(out.events.len(), None);
            s.poll_events_traced(&mut out.events, &mut out.origins);
        } else {
            s.poll_events(&mut out.events);
        }
        for (token, reply) in s.poll_replies() {
            if let Some(w) = self.waiters.remove(&token) {
                let _ = w.send(reply);
            }
        }
        out.rejects.extend(s.poll_rejects());
        if s.logged_in() && !self.was_logged_in {
            self.was_logged_in = true;
            tracing::info!(source = %self.name, version = s.version().unwrap_or("?"), "AMI logged in");
        }
        if let Some(e) = s.error() {
            out.close = Some(e.to_string());
        }
    }

    fn is_up(&self) -> bool {
        self.was_logged_in
    }

    fn is_synced(&self) -> bool {
        self.session.as_ref().is_some_and(Session::synced)
    }

    fn refuse(&mut self, c: Command, why: &str) {
        let _ = c.reply.send(not_connected(why));
    }
}

fn not_connected(why: &str) -> ActionReply {
    ActionReply {
        status: ReplyStatus::NotConnected,
        message: format!("AMI not connected: {why}"),
        confirmed: None,
    }
}
