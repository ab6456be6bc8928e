use super::*;

const CALLER: &str = "192.0.2.10:5060";
const PROXY: &str = "192.0.2.1:5060";
const AGENT1: &str = "192.0.2.21:5060";
const AGENT2: &str = "192.0.2.22:5060";

fn cap(ts: i64, src: &str, dst: &str) -> Capture {
    Capture {
        ts: Ts(ts),
        src: Some(src.parse().unwrap()),
        dst: Some(dst.parse().unwrap()),
    }
}

fn req(method: &str, cseq: u32, to_tag: Option<&str>, from_tag: &str) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:8001@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.com>;tag={from_tag}\r\n\
         To: <sip:8001@example.com>{to_tag}\r\n\
         Call-ID: leg1@example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn resp(code: u16, cseq: u32, method: &str, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "SIP/2.0 {code} Whatever\r\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:8001@example.com>{to_tag}\r\n\
         Call-ID: leg1@example.com\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:1001@192.0.2.21>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

struct Run {
    t: DialogTracker,
    out: Vec<LegEvent>,
}

impl Run {
    fn new() -> Self {
        Run {
            t: DialogTracker::new(DialogLimits::default()),
            out: Vec::new(),
        }
    }
    fn feed(&mut self, text: &str, c: Capture) -> Seen {
        let m = SipMessage::parse(text.as_bytes()).unwrap();
        let s = self.t.handle_message(&m, &c, &mut self.out);
        if s == Seen::NewInvite {
            assert!(self.t.start(&m, &c));
        }
        s
    }
    fn kinds(&self) -> Vec<String> {
        self.out
            .iter()
            .map(|e| match e {
                LegEvent::Ringing { ts, code, .. } => format!("ringing {code} @{}", ts.0),
                LegEvent::Answered {
                    ts, contact_user, ..
                } => {
                    format!(
                        "answered {} @{}",
                        contact_user.as_deref().unwrap_or("-"),
                        ts.0
                    )
                }
                LegEvent::Failed {
                    ts,
                    code,
                    cancelled,
                    ..
                } => {
                    format!("failed {code} cancelled={cancelled} @{}", ts.0)
                }
                LegEvent::Ended {
                    ts,
                    by_originator,
                    answered,
                    ..
                } => {
                    format!(
                        "ended by_originator={by_originator} answered={answered} @{}",
                        ts.0
                    )
                }
                LegEvent::Expired { ts, answered, .. } => {
                    format!("expired answered={answered} @{}", ts.0)
                }
                LegEvent::Branch {
                    ts, user, moment, ..
                } => format!("branch {user} {moment:?} @{}", ts.0),
            })
            .collect()
    }
}

#[test]
fn an_answered_call_through_a_mirroring_proxy_reports_each_step_once() {
    let mut r = Run::new();
    // Every message shows up twice: received by the proxy, then sent on.
    assert_eq!(
        r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY)),
        Seen::NewInvite
    );
    assert_eq!(
        r.feed(&req("INVITE", 1, None, "a1"), cap(1, PROXY, AGENT1)),
        Seen::Tracked
    );
    r.feed(&resp(100, 1, "INVITE", None), cap(2, PROXY, CALLER));
    r.feed(&resp(180, 1, "INVITE", Some("b1")), cap(100, AGENT1, PROXY));
    r.feed(&resp(180, 1, "INVITE", Some("b1")), cap(101, PROXY, CALLER));
    // The caller retransmits the INVITE (a lost 100); nothing new.
    r.feed(&req("INVITE", 1, None, "a1"), cap(500, CALLER, PROXY));
    r.feed(
        &resp(200, 1, "INVITE", Some("b1")),
        cap(4000, AGENT1, PROXY),
    );
    r.feed(
        &resp(200, 1, "INVITE", Some("b1")),
        cap(4001, PROXY, CALLER),
    );
    // 2xx retransmitted until the ACK arrives.
    r.feed(
        &resp(200, 1, "INVITE", Some("b1")),
        cap(4500, PROXY, CALLER),
    );
    r.feed(&req("ACK", 1, Some("b1"), "a1"), cap(4600, CALLER, PROXY));
    r.feed(&req("BYE", 2, Some("b1"), "a1"), cap(60_000, CALLER, PROXY));
    r.feed(&req("BYE", 2, Some("b1"), "a1"), cap(60_001, PROXY, AGENT1));
    r.feed(&resp(200, 2, "BYE", Some("b1")), cap(60_050, AGENT1, PROXY));
    assert_eq!(
        r.kinds(),
        vec![
            "ringing 180 @100",
            "answered 1001 @4000",
            "ended by_originator=true answered=true @60000"
        ]
    );
    assert!(r.t.stats.repeats >= 8, "{:?}", r.t.stats);
}

