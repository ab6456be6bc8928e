//! The hot-path SIP reader: one pass over the header block that locates the
//! few headers acdmon needs and borrows everything from the packet.
//!
//! Why not `rsip` here: acdmon needs Call-ID, the From/To tags and users,
//! CSeq, the method or status, the Request-URI user, Contact, Event,
//! Content-Type/Length and one or two marker headers. `rsip` builds every
//! header and URI of every message, and it fails on things real networks
//! send (compact forms, folded lines, `Via :`, `sip:john.doe@host`, no
//! Content-Length framing; protocols.md 5.1). This reader tolerates all of
//! them, and on the same messages (`cargo bench --bench hep`) it reads
//! what we need in ~0.7 us per message where `rsip` takes ~1.8 us to parse
//! and ~3.4 us to also type the few headers we need; the whole collector
//! runs at ~1.1 M messages/s with this reader and ~180 k/s when `rsip`
//! validates every message (numbers in `docs/sip.md`, `notes/hep.md`).
//! `rsip` stays where a full, validating parse is worth its cost: see
//! [`super::full`].
//!
//! Tolerance has limits: a message without a start line, without the blank
//! line that ends the headers, or missing Call-ID/CSeq/From/To is an error
//! (counted and skipped by the caller), never a panic.

use std::borrow::Cow;

use thiserror::Error;

use crate::sources::{Reject, RejectReason};

/// At most this many header lines per message; more is an attack or garbage.
pub const MAX_HEADERS: usize = 256;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SipError {
    #[error("bad start line: {0}")]
    StartLine(String),
    #[error("header block not terminated by an empty line")]
    Unterminated,
    #[error("malformed header line: {0}")]
    Header(String),
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("bad CSeq: {0}")]
    CSeq(String),
    #[error("not valid for rsip: {0}")]
    Full(String),
}

impl SipError {
    pub fn reason(&self) -> RejectReason {
        match self {
            SipError::StartLine(_) => RejectReason::SipBadStartLine,
            SipError::Unterminated => RejectReason::SipTruncated,
            SipError::Header(_) | SipError::CSeq(_) => RejectReason::SipBadHeader,
            SipError::TooManyHeaders => RejectReason::SipTooManyHeaders,
            SipError::Missing(_) => RejectReason::SipMissingHeader,
            SipError::Full(_) => RejectReason::SipInvalid,
        }
    }

    pub fn to_reject(&self) -> Reject {
        Reject::new(self.reason(), self.to_string())
    }
}

/// SIP methods acdmon tells apart; the rest are kept by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Notify,
    Subscribe,
    Register,
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Methods are case-sensitive (RFC 3261 7.1).
    pub fn parse(s: &'a str) -> Method<'a> {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "REGISTER" => Method::Register,
            other => Method::Other(other),
        }
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Register => "REGISTER",
            Method::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: Method<'a>, uri: &'a str },
    Response { code: u16, reason: &'a str },
}

/// A From, To or Contact value split into its URI and tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub uri: &'a str,
    pub tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    /// Parses `"Display" <uri>;params`, `Display <uri>`, `<uri>` and the bare
    /// addr-spec form `uri;params` (where every `;` starts a header param).
    pub fn parse(v: &'a str) -> NameAddr<'a> {
        let v = v.trim();
        let mut rest = v;
        // A quoted display name may contain `<`, `;` and escaped quotes.
        if let Some(q) = rest.strip_prefix('"') {
            let mut esc = false;
            let mut end = q.len();
            for (i, c) in q.char_indices() {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    end = i + 1;
                    break;
                }
            }
            rest = &q[end.min(q.len())..];
        }
        let (uri, params) = match rest.find('<') {
            Some(lt) => {
                let after = &rest[lt + 1..];
                match after.find('>') {
                    Some(gt) => (&after[..gt], &after[gt + 1..]),
                    None => (after, ""),
                }
            }
            None => match rest.find(';') {
                Some(sc) => (&rest[..sc], &rest[sc..]),
                None => (rest, ""),
            },
        };
        NameAddr {
            uri: uri.trim(),
            tag: param(params, "tag"),
        }
    }

    pub fn user(&self) -> Option<&'a str> {
        uri_user(self.uri)
    }
}

/// The value of `;name=value` in a header-parameter list, names compared
/// without case, whitespace around `;` and `=` allowed.
pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    for p in params.split(';') {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (p.trim(), ""),
        };
        if n.eq_ignore_ascii_case(name) {
            return Some(v.trim_matches('"'));
        }
    }
    None
}

