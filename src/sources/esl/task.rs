//! The tokio driver of an ESL [`Session`]: connects, moves bytes, ticks the
//! clock, reconnects with exponential backoff and jitter, and carries CTI
//! commands in and replies out.
//!
//! FreeSWITCH drops events for a listener whose queue is full and kills it
//! after 500 losses, so the read side must never stall on us: each read
//! takes up to 64 KiB, every complete frame in it is parsed in place
//! (borrowed, no per-event allocation on the plain path) and the resulting
//! events go to the engine as one batch per read. The engine's inbox is
//! bounded (backpressure), but it applies ~1 M events/s against the few
//! hundred per second a busy call centre fires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::EslConfig;
use super::cti::EslCti;
use super::parser::{Framer, Parse};
use super::session::{Output, Session};
use crate::event::{Event, EventKind};
use crate::sources::backoff::Backoff;
use crate::sources::{Envelope, Inbox, RejectCounter, SourceCtx, SourceHealth, Started};
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

/// Starts the live source; its [`Started::cti`] signs agents in and out
/// through its connection.
pub fn spawn(cfg: EslConfig, ctx: SourceCtx) -> Started {
    // A handful of ladder actions at a time; more wait (backpressure).
    let (tx, rx) = mpsc::channel(64);
    let cti = EslCti::new(tx, cfg.command_timeout.0, cfg.sign_out_logs_out);
    let counted_until = ctx.restart.and_then(|r| r.counted_until);
    let driver = Driver {
        name: ctx.name,
        session: Session::new(cfg.session_config(counted_until)),
        cfg,
        inbox: ctx.inbox,
        health: ctx.health,
        rejects: ctx.rejects,
        commands: rx,
        waiters: HashMap::new(),
        next_id: 0,
        batch: Vec::new(),
    };
    Started {
        task: tokio::spawn(driver.run()),
        cti: Some(Arc::new(cti)),
    }
}

struct Driver {
    name: Arc<str>,
    cfg: EslConfig,
    session: Session,
    inbox: Inbox,
    health: Arc<SourceHealth>,
    rejects: Arc<RejectCounter>,
    commands: mpsc::Receiver<EslCommand>,
    /// CTI commands awaiting their reply, with when they were sent. A
    /// command FreeSWITCH never answers would shift every later reply onto
    /// the wrong command, so an overdue one drops the connection.
    waiters: HashMap<
        u64,
        (
            oneshot::Sender<Result<String, String>>,
            tokio::time::Instant,
        ),
    >,
    next_id: u64,
    batch: Vec<Event>,
}

/// Why a connection ended.
enum End {
    Closed(String),
    /// The engine stopped: the source stops too.
    EngineGone,
}

const READ_CHUNK: usize = 64 * 1024;

