//! The one reconnecting TCP client that the PBX sources (AMI, the event
//! socket) run on: connect with a timeout, read and write, run the
//! protocol's timers, carry CTI commands in, hand events to the engine,
//! and after a loss wait (exponential backoff with jitter) and connect
//! again. The protocol itself is a sans-IO [`Protocol`]; this file is
//! the only place that touches its socket.
//!
//! # Overflow policy: keep reading; past a bound, drop and resync
//!
//! Every other source waits when the engine's inbox is full (backpressure,
//! see [`crate::sources`]): a file stays where it is, an HTTP producer or a
//! TCP producer of the JSON feed is slowed down and loses nothing. A PBX
//! cannot be slowed down. Asterisk drops a manager client whose socket it
//! cannot write to within `writetimeout` (100 ms by default), FreeSWITCH
//! drops events for a listener whose queue is full and kills it after 500
//! losses: waiting on the inbox inside the read loop loses the connection,
//! and with it every event until the reconnect's resync, silently.
//!
//! So this driver never stops reading. Events wait in a local queue that
//! is handed to the inbox whenever it has room (a `select!` branch on
//! `reserve()`, also while disconnected). If the engine stalls long enough
//! for that queue to exceed [`Link::max_pending`] events ([`MAX_PENDING`]), the queue is dropped,
//! counted once as an `overflow` rejection, the source reports itself
//! unsynced, and the protocol relists the PBX's state
//! ([`Protocol::handle_overflow`]): the same resync a lost connection
//! ends in, earlier, counted, and without losing the connection or the
//! CTI. Losing some history beats losing all of it. (Before this driver,
//! AMI resynced and the event socket waited inside its read loop: two
//! policies for one risk.)

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::event::{Event, Reject, RejectReason};
use crate::sources::backoff::Backoff;
use crate::sources::{Envelope, SourceCtx};
use crate::time::Ts;

/// Most events held for the engine before the overflow policy applies:
/// ~3 minutes of a very busy call centre (1,000 events/s), ~40 MB.
pub const MAX_PENDING: usize = 200_000;
/// Events per inbox message.
const BATCH: usize = 4_096;
/// Bytes per read.
const READ_CHUNK: usize = 64 * 1024;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Link {
    /// `host:port`.
    pub address: String,
    pub connect_timeout: Duration,
    /// First reconnect delay; doubles per failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Prefix of the rejection context (`ami 10.0.0.2:5038`).
    pub label: &'static str,
    /// The protocol's name in log lines and the overflow rejection.
    pub what: &'static str,
    /// The peer's name in "connection closed by …" (`Asterisk`).
    pub pbx: &'static str,
    /// Events held for the engine before the overflow policy applies
    /// ([`MAX_PENDING`]).
    pub max_pending: usize,
}

/// What the protocol has for the driver after an input.
#[derive(Debug, Default)]
pub struct Transmit {
    /// Bytes to write to the peer.
    pub bytes: Vec<u8>,
    /// Domain events, in order.
    pub events: Vec<Event>,
    /// Bad input, counted and logged by the driver.
    pub rejects: Vec<Reject>,
    /// The connection must close, and why.
    pub close: Option<String>,
}

/// What travels to the driver besides the PBX's bytes: a CTI command for
/// the protocol, or a request to relist the PBX's state (the resync a
/// reconnect ends in), answered once the relist's events are handed on.
#[derive(Debug)]
pub enum Request<C> {
    Cti(C),
    Relist(tokio::sync::oneshot::Sender<Result<(), String>>),
}

/// Asks the driver behind `tx` to relist (see [`Request::Relist`]); `what`
/// names the link in errors.
pub fn relist<C: Send + 'static>(
    tx: mpsc::Sender<Request<C>>,
    what: &'static str,
) -> crate::cti::RelistFuture {
    Box::pin(async move {
        let (reply, done) = tokio::sync::oneshot::channel();
        tx.send(Request::Relist(reply))
            .await
            .map_err(|_| format!("the {what} source is not running"))?;
        done.await
            .map_err(|_| format!("the {what} source stopped during the relist"))?
    })
}

