//! A simulated day of queue traffic written twice, as Asterisk would record
//! the same calls: an AMI transcript (what a manager client with
//! `read = agent,call` and `timestampevents = yes` receives) and a
//! `queue_log` file. Deterministic for a seed.
//!
//! Times are whole seconds (queue_log has no sub-second part); AMI
//! timestamps get distinct microseconds to keep events in causal order.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::ami::{Agent, BANNER, Caller, MemberState, block, ev, event, stamp};

pub struct Recording {
    pub ami: String,
    pub queue_log: String,
    pub calls: usize,
}

struct Rec {
    t: i64,
    seq: u64,
    ami: Option<String>,
    qlog: Option<String>,
}

struct Out {
    recs: Vec<Rec>,
    seq: u64,
}

impl Out {
    fn push(&mut self, t: i64, ami: Option<String>, qlog: Option<String>) {
        self.seq += 1;
        self.recs.push(Rec {
            t,
            seq: self.seq,
            ami,
            qlog,
        });
    }
    /// Microseconds for the next event: below 1000 so that the millisecond
    /// (what acdmon keeps) equals queue_log's whole second.
    fn usec(&self) -> u32 {
        ((self.seq + 1) % 1000) as u32
    }
}

struct Ag {
    agent: Agent,
    ext: String,
    queues: Vec<&'static str>,
    free_at: i64,
    lunch_at: i64,
    lunch_done: bool,
}