/// The user part of a `sip:`, `sips:` or `tel:` URI, as written (may be
/// %-escaped; see [`unescape`]). Dots, `+`, `#` and IPv6 hosts are fine:
/// `sip:john.doe@[2001:db8::1]:5060` gives `john.doe`.
pub fn uri_user(uri: &str) -> Option<&str> {
    let uri = uri.trim();
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    let rest = &uri[colon + 1..];
    if scheme.eq_ignore_ascii_case("tel") {
        let end = rest.find([';', '?']).unwrap_or(rest.len());
        return Some(&rest[..end]).filter(|u| !u.is_empty());
    }
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    // The userinfo ends at the first `@` (the user part may contain `;`,
    // `?`, `/`, `&` and `=`, RFC 3261 25.1 user-unreserved; an `@` anywhere
    // else must be escaped).
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    Some(user).filter(|u| !u.is_empty())
}

/// `%41` → `A` in a URI part (RFC 3261 19.1.4: escaped and unescaped forms
/// are equivalent).
pub fn unescape(s: &str) -> Cow<'_, str> {
    if s.contains('%') {
        percent_encoding::percent_decode_str(s).decode_utf8_lossy()
    } else {
        Cow::Borrowed(s)
    }
}

/// The long name of a compact header form (RFC 3261 7.3.3 and later RFCs).
pub fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'f' => "From",
        b't' => "To",
        b'v' => "Via",
        b'm' => "Contact",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'e' => "Content-Encoding",
        b'k' => "Supported",
        b's' => "Subject",
        b'o' => "Event",
        b'u' => "Allow-Events",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'x' => "Session-Expires",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'y' => "Identity",
        b'n' => "Identity-Info",
        _ => return None,
    })
}

/// Whether header `name` as written (long or compact) is `long`.
pub fn name_is(name: &str, long: &str) -> bool {
    name.eq_ignore_ascii_case(long) || expand_compact(name).is_some_and(|l| l == long)
}

/// One header line (possibly folded over several physical lines).
#[derive(Debug, Clone, Copy)]
struct RawHeader<'a> {
    name: &'a str,
    /// From after the colon (leading whitespace skipped) to the end of the
    /// last continuation line, line breaks included when folded.
    value: &'a str,
    folded: bool,
}

impl<'a> RawHeader<'a> {
    fn value(&self) -> Cow<'a, str> {
        if self.folded {
            Cow::Owned(unfold(self.value))
        } else {
            Cow::Borrowed(self.value)
        }
    }
}

/// Replaces each line break plus the whitespace around it by one space
/// (RFC 3261 7.3.1: folding is equivalent to a single SP).
fn unfold(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, line) in v.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i == 0 {
            out.push_str(line.trim_end());
        } else {
            let l = line.trim();
            if !l.is_empty() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(l);
            }
        }
    }
    out
}

/// Iterates the header lines of a header block, joining folded lines and
/// tolerating LF-only line ends and whitespace before the colon.
struct HeaderLines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for HeaderLines<'a> {
    type Item = Result<RawHeader<'a>, SipError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest.as_bytes();
        // The logical line ends at a newline not followed by SP/HT.
        let mut end = 0;
        let mut folded = false;
        loop {
            match memchr::memchr(b'\n', &bytes[end..]) {
                Some(i) => {
                    let nl = end + i;
                    if matches!(bytes.get(nl + 1), Some(b' ' | b'\t')) {
                        folded = true;
                        end = nl + 1;
                        continue;
                    }
                    end = nl + 1;
                    break;
                }
                None => {
                    end = bytes.len();
                    break;
                }
            }
        }
        let line = &self.rest[..end];
        self.rest = &self.rest[end..];
        let Some(colon) = line.find(':') else {
            return Some(Err(SipError::Header(clip(line))));
        };
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token) {
            return Some(Err(SipError::Header(clip(line))));
        }
        let value = line[colon + 1..]
            .trim_start_matches([' ', '\t'])
            .trim_end_matches(['\r', '\n', ' ', '\t']);
        Some(Ok(RawHeader {
            name,
            value,
            folded,
        }))
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn clip(s: &str) -> String {
    let s = s.trim_end();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One SIP message read from a buffer that may hold more after it.
#[derive(Debug, Clone)]
pub struct SipMessage<'a> {
    pub start: StartLine<'a>,
    headers: &'a str,
    pub call_id: Cow<'a, str>,
    from: Cow<'a, str>,
    to: Cow<'a, str>,
    cseq: Cow<'a, str>,
    pub cseq_num: u32,
    contact: Option<Cow<'a, str>>,
    /// The first Via header line (may hold several comma-separated values).
    via: Option<Cow<'a, str>>,
    pub content_type: Option<Cow<'a, str>>,
    pub event: Option<Cow<'a, str>>,
    pub content_length: Option<usize>,
    pub body: &'a [u8],
    /// Bytes of the buffer this message used (start line to end of body).
    pub len: usize,
    /// Content-Length promised more body than there was.
    pub body_truncated: bool,
}

