//! The event-socket conversation as a plain state machine (sans-IO): fed
//! the bytes read from the socket (it owns the framer) and `now`, it hands
//! back bytes to send, domain events, rejections and replies for CTI
//! commands. The live task and the replay decoder drive the same code.
//!
//! On every connection: `auth`, then `event plain CUSTOM callcenter::info`
//! (subscribing first, so nothing falls between the lists and the live
//! stream), then a resync: `queue list` to learn the queues, and
//! `queue list agents|members|tiers <q>` for each, pipelined (ESL answers in
//! order). Events that arrive meanwhile are held and applied after the
//! resync's `QueueResync` events, so they land on the rebuilt picture.
//!
//! FreeSWITCH keeps no event history for a listener: anything fired while we
//! were away is gone, hence the resync on every connect. Within a connection
//! events are lost only when our listener queue overflows; we resync when
//! that is detected: a changed `Core-UUID` (FreeSWITCH restarted), an
//! `Event-Sequence` that goes backwards, a jump beyond `max_sequence_gap`
//! when configured, or `members-count` disagreeing with the callers we track
//! twice in a row. Note that `Event-Sequence` numbers every event the switch
//! fires, not only the ones a listener subscribed to, so with a
//! `callcenter::info` subscription jumps are normal and say nothing by
//! themselves; that is why the jump threshold is off unless configured.

use std::collections::VecDeque;

use super::lists::{self, ListError};
use super::mapping::{Mapped, Mapper, QueueLists, TimerConfig};
use super::parser::{CcEvent, Field, Framer, Message, Parse};
use crate::config::Secret;
use crate::event::{Event, EventKind};
use crate::sources::{Reject, RejectReason};
use crate::time::Ts;

pub use crate::config::sources::EventFormat;

/// What the session needs from the source configuration.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub password: Secret,
    /// `userauth user@domain:password` instead of `auth password`.
    pub user: Option<String>,
    pub format: EventFormat,
    /// Queues to resync; empty = every queue `queue list` shows.
    pub queues: Vec<String>,
    pub max_sequence_gap: Option<u64>,
    pub check_counts: bool,
    /// How long (event time) a resync may take before it is abandoned.
    pub resync_timeout_ms: i64,
    pub timers: TimerConfig,
    /// Replaying a transcript: never wait for replies that were not
    /// recorded (see [`Session::new`]).
    pub replay: bool,
    /// See [`crate::sources::esl::EslConfig::session_config`].
    pub counted_until: Option<Ts>,
    /// Hand out each event with its wire origin, `e<Core-UUID>:<Event-Sequence>`
    /// ([`Output::Traced`]; cluster mode, see [`crate::sources::Origin`]).
    pub origins: bool,
}

impl SessionConfig {
    /// A configuration for replaying transcripts recorded with defaults.
    pub fn replay() -> Self {
        SessionConfig {
            password: Secret::inline(""),
            user: None,
            format: EventFormat::Plain,
            queues: Vec::new(),
            max_sequence_gap: None,
            check_counts: false,
            resync_timeout_ms: 30_000,
            timers: TimerConfig::default(),
            replay: true,
            counted_until: None,
            origins: false,
        }
    }
}

