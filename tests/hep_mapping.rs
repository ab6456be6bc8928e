//! Call flows a supervisor would recognise, as a mirroring proxy reports them
//! over HEP, through the sans-IO collector (HEP decode → SIP reader →
//! dialog tracker → mapping) into domain events.
//!
//! The flows are written message by message, the way Kamailio with
//! `trace_mode` mirrors them: each message twice (received, then sent on),
//! retransmissions included.

use std::net::SocketAddr;

use acdmon::config::Secret;
use acdmon::event::{AgentStatus, Event, EventKind, ExitReason};
use acdmon::sources::hep::packet::HepBuilder;
use acdmon::sources::hep::{HepIngest, HepReplayDecoder, HepSourceConfig};
use acdmon::sources::sip::mapping::{AgentRule, AnswerMode, QueueRule, UserFrom};
use acdmon::time::Ts;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PROXY: &str = "10.0.0.1:5060";
const CALLER: &str = "10.0.0.50:5060";
const PLATFORM: &str = "10.0.0.2:5060";
const PHONE_1001: &str = "10.0.0.101:5060";
const PHONE_1002: &str = "10.0.0.102:5060";

fn config() -> HepSourceConfig {
    HepSourceConfig {
        queues: vec![
            QueueRule {
                pattern: "^8001$".into(),
                queue: Some("sales".into()),
                match_on: UserFrom::RequestUri,
                answer: AnswerMode::Platform,
            },
            QueueRule {
                pattern: "^q-(\\w+)$".into(),
                queue: Some("$1".into()),
                match_on: UserFrom::RequestUri,
                answer: AnswerMode::EarlyMedia,
            },
        ],
        agents: vec![AgentRule {
            pattern: "^1(\\d{3})$".into(),
            agent: Some("agent-$1".into()),
            match_on: UserFrom::To,
        }],
        queue_header: Some("X-Queue".into()),
        correlation_header: Some("X-Call-Ref".into()),
        ..HepSourceConfig::default()
    }
}

/// One SIP dialog's messages, written as a UA and a proxy would.
struct Leg {
    call_id: String,
    from_user: String,
    from_tag: String,
    to_user: String,
    to_tag: Option<String>,
    uac: &'static str,
    uas: &'static str,
    extra: String,
}

impl Leg {
    fn new(
        call_id: &str,
        from_user: &str,
        to_user: &str,
        uac: &'static str,
        uas: &'static str,
    ) -> Leg {
        Leg {
            call_id: call_id.into(),
            from_user: from_user.into(),
            from_tag: format!("ft-{call_id}"),
            to_user: to_user.into(),
            to_tag: None,
            uac,
            uas,
            extra: String::new(),
        }
    }

    fn with_header(mut self, h: &str) -> Leg {
        self.extra.push_str(h);
        self.extra.push_str("\r\n");
        self
    }

    fn to_hdr(&self) -> String {
        match &self.to_tag {
            Some(t) => format!("<sip:{}@example.com>;tag={t}", self.to_user),
            None => format!("<sip:{}@example.com>", self.to_user),
        }
    }

    fn request(&self, method: &str, cseq: u32) -> String {
        let extra = if method == "INVITE" && self.to_tag.is_none() {
            self.extra.as_str()
        } else {
            ""
        };
        format!(
            "{method} sip:{}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{}{cseq}{method}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{}@example.com>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:{}@{}>\r\n{extra}Content-Length: 0\r\n\r\n",
            self.to_user,
            self.uac,
            self.call_id,
            self.from_user,
            self.from_tag,
            self.to_hdr(),
            self.call_id,
            self.from_user,
            self.uac
        )
    }

    fn response(&self, code: u16, reason: &str, method: &str, cseq: u32) -> String {
        format!(
            "SIP/2.0 {code} {reason}\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{}{cseq}{method}\r\n\
             From: <sip:{}@example.com>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{}@{}>\r\nContent-Length: 0\r\n\r\n",
            self.uac,
            self.call_id,
            self.from_user,
            self.from_tag,
            self.to_hdr(),
            self.call_id,
            self.to_user,
            self.uas
        )
    }
}

/// Feeds HEP packets into a collector, keeping the events.
struct Collector {
    ingest: HepIngest,
    events: Vec<Event>,
    rejects: Vec<String>,
    correlation: Option<String>,
}

impl Collector {
    fn new(cfg: HepSourceConfig) -> Self {
        Collector {
            ingest: cfg.ingest().unwrap(),
            events: Vec::new(),
            rejects: Vec::new(),
            correlation: None,
        }
    }

    fn send(&mut self, ms: i64, src: &str, dst: &str, sip: &str) {
        let corr = self.correlation.clone();
        let p = HepBuilder {
            correlation_id: corr.as_deref().map(str::as_bytes),
            ..HepBuilder::sip(addr(src), addr(dst), Ts(T0 + ms))
        }
        .build(sip.as_bytes());
        if let Err(r) = self
            .ingest
            .handle_datagram(&p, Ts(T0 + ms), &mut self.events)
        {
            self.rejects.push(r.reason.to_string());
        }
    }

    /// The message as the proxy receives it and as it sends it on.
    fn via_proxy(&mut self, ms: i64, from: &str, to: &str, sip: &str) {
        self.send(ms, from, PROXY, sip);
        self.send(ms + 1, PROXY, to, sip);
    }

    fn story(&self) -> Vec<String> {
        self.events.iter().map(describe).collect()
    }
}

