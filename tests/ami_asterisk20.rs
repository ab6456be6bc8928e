//! Real Asterisk 20.20.1 (app_queue, Local-channel members), recorded live:
//! tests/data/ami/asterisk20_*.ami beside the queue_log Asterisk wrote at the
//! same time (tests/data/queue_log/). How they were made:
//! tests/data/ami/README.md. Each story is one thing a supervisor saw go
//! wrong on the wall (issue 15, items 11-17), replayed through the same
//! session code the daemon runs, into the real engine.

use std::collections::HashMap;

use acdmon::event::{AgentStatus, Event, EventKind};
use acdmon::sources::ami::{AgentIds, AmiReplay};
use acdmon::sources::queue_log::QueueLogReplay;
use acdmon::state::{AgentView, Engine, EngineConfig, QueueParams, SlRound};
use acdmon::time::Ts;

const SUPPORT: &[u8] = include_bytes!("data/ami/asterisk20_support.ami");
const SUPPORT_QLOG: &[u8] = include_bytes!("data/queue_log/asterisk20_support.queue_log");
const RESTART: &[u8] = include_bytes!("data/ami/asterisk20_restart_hangup.ami");
const RESTART_QLOG: &[u8] = include_bytes!("data/queue_log/asterisk20_restart_hangup.queue_log");
const TIMEOUT: &[u8] = include_bytes!("data/ami/asterisk20_timeout.ami");
const TIMEOUT_QLOG: &[u8] = include_bytes!("data/queue_log/asterisk20_timeout.queue_log");

fn ami(bytes: &[u8]) -> (Vec<Event>, Vec<String>) {
    let mut r = AmiReplay::new(AgentIds::default());
    split(r.feed(bytes).into_iter().chain(r.finish()))
}

fn queue_log(bytes: &[u8]) -> (Vec<Event>, Vec<String>) {
    let mut r = QueueLogReplay::new(AgentIds::default(), jiff::tz::TimeZone::UTC);
    split(r.feed(bytes).into_iter().chain(r.finish()))
}

fn split(
    it: impl Iterator<Item = Result<Event, acdmon::sources::Reject>>,
) -> (Vec<Event>, Vec<String>) {
    let (mut evs, mut rej) = (Vec::new(), Vec::new());
    for x in it {
        match x {
            Ok(e) => evs.push(e),
            Err(e) => rej.push(e.to_string()),
        }
    }
    (evs, rej)
}

/// The engine, and what a subscriber of the published agent views holds:
/// only agents the engine reports changed are re-read, as the publisher does.
struct Wall {
    e: Engine,
    agents: HashMap<String, AgentView>,
    rejects: Vec<String>,
}

impl Wall {
    fn new(cfg: EngineConfig, first: Ts) -> Wall {
        Wall {
            e: Engine::starting_at(cfg, first),
            agents: HashMap::new(),
            rejects: Vec::new(),
        }
    }

    fn apply(&mut self, ev: Event) {
        if let Err(r) = self.e.apply(ev) {
            self.rejects.push(r.to_string());
        }
        let (_, agents) = self.e.take_dirty();
        for a in agents {
            let v = self.e.agent_view(a);
            self.agents.insert(v.agent.clone(), v);
        }
    }

    /// Applies the events up to (and including) event time `until`.
    fn run_until(&mut self, evs: &mut std::vec::IntoIter<Event>, until: Ts) {
        while let Some(ev) = evs.as_slice().first() {
            if ev.ts > until {
                break;
            }
            let ev = evs.next().unwrap();
            self.apply(ev);
        }
    }

    fn state(&self, agent: &str) -> AgentStatus {
        self.agents[agent].state
    }

    fn today(&mut self, queue: &str) -> acdmon::state::kpi::WindowView {
        let q = self.e.queue_index(queue);
        self.e.queue_view(q).windows.today
    }
}

fn wall_of(evs: &[Event], cfg: EngineConfig) -> Wall {
    let mut w = Wall::new(cfg, evs[0].ts);
    for ev in evs.iter().cloned() {
        w.apply(ev);
    }
    w
}

fn ts(s: &str) -> Ts {
    acdmon::sources::ami::mapping::parse_timestamp(s).unwrap()
}

