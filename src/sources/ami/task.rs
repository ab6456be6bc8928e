//! The tokio driver: one task per configured AMI source that moves bytes
//! between the socket and [`Session`], runs its timers, and forwards its
//! events to the engine.
//!
//! Asterisk drops a manager client whose socket it cannot write to within
//! `writetimeout` (100 ms by default), so this task never stops reading:
//! events go to a local queue and are handed to the engine's bounded inbox
//! from a `select!` branch that only runs when the inbox has room. If the
//! engine stalls long enough for that queue to reach [`MAX_PENDING`], the
//! queued events are dropped (counted as `overflow`), the source reports
//! itself unsynced, and a fresh `QueueStatus` rebuilds the queues: losing
//! some history beats being disconnected and losing all of it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::sources::backoff::Backoff;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::cti::AmiCti;
use super::mapping::AgentIds;
use super::session::{ActionReply, AmiAction, ReplyStatus, Session, SessionConfig};
pub use crate::config::AmiConfig;
use crate::event::Event;
use crate::sources::{Envelope, Reject, RejectReason, SourceCtx, Started};
use crate::time::Ts;

/// Most events held for the engine before the overflow policy applies.
pub const MAX_PENDING: usize = 200_000;
/// Events per inbox message.
const BATCH: usize = 4_096;
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
    let task = tokio::spawn(run(cfg, ctx, rx));
    Started {
        task,
        cti: Some(Arc::new(cti)),
    }
}

enum End {
    /// Reconnect after a delay.
    Retry(String),
    /// The engine is gone: stop.
    Stop,
}

async fn run(cfg: AmiConfig, ctx: SourceCtx, mut commands: mpsc::Receiver<Command>) {
    let (name, inbox, health) = (&ctx.name, &ctx.inbox, &ctx.health);
    let mut backoff = Backoff::with_bounds(cfg.reconnect_min.0, cfg.reconnect_max.0);
    let mut previous: Option<Session> = None;
    // Events not yet taken by the engine survive a reconnect.
    let mut pending: VecDeque<Event> = VecDeque::new();
    loop {
        health.set_connected(false);
        let connect = tokio::time::timeout(
            cfg.connect_timeout.0,
            TcpStream::connect(cfg.address.as_str()),
        )
        .await;
        let why = match connect {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let now = Ts::now();
                let mut session = match previous.take() {
                    Some(p) => Session::reconnect(cfg.session_config(&ctx.agents), p, now),
                    None => Session::new(cfg.session_config(&ctx.agents), now),
                };
                let end = connection(
                    &cfg,
                    stream,
                    &mut session,
                    &ctx,
                    &mut commands,
                    &mut pending,
                )
                .await;
                if session.synced() {
                    backoff.reset();
                }
                previous = Some(session);
                match end {
                    End::Stop => return,
                    End::Retry(why) => why,
                }
            }
            Ok(Err(e)) => format!("connect to {}: {e}", cfg.address),
            Err(_) => format!("connect to {}: timed out", cfg.address),
        };
        health.set_connected(false);
        health.set_error(why.clone());
        let delay = backoff.next_delay();
        tracing::warn!(source = %name, error = %why, retry_in = ?delay, "AMI connection lost");
        // While waiting, CTI requests are answered at once, not left hanging.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                permit = inbox.reserve(), if !pending.is_empty() => match permit {
                    Ok(permit) => {
                        let n = pending.len().min(BATCH);
                        let events: Vec<Event> = pending.drain(..n).collect();
                        permit.send(Envelope::Batch { source: name.clone(), events });
                    }
                    Err(_) => return,
                },
                cmd = commands.recv() => match cmd {
                    Some(c) => {
                        let _ = c.reply.send(not_connected(&why));
                    }
                    None => {
                        // No CTI handle left; just wait.
                        (&mut sleep).await;
                        break;
                    }
                },
            }
        }
        if inbox.is_closed() {
            return;
        }
    }
}

fn not_connected(why: &str) -> ActionReply {
    ActionReply {
        status: ReplyStatus::NotConnected,
        message: format!("AMI not connected: {why}"),
        confirmed: None,
    }
}