#[test]
fn a_cancel_is_dated_when_the_caller_gave_up_not_when_487_came_back() {
    let mut r = Run::new();
    r.feed(&req("INVITE", 7, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(&resp(183, 7, "INVITE", Some("q1")), cap(50, PROXY, CALLER));
    r.feed(&req("CANCEL", 7, None, "a1"), cap(30_000, CALLER, PROXY));
    r.feed(
        &resp(200, 7, "CANCEL", Some("q1")),
        cap(30_002, PROXY, CALLER),
    );
    r.feed(
        &resp(487, 7, "INVITE", Some("q1")),
        cap(30_040, PROXY, CALLER),
    );
    r.feed(
        &resp(487, 7, "INVITE", Some("q1")),
        cap(30_540, PROXY, CALLER),
    );
    r.feed(&req("ACK", 7, Some("q1"), "a1"), cap(30_041, CALLER, PROXY));
    assert_eq!(
        r.kinds(),
        vec!["ringing 183 @50", "failed 487 cancelled=true @30000"]
    );
}

/// The message as forwarded by the proxy on its own branch: the
/// proxy's Via on top (a branch's responses carry it back).
fn via(text: &str, branch: &str) -> String {
    text.replace(
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n",
        &format!(
            "Via: SIP/2.0/UDP 192.0.2.1;branch={branch}\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        ),
    )
}

/// The INVITE as a forking proxy sends it to `user`.
fn fork(user: &str, branch: &str) -> String {
    via(&req("INVITE", 1, None, "a1"), branch)
        .replace("INVITE sip:8001@", &format!("INVITE sip:{user}@"))
}

#[test]
fn a_forked_branch_failing_does_not_end_the_leg_but_the_final_to_the_caller_does() {
    let mut r = Run::new();
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(&fork("1001", "z9hG4bKp1"), cap(1, PROXY, AGENT1));
    r.feed(&fork("1002", "z9hG4bKp2"), cap(1, PROXY, AGENT2));
    r.feed(
        &via(&resp(180, 1, "INVITE", Some("x1")), "z9hG4bKp1"),
        cap(100, AGENT1, PROXY),
    );
    r.feed(
        &via(&resp(180, 1, "INVITE", Some("x2")), "z9hG4bKp2"),
        cap(120, AGENT2, PROXY),
    );
    // Agent 2 is busy: its branch fails, the caller is not told.
    r.feed(
        &via(&resp(486, 1, "INVITE", Some("x2")), "z9hG4bKp2"),
        cap(2000, AGENT2, PROXY),
    );
    assert_eq!(r.t.stats.branch_finals, 1);
    // Agent 1 answers.
    r.feed(
        &via(&resp(200, 1, "INVITE", Some("x1")), "z9hG4bKp1"),
        cap(3000, AGENT1, PROXY),
    );
    assert_eq!(
        r.kinds(),
        vec![
            "branch 1001 Offered @1",
            "branch 1002 Offered @1",
            "branch 1001 Ringing @100",
            "ringing 180 @100",
            "branch 1002 Ringing @120",
            "branch 1002 Failed { code: 486 } @2000",
            "branch 1001 Answered @3000",
            "answered 1001 @3000"
        ]
    );

    // Another call where every branch fails: only the proxy's final
    // response to the caller ends it.
    let mut r = Run::new();
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(
        &via(&resp(486, 1, "INVITE", Some("x2")), "z9hG4bKp2"),
        cap(2000, AGENT2, PROXY),
    );
    r.feed(
        &via(&resp(480, 1, "INVITE", Some("x1")), "z9hG4bKp1"),
        cap(2500, AGENT1, PROXY),
    );
    assert!(r.kinds().is_empty());
    r.feed(
        &resp(486, 1, "INVITE", Some("p1")),
        cap(2501, PROXY, CALLER),
    );
    assert_eq!(r.kinds(), vec!["failed 486 cancelled=false @2501"]);
}

#[test]
fn a_digest_challenge_is_pending_until_the_invite_comes_again() {
    let mut r = Run::new();
    // The proxy challenges the first INVITE; the phone ACKs the 407 and
    // sends the INVITE again (same Call-ID, CSeq 2, a new branch).
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(&resp(407, 1, "INVITE", Some("k")), cap(2, PROXY, CALLER));
    r.feed(&req("ACK", 1, Some("k"), "a1"), cap(3, CALLER, PROXY));
    // A retransmitted 407 changes nothing.
    r.feed(&resp(407, 1, "INVITE", Some("k")), cap(400, PROXY, CALLER));
    assert!(r.kinds().is_empty(), "{:?}", r.kinds());
    let again = req("INVITE", 2, None, "a1").replace("branch=z9hG4bK1", "branch=z9hG4bK2");
    assert_eq!(r.feed(&again, cap(10, CALLER, PROXY)), Seen::Tracked);
    let on2 = |t: String| t.replace("branch=z9hG4bK1", "branch=z9hG4bK2");
    r.feed(
        &on2(resp(180, 2, "INVITE", Some("b"))),
        cap(50, PROXY, CALLER),
    );
    r.feed(
        &on2(resp(200, 2, "INVITE", Some("b"))),
        cap(2000, PROXY, CALLER),
    );
    r.feed(&req("BYE", 3, Some("b"), "a1"), cap(9000, CALLER, PROXY));
    assert_eq!(
        r.kinds(),
        vec![
            "ringing 180 @50",
            "answered 1001 @2000",
            "ended by_originator=true answered=true @9000"
        ]
    );
    assert_eq!(r.t.stats.challenges, 1);

    // A challenge the phone never answers fails the leg after the
    // linger time.
    let mut r = Run::new();
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(&resp(401, 1, "INVITE", Some("k")), cap(2, PROXY, CALLER));
    r.t.handle_timeout(Ts(20_000), &mut r.out);
    assert!(r.kinds().is_empty());
    r.t.handle_timeout(Ts(40_000), &mut r.out);
    assert_eq!(r.kinds(), vec!["failed 401 cancelled=false @40000"]);
    assert!(r.t.is_empty());
}

#[test]
fn a_response_sent_to_the_via_port_without_rport_ends_the_callers_transaction() {
    // The phone sends from port 5062 but its Via says 5060 and asks for
    // no rport: the proxy answers to 5060 (RFC 3261 18.2.2).
    let mut r = Run::new();
    let phone_src = "192.0.2.10:5062";
    let via_port = "192.0.2.10:5060";
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, phone_src, PROXY));
    r.feed(&req("INVITE", 1, None, "a1"), cap(1, PROXY, AGENT1));
    // The platform refuses; the proxy relays the refusal to the Via port.
    r.feed(
        &via(&resp(486, 1, "INVITE", Some("x")), "z9hG4bKp1"),
        cap(40, AGENT1, PROXY),
    );
    assert!(r.kinds().is_empty(), "the platform's answer to the proxy");
    r.feed(&resp(486, 1, "INVITE", Some("x")), cap(41, PROXY, via_port));
    assert_eq!(r.kinds(), vec!["failed 486 cancelled=false @41"]);
}

#[test]
fn a_200_that_races_a_cancel_wins() {
    let mut r = Run::new();
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(&req("CANCEL", 1, None, "a1"), cap(1000, CALLER, PROXY));
    r.feed(&resp(200, 1, "INVITE", Some("b")), cap(1001, PROXY, CALLER));
    r.feed(&resp(487, 1, "INVITE", Some("b")), cap(1002, PROXY, CALLER));
    r.feed(&req("BYE", 2, Some("b"), "a1"), cap(1100, CALLER, PROXY));
    assert_eq!(
        r.kinds(),
        vec![
            "answered 1001 @1001",
            "ended by_originator=true answered=true @1100"
        ]
    );
}

#[test]
fn callee_hangup_and_reinvite_do_not_confuse_the_leg() {
    let mut r = Run::new();
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(&resp(200, 1, "INVITE", Some("b")), cap(10, PROXY, CALLER));
    // A re-INVITE (hold) and its 200 on CSeq 2: not an answer.
    r.feed(&req("INVITE", 2, Some("b"), "a1"), cap(20, CALLER, PROXY));
    r.feed(&resp(200, 2, "INVITE", Some("b")), cap(21, PROXY, CALLER));
    // The callee hangs up: its BYE carries the callee's tag in From.
    let bye = "BYE sip:alice@192.0.2.10 SIP/2.0\r\nFrom: <sip:8001@example.com>;tag=b\r\n\
               To: <sip:alice@example.com>;tag=a1\r\nCall-ID: leg1@example.com\r\nCSeq: 1 BYE\r\n\r\n";
    r.feed(bye, cap(30, PROXY, CALLER));
    assert_eq!(
        r.kinds(),
        vec![
            "answered 1001 @10",
            "ended by_originator=false answered=true @30"
        ]
    );
}

#[test]
fn legs_that_never_end_expire_on_event_time_and_memory_is_bounded() {
    let mut t = DialogTracker::new(DialogLimits {
        max_legs: 2,
        unanswered_timeout_ms: 10_000,
        answered_timeout_ms: 20_000,
        linger_ms: 1_000,
    });
    let mut out = Vec::new();
    let mk = |id: &str| req("INVITE", 1, None, "a1").replace("leg1@example.com", id);
    for (i, id) in ["x", "y", "z"].iter().enumerate() {
        let text = mk(id);
        let m = SipMessage::parse(text.as_bytes()).unwrap();
        let c = cap(i as i64, CALLER, PROXY);
        assert_eq!(t.handle_message(&m, &c, &mut out), Seen::NewInvite);
        assert_eq!(t.start(&m, &c), i < 2);
    }
    assert_eq!(t.stats.refused, 1);
    let ok = resp(200, 1, "INVITE", Some("b")).replace("leg1@example.com", "y");
    let m = SipMessage::parse(ok.as_bytes()).unwrap();
    t.handle_message(&m, &cap(5, PROXY, CALLER), &mut out);
    out.clear();
    t.handle_timeout(Ts(9_000), &mut out);
    assert!(out.is_empty());
    t.handle_timeout(Ts(10_001), &mut out);
    assert_eq!(
        out,
        vec![LegEvent::Expired {
            call_id: "x".into(),
            ts: Ts(10_001),
            answered: false
        }]
    );
    out.clear();
    t.handle_timeout(Ts(20_005), &mut out);
    assert_eq!(
        out,
        vec![LegEvent::Expired {
            call_id: "y".into(),
            ts: Ts(20_005),
            answered: true
        }]
    );
    assert!(t.is_empty());
}

#[test]
fn ended_legs_linger_then_go() {
    let mut r = Run::new();
    r.feed(&req("INVITE", 1, None, "a1"), cap(0, CALLER, PROXY));
    r.feed(&resp(486, 1, "INVITE", Some("b")), cap(10, PROXY, CALLER));
    // A late repeat of the INVITE does not open a new leg.
    assert_eq!(
        r.feed(&req("INVITE", 1, None, "a1"), cap(20, CALLER, PROXY)),
        Seen::Tracked
    );
    let mut out = Vec::new();
    r.t.handle_timeout(Ts(40_000), &mut out);
    assert!(out.is_empty());
    assert!(r.t.is_empty());
}

#[test]
fn without_addresses_any_final_ends_the_leg() {
    let mut r = Run::new();
    let none = |ts| Capture {
        ts: Ts(ts),
        src: None,
        dst: None,
    };
    r.feed(&req("INVITE", 1, None, "a1"), none(0));
    r.feed(&resp(404, 1, "INVITE", Some("b")), none(5));
    assert_eq!(r.kinds(), vec!["failed 404 cancelled=false @5"]);
}
