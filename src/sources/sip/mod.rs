//! SIP, as mirrored to acdmon (by HEP today): reading messages, following
//! dialogs and mapping them to queue events.
//!
//! The pipeline per message: [`message::SipMessage`] (hot-path reader) →
//! [`dialog::DialogTracker`] (leg moments, deduplicated) →
//! [`mapping::Mapper`] (queue and agent events). [`SipIngest`] wires the
//! three and is what a transport (the HEP source, a replay) feeds.

pub mod dialog;
pub mod dialog_info;
pub mod full;
pub mod mapping;
pub mod message;

use dialog::{Capture, DialogLimits, DialogTracker, LegEvent, Seen};
use mapping::{Mapper, MappingRules};
use message::{Method, SipError, SipMessage};

use crate::event::Event;
use crate::time::Ts;

/// Sans-IO SIP ingest: messages with their capture facts in, events out.
///
/// Calling order (the same verbs as every sans-IO core in acdmon):
/// - when listening starts: [`SipIngest::handle_start`] (static members);
/// - a payload is captured: [`SipIngest::handle_payload`] (or
///   [`SipIngest::handle_message`] for a message the caller has read);
/// - the timer fires: [`SipIngest::handle_timeout`] with the senders' time.
///   Legs expire on event time with every message, so the timer matters
///   only while traffic is quiet; there is no `poll_timeout`: call it
///   periodically (the HEP task does).
///
/// SIP is one-way (nothing to transmit, no replies), so the only output is
/// domain events, appended to the `out` each call is given.
#[derive(Debug, Clone)]
pub struct SipIngest {
    tracker: DialogTracker,
    mapper: Mapper,
    /// Validate every message with `rsip` (after normalisation) and reject
    /// what it refuses. Off by default: the reader is enough to follow
    /// dialogs, and the full parse makes the collector ~6x slower.
    full_parse: bool,
    legs: Vec<LegEvent>,
}

impl SipIngest {
    pub fn new(rules: MappingRules, limits: DialogLimits, full_parse: bool) -> Self {
        SipIngest {
            tracker: DialogTracker::new(limits),
            mapper: Mapper::new(rules),
            full_parse,
            legs: Vec::new(),
        }
    }

    pub fn tracker(&self) -> &DialogTracker {
        &self.tracker
    }

    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// Feeds a captured payload. A payload captured from a stream (`stream`:
    /// TCP, TLS, SCTP) may hold several messages, framed by Content-Length;
    /// from a datagram, bytes after the first message are ignored (RFC 3261
    /// 18.3; RFC 4475 3.1.1.8). Stops at the first bad message and returns
    /// its error; events of the messages before it are kept.
    pub fn handle_payload(
        &mut self,
        payload: &[u8],
        cap: &Capture,
        correlation: Option<&str>,
        stream: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), SipError> {
        let mut rest = payload;
        loop {
            let msg = SipMessage::parse(rest)?;
            let used = msg.len.max(1);
            self.handle_message(&msg, cap, correlation, out)?;
            rest = &rest[used.min(rest.len())..];
            if !stream || rest.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(());
            }
        }
    }

    /// Feeds one message read by the caller.
    pub fn handle_message(
        &mut self,
        msg: &SipMessage<'_>,
        cap: &Capture,
        correlation: Option<&str>,
        out: &mut Vec<Event>,
    ) -> Result<(), SipError> {
        if self.full_parse {
            full::parse_read(msg)?;
        }
        self.mapper.announce_members(cap.ts, out);
        self.tracker.handle_timeout(cap.ts, &mut self.legs);
        self.mapper.handle_timeout(cap.ts, out);
        match self.tracker.handle_message(msg, cap, &mut self.legs) {
            Seen::NewInvite => {
                if let Some(role) = self.mapper.classify(msg, correlation)
                    && self.tracker.start(msg, cap)
                {
                    self.mapper.start(role, msg, cap.ts, correlation, out);
                }
            }
            Seen::Tracked => {}
            Seen::Untracked => {
                if msg.method() == Some(Method::Register)
                    || (msg.status().is_some() && msg.cseq_method() == Method::Register)
                {
                    self.mapper.handle_register(msg, cap.ts, out);
                } else if msg.method() == Some(Method::Notify) && mapping::is_dialog_info(msg) {
                    // The full parse validates what the BLF reading trusts.
                    if !self.full_parse {
                        full::parse_read(msg)?;
                    }
                    self.mapper
                        .handle_notify(msg, cap.ts, out)
                        .map_err(SipError::Full)?;
                }
            }
        }
        for ev in self.legs.drain(..) {
            self.mapper.handle_leg(ev, out);
        }
        Ok(())
    }

    /// Reports what is known before any traffic (static members).
    pub fn handle_start(&mut self, now: Ts, out: &mut Vec<Event>) {
        self.mapper.announce_members(now, out);
    }

    /// Expires quiet legs (event time, or wall time when traffic stops).
    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<Event>) {
        self.mapper.announce_members(now, out);
        self.mapper.handle_timeout(now, out);
        self.tracker.handle_timeout(now, &mut self.legs);
        for ev in self.legs.drain(..) {
            self.mapper.handle_leg(ev, out);
        }
    }
}