fn describe(e: &Event) -> String {
    let t = (e.ts.0 - T0) as f64 / 1000.0;
    match &e.kind {
        EventKind::CallEnqueued {
            call,
            queue,
            caller,
            ..
        } => {
            format!(
                "{t}s enqueued {call} in {queue} from {}",
                caller.as_deref().unwrap_or("?")
            )
        }
        EventKind::CallAnswered { call, queue, agent } => {
            format!("{t}s answered {call} in {queue} by {agent}")
        }
        EventKind::CallAbandoned { call, queue } => format!("{t}s abandoned {call} in {queue}"),
        EventKind::CallExited {
            call,
            queue,
            reason,
        } => {
            format!("{t}s exited {call} from {queue}: {}", reason.as_str())
        }
        EventKind::CallCompleted { call, queue, agent } => {
            format!("{t}s completed {call} in {queue} by {agent}")
        }
        EventKind::AgentState {
            agent,
            status,
            queue,
            ..
        } => {
            format!(
                "{t}s {agent} {}{}",
                status.as_str(),
                queue
                    .as_deref()
                    .map(|q| format!(" ({q})"))
                    .unwrap_or_default()
            )
        }
        other => format!("{t}s {other:?}"),
    }
}

/// The caller dials the sales queue; the platform answers at once and plays
/// music; 12 s later the platform rings agent 1001 (a new dialog carrying
/// `X-Call-Ref`), who answers after 4 s; the caller hangs up after a minute.
#[test]
fn a_platform_queue_call_answered_by_an_agent() {
    let mut c = Collector::new(config());
    let mut caller = Leg::new("c1@pbx", "4930111", "8001", CALLER, PLATFORM);
    c.via_proxy(0, CALLER, PLATFORM, &caller.request("INVITE", 1));
    c.send(
        1,
        PROXY,
        CALLER,
        &caller.response(100, "Trying", "INVITE", 1),
    );
    caller.to_tag = Some("plat1".into());
    c.via_proxy(
        200,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "INVITE", 1),
    );
    c.via_proxy(250, CALLER, PLATFORM, &caller.request("ACK", 1));

    let mut agent = Leg::new("a1@pbx", "platform", "1001", PLATFORM, PHONE_1001)
        .with_header("X-Queue: sales")
        .with_header("X-Call-Ref: c1@pbx");
    c.via_proxy(12_000, PLATFORM, PHONE_1001, &agent.request("INVITE", 1));
    agent.to_tag = Some("ph1".into());
    c.via_proxy(
        12_100,
        PHONE_1001,
        PLATFORM,
        &agent.response(180, "Ringing", "INVITE", 1),
    );
    // The phone repeats its 180; nothing new.
    c.via_proxy(
        12_600,
        PHONE_1001,
        PLATFORM,
        &agent.response(180, "Ringing", "INVITE", 1),
    );
    c.via_proxy(
        16_000,
        PHONE_1001,
        PLATFORM,
        &agent.response(200, "OK", "INVITE", 1),
    );
    // A lost ACK makes the phone retransmit its 200.
    c.via_proxy(
        16_500,
        PHONE_1001,
        PLATFORM,
        &agent.response(200, "OK", "INVITE", 1),
    );
    c.via_proxy(16_600, PLATFORM, PHONE_1001, &agent.request("ACK", 1));

    c.via_proxy(76_000, CALLER, PLATFORM, &caller.request("BYE", 2));
    c.via_proxy(
        76_050,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "BYE", 2),
    );
    c.via_proxy(76_100, PLATFORM, PHONE_1001, &agent.request("BYE", 2));

    assert_eq!(
        c.story(),
        vec![
            "0.2s enqueued c1@pbx in sales from 4930111",
            "12.1s agent-001 ringing (sales)",
            "16s answered c1@pbx in sales by agent-001",
            "76s completed c1@pbx in sales by agent-001",
        ]
    );
    assert!(c.rejects.is_empty(), "{:?}", c.rejects);
    assert_eq!(c.ingest.sip().mapper().open_calls(), 0);
}

/// An early-media queue: the caller hears 183 and gives up after 31 s.
/// The abandon is dated at the CANCEL, not at the 487.
#[test]
fn an_early_media_caller_who_gives_up() {
    let mut c = Collector::new(config());
    let mut caller = Leg::new("c2@pbx", "4930222", "q-support", CALLER, PLATFORM);
    c.via_proxy(0, CALLER, PLATFORM, &caller.request("INVITE", 1));
    caller.to_tag = Some("em1".into());
    c.via_proxy(
        300,
        PLATFORM,
        CALLER,
        &caller.response(183, "Session Progress", "INVITE", 1),
    );
    caller.to_tag = None;
    c.via_proxy(31_000, CALLER, PLATFORM, &caller.request("CANCEL", 1));
    caller.to_tag = Some("em1".into());
    c.via_proxy(
        31_010,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "CANCEL", 1),
    );
    c.via_proxy(
        31_020,
        PLATFORM,
        CALLER,
        &caller.response(487, "Request Terminated", "INVITE", 1),
    );
    c.via_proxy(31_030, CALLER, PLATFORM, &caller.request("ACK", 1));
    assert_eq!(
        c.story(),
        vec![
            "0s enqueued c2@pbx in support from 4930222",
            "31s abandoned c2@pbx in support"
        ]
    );
}

