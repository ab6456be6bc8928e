//! The native JSON-lines feed (contract section 3): one event per line, from
//! a file, a TCP peer, or `POST /api/v1/events`.
//!
//! Decoding borrows from the line (`Cow` strings are only allocated when a
//! value contains escapes) and validates per type, so a bad line is one
//! [`Reject`] with a precise reason: `invalid_json`, `unknown_type`,
//! `missing_field`, `bad_timestamp`, `ts_out_of_range`, `bad_value`,
//! `line_too_long`.

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{AgentStatus, Event, EventKind, ExitReason};
use crate::sources::{Reject, RejectReason};
use crate::time::{TimeError, Ts};

/// Longest accepted line. An event is a few hundred bytes; anything this long
/// is garbage or an attack, and is skipped without being buffered whole.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    ts: Option<RawTs<'a>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    call: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    queue: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    agent: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    caller: Option<Cow<'a, str>>,
    priority: Option<i64>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
}

/// An identifier (`call`, `queue`, `agent`, `caller`): a string, or an
/// integer taken as its decimal text. The contract gives no type for ids and
/// producers write numeric ones (`"agent": 1017`, a caller's number); such
/// an event is the same event as with the string, not `invalid_json`.
/// Borrows from the line like the other strings.
fn id<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or an integer")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTs<'a> {
    Millis(i64),
    Float(f64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

/// A timestamp that cannot be an event's: `ts_out_of_range` when it is
/// well-formed but outside [`Ts::EARLIEST`]..[`Ts::LATEST`], else
/// `bad_timestamp`; the detail says what is wrong.
pub fn time_reject(e: TimeError) -> Reject {
    match e {
        TimeError::OutOfRange(d) => Reject::new(RejectReason::TsOutOfRange, d),
        TimeError::Syntax(d) => Reject::new(RejectReason::BadTimestamp, d),
    }
}

/// Decodes one line. Blank lines are `Ok(None)`.
pub fn decode_line(line: &[u8]) -> Result<Option<Event>, Reject> {
    let line = trim(line);
    if line.is_empty() {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Err(Reject::new(
            RejectReason::LineTooLong,
            format!("{} bytes (limit {MAX_LINE})", line.len()),
        ));
    }
    let raw: Raw<'_> = serde_json::from_slice(line)
        .map_err(|e| Reject::new(RejectReason::InvalidJson, e.to_string()))?;
    let kind = raw
        .kind
        .as_deref()
        .ok_or_else(|| Reject::new(RejectReason::MissingField, "type"))?
        .to_string();
    let ts = match &raw.ts {
        None => {
            return Err(Reject::new(
                RejectReason::MissingField,
                format!("ts ({kind})"),
            ));
        }
        Some(RawTs::Millis(ms)) => Ts::event_time(*ms).map_err(time_reject)?,
        Some(RawTs::Float(f)) => {
            return Err(Reject::new(
                RejectReason::BadTimestamp,
                format!("{f}: integer epoch milliseconds or an RFC 3339 string"),
            ));
        }
        Some(RawTs::Text(s)) => Ts::parse_event_time(s).map_err(time_reject)?,
    };
    let field = |v: &Option<Cow<'_, str>>, name: &str| -> Result<String, Reject> {
        match v.as_deref() {
            None => Err(Reject::new(
                RejectReason::MissingField,
                format!("{name} ({kind})"),
            )),
            Some("") => Err(Reject::new(
                RejectReason::BadValue,
                format!("{name} is empty ({kind})"),
            )),
            Some(s) => Ok(s.to_string()),
        }
    };
    let kind = match kind.as_str() {
        "call_enqueued" => EventKind::CallEnqueued {
            call: field(&raw.call, "call")?,
            queue: field(&raw.queue, "queue")?,
            caller: raw.caller.map(|c| c.into_owned()),
            priority: raw.priority,
        },
        "call_answered" => EventKind::CallAnswered {
            call: field(&raw.call, "call")?,
            queue: field(&raw.queue, "queue")?,
            agent: field(&raw.agent, "agent")?,
        },
        "call_abandoned" => EventKind::CallAbandoned {
            call: field(&raw.call, "call")?,
            queue: field(&raw.queue, "queue")?,
        },
        "call_exited" => {
            let r = field(&raw.reason, "reason")?;
            EventKind::CallExited {
                call: field(&raw.call, "call")?,
                queue: field(&raw.queue, "queue")?,
                reason: ExitReason::parse(&r).ok_or_else(|| {
                    Reject::new(
                        RejectReason::BadValue,
                        format!("reason {r:?} (timeout, empty, key, transfer, other)"),
                    )
                })?,
            }
        }
        "call_completed" => EventKind::CallCompleted {
            call: field(&raw.call, "call")?,
            queue: field(&raw.queue, "queue")?,
            agent: field(&raw.agent, "agent")?,
        },
        "agent_state" => {
            let s = field(&raw.state, "state")?;
            EventKind::AgentState {
                agent: field(&raw.agent, "agent")?,
                status: AgentStatus::parse(&s).ok_or_else(|| {
                    Reject::new(
                        RejectReason::BadValue,
                        format!(
                            "state {s:?} (logged_out, available, ringing, on_call, wrap_up, paused)"
                        ),
                    )
                })?,
                reason: raw.reason.map(|c| c.into_owned()).filter(|r| !r.is_empty()),
                queue: raw.queue.map(|c| c.into_owned()).filter(|q| !q.is_empty()),
            }
        }
        "agent_joined_queue" => EventKind::AgentJoinedQueue {
            agent: field(&raw.agent, "agent")?,
            queue: field(&raw.queue, "queue")?,
        },
        "agent_left_queue" => EventKind::AgentLeftQueue {
            agent: field(&raw.agent, "agent")?,
            queue: field(&raw.queue, "queue")?,
        },
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(Reject::new(RejectReason::UnknownType, format!("{shown:?}")));
        }
    };
    Ok(Some(Event { ts, kind }))
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Encodes an event as a native JSON line (the simulator and tests write
/// feeds with it). `QueueResync` and `AgentQueuePause` have no native form
/// and yield `None`.
pub fn encode(ev: &Event) -> Option<String> {
    use serde_json::json;
    let ts = ev.ts.0;
    let v = match &ev.kind {
        EventKind::CallEnqueued {
            call,
            queue,
            caller,
            priority,
        } => {
            let mut v = json!({"ts": ts, "type": "call_enqueued", "call": call, "queue": queue});
            if let Some(c) = caller {
                v["caller"] = json!(c);
            }
            if let Some(p) = priority {
                v["priority"] = json!(p);
            }
            v
        }
        EventKind::CallAnswered { call, queue, agent } => {
            json!({"ts": ts, "type": "call_answered", "call": call, "queue": queue, "agent": agent})
        }
        EventKind::CallAbandoned { call, queue } => {
            json!({"ts": ts, "type": "call_abandoned", "call": call, "queue": queue})
        }
        EventKind::CallExited {
            call,
            queue,
            reason,
        } => {
            json!({"ts": ts, "type": "call_exited", "call": call, "queue": queue, "reason": reason.as_str()})
        }
        EventKind::CallCompleted { call, queue, agent } => {
            json!({"ts": ts, "type": "call_completed", "call": call, "queue": queue, "agent": agent})
        }
        EventKind::AgentState {
            agent,
            status,
            reason,
            queue,
        } => {
            let mut v =
                json!({"ts": ts, "type": "agent_state", "agent": agent, "state": status.as_str()});
            if let Some(r) = reason {
                v["reason"] = json!(r);
            }
            if let Some(q) = queue {
                v["queue"] = json!(q);
            }
            v
        }
        EventKind::AgentJoinedQueue { agent, queue } => {
            json!({"ts": ts, "type": "agent_joined_queue", "agent": agent, "queue": queue})
        }
        EventKind::AgentLeftQueue { agent, queue } => {
            json!({"ts": ts, "type": "agent_left_queue", "agent": agent, "queue": queue})
        }
        EventKind::QueueResync { .. } | EventKind::AgentQueuePause { .. } => return None,
    };
    Some(v.to_string())
}

/// Splits a byte stream into lines and decodes them, keeping line numbers.
/// Sans-IO: feed chunks as they arrive, in any sizes.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
    line_no: u64,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

/// One decoded line: its number and the result.
pub type Decoded = (u64, Result<Event, Reject>);

impl LineDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Decoded>) {
        while let Some(pos) = memchr(b'\n', bytes) {
            let (line, rest) = bytes.split_at(pos);
            bytes = &rest[1..];
            self.line_no += 1;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            // Over the limit however the line arrived (whole, or in pieces
            // that were buffered), so chunking never changes the verdict.
            if self.buf.len() + line.len() > MAX_LINE {
                self.buf.clear();
                out.push((self.line_no, Err(too_long())));
                continue;
            }
            if self.buf.is_empty() {
                self.emit(line, out);
            } else {
                self.buf.extend_from_slice(line);
                let buf = std::mem::take(&mut self.buf);
                self.emit(&buf, out);
                self.buf = buf;
                self.buf.clear();
            }
        }
        if self.discarding {
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > MAX_LINE {
            self.buf.clear();
            self.discarding = true;
            out.push((self.line_no + 1, Err(too_long())));
        }
    }

