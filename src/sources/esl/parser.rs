//! Event-socket framing, sans-IO and zero-copy (protocols.md 2.1).
//!
//! FreeSWITCH writes every message as a header block (`Name: value` lines,
//! LF-terminated, ended by an empty line) optionally followed by exactly
//! `Content-Length` bytes of body. The [`Framer`] borrows frames from the
//! caller's read buffer, says [`Parse::NeedMore`] for half frames, and turns
//! anything it cannot frame into [`Parse::Skip`] with a [`Reject`] and the
//! number of bytes to drop, so a garbage line costs one counted rejection and
//! the stream re-synchronises at the next blank line. Oversized bodies are
//! discarded as they stream past (the framer remembers how much is left), so a
//! bogus `Content-Length` never makes us buffer it.
//!
//! CR is ignored wherever it appears at a line end: FreeSWITCH itself reads
//! that way, and hand-made transcripts often carry CRLF.
//!
//! Event bodies are decoded on demand into [`CcEvent`], which keeps only the
//! headers the mapping reads (a `bridge-agent-start` carries ~200 channel
//! headers; we look at ~25) and URL-decodes values lazily: most of them
//! contain no `%`, so they stay borrowed.

use std::borrow::Cow;

use memchr::memchr;
use percent_encoding::percent_decode;

use crate::sources::{Reject, RejectReason};

/// Size limits. Defaults are generous for real traffic (a `bridge-agent-start`
/// with channel data is ~8 KiB; `queue list members` for 5,000 waiting callers
/// is ~1.5 MiB) and small enough that a hostile peer cannot make us hold
/// much.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest header block (all lines of one frame's head).
    pub max_head: usize,
    /// Most lines in one header block.
    pub max_headers: usize,
    /// Longest body (`Content-Length`).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 32 * 1024 * 1024,
        }
    }
}

/// One step of the framer.
#[derive(Debug)]
pub enum Parse<'a> {
    /// A complete frame, and how many bytes of the buffer it used.
    Frame(Frame<'a>, usize),
    /// The buffer holds only part of a frame (or nothing): read more.
    NeedMore,
    /// Bytes that cannot be framed: drop this many and count the rejection.
    Skip(Reject, usize),
}

/// One framed message: the outer header block and its body.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    head: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// Frames bytes. Holds only the count of bytes still to discard from an
/// oversized body.
#[derive(Debug, Default)]
pub struct Framer {
    pub limits: Limits,
    discard: usize,
}

impl Framer {
    pub fn new(limits: Limits) -> Self {
        Framer { limits, discard: 0 }
    }

