//! A checkpoint of the engine: what a restart needs to keep the day.
//!
//! Why a checkpoint and not a replay of everything: most sources cannot be
//! read again (a TCP feed, AMI), so the figures they produced live only in
//! the engine. The checkpoint holds the engine's own state, not views:
//! today's and the interval's tallies, every outcome still in the rolling
//! window (so the window keeps expiring exactly), waiting callers with their
//! join times, calls being talked, agents' states and memberships with their
//! `since`, and how far into each re-readable source the applied events reach
//! ([`SourcePosition`]). Positions travel in the same checkpoint as the
//! figures they produced, so a source that can re-read resumes exactly where
//! the restored figures end: nothing counted twice, nothing skipped.
//!
//! Not kept: the Prometheus totals (`*_total` counters and the wait
//! histogram restart at 0, which Prometheus' `rate()` handles), the ladder's
//! status (the ladder restores itself from the audit log), and agents'
//! directory data (names, groups: from the config).
//!
//! The format is versioned ([`VERSION`]) and compact: outcomes are tuples of
//! numbers, agents name their queues by position in the checkpoint's queue
//! list. [`EngineCheckpoint::restore`] refuses (with the reason) a checkpoint
//! of another version, of another day or zone, one whose queues no longer fit
//! the configuration (another SL threshold, short-abandon threshold, interval
//! or rolling length would make its counts mean something else), or one that
//! does not hang together; the caller logs the reason and starts empty.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::engine::{Engine, Talking};
use super::params::{EngineConfig, QueueParams};
use super::window::{FixedWindow, Outcome, Tally, day_bounds};
use crate::event::{AgentStatus, ExitReason};
use crate::time::Ts;

/// The checkpoint format's version; another one is ignored on start.
pub const VERSION: u32 = 1;

/// How far a re-readable source's events have been applied: the file
/// (its inode, 0 where there is none) and the byte offset after the last
/// complete line whose events the engine applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    pub file: u64,
    pub offset: u64,
}

/// The engine's state, owned, ready to serialise (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineCheckpoint {
    pub version: u32,
    /// The engine's clock when taken (ms since the epoch).
    pub saved_at: i64,
    /// Start of the local day the checkpoint belongs to.
    pub day_start: i64,
    /// IANA name of the zone "today" was computed in.
    pub zone: String,
    /// When the engine began observing (carried over: figures before a
    /// restart were observed).
    pub started: i64,
    pub events_applied: u64,
    pub queues: Vec<QueueCheckpoint>,
    pub agents: Vec<AgentCheckpoint>,
    /// Calls being talked: (call, queue position, agent position, answered).
    pub talking: Vec<(String, u32, u32, i64)>,
    pub positions: Vec<(String, SourcePosition)>,
    /// The event stream the figures came from ([`EngineConfig::stream`]);
    /// absent in single-process checkpoints (and in those written before
    /// it was kept, which cluster mode therefore does not restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// The thresholds a queue's counts were classified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountingParams {
    pub sl_threshold_ms: i64,
    pub short_abandon_ms: i64,
    pub rolling_ms: i64,
    pub interval_ms: i64,
}