/// Item 11. Caller 5551001 hangs up while all three agents ring: Asterisk
/// sends AgentCalled ×3, QueueMemberStatus 2 (a ringing Local channel is
/// "In use"), HangupRequest, QueueMemberStatus 1, QueueCallerAbandon and no
/// AgentRingNoAnswer (queue_log: RINGCANCELED). The agents are free again
/// at once; and ring-all leaves nobody "ringing" after another agent takes
/// the call.
#[test]
fn agents_stop_ringing_when_the_caller_hangs_up_mid_ring() {
    let (evs, rej) = ami(SUPPORT);
    assert!(rej.is_empty(), "{rej:?}");
    let mut w = Wall::new(EngineConfig::default(), evs[0].ts);
    let mut it = evs.into_iter();
    // The ring is on.
    w.run_until(&mut it, ts("1796546066"));
    for a in ["2001", "2002", "2003"] {
        assert_eq!(w.state(a), AgentStatus::Ringing, "{a} rings");
    }
    // The caller hung up at 1796546071.18.
    w.run_until(&mut it, ts("1796546072"));
    for a in ["2001", "2002", "2003"] {
        assert_eq!(w.state(a), AgentStatus::Available, "{a} after the abandon");
    }
    // 5551003 rings all three; 2002 takes it. 2001 and 2003 are free.
    w.run_until(&mut it, ts("1796546082.0"));
    assert_eq!(w.state("2002"), AgentStatus::OnCall);
    assert_eq!(w.state("2001"), AgentStatus::Available);
    assert_eq!(w.state("2003"), AgentStatus::Available);
    for ev in it {
        w.apply(ev);
    }
    for a in ["2001", "2002", "2003"] {
        assert_eq!(w.state(a), AgentStatus::Available, "{a} at the end");
    }
}

/// Item 12. Agent 2002 hangs up first: Asterisk 20 sends its AgentComplete
/// without Uniqueid (or any caller-channel header). It still ends 2002's
/// call: handled equals answered, the talk time counts, `call` clears.
#[test]
fn a_complete_without_uniqueid_ends_that_members_call() {
    let raw = String::from_utf8_lossy(SUPPORT);
    let bare = raw
        .split("\r\n\r\n")
        .filter(|b| b.contains("Event: AgentComplete") && !b.contains("Uniqueid:"))
        .count();
    assert_eq!(
        bare, 1,
        "the capture has one AgentComplete without Uniqueid"
    );
    let (evs, rej) = ami(SUPPORT);
    assert!(rej.is_empty(), "{rej:?}");
    let completed: Vec<(&str, &str)> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallCompleted { call, agent, .. } => Some((call.as_str(), agent.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        completed,
        [
            ("1796546083.31", "2001"),
            ("1796546081.17", "2002"),
            ("1796546082.25", "2003")
        ]
    );
    let mut w = wall_of(&evs, EngineConfig::default());
    assert!(w.rejects.is_empty(), "{:?}", w.rejects);
    let t = w.today("support");
    assert_eq!((t.answered, t.handled), (3, 3));
    // Talk 6.504 s, 12.517 s and 40.541 s from the event times (queue_log's
    // COMPLETEAGENT lines say 7, 13 and 41: Asterisk counts whole seconds).
    let aht = t.aht_s.unwrap();
    assert!((aht - 19.854).abs() < 0.01, "AHT {aht}");
    assert!(w.agents.values().all(|a| a.call.is_none()));
}

/// Item 16. Three agents on calls at once: each one's published view names
/// its call. A Local-channel member is "In use" (on_call) from its ring, so
/// AgentConnect changed no state; the call itself must still be published.
#[test]
fn every_agent_on_a_call_shows_the_call() {
    let (evs, _) = ami(SUPPORT);
    let mut w = Wall::new(EngineConfig::default(), evs[0].ts);
    let mut it = evs.into_iter();
    w.run_until(&mut it, ts("1796546085"));
    let calls: Vec<(&str, AgentStatus, Option<&str>)> = ["2001", "2002", "2003"]
        .iter()
        .map(|a| (*a, w.agents[*a].state, w.agents[*a].call.as_deref()))
        .collect();
    assert_eq!(
        calls,
        [
            ("2001", AgentStatus::OnCall, Some("1796546083.31")),
            ("2002", AgentStatus::OnCall, Some("1796546081.17")),
            ("2003", AgentStatus::OnCall, Some("1796546082.25")),
        ]
    );
}

fn outcomes(evs: &[Event]) -> Vec<(String, String)> {
    evs.iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallAbandoned { call, .. } => Some((call.clone(), "abandoned".into())),
            EventKind::CallExited { call, reason, .. } => {
                Some((call.clone(), format!("exited:{}", reason.as_str())))
            }
            EventKind::CallAnswered { call, .. } => Some((call.clone(), "answered".into())),
            _ => None,
        })
        .collect()
}

