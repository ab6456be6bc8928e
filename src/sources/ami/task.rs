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
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::mapping::{AgentIds, AgentNaming};
use super::session::{ActionReply, AmiAction, Auth, ReplyStatus, Session, SessionConfig};
use crate::config::{HumanDuration, Secret};
use crate::cti::ami::{AmiCti, SignOutMode};
use crate::event::Event;
use crate::sources::{Envelope, Inbox, Reject, RejectCounter, SourceHealth};
use crate::time::Ts;

/// Most events held for the engine before the overflow policy applies.
pub const MAX_PENDING: usize = 200_000;
/// Events per inbox message.
const BATCH: usize = 4_096;
/// CTI requests waiting for the task.
const COMMANDS: usize = 64;

/// `[[sources]] kind = "ami"` (name and kind are handled by the loader).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmiConfig {
    /// Manager interface address, `host:port` (Asterisk default port 5038).
    pub address: String,
    /// `manager.conf` user.
    pub username: String,
    /// Its secret: inline, `env:NAME` or `file:/path`.
    pub secret: Secret,
    /// `plain` (default) or `md5` (challenge/response; the secret never
    /// crosses the wire).
    #[serde(default)]
    pub auth: Auth,
    /// Event classes asked for at login. `agent` carries the queue events,
    /// `call` the `HangupRequest` that tells an abandon from a timeout.
    #[serde(default = "default_events")]
    pub events: String,
    /// Which member field is the agent id: `auto` (MemberName unless it
    /// equals the interface, else the interface), `member_name` or
    /// `interface`. A configured `[[agents]] interface` always wins.
    #[serde(default)]
    pub agent_id: AgentNaming,
    /// How the CTI signs an agent out: `remove` (QueueRemove; the default)
    /// or `pause` (QueuePause, the agent stays a member).
    #[serde(default)]
    pub sign_out: SignOutMode,
    /// Pause reason sent with `sign_out = "pause"`.
    #[serde(default = "default_pause_reason")]
    pub pause_reason: String,
    /// TCP connect timeout.
    #[serde(default = "secs::<5>")]
    pub connect_timeout: HumanDuration,
    /// Keepalive `Ping` period.
    #[serde(default = "secs::<20>")]
    pub ping_interval: HumanDuration,
    /// How long an action (login, ping, sign-in/out) may wait for its reply.
    #[serde(default = "secs::<5>")]
    pub action_timeout: HumanDuration,
    /// Relist all queues (`QueueStatus`) this often while connected, to heal
    /// drift from lost or filtered events; `"0s"` = only on connect. Five
    /// minutes: `queue reload members` in Asterisk raises no event at all.
    #[serde(default = "secs::<300>")]
    pub resync_interval: HumanDuration,
    /// First reconnect delay; doubles per failure up to `reconnect_max`,
    /// with jitter.
    #[serde(default = "secs::<1>")]
    pub reconnect_min: HumanDuration,
    #[serde(default = "secs::<30>")]
    pub reconnect_max: HumanDuration,
    /// Configured agents `(id, interface)`, filled in by the config loader
    /// from `[[agents]]`: events for that interface use that id, and the CTI
    /// uses the interface.
    #[serde(skip)]
    pub agents: Vec<(String, String)>,
}

fn default_events() -> String {
    "agent,call".into()
}

fn default_pause_reason() -> String {
    "acdmon".into()
}

fn secs<const N: u64>() -> HumanDuration {
    HumanDuration::from_secs(N)
}

impl AmiConfig {
    /// A config with defaults (tests, the demo).
    pub fn new(address: &str, username: &str, secret: Secret) -> Self {
        AmiConfig {
            address: address.into(),
            username: username.into(),
            secret,
            auth: Auth::Plain,
            events: default_events(),
            agent_id: AgentNaming::Auto,
            sign_out: SignOutMode::Remove,
            pause_reason: default_pause_reason(),
            connect_timeout: secs::<5>(),
            ping_interval: secs::<20>(),
            action_timeout: secs::<5>(),
            resync_interval: secs::<300>(),
            reconnect_min: secs::<1>(),
            reconnect_max: secs::<30>(),
            agents: Vec::new(),
        }
    }

    /// Reads the adapter's keys of a `[[sources]]` table (without `name` and
    /// `kind`); unknown keys are errors.
    pub fn from_table(t: toml::Table) -> Result<Self, String> {
        toml::Value::Table(t)
            .try_into()
            .map_err(|e: toml::de::Error| format!("ami source: {}", e.message()))
    }