impl<'a> SipMessage<'a> {
    /// Reads the message at the start of `buf`. The body ends at
    /// Content-Length when present (so a buffer may hold several messages),
    /// else at the end of the buffer.
    pub fn parse(buf: &'a [u8]) -> Result<SipMessage<'a>, SipError> {
        // Leading CRLFs are keep-alives (RFC 5626) or stream leftovers.
        let skip = buf
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(buf.len());
        let msg = &buf[skip..];
        let (head_end, body_start) = find_blank_line(msg).ok_or(SipError::Unterminated)?;
        // Headers must be text; a body may be anything.
        let head = std::str::from_utf8(&msg[..head_end])
            .map_err(|_| SipError::Header("header block is not UTF-8".into()))?;
        let (line, headers) = match head.find('\n') {
            Some(i) => (head[..i].trim_end_matches('\r'), &head[i + 1..]),
            None => (head.trim_end_matches('\r'), ""),
        };
        let start = parse_start_line(line)?;
        let mut call_id = None;
        let mut from = None;
        let mut to = None;
        let mut cseq = None;
        let mut contact = None;
        let mut via = None;
        let mut content_type = None;
        let mut event = None;
        let mut content_length = None;
        let mut n = 0;
        for h in (HeaderLines { rest: headers }) {
            let h = h?;
            n += 1;
            if n > MAX_HEADERS {
                return Err(SipError::TooManyHeaders);
            }
            let name = h.name;
            let slot = match name.len() {
                1 => match name.as_bytes()[0].to_ascii_lowercase() {
                    b'i' => &mut call_id,
                    b'f' => &mut from,
                    b't' => &mut to,
                    b'm' => &mut contact,
                    b'v' => &mut via,
                    b'c' => &mut content_type,
                    b'o' => &mut event,
                    b'l' => {
                        content_length = Some(parse_len(h.value)?);
                        continue;
                    }
                    _ => continue,
                },
                2 if name.eq_ignore_ascii_case("To") => &mut to,
                3 if name.eq_ignore_ascii_case("Via") => &mut via,
                4 if name.eq_ignore_ascii_case("From") => &mut from,
                4 if name.eq_ignore_ascii_case("CSeq") => &mut cseq,
                5 if name.eq_ignore_ascii_case("Event") => &mut event,
                7 if name.eq_ignore_ascii_case("Call-ID") => &mut call_id,
                7 if name.eq_ignore_ascii_case("Contact") => &mut contact,
                12 if name.eq_ignore_ascii_case("Content-Type") => &mut content_type,
                14 if name.eq_ignore_ascii_case("Content-Length") => {
                    content_length = Some(parse_len(h.value)?);
                    continue;
                }
                _ => continue,
            };
            // The first occurrence wins (a second From/To is an attack or a
            // bug; Contact may legitimately repeat).
            if slot.is_none() {
                *slot = Some(h.value());
            }
        }
        let call_id = call_id.ok_or(SipError::Missing("Call-ID"))?;
        if call_id.trim().is_empty() {
            return Err(SipError::Missing("Call-ID"));
        }
        let from = from.ok_or(SipError::Missing("From"))?;
        let to = to.ok_or(SipError::Missing("To"))?;
        let cseq = cseq.ok_or(SipError::Missing("CSeq"))?;
        let cseq_num = {
            let num = cseq.split_ascii_whitespace().next().unwrap_or("");
            num.parse::<u32>()
                .map_err(|_| SipError::CSeq(clip(&cseq)))?
        };
        // A request's CSeq names its own method (RFC 3261 8.1.1.5).
        match (cseq.split_ascii_whitespace().nth(1), &start) {
            (None, _) => return Err(SipError::CSeq(clip(&cseq))),
            (Some(m), StartLine::Request { method, .. }) if m != method.as_str() => {
                return Err(SipError::CSeq(format!(
                    "{} in a {} request",
                    clip(&cseq),
                    method.as_str()
                )));
            }
            _ => {}
        }
        let avail = &msg[body_start..];
        let (body, body_truncated) = match content_length {
            Some(cl) if cl <= avail.len() => (&avail[..cl], false),
            Some(_) => (avail, true),
            None => (avail, false),
        };
        Ok(SipMessage {
            start,
            headers,
            call_id,
            from,
            to,
            cseq,
            cseq_num,
            contact,
            via,
            content_type,
            event,
            content_length,
            body,
            len: skip + body_start + body.len(),
            body_truncated,
        })
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    pub fn request_user(&self) -> Option<&'a str> {
        self.request_uri().and_then(uri_user)
    }

    pub fn from(&self) -> NameAddr<'_> {
        NameAddr::parse(&self.from)
    }

