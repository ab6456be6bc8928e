//! One AMI connection as a plain state machine (quinn-proto style).
//!
//! Fed bytes and the current time; hands back bytes to send, domain events,
//! action replies and rejections. It never touches a socket or a clock, so
//! recorded transcripts, the fake server tests, the replay decoder and the
//! fuzzer all drive exactly the code the daemon runs.
//!
//! Lifecycle of a connection: banner → (MD5 `Challenge`) → `Login` →
//! `Ping` + `QueueStatus` → live. AMI keeps no history for clients
//! (protocols.md 1.10), so every connect rebuilds the queues from
//! `QueueStatus`: members from `QueueMember`, waiting callers from
//! `QueueEntry` (joined = list time − `Wait`). Live events that arrive while
//! the list is being sent are buffered in arrival order and applied after
//! `QueueStatusComplete`, following one `QueueResync` per listed queue, so the
//! engine sees the rebuilt picture first and then what changed since. The
//! list time is the `Timestamp` of the `Ping` reply sent just before the
//! list (Asterisk's clock, the same clock as the events' `Timestamp`s) and
//! the local clock only when that is missing.
//!
//! A passive variant reads a transcript that some AMI client recorded: it
//! sends nothing and accepts list events whatever their `ActionID`.
//!
//! Beside this file: `resync` (asking for, collecting and applying a
//! `QueueStatus` list, and reconciling the tracker with it) and `actions`
//! (CTI actions, their replies and confirmations).

use std::collections::HashMap;

use md5::{Digest, Md5};

use super::mapping::{AgentIds, QueueEvent, Tracker, classify, parse_timestamp};
use super::parser::{Item, Message, Parser};
use crate::config::Secret;
use crate::event::Event;
use crate::sources::{Reject, RejectReason};
use crate::time::Ts;

mod actions;
mod origin;
mod resync;

use actions::Confirm;
pub use actions::{ActionReply, AmiAction, ReplyStatus};
use resync::Resync;

/// Most live events held while a `QueueStatus` list is read. A listing that
/// takes this long is a broken connection; the session fails and reconnects.
pub const MAX_BUFFERED: usize = 100_000;

/// How long a successful sign-in/out waits for its `QueueMember*` event.
pub const CONFIRM_WAIT_MS: i64 = 1_000;

pub use crate::config::sources::Auth;

/// What the session needs to know.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub username: String,
    pub secret: Secret,
    pub auth: Auth,
    /// `Events:` in the Login (`agent,call`).
    pub events: String,
    pub ping_interval_ms: i64,
    pub action_timeout_ms: i64,
    /// Relist every queue this often while connected (0 = only on connect),
    /// so state that drifted (a lost leave, a filtered event) heals.
    pub resync_interval_ms: i64,
    pub ids: AgentIds,
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    AwaitBanner,
    Challenge,
    Login,
    /// Logged in; the first `QueueStatus` list is being read.
    Resync,
    Live,
    /// A fatal error happened; see [`Session::error`].
    Failed,
}

#[derive(Debug)]
enum Pending {
    Challenge,
    Login,
    Ping,
    QueueStatus,
    Action { token: u64, action: AmiAction },
}

#[derive(Debug)]
struct Outstanding {
    what: Pending,
    deadline: Ts,
}

/// One AMI connection (see the module doc).
///
/// Calling order (the same verbs as every sans-IO core in acdmon):
/// - bytes arrive: [`Session::handle_input`] with the bytes and `now` (the
///   session owns the framer; any chunking is fine);
/// - a CTI action is asked for: [`Session::submit`]; events had to be
///   dropped downstream: [`Session::request_resync`];
/// - the timer fires: [`Session::handle_timeout`] with `now`;
/// - after any of those, drain the output: [`Session::poll_transmit`]
///   (bytes to write), [`Session::poll_events`], [`Session::poll_replies`],
///   [`Session::poll_rejects`]; then check [`Session::error`] (close the
///   connection when set);
/// - before waiting again: [`Session::poll_timeout`] is the next deadline
///   (`None`: no timer needed);
/// - a replayed transcript ends: [`Session::handle_eof`], then drain.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    passive: bool,
    parser: Parser,
    inbuf: Vec<u8>,
    phase: Phase,
    tracker: Tracker,
    next_id: u64,
    outstanding: HashMap<String, Outstanding>,
    confirms: Vec<Confirm>,
    resync: Option<Resync>,
    queued_resync: Option<String>,
    synced: bool,
    banner_deadline: Ts,
    next_ping: Ts,
    /// Latest `Timestamp:` seen (Asterisk's clock).
    last_ts: Option<Ts>,
    now: Ts,
    outgoing: Vec<u8>,
    events: Vec<Event>,
    replies: Vec<(u64, ActionReply)>,
    rejects: Vec<Reject>,
    error: Option<String>,
    version: Option<String>,
    /// Passive mode: time of a Ping reply not yet tied to a list.
    pending_list_time: Option<Ts>,
    queued_full_resync: bool,
    next_relist: Ts,
    /// With [`Session::trace_origins`]: each event's AMI block.
    origins: Option<origin::Origins>,
}

