//! From app_queue's AMI events to acdmon's domain events.
//!
//! Two steps. [`classify`] reads one message into a typed [`QueueEvent`],
//! normalising the wire's traps once: field aliases between list and live
//! events (`Name`/`Location` vs `MemberName`/`Interface`; `Holdtime` vs
//! `HoldTime` is handled by case-insensitive keys) and units (`RingTime` is
//! milliseconds in `AgentRingNoAnswer` but seconds in `AgentConnect`; every
//! duration here is in ms). [`Tracker`] then keeps the little state that
//! AMI's event stream needs to become domain events:
//!
//! * **Answered or left?** On an answered call Asterisk sends
//!   `QueueCallerLeave` *before* `AgentConnect`, so a leave cannot be judged
//!   when it arrives. A leave with no `QueueCallerAbandon` before it is held
//!   until `AgentConnect` (answered) or until [`LEAVE_GRACE_MS`] passes or
//!   the caller's channel hangs up (left: the only app_queue exit that does
//!   not go through `record_abandoned()` is EXITWITHKEY, so it is reported as
//!   `key`).
//! * **Abandoned or timed out?** `QueueCallerAbandon` is raised for caller
//!   hang-ups *and* for EXITWITHTIMEOUT, EXITEMPTY, WITHDRAW and SYSCOMPAT.
//!   As observed on Asterisk 20 (protocols.md 1.5a), a caller hang-up is
//!   preceded by a `HangupRequest` for the caller's channel; a timeout is
//!   not. So: `HangupRequest` seen → abandoned. Not seen, while this
//!   connection has delivered `call`-class events (so `read = call` is
//!   granted and the absence means something) → exited, with reason `empty`
//!   when the queue has no logged-in unpaused member at that moment and
//!   `timeout` otherwise (AMI cannot tell timeout from withdraw or syscompat;
//!   they are rare). No `call`-class event ever seen → abandoned, with a
//!   warning: that is also how Asterisk itself counts them.
//! * **One state per agent.** The engine keeps one state per person while
//!   AMI reports members per queue; the tracker folds an agent's
//!   memberships into one state (logged out when every membership is
//!   unavailable/invalid; on a call when any membership is in a call or its
//!   device is busy; ringing; paused when paused in every queue it is logged
//!   into; wrap-up while `LastCall + Wrapuptime` has not passed; available)
//!   and emits `agent_state` only when that folded state differs from what
//!   the engine already believes. A pause in some queues only is not lost
//!   in the fold: it goes to the engine per queue (`AgentQueuePause`), so
//!   those queues count the member as paused.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::parser::Headers;
use crate::event::{AgentStatus, Event, EventKind, ExitReason, ResyncCaller, ResyncMember};
use crate::sources::{Reject, RejectReason};
use crate::time::Ts;

/// How long a `QueueCallerLeave` without a prior abandon waits for its
/// `AgentConnect`. Both travel on the caller channel's topic and arrive in
/// the same millisecond in practice; the margin covers a slow member Gosub.
pub const LEAVE_GRACE_MS: i64 = 3_000;

pub use crate::config::sources::AgentNaming;

/// A queue member as AMI describes it (live member block or `QueueMember`).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberBlock<'a> {
    pub queue: &'a str,
    pub name: Option<&'a str>,
    pub interface: &'a str,
    /// Device state code 0–8 (protocols.md 1.5).
    pub status: u8,
    pub paused: bool,
    pub paused_reason: Option<&'a str>,
    pub in_call: bool,
    pub wrapup_ms: i64,
    /// End of the member's last call, epoch ms (0 = never).
    pub last_call: Ts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Added,
    Removed,
    Pause,
    Status,
    /// Penalty / ringinuse changes: no state change, refreshes the block.
    Other,
}

/// The AMI events acdmon uses, with units normalised to milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEvent<'a> {
    CallerJoin {
        queue: &'a str,
        call: &'a str,
        caller: Option<&'a str>,
    },
    CallerLeave {
        queue: &'a str,
        call: &'a str,
    },
    CallerAbandon {
        queue: &'a str,
        call: &'a str,
        hold_ms: i64,
    },
    AgentCalled {
        queue: &'a str,
        call: &'a str,
        interface: &'a str,
        name: Option<&'a str>,
    },
    AgentRingNoAnswer {
        queue: &'a str,
        call: &'a str,
        interface: &'a str,
        name: Option<&'a str>,
        ring_ms: i64,
    },
    AgentConnect {
        queue: &'a str,
        call: &'a str,
        interface: &'a str,
        name: Option<&'a str>,
        hold_ms: i64,
        ring_ms: i64,
    },
    AgentComplete {
        queue: &'a str,
        /// Absent when the agent hung up first or Asterisk stopped (Asterisk
        /// 20 then sends no caller-channel headers): matched by member.
        call: Option<&'a str>,
        interface: &'a str,
        name: Option<&'a str>,
        hold_ms: i64,
        talk_ms: i64,
        reason: Option<&'a str>,
    },
    AgentDump {
        queue: &'a str,
        call: &'a str,
        interface: &'a str,
        name: Option<&'a str>,
    },
    Member {
        change: MemberChange,
        block: MemberBlock<'a>,
    },
    /// `HangupRequest` (or `SoftHangupRequest`/`Hangup`) of a channel.
    /// `request`: the channel is asked to hang up (a `HangupRequest`, or a
    /// `SoftHangupRequest` other than an async goto), which is what tells a
    /// caller's abandon from a timeout; a plain `Hangup` is not.
    Hangup {
        call: &'a str,
        request: bool,
    },
    /// List events of `QueueStatus`.
    ListParams {
        queue: &'a str,
    },
    ListMember(MemberBlock<'a>),
    ListEntry {
        queue: &'a str,
        call: &'a str,
        wait_ms: i64,
        caller: Option<&'a str>,
    },
    ListComplete,
}

