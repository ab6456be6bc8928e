//! SIP messages as real equipment and RFC 4475 send them, through the
//! hot-path reader and through `rsip` (raw, and after our normalisation).
//!
//! Each of `rsip` 0.4's known gaps (protocols.md 5.1) has a test here that
//! shows the gap on the raw message and shows it handled.

use acdmon::sources::sip::full;
use acdmon::sources::sip::message::{Method, SipMessage, StartLine, unescape, uri_user};
use rsip::prelude::*;

/// Writes `\n` line ends as `\r\n` (the fixtures are easier to read with
/// plain newlines; folded lines keep their leading whitespace).
fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn data(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/data/sip/messages/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    crlf(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
}

#[test]
fn an_asterisk_invite_with_sdp_reads_fully() {
    let b = data("asterisk_invite.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(
        m.start,
        StartLine::Request {
            method: Method::Invite,
            uri: "sip:8001@10.0.0.5:5060"
        }
    );
    assert_eq!(m.request_user(), Some("8001"));
    assert_eq!(m.call_id, "3c26700757c9-7dj0q1gzwkbn@10.0.0.20");
    assert_eq!(m.from().user(), Some("+4930123456"));
    assert_eq!(m.from().tag, Some("as58f4201b"));
    assert_eq!(m.to().tag, None);
    assert_eq!(m.cseq_num, 102);
    assert_eq!(m.cseq_method(), Method::Invite);
    assert!(m.is_initial_invite());
    assert_eq!(m.contact().unwrap().user(), Some("asterisk"));
    assert_eq!(m.body.len(), m.content_length.unwrap());
    assert!(m.body.starts_with(b"v=0"));
    assert_eq!(m.header("X-Queue").as_deref(), Some("sales"));
    assert_eq!(m.header("x-queue").as_deref(), Some("sales"));
    // rsip reads this one as it is.
    let r = full::parse_raw(&b).unwrap();
    assert_eq!(
        r.call_id_header().unwrap().value(),
        "3c26700757c9-7dj0q1gzwkbn@10.0.0.20"
    );
    assert_eq!(full::parse(&b).unwrap(), r);
}

#[test]
fn compact_header_forms_are_read_and_rsip_needs_them_expanded() {
    let b = data("compact_forms.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(
        m.call_id,
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com"
    );
    assert_eq!(m.from().tag, Some("76341"));
    assert_eq!(m.to().user(), Some("8002"));
    assert_eq!(m.contact().unwrap().user(), Some("alice"));
    assert_eq!(m.content_length, Some(0));
    assert_eq!(m.content_type.as_deref(), Some("application/sdp"));
    assert_eq!(m.header("Call-ID"), m.header("i"));
    // The gap: rsip keeps `i:` as Header::Other, so it finds no Call-ID.
    let raw = full::parse_raw(&b).unwrap();
    assert!(
        raw.call_id_header().is_err(),
        "rsip learned compact forms: drop the expansion"
    );
    assert!(raw.via_header().is_err());
    // Handled: normalised, rsip finds every header.
    let n = full::parse(&b).unwrap();
    assert_eq!(
        n.call_id_header().unwrap().value(),
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com"
    );
    assert!(n.via_header().is_ok());
    assert_eq!(
        n.from_header().unwrap().tag().unwrap().unwrap().value(),
        "76341"
    );
    assert!(n.to_header().is_ok());
    assert!(n.contact_header().is_ok());
}

#[test]
fn folded_header_lines_are_joined_and_rsip_needs_them_unfolded() {
    let b = data("folded.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.to().user(), Some("8001"));
    assert_eq!(m.from().tag, Some("9fxced76sl"));
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("I know you're there, pick up the phone and talk to me!")
    );
    assert_eq!(m.cseq_num, 1);
    assert!(
        full::parse_raw(&b).is_err(),
        "rsip learned folding: drop the unfolding"
    );
    let n = full::parse(&b).unwrap();
    assert_eq!(
        n.from_header().unwrap().tag().unwrap().unwrap().value(),
        "9fxced76sl"
    );
}

#[test]
fn a_space_before_the_colon_is_tolerated() {
    let b = data("space_before_colon.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.call_id, "space-colon-1@192.0.2.5");
    assert_eq!(m.cseq_num, 4711);
    assert_eq!(m.from().tag, Some("314"));
    assert_eq!(m.to().tag, Some("159"));
    assert!(
        full::parse_raw(&b).is_err(),
        "rsip learned `Name :`: drop the fix"
    );
    let n = full::parse(&b).unwrap();
    assert_eq!(
        n.call_id_header().unwrap().value(),
        "space-colon-1@192.0.2.5"
    );
}

#[test]
fn a_dot_in_the_user_part_is_read_and_escaped_for_rsip() {
    let b = data("dotted_user.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.request_user(), Some("john.doe"));
    assert_eq!(m.from().user(), Some("jane.roe"));
    assert_eq!(m.to().user(), Some("john.doe"));
    // rsip issue #50: `sip:john.doe@host` is misread: no user, and the
    // host is `john.doe@example.com`. Silent, which is worse than an error.
    let raw = full::parse_raw(&b).unwrap();
    let rsip::SipMessage::Request(raw) = raw else {
        panic!("not a request")
    };
    assert!(
        raw.uri.auth.is_none(),
        "rsip fixed issue #50: drop the escaping"
    );
    assert_eq!(
        raw.uri.host_with_port.host.to_string(),
        "john.doe@example.com"
    );
    let n = full::parse(&b).unwrap();
    let rsip::SipMessage::Request(req) = n else {
        panic!("not a request")
    };
    let user = req.uri.auth.as_ref().unwrap().user.clone();
    assert_eq!(user, "john%2Edoe");
    assert_eq!(unescape(&user), "john.doe");
    let to = req.to_header().unwrap().typed().unwrap();
    assert_eq!(unescape(&to.uri.auth.unwrap().user), "john.doe");
}

#[test]
fn content_length_frames_messages_in_a_stream_payload() {
    // Two messages back to back, as a TCP capture may deliver them.
    let mut b = data("asterisk_invite.sip");
    b.extend_from_slice(&data("ringing_180.sip"));
    let first = SipMessage::parse(&b).unwrap();
    assert!(first.body.ends_with(b"a=sendrecv\r\n"));
    let second = SipMessage::parse(&b[first.len..]).unwrap();
    assert_eq!(second.status(), Some(180));
    assert_eq!(first.len + second.len, b.len());
    // The gap: rsip takes everything after the blank line as the body.
    let raw = full::parse_raw(&b).unwrap();
    assert!(raw.body().len() > first.body.len());
    // Handled: normalisation cuts the body at Content-Length.
    assert_eq!(full::parse(&b).unwrap().body(), first.body);
}

#[test]
fn ipv6_hosts_and_via() {
    let b = data("ipv6_invite.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.request_user(), Some("1001"));
    assert_eq!(m.from().user(), Some("alice"));
    assert_eq!(m.contact().unwrap().user(), Some("alice"));
    assert_eq!(uri_user("sip:[2001:db8::10]:5060"), None);
    assert_eq!(uri_user("sips:bob:secret@[2001:db8::10]"), Some("bob"));
    // rsip cannot read IPv6 literal hosts (it splits host and port at the
    // first colon); normalisation puts a placeholder name in their place.
    assert!(
        full::parse_raw(&b).is_err(),
        "rsip reads IPv6 now: drop the placeholder"
    );
    let n = full::parse(&b).unwrap();
    let to = n.to_header().unwrap().typed().unwrap();
    assert_eq!(to.uri.auth.unwrap().user, "1001");
    assert_eq!(
        to.uri.host_with_port.host.to_string(),
        "v6-2001-db8--10.invalid"
    );
}

#[test]
fn uri_user_parts() {
    assert_eq!(uri_user("sip:8001@pbx;user=phone"), Some("8001"));
    assert_eq!(
        uri_user("tel:+1-201-555-0123;phone-context=x"),
        Some("+1-201-555-0123")
    );
    assert_eq!(uri_user("SIP:Alice@Example.com"), Some("Alice"));
    assert_eq!(uri_user("sip:example.com;transport=tcp"), None);
    assert_eq!(uri_user("mailto:a@b"), None);
    // RFC 4475 3.1.1.9: a `;` in the user part.
    assert_eq!(
        uri_user("sip:user;par=u%40example.net@example.com"),
        Some("user;par=u%40example.net")
    );
    // RFC 4475 3.1.1.3: escapes in the user part.
    assert_eq!(
        unescape(uri_user("sip:sips%3Auser%40example.com@example.net").unwrap()),
        "sips:user@example.com"
    );
}

#[test]
fn lf_only_line_ends_and_leading_keepalive_crlf() {
    let mut b = b"\r\n\r\n".to_vec();
    b.extend_from_slice(b"BYE sip:a@b SIP/2.0\nCall-ID: x\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCSeq: 2 BYE\n\n");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.method(), Some(Method::Bye));
    assert_eq!(m.len, b.len());
}

// --- RFC 4475 torture messages that apply to a reader of mirrored SIP ---

#[test]
fn rfc4475_3_1_1_1_short_tortuous_invite() {
    let b = data("rfc4475_wsinv.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.request_user(), Some("vivekg"));
    assert_eq!(m.call_id, "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.to().tag, Some("1918181833n"));
    assert_eq!(m.from().tag, Some("98asjd8"));
    assert_eq!(m.from().user(), Some("jdrosen"));
    assert_eq!(m.cseq_num, 9);
    assert_eq!(m.cseq_method(), Method::Invite);
    assert_eq!(m.content_length, Some(150));
    assert_eq!(m.body.len(), 150);
    assert_eq!(m.contact().unwrap().user(), Some("jdrosen"));
    assert_eq!(
        m.header("NewFangledHeader").as_deref(),
        Some("newfangled value continued newfangled value")
    );
    assert!(full::parse_raw(&b).is_err());
    // Normalised it still carries `Via  : SIP  /   2.0 /UDP` with inner
    // spaces, which rsip's Via grammar refuses when typed, but the message
    // itself parses.
    assert!(full::parse(&b).is_ok());
}

#[test]
fn rfc4475_3_1_1_2_wide_range_of_valid_characters() {
    let b = data("rfc4475_intmeth.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(
        m.method(),
        Some(Method::Other("!interesting-Method0123456789_*+`.%indeed'~"))
    );
    assert_eq!(m.call_id, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    assert_eq!(
        m.to().user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(m.from().tag, Some("_token~1'+`*%!-."));
    assert_eq!(m.cseq_num, 139122385);
}

#[test]
fn rfc4475_3_1_1_6_no_space_between_display_name_and_uri() {
    let b = data("rfc4475_lwsdisp.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.from().user(), Some("caller"));
    assert_eq!(m.from().tag, Some("323"));
}

#[test]
fn rfc4475_3_1_1_8_extra_octets_after_a_datagram_message() {
    let b = data("rfc4475_dblreq.sip");
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.body.len(), 0);
    assert!(m.len < b.len());
}

#[test]
fn rfc4475_3_1_1_12_and_13_reason_phrases() {
    let b = crlf(
        "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое\nVia: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\nCall-ID: unreason.1234ksdfak3j2erwedfsASdf\nCSeq: 35 INVITE\nFrom: sip:user@example.com;tag=11141343\nTo: sip:user@example.edu;tag=2229\nContent-Length: 0\n\n",
    );
    let m = SipMessage::parse(&b).unwrap();
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.from().tag, Some("11141343"));
    let b = crlf(
        "SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nCall-ID: noreason.asndj203insdf99223ndf\nCSeq: 35 INVITE\nFrom: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0\n\n",
    );
    assert_eq!(SipMessage::parse(&b).unwrap().status(), Some(100));
}

#[test]
fn rfc4475_invalid_messages_are_errors_not_panics() {
    let base = "Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK1\nCall-ID: bad@x\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nMax-Forwards: 70\n";
    let cases: Vec<(&str, String)> = vec![
        // 3.1.2.3 negative Content-Length
        ("ncl", format!("INVITE sip:u@example.com SIP/2.0\n{base}CSeq: 1 INVITE\nContent-Length: -999\n\n")),
        // 3.1.2.4 CSeq beyond 2**32-1
        ("scalarlg", format!("REGISTER sip:example.com SIP/2.0\n{base}CSeq: 36893488147419103232 REGISTER\n\n")),
        // 3.1.2.6 <> around the Request-URI
        ("ltgtruri", format!("INVITE <sip:user@example.com> SIP/2.0\n{base}CSeq: 1 INVITE\n\n")),
        // 3.1.2.7 LWS inside the Request-URI
        ("lwsruri", format!("INVITE sip:user@example.com; lr SIP/2.0\n{base}CSeq: 1 INVITE\n\n")),
        // 3.1.2.15 unknown protocol version
        ("badvers", format!("OPTIONS sip:t.watson@example.org SIP/7.0\n{base}CSeq: 1 OPTIONS\n\n")),
        // 3.1.2.16 CSeq method does not match the request
        ("mismatch01", format!("OPTIONS sip:user@example.com SIP/2.0\n{base}CSeq: 1 INVITE\n\n")),
        // 3.1.2.18 response code out of range
        ("bigcode", format!("SIP/2.0 4294967301 better not break the receiver\n{base}CSeq: 1 INVITE\n\n")),
        // 3.3.1 missing required headers
        ("insuf", "INVITE sip:user@example.com SIP/2.0\nCSeq: 193942 INVITE\nVia: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\n\n".to_string()),
        // no blank line at all
        ("unterminated", format!("INVITE sip:u@example.com SIP/2.0\n{base}CSeq: 1 INVITE\n")),
        // a header line without a colon
        ("nocolon", format!("INVITE sip:u@example.com SIP/2.0\n{base}CSeq: 1 INVITE\nthis is not a header\n\n")),
    ];
    for (name, text) in cases {
        let b = crlf(&text);
        let r = SipMessage::parse(&b);
        assert!(r.is_err(), "{name} should be refused, got {r:?}");
    }
    // 3.1.2.2: Content-Length larger than the message: read, flagged.
    let b = crlf(
        "INVITE sip:user@example.com SIP/2.0\nCall-ID: clerr@x\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCSeq: 1 INVITE\nContent-Length: 9999\n\nv=0\n",
    );
    let m = SipMessage::parse(&b).unwrap();
    assert!(m.body_truncated);
    // 3.1.2.8: extra spaces between start-line parts are tolerated.
    let b = crlf(
        "INVITE  sip:user@example.com  SIP/2.0\nCall-ID: lwsstart@x\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCSeq: 1 INVITE\n\n",
    );
    assert!(SipMessage::parse(&b).is_ok());
}

#[test]
fn every_fixture_survives_every_truncation() {
    for f in [
        "asterisk_invite.sip",
        "compact_forms.sip",
        "folded.sip",
        "rfc4475_wsinv.sip",
        "rfc4475_intmeth.sip",
        "ipv6_invite.sip",
    ] {
        let b = data(f);
        for n in 0..b.len() {
            let _ = SipMessage::parse(&b[..n]);
            let _ = full::parse(&b[..n]);
        }
    }
}