/// Ring-all: the platform rings 1001 and 1002 for the same caller (HEP
/// correlation id set to the caller's Call-ID by the platform); 1002 answers,
/// 1001's leg is cancelled and goes back to available.
#[test]
fn two_agents_rung_the_one_who_answers_gets_the_call() {
    let mut c = Collector::new(config());
    let mut caller = Leg::new("c3@pbx", "4930333", "q-support", CALLER, PLATFORM);
    c.via_proxy(0, CALLER, PLATFORM, &caller.request("INVITE", 1));
    caller.to_tag = Some("em3".into());
    c.via_proxy(
        100,
        PLATFORM,
        CALLER,
        &caller.response(183, "Session Progress", "INVITE", 1),
    );

    c.correlation = Some("c3@pbx".into());
    let mut a1 = Leg::new("a31@pbx", "platform", "1001", PLATFORM, PHONE_1001);
    let mut a2 = Leg::new("a32@pbx", "platform", "1002", PLATFORM, PHONE_1002);
    c.via_proxy(5_000, PLATFORM, PHONE_1001, &a1.request("INVITE", 1));
    c.via_proxy(5_000, PLATFORM, PHONE_1002, &a2.request("INVITE", 1));
    a1.to_tag = Some("p1".into());
    a2.to_tag = Some("p2".into());
    c.via_proxy(
        5_100,
        PHONE_1001,
        PLATFORM,
        &a1.response(180, "Ringing", "INVITE", 1),
    );
    c.via_proxy(
        5_150,
        PHONE_1002,
        PLATFORM,
        &a2.response(180, "Ringing", "INVITE", 1),
    );
    c.via_proxy(
        9_000,
        PHONE_1002,
        PLATFORM,
        &a2.response(200, "OK", "INVITE", 1),
    );
    a1.to_tag = None;
    c.via_proxy(9_010, PLATFORM, PHONE_1001, &a1.request("CANCEL", 1));
    a1.to_tag = Some("p1".into());
    c.via_proxy(
        9_020,
        PHONE_1001,
        PLATFORM,
        &a1.response(487, "Request Terminated", "INVITE", 1),
    );
    c.correlation = None;
    // The platform now answers the caller (early media ends).
    c.via_proxy(
        9_030,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "INVITE", 1),
    );
    // The agent hangs up after two minutes.
    c.via_proxy(129_000, PHONE_1002, PLATFORM, &{
        let mut l = Leg::new("a32@pbx", "1002", "platform", PHONE_1002, PLATFORM);
        l.from_tag = "p2".into();
        l.to_tag = Some("ft-a32@pbx".into());
        l.request("BYE", 1)
    });
    assert_eq!(
        c.story(),
        vec![
            "0s enqueued c3@pbx in support from 4930333",
            "5.1s agent-001 ringing (support)",
            "5.15s agent-002 ringing (support)",
            "9s answered c3@pbx in support by agent-002",
            "9.01s agent-001 available (support)",
            "129s completed c3@pbx in support by agent-002",
        ]
    );
}

/// Without any correlation, an agent leg that names its queue in `X-Queue`
/// takes that queue's longest-waiting caller.
#[test]
fn fifo_fallback_pairs_the_longest_waiting_caller() {
    let mut cfg = config();
    cfg.correlation_header = None;
    let mut c = Collector::new(cfg);
    for (i, id) in ["c4a@pbx", "c4b@pbx"].iter().enumerate() {
        let mut l = Leg::new(id, "49304", "8001", CALLER, PLATFORM);
        c.via_proxy(i as i64 * 1000, CALLER, PLATFORM, &l.request("INVITE", 1));
        l.to_tag = Some("t".into());
        c.via_proxy(
            i as i64 * 1000 + 10,
            PLATFORM,
            CALLER,
            &l.response(200, "OK", "INVITE", 1),
        );
    }
    let mut a =
        Leg::new("a4@pbx", "platform", "1002", PLATFORM, PHONE_1002).with_header("X-Queue: sales");
    c.via_proxy(20_000, PLATFORM, PHONE_1002, &a.request("INVITE", 1));
    a.to_tag = Some("x".into());
    c.via_proxy(
        22_000,
        PHONE_1002,
        PLATFORM,
        &a.response(200, "OK", "INVITE", 1),
    );
    assert_eq!(
        c.story()[2..],
        ["22s answered c4a@pbx in sales by agent-002"]
    );
}

/// The platform hangs up on a waiting caller (its BYE, not the caller's):
/// the caller left the queue without an agent.
#[test]
fn the_platform_hanging_up_on_a_waiting_caller_is_an_exit() {
    let mut cfg = config();
    cfg.platform_hangup = "timeout".into();
    let mut c = Collector::new(cfg);
    let mut caller = Leg::new("c5@pbx", "4930555", "8001", CALLER, PLATFORM);
    c.via_proxy(0, CALLER, PLATFORM, &caller.request("INVITE", 1));
    caller.to_tag = Some("pl".into());
    c.via_proxy(
        10,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "INVITE", 1),
    );
    let mut bye = Leg::new("c5@pbx", "8001", "4930555", PLATFORM, CALLER);
    bye.from_tag = "pl".into();
    bye.to_tag = Some("ft-c5@pbx".into());
    c.via_proxy(600_000, PLATFORM, CALLER, &bye.request("BYE", 1));
    assert_eq!(
        c.story(),
        vec![
            "0.01s enqueued c5@pbx in sales from 4930555",
            "600s exited c5@pbx from sales: timeout"
        ]
    );
    // A caller who hangs up while listening to the music abandons.
    let mut caller = Leg::new("c6@pbx", "4930666", "8001", CALLER, PLATFORM);
    c.via_proxy(0, CALLER, PLATFORM, &caller.request("INVITE", 1));
    caller.to_tag = Some("pl".into());
    c.via_proxy(
        10,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "INVITE", 1),
    );
    c.via_proxy(45_000, CALLER, PLATFORM, &caller.request("BYE", 2));
    assert_eq!(c.story()[3], "45s abandoned c6@pbx in sales");
}