/// Reads one event block. `Ok(None)` for events acdmon does not use.
pub fn classify<H: Headers + ?Sized>(h: &H) -> Result<Option<QueueEvent<'_>>, Reject> {
    let Some(name) = h.header("Event") else {
        return Ok(None);
    };
    let ev = match_event(name);
    let need = |key: &'static str| {
        h.header(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Reject::new(RejectReason::MissingField, format!("{key} in {name}")))
    };
    let opt = |key: &str| h.header(key).filter(|v| !v.is_empty());
    let member_name = || opt("MemberName").or_else(|| opt("Name"));
    let secs = |key: &str| -> Result<i64, Reject> { number(h, name, key).map(|s| s * 1000) };
    Ok(Some(match ev {
        Kind::CallerJoin => QueueEvent::CallerJoin {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
            caller: opt("CallerIDNum").filter(|c| !is_unknown(c)),
        },
        Kind::CallerLeave => QueueEvent::CallerLeave {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
        },
        Kind::CallerAbandon => QueueEvent::CallerAbandon {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
            hold_ms: secs("HoldTime").unwrap_or(0),
        },
        Kind::AgentCalled => QueueEvent::AgentCalled {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
            interface: need("Interface")?,
            name: member_name(),
        },
        Kind::AgentRingNoAnswer => QueueEvent::AgentRingNoAnswer {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
            interface: need("Interface")?,
            name: member_name(),
            // Milliseconds here (app_queue.c rna()), unlike AgentConnect.
            ring_ms: number(h, name, "RingTime").unwrap_or(0),
        },
        Kind::AgentConnect => QueueEvent::AgentConnect {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
            interface: need("Interface")?,
            name: member_name(),
            hold_ms: secs("HoldTime").unwrap_or(0),
            // Seconds here.
            ring_ms: secs("RingTime").unwrap_or(0),
        },
        Kind::AgentComplete => QueueEvent::AgentComplete {
            queue: need("Queue")?,
            call: opt("Uniqueid"),
            interface: need("Interface")?,
            name: member_name(),
            hold_ms: secs("HoldTime").unwrap_or(0),
            talk_ms: secs("TalkTime").unwrap_or(0),
            reason: opt("Reason"),
        },
        Kind::AgentDump => QueueEvent::AgentDump {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
            interface: need("Interface")?,
            name: member_name(),
        },
        Kind::Member(change) => QueueEvent::Member {
            change,
            block: member_block(h, name)?,
        },
        Kind::Hangup { request } => QueueEvent::Hangup {
            call: need("Uniqueid")?,
            request,
        },
        Kind::SoftHangup => QueueEvent::Hangup {
            call: need("Uniqueid")?,
            // Cause is the soft hang-up flag set (channel.h): 2 is an async
            // goto (Redirect), which moves the channel on without hanging it
            // up; 32 (explicit: AMI Hangup, `channel request hangup`), 4
            // (shutdown: `core stop/restart`), 8 (absolute timeout) and the
            // rest end the call.
            request: number(h, name, "Cause").ok() != Some(ASYNC_GOTO),
        },
        Kind::ListParams => QueueEvent::ListParams {
            queue: need("Queue")?,
        },
        Kind::ListMember => QueueEvent::ListMember(member_block(h, name)?),
        Kind::ListEntry => QueueEvent::ListEntry {
            queue: need("Queue")?,
            call: need("Uniqueid")?,
            wait_ms: secs("Wait")?,
            caller: opt("CallerIDNum").filter(|c| !is_unknown(c)),
        },
        Kind::ListComplete => QueueEvent::ListComplete,
        Kind::Unused => return Ok(None),
    }))
}

#[derive(Clone, Copy)]
enum Kind {
    CallerJoin,
    CallerLeave,
    CallerAbandon,
    AgentCalled,
    AgentRingNoAnswer,
    AgentConnect,
    AgentComplete,
    AgentDump,
    Member(MemberChange),
    Hangup { request: bool },
    SoftHangup,
    ListParams,
    ListMember,
    ListEntry,
    ListComplete,
    Unused,
}

fn match_event(name: &str) -> Kind {
    // Event names are exact on the wire; match case-insensitively anyway.
    const TABLE: &[(&str, Kind)] = &[
        ("QueueCallerJoin", Kind::CallerJoin),
        ("QueueCallerLeave", Kind::CallerLeave),
        ("QueueCallerAbandon", Kind::CallerAbandon),
        ("AgentCalled", Kind::AgentCalled),
        ("AgentRingNoAnswer", Kind::AgentRingNoAnswer),
        ("AgentConnect", Kind::AgentConnect),
        ("AgentComplete", Kind::AgentComplete),
        ("AgentDump", Kind::AgentDump),
        ("QueueMemberStatus", Kind::Member(MemberChange::Status)),
        ("QueueMemberAdded", Kind::Member(MemberChange::Added)),
        ("QueueMemberRemoved", Kind::Member(MemberChange::Removed)),
        ("QueueMemberPause", Kind::Member(MemberChange::Pause)),
        ("QueueMemberPenalty", Kind::Member(MemberChange::Other)),
        ("QueueMemberRinginuse", Kind::Member(MemberChange::Other)),
        ("HangupRequest", Kind::Hangup { request: true }),
        ("SoftHangupRequest", Kind::SoftHangup),
        ("Hangup", Kind::Hangup { request: false }),
        ("QueueParams", Kind::ListParams),
        ("QueueMember", Kind::ListMember),
        ("QueueEntry", Kind::ListEntry),
        ("QueueStatusComplete", Kind::ListComplete),
    ];
    TABLE
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, k)| k)
        .unwrap_or(Kind::Unused)
}

fn member_block<'a, H: Headers + ?Sized>(h: &'a H, name: &str) -> Result<MemberBlock<'a>, Reject> {
    let opt = |key: &str| h.header(key).filter(|v| !v.is_empty());
    let queue = opt("Queue")
        .ok_or_else(|| Reject::new(RejectReason::MissingField, format!("Queue in {name}")))?;
    let interface = opt("Interface")
        .or_else(|| opt("Location"))
        .ok_or_else(|| Reject::new(RejectReason::MissingField, format!("Interface in {name}")))?;
    let status = number(h, name, "Status")?;
    let status = u8::try_from(status)
        .ok()
        .filter(|s| *s <= 8)
        .ok_or_else(|| Reject::new(RejectReason::BadValue, format!("Status {status} in {name}")))?;
    Ok(MemberBlock {
        queue,
        name: opt("MemberName").or_else(|| opt("Name")),
        interface,
        status,
        paused: flag(h, "Paused"),
        paused_reason: opt("PausedReason"),
        in_call: flag(h, "InCall"),
        wrapup_ms: number(h, name, "Wrapuptime").unwrap_or(0).max(0) * 1000,
        last_call: Ts::from_secs(number(h, name, "LastCall").unwrap_or(0).max(0)),
    })
}

/// `AST_SOFTHANGUP_ASYNCGOTO`: the only soft hang-up that is not one.
const ASYNC_GOTO: i64 = 2;

fn number<H: Headers + ?Sized>(h: &H, event: &str, key: &str) -> Result<i64, Reject> {
    let v = h
        .header(key)
        .ok_or_else(|| Reject::new(RejectReason::MissingField, format!("{key} in {event}")))?;
    v.trim()
        .parse::<i64>()
        .map_err(|_| Reject::new(RejectReason::BadValue, format!("{key}: {v:?} in {event}")))
}