/// A relist asked for through [`Request::Relist`]: answered once the
/// protocol is synced again and the events it had produced by then were
/// taken by the inbox.
struct RelistWait {
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    /// Events handed on (or dropped) up to the relist's last: `None` while
    /// the relist is still running.
    until: Option<u64>,
}

/// A PBX protocol as a sans-IO state machine, driven by [`run`].
///
/// Calling order: for each connection, [`Protocol::handle_connected`];
/// then any number of `handle_input` (bytes read), `handle_command` (a CTI
/// command), `handle_timeout` (when [`Protocol::poll_timeout`]'s time has
/// come) and `handle_overflow`, each followed by [`Protocol::poll_transmit`];
/// finally [`Protocol::handle_disconnected`] (then `poll_transmit` once
/// more, for what the loss settles). Between connections, commands go to
/// [`Protocol::refuse`].
pub trait Protocol: Send + 'static {
    /// A CTI request with its reply channel.
    type Command: Send + 'static;

    /// A connection is up (`now` is the local clock).
    fn handle_connected(&mut self, now: Ts);
    /// Bytes read from the peer.
    fn handle_input(&mut self, bytes: &[u8], now: Ts);
    /// A CTI command while connected.
    fn handle_command(&mut self, cmd: Self::Command, now: Ts);
    /// [`Protocol::poll_timeout`]'s time has come.
    fn handle_timeout(&mut self, now: Ts);
    /// Held events were dropped (see the module doc): relist the state.
    fn handle_overflow(&mut self, now: Ts);
    /// The connection is gone.
    fn handle_disconnected(&mut self, why: &str, now: Ts);
    /// When the next timer is due, on the local clock.
    fn poll_timeout(&self) -> Option<Ts>;
    /// Takes what the last inputs produced.
    fn poll_transmit(&mut self, out: &mut Transmit);
    /// The source counts as connected (health): AMI once logged in, the
    /// event socket once the TCP connection is up.
    fn is_up(&self) -> bool;
    /// The state acdmon holds matches the PBX's (health; a reconnect after
    /// being synced starts from the shortest backoff).
    fn is_synced(&self) -> bool;
    /// Answers a command that cannot be sent: not connected, and why.
    fn refuse(&mut self, cmd: Self::Command, why: &str);
}

/// Why a connection ended.
enum End {
    /// Reconnect after a delay.
    Retry(String),
    /// The engine is gone: stop.
    Stop,
}

/// Runs `proto` over `link` until the engine's inbox closes.
pub async fn run<P: Protocol>(
    link: Link,
    mut proto: P,
    ctx: SourceCtx,
    mut commands: mpsc::Receiver<Request<P::Command>>,
) {
    let mut d = Driver {
        peer: format!("{} {}", link.label, link.address),
        link,
        ctx,
        pending: VecDeque::new(),
        commands_open: true,
        queued: 0,
        handed: 0,
        relists: Vec::new(),
    };
    let mut backoff = Backoff::with_bounds(d.link.reconnect_min, d.link.reconnect_max);
    loop {
        d.ctx.health.set_connected(false);
        let connect = tokio::time::timeout(
            d.link.connect_timeout,
            TcpStream::connect(d.link.address.as_str()),
        )
        .await;
        let why = match connect {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let end = d
                    .connection(&mut proto, stream, &mut commands, &mut backoff)
                    .await;
                let why = match &end {
                    End::Retry(why) => why.clone(),
                    End::Stop => "engine stopped".to_string(),
                };
                proto.handle_disconnected(&why, Ts::now());
                d.take(&mut proto);
                for w in d.relists.drain(..).filter(|w| w.until.is_none()) {
                    let _ = w.reply.send(Err(format!("relist not finished: {why}")));
                }
                if matches!(end, End::Stop) {
                    return;
                }
                why
            }
            Ok(Err(e)) => format!("connect to {}: {e}", d.link.address),
            Err(_) => format!("connect to {}: timed out", d.link.address),
        };
        d.ctx.health.set_connected(false);
        d.ctx.health.set_error(why.clone());
        let delay = backoff.next_delay();
        tracing::warn!(source = %d.ctx.name, error = %why, retry_in = ?delay, "{} connection lost", d.link.what);
        if !d.wait(&mut proto, &mut commands, delay, &why).await {
            return;
        }
    }
}