/// An early-media caller refused with 480 (the queue's timeout in the
/// dialplan) exits with reason timeout; a 302 is a transfer.
#[test]
fn refused_early_media_callers_exit_with_a_reason() {
    let mut c = Collector::new(config());
    for (id, code, reason) in [
        ("c7@pbx", 480, "Temporarily Unavailable"),
        ("c8@pbx", 302, "Moved"),
    ] {
        let mut l = Leg::new(id, "4930777", "q-support", CALLER, PLATFORM);
        c.via_proxy(0, CALLER, PLATFORM, &l.request("INVITE", 1));
        l.to_tag = Some("r".into());
        c.via_proxy(
            60_000,
            PLATFORM,
            CALLER,
            &l.response(code, reason, "INVITE", 1),
        );
    }
    let exits: Vec<_> = c
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallExited { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(exits, vec![ExitReason::Timeout, ExitReason::Transfer]);
}

fn notify(entity_user: &str, version: u32, state: &str, call_id: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" \
         state=\"full\" entity=\"sip:{entity_user}@pbx\">{}</dialog-info>\r\n",
        if state.is_empty() {
            String::new()
        } else {
            format!("<dialog id=\"d1\" direction=\"recipient\"><state>{state}</state></dialog>")
        }
    );
    format!(
        "NOTIFY sip:watcher@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKn{version}\r\n\
         From: <sip:{entity_user}@pbx>;tag=n1\r\nTo: <sip:watcher@pbx>;tag=w1\r\nCall-ID: {call_id}\r\n\
         CSeq: {version} NOTIFY\r\nEvent: dialog\r\nSubscription-State: active;expires=3600\r\n\
         Content-Type: application/dialog-info+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// BLF NOTIFYs move an agent through ringing, on call and available; the
/// proxy's second copy of each NOTIFY changes nothing.
#[test]
fn blf_notifies_give_agent_phone_states() {
    let mut c = Collector::new(config());
    c.via_proxy(
        1_000,
        PLATFORM,
        "10.0.0.9:5060",
        &notify("1002", 1, "early", "sub1"),
    );
    c.via_proxy(
        3_000,
        PLATFORM,
        "10.0.0.9:5060",
        &notify("1002", 2, "confirmed", "sub1"),
    );
    c.via_proxy(
        90_000,
        PLATFORM,
        "10.0.0.9:5060",
        &notify("1002", 3, "terminated", "sub1"),
    );
    // Not an agent by the rules: ignored.
    c.via_proxy(
        91_000,
        PLATFORM,
        "10.0.0.9:5060",
        &notify("reception", 1, "early", "sub2"),
    );
    assert_eq!(
        c.story(),
        vec![
            "1s agent-002 ringing",
            "3s agent-002 on_call",
            "90s agent-002 available"
        ]
    );
    let states: Vec<AgentStatus> = c
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentState { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(states.len(), 3);
    // A broken body is rejected, not guessed at.
    let bad = notify("1002", 4, "early", "sub1").replace("</dialog-info>", "</dialog-inf");
    c.send(95_000, PLATFORM, PROXY, &bad);
    assert_eq!(c.rejects, vec!["sip_invalid"]);
}

#[test]
fn foreign_and_hostile_packets_are_counted_not_fatal() {
    let mut cfg = config();
    cfg.auth_key = Some(Secret::inline("letmein"));
    let mut ingest = cfg.ingest().unwrap();
    let mut ev = Vec::new();
    let l = Leg::new("c9@pbx", "1", "8001", CALLER, PLATFORM);
    let inv = l.request("INVITE", 1);
    let with_key = |k: Option<&'static [u8]>| {
        HepBuilder {
            auth_key: k,
            ..HepBuilder::sip(addr(CALLER), addr(PROXY), Ts(T0))
        }
        .build(inv.as_bytes())
    };
    let reason = |r: Result<(), acdmon::sources::Reject>| r.err().map(|r| r.reason.as_str());
    assert_eq!(
        reason(ingest.handle_datagram(&with_key(None), Ts(T0), &mut ev)),
        Some("hep_auth")
    );
    assert_eq!(
        reason(ingest.handle_datagram(&with_key(Some(b"wrong")), Ts(T0), &mut ev)),
        Some("hep_auth")
    );
    assert_eq!(
        reason(ingest.handle_datagram(&with_key(Some(b"letmein")), Ts(T0), &mut ev)),
        None
    );
    assert_eq!(
        ev.len(),
        0,
        "a platform-mode caller joins at the 200, not the INVITE"
    );
    let rtcp = HepBuilder {
        proto_type: 5,
        auth_key: Some(b"letmein"),
        ..HepBuilder::sip(addr(CALLER), addr(PROXY), Ts(T0))
    }
    .build(b"{\"type\":200}");
    assert_eq!(
        reason(ingest.handle_datagram(&rtcp, Ts(T0), &mut ev)),
        Some("hep_not_sip")
    );
    assert_eq!(
        reason(ingest.handle_datagram(b"\x00\x01garbage", Ts(T0), &mut ev)),
        Some("hep_not_hep")
    );
    let junk_sip = HepBuilder {
        auth_key: Some(b"letmein"),
        ..HepBuilder::sip(addr(CALLER), addr(PROXY), Ts(T0))
    }
    .build(b"INVITE sip:x@y SIP/2.0\r\nFrom: a\r\n\r\n");
    assert_eq!(
        reason(ingest.handle_datagram(&junk_sip, Ts(T0), &mut ev)),
        Some("sip_missing_header")
    );
}

/// A recorded HEP stream replays into the same events, on capture time.
#[test]
fn a_recorded_hep_stream_replays_on_event_time() {
    let mut caller = Leg::new("r1@pbx", "4930999", "q-billing", CALLER, PLATFORM);
    let mut rec = Vec::new();
    let mut put = |ms: i64, src: &str, dst: &str, sip: &str| {
        rec.extend(HepBuilder::sip(addr(src), addr(dst), Ts(T0 + ms)).build(sip.as_bytes()));
    };
    put(0, CALLER, PROXY, &caller.request("INVITE", 1));
    caller.to_tag = Some("b".into());
    put(
        15_000,
        PROXY,
        CALLER,
        &caller.response(200, "OK", "INVITE", 1),
    );
    put(75_000, CALLER, PROXY, &caller.request("BYE", 2));
    let mut d = HepReplayDecoder::new(&config()).unwrap();
    let mut out = Vec::new();
    // Fed in awkward pieces, as a file reader would.
    for chunk in rec.chunks(37) {
        out.extend(d.feed(chunk));
    }
    out.extend(d.finish());
    let story: Vec<String> = out.iter().map(|r| describe(r.as_ref().unwrap())).collect();
    assert_eq!(
        story,
        vec![
            "0s enqueued r1@pbx in billing from 4930999",
            "15s answered r1@pbx in billing by unknown",
            "75s completed r1@pbx in billing by unknown",
        ]
    );
}

/// Compact forms and folded headers in the middle of a real flow.
#[test]
fn compact_and_folded_messages_follow_the_same_flow() {
    let mut c = Collector::new(config());
    let inv = "INVITE sip:q-support@example.com SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.50;branch=z9hG4bKc1\r\n\
               f: <sip:4930444@example.com>\r\n ;tag=cf1\r\nt: <sip:q-support@example.com>\r\ni: cf@pbx\r\n\
               CSeq: 1 INVITE\r\nl: 0\r\n\r\n";
    c.via_proxy(0, CALLER, PLATFORM, inv);
    let ok = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 10.0.0.50;branch=z9hG4bKc1\r\nf: <sip:4930444@example.com>;tag=cf1\r\n\
              t: <sip:q-support@example.com>;tag=zz\r\ni: cf@pbx\r\nCSeq : 1\r\n  INVITE\r\n\
              m: <sip:1002@10.0.0.102>\r\nl: 0\r\n\r\n";
    c.via_proxy(20_000, PLATFORM, CALLER, ok);
    assert_eq!(
        c.story(),
        vec![
            "0s enqueued cf@pbx in support from 4930444",
            "20s answered cf@pbx in support by agent-002"
        ]
    );
}

/// A real capture: the HEPv3 datagrams Kamailio 5.6 (siptrace,
/// `trace_mode=1`, auth key `k3y`) sent for two SIPp calls through it,
/// written back to back (tests/data/hep/kamailio_calls.hep, 41 packets):
/// caller A into sales (8001, platform answers), agent 1001 rung by the
/// platform's dialer with `X-Call-Ref` and answering after 1 s; caller C
/// into support (8002, early media) cancelling after 2 s.
#[test]
fn a_real_kamailio_capture_replays_into_queue_events() {
    let mut cfg = config();
    cfg.auth_key = Some(Secret::inline("k3y"));
    cfg.queues.push(QueueRule {
        pattern: "^8002$".into(),
        queue: Some("support".into()),
        match_on: UserFrom::RequestUri,
        answer: AnswerMode::EarlyMedia,
    });
    cfg.agents[0].agent = None;
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hep/kamailio_calls.hep"
    ))
    .unwrap();
    let mut d = HepReplayDecoder::new(&cfg).unwrap();
    let mut out = d.feed(&bytes);
    out.extend(d.finish());
    let events: Vec<&Event> = out.iter().map(|r| r.as_ref().unwrap()).collect();
    let t0 = events[0].ts.0;
    let story: Vec<String> = events
        .iter()
        .map(|e| {
            let s = describe(e);
            let (_, rest) = s.split_once("s ").unwrap();
            format!("+{}ms {rest}", e.ts.0 - t0)
        })
        .collect();
    let kinds: Vec<String> = story
        .iter()
        .map(|s| s.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "enqueued callerC-1@rec in support from 4930333",
            "enqueued callerA-1@rec in sales from 4930111",
            "1001 ringing (sales)",
            "answered callerA-1@rec in sales by 1001",
            "abandoned callerC-1@rec in support",
            "completed callerA-1@rec in sales by 1001",
        ],
        "{story:#?}"
    );
    // Waits from Kamailio's own timestamps: A 1.2 s, C 2.0 s.
    let at = |i: usize| events[i].ts.0;
    assert_eq!(at(3) - at(1), 1199, "{story:#?}");
    assert_eq!(at(4) - at(0), 2003, "{story:#?}");
    // A collector with no key configured accepts keyed packets; one with
    // another key refuses every packet.
    let mut open = cfg.clone();
    open.auth_key = None;
    let mut d = HepReplayDecoder::new(&open).unwrap();
    let mut refused = d.feed(&bytes);
    refused.retain(|r| r.is_ok());
    assert_eq!(refused.len(), 6);
    let mut cfg2 = cfg.clone();
    cfg2.auth_key = Some(Secret::inline("other"));
    let mut d = HepReplayDecoder::new(&cfg2).unwrap();
    let all = d.feed(&bytes);
    assert_eq!(all.len(), 41);
    assert!(
        all.iter()
            .all(|r| r.as_ref().err().is_some_and(|e| e.reason == "hep_auth"))
    );
}

