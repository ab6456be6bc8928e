//! A simulated contact centre for `acdmon demo`: Poisson arrivals,
//! exponential talk times and patience, ringing, wrap-up, breaks, and a surge
//! on the hotline that pushes it past 10 waiting and then subsides.
//!
//! Sans-IO like the adapters: [`Simulator::step`] takes the current time and
//! returns the domain events that happened up to it, so tests can run a
//! simulated hour in milliseconds. It is also the demo's phone system: the
//! ladder's sign-ins reach it through [`Simulator::sign_in`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};

use crate::event::{AgentStatus, Event, EventKind};
use crate::time::Ts;

/// One simulated queue.
#[derive(Debug, Clone)]
pub struct SimQueue {
    pub name: &'static str,
    /// Calls per hour outside the surge.
    pub calls_per_hour: f64,
    /// Mean talk time, seconds.
    pub talk_s: f64,
    /// Phone agents (ids) working this queue from the start.
    pub agents: Vec<String>,
}

/// The demo centre: queues, phone agents, and the non-phone groups the
/// ladder can sign in (logged in, doing other work, in no queue).
#[derive(Debug, Clone)]
pub struct Centre {
    pub queues: Vec<SimQueue>,
    /// (agent id, display name, groups) of everyone.
    pub people: Vec<(String, String, Vec<String>)>,
    /// The queue that surges, its multiplier, and the surge window within
    /// each cycle (seconds from cycle start).
    pub surge_queue: &'static str,
    pub surge_factor: f64,
    pub cycle_s: i64,
    pub surge_from_s: i64,
    pub surge_to_s: i64,
    pub wrap_up_s: i64,
    pub ring_s: i64,
    pub patience_s: f64,
}

