//! The event-socket source on the shared reconnecting TCP driver
//! ([`crate::sources::tcp`], which holds the overflow policy: FreeSWITCH
//! drops events for a listener whose queue is full and kills it after 500
//! losses, so the read side never stalls on the engine). This file is the
//! glue between the driver and the sans-IO [`Session`]: it frames the bytes
//! read (each read takes up to 64 KiB and every complete frame in it is
//! parsed in place, borrowed, no per-event allocation on the plain path),
//! runs the once-a-second tick and the periodic resync, and carries CTI
//! commands in and replies out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::EslConfig;
use super::cti::EslCti;
use super::parser::{Framer, Parse};
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
    let esl = Esl {
        name: ctx.name.clone(),
        session: Session::new(cfg.session_config(counted_until)),
        resync_every: cfg.resync_interval.map(|d| d.millis()).filter(|ms| *ms > 0),
        reply_within: cfg.command_timeout.0 * 2,
        address: cfg.address,
        framer: Framer::default(),
        buf: Vec::new(),
        out: Vec::new(),
        waiters: HashMap::new(),
        next_id: 0,
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
    framer: Framer,
    /// Bytes read and not yet framed.
    buf: Vec<u8>,
    /// The session's outputs not yet taken by the driver.
    out: Vec<Output>,
    /// CTI commands awaiting their reply, with when they were sent.
    waiters: HashMap<u64, (oneshot::Sender<Result<String, String>>, Ts)>,
    next_id: u64,
    up: bool,
    next_tick: Ts,
    next_resync: Option<Ts>,
}

impl Protocol for Esl {
    type Command = EslCommand;

    fn handle_connected(&mut self, now: Ts) {
        self.up = true;
        self.framer = Framer::default();
        self.buf.clear();
        self.next_tick = now;
        self.next_resync = self.resync_every.map(|ms| now.plus_ms(ms));
        tracing::info!(source = %self.name, addr = %self.address, "connected to the event socket");
    }

    fn handle_input(&mut self, bytes: &[u8], now: Ts) {
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        loop {
            match self.framer.next(&self.buf[pos..]) {
                Parse::NeedMore => break,
                Parse::Skip(r, n) => {
                    pos += n;
                    self.out.push(Output::Reject(r));
                }
                Parse::Frame(f, n) => {
                    pos += n;
                    match f.message() {
                        Ok(m) => self.session.handle(m, now, &mut self.out),
                        Err(r) => self.out.push(Output::Reject(r)),
                    }
                }
            }
        }
        self.buf.drain(..pos);
    }

    fn handle_command(&mut self, c: EslCommand, now: Ts) {
        let id = self.next_id;
        self.next_id += 1;
        match self.session.api(id, &c.command, c.effect, &mut self.out) {
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
            self.session.tick(now, &mut self.out);
            let limit = self.reply_within;
            let overdue = |sent: &Ts| now.since(*sent) > limit.as_millis() as i64;
            if self.waiters.values().any(|(_, sent)| overdue(sent)) {
                self.out.push(Output::Close(format!(
                    "FreeSWITCH did not answer a command within {limit:?}"
                )));
            }
            self.next_tick = now.plus_ms(TICK_MS);
        }
        if let (Some(at), Some(every)) = (self.next_resync, self.resync_every)
            && now >= at
        {
            self.session.request_resync("periodic", now, &mut self.out);
            self.next_resync = Some(now.plus_ms(every));
        }
    }

    fn handle_overflow(&mut self, now: Ts) {
        self.session.request_resync("overflow", now, &mut self.out);
    }

    fn handle_disconnected(&mut self, why: &str, _now: Ts) {
        self.up = false;
        self.session.disconnected(why, &mut self.out);
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
        for o in self.out.drain(..) {
            match o {
                Output::Send(bytes) => out.bytes.extend_from_slice(&bytes),
                Output::Event(e) => out.events.push(e),
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