/// A caller whose dialog goes silent (the BYE or CANCEL was never mirrored)
/// leaves the queue after `unanswered_timeout`, on the sender's clock: the
/// local clock only says how much time passed since the last packet.
#[test]
fn a_silent_waiting_caller_expires_on_the_senders_clock() {
    let mut cfg = config();
    cfg.unanswered_timeout = acdmon::config::HumanDuration::from_secs(600);
    let mut ingest = cfg.ingest().unwrap();
    let local = Ts(5_000_000_000_000); // the collector's clock is far off
    let l = Leg::new("lost@pbx", "4930", "q-support", CALLER, PLATFORM);
    let p =
        HepBuilder::sip(addr(CALLER), addr(PROXY), Ts(T0)).build(l.request("INVITE", 1).as_bytes());
    let mut ev = Vec::new();
    ingest.handle_datagram(&p, local, &mut ev).unwrap();
    assert_eq!(ev.len(), 1);
    ingest.handle_timeout(local.plus_ms(599_000), &mut ev);
    assert_eq!(ev.len(), 1, "not yet");
    ingest.handle_timeout(local.plus_ms(601_000), &mut ev);
    assert_eq!(describe(&ev[1]), "601s exited lost@pbx from support: other");
}

/// Real HEPv2 from Kamailio 5.6 (`hep_version=2`): one datagram per file in
/// tests/data/hep/kamailio_v2, a caller into an early-media queue (8002)
/// cancelling after 1.5 s. Checks the little-endian v2 time header against
/// the real sender, and that a v2 flow maps like a v3 one.
#[test]
fn real_kamailio_hepv2_datagrams_map_like_v3() {
    let mut cfg = config();
    cfg.queues.push(QueueRule {
        pattern: "^8002$".into(),
        queue: Some("support".into()),
        match_on: UserFrom::RequestUri,
        answer: AnswerMode::EarlyMedia,
    });
    let mut ingest = cfg.ingest().unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hep/kamailio_v2");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 13);
    let mut ev = Vec::new();
    for f in &files {
        let d = std::fs::read(f).unwrap();
        let p = acdmon::sources::hep::packet::parse_datagram(&d, &Default::default()).unwrap();
        assert_eq!((p.version, p.capture_id), (2, Some(42)));
        // Captured in November 2026: the time header read little-endian.
        let ts = p.ts.unwrap();
        assert!(ts.rfc3339().starts_with("2026-11-"), "{}", ts.rfc3339());
        ingest.handle_datagram(&d, Ts(0), &mut ev).unwrap();
    }
    let kinds: Vec<String> = ev
        .iter()
        .map(|e| describe(e).split_once("s ").unwrap().1.to_string())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "enqueued callerV2-1@rec in support from 4930333",
            "abandoned callerV2-1@rec in support"
        ]
    );
    let wait = ev[1].ts.0 - ev[0].ts.0;
    assert!((1450..1700).contains(&wait), "{wait} ms");
}