impl Centre {
    pub fn hotline() -> Centre {
        let mut people = Vec::new();
        let mut queues = Vec::new();
        let names = [
            "Li Na",
            "Wang Wei",
            "Zhang Min",
            "Liu Yang",
            "Chen Jie",
            "Yang Fan",
            "Zhao Lei",
            "Huang Li",
            "Zhou Tao",
            "Wu Hao",
            "Xu Jing",
            "Sun Qiang",
            "Ma Lin",
            "Zhu Hong",
            "Hu Bin",
            "Guo Mei",
            "He Ping",
            "Gao Yan",
            "Lin Feng",
            "Luo Xin",
            "Zheng Yu",
            "Liang Kai",
            "Song Jia",
            "Xie Ning",
            "Tang Rui",
            "Han Bo",
            "Feng Xue",
            "Deng Hui",
            "Cao Ying",
            "Peng Cheng",
            "Zeng Li",
            "Xiao Dan",
            "Tian Ye",
            "Dong Lu",
        ];
        let mut n = 0usize;
        let mut person =
            |prefix: &str, groups: &[&str], people: &mut Vec<(String, String, Vec<String>)>| {
                n += 1;
                let id = format!("{prefix}{:02}", n);
                let name = names[(n - 1) % names.len()].to_string();
                people.push((
                    id.clone(),
                    name,
                    groups.iter().map(|g| g.to_string()).collect(),
                ));
                id
            };
        for (q, rate, talk, staff) in [
            ("hotline", 150.0, 150.0, 8),
            ("billing", 50.0, 200.0, 4),
            ("tech-support", 40.0, 300.0, 5),
        ] {
            let agents = (0..staff)
                .map(|_| person("a", &["phone"], &mut people))
                .collect();
            queues.push(SimQueue {
                name: q,
                calls_per_hour: rate,
                talk_s: talk,
                agents,
            });
        }
        for _ in 0..3 {
            person("x", &["floating-experts"], &mut people);
        }
        for _ in 0..4 {
            person("o", &["outbound"], &mut people);
        }
        for _ in 0..3 {
            person("qc", &["quality"], &mut people);
        }
        for _ in 0..4 {
            person("b", &["back-office"], &mut people);
        }
        for _ in 0..2 {
            person("s", &["supervisors"], &mut people);
        }
        Centre {
            queues,
            people,
            surge_queue: "hotline",
            surge_factor: 6.0,
            cycle_s: 40 * 60,
            surge_from_s: 2 * 60,
            surge_to_s: 14 * 60,
            wrap_up_s: 10,
            ring_s: 3,
            patience_s: 150.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Arrival(usize),
    GiveUp(u64),
    RingEnd(usize),
    TalkEnd(usize),
    WrapEnd(usize),
    BreakEnd(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doing {
    /// Logged in, not in any simulated queue (other work).
    Elsewhere,
    Idle,
    Ringing(u64),
    Talking(u64),
    WrapUp,
    Break,
}

#[derive(Debug)]
struct SimAgent {
    id: String,
    queues: Vec<usize>,
    doing: Doing,
    idle_since: Ts,
    /// Sign-out requested while busy: leave the queue when the call ends.
    leaving: Vec<usize>,
}

#[derive(Debug)]
pub struct Simulator {
    centre: Centre,
    rng: StdRng,
    now: Ts,
    start: Ts,
    agenda: BinaryHeap<Reverse<(Ts, u64, Happening)>>,
    seq: u64,
    agents: Vec<SimAgent>,
    agent_ix: HashMap<String, usize>,
    waiting: Vec<VecDeque<u64>>,
    calls: HashMap<u64, usize>,
    next_call: u64,
    out: Vec<Event>,
}

impl Simulator {
    /// A centre whose day starts at `start`; the first `step` logs everyone in.
    pub fn new(centre: Centre, seed: u64, start: Ts) -> Self {
        let mut s = Simulator {
            rng: StdRng::seed_from_u64(seed),
            now: start,
            start,
            agenda: BinaryHeap::new(),
            seq: 0,
            agents: Vec::new(),
            agent_ix: HashMap::new(),
            waiting: vec![VecDeque::new(); centre.queues.len()],
            calls: HashMap::new(),
            next_call: 1,
            out: Vec::new(),
            centre,
        };
        for (id, _, _) in s.centre.people.clone() {
            let i = s.agents.len();
            s.agent_ix.insert(id.clone(), i);
            s.agents.push(SimAgent {
                id,
                queues: Vec::new(),
                doing: Doing::Elsewhere,
                idle_since: start,
                leaving: Vec::new(),
            });
        }
        for (qi, q) in s.centre.queues.clone().iter().enumerate() {
            for a in &q.agents {
                if let Some(&ai) = s.agent_ix.get(a) {
                    s.agents[ai].queues.push(qi);
                    s.agents[ai].doing = Doing::Idle;
                    s.emit(EventKind::AgentJoinedQueue {
                        agent: a.clone(),
                        queue: q.name.to_string(),
                    });
                }
            }
            s.schedule_arrival(qi);
        }
        for i in 0..s.agents.len() {
            let id = s.agents[i].id.clone();
            s.emit(EventKind::AgentState {
                agent: id,
                status: AgentStatus::Available,
                reason: None,
                queue: None,
            });
        }
        s
    }

    pub fn centre(&self) -> &Centre {
        &self.centre
    }

    fn emit(&mut self, kind: EventKind) {
        self.out.push(Event { ts: self.now, kind });
    }

    fn at(&mut self, t: Ts, h: Happening) {
        self.seq += 1;
        self.agenda.push(Reverse((t, self.seq, h)));
    }

    fn exp_ms(&mut self, mean_s: f64) -> i64 {
        let d = Exp::new(1.0 / mean_s.max(0.001))
            .map(|e| e.sample(&mut self.rng))
            .unwrap_or(mean_s);
        (d * 1000.0) as i64
    }

    /// Arrival rate of a queue at `t`, calls per second.
    fn rate(&self, qi: usize, t: Ts) -> f64 {
        let q = &self.centre.queues[qi];
        let base = q.calls_per_hour / 3600.0;
        if q.name == self.centre.surge_queue {
            let into = (t.0 - self.start.0)
                .div_euclid(1000)
                .rem_euclid(self.centre.cycle_s);
            if into >= self.centre.surge_from_s && into < self.centre.surge_to_s {
                return base * self.centre.surge_factor;
            }
        }
        base
    }

    /// Next arrival by thinning a Poisson process at the peak rate.
    fn schedule_arrival(&mut self, qi: usize) {
        let peak =
            self.centre.queues[qi].calls_per_hour / 3600.0 * self.centre.surge_factor.max(1.0);
        let mut t = self.now;
        for _ in 0..10_000 {
            t = t.plus_ms(self.exp_ms(1.0 / peak).max(1));
            let accept = self.rate(qi, t) / peak;
            if self.rng.random::<f64>() < accept {
                break;
            }
        }
        self.at(t, Happening::Arrival(qi));
    }

    /// Everything that happened up to `now`, in time order.
    pub fn step(&mut self, now: Ts) -> Vec<Event> {
        while let Some(Reverse((t, _, _))) = self.agenda.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, _, h))) = self.agenda.pop() else {
                break;
            };
            self.now = t;
            self.happen(h);
        }
        self.now = self.now.max(now);
        std::mem::take(&mut self.out)
    }