    /// Frames the next message at the start of `buf`.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Parse<'a> {
        if self.discard > 0 {
            if buf.is_empty() {
                return Parse::NeedMore;
            }
            let n = self.discard.min(buf.len());
            self.discard -= n;
            return Parse::Skip(
                Reject::new(RejectReason::FrameTooLarge, "discarding body"),
                n,
            );
        }
        // Blank lines between frames carry nothing; step over them.
        let mut start = 0;
        while start < buf.len() && (buf[start] == b'\n' || buf[start] == b'\r') {
            start += 1;
        }
        if start > 0 {
            return match self.next_at(&buf[start..]) {
                Parse::Frame(f, n) => Parse::Frame(f, n + start),
                Parse::Skip(r, n) => Parse::Skip(r, n + start),
                Parse::NeedMore => Parse::NeedMore,
            };
        }
        self.next_at(buf)
    }

    fn next_at<'a>(&mut self, buf: &'a [u8]) -> Parse<'a> {
        let lim = self.limits;
        // Find the end of the header block: an empty line (CR ignored).
        let mut pos = 0;
        let mut lines = 0;
        let head_end;
        let block_end;
        loop {
            let Some(nl) = memchr(b'\n', &buf[pos..]) else {
                if buf.len() > lim.max_head {
                    return Parse::Skip(
                        Reject::new(
                            RejectReason::FrameTooLarge,
                            format!("header block over {} bytes", lim.max_head),
                        ),
                        buf.len(),
                    );
                }
                return Parse::NeedMore;
            };
            let line = trim_cr(&buf[pos..pos + nl]);
            if line.is_empty() {
                head_end = pos;
                block_end = pos + nl + 1;
                break;
            }
            lines += 1;
            pos += nl + 1;
            if pos > lim.max_head || lines > lim.max_headers {
                // Drop what we have; the rest of the block will be skipped
                // as garbage up to its blank line.
                return Parse::Skip(
                    Reject::new(
                        RejectReason::FrameTooLarge,
                        format!(
                            "header block over {} bytes or {} lines",
                            lim.max_head, lim.max_headers
                        ),
                    ),
                    pos,
                );
            }
        }
        let mut head_end = head_end;
        while head_end > 0 && (buf[head_end - 1] == b'\n' || buf[head_end - 1] == b'\r') {
            head_end -= 1;
        }
        let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
            return Parse::Skip(
                Reject::new(RejectReason::MalformedFrame, "header block is not UTF-8"),
                block_end,
            );
        };
        let mut content_type = "";
        let mut length: Option<usize> = None;
        for line in head.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let Some((name, value)) = split_header(line) else {
                return Parse::Skip(
                    Reject::new(
                        RejectReason::MalformedFrame,
                        format!("not a header line: {}", clip(line)),
                    ),
                    block_end,
                );
            };
            if name.eq_ignore_ascii_case("Content-Type") {
                content_type = value;
            } else if name.eq_ignore_ascii_case("Content-Length") {
                match value.parse::<usize>() {
                    Ok(n) => length = Some(n),
                    Err(_) => {
                        return Parse::Skip(
                            Reject::new(
                                RejectReason::MalformedFrame,
                                format!("bad Content-Length {}", clip(value)),
                            ),
                            block_end,
                        );
                    }
                }
            }
        }
        let len = length.unwrap_or(0);
        if len > lim.max_body {
            let have = buf.len() - block_end;
            let take = have.min(len);
            self.discard = len - take;
            return Parse::Skip(
                Reject::new(
                    RejectReason::FrameTooLarge,
                    format!("Content-Length {len} over {}", lim.max_body),
                ),
                block_end + take,
            );
        }
        if buf.len() - block_end < len {
            return Parse::NeedMore;
        }
        let frame = Frame {
            head,
            content_type,
            body: &buf[block_end..block_end + len],
        };
        Parse::Frame(frame, block_end + len)
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    match line.last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    }
}