    /// Bytes held for an unfinished line; `None` while skipping an
    /// over-long one (its length is not kept).
    pub fn pending(&self) -> Option<usize> {
        (!self.discarding).then_some(self.buf.len())
    }

    /// Decodes a last line without a trailing newline.
    pub fn finish(&mut self, out: &mut Vec<Decoded>) {
        if !self.buf.is_empty() && !self.discarding {
            self.line_no += 1;
            let buf = std::mem::take(&mut self.buf);
            self.emit(&buf, out);
        }
        self.discarding = false;
    }

    fn emit(&self, line: &[u8], out: &mut Vec<Decoded>) {
        match decode_line(line) {
            Ok(Some(ev)) => out.push((self.line_no, Ok(ev))),
            Ok(None) => {}
            Err(r) => out.push((self.line_no, Err(r))),
        }
    }
}

fn too_long() -> Reject {
    Reject::new(RejectReason::LineTooLong, format!("over {MAX_LINE} bytes"))
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> &'static str {
        decode_line(line.as_bytes()).unwrap_err().reason.as_str()
    }

    #[test]
    fn decodes_every_type() {
        let lines = [
            r#"{"ts":"2026-11-23T09:00:00Z","type":"call_enqueued","call":"c1","queue":"hotline","caller":"+8613","priority":2}"#,
            r#"{"ts":1700000000000,"type":"call_answered","call":"c1","queue":"hotline","agent":"1017"}"#,
            r#"{"ts":"2026-11-23T17:00:00+08:00","type":"call_abandoned","call":"c1","queue":"q"}"#,
            r#"{"ts":1795424400000,"type":"call_exited","call":"c1","queue":"q","reason":"timeout"}"#,
            r#"{"ts":1795424400000,"type":"call_completed","call":"c1","queue":"q","agent":"a"}"#,
            r#"{"ts":1795424400000,"type":"agent_state","agent":"a","state":"paused","reason":"lunch","extra":{"x":1}}"#,
            r#"{"ts":1795424400000,"type":"agent_joined_queue","agent":"a","queue":"q"}"#,
            r#"{"ts":1795424400000,"type":"agent_left_queue","agent":"a","queue":"q"}"#,
        ];
        for l in lines {
            let ev = decode_line(l.as_bytes()).unwrap().unwrap();
            let back = encode(&ev).unwrap();
            assert_eq!(decode_line(back.as_bytes()).unwrap().unwrap(), ev, "{l}");
        }
        let ev = decode_line(lines[2].as_bytes()).unwrap().unwrap();
        assert_eq!(ev.ts, Ts::parse_rfc3339("2026-11-23T09:00:00Z").unwrap());
    }

    /// A producer writing numeric ids (an agent's extension, a caller's
    /// number) means the same event as with strings; it was `invalid_json`.
    #[test]
    fn numeric_ids_are_their_decimal_text() {
        let numeric = decode_line(
            br#"{"ts":1795424400000,"type":"call_enqueued","call":1733476443,"queue":8001,"caller":13800138000}"#,
        )
        .unwrap()
        .unwrap();
        let text = decode_line(
            br#"{"ts":1795424400000,"type":"call_enqueued","call":"1733476443","queue":"8001","caller":"13800138000"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(numeric, text);
        let ev = decode_line(
            br#"{"ts":1795424400000,"type":"agent_state","agent":1017,"state":"available"}"#,
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(&ev.kind, EventKind::AgentState { agent, .. } if agent == "1017"),
            "{ev:?}"
        );
        // null is absent; a fraction or an object is not an id.
        assert_eq!(
            reason(r#"{"ts":1795424400000,"type":"call_enqueued","call":null,"queue":"q"}"#),
            "missing_field"
        );
        assert_eq!(
            reason(r#"{"ts":1795424400000,"type":"call_enqueued","call":1.5,"queue":"q"}"#),
            "invalid_json"
        );
        assert_eq!(
            reason(r#"{"ts":1795424400000,"type":"call_enqueued","call":{"x":1},"queue":"q"}"#),
            "invalid_json"
        );
    }

    #[test]
    fn rejects_with_reasons() {
        assert_eq!(reason("not json"), "invalid_json");
        assert_eq!(
            reason(r#"{"ts":1795424400000,"type":"call_teleported"}"#),
            "unknown_type"
        );
        assert_eq!(
            reason(r#"{"ts":1795424400000,"type":"call_enqueued","queue":"q"}"#),
            "missing_field"
        );
        assert_eq!(
            reason(r#"{"type":"call_enqueued","call":"c","queue":"q"}"#),
            "missing_field"
        );
        assert_eq!(
            reason(r#"{"ts":"yesterday","type":"call_enqueued","call":"c","queue":"q"}"#),
            "bad_timestamp"
        );
        assert_eq!(
            reason(r#"{"ts":"2026-11-23T09:00:00","type":"call_enqueued","call":"c","queue":"q"}"#),
            "bad_timestamp"
        );
        assert_eq!(
            reason(r#"{"ts":1.5,"type":"call_enqueued","call":"c","queue":"q"}"#),
            "bad_timestamp"
        );
        assert_eq!(
            reason(
                r#"{"ts":1795424400000,"type":"call_exited","call":"c","queue":"q","reason":"bored"}"#
            ),
            "bad_value"
        );
        assert_eq!(
            reason(r#"{"ts":1795424400000,"type":"agent_state","agent":"a","state":"asleep"}"#),
            "bad_value"
        );
        assert_eq!(
            reason(r#"{"ts":1795424400000,"type":"call_enqueued","call":"","queue":"q"}"#),
            "bad_value"
        );
        // Absurd clocks get their own reason, whatever their notation.
        for absurd in [
            r#""9999-12-31T23:59:59Z""#,
            "9223372036854775807",
            "1000000000000000",
            "-9223372036854775808",
            "0",
        ] {
            let line =
                format!(r#"{{"ts":{absurd},"type":"call_enqueued","call":"c","queue":"q"}}"#);
            assert_eq!(reason(&line), "ts_out_of_range", "{absurd}");
        }
        let e = decode_line(
            br#"{"ts":"9999-12-31T23:59:59Z","type":"call_enqueued","call":"c","queue":"q"}"#,
        )
        .unwrap_err();
        assert!(
            e.detail.contains("year 9999 is outside the accepted range"),
            "{e}"
        );
        let e = decode_line(
            br#"{"ts":"2026-11-23T09:00:00","type":"call_enqueued","call":"c","queue":"q"}"#,
        )
        .unwrap_err();
        assert!(e.detail.contains("missing UTC offset"), "{e}");
        assert_eq!(reason(r#"[1,2]"#), "invalid_json");
        assert_eq!(decode_line(b"   \r").unwrap(), None);
    }

    #[test]
    fn a_long_blank_line_is_too_long_in_one_piece_or_many() {
        let mut input = vec![b' '; MAX_LINE + 10];
        input.push(b'\n');
        for chunk in [input.len(), 1000] {
            let mut dec = LineDecoder::new();
            let mut out = Vec::new();
            for c in input.chunks(chunk) {
                dec.feed(c, &mut out);
            }
            dec.finish(&mut out);
            let got: Vec<_> = out
                .iter()
                .map(|(n, r)| (*n, r.as_ref().err().map(|e| e.reason.as_str())))
                .collect();
            assert_eq!(got, vec![(1, Some("line_too_long"))], "chunk {chunk}");
        }
    }

    #[test]
    fn line_decoder_handles_chunks_and_long_lines() {
        let good = br#"{"ts":1795424400000,"type":"agent_joined_queue","agent":"a","queue":"q"}"#;
        let mut input = Vec::new();
        input.extend_from_slice(good);
        input.push(b'\n');
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.push(b'\n');
        input.extend_from_slice(b"garbage\n");
        input.extend_from_slice(good);
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        for chunk in input.chunks(7) {
            d.feed(chunk, &mut out);
        }
        d.finish(&mut out);
        let summary: Vec<(u64, Result<&str, &str>)> = out
            .iter()
            .map(|(n, r)| {
                (
                    *n,
                    r.as_ref()
                        .map(|e| e.kind.type_name())
                        .map_err(|r| r.reason.as_str()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, Ok("agent_joined_queue")),
                (2, Err("line_too_long")),
                (3, Err("invalid_json")),
                (4, Ok("agent_joined_queue")),
            ]
        );
    }
}
