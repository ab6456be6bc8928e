//! AMI framing: bytes in, banner / messages / rejections out.
//!
//! Zero-copy in the httparse manner: a [`Message`] borrows its keys and
//! values from the caller's buffer and the parser's reusable offset table, so
//! parsing allocates nothing once warm. Incomplete input is reported as
//! "need more bytes" (no item; the caller keeps the unconsumed bytes at the
//! front of its buffer and calls again with more); the parser remembers how
//! far into the block it got, so a peer trickling bytes costs linear time. A
//! block is at most [`MAX_HEADERS`] lines of [`MAX_LINE`] bytes, which bounds
//! what the caller must buffer.
//!
//! Why the resync rules are what they are: Asterisk always writes whole
//! blocks ending in an empty line, so the blank line is the only trustworthy
//! boundary. A bad line at the *start* of a block (garbage between blocks) is
//! dropped alone, so the block after it survives; a bad line *inside* a block
//! poisons that block (a lost `Event:` or `Uniqueid:` line would make the rest
//! lie), which is then skipped up to its blank line. Either way the parser is
//! back in step at the next block and nothing after it is lost.
//!
//! The banner (`Asterisk Call Manager/9.0.0`) is a lone line with no blank
//! line after it (manager.c); it is recognised by its prefix wherever a block
//! could start, so a transcript spanning a reconnect parses too.

use memchr::memchr;

use crate::sources::{Reject, RejectReason};

/// Longest accepted line, without its line end (Asterisk's `inbuf[1025]`).
pub const MAX_LINE: usize = 1024;
/// Most header lines in one message (`AST_MAX_MANHEADERS`).
pub const MAX_HEADERS: usize = 128;

const BANNER_PREFIX: &[u8] = b"Asterisk Call Manager";

/// One parsed unit.
#[derive(Debug)]
pub enum Item<'a> {
    /// The greeting line; the version after the `/`.
    Banner(&'a str),
    Message(Message<'a>),
    /// Input that was dropped; the parser is already past it.
    Rejected(Reject),
}

/// One `Key: Value` block. Keys match case-insensitively.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    buf: &'a [u8],
    fields: &'a [Field],
}

/// Offsets of one header into the buffer (key start/end, value start/end).
#[derive(Debug, Clone, Copy)]
struct Field {
    k0: u32,
    k1: u32,
    v0: u32,
    v1: u32,
}

impl<'a> Message<'a> {
    /// The first value of `key` (case-insensitive), as text. `None` when the
    /// key is absent or its value is not UTF-8.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.get_bytes(key)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `key` as raw bytes.
    pub fn get_bytes(&self, key: &str) -> Option<&'a [u8]> {
        let key = key.as_bytes();
        self.fields.iter().find_map(|f| {
            let k = &self.buf[f.k0 as usize..f.k1 as usize];
            k.eq_ignore_ascii_case(key)
                .then(|| &self.buf[f.v0 as usize..f.v1 as usize])
        })
    }

    /// Whether `key` is present with a value equal to `value`, both compared
    /// case-insensitively.
    pub fn is(&self, key: &str, value: &str) -> bool {
        self.get_bytes(key)
            .is_some_and(|v| v.eq_ignore_ascii_case(value.as_bytes()))
    }

    /// Every header in wire order (values lossily decoded).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.fields.iter().map(|f| {
            (
                &self.buf[f.k0 as usize..f.k1 as usize],
                &self.buf[f.v0 as usize..f.v1 as usize],
            )
        })
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// An owned copy, for buffering past the read buffer's lifetime.
    pub fn to_owned(&self) -> OwnedMessage {
        OwnedMessage {
            headers: self
                .headers()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
        }
    }
}

/// A message kept beyond its buffer (events buffered during a resync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    pub headers: Vec<(String, String)>,
}

impl OwnedMessage {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Anything that reads AMI headers by key; lets the mapping read borrowed and
/// buffered messages alike.
pub trait Headers {
    fn header(&self, key: &str) -> Option<&str>;
    /// Every header in wire order, values as text (lossily decoded, as a
    /// buffered [`OwnedMessage`] keeps them): both kinds give the same bytes.
    fn each_header(&self, f: &mut dyn FnMut(&[u8], &[u8]));
}

impl Headers for Message<'_> {
    fn header(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
    fn each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (k, v) in self.headers() {
            f(
                String::from_utf8_lossy(k).as_bytes(),
                String::from_utf8_lossy(v).as_bytes(),
            );
        }
    }
}

