//! The full, validating parse with `rsip` (0.4), for the few places that
//! want every header typed: dialog-info NOTIFYs, and every message when the
//! source is configured with `full_parse = true`.
//!
//! `rsip` is unmaintained since 2022 and refuses messages that real
//! equipment sends (protocols.md 5.1). Rather than patch it, we normalise a
//! message into the subset it accepts before handing it over:
//! - compact header names (`i:`, `v:`, `f:`, `t:`, `m:`, `l:` …) become long
//!   names (rsip puts compact forms in `Header::Other`, so its typed
//!   accessors would not find Call-ID or Via);
//! - folded header lines are joined with one space;
//! - whitespace between a header name and its colon is dropped;
//! - a `.` in the user part of a `sip:`/`sips:` URI is written `%2E` (rsip's
//!   userinfo tokenizer stops at `.`, upstream issue #50; RFC 3261 19.1.4
//!   makes the escaped form equivalent, and [`super::message::unescape`]
//!   turns it back);
//! - the request line gets single spaces;
//! - whitespace around `;` and `=` in header parameters is dropped (rsip's
//!   typed From/To/Contact refuse `<sip:a@b> ;tag = x`, which folding and
//!   RFC 4475 produce);
//! - an IPv6 literal host (`[2001:db8::1]`) is written as a placeholder
//!   name (`v6-2001-db8--1.invalid`): rsip splits host and port at the
//!   first colon and cannot read IPv6 literals at all (found here, not in
//!   its issue tracker). acdmon never reads hosts from rsip, so nothing
//!   is lost;
//! - the body is cut at Content-Length (rsip takes everything after the
//!   blank line, so a stream read or trailing bytes would end up in it).
//!
//! The normalised text is built from what [`SipMessage`] read, so both
//! parsers agree on what the message is.

use super::message::{SipError, SipMessage, StartLine, expand_compact};

/// The message rewritten into the form `rsip` parses.
pub fn normalize(msg: &SipMessage<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(msg.len + 64);
    match msg.start {
        StartLine::Request { method, uri } => {
            out.push_str(method.as_str());
            out.push(' ');
            escape_uri_users(&rewrite_ipv6(uri), &mut out);
            out.push_str(" SIP/2.0\r\n");
        }
        StartLine::Response { code, reason } => {
            out.push_str("SIP/2.0 ");
            out.push_str(&code.to_string());
            out.push(' ');
            out.push_str(reason);
            out.push_str("\r\n");
        }
    }
    for (name, value) in msg.headers() {
        let name = expand_compact(name).unwrap_or(name);
        out.push_str(name);
        out.push_str(": ");
        if name.eq_ignore_ascii_case("Content-Length") {
            out.push_str(&msg.body.len().to_string());
        } else if is_free_text(name) {
            out.push_str(&value);
        } else {
            escape_uri_users(&tidy_params(&rewrite_ipv6(&value)), &mut out);
        }
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(msg.body);
    bytes
}

/// Headers whose value is prose, left as written.
fn is_free_text(name: &str) -> bool {
    [
        "Subject",
        "User-Agent",
        "Server",
        "Organization",
        "Warning",
        "Date",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

/// Drops whitespace around `;` and `=` outside quoted strings.
fn tidy_params(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut in_quotes = false;
    let mut escaped = false;
    let mut pending_ws = String::new();
    for c in v.chars() {
        if in_quotes {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' => pending_ws.push(c),
            ';' | '=' => {
                pending_ws.clear();
                out.push(c);
                // Whitespace after the separator is dropped too.
                pending_ws.push('\0');
            }
            _ => {
                if pending_ws.starts_with('\0') {
                    pending_ws.clear();
                }
                out.push_str(&pending_ws);
                pending_ws.clear();
                if c == '"' {
                    in_quotes = true;
                }
                out.push(c);
            }
        }
    }
    if !pending_ws.starts_with('\0') {
        out.push_str(&pending_ws);
    }
    out
}

/// Replaces each bracketed IPv6 literal by a placeholder host name.
fn rewrite_ipv6(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains('[') {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 16);
    let mut rest = v;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close)
                if close > 1
                    && after[..close].contains(':')
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') =>
            {
                out.push_str(&rest[..open]);
                out.push_str("v6-");
                out.push_str(&after[..close].replace([':', '.'], "-"));
                out.push_str(".invalid");
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Copies `s`, writing `.` as `%2E` inside the userinfo of every
/// `sip:`/`sips:` URI.
fn escape_uri_users(s: &str, out: &mut String) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let scheme_len = if starts_with_ci(&b[i..], b"sips:") {
            5
        } else if starts_with_ci(&b[i..], b"sip:") {
            4
        } else {
            i += 1;
            continue;
        };
        // Only at a word start: not the tail of e.g. "xsip:".
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let u0 = i + scheme_len;
        let end = b[u0..]
            .iter()
            .position(|c| matches!(c, b'@' | b';' | b'?' | b'>' | b' ' | b'\t' | b',' | b'"'))
            .map(|p| u0 + p);
        match end {
            Some(at) if b[at] == b'@' => {
                out.push_str(&s[copied..u0]);
                for ch in s[u0..at].chars() {
                    if ch == '.' {
                        out.push_str("%2E");
                    } else {
                        out.push(ch);
                    }
                }
                copied = at;
                i = at;
            }
            _ => i = u0,
        }
    }
    out.push_str(&s[copied..]);
}

fn starts_with_ci(b: &[u8], p: &[u8]) -> bool {
    b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p)
}

/// Reads the message with our reader, normalises it and parses it with
/// `rsip`. An error means the message is not valid SIP as far as `rsip`
/// knows, even after normalisation.
pub fn parse(buf: &[u8]) -> Result<rsip::SipMessage, SipError> {
    let msg = SipMessage::parse(buf)?;
    parse_read(&msg)
}

/// The `rsip` parse of a message already read.
pub fn parse_read(msg: &SipMessage<'_>) -> Result<rsip::SipMessage, SipError> {
    let norm = normalize(msg);
    rsip::SipMessage::try_from(norm.as_slice()).map_err(|e| {
        let mut s = e.to_string();
        if s.len() > 120 {
            let cut = (0..=120)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0);
            s.truncate(cut);
        }
        SipError::Full(s)
    })
}

/// `rsip` on the raw bytes, without normalisation: what using it directly
/// would give. For tests and the benchmark.
pub fn parse_raw(buf: &[u8]) -> Result<rsip::SipMessage, String> {
    rsip::SipMessage::try_from(buf).map_err(|e| e.to_string())
}