impl CountingParams {
    fn of(p: &QueueParams) -> Self {
        CountingParams {
            sl_threshold_ms: p.sl_threshold_ms,
            short_abandon_ms: p.short_abandon_ms,
            rolling_ms: p.rolling_ms,
            interval_ms: p.interval_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueCheckpoint {
    pub name: String,
    pub params: CountingParams,
    /// Waiting callers: (call, joined).
    pub waiting: Vec<(String, i64)>,
    /// The rolling window's outcomes, oldest first (see [`OutcomeRecord`]).
    pub rolling: Vec<OutcomeRecord>,
    /// (start, end, tally) of the current interval and of today.
    pub interval: (i64, i64, Tally),
    pub today: (i64, i64, Tally),
    pub staffed_ms: i64,
    pub staffed_since: i64,
    pub first_seen: i64,
}

/// One outcome as `(ts, kind, value, flags)`: kind 0 arrival, 1 answered
/// (value wait, flag 1 in SL), 2 abandoned (value wait, flags 1 in SL, 2
/// short), 3 exited (value wait, flags the reason's index), 4 handled (value
/// talk time), 5 after-call work (value its length).
pub type OutcomeRecord = (i64, u8, i64, u8);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCheckpoint {
    pub id: String,
    /// [`AgentStatus::index`].
    pub status: u8,
    pub reason: Option<String>,
    pub since: i64,
    /// Member of (positions in the checkpoint's queue list).
    pub queues: Vec<u32>,
    pub paused_in: Vec<u32>,
    pub call: Option<String>,
    pub wrap_queue: Option<u32>,
    pub wrap_until: Option<i64>,
}

fn encode(ts: Ts, o: &Outcome) -> OutcomeRecord {
    match *o {
        Outcome::Arrival => (ts.0, 0, 0, 0),
        Outcome::Answered { wait_ms, in_sl } => (ts.0, 1, wait_ms, in_sl as u8),
        Outcome::Abandoned {
            wait_ms,
            in_sl,
            short,
        } => (ts.0, 2, wait_ms, in_sl as u8 | (short as u8) << 1),
        Outcome::Exited { wait_ms, reason } => (ts.0, 3, wait_ms, reason.index() as u8),
        Outcome::Handled { talk_ms } => (ts.0, 4, talk_ms, 0),
        Outcome::AfterCallWork { ms } => (ts.0, 5, ms, 0),
    }
}

fn decode(r: &OutcomeRecord) -> Result<(Ts, Outcome), String> {
    let &(ts, kind, v, flags) = r;
    let o = match kind {
        0 => Outcome::Arrival,
        1 => Outcome::Answered {
            wait_ms: v,
            in_sl: flags & 1 != 0,
        },
        2 => Outcome::Abandoned {
            wait_ms: v,
            in_sl: flags & 1 != 0,
            short: flags & 2 != 0,
        },
        3 => Outcome::Exited {
            wait_ms: v,
            reason: *ExitReason::ALL
                .get(flags as usize)
                .ok_or_else(|| format!("exit reason {flags}"))?,
        },
        4 => Outcome::Handled { talk_ms: v },
        5 => Outcome::AfterCallWork { ms: v },
        k => return Err(format!("outcome kind {k}")),
    };
    Ok((Ts(ts), o))
}

fn zone_name(zone: &jiff::tz::TimeZone) -> String {
    zone.iana_name().unwrap_or("").to_string()
}

impl Engine {
    /// The engine's state as an owned checkpoint (cost measured in
    /// `benches/checkpoint.rs`: a copy, no formatting; serialising and writing
    /// happen on the checkpoint writer's thread).
    pub fn checkpoint(&self) -> EngineCheckpoint {
        let queues = self
            .queues
            .iter()
            .map(|q| QueueCheckpoint {
                name: q.name.to_string(),
                params: CountingParams::of(&q.params),
                waiting: q.waiting.iter().map(|(c, t)| (c.clone(), t.0)).collect(),
                rolling: q
                    .rolling
                    .entries
                    .iter()
                    .map(|(t, o)| encode(*t, o))
                    .collect(),
                interval: (q.interval.start.0, q.interval.end.0, q.interval.tally),
                today: (q.today.start.0, q.today.end.0, q.today.tally),
                staffed_ms: q.staffed_ms,
                staffed_since: q.staffed_since.0,
                first_seen: q.first_seen.0,
            })
            .collect();
        let agents = self
            .agents
            .iter()
            .map(|a| AgentCheckpoint {
                id: a.id.to_string(),
                status: a.status.index() as u8,
                reason: a.reason.clone(),
                since: a.since.0,
                queues: a.queues.iter().map(|&q| q as u32).collect(),
                paused_in: a.paused_in.iter().map(|&q| q as u32).collect(),
                call: a.call.clone(),
                wrap_queue: a.wrap_queue.map(|q| q as u32),
                wrap_until: a.wrap_until.map(|t| t.0),
            })
            .collect();
        EngineCheckpoint {
            version: VERSION,
            saved_at: self.now.0,
            day_start: day_bounds(self.now, &self.cfg.zone).0.0,
            zone: zone_name(&self.cfg.zone),
            started: self.started.0,
            events_applied: self.events_applied,
            queues,
            agents,
            talking: self
                .talking
                .iter()
                .map(|(c, t)| (c.clone(), t.queue as u32, t.agent as u32, t.answered.0))
                .collect(),
            positions: self
                .positions
                .iter()
                .map(|(s, p)| (s.to_string(), *p))
                .collect(),
            stream: self.cfg.stream.clone(),
        }
    }
}

impl EngineCheckpoint {
    /// An engine with this checkpoint's state under `cfg`, its clock then
    /// advanced to `now` (closing intervals that ended while it was down).
    /// Refuses, with the reason, a checkpoint that does not belong to
    /// today in `cfg`'s zone, whose queues no longer fit `cfg`, or that
    /// does not hang together.
    pub fn restore(&self, cfg: EngineConfig, now: Ts) -> Result<Engine, String> {
        if self.version != VERSION {
            return Err(format!(
                "checkpoint format {} (this version reads {VERSION})",
                self.version
            ));
        }
        if self.zone != zone_name(&cfg.zone) {
            return Err(format!(
                "checkpoint of zone {:?}, configured {:?}",
                self.zone,
                zone_name(&cfg.zone)
            ));
        }
        if self.stream != cfg.stream {
            let name = |s: &Option<String>| match s {
                Some(s) => format!("the event stream {s}"),
                None => "the sources directly (no [cluster])".to_string(),
            };
            return Err(format!(
                "checkpoint of figures read from {}, this instance reads {}: its day's replay would count them twice",
                name(&self.stream),
                name(&cfg.stream)
            ));
        }
        let today = day_bounds(now, &cfg.zone).0;
        let saved_at = Ts(self.saved_at);
        if self.day_start != today.0 || day_bounds(saved_at, &cfg.zone).0 != today {
            return Err(format!("checkpoint of another day (taken {saved_at})"));
        }
        for q in &self.queues {
            let want = CountingParams::of(&cfg.queue_params(&q.name));
            if q.params != want {
                return Err(format!(
                    "queue {} was counted with {:?}, configured now {:?}",
                    q.name, q.params, want
                ));
            }
        }
        let nq = self.queues.len();
        let check_q = |i: u32| -> Result<usize, String> {
            let i = i as usize;
            (i < nq)
                .then_some(i)
                .ok_or_else(|| format!("queue position {i} of {nq}"))
        };
        let mut e = Engine::starting_at(cfg, saved_at);
        e.started = Ts(self.started.min(self.saved_at));
        e.events_applied = self.events_applied;
        let mut qmap = Vec::with_capacity(nq);
        for qc in &self.queues {
            let q = e.queue_index(&qc.name);
            qmap.push(q);
            let qs = &mut e.queues[q];
            qs.waiting = qc
                .waiting
                .iter()
                .map(|(c, t)| (c.clone(), Ts(*t)))
                .collect();
            let mut entries = VecDeque::with_capacity(qc.rolling.len());
            let mut tally = Tally::default();
            for r in &qc.rolling {
                let (t, o) = decode(r)?;
                tally.add(&o);
                entries.push_back((t, o));
            }
            qs.rolling.entries = entries;
            qs.rolling.tally = tally;
            let window = |(s, end, t): (i64, i64, Tally)| -> Result<FixedWindow, String> {
                if end <= s {
                    return Err(format!("empty window [{s}, {end}) in {}", qc.name));
                }
                Ok(FixedWindow {
                    start: Ts(s),
                    end: Ts(end),
                    tally: t,
                })
            };
            qs.interval = window(qc.interval)?;
            qs.today = window(qc.today)?;
            qs.staffed_ms = qc.staffed_ms;
            qs.staffed_since = Ts(qc.staffed_since);
            qs.first_seen = Ts(qc.first_seen);
        }
        let mut amap = Vec::with_capacity(self.agents.len());
        for ac in &self.agents {
            let a = e.agent_index(&ac.id);
            amap.push(a);
            let status = *AgentStatus::ALL
                .get(ac.status as usize)
                .ok_or_else(|| format!("agent {}: state {}", ac.id, ac.status))?;
            let queues = ac
                .queues
                .iter()
                .map(|&i| check_q(i).map(|i| qmap[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let paused_in = ac
                .paused_in
                .iter()
                .map(|&i| check_q(i).map(|i| qmap[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let wrap_queue = ac.wrap_queue.map(check_q).transpose()?.map(|i| qmap[i]);
            let ag = &mut e.agents[a];
            ag.status = status;
            ag.reason = ac.reason.clone();
            ag.since = Ts(ac.since);
            ag.queues = queues;
            ag.paused_in = paused_in;
            ag.call = ac.call.clone();
            ag.wrap_queue = wrap_queue;
            ag.wrap_until = ac.wrap_until.map(Ts);
            if let (AgentStatus::WrapUp, Some(until)) = (status, ag.wrap_until) {
                e.wrap_timers.insert((until, a));
            }
            for i in 0..e.agents[a].queues.len() {
                let q = e.agents[a].queues[i];
                let st = e.agents[a].status_in(q);
                e.queues[q].members.push(a);
                e.queues[q].counts[st.index()] += 1;
            }
        }
        for (call, q, a, answered) in &self.talking {
            let q = qmap[check_q(*q)?];
            let a = *amap
                .get(*a as usize)
                .ok_or_else(|| format!("talking call {call}: agent position {a}"))?;
            e.talking.insert(
                call.clone(),
                Talking {
                    queue: q,
                    agent: a,
                    answered: Ts(*answered),
                },
            );
        }
        for (s, p) in &self.positions {
            e.set_position(s, *p);
        }
        e.next_roll = Ts(i64::MAX);
        e.roll_all();
        e.advance(now);
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, ResyncCaller};

    fn cfg() -> EngineConfig {
        EngineConfig {
            zone: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
            ..EngineConfig::default()
        }
    }

    fn at(s: &str) -> Ts {
        Ts::parse_rfc3339(s).unwrap()
    }

    fn ev(ts: &str, kind: EventKind) -> Event {
        Event { ts: at(ts), kind }
    }

    fn enq(ts: &str, call: &str) -> Event {
        ev(
            ts,
            EventKind::CallEnqueued {
                call: call.into(),
                queue: "hotline".into(),
                caller: None,
                priority: None,
            },
        )
    }

    fn answer(ts: &str, call: &str, agent: &str) -> Event {
        ev(
            ts,
            EventKind::CallAnswered {
                call: call.into(),
                queue: "hotline".into(),
                agent: agent.into(),
            },
        )
    }

    fn complete(ts: &str, call: &str, agent: &str) -> Event {
        ev(
            ts,
            EventKind::CallCompleted {
                call: call.into(),
                queue: "hotline".into(),
                agent: agent.into(),
            },
        )
    }

    /// The morning before the crash: two answered, one abandoned, one being
    /// talked, two waiting.
    fn morning() -> Vec<Event> {
        vec![
            enq("2026-03-10T01:00:00Z", "c1"),
            answer("2026-03-10T01:00:10Z", "c1", "a1"),
            complete("2026-03-10T01:03:00Z", "c1", "a1"),
            enq("2026-03-10T01:04:00Z", "c2"),
            ev(
                "2026-03-10T01:04:02Z",
                EventKind::CallAbandoned {
                    call: "c2".into(),
                    queue: "hotline".into(),
                },
            ),
            enq("2026-03-10T01:05:00Z", "c3"),
            answer("2026-03-10T01:05:30Z", "c3", "a2"),
            enq("2026-03-10T01:06:00Z", "c4"),
            enq("2026-03-10T01:06:30Z", "c5"),
        ]
    }

    fn afternoon() -> Vec<Event> {
        vec![
            answer("2026-03-10T01:07:00Z", "c4", "a1"),
            complete("2026-03-10T01:08:00Z", "c3", "a2"),
            answer("2026-03-10T01:08:10Z", "c5", "a2"),
        ]
    }

    fn run(e: &mut Engine, evs: Vec<Event>) {
        for x in evs {
            e.apply(x).unwrap();
        }
    }

    fn json(e: &mut Engine) -> serde_json::Value {
        let q = e.find_queue("hotline").unwrap();
        let mut v = serde_json::to_value(e.queue_view(q)).unwrap();
        v.as_object_mut().unwrap().remove("totals");
        v
    }

    /// A crash between the morning and the afternoon, with two callers
    /// waiting and one being talked: the restored engine ends the day with
    /// the figures of one that never stopped.
    #[test]
    fn a_restored_engine_ends_the_day_like_one_that_never_stopped() {
        let mut whole = Engine::starting_at(cfg(), at("2026-03-10T01:00:00Z"));
        run(&mut whole, morning());
        let cp = whole.checkpoint();
        run(&mut whole, afternoon());

        let text = serde_json::to_string(&cp).unwrap();
        let cp: EngineCheckpoint = serde_json::from_str(&text).unwrap();
        let mut restored = cp.restore(cfg(), at("2026-03-10T01:06:40Z")).unwrap();
        assert_eq!(restored.queue(0).waiting.len(), 2);
        run(&mut restored, afternoon());
        assert_eq!(json(&mut restored), json(&mut whole));
        for id in ["a1", "a2"] {
            let (a, b) = (
                whole.find_agent(id).unwrap(),
                restored.find_agent(id).unwrap(),
            );
            assert_eq!(restored.agent_view(b), whole.agent_view(a));
        }
    }

    /// The phone system's list after a restart is the truth about who is
    /// still waiting: a restored caller it lists stays, counted once; one
    /// it does not list is gone (its outcome was missed while down).
    #[test]
    fn a_resync_after_restore_keeps_listed_callers_once_and_drops_the_rest() {
        let mut e = Engine::starting_at(cfg(), at("2026-03-10T01:00:00Z"));
        run(&mut e, morning());
        let cp = e.checkpoint();
        let mut r = cp.restore(cfg(), at("2026-03-10T01:06:40Z")).unwrap();
        r.apply(ev(
            "2026-03-10T01:06:41Z",
            EventKind::QueueResync {
                queue: "hotline".into(),
                callers: vec![ResyncCaller {
                    call: "c4".into(),
                    joined: at("2026-03-10T01:06:00Z"),
                }],
                members: Vec::new(),
            },
        ))
        .unwrap();
        let q = r.find_queue("hotline").unwrap();
        assert_eq!(r.queue(q).waiting.len(), 1);
        r.apply(answer("2026-03-10T01:07:00Z", "c4", "a1")).unwrap();
        let today = &r.queue(q).today.tally;
        assert_eq!((today.arrivals, today.answered, today.abandoned), (5, 3, 1));
    }

    #[test]
    fn a_checkpoint_of_another_day_or_other_thresholds_is_refused() {
        let mut e = Engine::starting_at(cfg(), at("2026-03-10T01:00:00Z"));
        run(&mut e, morning());
        let cp = e.checkpoint();
        // 16:00 UTC is the next day in Shanghai.
        let err = cp.restore(cfg(), at("2026-03-10T16:00:00Z")).unwrap_err();
        assert!(err.contains("another day"), "{err}");
        let mut c = cfg();
        c.defaults.sl_threshold_ms = 30_000;
        let err = cp.restore(c, at("2026-03-10T02:00:00Z")).unwrap_err();
        assert!(err.contains("hotline"), "{err}");
        let mut bad = cp.clone();
        bad.agents[0].queues = vec![99];
        assert!(bad.restore(cfg(), at("2026-03-10T02:00:00Z")).is_err());
        bad = cp.clone();
        bad.version = 99;
        assert!(bad.restore(cfg(), at("2026-03-10T02:00:00Z")).is_err());
    }

    /// A checkpoint taken without `[cluster]` (or of another site's stream)
    /// restored by an instance that replays a stream from the start of the
    /// day would count every call twice: it is refused, with the reason.
    #[test]
    fn a_checkpoint_of_another_event_stream_is_refused() {
        let mut e = Engine::starting_at(cfg(), at("2026-03-10T01:00:00Z"));
        run(&mut e, morning());
        let single = e.checkpoint();
        assert_eq!(single.stream, None);
        let north = EngineConfig {
            stream: Some("ACDMON_north".into()),
            ..cfg()
        };
        let now = at("2026-03-10T02:00:00Z");
        let err = single.restore(north.clone(), now).unwrap_err();
        assert!(
            err.contains("twice") && err.contains("ACDMON_north"),
            "{err}"
        );
        let mut n = Engine::starting_at(north.clone(), at("2026-03-10T01:00:00Z"));
        run(&mut n, morning());
        let cp = n.checkpoint();
        assert_eq!(cp.stream.as_deref(), Some("ACDMON_north"));
        let south = EngineConfig {
            stream: Some("ACDMON_south".into()),
            ..cfg()
        };
        let err = cp.restore(south, now).unwrap_err();
        assert!(err.contains("ACDMON_south"), "{err}");
        let err = cp.restore(cfg(), now).unwrap_err();
        assert!(err.contains("no [cluster]"), "{err}");
        let r = cp.restore(north, now).expect("its own stream");
        let q = r.find_queue("hotline").unwrap();
        assert_eq!(r.queue(q).today.tally.answered, 2);
        // A central instance's checkpoint names its set of sites' streams:
        // restored by a central instance of the same sites, refused (with
        // the reason) by one that shows another set.
        let central = |label: &str| EngineConfig {
            stream: Some(label.into()),
            ..cfg()
        };
        let two = central("central:ACDMON_north+ACDMON_south");
        let mut c = Engine::starting_at(two.clone(), at("2026-03-10T01:00:00Z"));
        run(&mut c, morning());
        let ccp = c.checkpoint();
        let three = central("central:ACDMON_north+ACDMON_south+ACDMON_east");
        let err = ccp.restore(three, now).unwrap_err();
        assert!(
            err.contains("twice") && err.contains("ACDMON_east"),
            "{err}"
        );
        assert!(ccp.restore(two, now).is_ok());
        // The field survives the stored form.
        let json = serde_json::to_string(&cp).unwrap();
        let back: EngineCheckpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stream, cp.stream);
    }

    /// Restored after an interval boundary passed while down: the old
    /// interval closes (for the history) and today keeps counting.
    #[test]
    fn intervals_that_ended_while_down_close_on_restore() {
        let mut e = Engine::starting_at(cfg(), at("2026-03-10T01:00:00Z"));
        run(&mut e, morning());
        let cp = e.checkpoint();
        let mut r = cp.restore(cfg(), at("2026-03-10T01:20:00Z")).unwrap();
        let closed = r.drain_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].window.answered, 2);
        let q = r.find_queue("hotline").unwrap();
        assert_eq!(r.queue(q).interval.tally, Tally::default());
        assert_eq!(r.queue(q).today.tally.answered, 2);
    }
}
