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

use std::collections::HashMap;

use super::parser::Headers;
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

mod tracker;

pub use tracker::Tracker;
pub(super) use tracker::{Caller, CallerState, Member};

#[cfg(test)]
mod tests;