fn flag<H: Headers + ?Sized>(h: &H, key: &str) -> bool {
    matches!(h.header(key).map(str::trim), Some("1" | "true" | "yes"))
}

fn is_unknown(s: &str) -> bool {
    s.eq_ignore_ascii_case("unknown") || s.eq_ignore_ascii_case("<unknown>")
}

/// Parses an AMI `Timestamp:` (`1700000000.123456`) to ms, without floats.
pub fn parse_timestamp(s: &str) -> Option<Ts> {
    let s = s.trim();
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms = 0i64;
    for i in 0..3 {
        ms = ms * 10 + frac.as_bytes().get(i).map_or(0, |b| (b - b'0') as i64);
    }
    Some(Ts(sec.checked_mul(1000)?.checked_add(ms)?))
}

/// How agent ids are chosen, and the configured `[[agents]]` directory.
#[derive(Debug, Clone, Default)]
pub struct AgentIds {
    pub naming: AgentNaming,
    /// Interface (lower-cased) → configured agent id; wins over `naming`.
    by_interface: HashMap<String, String>,
}

impl AgentIds {
    pub fn new(naming: AgentNaming) -> Self {
        AgentIds {
            naming,
            by_interface: HashMap::new(),
        }
    }

    /// Adds a configured agent (`[[agents]] id, interface`).
    pub fn insert(&mut self, id: &str, interface: &str) {
        self.by_interface
            .insert(interface.to_ascii_lowercase(), id.to_string());
    }

    /// A name that may be an interface (queue_log's agent column): the
    /// configured id for that interface, else the name itself.
    pub fn resolve(&self, name_or_interface: &str) -> String {
        if !self.by_interface.is_empty()
            && let Some(id) = self
                .by_interface
                .get(&name_or_interface.to_ascii_lowercase())
        {
            return id.clone();
        }
        name_or_interface.to_string()
    }