/// An agent leg that names its caller in `X-Call-Ref` is tied to that
/// caller or to none: when the caller is unknown (it hung up, was
/// redirected, or was never mirrored) the leg must not take the longest
/// waiter of its queue by FIFO. Here a caller waits in sales while the
/// platform rings 1002 for a caller acdmon never saw: the waiting caller
/// stays waiting, the agent is just on a call.
#[test]
fn a_tagged_agent_leg_naming_an_unknown_call_is_never_fifo_matched() {
    let mut c = Collector::new(config());
    let mut waiting = Leg::new("c5@pbx", "4930555", "8001", CALLER, PLATFORM);
    c.via_proxy(0, CALLER, PLATFORM, &waiting.request("INVITE", 1));
    waiting.to_tag = Some("t".into());
    c.via_proxy(
        10,
        PLATFORM,
        CALLER,
        &waiting.response(200, "OK", "INVITE", 1),
    );
    let mut a = Leg::new("a5@pbx", "platform", "1002", PLATFORM, PHONE_1002)
        .with_header("X-Queue: sales")
        .with_header("X-Call-Ref: gone-before-we-started@pbx");
    c.via_proxy(2_000, PLATFORM, PHONE_1002, &a.request("INVITE", 1));
    a.to_tag = Some("x".into());
    c.via_proxy(
        3_800,
        PHONE_1002,
        PLATFORM,
        &a.response(200, "OK", "INVITE", 1),
    );
    // The waiting caller gives up at 4.5 s: an abandon, not a completed call.
    c.via_proxy(4_500, CALLER, PLATFORM, &waiting.request("BYE", 2));
    assert_eq!(
        c.story(),
        vec![
            "0.01s enqueued c5@pbx in sales from 4930555",
            "3.8s agent-002 on_call (sales)",
            "4.5s abandoned c5@pbx in sales",
        ]
    );
}

fn register(user: &str, call_id: &str, cseq: u32, expires: u32) -> String {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_1002};branch=z9hG4bKr{cseq}\r\n\
         From: <sip:{user}@example.com>;tag=r\r\nTo: <sip:{user}@example.com>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{PHONE_1002}>;expires={expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn register_ok(user: &str, call_id: &str, cseq: u32, expires: Option<u32>) -> String {
    let contact = expires
        .map(|e| format!("Contact: <sip:{user}@{PHONE_1002}>;expires={e}\r\n"))
        .unwrap_or_default();
    format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {PHONE_1002};branch=z9hG4bKr{cseq}\r\n\
         From: <sip:{user}@example.com>;tag=r\r\nTo: <sip:{user}@example.com>;tag=reg\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{contact}Content-Length: 0\r\n\r\n"
    )
}