    pub fn to(&self) -> NameAddr<'_> {
        NameAddr::parse(&self.to)
    }

    pub fn contact(&self) -> Option<NameAddr<'_>> {
        self.contact.as_deref().map(NameAddr::parse)
    }

    /// The `branch` parameter of the topmost Via: with CSeq, it names the
    /// transaction at the hop where the message was captured (RFC 3261
    /// 17.1.3, 17.2.3), so a response is matched to its request whatever
    /// address it was sent to.
    pub fn via_branch(&self) -> Option<&str> {
        let v = self.via.as_deref()?;
        let top = v.split(',').next()?;
        let (_, params) = top.split_once(';')?;
        param(params, "branch").filter(|b| !b.is_empty())
    }

    /// The method named in CSeq (what a response answers).
    pub fn cseq_method(&self) -> Method<'_> {
        Method::parse(self.cseq.split_ascii_whitespace().nth(1).unwrap_or(""))
    }

    /// The first value of any header by long or compact name, unfolded.
    /// Scans the header block again: meant for rare lookups (marker headers
    /// on INVITEs), not for every message.
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let long = expand_compact(name).unwrap_or(name);
        (HeaderLines { rest: self.headers })
            .filter_map(Result::ok)
            .find(|h| name_is(h.name, long))
            .map(|h| h.value())
    }

    /// Every header as (name as written, unfolded value), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + '_ {
        (HeaderLines { rest: self.headers })
            .filter_map(Result::ok)
            .map(|h| (h.name, h.value()))
    }

    /// An initial INVITE: one that opens a dialog (no To tag).
    pub fn is_initial_invite(&self) -> bool {
        self.method() == Some(Method::Invite) && self.to().tag.is_none()
    }
}

fn parse_len(v: &str) -> Result<usize, SipError> {
    v.trim()
        .parse::<usize>()
        .map_err(|_| SipError::Header(format!("Content-Length: {}", clip(v))))
}

/// Offsets of the end of the header block and of the body start, accepting
/// CRLFCRLF or bare LFLF (and mixes).
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\n', &b[i..]) {
        let nl = i + off;
        let next = nl + 1;
        if b.get(next) == Some(&b'\n') {
            return Some((nl, next + 1));
        }
        if b.get(next) == Some(&b'\r') && b.get(next + 1) == Some(&b'\n') {
            return Some((nl, next + 2));
        }
        i = next;
    }
    None
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, SipError> {
    let bad = || SipError::StartLine(clip(line));
    if let Some(rest) = line.strip_prefix("SIP/") {
        // SIP/2.0 SP code SP reason
        let mut it = rest.splitn(3, ' ');
        if it.next() != Some("2.0") {
            return Err(bad());
        }
        let code = it.next().ok_or_else(bad)?.trim();
        if code.len() != 3 {
            return Err(bad());
        }
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..700).contains(&code) {
            return Err(bad());
        }
        let reason = it.next().unwrap_or("").trim();
        return Ok(StartLine::Response { code, reason });
    }
    // Extra spaces between the parts are tolerated (RFC 4475 3.1.2.8 allows
    // a liberal reader to), spaces inside the URI are not (3.1.2.7).
    let mut it = line.split_ascii_whitespace();
    let method = it.next().ok_or_else(bad)?;
    let uri = it.next().ok_or_else(bad)?;
    let version = it.next().ok_or_else(bad)?;
    if it.next().is_some()
        || !version.eq_ignore_ascii_case("SIP/2.0")
        || !method.bytes().all(is_token)
        || uri.starts_with('<')
        || !uri.contains(':')
    {
        return Err(bad());
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri,
    })
}