impl Session {
    /// A client session for a fresh TCP connection.
    pub fn new(cfg: SessionConfig, now: Ts) -> Self {
        let tracker = Tracker::new(cfg.ids.clone());
        Self::with_tracker(cfg, tracker, now, false)
    }

    /// A new connection that keeps what the previous one learnt (callers'
    /// join times, members), so the resync can keep counting correctly.
    pub fn reconnect(cfg: SessionConfig, previous: Session, now: Ts) -> Self {
        let mut tracker = previous.tracker;
        tracker.on_connect();
        Self::with_tracker(cfg, tracker, now, false)
    }

    /// A passive session reading a recorded transcript (never sends).
    pub fn passive(ids: AgentIds) -> Self {
        let cfg = SessionConfig {
            username: String::new(),
            secret: Secret::inline(""),
            auth: Auth::Plain,
            events: String::new(),
            ping_interval_ms: i64::MAX / 4,
            action_timeout_ms: i64::MAX / 4,
            resync_interval_ms: 0,
            ids: ids.clone(),
        };
        let mut s = Self::with_tracker(cfg, Tracker::new(ids), Ts::ZERO, true);
        s.phase = Phase::Live;
        s
    }

    fn with_tracker(cfg: SessionConfig, tracker: Tracker, now: Ts, passive: bool) -> Self {
        let banner_deadline = now.plus_ms(cfg.action_timeout_ms);
        Session {
            cfg,
            passive,
            parser: Parser::new(),
            inbuf: Vec::with_capacity(16 * 1024),
            phase: Phase::AwaitBanner,
            tracker,
            next_id: 1,
            outstanding: HashMap::new(),
            confirms: Vec::new(),
            resync: None,
            queued_resync: None,
            synced: false,
            banner_deadline,
            next_ping: Ts(i64::MAX),
            last_ts: None,
            now,
            outgoing: Vec::new(),
            events: Vec::new(),
            replies: Vec::new(),
            rejects: Vec::new(),
            error: None,
            version: None,
            pending_list_time: None,
            queued_full_resync: false,
            next_relist: Ts(i64::MAX),
            origins: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Logged in (actions may be sent).
    pub fn logged_in(&self) -> bool {
        matches!(self.phase, Phase::Resync | Phase::Live)
    }

    /// The first full resync of this connection is done.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Why the session failed (the connection should be closed).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The AMI version from the banner.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Bytes to write to the socket: everything queued since the last
    /// call, empty when there is nothing to send.
    pub fn poll_transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Moves the domain events produced so far, in order, onto `out`.
    pub fn poll_events(&mut self, out: &mut Vec<Event>) {
        out.append(&mut self.events);
    }

    /// Keep each event's origin, `a<digest of its AMI block>` (cluster
    /// mode, see `origin`); read them with [`Session::poll_events_traced`].
    pub fn trace_origins(&mut self) {
        self.origins.get_or_insert_with(Default::default);
    }

    /// [`Session::poll_events`], with the origin of each event moved onto
    /// `origins` (`None` for a resync's or a timer's; nothing unless
    /// [`Session::trace_origins`]).
    pub fn poll_events_traced(
        &mut self,
        out: &mut Vec<Event>,
        origins: &mut Vec<Option<crate::sources::Origin>>,
    ) {
        if let Some(o) = self.origins.as_mut() {
            o.pad(self.events.len(), None);
            origins.append(&mut o.of_events);
        }
        out.append(&mut self.events);
    }

    /// Action replies produced so far (token, reply).
    pub fn poll_replies(&mut self) -> Vec<(u64, ActionReply)> {
        std::mem::take(&mut self.replies)
    }

    /// Input dropped so far.
    pub fn poll_rejects(&mut self) -> Vec<Reject> {
        let mut r = std::mem::take(&mut self.rejects);
        r.extend(self.tracker.poll_rejects());
        r
    }

    /// Feeds bytes read from the socket (or transcript), in any chunking:
    /// the session owns the framer and keeps an incomplete block for the
    /// next call.
    pub fn handle_input(&mut self, bytes: &[u8], now: Ts) {
        self.now = self.now.max(now);
        self.inbuf.extend_from_slice(bytes);
        let mut buf = std::mem::take(&mut self.inbuf);
        let mut parser = std::mem::replace(&mut self.parser, Parser::empty());
        let mut start = 0;
        while self.phase != Phase::Failed {
            let (n, item) = parser.parse(&buf[start..]);
            let done = item.is_none();
            match item {
                Some(Item::Banner(v)) => {
                    let v = v.to_string();
                    self.on_banner(v);
                }
                Some(Item::Message(m)) => self.on_message(&m),
                Some(Item::Rejected(r)) => self.rejects.push(r),
                None => {}
            }
            start += n;
            if done {
                break;
            }
        }
        self.parser = parser;
        buf.drain(..start);
        self.inbuf = buf;
    }

    /// When [`Session::handle_timeout`] next has work (`None`: never).
    pub fn poll_timeout(&self) -> Option<Ts> {
        if self.passive || self.phase == Phase::Failed {
            return None;
        }
        let mut t = self.tracker.poll_timeout();
        let mut min = |x: Ts| t = Some(t.map_or(x, |y: Ts| y.min(x)));
        if self.phase == Phase::AwaitBanner {
            min(self.banner_deadline);
        }
        if self.logged_in() {
            min(self.next_ping);
            min(self.next_relist);
        }
        for o in self.outstanding.values() {
            min(o.deadline);
        }
        for c in &self.confirms {
            min(c.deadline);
        }
        if let Some(r) = &self.resync {
            min(r.deadline);
        }
        t
    }

    /// Runs timers: banner and action timeouts, keepalive pings, unconfirmed
    /// actions, and the tracker's held leaves and wrap-ups.
    pub fn handle_timeout(&mut self, now: Ts) {
        if self.passive || self.phase == Phase::Failed {
            return;
        }
        self.now = self.now.max(now);
        if self.phase == Phase::AwaitBanner && now >= self.banner_deadline {
            self.fail("no AMI banner from the peer (is this an Asterisk manager port?)");
            return;
        }
        if self.resync.as_ref().is_some_and(|r| now >= r.deadline) {
            self.fail("QueueStatus list did not complete in time");
            return;
        }
        let expired: Vec<String> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in expired {
            let Some(o) = self.outstanding.remove(&id) else {
                continue;
            };
            match o.what {
                Pending::Action { token, .. } => self.replies.push((
                    token,
                    ActionReply::local(ReplyStatus::Timeout, "no reply from Asterisk in time"),
                )),
                Pending::Ping => {
                    self.fail("keepalive Ping not answered in time");
                    return;
                }
                Pending::Challenge | Pending::Login => {
                    self.fail("login not answered in time");
                    return;
                }
                Pending::QueueStatus => {
                    self.fail("QueueStatus not answered in time");
                    return;
                }
            }
        }
        let mut i = 0;
        while i < self.confirms.len() {
            if self.confirms[i].deadline <= now {
                let c = self.confirms.swap_remove(i);
                self.replies.push((
                    c.token,
                    ActionReply {
                        status: ReplyStatus::Success,
                        message: c.message,
                        confirmed: Some(false),
                    },
                ));
            } else {
                i += 1;
            }
        }
        if self.logged_in() && now >= self.next_ping {
            let has_ping = self
                .outstanding
                .values()
                .any(|o| matches!(o.what, Pending::Ping));
            if !has_ping {
                self.send(Pending::Ping, "Ping", &[]);
            }
            self.next_ping = now.plus_ms(self.cfg.ping_interval_ms);
        }
        if self.logged_in() && now >= self.next_relist {
            if self.resync.is_none() {
                self.start_resync(None);
            }
            self.schedule_relist();
        }
        if self.resync.is_none() {
            self.tracker.handle_timeout(now, &mut self.events);
        }
    }

    /// Ends a replay: judges leaves still held (the transcript ended). The
    /// events come out through [`Session::poll_events`].
    pub fn handle_eof(&mut self) {
        if let Some(r) = self.resync.as_mut()
            && r.complete
        {
            let at = r.at.or(self.last_ts).unwrap_or(self.now);
            self.finish_resync(at);
        }
        if let Some(last) = self.last_ts {
            self.tracker.handle_timeout(
                last.plus_ms(super::mapping::LEAVE_GRACE_MS),
                &mut self.events,
            );
        }
    }

    fn fail(&mut self, why: impl Into<String>) {
        self.phase = Phase::Failed;
        self.error = Some(why.into());
    }

    fn send(&mut self, what: Pending, action: &str, headers: &[(&str, &str)]) -> String {
        let id = format!("acdmon-{}", self.next_id);
        self.next_id += 1;
        let out = &mut self.outgoing;
        out.extend_from_slice(b"Action: ");
        out.extend_from_slice(action.as_bytes());
        out.extend_from_slice(b"\r\nActionID: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let deadline = self.now.plus_ms(self.cfg.action_timeout_ms);
        self.outstanding
            .insert(id.clone(), Outstanding { what, deadline });
        id
    }

    fn on_banner(&mut self, version: String) {
        self.version = Some(version);
        if self.passive {
            // A reconnect inside the transcript: what was buffered is lost.
            self.resync = None;
            self.synced = false;
            self.tracker.on_connect();
            return;
        }
        if self.phase != Phase::AwaitBanner {
            return;
        }
        match self.cfg.auth {
            Auth::Plain => self.send_login(None),
            Auth::Md5 => {
                self.phase = Phase::Challenge;
                self.send(Pending::Challenge, "Challenge", &[("AuthType", "MD5")]);
            }
        }
    }

    fn send_login(&mut self, challenge: Option<&str>) {
        self.phase = Phase::Login;
        let user = self.cfg.username.clone();
        let events = self.cfg.events.clone();
        match challenge {
            None => {
                let secret = self.cfg.secret.clone();
                self.send(
                    Pending::Login,
                    "Login",
                    &[
                        ("Username", &user),
                        ("Secret", secret.expose()),
                        ("Events", &events),
                    ],
                );
            }
            Some(ch) => {
                let mut h = Md5::new();
                h.update(ch.as_bytes());
                h.update(self.cfg.secret.expose().as_bytes());
                let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                self.send(
                    Pending::Login,
                    "Login",
                    &[
                        ("AuthType", "MD5"),
                        ("Username", &user),
                        ("Key", &key),
                        ("Events", &events),
                    ],
                );
            }
        }
    }

    fn on_message(&mut self, m: &Message<'_>) {
        if m.get_bytes("Response").is_some() {
            self.on_response(m);
        } else if m.get_bytes("Event").is_some() {
            self.on_event(m);
        } else {
            self.rejects.push(Reject::new(
                RejectReason::Malformed,
                "block with neither Response nor Event",
            ));
        }
    }

    fn on_response(&mut self, m: &Message<'_>) {
        let success = m.is("Response", "Success");
        let message = m.get("Message").unwrap_or("").to_string();
        // Ping replies carry Asterisk's clock; note it even in passive mode.
        if m.get_bytes("Ping").is_some()
            && let Some(t) = m.get("Timestamp").and_then(parse_timestamp)
        {
            self.last_ts = Some(self.last_ts.map_or(t, |l| l.max(t)));
            if let Some(r) = self.resync.as_mut()
                && r.at.is_none()
            {
                r.at = Some(t);
            }
            if self.passive && self.resync.is_none() {
                // A Ping right before a list: remember its time for it.
                self.pending_list_time = Some(t);
            }
        }
        if self.passive {
            return;
        }
        let Some(id) = m.get("ActionID") else {
            return;
        };
        let Some(o) = self.outstanding.remove(id) else {
            return;
        };
        match o.what {
            Pending::Challenge => match m.get("Challenge").filter(|_| success) {
                Some(ch) => {
                    let ch = ch.to_string();
                    self.send_login(Some(&ch));
                }
                None => self.fail(format!("MD5 challenge refused: {message}")),
            },
            Pending::Login => {
                if success {
                    self.phase = Phase::Resync;
                    self.tracker.on_connect();
                    self.next_ping = self.now.plus_ms(self.cfg.ping_interval_ms);
                    self.schedule_relist();
                    self.start_resync(None);
                } else {
                    self.fail(format!("login failed: {message}"));
                }
            }
            Pending::Ping => {}
            Pending::QueueStatus => {
                if !success {
                    self.fail(format!("QueueStatus refused: {message}"));
                }
            }
            Pending::Action { token, action } => {
                if success {
                    let deadline = self.now.plus_ms(CONFIRM_WAIT_MS);
                    self.confirms.push(Confirm {
                        token,
                        action,
                        message,
                        deadline,
                    });
                } else {
                    self.reconcile_refusal(&action, &message);
                    self.replies.push((
                        token,
                        ActionReply {
                            status: ReplyStatus::Error,
                            message,
                            confirmed: None,
                        },
                    ));
                }
            }
        }
    }

    fn on_event(&mut self, m: &Message<'_>) {
        if let Some(p) = m.get("Privilege") {
            self.tracker.note_privilege(p);
        }
        let stamped = m.get("Timestamp").and_then(parse_timestamp);
        if let Some(t) = stamped {
            self.last_ts = Some(self.last_ts.map_or(t, |l| l.max(t)));
        }
        let ts = stamped.unwrap_or(if self.passive {
            self.last_ts.unwrap_or(self.now)
        } else {
            self.now
        });

        // Is it a list event of a QueueStatus?
        let is_list = [
            "QueueParams",
            "QueueMember",
            "QueueEntry",
            "QueueStatusComplete",
        ]
        .iter()
        .any(|n| m.is("Event", n));
        if is_list {
            self.on_list_event(m);
            return;
        }
        // `module reload app_queue.so` (or a full `reload`) can change
        // members with no QueueMember* event; `queue reload members` raises
        // not even this (Asterisk 20.20.1), only the periodic relist sees it.
        // `Reload` is a `system`-class event: it arrives only where the
        // manager user may read `system` and `events` asks for it.
        if m.is("Event", "Reload")
            && m.get("Module").is_none_or(|module| {
                let module = module.to_ascii_lowercase();
                module.is_empty() || module == "all" || module.starts_with("app_queue")
            })
            && !self.passive
            && self.logged_in()
        {
            tracing::info!("app_queue reloaded; relisting the queues");
            if self.resync.is_none() {
                self.start_resync(None);
            } else {
                self.queued_full_resync = true;
            }
        }
        if let Some(r) = self.resync.as_mut() {
            if !r.complete {
                if r.buffered.len() >= MAX_BUFFERED {
                    self.fail("too many live events during QueueStatus; reconnecting");
                    return;
                }
                r.buffered.push((m.to_owned(), ts));
                return;
            }
            // Passive mode: a finished list waiting for a time. Events
            // without one wait with it, in order.
            match stamped {
                Some(t) => {
                    let at = r.at.unwrap_or(t);
                    self.finish_resync(at);
                }
                None if r.buffered.len() < MAX_BUFFERED => {
                    r.buffered.push((m.to_owned(), ts));
                    return;
                }
                None => {
                    let at = self.last_ts.unwrap_or(self.now);
                    self.finish_resync(at);
                }
            }
        }
        self.apply_live(m, ts);
    }

    fn apply_live<H: super::parser::Headers>(&mut self, m: &H, ts: Ts) {
        match classify(m) {
            Ok(Some(ev)) => {
                if let QueueEvent::Member { change, block } = &ev {
                    self.confirm(*change, block.queue, block.interface, block.paused);
                }
                let origin = self.origins.as_mut().map(|o| {
                    o.pad(self.events.len(), None);
                    o.of(m)
                });
                self.tracker.handle_event(&ev, ts, &mut self.events);
                if let Some(o) = self.origins.as_mut() {
                    o.pad(self.events.len(), origin);
                }
            }
            Ok(None) => {}
            Err(r) => self.rejects.push(r),
        }
    }
}