impl Headers for OwnedMessage {
    fn header(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
    fn each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (k, v) in &self.headers {
            f(k.as_bytes(), v.as_bytes());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Discarding an oversize line up to its `\n`; then, if `then_block`,
    /// the rest of its block.
    SkipLine {
        then_block: bool,
    },
    /// Discarding lines up to the blank line that ends a poisoned block.
    SkipBlock,
}

/// The AMI frame parser. Feed it the unconsumed bytes each time; it says how
/// many it used.
#[derive(Debug)]
pub struct Parser {
    mode: Mode,
    fields: Vec<Field>,
    /// A block was incomplete: where its next line starts (relative to the
    /// block start, which the caller keeps at the front of its buffer), so
    /// a slow peer costs O(bytes), not O(bytes²).
    resume: Option<usize>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    pub fn new() -> Self {
        Parser {
            mode: Mode::Normal,
            fields: Vec::with_capacity(32),
            resume: None,
        }
    }

    /// A placeholder that allocates nothing (for `mem::replace`).
    pub(crate) fn empty() -> Self {
        Parser {
            mode: Mode::Normal,
            fields: Vec::new(),
            resume: None,
        }
    }

    /// Parses the next item from `buf`. Returns how many bytes were used and
    /// the item; `(n, None)` means the rest is an incomplete block (drop `n`
    /// bytes, keep the rest, call again when more bytes arrive).
    pub fn parse<'a>(&'a mut self, buf: &'a [u8]) -> (usize, Option<Item<'a>>) {
        let mut pos = 0usize;
        // Skipping states first: they consume without producing.
        loop {
            match self.mode {
                Mode::Normal => break,
                Mode::SkipLine { then_block } => match memchr(b'\n', &buf[pos..]) {
                    Some(i) => {
                        pos += i + 1;
                        self.mode = if then_block {
                            Mode::SkipBlock
                        } else {
                            Mode::Normal
                        };
                    }
                    None => return (buf.len(), None),
                },
                Mode::SkipBlock => match memchr(b'\n', &buf[pos..]) {
                    Some(i) => {
                        let line = trim_cr(&buf[pos..pos + i]);
                        pos += i + 1;
                        if line.is_empty() {
                            self.mode = Mode::Normal;
                        }
                    }
                    None => {
                        // A lone "\r" may be the start of the blank line that
                        // ends the block: keep it. Anything else is the start
                        // of a junk line: drop it and skip to its end.
                        if &buf[pos..] == b"\r" {
                            return (pos, None);
                        }
                        if pos < buf.len() {
                            self.mode = Mode::SkipLine { then_block: true };
                        }
                        return (buf.len(), None);
                    }
                },
            }
        }

        let start = pos;
        let mut line_start = pos;
        match self.resume.take() {
            // The caller kept the unconsumed block at the front of `buf`:
            // carry on after the lines already read.
            Some(at) if pos == 0 && at <= buf.len() => line_start = at,
            _ => self.fields.clear(),
        }
        loop {
            let window_end = buf.len().min(line_start + MAX_LINE + 2);
            let Some(i) = memchr(b'\n', &buf[line_start..window_end]) else {
                if buf.len() - line_start > MAX_LINE + 1 {
                    let then_block = !self.fields.is_empty();
                    self.mode = Mode::SkipLine { then_block };
                    let reject = too_long(then_block);
                    // Only the window is known to hold no line end.
                    return (window_end, Some(Item::Rejected(reject)));
                }
                // Need more bytes; keep the block from its start, and
                // remember how far it was read (offsets relative to it).
                if start > 0 {
                    for f in &mut self.fields {
                        f.k0 -= start as u32;
                        f.k1 -= start as u32;
                        f.v0 -= start as u32;
                        f.v1 -= start as u32;
                    }
                }
                self.resume = Some(line_start - start);
                return (start, None);
            };
            let nl = line_start + i;
            let line = trim_cr(&buf[line_start..nl]);
            let next = nl + 1;
            if line.len() > MAX_LINE {
                let then_block = !self.fields.is_empty();
                if then_block {
                    self.mode = Mode::SkipBlock;
                }
                return (next, Some(Item::Rejected(too_long(then_block))));
            }
            if line.is_empty() {
                if self.fields.is_empty() {
                    // Stray blank line between blocks.
                    line_start = next;
                    continue;
                }
                let msg = Message {
                    buf,
                    fields: &self.fields,
                };
                return (next, Some(Item::Message(msg)));
            }
            if self.fields.is_empty() && line.starts_with(BANNER_PREFIX) {
                let version = line
                    .iter()
                    .position(|&b| b == b'/')
                    .map(|p| &line[p + 1..])
                    .unwrap_or(b"");
                let version = std::str::from_utf8(version).unwrap_or("");
                return (next, Some(Item::Banner(version)));
            }
            let Some(colon) = memchr(b':', line) else {
                return self.bad_line(next, "no ':' in header line", line);
            };
            let key = trim_spaces(&line[..colon]);
            if key.is_empty() {
                return self.bad_line(next, "empty header name", line);
            }
            if self.fields.len() == MAX_HEADERS {
                self.mode = Mode::SkipBlock;
                return (
                    next,
                    Some(Item::Rejected(Reject::new(
                        RejectReason::TooManyHeaders,
                        format!("block has more than {MAX_HEADERS} lines; skipped"),
                    ))),
                );
            }
            let k0 = offset(buf, key);
            let mut v = &line[colon + 1..];
            while let [b' ' | b'\t', rest @ ..] = v {
                v = rest;
            }
            let v0 = offset(buf, v);
            self.fields.push(Field {
                k0: k0 as u32,
                k1: (k0 + key.len()) as u32,
                v0: v0 as u32,
                v1: (v0 + v.len()) as u32,
            });
            line_start = next;
        }
    }

    fn bad_line<'a>(&mut self, next: usize, why: &str, line: &[u8]) -> (usize, Option<Item<'a>>) {
        let in_block = !self.fields.is_empty();
        if in_block {
            self.mode = Mode::SkipBlock;
        }
        let what = if in_block {
            "block skipped"
        } else {
            "line skipped"
        };
        let reject = Reject::new(
            RejectReason::Malformed,
            format!("{why} ({what}): {:?}", preview(line)),
        );
        (next, Some(Item::Rejected(reject)))
    }
}

