//! Property: whatever the mirror loses, repeats or reorders slightly, every
//! call the collector puts in a queue leaves it exactly once, is answered at
//! most once, completes only after an answer, and the engine accepts every
//! event it produces.

use std::collections::HashMap;
use std::net::SocketAddr;

use acdmon::event::{Event, EventKind};
use acdmon::sources::hep::HepSourceConfig;
use acdmon::sources::hep::packet::HepBuilder;
use acdmon::sources::sip::mapping::{AgentRule, AnswerMode, QueueRule, UserFrom};
use acdmon::state::Engine;
use acdmon::time::Ts;
use proptest::prelude::*;

const T0: i64 = 1_767_225_600_000;
const CALLER: &str = "10.0.0.50:5060";
const PROXY: &str = "10.0.0.1:5060";
const PLATFORM: &str = "10.0.0.2:5060";
const PHONE: &str = "10.0.0.101:5060";

#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// An agent leg answers; then the caller (or agent) hangs up.
    Answered { agent_hangs_up: bool },
    /// Early media: the caller cancels. Platform: the caller hangs up on MoH.
    GivesUp,
    /// The platform refuses (early media) or hangs up (platform mode).
    Refused,
    /// Nothing after the INVITE/200 reaches the mirror.
    Silent,
}

#[derive(Debug, Clone)]
struct CallPlan {
    early_media: bool,
    outcome: Outcome,
    start_ms: i64,
    wait_ms: i64,
    talk_ms: i64,
}

fn plan() -> impl Strategy<Value = CallPlan> {
    (
        any::<bool>(),
        prop_oneof![
            any::<bool>().prop_map(|a| Outcome::Answered { agent_hangs_up: a }),
            Just(Outcome::GivesUp),
            Just(Outcome::Refused),
            Just(Outcome::Silent),
        ],
        0i64..60_000,
        100i64..30_000,
        100i64..30_000,
    )
        .prop_map(
            |(early_media, outcome, start_ms, wait_ms, talk_ms)| CallPlan {
                early_media,
                outcome,
                start_ms,
                wait_ms,
                talk_ms,
            },
        )
}

fn msg(
    start: &str,
    call: &str,
    from: (&str, &str),
    to: (&str, Option<&str>),
    cseq: &str,
    extra: &str,
) -> String {
    let to_tag = to.1.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK{call}{cseq}\r\nFrom: <sip:{}@x>;tag={}\r\n\
         To: <sip:{}@x>{to_tag}\r\nCall-ID: {call}\r\nCSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n",
        from.0, from.1, to.0
    )
}

/// The mirrored packets of one call: (time, src, dst, SIP text).
fn flow(i: usize, p: &CallPlan) -> Vec<(i64, &'static str, &'static str, String)> {
    let c = format!("c{i}");
    let a = format!("a{i}");
    let q = if p.early_media { "q-em" } else { "q-moh" };
    let t0 = p.start_ms;
    let t1 = t0 + p.wait_ms;
    let t2 = t1 + p.talk_ms;
    let caller = ("4930", "ct");
    let inv = msg(
        &format!("INVITE sip:{q}@x SIP/2.0"),
        &c,
        caller,
        (q, None),
        "1 INVITE",
        "",
    );
    let r = |code: &str, cseq: &str| {
        msg(
            &format!("SIP/2.0 {code}"),
            &c,
            caller,
            (q, Some("pt")),
            cseq,
            "",
        )
    };
    let creq = |m: &str, n: u32| {
        msg(
            &format!("{m} sip:{q}@x SIP/2.0"),
            &c,
            caller,
            (q, Some("pt")),
            &format!("{n} {m}"),
            "",
        )
    };
    let mut v = vec![(t0, CALLER, PROXY, inv)];
    if p.early_media {
        v.push((
            t0 + 50,
            PROXY,
            CALLER,
            r("183 Session Progress", "1 INVITE"),
        ));
    } else {
        v.push((t0 + 50, PROXY, CALLER, r("200 OK", "1 INVITE")));
        v.push((t0 + 60, CALLER, PROXY, creq("ACK", 1)));
    }
    match p.outcome {
        Outcome::Answered { agent_hangs_up } => {
            let plat = ("platform", "pf");
            let ainv = msg(
                "INVITE sip:1001@x SIP/2.0",
                &a,
                plat,
                ("1001", None),
                "1 INVITE",
                &format!(
                    "X-Queue: {}\r\nX-Call-Ref: {c}\r\n",
                    if p.early_media { "em" } else { "moh" }
                ),
            );
            let ar = |code: &str, cseq: &str| {
                msg(
                    &format!("SIP/2.0 {code}"),
                    &a,
                    plat,
                    ("1001", Some("ph")),
                    cseq,
                    "",
                )
            };
            v.push((t1 - 50, PLATFORM, PHONE, ainv));
            v.push((t1 - 40, PHONE, PLATFORM, ar("180 Ringing", "1 INVITE")));
            v.push((t1, PHONE, PLATFORM, ar("200 OK", "1 INVITE")));
            if p.early_media {
                v.push((t1 + 5, PROXY, CALLER, r("200 OK", "1 INVITE")));
            }
            if agent_hangs_up {
                let bye = msg(
                    "BYE sip:platform@x SIP/2.0",
                    &a,
                    ("1001", "ph"),
                    ("platform", Some("pf")),
                    "1 BYE",
                    "",
                );
                v.push((t2, PHONE, PLATFORM, bye));
                v.push((t2 + 5, PLATFORM, CALLER, {
                    msg(
                        "BYE sip:4930@x SIP/2.0",
                        &c,
                        (q, "pt"),
                        ("4930", Some("ct")),
                        "1 BYE",
                        "",
                    )
                }));
            } else {
                v.push((t2, CALLER, PROXY, creq("BYE", 2)));
                v.push((t2 + 5, PLATFORM, PHONE, {
                    msg(
                        "BYE sip:1001@x SIP/2.0",
                        &a,
                        plat,
                        ("1001", Some("ph")),
                        "2 BYE",
                        "",
                    )
                }));
            }
        }
        Outcome::GivesUp => {
            if p.early_media {
                v.push((
                    t1,
                    CALLER,
                    PROXY,
                    msg(
                        &format!("CANCEL sip:{q}@x SIP/2.0"),
                        &c,
                        caller,
                        (q, None),
                        "1 CANCEL",
                        "",
                    ),
                ));
                v.push((
                    t1 + 10,
                    PROXY,
                    CALLER,
                    r("487 Request Terminated", "1 INVITE"),
                ));
            } else {
                v.push((t1, CALLER, PROXY, creq("BYE", 2)));
            }
        }
        Outcome::Refused => {
            if p.early_media {
                v.push((
                    t1,
                    PROXY,
                    CALLER,
                    r("480 Temporarily Unavailable", "1 INVITE"),
                ));
            } else {
                let bye = msg(
                    "BYE sip:4930@x SIP/2.0",
                    &c,
                    (q, "pt"),
                    ("4930", Some("ct")),
                    "1 BYE",
                    "",
                );
                v.push((t1, PLATFORM, CALLER, bye));
            }
        }
        Outcome::Silent => {}
    }
    v
}