/// What the session asks of its driver. `Debug` shows the size of bytes to
/// send, never their content (the first one carries the password).
pub enum Output {
    /// Bytes to write to the socket.
    Send(Vec<u8>),
    Event(Event),
    /// An event decoded from the FreeSWITCH event with this origin (only
    /// with [`SessionConfig::origins`]; events of timers, resyncs and CTI
    /// replies stay [`Output::Event`]).
    Traced(Event, crate::sources::Origin),
    Reject(Reject),
    /// A resync began (the source is not ready until [`Output::Synced`]).
    ResyncStarted(String),
    Synced,
    /// The reply to a [`Session::submit`] command: the body, or why none came.
    Reply {
        id: u64,
        result: Result<String, String>,
    },
    /// The connection must be closed (auth refused, server disconnect, a
    /// resync that failed); the driver reconnects with backoff.
    Close(String),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Send(b) => write!(f, "Send({} bytes)", b.len()),
            Output::Event(e) => f.debug_tuple("Event").field(e).finish(),
            Output::Traced(e, o) => f.debug_tuple("Traced").field(e).field(o).finish(),
            Output::Reject(r) => f.debug_tuple("Reject").field(r).finish(),
            Output::ResyncStarted(r) => f.debug_tuple("ResyncStarted").field(r).finish(),
            Output::Synced => f.write_str("Synced"),
            Output::Reply { id, result } => f
                .debug_struct("Reply")
                .field("id", id)
                .field("result", result)
                .finish(),
            Output::Close(w) => f.debug_tuple("Close").field(w).finish(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Agents,
    Members,
    Tiers,
}

#[derive(Debug)]
enum Pending {
    Auth,
    Subscribe,
    QueueList,
    List { queue: usize, kind: ListKind },
    External { id: u64, effect: Option<EventKind> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `auth/request` (or, in replay, for anything).
    Connecting,
    Authenticating,
    Subscribing,
    Resyncing,
    Live,
}

#[derive(Debug)]
struct Resync {
    reason: String,
    started: Ts,
    lists: Vec<QueueLists>,
    outstanding: usize,
    held: Vec<CcEvent<'static>>,
}

/// One event-socket client conversation; survives reconnects (the agent and
/// call models carry over, and a resync reconciles them).
///
/// Calling order (the same verbs as every sans-IO core in acdmon):
/// - bytes arrive: [`Session::handle_input`] with the bytes and `now` (the
///   session frames them; any chunking is fine). A caller that frames
///   itself (the replay, which dates replies by the next event) uses
///   [`Session::handle_message`] instead;
/// - a CTI command is asked for: [`Session::submit`]; a resync is wanted
///   (periodic): [`Session::request_resync`];
/// - the timer fires: [`Session::handle_timeout`] with `now`;
/// - the connection is gone: [`Session::handle_disconnect`] (drops any
///   partial frame);
/// - after any of those, drain [`Session::poll_output`] until `None`:
///   bytes to send, events, rejections, replies, and `Close` when the
///   connection must go;
/// - before waiting again: [`Session::poll_timeout`] is the next deadline
///   (`None`: none; calling [`Session::handle_timeout`] more often, as the
///   live task does each second, is harmless).
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    phase: Phase,
    pending: VecDeque<Pending>,
    mapper: Mapper,
    resync: Option<Resync>,
    core_uuid: Option<String>,
    last_seq: Option<u64>,
    mapped: Vec<Mapped>,
    /// Frames the bytes of the current connection; `inbuf` holds an
    /// incomplete frame until the rest arrives.
    framer: Framer,
    inbuf: Vec<u8>,
    /// What the driver has yet to act on, in order.
    out: VecDeque<Output>,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Self {
        let mut mapper = Mapper::new(cfg.timers.clone());
        mapper.check_counts = cfg.check_counts && !cfg.replay;
        mapper.counted_until = cfg.counted_until;
        Session {
            cfg,
            phase: Phase::Connecting,
            pending: VecDeque::new(),
            mapper,
            resync: None,
            core_uuid: None,
            last_seq: None,
            mapped: Vec::new(),
            framer: Framer::default(),
            inbuf: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// The next thing the driver must act on, in order; `None` when
    /// everything has been handed out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Session::handle_timeout`] next has work: a wrap-up or delay
    /// ending, or a resync running out of time.
    pub fn poll_timeout(&self) -> Option<Ts> {
        match &self.resync {
            Some(r) => Some(r.started.plus_ms(self.cfg.resync_timeout_ms).plus_ms(1)),
            None if self.phase != Phase::Resyncing => self.mapper.poll_timeout(),
            None => None,
        }
    }

    /// Runs `f` with a scratch output list and queues what it produced.
    fn emit(&mut self, f: impl FnOnce(&mut Self, &mut Vec<Output>)) {
        let mut out = Vec::new();
        f(self, &mut out);
        self.out.extend(out);
    }

    /// Feeds bytes read from the socket, in any chunking: every complete
    /// frame is handled in place (borrowed, no per-event allocation on the
    /// plain path); a partial frame waits for the next call.
    pub fn handle_input(&mut self, bytes: &[u8], now: Ts) {
        let mut buf = std::mem::take(&mut self.inbuf);
        buf.extend_from_slice(bytes);
        let mut framer = std::mem::take(&mut self.framer);
        let mut out = Vec::new();
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
                        Ok(m) => self.message(m, now, &mut out),
                        Err(r) => out.push(Output::Reject(r)),
                    }
                }
            }
        }
        buf.drain(..pos);
        self.inbuf = buf;
        self.framer = framer;
        self.out.extend(out);
    }

    /// Bytes of a partial frame waiting for the rest.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.inbuf.len()
    }

    /// Handles one message framed by the caller.
    pub fn handle_message(&mut self, msg: Message<'_>, now: Ts) {
        self.emit(|s, out| s.message(msg, now, out));
    }

    /// Connected, subscribed and resynced.
    pub fn is_synced(&self) -> bool {
        self.phase == Phase::Live
    }

    /// Can take [`Session::submit`] commands (authenticated and subscribed).
    pub fn accepts_commands(&self) -> bool {
        matches!(self.phase, Phase::Live | Phase::Resyncing)
    }

    /// The latest event time seen.
    pub fn clock(&self) -> Ts {
        self.mapper.clock()
    }

    /// Callers tracked as waiting in `queue` (tests, diagnostics).
    pub fn waiting_in(&self, queue: &str) -> usize {
        self.mapper.waiting_in(queue)
    }

    /// The connection is gone: pending commands fail, held events are
    /// applied (they happened; the next resync reconciles the rest), a
    /// partial frame is dropped.
    pub fn handle_disconnect(&mut self, why: &str) {
        self.inbuf.clear();
        self.framer = Framer::default();
        self.emit(|s, out| s.disconnected(why, out));
    }

    fn disconnected(&mut self, why: &str, out: &mut Vec<Output>) {
        for p in self.pending.drain(..) {
            if let Pending::External { id, .. } = p {
                out.push(Output::Reply {
                    id,
                    result: Err(format!("connection lost: {why}")),
                });
            }
        }
        if let Some(r) = self.resync.take() {
            for ev in r.held {
                self.mapper.handle_event(&ev, &mut self.mapped);
            }
            self.flush(out);
        }
        self.phase = Phase::Connecting;
        self.last_seq = None;
    }

    /// Sends an `api` command for a CTI action. `effect` is emitted as a
    /// domain event when the reply is `+OK` (tier changes fire no events).
    pub fn submit(
        &mut self,
        id: u64,
        command: &str,
        effect: Option<EventKind>,
    ) -> Result<(), String> {
        if !self.accepts_commands() {
            return Err("not connected to FreeSWITCH".into());
        }
        if command.contains(['\n', '\r']) {
            return Err("command contains a line break".into());
        }
        self.pending.push_back(Pending::External { id, effect });
        self.out
            .push_back(Output::Send(format!("api {command}\n\n").into_bytes()));
        Ok(())
    }

    /// Timers: wrap-ups and delays that end by `now`; a resync that took
    /// too long.
    pub fn handle_timeout(&mut self, now: Ts) {
        self.emit(|s, out| {
            if s.phase != Phase::Resyncing {
                s.mapper.handle_timeout(now, &mut s.mapped);
                s.flush(out);
            }
            s.check_deadline(now, out);
        });
    }

    /// Starts a resync now (periodic, or asked for by the driver).
    pub fn request_resync(&mut self, reason: &str, now: Ts) {
        if self.phase == Phase::Live {
            self.emit(|s, out| s.start_resync(reason.to_string(), now, out));
        }
    }

    /// Handles one message from the server.
    fn message(&mut self, msg: Message<'_>, now: Ts, out: &mut Vec<Output>) {
        match msg {
            Message::AuthRequest => {
                // A new connection (live), or a recorded reconnect (replay).
                if self.phase != Phase::Connecting {
                    self.disconnected("server asked to authenticate again", out);
                }
                self.phase = Phase::Authenticating;
                self.last_seq = None;
                self.pending.push_back(Pending::Auth);
                let pw = self.cfg.password.expose();
                let cmd = match &self.cfg.user {
                    Some(u) => format!("userauth {u}:{pw}\n\n"),
                    None => format!("auth {pw}\n\n"),
                };
                out.push(Output::Send(cmd.into_bytes()));
            }
            Message::CommandReply { reply } => self.command_reply(reply, now, out),
            Message::ApiResponse { body } => self.api_response(&body, now, out),
            Message::Event(ev) => self.event(ev, now, out),
            Message::DisconnectNotice { body } => {
                out.push(Output::Close(format!(
                    "FreeSWITCH disconnected us: {}",
                    body.trim()
                )));
            }
            Message::RudeRejection { body } => {
                out.push(Output::Close(format!(
                    "refused by the event socket ACL: {}",
                    body.trim()
                )));
            }
            Message::Other { content_type } => {
                tracing::debug!(content_type, "ignoring event-socket frame");
            }
        }
        self.check_deadline(now, out);
    }

    fn command_reply(&mut self, reply: &str, now: Ts, out: &mut Vec<Output>) {
        let ok = reply.starts_with("+OK");
        match self.pending.pop_front() {
            Some(Pending::Auth) if ok => {
                self.phase = Phase::Subscribing;
                self.pending.push_back(Pending::Subscribe);
                let fmt = match self.cfg.format {
                    EventFormat::Plain => "plain",
                    EventFormat::Json => "json",
                };
                out.push(Output::Send(
                    format!("event {fmt} CUSTOM callcenter::info\n\n").into_bytes(),
                ));
            }
            Some(Pending::Auth) => {
                out.push(Output::Close(format!(
                    "authentication refused ({reply}); check the password"
                )));
            }
            Some(Pending::Subscribe) if ok => self.start_resync("connect".into(), now, out),
            Some(Pending::Subscribe) => {
                out.push(Output::Close(format!(
                    "event subscription refused: {reply}"
                )));
            }
            Some(Pending::External { id, .. }) => out.push(Output::Reply {
                id,
                result: Ok(reply.to_string()),
            }),
            Some(p @ (Pending::QueueList | Pending::List { .. })) => {
                out.push(Output::Close(format!(
                    "resync command {p:?} refused: {reply}"
                )));
            }
            None if self.cfg.replay && self.phase == Phase::Connecting => {
                // A transcript that starts after the handshake.
            }
            None => out.push(Output::Reject(Reject::new(
                RejectReason::UnexpectedReply,
                format!("command/reply with nothing pending: {reply}"),
            ))),
        }
    }

    fn api_response(&mut self, body: &str, now: Ts, out: &mut Vec<Output>) {
        match self.pending.pop_front() {
            Some(Pending::QueueList) => self.queue_list(body, out),
            Some(Pending::List { queue, kind }) => self.list(queue, kind, body, out),
            Some(Pending::External { id, effect }) => {
                let ok = body.starts_with("+OK") || body.contains("Tier already exist");
                if let (true, Some(kind)) = (ok, effect) {
                    self.push_mapped(Ok(Event { ts: now, kind }), out);
                }
                out.push(Output::Reply {
                    id,
                    result: Ok(body.to_string()),
                });
            }
            Some(other) => out.push(Output::Close(format!(
                "api/response while waiting for {other:?}"
            ))),
            None if self.cfg.replay && body.starts_with("name|strategy|") => {
                // A recorded resync this session did not start itself (the
                // recorder's trigger differed): follow the transcript.
                self.start_resync("recorded".into(), now, out);
                self.pending.pop_front();
                self.queue_list(body, out);
            }
            None if self.cfg.replay => {
                // The reply to a command the live daemon sent for its CTI
                // (`agent get status`, `tier add|del`): the transcript holds
                // what the server sent, not what was asked.
                tracing::debug!("recorded reply to a live CTI command");
            }
            None => out.push(Output::Reject(Reject::new(
                RejectReason::UnexpectedReply,
                "api/response with nothing pending",
            ))),
        }
    }

    fn push_mapped(&mut self, m: Mapped, out: &mut Vec<Output>) {
        self.mapped.push(m);
        self.flush(out);
    }

    fn flush(&mut self, out: &mut Vec<Output>) {
        self.flush_from(None, out);
    }

    /// Hands out what the mapper produced from the wire event `origin`.
    fn flush_from(&mut self, origin: Option<crate::sources::Origin>, out: &mut Vec<Output>) {
        for m in self.mapped.drain(..) {
            out.push(match (m, &origin) {
                (Ok(e), Some(o)) => Output::Traced(e, o.clone()),
                (Ok(e), None) => Output::Event(e),
                (Err(r), _) => Output::Reject(r),
            });
        }
    }

    /// `e<Core-UUID>:<Event-Sequence>`: FreeSWITCH numbers every event it
    /// fires per core, so the pair names one event on every connection
    /// (None when origins are off or the event lacks either header).
    fn origin(&self, ev: &CcEvent<'_>) -> Option<crate::sources::Origin> {
        if !self.cfg.origins {
            return None;
        }
        let core = ev.text(Field::CoreUuid)?;
        let seq = ev.int(Field::Sequence)?;
        Some(format!("e{core}:{seq}").into())
    }

    /// Maps one event and hands out what it gave, with its origin.
    fn apply_event(&mut self, ev: &CcEvent<'_>, out: &mut Vec<Output>) {
        let origin = self.origin(ev);
        self.mapper.handle_event(ev, &mut self.mapped);
        self.flush_from(origin, out);
    }

    fn start_resync(&mut self, reason: String, now: Ts, out: &mut Vec<Output>) {
        tracing::info!(%reason, "resyncing queues from mod_callcenter");
        self.phase = Phase::Resyncing;
        self.resync = Some(Resync {
            reason: reason.clone(),
            started: now,
            lists: Vec::new(),
            outstanding: 0,
            held: Vec::new(),
        });
        self.pending.push_back(Pending::QueueList);
        out.push(Output::Send(
            b"api callcenter_config queue list\n\n".to_vec(),
        ));
        out.push(Output::ResyncStarted(reason));
    }

    fn queue_list(&mut self, body: &str, out: &mut Vec<Output>) {
        let rows = match lists::queues(body) {
            Ok(n) => n,
            Err(e) => {
                let hint = if matches!(&e, ListError::Err(t) if t.contains("not found")) {
                    " (is mod_callcenter loaded?)"
                } else {
                    ""
                };
                out.push(Output::Close(format!("queue list failed: {e}{hint}")));
                return;
            }
        };
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let plan: Vec<String> = if self.cfg.queues.is_empty() {
            names
        } else {
            for q in &self.cfg.queues {
                if !names.contains(q) {
                    tracing::warn!(queue = %q, "configured queue is not loaded in mod_callcenter");
                }
            }
            self.cfg.queues.clone()
        };
        let Some(r) = self.resync.as_mut() else {
            return;
        };
        for (i, q) in plan.iter().enumerate() {
            r.lists.push(QueueLists {
                queue: q.clone(),
                max_wait_s: rows
                    .iter()
                    .find(|r| r.name == *q)
                    .map_or(0, |r| r.max_wait_time),
                agents: Vec::new(),
                members: Vec::new(),
                tiers: Vec::new(),
            });
            for (kind, word) in [
                (ListKind::Agents, "agents"),
                (ListKind::Members, "members"),
                (ListKind::Tiers, "tiers"),
            ] {
                self.pending.push_back(Pending::List { queue: i, kind });
                r.outstanding += 1;
                out.push(Output::Send(
                    format!(
                        "api callcenter_config queue list {word} {}\n\n",
                        quote_arg(q)
                    )
                    .into_bytes(),
                ));
            }
        }
        if r.outstanding == 0 {
            self.finish_resync(out);
        }
    }

    fn list(&mut self, queue: usize, kind: ListKind, body: &str, out: &mut Vec<Output>) {
        let Some(r) = self.resync.as_mut() else {
            return;
        };
        let Some(ql) = r.lists.get_mut(queue) else {
            return;
        };
        let bad = match kind {
            ListKind::Agents => lists::agents(body).map(|(rows, bad)| {
                ql.agents = rows;
                bad
            }),
            ListKind::Members => lists::members(body).map(|(rows, bad)| {
                ql.members = rows;
                bad
            }),
            ListKind::Tiers => lists::tiers(body).map(|(rows, bad)| {
                ql.tiers = rows;
                bad
            }),
        };
        match bad {
            Ok(bad) => {
                for row in bad {
                    out.push(Output::Reject(Reject::new(
                        RejectReason::MalformedListRow,
                        format!("{kind:?} of {}: {row}", ql.queue),
                    )));
                }
            }
            Err(e) => {
                out.push(Output::Close(format!(
                    "queue list {kind:?} {} failed: {e}",
                    ql.queue
                )));
                return;
            }
        }
        r.outstanding = r.outstanding.saturating_sub(1);
        if r.outstanding == 0 {
            self.finish_resync(out);
        }
    }

    fn finish_resync(&mut self, out: &mut Vec<Output>) {
        let Some(r) = self.resync.take() else {
            return;
        };
        self.mapper
            .apply_resync(r.started, r.lists, &mut self.mapped);
        self.flush(out);
        for ev in &r.held {
            self.apply_event(ev, out);
        }
        self.phase = Phase::Live;
        tracing::info!(reason = %r.reason, held = r.held.len(), "resync complete");
        out.push(Output::Synced);
    }

    fn check_deadline(&mut self, now: Ts, out: &mut Vec<Output>) {
        let Some(r) = &self.resync else { return };
        if now.since(r.started) <= self.cfg.resync_timeout_ms {
            return;
        }
        if self.cfg.replay {
            // The transcript does not hold the lists: go on without them.
            tracing::warn!("recorded resync never completed; applying held events");
            self.pending
                .retain(|p| matches!(p, Pending::External { .. }));
            self.flush(out);
            if let Some(r) = self.resync.take() {
                for ev in r.held {
                    self.apply_event(&ev, out);
                }
            }
            self.phase = Phase::Live;
        } else {
            out.push(Output::Close("resync timed out".into()));
        }
    }

    fn event(&mut self, ev: CcEvent<'_>, now: Ts, out: &mut Vec<Output>) {
        let ours = ev.is_absent_or(Field::EventName, "CUSTOM")
            && (ev.is_absent_or(Field::Subclass, "callcenter%3A%3Ainfo")
                || ev.is_absent_or(Field::Subclass, "callcenter::info"));
        if !ours {
            return;
        }
        let gap = self.gap(&ev);
        if let Some(r) = self.resync.as_mut() {
            r.held.push(ev.into_owned());
            return;
        }
        if let Some(reason) = gap {
            self.start_resync(reason, now.max(self.mapper.clock()), out);
            if let Some(r) = self.resync.as_mut() {
                r.held.push(ev.into_owned());
            }
            return;
        }
        self.apply_event(&ev, out);
        if let Some(reason) = self.mapper.take_resync_wanted() {
            self.start_resync(reason, self.mapper.clock(), out);
        }
    }

    /// Whether this event shows that events were lost.
    fn gap(&mut self, ev: &CcEvent<'_>) -> Option<String> {
        let mut reason = None;
        if let Some(core) = ev.text(Field::CoreUuid) {
            if let Some(prev) = &self.core_uuid
                && *prev != core
            {
                reason = Some(format!("FreeSWITCH restarted (Core-UUID {prev} -> {core})"));
                self.last_seq = None;
            }
            if self.core_uuid.as_deref() != Some(core.as_ref()) {
                self.core_uuid = Some(core.into_owned());
            }
        }
        if let Some(seq) = ev.int(Field::Sequence).and_then(|s| u64::try_from(s).ok()) {
            if let Some(prev) = self.last_seq {
                if seq <= prev {
                    reason.get_or_insert(format!("Event-Sequence went back from {prev} to {seq}"));
                } else if self.cfg.max_sequence_gap.is_some_and(|g| seq - prev > g) {
                    reason.get_or_insert(format!("Event-Sequence jumped from {prev} to {seq}"));
                }
            }
            self.last_seq = Some(seq);
        }
        reason
    }
}

/// Quotes one `callcenter_config` argument: mod_callcenter splits on
/// spaces, groups single-quoted words and takes `\` as an escape.
pub fn quote_arg(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '\'', '\\', '\t']) {
        return s.to_string();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('\'');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_groups_words_and_escapes_quotes() {
        assert_eq!(quote_arg("1000@default"), "1000@default");
        assert_eq!(quote_arg("Logged Out"), "'Logged Out'");
        assert_eq!(quote_arg("O'Brien q"), "'O\\'Brien q'");
    }
}