    fn happen(&mut self, h: Happening) {
        match h {
            Happening::Arrival(qi) => {
                let call = self.next_call;
                self.next_call += 1;
                self.calls.insert(call, qi);
                self.waiting[qi].push_back(call);
                let caller = format!("+86138{:07}", self.rng.random_range(0..10_000_000u32));
                self.emit(EventKind::CallEnqueued {
                    call: call_id(call),
                    queue: self.centre.queues[qi].name.into(),
                    caller: Some(caller),
                    priority: None,
                });
                let patience = self.exp_ms(self.centre.patience_s);
                self.at(self.now.plus_ms(patience), Happening::GiveUp(call));
                self.schedule_arrival(qi);
                self.dispatch(qi);
            }
            Happening::GiveUp(call) => {
                let Some(&qi) = self.calls.get(&call) else {
                    return;
                };
                if let Some(pos) = self.waiting[qi].iter().position(|&c| c == call) {
                    self.waiting[qi].remove(pos);
                    self.calls.remove(&call);
                    self.emit(EventKind::CallAbandoned {
                        call: call_id(call),
                        queue: self.centre.queues[qi].name.into(),
                    });
                }
            }
            Happening::RingEnd(ai) => {
                let Doing::Ringing(call) = self.agents[ai].doing else {
                    return;
                };
                let Some(&qi) = self.calls.get(&call) else {
                    self.become_idle(ai);
                    return;
                };
                self.agents[ai].doing = Doing::Talking(call);
                self.emit(EventKind::CallAnswered {
                    call: call_id(call),
                    queue: self.centre.queues[qi].name.into(),
                    agent: self.agents[ai].id.clone(),
                });
                let talk = self.exp_ms(self.centre.queues[qi].talk_s).max(5_000);
                self.at(self.now.plus_ms(talk), Happening::TalkEnd(ai));
            }
            Happening::TalkEnd(ai) => {
                let Doing::Talking(call) = self.agents[ai].doing else {
                    return;
                };
                let qi = self.calls.remove(&call).unwrap_or(0);
                self.emit(EventKind::CallCompleted {
                    call: call_id(call),
                    queue: self.centre.queues[qi].name.into(),
                    agent: self.agents[ai].id.clone(),
                });
                self.agents[ai].doing = Doing::WrapUp;
                self.emit(EventKind::AgentState {
                    agent: self.agents[ai].id.clone(),
                    status: AgentStatus::WrapUp,
                    reason: None,
                    queue: None,
                });
                let w = self.centre.wrap_up_s * 1000;
                self.at(self.now.plus_ms(w), Happening::WrapEnd(ai));
            }
            Happening::WrapEnd(ai) => {
                if self.agents[ai].doing != Doing::WrapUp {
                    return;
                }
                let leaving = std::mem::take(&mut self.agents[ai].leaving);
                for qi in leaving {
                    self.leave(ai, qi);
                }
                // Now and then a phone agent takes a short break.
                if !self.agents[ai].queues.is_empty() && self.rng.random::<f64>() < 0.04 {
                    self.agents[ai].doing = Doing::Break;
                    self.emit(EventKind::AgentState {
                        agent: self.agents[ai].id.clone(),
                        status: AgentStatus::Paused,
                        reason: Some("break".into()),
                        queue: None,
                    });
                    let b = self.exp_ms(240.0);
                    self.at(self.now.plus_ms(b), Happening::BreakEnd(ai));
                } else {
                    self.become_idle(ai);
                }
            }
            Happening::BreakEnd(ai) => {
                if self.agents[ai].doing == Doing::Break {
                    self.become_idle(ai);
                }
            }
        }
    }

    fn become_idle(&mut self, ai: usize) {
        self.agents[ai].doing = if self.agents[ai].queues.is_empty() {
            Doing::Elsewhere
        } else {
            Doing::Idle
        };
        self.agents[ai].idle_since = self.now;
        self.emit(EventKind::AgentState {
            agent: self.agents[ai].id.clone(),
            status: AgentStatus::Available,
            reason: None,
            queue: None,
        });
        for qi in self.agents[ai].queues.clone() {
            self.dispatch(qi);
        }
    }

    /// Offers the oldest caller to the longest-idle available member.
    fn dispatch(&mut self, qi: usize) {
        while let Some(&call) = self.waiting[qi].front() {
            let pick = self
                .agents
                .iter()
                .enumerate()
                .filter(|(_, a)| a.doing == Doing::Idle && a.queues.contains(&qi))
                .min_by_key(|(_, a)| a.idle_since)
                .map(|(i, _)| i);
            let Some(ai) = pick else { return };
            self.waiting[qi].pop_front();
            self.agents[ai].doing = Doing::Ringing(call);
            self.emit(EventKind::AgentState {
                agent: self.agents[ai].id.clone(),
                status: AgentStatus::Ringing,
                reason: None,
                queue: None,
            });
            let r = self.centre.ring_s * 1000;
            self.at(self.now.plus_ms(r), Happening::RingEnd(ai));
            // While ringing the caller is still in the queue for the
            // monitor: it leaves at answer. Keep it reserved here.
            let _ = call;
        }
    }