    /// The agent id for a member.
    pub fn agent(&self, interface: &str, name: Option<&str>) -> String {
        if !self.by_interface.is_empty()
            && let Some(id) = self.by_interface.get(&interface.to_ascii_lowercase())
        {
            return id.clone();
        }
        let name = name.filter(|n| !n.is_empty());
        match (self.naming, name) {
            (AgentNaming::Interface, _) | (_, None) => interface.to_string(),
            (AgentNaming::MemberName, Some(n)) => n.to_string(),
            (AgentNaming::Auto, Some(n)) if n != interface => n.to_string(),
            (AgentNaming::Auto, Some(_)) => interface.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    agent: String,
    status: u8,
    paused: bool,
    reason: Option<String>,
    in_call: bool,
    /// The caller's channel of the call this member is on (AgentConnect),
    /// so that an `AgentComplete` without `Uniqueid` can be matched.
    call: Option<String>,
    ringing: bool,
    /// The caller this member is being rung for (AgentCalled).
    ringing_for: Option<String>,
    /// The device reported busy (ringing, in use) since the ring began: a
    /// later "not in use" means the ring is over.
    ring_busy_seen: bool,
    wrapup_ms: i64,
    wrap_until: Ts,
}

impl Member {
    fn from_block(b: &MemberBlock<'_>, agent: String, old: Option<&Member>) -> Member {
        let mut wrap_until = if b.wrapup_ms > 0 && b.last_call.0 > 0 {
            b.last_call.plus_ms(b.wrapup_ms)
        } else {
            Ts::ZERO
        };
        if let Some(o) = old {
            wrap_until = wrap_until.max(o.wrap_until);
        }
        Member {
            agent,
            status: b.status,
            paused: b.paused,
            // `module reload app_queue.so` keeps a static member paused but
            // lists it with an empty PausedReason (Asterisk 20.20.1): a pause
            // that goes on keeps the reason it was given.
            reason: b.paused_reason.map(str::to_string).or_else(|| {
                old.filter(|o| b.paused && o.paused)
                    .and_then(|o| o.reason.clone())
            }),
            in_call: b.in_call,
            // Kept through status changes: Asterisk reports the member
            // "Not in use" (InCall 0) before the AgentComplete of the call.
            call: old.and_then(|o| o.call.clone()),
            ringing: old.is_some_and(|o| o.ringing),
            ringing_for: old.and_then(|o| o.ringing_for.clone()),
            ring_busy_seen: old.is_some_and(|o| o.ring_busy_seen),
            wrapup_ms: b.wrapup_ms,
            wrap_until,
        }
    }

    /// A device state seen while ringing: busy (ringing, in use, on hold)
    /// is the ring going on; idle or gone after that is the ring over (the
    /// caller hung up, the call went elsewhere) even when no
    /// `AgentRingNoAnswer` follows, which is what Asterisk 20 does when the
    /// caller hangs up during the ring.
    fn track_ring(&mut self) {
        if !self.ringing {
            return;
        }
        match self.status {
            2 | 3 | 6 | 7 | 8 => self.ring_busy_seen = true,
            1 | 4 | 5 if self.ring_busy_seen => self.stop_ringing(),
            _ => {}
        }
    }

    fn stop_ringing(&mut self) {
        self.ringing = false;
        self.ringing_for = None;
        self.ring_busy_seen = false;
    }

    fn logged_in(&self) -> bool {
        !matches!(self.status, 4 | 5)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallerState {
    Waiting,
    /// `QueueCallerLeave` seen without an abandon: answered if
    /// `AgentConnect` follows, else left (key) at this time.
    Left(Ts),
}

#[derive(Debug, Clone)]
struct Caller {
    queue: String,
    joined: Ts,
    hangup_requested: bool,
    /// Members rung for this caller whose ring has not ended with an
    /// `AgentRingNoAnswer`. A queue timeout ends every ring with one first
    /// (Asterisk 20, tests/data/ami/asterisk20_timeout.ami); a caller who
    /// goes away mid-ring leaves them open (queue_log RINGCANCELED).
    rings_open: u32,
    state: CallerState,
}

/// A queue as listed by `QueueStatus`.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub queue: String,
    pub members: Vec<MemberOwned>,
    /// (call, wait_ms, caller number)
    pub entries: Vec<(String, i64, Option<String>)>,
}

/// An owned member block, kept while a listing is being collected.
#[derive(Debug, Clone)]
pub struct MemberOwned {
    pub queue: String,
    pub name: Option<String>,
    pub interface: String,
    pub status: u8,
    pub paused: bool,
    pub paused_reason: Option<String>,
    pub in_call: bool,
    pub wrapup_ms: i64,
    pub last_call: Ts,
}

impl MemberOwned {
    pub fn from_block(b: &MemberBlock<'_>) -> Self {
        MemberOwned {
            queue: b.queue.to_string(),
            name: b.name.map(str::to_string),
            interface: b.interface.to_string(),
            status: b.status,
            paused: b.paused,
            paused_reason: b.paused_reason.map(str::to_string),
            in_call: b.in_call,
            wrapup_ms: b.wrapup_ms,
            last_call: b.last_call,
        }
    }

    pub fn block(&self) -> MemberBlock<'_> {
        MemberBlock {
            queue: &self.queue,
            name: self.name.as_deref(),
            interface: &self.interface,
            status: self.status,
            paused: self.paused,
            paused_reason: self.paused_reason.as_deref(),
            in_call: self.in_call,
            wrapup_ms: self.wrapup_ms,
            last_call: self.last_call,
        }
    }
}

/// The queue state AMI's stream needs to become domain events (see the
/// module doc). Bounded: callers leave on their outcome, and every resync
/// drops what Asterisk no longer lists.
#[derive(Debug)]
pub struct Tracker {
    ids: AgentIds,
    callers: HashMap<String, Caller>,
    /// (queue, interface lower-cased) → member; ordered so that one
    /// queue's members are a range.
    members: BTreeMap<(String, String), Member>,
    /// agent → its member keys (an agent's state folds these).
    by_agent: HashMap<String, Vec<(String, String)>>,
    /// Held leaves by time (see [`LEAVE_GRACE_MS`]).
    leaves: BTreeSet<(Ts, String)>,
    /// Wrap-up ends by time, per agent.
    wraps: BTreeSet<(Ts, String)>,
    /// What the engine believes each agent is doing (after our events).
    believed: HashMap<String, AgentStatus>,
    /// Queues the engine believes each agent is paused in, one by one
    /// (Asterisk pauses per queue; `AgentQueuePause`).
    believed_paused: HashMap<String, BTreeSet<String>>,
    /// This connection delivered `call`-class events (`read = call` works).
    call_class_seen: bool,
    warned_no_call_class: bool,
    clock: Ts,
    /// Events that could not be used (an `AgentComplete` matching no call).
    rejects: Vec<Reject>,
}

fn queue_pause(ts: Ts, agent: &str, queue: &str, paused: bool) -> Event {
    Event {
        ts,
        kind: EventKind::AgentQueuePause {
            agent: agent.to_string(),
            queue: queue.to_string(),
            paused,
        },
    }
}

impl Tracker {
    pub fn new(ids: AgentIds) -> Self {
        Tracker {
            ids,
            callers: HashMap::new(),
            members: BTreeMap::new(),
            by_agent: HashMap::new(),
            leaves: BTreeSet::new(),
            wraps: BTreeSet::new(),
            believed: HashMap::new(),
            believed_paused: HashMap::new(),
            call_class_seen: false,
            warned_no_call_class: false,
            clock: Ts::ZERO,
            rejects: Vec::new(),
        }
    }

    /// Events the tracker could not use, since the last call.
    pub fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    /// The caller `call` is no longer waiting to be put through (it hung
    /// up, timed out, left, or another member answered): members rung for
    /// it stop ringing. Asterisk sends no `AgentRingNoAnswer` for them.
    fn stop_ringing_for(&mut self, call: &str, ts: Ts, out: &mut Vec<Event>) {
        let mut agents = Vec::new();
        for m in self.members.values_mut() {
            if m.ringing && m.ringing_for.as_deref() == Some(call) {
                m.stop_ringing();
                agents.push(m.agent.clone());
            }
        }
        agents.dedup();
        for a in agents {
            self.refresh_agent(&a, None, ts, out);
        }
    }

    pub fn agent_ids(&self) -> &AgentIds {
        &self.ids
    }

    /// A new connection: what it can deliver is not known yet.
    pub fn on_connect(&mut self) {
        self.call_class_seen = false;
    }

    /// Notes the event class from a `Privilege:` header.
    pub fn note_privilege(&mut self, privilege: &str) {
        if !self.call_class_seen
            && privilege
                .split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("call"))
        {
            self.call_class_seen = true;
        }
    }

    /// Whether a member (queue, interface) is known.
    pub fn has_member(&self, queue: &str, interface: &str) -> bool {
        self.members
            .contains_key(&(queue.to_string(), interface.to_ascii_lowercase()))
    }

    /// Whether a caller is known (waiting, or left and not yet judged).
    pub fn has_caller(&self, call: &str) -> bool {
        self.callers.contains_key(call)
    }

    /// The earliest time [`Tracker::poll`] has something to do.
    pub fn next_deadline(&self) -> Option<Ts> {
        let l = self.leaves.first().map(|(t, _)| t.plus_ms(LEAVE_GRACE_MS));
        let w = self.wraps.first().map(|(t, _)| *t);
        match (l, w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the tracker's clock: judges held leaves whose grace ran out and
    /// ends wrap-ups that are due.
    pub fn poll(&mut self, now: Ts, out: &mut Vec<Event>) {
        if now < self.clock {
            return;
        }
        self.clock = now;
        while let Some((t, call)) = self.leaves.first().cloned() {
            if t.plus_ms(LEAVE_GRACE_MS) > now {
                break;
            }
            self.leaves.pop_first();
            self.judge_leave(&call, out);
        }
        while let Some((t, agent)) = self.wraps.first().cloned() {
            if t > now {
                break;
            }
            self.wraps.pop_first();
            self.refresh_agent(&agent, None, t, out);
        }
    }

    /// Removes a caller (and its held leave, if any).
    fn take_caller(&mut self, call: &str) -> Option<Caller> {
        let c = self.callers.remove(call)?;
        if let CallerState::Left(t) = c.state {
            self.leaves.remove(&(t, call.to_string()));
        }
        Some(c)
    }

    fn put_member(&mut self, key: (String, String), m: Member) {
        if self
            .members
            .get(&key)
            .is_some_and(|old| old.agent != m.agent)
        {
            self.drop_member(&key);
        }
        if m.wrap_until > self.clock {
            self.wraps.insert((m.wrap_until, m.agent.clone()));
        }
        let keys = self.by_agent.entry(m.agent.clone()).or_default();
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        self.members.insert(key, m);
    }

    fn drop_member(&mut self, key: &(String, String)) -> Option<Member> {
        let m = self.members.remove(key)?;
        if let Some(v) = self.by_agent.get_mut(&m.agent) {
            v.retain(|k| k != key);
            if v.is_empty() {
                self.by_agent.remove(&m.agent);
            }
        }
        Some(m)
    }

    fn judge_leave(&mut self, call: &str, out: &mut Vec<Event>) {
        if let Some(c) = self.take_caller(call)
            && let CallerState::Left(t) = c.state
        {
            out.push(Event {
                ts: t,
                kind: EventKind::CallExited {
                    call: call.to_string(),
                    queue: c.queue,
                    reason: ExitReason::Key,
                },
            });
            self.stop_ringing_for(call, t, out);
        }
    }

    /// Applies one live event at event time `ts`.
    pub fn apply(&mut self, ev: &QueueEvent<'_>, ts: Ts, out: &mut Vec<Event>) {
        self.poll(ts, out);
        match *ev {
            QueueEvent::CallerJoin {
                queue,
                call,
                caller,
            } => {
                if self.callers.contains_key(call) {
                    // The same channel re-entering (e.g. after a key exit):
                    // judge the old visit first.
                    self.judge_leave(call, out);
                    self.take_caller(call);
                }
                self.callers.insert(
                    call.to_string(),
                    Caller {
                        queue: queue.to_string(),
                        joined: ts,
                        hangup_requested: false,
                        rings_open: 0,
                        state: CallerState::Waiting,
                    },
                );
                out.push(Event {
                    ts,
                    kind: EventKind::CallEnqueued {
                        call: call.to_string(),
                        queue: queue.to_string(),
                        caller: caller.map(str::to_string),
                        priority: None,
                    },
                });
            }
            QueueEvent::Hangup { call, request } => {
                if let Some(c) = self.callers.get_mut(call) {
                    match c.state {
                        CallerState::Waiting if request => c.hangup_requested = true,
                        CallerState::Waiting => {}
                        CallerState::Left(_) => self.judge_leave(call, out),
                    }
                }
            }
            QueueEvent::CallerAbandon { queue, call, .. } => {
                // Gone mid-ring: the AMI Hangup action raises no hang-up
                // request event, but a timeout would have ended the rings.
                let hung_up = self
                    .take_caller(call)
                    .map(|c| c.hangup_requested || c.rings_open > 0);
                let kind = match hung_up {
                    Some(true) => EventKind::CallAbandoned {
                        call: call.to_string(),
                        queue: queue.to_string(),
                    },
                    _ if !self.call_class_seen => {
                        if !self.warned_no_call_class {
                            self.warned_no_call_class = true;
                            tracing::warn!(
                                "no call-class AMI events seen: cannot tell a caller hang-up from a queue timeout; counting QueueCallerAbandon as abandoned (grant read = agent,call)"
                            );
                        }
                        EventKind::CallAbandoned {
                            call: call.to_string(),
                            queue: queue.to_string(),
                        }
                    }
                    _ => EventKind::CallExited {
                        call: call.to_string(),
                        queue: queue.to_string(),
                        reason: if self.queue_has_staff(queue) {
                            ExitReason::Timeout
                        } else {
                            ExitReason::Empty
                        },
                    },
                };
                out.push(Event { ts, kind });
                self.stop_ringing_for(call, ts, out);
            }
            QueueEvent::CallerLeave { call, .. } => {
                if let Some(c) = self.callers.get_mut(call)
                    && c.state == CallerState::Waiting
                {
                    c.state = CallerState::Left(ts);
                    self.leaves.insert((ts, call.to_string()));
                }
            }
            QueueEvent::AgentConnect {
                queue,
                call,
                interface,
                name,
                ..
            } => {
                self.take_caller(call);
                let agent = self.ids.agent(interface, name);
                if let Some(m) = self.member_mut(queue, interface) {
                    m.in_call = true;
                    m.call = Some(call.to_string());
                    m.stop_ringing();
                }
                out.push(Event {
                    ts,
                    kind: EventKind::CallAnswered {
                        call: call.to_string(),
                        queue: queue.to_string(),
                        agent: agent.clone(),
                    },
                });
                self.believed.insert(agent, AgentStatus::OnCall);
                // Ring-all: the other members rung for this caller stop.
                self.stop_ringing_for(call, ts, out);
            }
            QueueEvent::AgentComplete {
                queue,
                call,
                interface,
                name,
                ..
            } => {
                let agent = self.ids.agent(interface, name);
                let mut on = None;
                if let Some(m) = self.member_mut(queue, interface) {
                    on = m.call.take();
                    m.in_call = false;
                    if m.wrapup_ms > 0 {
                        m.wrap_until = ts.plus_ms(m.wrapup_ms);
                        let until = m.wrap_until;
                        self.wraps.insert((until, agent.clone()));
                    }
                }
                // Without Uniqueid (the agent hung up first, or Asterisk
                // stopped), the member's own call is the one that ended.
                match call.map(str::to_string).or(on) {
                    Some(call) => out.push(Event {
                        ts,
                        kind: EventKind::CallCompleted {
                            call,
                            queue: queue.to_string(),
                            agent: agent.clone(),
                        },
                    }),
                    None => self.rejects.push(Reject::new(
                        RejectReason::UnknownCall,
                        format!(
                            "AgentComplete without Uniqueid for {interface} in {queue}, and no call of that member was seen answered; agent state kept, not counted"
                        ),
                    )),
                }
                // The engine now believes the agent free (or in its own
                // timed wrap-up); correct it only when we know better.
                self.believed.insert(agent.clone(), AgentStatus::Available);
                self.refresh_agent(&agent, Some(queue), ts, out);
            }
            QueueEvent::AgentCalled {
                queue,
                call,
                interface,
                name,
            } => {
                let agent = self.ids.agent(interface, name);
                if let Some(c) = self.callers.get_mut(call) {
                    c.rings_open = c.rings_open.saturating_add(1);
                }
                if let Some(m) = self.member_mut(queue, interface) {
                    m.ringing = true;
                    m.ringing_for = Some(call.to_string());
                    m.ring_busy_seen = false;
                }
                self.refresh_agent(&agent, Some(queue), ts, out);
            }
            QueueEvent::AgentRingNoAnswer {
                queue,
                call,
                interface,
                name,
                ..
            }
            | QueueEvent::AgentDump {
                queue,
                call,
                interface,
                name,
            } => {
                if let Some(c) = self.callers.get_mut(call) {
                    c.rings_open = c.rings_open.saturating_sub(1);
                }
                let agent = self.ids.agent(interface, name);
                if let Some(m) = self.member_mut(queue, interface) {
                    m.stop_ringing();
                }
                self.refresh_agent(&agent, Some(queue), ts, out);
            }
            QueueEvent::Member { change, ref block } => {
                self.apply_member(change, block, ts, out);
            }
            QueueEvent::ListParams { .. }
            | QueueEvent::ListMember(_)
            | QueueEvent::ListEntry { .. }
            | QueueEvent::ListComplete => {}
        }
    }

    fn apply_member(
        &mut self,
        change: MemberChange,
        b: &MemberBlock<'_>,
        ts: Ts,
        out: &mut Vec<Event>,
    ) {
        let agent = self.ids.agent(b.interface, b.name);
        let key = (b.queue.to_string(), b.interface.to_ascii_lowercase());
        if change == MemberChange::Removed {
            self.drop_member(&key);
            out.push(Event {
                ts,
                kind: EventKind::AgentLeftQueue {
                    agent: agent.clone(),
                    queue: b.queue.to_string(),
                },
            });
            self.refresh_agent(&agent, None, ts, out);
            return;
        }
        let old = self.members.get(&key);
        let known = old.is_some();
        let mut m = Member::from_block(b, agent.clone(), old);
        m.track_ring();
        self.put_member(key, m);
        if !known {
            out.push(Event {
                ts,
                kind: EventKind::AgentJoinedQueue {
                    agent: agent.clone(),
                    queue: b.queue.to_string(),
                },
            });
        }
        self.refresh_agent(&agent, Some(b.queue), ts, out);
    }

    fn member_mut(&mut self, queue: &str, interface: &str) -> Option<&mut Member> {
        self.members
            .get_mut(&(queue.to_string(), interface.to_ascii_lowercase()))
    }

    /// Whether a queue has a logged-in, unpaused member (leavewhenempty's
    /// view, roughly).
    fn queue_has_staff(&self, queue: &str) -> bool {
        self.members
            .range((queue.to_string(), String::new())..)
            .take_while(|((q, _), _)| q == queue)
            .any(|(_, m)| m.logged_in() && !m.paused)
    }

    /// The folded state of an agent across its memberships (module doc).
    fn folded(&self, agent: &str, now: Ts) -> (AgentStatus, Option<String>) {
        let mine: Vec<&Member> = self
            .by_agent
            .get(agent)
            .map(|keys| keys.iter().filter_map(|k| self.members.get(k)).collect())
            .unwrap_or_default();
        let logged: Vec<&&Member> = mine.iter().filter(|m| m.logged_in()).collect();
        if logged.is_empty() {
            return (AgentStatus::LoggedOut, None);
        }
        // A Local-channel member is "In use" (2) while it rings: for a
        // member being rung, 2 is the ring itself, not another call.
        if logged
            .iter()
            .any(|m| m.in_call || matches!(m.status, 3 | 7 | 8) || (m.status == 2 && !m.ringing))
        {
            return (AgentStatus::OnCall, None);
        }
        if logged.iter().any(|m| m.ringing || m.status == 6) {
            return (AgentStatus::Ringing, None);
        }
        if logged.iter().all(|m| m.paused) {
            let reason = logged.iter().find_map(|m| m.reason.clone());
            return (AgentStatus::Paused, reason);
        }
        if logged.iter().any(|m| m.wrap_until > now) {
            return (AgentStatus::WrapUp, None);
        }
        (AgentStatus::Available, None)
    }

    /// Emits `AgentQueuePause` for each queue where the member's own pause
    /// differs from what the engine believes. Queues the agent is no longer
    /// a member of are only forgotten: leaving a queue drops its pause.
    fn sync_queue_pauses(&mut self, agent: &str, ts: Ts, out: &mut Vec<Event>) {
        let keys: &[(String, String)] = self.by_agent.get(agent).map_or(&[], |k| k);
        let paused: BTreeSet<String> = keys
            .iter()
            .filter(|k| {
                self.members
                    .get(*k)
                    .is_some_and(|m| m.logged_in() && m.paused)
            })
            .map(|k| k.0.clone())
            .collect();
        let was = self.believed_paused.remove(agent).unwrap_or_default();
        for q in was.difference(&paused) {
            if keys.iter().any(|k| &k.0 == q) {
                out.push(queue_pause(ts, agent, q, false));
            }
        }
        for q in paused.difference(&was) {
            out.push(queue_pause(ts, agent, q, true));
        }
        if !paused.is_empty() {
            self.believed_paused.insert(agent.to_string(), paused);
        }
    }

    /// Emits the agent's folded state if the engine believes otherwise.
    fn refresh_agent(&mut self, agent: &str, queue: Option<&str>, ts: Ts, out: &mut Vec<Event>) {
        self.sync_queue_pauses(agent, ts, out);
        let (status, reason) = self.folded(agent, ts);
        let believed = self.believed.get(agent).copied();
        // Paused with a new reason is a change too.
        let changed = believed != Some(status) || status == AgentStatus::Paused;
        if !changed {
            return;
        }
        self.believed.insert(agent.to_string(), status);
        out.push(Event {
            ts,
            kind: EventKind::AgentState {
                agent: agent.to_string(),
                status,
                reason,
                queue: queue.map(str::to_string),
            },
        });
    }

    /// Rebuilds the listed queues from a `QueueStatus` listing taken at
    /// `at`, and returns one `QueueResync` per queue.
    ///
    /// `joins_buffered` are callers whose `QueueCallerJoin` arrived during
    /// the listing: they are left out of the resync so that the buffered join,
    /// applied next, counts them as offered. `outcomes_buffered` are callers
    /// whose outcome arrived during the listing: if we knew them before, they
    /// are kept (with their original join time) so that the outcome counts.
    pub fn resync(
        &mut self,
        listings: &[Listing],
        at: Ts,
        joins_buffered: &[String],
        outcomes_buffered: &[String],
    ) -> Vec<Event> {
        let mut out = Vec::new();
        self.poll(at, &mut out);
        for l in listings {
            let q = l.queue.as_str();
            // Callers.
            let previous: HashMap<String, Caller> = self
                .callers
                .iter()
                .filter(|(_, c)| c.queue == q)
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect();
            for call in previous.keys() {
                self.take_caller(call);
            }
            let mut callers = Vec::new();
            for (call, wait_ms, _) in &l.entries {
                if joins_buffered.contains(call) {
                    continue;
                }
                let joined = previous
                    .get(call)
                    .map(|c| c.joined)
                    .unwrap_or(Ts(at.0 - wait_ms));
                let hangup_requested = previous.get(call).is_some_and(|c| c.hangup_requested);
                self.callers.insert(
                    call.clone(),
                    Caller {
                        queue: q.to_string(),
                        joined,
                        hangup_requested,
                        rings_open: 0,
                        state: CallerState::Waiting,
                    },
                );
                callers.push(ResyncCaller {
                    call: call.clone(),
                    joined,
                });
            }
            for (call, c) in &previous {
                if outcomes_buffered.contains(call) && !self.callers.contains_key(call) {
                    if let CallerState::Left(t) = c.state {
                        self.leaves.insert((t, call.clone()));
                    }
                    self.callers.insert(call.clone(), c.clone());
                    callers.push(ResyncCaller {
                        call: call.clone(),
                        joined: c.joined,
                    });
                }
            }
            callers.sort_by_key(|c| c.joined);
            // Members.
            let old: HashMap<(String, String), Member> = self
                .members
                .iter()
                .filter(|((mq, _), _)| mq == q)
                .map(|(k, m)| (k.clone(), m.clone()))
                .collect();
            for key in old.keys() {
                self.drop_member(key);
            }
            let mut agents = Vec::new();
            let mut paused_here = Vec::new();
            for mo in &l.members {
                let b = mo.block();
                let agent = self.ids.agent(b.interface, b.name);
                let key = (q.to_string(), b.interface.to_ascii_lowercase());
                let mut m = Member::from_block(&b, agent.clone(), old.get(&key));
                // A ring survives a relist only while its caller still waits.
                let rung_for_listed = m
                    .ringing_for
                    .as_deref()
                    .is_some_and(|c| l.entries.iter().any(|(e, _, _)| e == c));
                if !rung_for_listed {
                    m.stop_ringing();
                }
                if !m.in_call {
                    m.call = None;
                }
                paused_here.push(m.logged_in() && m.paused);
                self.put_member(key, m);
                agents.push(agent);
            }
            let mut members = Vec::new();
            for (agent, here) in agents.iter().zip(paused_here) {
                let (status, reason) = self.folded(agent, at);
                self.believed.insert(agent.clone(), status);
                let set = self.believed_paused.entry(agent.clone()).or_default();
                if here {
                    set.insert(q.to_string());
                } else {
                    set.remove(q);
                }
                members.push(ResyncMember {
                    agent: agent.clone(),
                    status,
                    reason,
                    paused_here: here,
                });
            }
            out.push(Event {
                ts: at,
                kind: EventKind::QueueResync {
                    queue: q.to_string(),
                    callers,
                    members,
                },
            });
            // Agents dropped from this queue who are in no queue any more.
            for m in old.values() {
                if !agents.contains(&m.agent) {
                    self.refresh_agent(&m.agent.clone(), None, at, &mut out);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::OwnedMessage;
    use super::*;

    fn msg(s: &str) -> OwnedMessage {
        OwnedMessage {
            headers: s
                .lines()
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn timestamps_parse_without_floats() {
        assert_eq!(
            parse_timestamp("1700000000.123456"),
            Some(Ts(1_700_000_000_123))
        );
        assert_eq!(parse_timestamp("1700000000"), Some(Ts(1_700_000_000_000)));
        assert_eq!(parse_timestamp("1700000000.5"), Some(Ts(1_700_000_000_500)));
        assert_eq!(parse_timestamp("x.1"), None);
        assert_eq!(parse_timestamp("1.-5"), None);
    }

    #[test]
    fn ring_time_units_differ_between_events() {
        let rna = msg(
            "Event: AgentRingNoAnswer\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nRingTime: 15000",
        );
        let Ok(Some(QueueEvent::AgentRingNoAnswer { ring_ms, .. })) = classify(&rna) else {
            panic!()
        };
        assert_eq!(ring_ms, 15_000);
        let con = msg(
            "Event: AgentConnect\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 12\nRingTime: 4",
        );
        let Ok(Some(QueueEvent::AgentConnect {
            ring_ms, hold_ms, ..
        })) = classify(&con)
        else {
            panic!()
        };
        assert_eq!((ring_ms, hold_ms), (4_000, 12_000));
    }

    #[test]
    fn list_aliases_match_live_names() {
        let list = msg(
            "Event: QueueMember\nQueue: q\nName: Alice\nLocation: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 5\nLastCall: 0",
        );
        let live = msg(
            "Event: QueueMemberStatus\nQueue: q\nMemberName: Alice\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 5\nLastCall: 0\nRinginuse: 0",
        );
        let Ok(Some(QueueEvent::ListMember(a))) = classify(&list) else {
            panic!()
        };
        let Ok(Some(QueueEvent::Member { block: b, .. })) = classify(&live) else {
            panic!()
        };
        assert_eq!(a, b);
        assert_eq!(a.wrapup_ms, 5000);
    }

    #[test]
    fn missing_and_bad_fields_are_rejected() {
        let r = classify(&msg("Event: QueueCallerJoin\nQueue: q")).unwrap_err();
        assert_eq!(r.reason, "missing_field");
        let r = classify(&msg(
            "Event: QueueMemberStatus\nQueue: q\nInterface: PJSIP/1\nStatus: 42",
        ))
        .unwrap_err();
        assert_eq!(r.reason, "bad_value");
        assert_eq!(classify(&msg("Event: Newexten\nChannel: x")), Ok(None));
    }

    #[test]
    fn agent_ids_follow_the_naming_rule_and_directory() {
        let mut ids = AgentIds::new(AgentNaming::Auto);
        assert_eq!(ids.agent("PJSIP/1017", Some("Li Na")), "Li Na");
        assert_eq!(ids.agent("PJSIP/1017", Some("PJSIP/1017")), "PJSIP/1017");
        assert_eq!(ids.agent("PJSIP/1017", None), "PJSIP/1017");
        ids.insert("1017", "PJSIP/1017");
        assert_eq!(ids.agent("pjsip/1017", Some("Li Na")), "1017");
        let ids = AgentIds::new(AgentNaming::Interface);
        assert_eq!(ids.agent("PJSIP/1", Some("x")), "PJSIP/1");
    }

    fn run(tr: &mut Tracker, lines: &[(&str, i64)]) -> Vec<Event> {
        let mut out = Vec::new();
        for (m, t) in lines {
            let m = msg(m);
            if let Some(p) = m.get("Privilege") {
                tr.note_privilege(p);
            }
            if let Some(ev) = classify(&m).unwrap() {
                tr.apply(&ev, Ts(*t), &mut out);
            }
        }
        out
    }

    fn kinds(evs: &[Event]) -> Vec<String> {
        evs.iter()
            .map(|e| match &e.kind {
                EventKind::CallExited { reason, .. } => format!("exited:{}", reason.as_str()),
                EventKind::AgentState { status, .. } => format!("agent:{}", status.as_str()),
                k => k.type_name().to_string(),
            })
            .collect()
    }

    const JOIN: &str =
        "Event: QueueCallerJoin\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1\nCallerIDNum: 100";
    const ABANDON: &str =
        "Event: QueueCallerAbandon\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1\nHoldTime: 30";
    const LEAVE: &str = "Event: QueueCallerLeave\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1";
    const HUP: &str = "Event: HangupRequest\nPrivilege: call,all\nUniqueid: 1.1";
    const MEMBER: &str = "Event: QueueMemberAdded\nPrivilege: agent,all\nQueue: q\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 0\nLastCall: 0";

    /// Asterisk pauses a member per queue: paused in `q` only, the agent is
    /// available, `q` counts it paused and `r` available; unpaused, both
    /// count it available; paused in both, it is paused.
    #[test]
    fn a_pause_in_one_queue_counts_in_that_queue_only() {
        use crate::state::{Engine, EngineConfig};
        let member = |q: &str| {
            format!(
                "Event: QueueMemberAdded\nPrivilege: agent,all\nQueue: {q}\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 0\nLastCall: 0"
            )
        };
        let pause = |q: &str, p: u8| {
            format!(
                "Event: QueueMemberPause\nPrivilege: agent,all\nQueue: {q}\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: {p}\nPausedReason: coaching\nInCall: 0\nWrapuptime: 0\nLastCall: 0"
            )
        };
        let mut tr = Tracker::new(AgentIds::default());
        let mut e = Engine::starting_at(EngineConfig::default(), Ts(0));
        let mut step = |lines: &[String], t: i64, e: &mut Engine| {
            let refs: Vec<(&str, i64)> = lines.iter().map(|l| (l.as_str(), t)).collect();
            for ev in run(&mut tr, &refs) {
                e.apply(ev).unwrap();
            }
        };
        let counts = |e: &mut Engine, q: &str| {
            let i = e.queue_index(q);
            let v = e.queue_view(i);
            (v.agents.available, v.agents.paused)
        };
        step(&[member("q"), member("r")], 1000, &mut e);
        assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((1, 0), (1, 0)));
        step(&[pause("q", 1)], 2000, &mut e);
        assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((0, 1), (1, 0)));
        let a = e.agent_index("a");
        assert_eq!(e.agent_view(a).state, AgentStatus::Available);
        assert_eq!(e.agent_view(a).paused_in, ["q"]);
        step(&[pause("r", 1)], 3000, &mut e);
        assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((0, 1), (0, 1)));
        assert_eq!(e.agent_view(a).state, AgentStatus::Paused);
        step(&[pause("q", 0), pause("r", 0)], 4000, &mut e);
        assert_eq!((counts(&mut e, "q"), counts(&mut e, "r")), ((1, 0), (1, 0)));
        assert!(e.agent_view(a).paused_in.is_empty());
    }

    #[test]
    fn hangup_request_before_abandon_means_abandoned() {
        let mut tr = Tracker::new(AgentIds::default());
        let ev = run(
            &mut tr,
            &[
                (MEMBER, 0),
                (JOIN, 1000),
                (HUP, 5000),
                (ABANDON, 5000),
                (LEAVE, 5000),
            ],
        );
        assert_eq!(
            kinds(&ev),
            [
                "agent_joined_queue",
                "agent:available",
                "call_enqueued",
                "call_abandoned"
            ]
        );
    }

    #[test]
    fn abandon_without_hangup_request_is_a_timeout_or_empty() {
        let mut tr = Tracker::new(AgentIds::default());
        let other_call = "Event: Hangup\nPrivilege: call,all\nUniqueid: 9.9";
        let ev = run(
            &mut tr,
            &[
                (MEMBER, 0),
                (other_call, 1),
                (JOIN, 1000),
                (ABANDON, 31000),
                (LEAVE, 31000),
            ],
        );
        assert_eq!(kinds(&ev)[3], "exited:timeout");
        // No member at all: leavewhenempty.
        let mut tr = Tracker::new(AgentIds::default());
        let ev = run(&mut tr, &[(other_call, 1), (JOIN, 1000), (ABANDON, 2000)]);
        assert_eq!(kinds(&ev)[1], "exited:empty");
        // No call-class events ever: cannot tell; counted as abandoned.
        let mut tr = Tracker::new(AgentIds::default());
        let ev = run(&mut tr, &[(JOIN, 1000), (ABANDON, 2000)]);
        assert_eq!(kinds(&ev)[1], "call_abandoned");
    }

    #[test]
    fn leave_then_connect_is_an_answer_and_bare_leave_is_a_key_exit() {
        let connect = "Event: AgentConnect\nPrivilege: agent,all\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 4\nRingTime: 2";
        let mut tr = Tracker::new(AgentIds::default());
        let ev = run(
            &mut tr,
            &[(MEMBER, 0), (JOIN, 1000), (LEAVE, 5000), (connect, 5000)],
        );
        assert_eq!(
            kinds(&ev),
            [
                "agent_joined_queue",
                "agent:available",
                "call_enqueued",
                "call_answered"
            ]
        );
        let mut tr = Tracker::new(AgentIds::default());
        let mut ev = run(&mut tr, &[(JOIN, 1000), (LEAVE, 5000)]);
        assert_eq!(kinds(&ev), ["call_enqueued"]);
        tr.poll(Ts(5000 + LEAVE_GRACE_MS), &mut ev);
        assert_eq!(kinds(&ev), ["call_enqueued", "exited:key"]);
        assert_eq!(ev[1].ts, Ts(5000));
        // The channel hanging up settles it at once.
        let mut tr = Tracker::new(AgentIds::default());
        let ev = run(&mut tr, &[(JOIN, 1000), (LEAVE, 5000), (HUP, 5100)]);
        assert_eq!(kinds(&ev), ["call_enqueued", "exited:key"]);
    }

    #[test]
    fn member_wrapup_is_reported_and_ends() {
        let added = "Event: QueueMemberAdded\nQueue: q\nMemberName: a\nInterface: PJSIP/1\nStatus: 1\nPaused: 0\nInCall: 0\nWrapuptime: 10\nLastCall: 0";
        let connect = "Event: AgentConnect\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 4\nRingTime: 2";
        let complete = "Event: AgentComplete\nQueue: q\nUniqueid: 1.1\nInterface: PJSIP/1\nMemberName: a\nHoldTime: 4\nTalkTime: 60\nReason: caller";
        let mut tr = Tracker::new(AgentIds::default());
        let mut ev = run(
            &mut tr,
            &[
                (added, 0),
                (JOIN, 1000),
                (LEAVE, 5000),
                (connect, 5000),
                (complete, 65_000),
            ],
        );
        assert_eq!(
            kinds(&ev)[3..],
            ["call_answered", "call_completed", "agent:wrap_up"]
        );
        assert_eq!(tr.next_deadline(), Some(Ts(75_000)));
        tr.poll(Ts(80_000), &mut ev);
        assert_eq!(kinds(&ev).last().unwrap(), "agent:available");
        assert_eq!(ev.last().unwrap().ts, Ts(75_000));
    }
}