/// Membership does not wait for a call: sales lists agent-002 and
/// agent-003 in the configuration; agent-002's phone registers (logged in)
/// and refuses the first call at once with 486 (do-not-disturb); it stays a
/// logged-in member. Its registration lapses (the registrar granted 60 s and
/// no refresh came): logged out. agent-003's phone registers and then
/// unregisters (Expires 0): logged out at once.
#[test]
fn members_come_from_configuration_and_presence_from_register() {
    let mut cfg = config();
    cfg.members
        .insert("sales".into(), vec!["agent-002".into(), "agent-003".into()]);
    let mut c = Collector::new(cfg.clone());
    // The live task reports static members when it starts listening.
    let mut start = Vec::new();
    c.ingest.handle_start(Ts(T0), &mut start);
    c.events.extend(start);
    // The phone asks for an hour; the registrar grants 60 s.
    c.via_proxy(
        1_000,
        PHONE_1002,
        PROXY,
        &register("1002", "reg2@phone", 1, 3600),
    );
    c.via_proxy(
        1_010,
        PROXY,
        PHONE_1002,
        &register_ok("1002", "reg2@phone", 1, Some(60)),
    );
    let mut a =
        Leg::new("a6@pbx", "platform", "1002", PLATFORM, PHONE_1002).with_header("X-Queue: sales");
    c.via_proxy(5_000, PLATFORM, PHONE_1002, &a.request("INVITE", 1));
    a.to_tag = Some("dnd".into());
    c.via_proxy(
        5_020,
        PHONE_1002,
        PLATFORM,
        &a.response(486, "Busy Here", "INVITE", 1),
    );
    c.via_proxy(
        6_000,
        PHONE_1002,
        PROXY,
        &register("1003", "reg3@phone", 1, 3600),
    );
    c.via_proxy(
        6_010,
        PROXY,
        PHONE_1002,
        &register_ok("1003", "reg3@phone", 1, Some(3600)),
    );
    c.via_proxy(
        8_000,
        PHONE_1002,
        PROXY,
        &register("1003", "reg3@phone", 2, 0),
    );
    c.via_proxy(
        8_010,
        PROXY,
        PHONE_1002,
        &register_ok("1003", "reg3@phone", 2, None),
    );
    let mut tail = Vec::new();
    c.ingest.handle_timeout(Ts(T0 + 30_000), &mut tail);
    assert!(tail.is_empty(), "{tail:?}");
    // The clock is the senders' (the last capture time, advanced by local
    // time): 53 s after the last packet (8.01 s) it is 61.01 s, and the 60 s
    // granted at 1.01 s have run out. The sweep notices and dates it then.
    c.ingest.handle_timeout(Ts(T0 + 8_010 + 53_000), &mut tail);
    c.events.extend(tail);
    assert_eq!(
        c.story(),
        vec![
            "0s AgentJoinedQueue { agent: \"agent-002\", queue: \"sales\" }",
            "0s AgentJoinedQueue { agent: \"agent-003\", queue: \"sales\" }",
            "1.01s agent-002 available",
            "6.01s agent-003 available",
            "8.01s agent-003 logged_out",
            "61.01s agent-002 logged_out",
        ]
    );

    // Through the engine: while registered, both count as logged in to
    // sales although neither has taken a call.
    let text = "[time]\nzone = \"UTC\"\n[[queues]]\nname = \"sales\"\n";
    let engine_cfg = acdmon::config::Config::parse("t.toml", text).unwrap();
    let mut engine = acdmon::state::Engine::starting_at(engine_cfg.engine_config(), Ts(T0));
    for e in c.events.iter().filter(|e| e.ts.0 <= T0 + 6_010) {
        engine.apply(e.clone()).unwrap();
    }
    let q = engine.find_queue("sales").unwrap();
    let view = serde_json::to_value(engine.queue_view(q)).unwrap();
    assert_eq!(view["agents"]["logged_in"], 2, "{view}");
}

/// The proxy's mirror of a ring-all hunt group: the caller dials q-hunt
/// (early media), Kamailio forks the same INVITE (same Call-ID, its own Via
/// branch per target, the phone in the Request-URI) to 1001 and 1002.
/// 1002 is busy at once, 1001 rings and answers after 3 s.
#[test]
fn a_ring_all_hunt_group_in_the_proxy_rings_agents_as_branches() {
    let mut c = Collector::new(config());
    let msg = |start: &str, vias: &[&str], to_tag: Option<&str>, cseq: &str| {
        let vias: String = vias
            .iter()
            .map(|v| format!("Via: SIP/2.0/UDP {v}\r\n"))
            .collect();
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{start}\r\n{vias}From: <sip:4930777@example.com>;tag=c7\r\n\
             To: <sip:q-hunt@example.com>{to_tag}\r\nCall-ID: hunt7@pbx\r\nCSeq: {cseq}\r\n\
             Contact: <sip:x@10.0.0.9>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let caller_via = "10.0.0.50:5060;branch=z9hG4bKcaller7";
    let via1 = "10.0.0.1:5060;branch=z9hG4bKfork7.0";
    let via2 = "10.0.0.1:5060;branch=z9hG4bKfork7.1";
    let invite = "INVITE sip:q-hunt@example.com SIP/2.0";
    c.send(
        0,
        CALLER,
        PROXY,
        &msg(invite, &[caller_via], None, "1 INVITE"),
    );
    let to_1001 = "INVITE sip:1001@10.0.0.101 SIP/2.0";
    let to_1002 = "INVITE sip:1002@10.0.0.102 SIP/2.0";
    c.send(
        2,
        PROXY,
        PHONE_1001,
        &msg(to_1001, &[via1, caller_via], None, "1 INVITE"),
    );
    c.send(
        2,
        PROXY,
        PHONE_1002,
        &msg(to_1002, &[via2, caller_via], None, "1 INVITE"),
    );
    let busy = "SIP/2.0 486 Busy Here";
    c.send(
        30,
        PHONE_1002,
        PROXY,
        &msg(busy, &[via2, caller_via], Some("p2"), "1 INVITE"),
    );
    let ringing = "SIP/2.0 180 Ringing";
    c.send(
        60,
        PHONE_1001,
        PROXY,
        &msg(ringing, &[via1, caller_via], Some("p1"), "1 INVITE"),
    );
    c.send(
        61,
        PROXY,
        CALLER,
        &msg(ringing, &[caller_via], Some("p1"), "1 INVITE"),
    );
    let ok = "SIP/2.0 200 OK";
    c.send(
        3_060,
        PHONE_1001,
        PROXY,
        &msg(ok, &[via1, caller_via], Some("p1"), "1 INVITE"),
    );
    c.send(
        3_061,
        PROXY,
        CALLER,
        &msg(ok, &[caller_via], Some("p1"), "1 INVITE"),
    );
    let bye = "BYE sip:1001@10.0.0.101 SIP/2.0";
    c.send(
        63_000,
        CALLER,
        PROXY,
        &msg(
            bye,
            &["10.0.0.50:5060;branch=z9hG4bKb"],
            Some("p1"),
            "2 BYE",
        ),
    );
    assert_eq!(
        c.story(),
        vec![
            "0s enqueued hunt7@pbx in hunt from 4930777",
            "0.002s AgentJoinedQueue { agent: \"agent-001\", queue: \"hunt\" }",
            "0.002s AgentJoinedQueue { agent: \"agent-002\", queue: \"hunt\" }",
            "0.06s agent-001 ringing (hunt)",
            "3.06s answered hunt7@pbx in hunt by agent-001",
            "63s completed hunt7@pbx in hunt by agent-001",
        ]
    );
    assert!(c.rejects.is_empty(), "{:?}", c.rejects);
}

/// Early-media queues: the answer is the agent's pick-up. With a tied agent
/// leg, the call is answered at that leg's 200 (9 s), not at the caller
/// leg's 200 the platform sends after bridging (11 s). With no agent leg
/// seen, the caller leg's 200 is the only answer there is.
#[test]
fn early_media_answer_time_is_the_agent_legs_200() {
    let mut c = Collector::new(config());
    let mut caller = Leg::new("c8@pbx", "4930888", "q-support", CALLER, PLATFORM);
    c.via_proxy(0, CALLER, PLATFORM, &caller.request("INVITE", 1));
    caller.to_tag = Some("em8".into());
    c.via_proxy(
        100,
        PLATFORM,
        CALLER,
        &caller.response(183, "Session Progress", "INVITE", 1),
    );
    let mut a = Leg::new("a8@pbx", "platform", "1001", PLATFORM, PHONE_1001)
        .with_header("X-Call-Ref: c8@pbx");
    c.via_proxy(5_000, PLATFORM, PHONE_1001, &a.request("INVITE", 1));
    a.to_tag = Some("p".into());
    c.via_proxy(
        9_000,
        PHONE_1001,
        PLATFORM,
        &a.response(200, "OK", "INVITE", 1),
    );
    // The platform plays a whisper to the agent, then connects the caller.
    c.via_proxy(
        11_000,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "INVITE", 1),
    );

    let mut lone = Leg::new("c9@pbx", "4930999", "q-support", CALLER, PLATFORM);
    c.via_proxy(20_000, CALLER, PLATFORM, &lone.request("INVITE", 1));
    lone.to_tag = Some("em9".into());
    c.via_proxy(
        27_000,
        PLATFORM,
        CALLER,
        &lone.response(200, "OK", "INVITE", 1),
    );
    let answers: Vec<String> = c
        .story()
        .into_iter()
        .filter(|s| s.contains("answered"))
        .collect();
    assert_eq!(
        answers,
        vec![
            "9s answered c8@pbx in support by agent-001",
            "27s answered c9@pbx in support by unknown",
        ]
    );
}