    /// The phone system's sign-in: the agent joins the queue and takes calls.
    pub fn sign_in(&mut self, agent: &str, queue: &str) -> Result<(), String> {
        let ai = *self
            .agent_ix
            .get(agent)
            .ok_or_else(|| format!("no such agent {agent}"))?;
        let qi = self
            .centre
            .queues
            .iter()
            .position(|q| q.name == queue)
            .ok_or_else(|| format!("no such queue {queue}"))?;
        self.agents[ai].leaving.retain(|&q| q != qi);
        if self.agents[ai].queues.contains(&qi) {
            return Ok(());
        }
        self.agents[ai].queues.push(qi);
        self.emit(EventKind::AgentJoinedQueue {
            agent: agent.into(),
            queue: queue.into(),
        });
        if self.agents[ai].doing == Doing::Elsewhere {
            self.agents[ai].doing = Doing::Idle;
            self.agents[ai].idle_since = self.now;
        }
        self.dispatch(qi);
        Ok(())
    }

    /// The phone system's sign-out: immediate when idle, after the call
    /// (and wrap-up) otherwise.
    pub fn sign_out(&mut self, agent: &str, queue: &str) -> Result<(), String> {
        let ai = *self
            .agent_ix
            .get(agent)
            .ok_or_else(|| format!("no such agent {agent}"))?;
        let qi = self
            .centre
            .queues
            .iter()
            .position(|q| q.name == queue)
            .ok_or_else(|| format!("no such queue {queue}"))?;
        if !self.agents[ai].queues.contains(&qi) {
            return Ok(());
        }
        match self.agents[ai].doing {
            Doing::Ringing(_) | Doing::Talking(_) | Doing::WrapUp => {
                if !self.agents[ai].leaving.contains(&qi) {
                    self.agents[ai].leaving.push(qi);
                }
            }
            _ => self.leave(ai, qi),
        }
        Ok(())
    }

    fn leave(&mut self, ai: usize, qi: usize) {
        self.agents[ai].queues.retain(|&q| q != qi);
        self.emit(EventKind::AgentLeftQueue {
            agent: self.agents[ai].id.clone(),
            queue: self.centre.queues[qi].name.into(),
        });
        if self.agents[ai].queues.is_empty() && self.agents[ai].doing == Doing::Idle {
            self.agents[ai].doing = Doing::Elsewhere;
        }
    }

    /// Callers waiting right now, per queue name (for tests).
    pub fn waiting(&self, queue: &str) -> usize {
        self.centre
            .queues
            .iter()
            .position(|q| q.name == queue)
            .map(|qi| self.waiting[qi].len())
            .unwrap_or(0)
    }
}

fn call_id(n: u64) -> String {
    format!("sim-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_surge_backs_the_hotline_up_and_then_it_drains() {
        let start = Ts::parse_rfc3339("2026-11-23T01:00:00Z").unwrap();
        let mut sim = Simulator::new(Centre::hotline(), 7, start);
        let mut peak = 0;
        let mut events = 0;
        for s in (0..40 * 60).step_by(5) {
            events += sim.step(start.plus_ms(s * 1000)).len();
            peak = peak.max(sim.waiting("hotline"));
        }
        assert!(events > 500, "{events}");
        assert!(peak > 10, "surge peak only {peak}");
        assert!(
            sim.waiting("hotline") < 5,
            "did not drain: {}",
            sim.waiting("hotline")
        );
    }

    #[test]
    fn signed_in_agents_take_calls_and_leave_after_the_call() {
        let start = Ts(0);
        let mut sim = Simulator::new(Centre::hotline(), 1, start);
        sim.step(Ts(1000));
        sim.sign_in("x18", "hotline")
            .unwrap_or_else(|e| panic!("{e}"));
        let evs = sim.step(Ts(10 * 60_000));
        assert!(
            evs.iter().any(
                |e| matches!(&e.kind, EventKind::CallAnswered { agent, .. } if agent == "x18")
            )
        );
        sim.sign_out("x18", "hotline").unwrap();
        let evs = sim.step(Ts(20 * 60_000));
        assert!(
            evs.iter().any(
                |e| matches!(&e.kind, EventKind::AgentLeftQueue { agent, .. } if agent == "x18")
            )
        );
    }
}