/// Item 13. Callers ended by `channel request hangup` (SoftHangupRequest
/// Cause 32), by `core restart now` (Cause 4) and by the AMI Hangup action
/// (no hang-up request event at all, but their rings end without
/// AgentRingNoAnswer) abandoned, as queue_log says; a real Queue() timeout
/// (AgentRingNoAnswer for every ring first) is still a timeout.
#[test]
fn soft_hang_ups_are_abandons_and_timeouts_stay_timeouts() {
    // (AMI capture, queue_log, (caller, outcome) in order)
    type Case = (
        &'static [u8],
        &'static [u8],
        &'static [(&'static str, &'static str)],
    );
    let cases: [Case; 3] = [
        (
            SUPPORT,
            SUPPORT_QLOG,
            &[
                ("1796546065.1", "abandoned"),
                ("1796546073.9", "abandoned"),
                ("1796546081.17", "answered"),
                ("1796546082.25", "answered"),
                ("1796546083.31", "answered"),
            ],
        ),
        (
            RESTART,
            RESTART_QLOG,
            &[
                ("1796546175.35", "answered"),
                ("1796546176.45", "abandoned"),
                ("1796546195.1", "abandoned"),
            ],
        ),
        (TIMEOUT, TIMEOUT_QLOG, &[("1796546221.9", "exited:timeout")]),
    ];
    for (capture, qlog, want) in cases {
        let (evs, rej) = ami(capture);
        assert!(rej.is_empty(), "{rej:?}");
        let got = outcomes(&evs);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(c, o)| (c.to_string(), o.to_string()))
            .collect();
        assert_eq!(got, want);
        // And so says Asterisk's own queue_log, written at the same time.
        let (qevs, qrej) = queue_log(qlog);
        assert!(qrej.is_empty(), "{qrej:?}");
        assert_eq!(outcomes(&qevs), want);
    }
}

/// Item 17. Caller 5551003 joined at 1796546081.779 and was answered at
/// 1796546081.781; 5551004 joined at .798 and answered at .799. Asterisk
/// judges the service level on whole seconds (`now - qe->start`): with a
/// 0 s threshold it counts every one of today's answers in SL ("SL:100.0%
/// within 0s"). `sl_round = "whole_seconds"` gives the same; the default
/// measures the milliseconds and counts none.
#[test]
fn whole_second_service_level_matches_asterisks_own_count() {
    let (evs, _) = ami(SUPPORT);
    let cfg = |round| EngineConfig {
        queues: vec![(
            "support".into(),
            QueueParams {
                sl_threshold_ms: 0,
                sl_round: round,
                ..QueueParams::default()
            },
        )],
        ..EngineConfig::default()
    };
    let mut exact = wall_of(&evs, cfg(SlRound::Exact));
    let mut whole = wall_of(&evs, cfg(SlRound::WholeSeconds));
    assert_eq!(exact.today("support").answered_in_sl, 0);
    assert_eq!(whole.today("support").answered, 3);
    assert_eq!(whole.today("support").answered_in_sl, 3);
    // Abandons in SL follow the same rule: 6 s and 5 s waits are over 0 s.
    assert_eq!(whole.today("support").abandoned_in_sl, 0);
}