async fn connection(
    cfg: &AmiConfig,
    stream: TcpStream,
    session: &mut Session,
    ctx: &SourceCtx,
    commands: &mut mpsc::Receiver<Command>,
    pending: &mut VecDeque<Event>,
) -> End {
    let (name, inbox, health, rejects) = (&ctx.name, &ctx.inbox, &ctx.health, &ctx.rejects);
    let peer = format!("ami {}", cfg.address);
    let (mut rd, mut wr) = stream.into_split();
    let mut readbuf = vec![0u8; 64 * 1024];
    let mut wbuf: Vec<u8> = Vec::new();
    let mut scratch: Vec<Event> = Vec::new();
    let mut waiters: std::collections::HashMap<u64, oneshot::Sender<ActionReply>> =
        std::collections::HashMap::new();
    let mut next_token: u64 = 1;
    let mut commands_open = true;
    let mut was_logged_in = false;

    loop {
        // Collect what the session produced.
        wbuf.extend_from_slice(&session.take_outgoing());
        session.drain_events(&mut scratch);
        if !scratch.is_empty() {
            health.add_events(scratch.len() as u64);
            pending.extend(scratch.drain(..));
        }
        if pending.len() > MAX_PENDING {
            let dropped = pending.len();
            pending.clear();
            rejects.record(
                name,
                &peer,
                &Reject::new(
                    RejectReason::Overflow,
                    format!("engine behind: {dropped} AMI events dropped; relisting queues"),
                ),
            );
            session.request_resync();
            wbuf.extend_from_slice(&session.take_outgoing());
        }
        for (token, reply) in session.take_replies() {
            if let Some(w) = waiters.remove(&token) {
                let _ = w.send(reply);
            }
        }
        for r in session.take_rejects() {
            rejects.record(name, &peer, &r);
        }
        if session.logged_in() && !was_logged_in {
            was_logged_in = true;
            health.set_connected(true);
            tracing::info!(source = %name, version = session.version().unwrap_or("?"), "AMI logged in");
        }
        health.set_synced(session.synced());
        if let Some(e) = session.error() {
            let e = e.to_string();
            fail_waiters(&mut waiters, &e);
            return End::Retry(e);
        }

        let timeout = session.poll_timeout().map(|t| {
            let ms = t.0.saturating_sub(Ts::now().0).max(0) as u64;
            tokio::time::Instant::now() + Duration::from_millis(ms)
        });
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);

        tokio::select! {
            r = rd.read(&mut readbuf) => match r {
                Ok(0) => {
                    fail_waiters(&mut waiters, "connection closed");
                    return End::Retry("connection closed by Asterisk".into());
                }
                Ok(n) => session.feed(&readbuf[..n], Ts::now()),
                Err(e) => {
                    fail_waiters(&mut waiters, "read error");
                    return End::Retry(format!("read: {e}"));
                }
            },
            w = wr.write(&wbuf), if !wbuf.is_empty() => match w {
                Ok(n) => { wbuf.drain(..n); }
                Err(e) => {
                    fail_waiters(&mut waiters, "write error");
                    return End::Retry(format!("write: {e}"));
                }
            },
            _ = tokio::time::sleep_until(timeout.unwrap_or(far)) => {
                session.handle_timeout(Ts::now());
            },
            permit = inbox.reserve(), if !pending.is_empty() => match permit {
                Ok(permit) => {
                    let n = pending.len().min(BATCH);
                    let events: Vec<Event> = pending.drain(..n).collect();
                    permit.send(Envelope::Batch { source: name.clone(), events });
                }
                Err(_) => return End::Stop,
            },
            cmd = commands.recv(), if commands_open => match cmd {
                Some(c) => {
                    let token = next_token;
                    next_token += 1;
                    waiters.insert(token, c.reply);
                    session.submit(token, c.action, Ts::now());
                }
                None => commands_open = false,
            },
        }
        if inbox.is_closed() {
            let _ = wr.shutdown().await;
            return End::Stop;
        }
    }
}

fn fail_waiters(
    waiters: &mut std::collections::HashMap<u64, oneshot::Sender<ActionReply>>,
    why: &str,
) {
    for (_, w) in waiters.drain() {
        let _ = w.send(not_connected(why));
    }
}
