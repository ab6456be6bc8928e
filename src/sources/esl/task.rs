//! The event-socket source on the shared reconnecting TCP driver
//! ([`crate::sources::tcp`], which holds the overflow policy: FreeSWITCH
//! drops events for a listener whose queue is full and kills it after 500
//! losses, so the read side never stalls on the engine). This file is the
//! glue between the driver and the sans-IO [`Session`] (which frames the
//! bytes read itself): it runs the once-a-second tick and the periodic
//! resync, and carries CTI commands in and replies out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::EslConfig;
use super::cti::EslCti;
use super::session::{Output, Session};
use crate::event::EventKind;
use crate::sources::tcp::{self, Link, Protocol, Transmit};
use crate::sources::{SourceCtx, Started};
use crate::time::Ts;

/// One `api` command from the CTI action, with where to send the reply.
#[derive(Debug)]
pub struct EslCommand {
    /// The command after `api ` (e.g. `callcenter_config tier add q a`).
    pub command: String,
    /// A domain event to emit when FreeSWITCH answers `+OK`.
    pub effect: Option<EventKind>,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// How often the session's timers (wrap-ups, delays, a resync's deadline)
/// and the CTI replies' deadline are checked.
const TICK_MS: i64 = 1_000;

/// Starts the live source; its [`Started::cti`] signs agents in and out
/// through its connection.
pub fn spawn(cfg: EslConfig, ctx: SourceCtx) -> Started {
    // A handful of ladder actions at a time; more wait (backpressure).
    let (tx, rx) = mpsc::channel(64);
    let cti = EslCti::new(tx, cfg.command_timeout.0, cfg.sign_out_logs_out);
    let counted_until = ctx.restart.and_then(|r| r.counted_until);
    let link = Link {
        address: cfg.address.clone(),
        connect_timeout: cfg.connect_timeout.0,
        reconnect_min: Duration::from_millis(500),
        reconnect_max: Duration::from_secs(30),
        label: "esl",
        what: "event socket",
        pbx: "FreeSWITCH",
        max_pending: tcp::MAX_PENDING,
    };
    let mut session = cfg.session_config(counted_until);
    session.origins = ctx.origins;
    let esl = Esl {
        name: ctx.name.clone(),
        session: Session::new(session),
        resync_every: cfg.resync_interval.map(|d| d.millis()).filter(|ms| *ms > 0),
        reply_within: cfg.command_timeout.0 * 2,
        address: cfg.address,
        waiters: HashMap::new(),
        next_id: 0,
        overdue: None,
        up: false,
        next_tick: Ts::ZERO,
        next_resync: None,
    };
    Started {
        task: tokio::spawn(tcp::run(link, esl, ctx, rx)),
        cti: Some(Arc::new(cti)),
    }
}

/// The event-socket protocol for the TCP driver.
struct Esl {
    name: Arc<str>,
    address: String,
    session: Session,
    /// `resync_interval`, in ms (off when absent or zero).
    resync_every: Option<i64>,
    /// A command FreeSWITCH never answers would shift every later reply
    /// onto the wrong command, so one overdue by this drops the connection.
    reply_within: Duration,
    /// CTI commands awaiting their reply, with when they were sent.
    waiters: HashMap<u64, (oneshot::Sender<Result<String, String>>, Ts)>,
    next_id: u64,
    /// Set when a CTI reply is overdue: the connection closes.
    overdue: Option<String>,
    up: bool,
    next_tick: Ts,
    next_resync: Option<Ts>,
}

impl Protocol for Esl {
    type Command = EslCommand;

    fn handle_connected(&mut self, now: Ts) {
        self.up = true;
        self.next_tick = now;
        self.next_resync = self.resync_every.map(|ms| now.plus_ms(ms));
        tracing::info!(source = %self.name, addr = %self.address, "connected to the event socket");
    }

    fn handle_input(&mut self, bytes: &[u8], now: Ts) {
        self.session.handle_input(bytes, now);
    }

    fn handle_command(&mut self, c: EslCommand, now: Ts) {
        let id = self.next_id;
        self.next_id += 1;
        match self.session.submit(id, &c.command, c.effect) {
            Ok(()) => {
                self.waiters.insert(id, (c.reply, now));
            }
            Err(e) => {
                let _ = c.reply.send(Err(e));
            }
        }
    }

    fn handle_timeout(&mut self, now: Ts) {
        if now >= self.next_tick {
            self.session.handle_timeout(now);
            let limit = self.reply_within;
            let overdue = |sent: &Ts| now.since(*sent) > limit.as_millis() as i64;
            if self.waiters.values().any(|(_, sent)| overdue(sent)) {
                self.overdue = Some(format!(
                    "FreeSWITCH did not answer a command within {limit:?}"
                ));
            }
            self.next_tick = now.plus_ms(TICK_MS);
        }
        if let (Some(at), Some(every)) = (self.next_resync, self.resync_every)
            && now >= at
        {
            self.session.request_resync("periodic", now);
            self.next_resync = Some(now.plus_ms(every));
        }
    }

    fn handle_overflow(&mut self, now: Ts) {
        self.session.request_resync("overflow", now);
    }

    fn handle_disconnected(&mut self, why: &str, _now: Ts) {
        self.up = false;
        self.overdue = None;
        self.session.handle_disconnect(why);
        for (_, (w, _)) in self.waiters.drain() {
            let _ = w.send(Err(format!("connection lost: {why}")));
        }
    }

    fn poll_timeout(&self) -> Option<Ts> {
        Some(match self.next_resync {
            Some(r) => r.min(self.next_tick),
            None => self.next_tick,
        })
    }

    fn poll_transmit(&mut self, out: &mut Transmit) {
        if let Some(why) = self.overdue.take() {
            out.close.get_or_insert(why);
        }
        while let Some(o) = self.session.poll_output() {
            match o {
                Output::Send(bytes) => out.bytes.extend_from_slice(&bytes),
                Output::Event(e) => {
                    out.events.push(e);
                    out.origins.push(None);
                }
                Output::Traced(e, o) => {
                    out.events.push(e);
                    out.origins.push(Some(o));
                }
                Output::Reject(r) => out.rejects.push(r),
                Output::ResyncStarted(reason) => {
                    tracing::info!(source = %self.name, %reason, "resync started");
                }
                Output::Synced => {}
                Output::Reply { id, result } => {
                    if let Some((w, _)) = self.waiters.remove(&id) {
                        let _ = w.send(result);
                    }
                }
                Output::Close(why) => {
                    out.close.get_or_insert(why);
                }
            }
        }
    }

    fn is_up(&self) -> bool {
        self.up
    }

    fn is_synced(&self) -> bool {
        self.session.is_synced()
    }

    fn refuse(&mut self, c: EslCommand, _why: &str) {
        let _ = c.reply.send(Err("not connected to FreeSWITCH".into()));
    }
}