/// The four captures and Asterisk's queue_log agree queue by queue on
/// today's offered / answered / abandoned / exited.
#[test]
fn ami_and_queue_log_agree_on_every_capture() {
    for (capture, qlog) in [
        (SUPPORT, SUPPORT_QLOG),
        (RESTART, RESTART_QLOG),
        (TIMEOUT, TIMEOUT_QLOG),
    ] {
        let (evs, _) = ami(capture);
        let (qevs, _) = queue_log(qlog);
        let mut a = wall_of(&evs, EngineConfig::default());
        let mut b = wall_of(&qevs, EngineConfig::default());
        for q in ["support", "sales"] {
            let (x, y) = (a.today(q), b.today(q));
            assert_eq!(
                (x.offered, x.answered, x.abandoned, x.exited),
                (y.offered, y.answered, y.abandoned, y.exited),
                "{q}"
            );
        }
    }
}

/// Item 15. `queue reload members` added static member 2004 and raised no
/// AMI event at all; `module reload app_queue.so` raised `Reload` (class
/// `system`). acdmon relists the queues on that `Reload`, so 2004 appears
/// at once rather than at the next periodic relist.
#[test]
fn an_app_queue_reload_makes_the_session_relist() {
    use acdmon::config::Secret;
    use acdmon::sources::ami::{Auth, Session, SessionConfig};
    let capture = include_bytes!("data/ami/asterisk20_reload_pause.ami");
    let raw = String::from_utf8_lossy(capture);
    let events: Vec<&str> = raw
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("Event: "))
        .filter(|e| !e.starts_with("QueueMember") || *e == "QueueMemberAdded")
        .filter(|e| !matches!(*e, "QueueParams" | "QueueStatusComplete" | "FullyBooted"))
        .collect();
    assert_eq!(events, ["Reload"], "no member event for 2004");
    let at = raw.find("Event: Reload").unwrap();
    let end = at + raw[at..].find("\r\n\r\n").unwrap() + 4;
    let mut s = Session::new(
        SessionConfig {
            username: "acdmonsys".into(),
            secret: Secret::inline("acdmon-secret"),
            auth: Auth::Plain,
            events: "agent,call,system".into(),
            ping_interval_ms: 20_000,
            action_timeout_ms: 5_000,
            resync_interval_ms: 0,
            ids: AgentIds::default(),
        },
        Ts(1_796_546_157_000),
    );
    s.handle_input(&capture[..at], Ts(1_796_546_160_000));
    assert!(s.synced());
    let before = String::from_utf8(s.poll_transmit()).unwrap();
    assert_eq!(before.matches("Action: QueueStatus").count(), 1, "{before}");
    s.handle_input(&capture[at..end], Ts(1_796_546_162_600));
    let after = String::from_utf8(s.poll_transmit()).unwrap();
    assert!(after.contains("Action: QueueStatus"), "{after:?}");
}

/// Item 11, on a relist. The wire up to the moment all three agents ring
/// for 5551001, with the events that end the ring lost (a filter, a
/// reconnect), then Asterisk's own last relist, which lists nobody waiting
/// and every member "Not in use": the relist ends the ring.
#[test]
fn a_relist_ends_a_ring_whose_caller_is_gone() {
    let raw = SUPPORT;
    let text = String::from_utf8_lossy(raw);
    // The three QueueMemberStatus (Status 2) right after the AgentCalled.
    let ring_start = text.find("Timestamp: 1796546065.677534").unwrap();
    let upto = ring_start + text[ring_start..].find("\r\n\r\n").unwrap() + 4;
    // The last Ping + QueueStatus pair of the capture.
    let pings: Vec<usize> = text
        .match_indices("Response: Success\r\nActionID: acdmon-")
        .map(|(i, _)| i)
        .collect();
    let last_ping = pings[pings.len() - 2];
    let mut bytes = raw[..upto].to_vec();
    bytes.extend_from_slice(&raw[last_ping..]);
    let (evs, rej) = ami(&bytes);
    assert!(rej.is_empty(), "{rej:?}");
    let mut w = Wall::new(EngineConfig::default(), evs[0].ts);
    let mut it = evs.into_iter();
    w.run_until(&mut it, ts("1796546066"));
    assert_eq!(
        w.state("2001"),
        AgentStatus::Ringing,
        "a ringing Local member (Status 2 on the wire) rings"
    );
    for ev in it {
        w.apply(ev);
    }
    for a in ["2001", "2002", "2003"] {
        assert_eq!(w.state(a), AgentStatus::Available, "{a} after the relist");
    }
}