struct Driver {
    link: Link,
    ctx: SourceCtx,
    /// `ami 10.0.0.2:5038`: where rejections came from.
    peer: String,
    /// Events not yet taken by the engine; they survive a reconnect.
    pending: VecDeque<Event>,
    commands_open: bool,
    /// Events ever put in `pending`, and ever taken from it (handed on or
    /// dropped): where a relist's events end.
    queued: u64,
    handed: u64,
    relists: Vec<RelistWait>,
}

impl Driver {
    /// Moves what the protocol produced: events to `pending` (applying the
    /// overflow policy), rejections to the counter; returns the bytes to
    /// write and why to close, if it must.
    fn take<P: Protocol>(&mut self, proto: &mut P) -> (Vec<u8>, Option<String>) {
        let mut t = Transmit::default();
        proto.poll_transmit(&mut t);
        for r in &t.rejects {
            self.ctx.rejects.record(&self.ctx.name, &self.peer, r);
        }
        if !t.events.is_empty() {
            self.ctx.health.add_events(t.events.len() as u64);
            self.queued += t.events.len() as u64;
            self.pending.extend(t.events);
        }
        if self.pending.len() > self.link.max_pending {
            let dropped = self.pending.len();
            self.pending.clear();
            self.handed += dropped as u64;
            let detail = format!(
                "engine behind: {dropped} {} events dropped; relisting queues",
                self.link.what
            );
            let reject = Reject::new(RejectReason::Overflow, detail);
            self.ctx.rejects.record(&self.ctx.name, &self.peer, &reject);
            self.ctx.health.set_synced(false);
            proto.handle_overflow(Ts::now());
            let mut more = Transmit::default();
            proto.poll_transmit(&mut more);
            t.bytes.extend(more.bytes);
            t.close = t.close.or(more.close);
            for r in &more.rejects {
                self.ctx.rejects.record(&self.ctx.name, &self.peer, r);
            }
            self.queued += more.events.len() as u64;
            self.pending.extend(more.events);
        }
        if proto.is_synced() {
            for w in &mut self.relists {
                w.until.get_or_insert(self.queued);
            }
        }
        self.answer_relists();
        (t.bytes, t.close)
    }

    /// A relist asked for from outside (cluster mode's new CTI leader).
    fn relist<P: Protocol>(
        &mut self,
        proto: &mut P,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    ) {
        self.relists.push(RelistWait { reply, until: None });
        proto.handle_overflow(Ts::now());
    }