fn config() -> HepSourceConfig {
    HepSourceConfig {
        queues: vec![
            QueueRule {
                pattern: "^q-em$".into(),
                queue: Some("em".into()),
                match_on: UserFrom::RequestUri,
                answer: AnswerMode::EarlyMedia,
            },
            QueueRule {
                pattern: "^q-moh$".into(),
                queue: Some("moh".into()),
                match_on: UserFrom::RequestUri,
                answer: AnswerMode::Platform,
            },
        ],
        agents: vec![AgentRule {
            pattern: "^1\\d{3}$".into(),
            agent: None,
            match_on: UserFrom::To,
        }],
        queue_header: Some("X-Queue".into()),
        correlation_header: Some("X-Call-Ref".into()),
        unanswered_timeout: acdmon::config::HumanDuration::from_secs(600),
        answered_timeout: acdmon::config::HumanDuration::from_secs(600),
        ..HepSourceConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn every_queued_call_leaves_once(
        plans in proptest::collection::vec(plan(), 1..25),
        // Per packet: 0 = lost, 1 = once, 2 = twice (retransmission).
        copies in proptest::collection::vec(prop_oneof![1 => Just(0u8), 8 => Just(1u8), 2 => Just(2u8)], 400),
        jitter in proptest::collection::vec(0i64..4, 400),
    ) {
        let mut packets = Vec::new();
        let mut em_invites = Vec::new();
        for (i, p) in plans.iter().enumerate() {
            if p.early_media {
                em_invites.push(packets.len());
            }
            packets.extend(flow(i, p));
        }
        // Early-media callers join at the INVITE: as many join as INVITEs
        // got through (this keeps the property from passing vacuously).
        let em_delivered = em_invites.iter().filter(|&&k| copies[k % copies.len()] > 0).count();
        // Mirror order: capture time, with a few ms of jitter between calls.
        let mut sent = Vec::new();
        for (k, (t, src, dst, sip)) in packets.into_iter().enumerate() {
            for _ in 0..copies[k % copies.len()] {
                sent.push((t + jitter[k % jitter.len()], src, dst, sip.clone()));
            }
        }
        sent.sort_by_key(|x| x.0);
        let mut ingest = config().ingest().unwrap();
        let mut events: Vec<Event> = Vec::new();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        for (t, src, dst, sip) in &sent {
            let pkt = HepBuilder::sip(addr(src), addr(dst), Ts(T0 + t)).build(sip.as_bytes());
            prop_assert!(ingest.handle_datagram(&pkt, Ts(T0 + t), &mut events).is_ok());
        }
        // Long after: every silent leg has expired.
        let last = sent.last().map_or(0, |x| x.0);
        for k in 1..=15 {
            ingest.handle_timeout(Ts(T0 + last + k * 60_000), &mut events);
        }

        let mut per_call: HashMap<String, Vec<&'static str>> = HashMap::new();
        for e in &events {
            let (call, what) = match &e.kind {
                EventKind::CallEnqueued { call, .. } => (call, "enqueued"),
                EventKind::CallAnswered { call, .. } => (call, "answered"),
                EventKind::CallAbandoned { call, .. } => (call, "abandoned"),
                EventKind::CallExited { call, .. } => (call, "exited"),
                EventKind::CallCompleted { call, .. } => (call, "completed"),
                _ => continue,
            };
            per_call.entry(call.clone()).or_default().push(what);
        }
        let em_enqueued = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::CallEnqueued { queue, .. } if queue == "em"))
            .count();
        prop_assert_eq!(em_enqueued, em_delivered);
        for (call, seq) in &per_call {
            prop_assert_eq!(seq[0], "enqueued", "{}: {:?}", call, seq);
            prop_assert!(
                matches!(
                    seq[1..],
                    ["abandoned"] | ["exited"] | ["answered", "completed"]
                ),
                "{}: {:?}", call, seq
            );
        }
        // The engine takes every event (no unknown or duplicate calls).
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.ts);
        if let Some(first) = sorted.first() {
            let mut engine = Engine::starting_at(Default::default(), first.ts);
            for e in sorted {
                let shown = format!("{e:?}");
                prop_assert!(engine.apply(e).is_ok(), "engine rejected {}", shown);
            }
        }
        // Nothing is left open.
        prop_assert_eq!(ingest.sip().mapper().open_calls(), 0);
    }
}