/// `record = "path"`: what the collector accepted, written as HEPv3 (HEPv2
/// datagrams re-encoded), replays through `acdmon replay --format hep` into
/// the same events. The HEPv2 datagrams are a real Kamailio 5.6 capture.
#[test]
fn a_recorded_capture_replays_into_the_live_events_hepv2_included() {
    let mut cfg = config();
    cfg.queues.push(QueueRule {
        pattern: "^8002$".into(),
        queue: Some("support".into()),
        match_on: UserFrom::RequestUri,
        answer: AnswerMode::EarlyMedia,
    });
    cfg.record = Some(std::env::temp_dir().join("unused-by-the-sans-io-core.hep"));
    let mut ingest = cfg.ingest().unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hep/kamailio_v2");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    let mut live = Vec::new();
    for f in &files {
        ingest
            .handle_datagram(&std::fs::read(f).unwrap(), Ts(0), &mut live)
            .unwrap();
    }
    // A v3 call after the v2 ones, from a sender with a correlation id.
    let mut caller = Leg::new("r10@pbx", "4930100", "8001", CALLER, PLATFORM);
    let mut v3 = |ms: i64, src: &str, dst: &str, sip: &str| {
        let p = HepBuilder {
            correlation_id: Some(b"r10@pbx"),
            ..HepBuilder::sip(addr(src), addr(dst), Ts(T0 + ms))
        }
        .build(sip.as_bytes());
        ingest.handle_datagram(&p, Ts(T0 + ms), &mut live).unwrap();
    };
    v3(0, CALLER, PLATFORM, &caller.request("INVITE", 1));
    caller.to_tag = Some("t".into());
    v3(
        10,
        PLATFORM,
        CALLER,
        &caller.response(200, "OK", "INVITE", 1),
    );
    v3(9_000, CALLER, PLATFORM, &caller.request("BYE", 2));
    let recorded = ingest.take_recorded();
    assert_eq!(&recorded[..4], b"HEP3");
    assert!(ingest.take_recorded().is_empty(), "taken once");
    assert_eq!(live.len(), 4, "{live:?}");

    // Replayed through the same path `acdmon replay` uses.
    let fmt = acdmon::replay::detect(&recorded);
    assert_eq!(fmt, acdmon::replay::Format::Hep);
    let mut d = HepReplayDecoder::new(&cfg).unwrap();
    let mut replayed = Vec::new();
    for chunk in recorded.chunks(501) {
        replayed.extend(d.feed(chunk));
    }
    replayed.extend(d.finish());
    let replayed: Vec<Event> = replayed.into_iter().map(Result::unwrap).collect();
    assert_eq!(replayed, live);

    // With an auth key, the record carries it, and a replay under the same
    // configuration accepts every packet.
    let mut keyed = cfg.clone();
    keyed.auth_key = Some(Secret::inline("k3y"));
    let mut ingest = keyed.ingest().unwrap();
    let p = HepBuilder {
        auth_key: Some(b"k3y"),
        ..HepBuilder::sip(addr(CALLER), addr(PROXY), Ts(T0))
    }
    .build(
        Leg::new("k@pbx", "1", "8001", CALLER, PLATFORM)
            .request("INVITE", 1)
            .as_bytes(),
    );
    ingest.handle_datagram(&p, Ts(T0), &mut Vec::new()).unwrap();
    let rec = ingest.take_recorded();
    let mut d = HepReplayDecoder::new(&keyed).unwrap();
    assert!(d.feed(&rec).iter().all(Result::is_ok));
}