    /// Relists whose events are all handed on are answered once the
    /// receiver took them: an empty `Envelope::Checked` follows them in the
    /// inbox, and its verdict comes back after they were applied (or, in
    /// cluster mode, appended to the stream).
    fn answer_relists(&mut self) {
        let handed = self.handed;
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.relists)
            .into_iter()
            .partition(|w| w.until.is_some_and(|u| u <= handed));
        self.relists = rest;
        for w in done {
            let inbox = self.ctx.inbox.clone();
            let source = self.ctx.name.clone();
            tokio::spawn(async move {
                let (verdict, taken) = tokio::sync::oneshot::channel();
                let env = Envelope::Checked {
                    source,
                    events: Vec::new(),
                    verdict,
                };
                let r = match inbox.send(env).await {
                    Ok(()) => taken
                        .await
                        .map(|_| ())
                        .map_err(|_| "the engine stopped".into()),
                    Err(_) => Err("the engine stopped".into()),
                };
                let _ = w.reply.send(r);
            });
        }
    }

    /// Hands one batch to a reserved inbox slot.
    fn send(&mut self, permit: tokio::sync::mpsc::Permit<'_, Envelope>) {
        let n = self.pending.len().min(BATCH);
        let events: Vec<Event> = self.pending.drain(..n).collect();
        self.handed += n as u64;
        permit.send(Envelope::Batch {
            source: self.ctx.name.clone(),
            events,
        });
        self.answer_relists();
    }

    async fn connection<P: Protocol>(
        &mut self,
        proto: &mut P,
        stream: TcpStream,
        commands: &mut mpsc::Receiver<Request<P::Command>>,
        backoff: &mut Backoff,
    ) -> End {
        let (mut rd, mut wr) = stream.into_split();
        let mut readbuf = vec![0u8; READ_CHUNK];
        let mut wbuf: Vec<u8> = Vec::new();
        proto.handle_connected(Ts::now());
        loop {
            let (bytes, close) = self.take(proto);
            wbuf.extend_from_slice(&bytes);
            self.ctx.health.set_connected(proto.is_up());
            self.ctx.health.set_synced(proto.is_synced());
            if proto.is_synced() {
                backoff.reset();
            }
            if let Some(why) = close {
                return End::Retry(why);
            }
            let timeout = proto.poll_timeout().map(|t| {
                let ms = t.0.saturating_sub(Ts::now().0).max(0) as u64;
                tokio::time::Instant::now() + Duration::from_millis(ms)
            });
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            let inbox = self.ctx.inbox.clone();
            tokio::select! {
                r = rd.read(&mut readbuf) => match r {
                    Ok(0) => return End::Retry(format!("connection closed by {}", self.link.pbx)),
                    Ok(n) => proto.handle_input(&readbuf[..n], Ts::now()),
                    Err(e) => return End::Retry(format!("read: {e}")),
                },
                w = wr.write(&wbuf), if !wbuf.is_empty() => match w {
                    Ok(n) => { wbuf.drain(..n); }
                    Err(e) => return End::Retry(format!("write: {e}")),
                },
                _ = tokio::time::sleep_until(timeout.unwrap_or(far)) => {
                    proto.handle_timeout(Ts::now());
                },
                permit = inbox.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => self.send(permit),
                    Err(_) => return End::Stop,
                },
                cmd = commands.recv(), if self.commands_open => match cmd {
                    Some(Request::Cti(c)) => proto.handle_command(c, Ts::now()),
                    Some(Request::Relist(reply)) => self.relist(proto, reply),
                    None => self.commands_open = false,
                },
            }
            if self.ctx.inbox.is_closed() {
                let _ = wr.shutdown().await;
                return End::Stop;
            }
        }
    }

    /// Sleeps `delay` between connections, handing held events on and
    /// refusing commands at once rather than leaving them hanging. False
    /// when the engine has stopped.
    async fn wait<P: Protocol>(
        &mut self,
        proto: &mut P,
        commands: &mut mpsc::Receiver<Request<P::Command>>,
        delay: Duration,
        why: &str,
    ) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            let inbox = self.ctx.inbox.clone();
            tokio::select! {
                _ = &mut sleep => return !self.ctx.inbox.is_closed(),
                permit = inbox.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => self.send(permit),
                    Err(_) => return false,
                },
                cmd = commands.recv(), if self.commands_open => match cmd {
                    Some(Request::Cti(c)) => proto.refuse(c, why),
                    Some(Request::Relist(reply)) => {
                        let _ = reply.send(Err(format!("not connected: {why}")));
                    }
                    None => self.commands_open = false,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::event::EventKind;
    use crate::sources::{RejectCounter, SourceHealth};

    /// A PBX that announces callers one line at a time (`<call>\n`); asked
    /// to relist, it is sent `relist\n` (and `relists` counts the requests).
    struct Lines {
        partial: Vec<u8>,
        out: Transmit,
        relists: Arc<Mutex<u32>>,
    }

    impl Protocol for Lines {
        type Command = ();
        fn handle_connected(&mut self, _now: Ts) {}
        fn handle_input(&mut self, bytes: &[u8], _now: Ts) {
            self.partial.extend_from_slice(bytes);
            while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=i).collect();
                let call = String::from_utf8_lossy(&line[..i]).to_string();
                self.out.events.push(Event {
                    ts: Ts(1763900000000),
                    kind: EventKind::CallEnqueued {
                        call,
                        queue: "support".into(),
                        caller: None,
                        priority: None,
                    },
                });
            }
        }
        fn handle_command(&mut self, _cmd: (), _now: Ts) {}
        fn handle_timeout(&mut self, _now: Ts) {}
        fn handle_overflow(&mut self, _now: Ts) {
            *self.relists.lock().unwrap() += 1;
            self.out.bytes.extend_from_slice(b"relist\n");
        }
        fn handle_disconnected(&mut self, _why: &str, _now: Ts) {}
        fn poll_timeout(&self) -> Option<Ts> {
            None
        }
        fn poll_transmit(&mut self, out: &mut Transmit) {
            *out = std::mem::take(&mut self.out);
        }
        fn is_up(&self) -> bool {
            true
        }
        fn is_synced(&self) -> bool {
            true
        }
        fn refuse(&mut self, _cmd: (), _why: &str) {}
    }

    /// The engine stalls while the PBX keeps talking: the source keeps
    /// reading (the PBX is never blocked, so it never drops us), drops what
    /// it holds past the bound once, counted as `overflow`, asks the PBX to
    /// relist, and when the engine catches up hands on what came after.
    #[tokio::test]
    async fn a_stalled_engine_costs_held_events_and_a_relist_never_the_connection() {
        let pbx = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = pbx.local_addr().unwrap().to_string();
        let (inbox, mut engine) = mpsc::channel(1);
        let health = SourceHealth::new("pbx", "test");
        let rejects = Arc::new(RejectCounter::default());
        let relists = Arc::new(Mutex::new(0));
        let link = Link {
            address,
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(10),
            reconnect_max: Duration::from_millis(10),
            label: "test",
            what: "test",
            pbx: "the test PBX",
            max_pending: 50,
        };
        let proto = Lines {
            partial: Vec::new(),
            out: Transmit::default(),
            relists: relists.clone(),
        };
        let ctx = SourceCtx::new("pbx", inbox, health.clone(), rejects.clone());
        let (_commands, rx) = mpsc::channel(1);
        let task = tokio::spawn(run(link, proto, ctx, rx));

        let (mut conn, _) = pbx.accept().await.unwrap();
        // The engine takes nothing: one batch fits its inbox, the rest is
        // held, and past 50 the held events go.
        let burst: String = (0..200).map(|i| format!("c{i}\n")).collect();
        conn.write_all(burst.as_bytes()).await.unwrap();
        let mut relist = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut relist))
            .await
            .expect("the PBX was asked to relist")
            .unwrap();
        assert_eq!(&relist, b"relist\n");
        assert!(health.connected(), "the connection survives the overflow");

        // The engine catches up; what the PBX says next arrives.
        conn.write_all(b"after\n").await.unwrap();
        let mut calls = Vec::new();
        while !calls.iter().any(|c| c == "after") {
            let Ok(Some(Envelope::Batch { events, .. })) =
                tokio::time::timeout(Duration::from_secs(5), engine.recv()).await
            else {
                panic!("the held events never arrived: {calls:?}");
            };
            for e in events {
                if let EventKind::CallEnqueued { call, .. } = e.kind {
                    calls.push(call);
                }
            }
        }
        assert!(calls.len() < 200, "some held events were dropped");
        // Once per time the bound was passed (the burst may have come in
        // more than one read), each counted.
        let relisted = u64::from(*relists.lock().unwrap());
        assert!(relisted >= 1);
        assert_eq!(rejects.by_reason().get("overflow"), Some(&relisted));
        task.abort();
    }

    /// A PBX that lists its callers when asked (`list\n`, answered with
    /// `<call>\n`… and `end\n`); not synced while a list runs.
    struct Lister {
        partial: Vec<u8>,
        out: Transmit,
        listing: bool,
    }

    impl Protocol for Lister {
        type Command = ();
        fn handle_connected(&mut self, _now: Ts) {}
        fn handle_input(&mut self, bytes: &[u8], _now: Ts) {
            self.partial.extend_from_slice(bytes);
            while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=i).collect();
                let call = String::from_utf8_lossy(&line[..i]).to_string();
                if call == "end" {
                    self.listing = false;
                    continue;
                }
                self.out.events.push(Event {
                    ts: Ts(1763900000000),
                    kind: EventKind::CallEnqueued {
                        call,
                        queue: "support".into(),
                        caller: None,
                        priority: None,
                    },
                });
            }
        }
        fn handle_command(&mut self, _cmd: (), _now: Ts) {}
        fn handle_timeout(&mut self, _now: Ts) {}
        fn handle_overflow(&mut self, _now: Ts) {
            self.listing = true;
            self.out.bytes.extend_from_slice(b"list\n");
        }
        fn handle_disconnected(&mut self, _why: &str, _now: Ts) {}
        fn poll_timeout(&self) -> Option<Ts> {
            None
        }
        fn poll_transmit(&mut self, out: &mut Transmit) {
            *out = std::mem::take(&mut self.out);
        }
        fn is_up(&self) -> bool {
            true
        }
        fn is_synced(&self) -> bool {
            !self.listing
        }
        fn refuse(&mut self, _cmd: (), _why: &str) {}
    }

    /// Cluster mode's new CTI leader asks for a relist: the answer comes
    /// only after the PBX finished listing and the engine (here: the test)
    /// took every listed event, never before.
    #[tokio::test]
    async fn a_relist_is_answered_once_its_events_were_taken() {
        let pbx = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let link = Link {
            address: pbx.local_addr().unwrap().to_string(),
            connect_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(10),
            reconnect_max: Duration::from_millis(10),
            label: "test",
            what: "test",
            pbx: "the test PBX",
            max_pending: 1000,
        };
        let (inbox, mut engine) = mpsc::channel(16);
        let health = SourceHealth::new("pbx", "test");
        let ctx = SourceCtx::new("pbx", inbox, health, Arc::new(RejectCounter::default()));
        let proto = Lister {
            partial: Vec::new(),
            out: Transmit::default(),
            listing: false,
        };
        let (commands, rx) = mpsc::channel(4);
        let task = tokio::spawn(run(link, proto, ctx, rx));
        let (mut conn, _) = pbx.accept().await.unwrap();

        let mut answer = tokio::spawn(relist(commands.clone(), "test"));
        let mut ask = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut ask))
            .await
            .expect("the PBX was asked to list")
            .unwrap();
        assert_eq!(&ask, b"list\n");
        conn.write_all(b"c1\nc2\nend\n").await.unwrap();
        let mut calls = Vec::new();
        let verdict = loop {
            let env = tokio::time::timeout(Duration::from_secs(5), engine.recv())
                .await
                .expect("the engine is handed the list")
                .unwrap();
            match env {
                Envelope::Batch { events, .. } => {
                    for e in events {
                        if let EventKind::CallEnqueued { call, .. } = e.kind {
                            calls.push(call);
                        }
                    }
                }
                Envelope::Checked {
                    events, verdict, ..
                } => {
                    assert!(events.is_empty());
                    break verdict;
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(calls, ["c1", "c2"]);
        // Not answered while the engine has not taken the marker.
        let early = tokio::time::timeout(Duration::from_millis(100), &mut answer).await;
        assert!(early.is_err(), "answered before the engine took the list");
        verdict.send(Vec::new()).unwrap();
        let done = tokio::time::timeout(Duration::from_secs(5), answer).await;
        assert_eq!(done.expect("answered").unwrap(), Ok(()));
        task.abort();
    }
}