fn too_long(in_block: bool) -> Reject {
    Reject::new(
        RejectReason::LineTooLong,
        format!(
            "line longer than {MAX_LINE} bytes; {}",
            if in_block {
                "its block skipped"
            } else {
                "skipped"
            }
        ),
    )
}

fn trim_cr(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    }
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Offset of `sub` inside `buf` (`sub` is always a subslice of `buf`).
fn offset(buf: &[u8], sub: &[u8]) -> usize {
    (sub.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize)
}

/// A short printable excerpt of a bad line for logs.
fn preview(line: &[u8]) -> String {
    let cut = &line[..line.len().min(60)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses everything in `input`, fed in chunks of `chunk` bytes, and
    /// returns a readable trace.
    fn trace(input: &[u8], chunk: usize) -> Vec<String> {
        let mut p = Parser::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let (n, item) = p.parse(&buf);
                let done = item.is_none();
                match item {
                    Some(Item::Banner(v)) => out.push(format!("banner {v}")),
                    Some(Item::Message(m)) => out.push(
                        m.headers()
                            .map(|(k, v)| {
                                format!(
                                    "{}={}",
                                    String::from_utf8_lossy(k),
                                    String::from_utf8_lossy(v)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    Some(Item::Rejected(r)) => out.push(format!("reject {}", r.reason)),
                    None => {}
                }
                buf.drain(..n);
                if done {
                    break;
                }
            }
        }
        out
    }

    const SAMPLE: &[u8] = b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\nEvent: QueueCallerJoin\r\nPrivilege: agent,all\r\nQueue: sales\r\n\r\n";

    #[test]
    fn banner_then_blocks_in_any_chunking() {
        let want = vec![
            "banner 9.0.0".to_string(),
            "Response=Success,Message=Authentication accepted".into(),
            "Event=QueueCallerJoin,Privilege=agent,all,Queue=sales".into(),
        ];
        for chunk in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(trace(SAMPLE, chunk), want, "chunk {chunk}");
        }
    }

    #[test]
    fn bare_lf_and_case_insensitive_keys() {
        let mut p = Parser::new();
        let buf = b"EVENT: QueueMember\nname: Alice\nLocation: PJSIP/1\n\n";
        let (n, item) = p.parse(buf);
        assert_eq!(n, buf.len());
        let Some(Item::Message(m)) = item else {
            panic!("no message")
        };
        assert_eq!(m.get("Event"), Some("QueueMember"));
        assert_eq!(m.get("NAME"), Some("Alice"));
        assert!(m.is("event", "queuemember"));
    }

    #[test]
    fn half_message_needs_more() {
        let mut p = Parser::new();
        let (n, item) = p.parse(b"Event: QueueCallerJoin\r\nQueue: sa");
        assert_eq!(n, 0);
        assert!(item.is_none());
    }

    #[test]
    fn line_of_1024_is_kept_and_1025_rejected_without_losing_the_next_block() {
        let ok = format!("Event: X\r\nV: {}\r\n\r\n", "a".repeat(MAX_LINE - 3));
        assert_eq!(trace(ok.as_bytes(), 4096).len(), 1);
        assert!(!trace(ok.as_bytes(), 4096)[0].starts_with("reject"));
        let bad = format!(
            "Event: X\r\nV: {}\r\nW: 1\r\n\r\nEvent: Y\r\n\r\n",
            "a".repeat(MAX_LINE - 2)
        );
        for chunk in [1, 5, 100, 4096] {
            assert_eq!(
                trace(bad.as_bytes(), chunk),
                vec!["reject line_too_long".to_string(), "Event=Y".into()],
                "chunk {chunk}"
            );
        }
        // A huge line with no newline at all, at a block start.
        let mut huge = vec![b'z'; 10_000];
        huge.extend_from_slice(b"\r\nEvent: Y\r\n\r\n");
        assert_eq!(
            trace(&huge, 333),
            vec!["reject line_too_long".to_string(), "Event=Y".into()]
        );
    }

    #[test]
    fn garbage_between_blocks_is_dropped_alone() {
        let input = b"\x00\xff\x13junk\r\nEvent: A\r\n\r\n:nokey\r\nEvent: B\r\n\r\n";
        assert_eq!(
            trace(input, 3),
            vec![
                "reject malformed".to_string(),
                "Event=A".into(),
                "reject malformed".into(),
                "Event=B".into()
            ]
        );
    }

    #[test]
    fn garbage_inside_a_block_drops_that_block_only() {
        let input = b"Event: A\r\nthis is not a header\r\nQueue: q\r\n\r\nEvent: B\r\n\r\n";
        assert_eq!(
            trace(input, 2),
            vec!["reject malformed".to_string(), "Event=B".into()]
        );
    }

    #[test]
    fn too_many_headers() {
        let mut s = String::from("Event: Big\r\n");
        for i in 0..MAX_HEADERS {
            s.push_str(&format!("H{i}: v\r\n"));
        }
        s.push_str("\r\nEvent: Next\r\n\r\n");
        assert_eq!(
            trace(s.as_bytes(), 4096),
            vec!["reject too_many_headers".to_string(), "Event=Next".into()]
        );
        let mut s = String::from("Event: Full\r\n");
        for i in 0..MAX_HEADERS - 1 {
            s.push_str(&format!("H{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert!(trace(s.as_bytes(), 4096)[0].starts_with("Event=Full"));
    }

    #[test]
    fn non_utf8_values_do_not_break_the_block() {
        let mut p = Parser::new();
        let buf = b"Event: QueueCallerJoin\r\nCallerIDName: M\xfcller\r\nQueue: q\r\n\r\n";
        let (_, item) = p.parse(buf);
        let Some(Item::Message(m)) = item else {
            panic!()
        };
        assert_eq!(m.get("CallerIDName"), None);
        assert_eq!(m.get("Queue"), Some("q"));
    }
}