impl Driver {
    async fn run(mut self) {
        let mut backoff = Backoff::new();
        let addr = self.cfg.address.clone();
        loop {
            let connect =
                tokio::time::timeout(self.cfg.connect_timeout.0, TcpStream::connect(&addr));
            let why = match connect.await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    self.health.set_connected(true);
                    self.health.set_synced(false);
                    tracing::info!(source = %self.name, %addr, "connected to the event socket");
                    let end = self.serve(stream, &mut backoff).await;
                    let mut out = Vec::new();
                    let why = match &end {
                        End::Closed(w) => w.clone(),
                        End::EngineGone => "engine stopped".into(),
                    };
                    self.session.disconnected(&why, &mut out);
                    let _ = self.process(out, &mut None).await;
                    for (_, (w, _)) in self.waiters.drain() {
                        let _ = w.send(Err(format!("connection lost: {why}")));
                    }
                    let _ = self.deliver().await;
                    self.health.set_connected(false);
                    if matches!(end, End::EngineGone) || self.inbox.is_closed() {
                        return;
                    }
                    why
                }
                Ok(Err(e)) => format!("connect {addr}: {e}"),
                Err(_) => format!("connect {addr}: timed out"),
            };
            self.health.set_connected(false);
            self.health.set_error(why.clone());
            let delay = backoff.next_delay();
            tracing::warn!(source = %self.name, reason = %why, retry_in = ?delay, "event socket down; reconnecting");
            if !self.wait_refusing_commands(delay).await {
                return;
            }
        }
    }

    /// Sleeps `d`, answering CTI commands with "not connected". False when
    /// the engine has stopped.
    async fn wait_refusing_commands(&mut self, d: Duration) -> bool {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return !self.inbox.is_closed(),
                cmd = self.commands.recv() => match cmd {
                    Some(c) => {
                        let _ = c.reply.send(Err("not connected to FreeSWITCH".into()));
                    }
                    None => std::future::pending::<()>().await,
                },
            }
        }
    }

    async fn serve(&mut self, stream: TcpStream, backoff: &mut Backoff) -> End {
        let (mut rd, mut wr) = stream.into_split();
        let mut framer = Framer::default();
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let period = self
            .cfg
            .resync_interval
            .map(|d| d.0)
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(86_400 * 365));
        let mut periodic = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut out = Vec::new();
        let mut wr = Some(&mut wr);
        loop {
            tokio::select! {
                r = rd.read(&mut chunk) => {
                    let n = match r {
                        Ok(0) => return End::Closed("connection closed by FreeSWITCH".into()),
                        Ok(n) => n,
                        Err(e) => return End::Closed(format!("read: {e}")),
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let now = Ts::now();
                    let mut pos = 0;
                    loop {
                        match framer.next(&buf[pos..]) {
                            Parse::NeedMore => break,
                            Parse::Skip(r, n) => {
                                pos += n;
                                out.push(Output::Reject(r));
                            }
                            Parse::Frame(f, n) => {
                                pos += n;
                                match f.message() {
                                    Ok(m) => self.session.handle(m, now, &mut out),
                                    Err(r) => out.push(Output::Reject(r)),
                                }
                            }
                        }
                    }
                    buf.drain(..pos);
                }
                cmd = self.commands.recv() => {
                    let Some(c) = cmd else { continue };
                    let id = self.next_id;
                    self.next_id += 1;
                    match self.session.api(id, &c.command, c.effect, &mut out) {
                        Ok(()) => { self.waiters.insert(id, (c.reply, tokio::time::Instant::now())); }
                        Err(e) => { let _ = c.reply.send(Err(e)); }
                    }
                }
                _ = tick.tick() => {
                    self.session.tick(Ts::now(), &mut out);
                    let limit = self.cfg.command_timeout.0 * 2;
                    if self.waiters.values().any(|(_, sent)| sent.elapsed() > limit) {
                        out.push(Output::Close(format!(
                            "FreeSWITCH did not answer a command within {limit:?}"
                        )));
                    }
                }
                _ = periodic.tick() => self.session.request_resync("periodic", Ts::now(), &mut out),
            }
            let closed = self.process(std::mem::take(&mut out), &mut wr).await;
            if self.session.is_synced() {
                backoff.reset();
            }
            if !self.deliver().await {
                return End::EngineGone;
            }
            if let Some(why) = closed {
                return End::Closed(why);
            }
        }
    }

    /// Acts on the session's outputs; returns why to close, if it must.
    async fn process(
        &mut self,
        out: Vec<Output>,
        wr: &mut Option<&mut tokio::net::tcp::OwnedWriteHalf>,
    ) -> Option<String> {
        let mut close = None;
        for o in out {
            match o {
                Output::Send(bytes) => {
                    if let Some(w) = wr.as_mut()
                        && let Err(e) = w.write_all(&bytes).await
                    {
                        close.get_or_insert(format!("write: {e}"));
                    }
                }
                Output::Event(e) => self.batch.push(e),
                Output::Reject(r) => {
                    self.rejects
                        .record(&self.name, &format_args!("esl {}", self.cfg.address), &r)
                }
                Output::ResyncStarted(reason) => {
                    self.health.set_synced(false);
                    tracing::info!(source = %self.name, %reason, "resync started");
                }
                Output::Synced => self.health.set_synced(true),
                Output::Reply { id, result } => {
                    if let Some((w, _)) = self.waiters.remove(&id) {
                        let _ = w.send(result);
                    }
                }
                Output::Close(why) => {
                    close.get_or_insert(why);
                }
            }
        }
        close
    }

    /// Sends the batch to the engine. False when the engine is gone.
    async fn deliver(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let events = std::mem::take(&mut self.batch);
        self.health.add_events(events.len() as u64);
        self.inbox
            .send(Envelope::Batch {
                source: self.name.clone(),
                events,
            })
            .await
            .is_ok()
    }
}