/// `Name: value` (FreeSWITCH writes exactly one space; we accept any).
fn split_header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    if name.is_empty() || name.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return None;
    }
    Some((name, value.trim_start_matches(' ').trim_end()))
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(60);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// What a frame is, by its `Content-Type`. Consumed right away, never
/// stored, so the large event variant is not boxed (no allocation per event).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Message<'a> {
    /// `auth/request`: a new connection (or a recorded reconnect).
    AuthRequest,
    /// `command/reply`: the `Reply-Text` of a command.
    CommandReply { reply: &'a str },
    /// `api/response`: the body of an `api` command.
    ApiResponse { body: Cow<'a, str> },
    /// `text/event-plain` or `text/event-json`.
    Event(CcEvent<'a>),
    /// `text/disconnect-notice`: the server is closing.
    DisconnectNotice { body: Cow<'a, str> },
    /// `text/rude-rejection`: refused by the event socket ACL.
    RudeRejection { body: Cow<'a, str> },
    /// Anything else (`log/data`, `text/event-xml`, …): not ours.
    Other { content_type: &'a str },
}

impl<'a> Frame<'a> {
    /// A header of the outer block.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.head.split('\n').find_map(|l| {
            let l = l.strip_suffix('\r').unwrap_or(l);
            let (n, v) = split_header(l)?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// Classifies the frame and decodes its body.
    pub fn message(&self) -> Result<Message<'a>, Reject> {
        let body = || String::from_utf8_lossy(self.body);
        Ok(match self.content_type {
            "auth/request" => Message::AuthRequest,
            "command/reply" => Message::CommandReply {
                reply: self.header("Reply-Text").unwrap_or(""),
            },
            "api/response" => Message::ApiResponse { body: body() },
            "text/event-plain" => Message::Event(CcEvent::from_plain(self.body)?),
            "text/event-json" => Message::Event(CcEvent::from_json(self.body)?),
            "text/disconnect-notice" => Message::DisconnectNotice { body: body() },
            "text/rude-rejection" => Message::RudeRejection { body: body() },
            other => Message::Other {
                content_type: other,
            },
        })
    }
}

macro_rules! fields {
    ($($variant:ident => $name:literal,)*) => {
        /// The event headers the mapping reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Field { $($variant,)* }
        const FIELD_COUNT: usize = [$(Field::$variant,)*].len();
        fn field_of(name: &str) -> Option<Field> {
            field_of_bytes(name.as_bytes())
        }
        fn field_of_bytes(name: &[u8]) -> Option<Field> {
            // Channel data (`Channel-*`, `Caller-*`, most `variable_*`) is
            // most of a bridge event: turn it away on its first byte.
            match (name.first(), name.get(1)) {
                (Some(b'C'), Some(b'C' | b'o')) | (Some(b'E'), _) => {}
                (Some(b'v'), _) if name.len() == Field::JoinedEpochVar.name().len() => {}
                _ => return None,
            }
            $(if name == $name.as_bytes() { return Some(Field::$variant); })*
            None
        }
        impl Field {
            pub fn name(self) -> &'static str {
                match self { $(Field::$variant => $name,)* }
            }
        }
    };
}

fields! {
    EventName => "Event-Name",
    Subclass => "Event-Subclass",
    CoreUuid => "Core-UUID",
    Timestamp => "Event-Date-Timestamp",
    Sequence => "Event-Sequence",
    Action => "CC-Action",
    Queue => "CC-Queue",
    Agent => "CC-Agent",
    AgentStatus => "CC-Agent-Status",
    AgentState => "CC-Agent-State",
    AgentBridged => "CC-Agent-Bridged",
    MemberUuid => "CC-Member-UUID",
    MemberSessionUuid => "CC-Member-Session-UUID",
    CidNumber => "CC-Member-CID-Number",
    CidName => "CC-Member-CID-Name",
    Cause => "CC-Cause",
    CancelReason => "CC-Cancel-Reason",
    HangupCause => "CC-Hangup-Cause",
    CalledTime => "CC-Agent-Called-Time",
    AnsweredTime => "CC-Agent-Answered-Time",
    AbortedTime => "CC-Agent-Aborted-Time",
    JoinedTime => "CC-Member-Joined-Time",
    LeavingTime => "CC-Member-Leaving-Time",
    BridgeTerminatedTime => "CC-Bridge-Terminated-Time",
    Count => "CC-Count",
    Selection => "CC-Selection",
    NoAnswerStatus => "CC-Agent-No-Answer-Status",
    JoinedEpochVar => "variable_cc_queue_joined_epoch",
}

/// A `callcenter::info` event (or any event), reduced to the headers the
/// mapping reads. Values are stored raw (still URL-encoded for plain events)
/// and decoded by [`CcEvent::get`].
#[derive(Debug, Clone)]
pub struct CcEvent<'a> {
    values: [Option<Cow<'a, str>>; FIELD_COUNT],
    /// Plain-format values are URL-encoded; JSON values are not.
    encoded: bool,
}

impl<'a> CcEvent<'a> {
    fn empty(encoded: bool) -> Self {
        CcEvent {
            values: std::array::from_fn(|_| None),
            encoded,
        }
    }

    /// Parses a `text/event-plain` body: `Name: url-encoded-value` lines, an
    /// empty line, then (if the event has one) the event's own
    /// `Content-Length` body, which we do not need.
    pub fn from_plain(body: &'a [u8]) -> Result<Self, Reject> {
        let mut ev = CcEvent::empty(true);
        let mut pos = 0;
        let mut any = false;
        while pos < body.len() {
            let end = memchr(b'\n', &body[pos..]).map_or(body.len(), |n| pos + n);
            let line = trim_cr(&body[pos..end]);
            pos = end + 1;
            if line.is_empty() {
                break;
            }
            // Only the headers we read are checked further: values are
            // URL-encoded ASCII, and the ~200 channel headers of a bridge
            // event are skipped on their name alone.
            let colon = match memchr(b':', line) {
                Some(c) if c > 0 => c,
                _ => {
                    return Err(Reject::new(
                        RejectReason::MalformedEvent,
                        format!(
                            "not a header line: {}",
                            clip(&String::from_utf8_lossy(line))
                        ),
                    ));
                }
            };
            any = true;
            let Some(f) = field_of_bytes(&line[..colon]) else {
                continue;
            };
            let mut v = &line[colon + 1..];
            while let [b' ', rest @ ..] = v {
                v = rest;
            }
            while let [rest @ .., b' ' | b'\t'] = v {
                v = rest;
            }
            let Ok(v) = std::str::from_utf8(v) else {
                return Err(Reject::new(
                    RejectReason::MalformedEvent,
                    format!("{} is not UTF-8", f.name()),
                ));
            };
            ev.values[f as usize] = Some(Cow::Borrowed(v));
        }
        if !any {
            return Err(Reject::new(RejectReason::MalformedEvent, "empty event"));
        }
        Ok(ev)
    }

    /// Parses a `text/event-json` body: a flat object of strings; multi-value
    /// headers are arrays (we take the first element).
    pub fn from_json(body: &[u8]) -> Result<CcEvent<'static>, Reject> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| Reject::new(RejectReason::MalformedEvent, format!("event JSON: {e}")))?;
        let mut ev = CcEvent::empty(false);
        for (k, v) in map {
            let Some(f) = field_of(&k) else { continue };
            let s = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(a) => match a.into_iter().next() {
                    Some(serde_json::Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            ev.values[f as usize] = Some(Cow::Owned(s));
        }
        Ok(ev)
    }

    /// A header's decoded value: URL-decoded for plain events, `_undef_`
    /// (FreeSWITCH's spelling of an empty value) as empty. `None` when absent.
    pub fn get(&self, f: Field) -> Option<Cow<'_, str>> {
        let raw = self.values[f as usize].as_deref()?;
        if !self.encoded {
            return Some(Cow::Borrowed(raw));
        }
        if raw == "_undef_" {
            return Some(Cow::Borrowed(""));
        }
        if !raw.contains('%') {
            return Some(Cow::Borrowed(raw));
        }
        Some(percent_decode(raw.as_bytes()).decode_utf8_lossy())
    }

    /// Whether a header is absent or equal to `want` (compared without
    /// decoding when the raw value already matches).
    pub fn is_absent_or(&self, f: Field, want: &str) -> bool {
        match self.values[f as usize].as_deref() {
            None => true,
            Some(raw) if raw == want => true,
            Some(_) => self.get(f).as_deref() == Some(want),
        }
    }

    /// A decoded value, or `None` when absent or empty.
    pub fn text(&self, f: Field) -> Option<Cow<'_, str>> {
        self.get(f).filter(|s| !s.is_empty())
    }

    /// A decimal header (epoch seconds, µs, counts).
    pub fn int(&self, f: Field) -> Option<i64> {
        self.get(f)?.trim().parse().ok()
    }

    /// Sets a raw value (tests, benches).
    pub fn set(&mut self, f: Field, v: impl Into<Cow<'a, str>>) {
        self.values[f as usize] = Some(v.into());
    }

    /// Copies the borrowed values so the event can outlive the read buffer
    /// (events that arrive during a resync are held until it completes).
    pub fn into_owned(self) -> CcEvent<'static> {
        CcEvent {
            values: self.values.map(|v| v.map(|c| Cow::Owned(c.into_owned()))),
            encoded: self.encoded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mut buf: &[u8]) -> (Vec<String>, Vec<&'static str>) {
        let mut f = Framer::default();
        let mut types = Vec::new();
        let mut rejects = Vec::new();
        loop {
            match f.next(buf) {
                Parse::Frame(fr, n) => {
                    types.push(fr.content_type.to_string());
                    buf = &buf[n..];
                }
                Parse::Skip(r, n) => {
                    rejects.push(r.reason.as_str());
                    buf = &buf[n..];
                }
                Parse::NeedMore => break,
            }
        }
        (types, rejects)
    }

    #[test]
    fn frames_replies_and_bodies_with_lf_or_crlf() {
        let wire = b"Content-Type: auth/request\n\nContent-Type: command/reply\r\nReply-Text: +OK accepted\r\n\r\nContent-Type: api/response\nContent-Length: 4\n\n+OK\n";
        let (t, r) = frames(wire);
        assert_eq!(t, ["auth/request", "command/reply", "api/response"]);
        assert!(r.is_empty());
    }

    #[test]
    fn half_frames_need_more_bytes() {
        let wire = b"Content-Type: api/response\nContent-Length: 10\n\n+OK";
        let mut f = Framer::default();
        for cut in 0..wire.len() {
            assert!(matches!(f.next(&wire[..cut]), Parse::NeedMore), "cut {cut}");
        }
    }

    #[test]
    fn garbage_is_skipped_to_the_next_blank_line() {
        let wire = b"hello there\nthis is not esl\n\nContent-Type: auth/request\n\n";
        let (t, r) = frames(wire);
        assert_eq!(t, ["auth/request"]);
        assert_eq!(r, ["malformed_frame"]);
    }

    #[test]
    fn oversized_bodies_are_discarded_as_they_stream() {
        let mut f = Framer::new(Limits {
            max_body: 8,
            ..Limits::default()
        });
        let head = b"Content-Type: api/response\nContent-Length: 20\n\n0123";
        let Parse::Skip(r, n) = f.next(head) else {
            panic!()
        };
        assert_eq!((r.reason.as_str(), n), ("frame_too_large", head.len()));
        let rest = b"4567890123456789Content-Type: auth/request\n\n";
        let Parse::Skip(_, n) = f.next(rest) else {
            panic!()
        };
        assert_eq!(n, 16);
        assert!(matches!(f.next(&rest[16..]), Parse::Frame(_, _)));
    }

    #[test]
    fn plain_values_are_url_decoded_and_undef_is_empty() {
        let body = b"Event-Name: CUSTOM\nEvent-Subclass: callcenter%3A%3Ainfo\nCC-Agent-Status: Available%20(On%20Demand)\nCC-Member-CID-Name: %E6%9D%8E%E5%A8%9C\nCC-Queue: _undef_\n\n";
        let ev = CcEvent::from_plain(body).unwrap();
        assert_eq!(ev.get(Field::Subclass).unwrap(), "callcenter::info");
        assert_eq!(ev.get(Field::AgentStatus).unwrap(), "Available (On Demand)");
        assert_eq!(ev.get(Field::CidName).unwrap(), "李娜");
        assert_eq!(ev.get(Field::Queue).unwrap(), "");
        assert!(ev.text(Field::Queue).is_none());
        assert!(ev.get(Field::Agent).is_none());
    }

    #[test]
    fn json_events_are_not_decoded() {
        let body = br#"{"Event-Name":"CUSTOM","CC-Action":"agent-status-change","CC-Agent-Status":"On Break","CC-Agent":"1000@default","Event-Sequence":["7","8"]}"#;
        let ev = CcEvent::from_json(body).unwrap();
        assert_eq!(ev.get(Field::AgentStatus).unwrap(), "On Break");
        assert_eq!(ev.int(Field::Sequence), Some(7));
    }
}