/// Simulates `open..close` (seconds after `day_start`) and writes both
/// recordings.
pub fn simulate(
    seed: u64,
    day_start: i64,
    open_h: i64,
    close_h: i64,
    mean_gap_s: f64,
) -> Recording {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Out {
        recs: Vec::new(),
        seq: 0,
    };
    let open = day_start + open_h * 3600;
    let close = day_start + close_h * 3600;
    let queues = ["sales", "support"];
    let mut agents: Vec<Ag> = (1..=8)
        .map(|i| {
            let ext = format!("10{i:02}");
            let queues: Vec<&'static str> = match i {
                1..=3 => vec!["support"],
                4..=5 => vec!["support", "sales"],
                _ => vec!["sales"],
            };
            Ag {
                agent: Agent::new(&ext, &ext),
                ext,
                queues,
                free_at: open,
                lunch_at: open + 3600 * 3 + i as i64 * 600,
                lunch_done: false,
            }
        })
        .collect();

    // Sign-in at opening: QueueAdd from a wallboard script, say.
    for a in &agents {
        for q in &a.queues {
            let m = MemberState::new(&a.ext, 1, open);
            let u = out.usec();
            out.push(
                open,
                Some(ev::member("QueueMemberAdded", q, &a.agent, &m, open, u)),
                Some(format!(
                    "{open}|MANAGER|{q}|{}|ADDMEMBER|",
                    a.agent.interface
                )),
            );
        }
    }

    // Arrivals, per queue, merged in time order.
    let mut arrivals: Vec<(i64, &'static str)> = Vec::new();
    for q in queues {
        let mut t = open as f64;
        loop {
            let u: f64 = rng.random_range(1e-9..1.0);
            t += -mean_gap_s * u.ln();
            if t >= (close - 600) as f64 {
                break;
            }
            arrivals.push((t as i64, q));
        }
    }
    arrivals.sort();

    let mut n = 0usize;
    for (t0, q) in arrivals {
        n += 1;
        // Lunches due by now start when the agent is next free.
        for a in agents.iter_mut() {
            if !a.lunch_done && a.lunch_at <= t0 {
                a.lunch_done = true;
                let s = a.free_at.max(a.lunch_at);
                let e = s + 1800;
                for q in &a.queues {
                    let mut m = MemberState::new(&a.ext, 1, open);
                    m.paused = true;
                    m.reason = "Lunch".into();
                    let u = out.usec();
                    out.push(
                        s,
                        Some(ev::member("QueueMemberPause", q, &a.agent, &m, s, u)),
                        Some(format!("{s}|NONE|{q}|{}|PAUSE|Lunch", a.ext)),
                    );
                    m.paused = false;
                    m.reason.clear();
                    let u = out.usec();
                    out.push(
                        e,
                        Some(ev::member("QueueMemberPause", q, &a.agent, &m, e, u)),
                        Some(format!("{e}|NONE|{q}|{}|UNPAUSE|", a.ext)),
                    );
                }
                a.free_at = e;
            }
        }
        let uid = format!("{t0}.{n}");
        let caller = Caller::new(&uid, &format!("1390000{n:04}"));
        // The caller channel appears (call class), then joins.
        let u = out.usec();
        out.push(
            t0,
            Some(event("Newchannel", "call", t0, u, &caller.snapshot(4))),
            None,
        );
        let u = out.usec();
        out.push(
            t0,
            Some(ev::join(q, &caller, 1, 1, t0, u)),
            Some(format!("{t0}|{uid}|{q}|NONE|ENTERQUEUE||{}|1", caller.num)),
        );
        let patience = (rng.random_range(1e-9f64..1.0).ln() * -75.0) as i64 + 1;
        // Earliest free member.
        let best = agents
            .iter()
            .enumerate()
            .filter(|(_, a)| a.queues.contains(&q))
            .min_by_key(|(_, a)| a.free_at)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let ring = 3;
        let ta = (agents[best].free_at.max(t0)) + ring;
        if ta - t0 > patience {
            let t1 = t0 + patience;
            let wait = t1 - t0;
            let roll: f64 = rng.random();
            if roll < 0.6 {
                // Caller hangs up: HangupRequest just before the abandon.
                let u = out.usec();
                out.push(t1, Some(ev::hangup_request(&caller, t1, u)), None);
                let u = out.usec();
                out.push(
                    t1,
                    Some(ev::abandon(q, &caller, 1, wait, t1, u)),
                    Some(format!("{t1}|{uid}|{q}|NONE|ABANDON|1|1|{wait}")),
                );
                let u = out.usec();
                out.push(t1, Some(ev::leave(q, &caller, 1, 0, t1, u)), None);
                let u = out.usec();
                out.push(t1, Some(ev::soft_hangup_request(&caller, 16, t1, u)), None);
                let u = out.usec();
                out.push(t1, Some(ev::hangup(&caller, t1, u)), None);
            } else if roll < 0.9 {
                // Queue() timeout: no HangupRequest; the dialplan goes on.
                let u = out.usec();
                out.push(
                    t1,
                    Some(ev::abandon(q, &caller, 1, wait, t1, u)),
                    Some(format!("{t1}|{uid}|{q}|NONE|EXITWITHTIMEOUT|1|1|{wait}")),
                );
                let u = out.usec();
                out.push(t1, Some(ev::leave(q, &caller, 1, 0, t1, u)), None);
                let u = out.usec();
                out.push(
                    t1 + 8,
                    Some(ev::soft_hangup_request(&caller, 16, t1 + 8, u)),
                    None,
                );
                let u = out.usec();
                out.push(t1 + 8, Some(ev::hangup(&caller, t1 + 8, u)), None);
            } else {
                // Caller pressed a key: only QueueCallerLeave on AMI.
                let u = out.usec();
                out.push(
                    t1,
                    Some(ev::leave(q, &caller, 1, 0, t1, u)),
                    Some(format!("{t1}|{uid}|{q}|NONE|EXITWITHKEY|1|1|1|{wait}")),
                );
                let u = out.usec();
                out.push(t1 + 20, Some(ev::hangup(&caller, t1 + 20, u)), None);
            }
            continue;
        }
        // Answered by `best`; sometimes another member rang first.
        let members: Vec<usize> = agents
            .iter()
            .enumerate()
            .filter(|(i, a)| *i != best && a.queues.contains(&q))
            .map(|(i, _)| i)
            .collect();
        if !members.is_empty() && rng.random::<f64>() < 0.15 && ta - 18 > t0 {
            let other = members[rng.random_range(0..members.len())];
            let oa = agents[other].agent.clone();
            let u = out.usec();
            out.push(
                ta - 18,
                Some(ev::agent_called(q, &caller, &oa, 1, ta - 18, u)),
                None,
            );
            let u = out.usec();
            out.push(
                ta - 3,
                Some(ev::ring_no_answer(q, &caller, &oa, 1, 15_000, ta - 3, u)),
                Some(format!(
                    "{}|{uid}|{q}|{}|RINGNOANSWER|15000",
                    ta - 3,
                    agents[other].ext
                )),
            );
        }
        let a = agents[best].agent.clone();
        let ext = agents[best].ext.clone();
        let hold = ta - t0;
        let u = out.usec();
        out.push(
            ta - ring,
            Some(ev::agent_called(q, &caller, &a, 2, ta - ring, u)),
            None,
        );
        let u = out.usec();
        out.push(ta, Some(ev::leave(q, &caller, 1, 0, ta, u)), None);
        let u = out.usec();
        out.push(
            ta,
            Some(ev::connect(q, &caller, &a, 2, hold, ring, ta, u)),
            Some(format!(
                "{ta}|{uid}|{q}|{ext}|CONNECT|{hold}|{uid}.2|{ring}"
            )),
        );
        let mut busy = MemberState::new(&ext, 2, open);
        busy.in_call = true;
        for mq in &agents[best].queues {
            let u = out.usec();
            out.push(
                ta,
                Some(ev::member("QueueMemberStatus", mq, &a, &busy, ta, u)),
                None,
            );
        }
        let talk = (rng.random_range(1e-9f64..1.0).ln() * -170.0) as i64 + 15;
        let tc = ta + talk;
        let reason = if rng.random::<bool>() {
            "caller"
        } else {
            "agent"
        };
        let u = out.usec();
        out.push(
            tc,
            Some(ev::complete(q, &caller, &a, 2, hold, talk, reason, tc, u)),
            Some(format!(
                "{tc}|{uid}|{q}|{ext}|{}|{hold}|{talk}|1",
                if reason == "caller" {
                    "COMPLETECALLER"
                } else {
                    "COMPLETEAGENT"
                }
            )),
        );
        let mut idle = MemberState::new(&ext, 1, open);
        idle.calls = 1;
        idle.last_call = tc;
        for mq in &agents[best].queues {
            let u = out.usec();
            out.push(
                tc,
                Some(ev::member("QueueMemberStatus", mq, &a, &idle, tc, u)),
                None,
            );
        }
        let u = out.usec();
        out.push(tc, Some(ev::hangup(&caller, tc, u)), None);
        agents[best].free_at = tc + 5;
    }

    // Sign-out at closing, once everyone is free.
    let end = agents
        .iter()
        .map(|a| a.free_at)
        .max()
        .unwrap_or(close)
        .max(close);
    for a in &agents {
        for q in &a.queues {
            let m = MemberState::new(&a.ext, 1, open);
            let u = out.usec();
            out.push(
                end,
                Some(ev::member("QueueMemberRemoved", q, &a.agent, &m, end, u)),
                Some(format!(
                    "{end}|MANAGER|{q}|{}|REMOVEMEMBER|",
                    a.agent.interface
                )),
            );
        }
    }

    out.recs.sort_by_key(|r| (r.t, r.seq));
    let mut ami = String::from(BANNER);
    ami.push_str(&block(&[
        ("Response", "Success".into()),
        ("ActionID", "acdmon-1".into()),
        ("Message", "Authentication accepted".into()),
    ]));
    ami.push_str(&block(&[
        ("Response", "Success".into()),
        ("ActionID", "acdmon-2".into()),
        ("Ping", "Pong".into()),
        ("Timestamp", stamp(open - 60, 0)),
    ]));
    ami.push_str(&block(&[
        ("Response", "Success".into()),
        ("ActionID", "acdmon-3".into()),
        ("EventList", "start".into()),
        ("Message", "Queue status will follow".into()),
    ]));
    for q in queues {
        ami.push_str(&block(&[
            ("Event", "QueueParams".into()),
            ("Queue", q.into()),
            ("Max", "0".into()),
            ("Strategy", "leastrecent".into()),
            ("Calls", "0".into()),
            ("Holdtime", "0".into()),
            ("TalkTime", "0".into()),
            ("Completed", "0".into()),
            ("Abandoned", "0".into()),
            ("ServiceLevel", "20".into()),
            ("ServicelevelPerf", "0.0".into()),
            ("ServicelevelPerf2", "0.0".into()),
            ("Weight", "0".into()),
            ("ActionID", "acdmon-3".into()),
        ]));
    }
    ami.push_str(&block(&[
        ("Event", "QueueStatusComplete".into()),
        ("ActionID", "acdmon-3".into()),
        ("EventList", "Complete".into()),
        ("ListItems", queues.len().to_string()),
    ]));
    let mut qlog = format!("{}|NONE|NONE|NONE|QUEUESTART|\n", open - 3600);
    for r in &out.recs {
        if let Some(a) = &r.ami {
            ami.push_str(a);
        }
        if let Some(l) = &r.qlog {
            qlog.push_str(l);
            qlog.push('\n');
        }
    }
    Recording {
        ami,
        queue_log: qlog,
        calls: n,
    }
}