    /// The agent-id rule plus the `[[agents]]` directory.
    pub fn agent_ids(&self) -> AgentIds {
        let mut ids = AgentIds::new(self.agent_id);
        for (id, interface) in &self.agents {
            ids.insert(id, interface);
        }
        ids
    }

    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            username: self.username.clone(),
            secret: self.secret.clone(),
            auth: self.auth,
            events: self.events.clone(),
            ping_interval_ms: self.ping_interval.millis().max(1),
            action_timeout_ms: self.action_timeout.millis().max(1),
            resync_interval_ms: self.resync_interval.millis().max(0),
            ids: self.agent_ids(),
        }
    }
}

/// One queue action from the CTI, answered through `reply`.
#[derive(Debug)]
pub struct Command {
    pub action: AmiAction,
    pub reply: oneshot::Sender<ActionReply>,
}

/// Spawns the live source (no CTI handle).
pub fn spawn(
    name: Arc<str>,
    cfg: AmiConfig,
    inbox: Inbox,
    health: Arc<SourceHealth>,
    rejects: Arc<RejectCounter>,
) -> tokio::task::JoinHandle<()> {
    spawn_with_cti(name, cfg, inbox, health, rejects).0
}

/// Spawns the live source and returns the CTI action that signs agents in
/// and out through this connection.
pub fn spawn_with_cti(
    name: Arc<str>,
    cfg: AmiConfig,
    inbox: Inbox,
    health: Arc<SourceHealth>,
    rejects: Arc<RejectCounter>,
) -> (tokio::task::JoinHandle<()>, AmiCti) {
    let (tx, rx) = mpsc::channel(COMMANDS);
    let cti = AmiCti::new(
        tx,
        cfg.sign_out,
        cfg.pause_reason.clone(),
        cfg.action_timeout.0,
    );
    let handle = tokio::spawn(run(name, cfg, inbox, health, rejects, rx));
    (handle, cti)
}

enum End {
    /// Reconnect after a delay.
    Retry(String),
    /// The engine is gone: stop.
    Stop,
}

async fn run(
    name: Arc<str>,
    cfg: AmiConfig,
    inbox: Inbox,
    health: Arc<SourceHealth>,
    rejects: Arc<RejectCounter>,
    mut commands: mpsc::Receiver<Command>,
) {
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
                    Some(p) => Session::reconnect(cfg.session_config(), p, now),
                    None => Session::new(cfg.session_config(), now),
                };
                let end = connection(
                    &name,
                    &cfg,
                    stream,
                    &mut session,
                    &inbox,
                    &health,
                    &rejects,
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

#[allow(clippy::too_many_arguments)]
async fn connection(
    name: &Arc<str>,
    cfg: &AmiConfig,
    stream: TcpStream,
    session: &mut Session,
    inbox: &Inbox,
    health: &SourceHealth,
    rejects: &RejectCounter,
    commands: &mut mpsc::Receiver<Command>,
    pending: &mut VecDeque<Event>,
) -> End {
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
        wbuf.extend_from_slice(&session.poll_transmit());
        session.poll_events(&mut scratch);
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
                    "overflow",
                    format!("engine behind: {dropped} AMI events dropped; relisting queues"),
                ),
            );
            session.request_resync();
            wbuf.extend_from_slice(&session.poll_transmit());
        }
        for (token, reply) in session.poll_replies() {
            if let Some(w) = waiters.remove(&token) {
                let _ = w.send(reply);
            }
        }
        for r in session.poll_rejects() {
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
                Ok(n) => session.handle_input(&readbuf[..n], Ts::now()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_from_toml_with_defaults_and_rejects_unknown_keys() {
        let t: toml::Table = toml::from_str(
            "address = \"10.0.0.2:5038\"\nusername = \"acdmon\"\nsecret = \"inline-secret\"\nauth = \"md5\"\nagent_id = \"interface\"\nsign_out = \"pause\"\nping_interval = \"10s\"",
        )
        .unwrap();
        let c = AmiConfig::from_table(t).unwrap();
        assert_eq!(c.auth, Auth::Md5);
        assert_eq!(c.agent_id, AgentNaming::Interface);
        assert_eq!(c.sign_out, SignOutMode::Pause);
        assert_eq!(c.events, "agent,call");
        assert_eq!(c.ping_interval.millis(), 10_000);
        assert_eq!(c.action_timeout.millis(), 5_000);
        assert!(!format!("{c:?}").contains("inline-secret"));
        let bad: toml::Table =
            toml::from_str("address = \"x:1\"\nusername = \"u\"\nsecret = \"s\"\nport = 5038")
                .unwrap();
        let e = AmiConfig::from_table(bad).unwrap_err();
        assert!(e.contains("port"), "{e}");
    }
}
