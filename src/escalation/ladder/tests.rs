//! The ladder on its own: figures and event time in, decisions out.

use super::*;
use crate::config::Config;

const LADDER: &str = r#"
[[agents]]
id = "x1"
groups = ["floating-experts"]
[[agents]]
id = "o1"
groups = ["outbound"]
[[agents]]
id = "q1"
groups = ["quality"]
[[agents]]
id = "b1"
groups = ["back-office"]

[[ladders]]
name = "emergency"
mode = "MODE"
max_added_seats = 9
release_when = "waiting < 5"
release_hold = "2m"
advice_expiry = "10m"

[[ladders.stages]]
name = "experts"
when = "waiting > 5"
for = "5m"
sign_in = { group = "floating-experts" }
[[ladders.stages]]
name = "outbound"
when = "waiting > 5"
for = "5m"
sign_in = { group = "outbound", min = 2, max = 3 }
[[ladders.stages]]
name = "quality"
when = "waiting > 5"
for = "5m"
sign_in = { group = "quality", min = 2, max = 3 }
[[ladders.stages]]
name = "back-office"
when = "waiting > 10"
for = "0s"
sign_in = { group = "back-office", min = 2, max = 3 }
[[ladders.stages]]
name = "extend-shifts"
when = "waiting > 10"
for = "5m"
advise = "Extend shifts to add seats, within the physical seat limit"
[[ladders.stages]]
name = "overtime"
when = "waiting > 10"
for = "5m"
advise = "Call emergency overtime"
staffing = "erlang_c"
"#;

fn plan(mode: &str) -> Arc<Plan> {
    let cfg = Config::parse("t.toml", &LADDER.replace("MODE", mode)).unwrap();
    Arc::new(Plan::compile(cfg.ladder("emergency").unwrap()).unwrap())
}

fn t0() -> Ts {
    Ts::parse_rfc3339("2026-11-23T10:00:00+08:00").unwrap()
}

/// `m` minutes after 10:00.
fn m(min: f64) -> Ts {
    t0().plus_ms((min * 60_000.0).round() as i64)
}

#[derive(Debug, Clone)]
struct Person {
    id: String,
    groups: Vec<String>,
    status: AgentStatus,
    since: Ts,
    in_queue: bool,
}

#[derive(Default)]
struct TestFloor {
    people: Vec<Person>,
    required: Option<u32>,
}

impl TestFloor {
    fn centre() -> TestFloor {
        let mut f = TestFloor::default();
        for (g, ids) in [
            ("floating-experts", &["x1", "x2", "x3"][..]),
            ("outbound", &["o1", "o2", "o3", "o4"][..]),
            ("quality", &["q1", "q2", "q3"][..]),
            ("back-office", &["b1", "b2", "b3", "b4"][..]),
        ] {
            for (i, id) in ids.iter().enumerate() {
                f.people.push(Person {
                    id: id.to_string(),
                    groups: vec![g.to_string()],
                    status: AgentStatus::Available,
                    // Later ids have been idle for less time.
                    since: t0().plus_ms(-3_600_000 + i as i64 * 60_000),
                    in_queue: false,
                });
            }
        }
        f
    }

    fn person(&mut self, id: &str) -> &mut Person {
        self.people.iter_mut().find(|p| p.id == id).unwrap()
    }
}

impl Floor for TestFloor {
    fn candidates(&self, group: &str) -> Vec<Candidate> {
        self.people
            .iter()
            .filter(|p| {
                p.status != AgentStatus::LoggedOut
                    && !p.in_queue
                    && p.groups.iter().any(|g| g == group)
            })
            .map(|p| Candidate {
                agent: p.id.clone(),
                status: p.status,
                since: p.since,
                assignments: 0,
            })
            .collect()
    }
    fn busy(&self, agent: &str) -> bool {
        self.people.iter().any(|p| {
            p.id == agent && matches!(p.status, AgentStatus::OnCall | AgentStatus::Ringing)
        })
    }
    fn in_group(&self, agent: &str, group: &str) -> bool {
        self.people
            .iter()
            .any(|p| p.id == agent && p.groups.iter().any(|g| g == group))
    }
}

/// A ladder, a floor that obeys its acts like a phone system, and the log.
struct H {
    l: QueueLadder,
    floor: TestFloor,
    ids: u64,
    entries: Vec<Entry>,
    acts: Vec<(Ts, Act)>,
    marks: Vec<Mark>,
    waiting: f64,
    logged_in: f64,
    seats_used: u32,
}

impl H {
    fn new(mode: &str) -> H {
        H {
            l: QueueLadder::new("hotline", Some(plan(mode))),
            floor: TestFloor::centre(),
            ids: 0,
            entries: Vec::new(),
            acts: Vec::new(),
            marks: Vec::new(),
            waiting: 0.0,
            logged_in: 10.0,
            seats_used: 0,
        }
    }

    fn take(&mut self, now: Ts, outs: Vec<Output>) -> Vec<Output> {
        for o in &outs {
            match o {
                Output::Entry(e) => self.entries.push(e.clone()),
                Output::Mark(mk) => self.marks.push(mk.clone()),
                Output::Act(a) => {
                    self.acts.push((now, a.clone()));
                    self.floor.person(&a.agent).in_queue = a.verb == CtiVerb::SignIn;
                }
            }
        }
        outs
    }

    /// Evaluates at `now` with `waiting` callers.
    fn at(&mut self, now: Ts, waiting: f64) -> Vec<Output> {
        self.waiting = waiting;
        self.eval(now)
    }

    fn eval(&mut self, now: Ts) -> Vec<Output> {
        let required = self.floor.required;
        let seats_used = self.seats_used;
        let inp = Inputs {
            now,
            figures: QueueFigures {
                waiting: self.waiting,
                logged_in: self.logged_in,
                ..Default::default()
            },
            required_agents: &move || required,
            floor: &self.floor,
            seats_used: &|| seats_used,
        };
        let outs = self.l.handle_update(&inp, &mut self.ids);
        self.take(now, outs)
    }

    /// Runs every deadline up to `until` (as the driver does), then `until`.
    fn run_to(&mut self, until: Ts) {
        for _ in 0..1000 {
            match self.l.poll_timeout() {
                Some(d) if d <= until => {
                    self.eval(d);
                    if self.l.poll_timeout() == Some(d) {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.eval(until);
    }

    fn stages(&self) -> Vec<(Ts, Direction, String)> {
        self.entries
            .iter()
            .map(|e| (e.ts, e.direction, e.stage_name.clone()))
            .collect()
    }
}

fn up(t: Ts, s: &str) -> (Ts, Direction, String) {
    (t, Direction::Up, s.to_string())
}
fn down(t: Ts, s: &str) -> (Ts, Direction, String) {
    (t, Direction::Down, s.to_string())
}

#[test]
fn a_surge_walks_the_ladder_up_and_back_down_newest_first() {
    let mut h = H::new("auto");
    h.floor.required = Some(17);
    h.at(m(0.0), 6.0);
    assert_eq!(
        h.l.poll_timeout(),
        Some(m(5.0)),
        "the experts' clock runs out at 10:05"
    );
    h.run_to(m(14.0));
    // Quality's clock runs out at 10:15; the queue jumps past 10 at 10:14.
    h.at(m(14.0), 12.0);
    h.run_to(m(40.0));
    assert_eq!(
        h.stages(),
        vec![
            up(m(5.0), "experts"),
            up(m(10.0), "outbound"),
            up(m(15.0), "quality"),
            up(m(15.0), "back-office"),
            up(m(20.0), "extend-shifts"),
            up(m(25.0), "overtime"),
        ],
        "a jump past 10 does not stall the ladder; back-office comes with quality"
    );
    let overtime = h.entries.last().unwrap();
    assert_eq!(overtime.actions[0].kind, "advise");
    assert_eq!(
        overtime.actions[0].seats,
        Some(7),
        "17 needed, 10 logged in"
    );
    assert!(
        overtime.actions[0]
            .detail
            .as_ref()
            .unwrap()
            .contains("7 more seats")
    );
    assert_eq!(h.entries[0].reason, "waiting=6 > 5 for 5m");
    assert_eq!(h.entries[3].reason, "waiting=12 > 10");
    // Who came: all experts, 3 of 4 outbound (longest idle first), all 3
    // quality, 3 of 4 back-office.
    let signed: Vec<&str> = h.acts.iter().map(|(_, a)| a.agent.as_str()).collect();
    assert_eq!(
        signed,
        [
            "x1", "x2", "x3", "o1", "o2", "o3", "q1", "q2", "q3", "b1", "b2", "b3"
        ]
    );
    let status = h.l.status().unwrap();
    assert_eq!((status.stage, status.stage_name.as_str()), (6, "overtime"));

    // b2 is on a call when back-office is released.
    h.floor.person("b2").status = AgentStatus::OnCall;
    h.acts.clear();
    h.at(m(40.0), 3.0);
    h.run_to(m(60.0));
    assert_eq!(
        h.stages()[6..],
        [
            down(m(42.0), "overtime"),
            down(m(44.0), "extend-shifts"),
            down(m(46.0), "back-office"),
            down(m(48.0), "quality"),
            down(m(50.0), "outbound"),
            down(m(52.0), "experts"),
        ],
        "one stage per 2m hold, newest first"
    );
    let bo = &h.entries[8];
    assert_eq!(bo.actions[1].agent.as_deref(), Some("b2"));
    assert_eq!(bo.actions[1].detail.as_deref(), Some(ON_A_CALL));
    assert!(
        !h.acts.iter().any(|(_, a)| a.agent == "b2"),
        "not signed out while on the call"
    );
    assert!(h.l.status().is_some(), "b2 is still ours");
    h.floor.person("b2").status = AgentStatus::WrapUp;
    h.eval(m(61.0));
    assert_eq!(
        h.acts.last().unwrap().1.agent,
        "b2",
        "signed out when the call ends"
    );
    assert_eq!(h.acts.last().unwrap().0, m(61.0));
    assert_eq!(
        h.acts
            .iter()
            .filter(|(_, a)| a.verb == CtiVerb::SignOut)
            .count(),
        12
    );
    assert!(h.l.status().is_none());
}

#[test]
fn a_clock_restarts_when_its_condition_stops_holding() {
    let mut h = H::new("auto");
    h.at(m(0.0), 6.0);
    h.at(m(4.0), 5.0);
    h.at(m(4.5), 7.0);
    h.run_to(m(9.0));
    assert!(h.entries.is_empty());
    h.run_to(m(9.5));
    assert_eq!(h.stages(), vec![up(m(9.5), "experts")]);
}

#[test]
fn flapping_input_does_not_flap_the_ladder() {
    // Around the trigger: 4, 6, 4, 6 ... every 30 s for an hour.
    let mut h = H::new("auto");
    for i in 0..120 {
        h.at(m(i as f64 * 0.5), if i % 2 == 0 { 4.0 } else { 6.0 });
    }
    h.run_to(m(61.0));
    assert!(h.entries.is_empty(), "{:?}", h.stages());

    // Around the release threshold while escalated: 4, 6, 4, 6 ...
    let mut h = H::new("auto");
    h.at(m(0.0), 8.0);
    h.run_to(m(11.0));
    assert_eq!(h.entries.len(), 2);
    for i in 0..120 {
        h.at(
            m(11.0 + i as f64 * 0.75),
            if i % 2 == 0 { 4.0 } else { 6.0 },
        );
    }
    assert_eq!(h.entries.len(), 2, "{:?}", h.stages());
    // Exactly on the threshold (5) neither climbs nor releases.
    h.at(m(120.0), 5.0);
    h.run_to(m(200.0));
    assert_eq!(h.entries.len(), 2);
}

#[test]
fn grace_lets_a_clock_ride_out_a_blip() {
    let mut h = H::new("auto");
    let mut p = (**h.l.plan().unwrap()).clone();
    p.grace_ms = 30_000;
    h.l = QueueLadder::new("hotline", Some(Arc::new(p)));
    h.at(m(0.0), 6.0);
    h.at(m(2.0), 5.0);
    h.at(m(2.25), 6.0); // back within 15 s
    h.run_to(m(5.0));
    assert_eq!(h.stages(), vec![up(m(5.0), "experts")]);
    h.at(m(6.0), 5.0);
    h.at(m(7.0), 6.0); // a minute below: outbound's clock restarts
    h.run_to(m(11.9));
    assert_eq!(h.entries.len(), 1);
    h.run_to(m(13.0));
    assert_eq!(h.stages()[1], up(m(12.0), "outbound"));
}

#[test]
fn eligibility_idle_first_then_fewest_assignments_then_longest_idle() {
    let mut cands = [
        Candidate {
            agent: "busy".into(),
            status: AgentStatus::OnCall,
            since: Ts(0),
            assignments: 0,
        },
        Candidate {
            agent: "twice".into(),
            status: AgentStatus::Available,
            since: Ts(0),
            assignments: 2,
        },
        Candidate {
            agent: "fresh".into(),
            status: AgentStatus::Available,
            since: Ts(500),
            assignments: 0,
        },
        Candidate {
            agent: "longest".into(),
            status: AgentStatus::Available,
            since: Ts(100),
            assignments: 0,
        },
        Candidate {
            agent: "paused".into(),
            status: AgentStatus::Paused,
            since: Ts(0),
            assignments: 0,
        },
    ];
    cands.sort_by(pick_order);
    let order: Vec<&str> = cands.iter().map(|c| c.agent.as_str()).collect();
    assert_eq!(order, ["longest", "fresh", "twice", "busy", "paused"]);
}

#[test]
fn too_few_eligible_signs_in_who_there_is_and_says_so() {
    let mut h = H::new("auto");
    // Only one outbound agent is free; two are logged out, one is already
    // in the queue.
    h.floor.person("o2").status = AgentStatus::LoggedOut;
    h.floor.person("o3").status = AgentStatus::LoggedOut;
    h.floor.person("o4").in_queue = true;
    h.at(m(0.0), 7.0);
    h.run_to(m(10.0));
    let e = &h.entries[1];
    assert_eq!(e.stage_name, "outbound");
    assert_eq!(e.actions.len(), 2);
    assert_eq!(e.actions[0].agent.as_deref(), Some("o1"));
    assert_eq!(e.actions[1].kind, "advise");
    let d = e.actions[1].detail.as_deref().unwrap();
    assert!(
        d.contains("only 1 of the 2 wanted from group `outbound`"),
        "{d}"
    );
}

#[test]
fn the_seat_limit_caps_sign_ins_and_keep_leaves_people_out() {
    let mut h = H::new("auto");
    h.seats_used = 7; // two seats left of 9
    let mut p = (**h.l.plan().unwrap()).clone();
    p.stages[0].sign_in.as_mut().unwrap().keep = 1;
    h.l = QueueLadder::new("hotline", Some(Arc::new(p)));
    h.at(m(0.0), 7.0);
    h.run_to(m(10.0));
    let e = &h.entries[0];
    let names: Vec<_> = e.actions.iter().filter_map(|a| a.agent.clone()).collect();
    assert_eq!(names, ["x1", "x2"], "keep = 1 leaves x3 (ranked last) out");
    h.seats_used = 9;
    let e = &h.entries[1];
    assert_eq!(e.stage_name, "outbound");
    let advice = e.actions.iter().find(|a| a.kind == "advise").unwrap();
    assert!(
        advice.detail.as_deref().unwrap().contains("seat limit"),
        "{advice:?}"
    );
}

#[test]
fn stages_firing_together_share_the_seat_limit() {
    let mut h = H::new("auto");
    h.seats_used = 5; // four seats left of 9
    let mut p = (**h.l.plan().unwrap()).clone();
    p.stages[1].for_ms = 0;
    h.l = QueueLadder::new("hotline", Some(Arc::new(p)));
    h.at(m(0.0), 7.0);
    h.run_to(m(5.0));
    assert_eq!(
        h.stages(),
        vec![up(m(5.0), "experts"), up(m(5.0), "outbound")]
    );
    let people: Vec<String> = h.acts.iter().map(|(_, a)| a.agent.clone()).collect();
    assert_eq!(people, ["x1", "x2", "x3", "o1"]);
    let advice = &h.entries[1].actions[1];
    assert!(
        advice
            .detail
            .as_deref()
            .unwrap()
            .contains("seat limit of 9"),
        "{advice:?}"
    );
}

#[test]
fn climbing_again_keeps_an_agent_whose_sign_out_waits_for_a_call() {
    let mut h = H::new("auto");
    h.at(m(0.0), 7.0);
    h.run_to(m(5.0));
    h.floor.person("x2").status = AgentStatus::OnCall;
    h.at(m(6.0), 2.0);
    h.run_to(m(8.0));
    assert_eq!(h.entries.len(), 2, "experts released");
    assert_eq!(h.l.signed_in(), ["x2"]);
    // The queue backs up again before x2's call ends.
    h.at(m(9.0), 7.0);
    h.run_to(m(14.0));
    let again = h.entries.last().unwrap();
    assert_eq!(
        (again.direction, again.stage_name.as_str()),
        (Direction::Up, "experts")
    );
    assert_eq!(again.actions[0].agent.as_deref(), Some("x2"));
    assert_eq!(again.actions[0].result, OK, "kept, not signed in twice");
    assert!(
        h.marks
            .iter()
            .any(|mk| mk.entry == 2 && mk.result == CANCELLED)
    );
    h.floor.person("x2").status = AgentStatus::Available;
    let before = h.acts.len();
    h.eval(m(14.5));
    assert!(
        !h.acts[before..]
            .iter()
            .any(|(_, a)| a.agent == "x2" && a.verb == CtiVerb::SignOut),
        "the cancelled sign-out does not run when the call ends"
    );
    let x2_ins = h
        .acts
        .iter()
        .filter(|(_, a)| a.agent == "x2" && a.verb == CtiVerb::SignIn)
        .count();
    assert_eq!(x2_ins, 1);
}

#[test]
fn advise_mode_waits_for_approval() {
    let mut h = H::new("advise");
    h.at(m(0.0), 7.0);
    h.run_to(m(12.0));
    assert_eq!(h.entries.len(), 1, "no climbing past a pending proposal");
    let e = &h.entries[0];
    assert_eq!(e.mode, "advise");
    assert!(e.actions.iter().all(|a| a.result == PENDING));
    assert!(h.acts.is_empty());
    assert_eq!(h.l.status().unwrap().pending, vec![1]);
    assert_eq!(h.l.reject(99, m(12.0), "boss"), Err(NotPending));
    let outs = h.l.approve(1, m(12.0), "boss", &h.floor).unwrap();
    h.take(m(12.0), outs);
    h.eval(m(12.0));
    assert_eq!(h.acts.len(), 3, "experts signed in on approval");
    assert!(
        h.marks
            .iter()
            .any(|mk| mk.action.is_none() && mk.result == APPROVED)
    );
    // Outbound's clock starts at the approval.
    h.run_to(m(17.0));
    assert_eq!(h.stages()[1], up(m(17.0), "outbound"));
    let outs = h.l.reject(2, m(18.0), "boss").unwrap();
    h.take(m(18.0), outs);
    h.eval(m(18.0));
    assert_eq!(h.acts.len(), 3, "rejected: nobody signed in");
    // The rejected step holds its place; quality is proposed 5 min later
    // and nobody answers it.
    h.run_to(m(23.0));
    assert_eq!(h.stages()[2], up(m(23.0), "quality"));
    h.run_to(m(33.0));
    assert!(
        h.marks
            .iter()
            .any(|mk| mk.entry == 3 && mk.action.is_none() && mk.result == EXPIRED)
    );
    // Expired: re-proposed when its clock runs out again.
    h.run_to(m(38.0));
    assert_eq!(h.stages()[3], up(m(38.0), "quality"));
    // Release of a stage with people waits for approval too; a stage with
    // nobody (the rejected one) goes without asking.
    let outs = h.l.reject(4, m(38.5), "boss").unwrap();
    h.take(m(38.5), outs);
    h.eval(m(38.5));
    h.at(m(39.0), 1.0);
    h.run_to(m(44.0));
    let downs: Vec<_> = h
        .stages()
        .into_iter()
        .filter(|s| s.1 == Direction::Down)
        .collect();
    assert_eq!(
        downs,
        vec![
            down(m(41.0), "quality"),
            down(m(43.0), "outbound"),
            down(m(45.0), "experts")
        ][..2]
    );
    h.run_to(m(45.0));
    let last = h.entries.last().unwrap();
    assert_eq!(last.stage_name, "experts");
    assert!(
        last.actions
            .iter()
            .all(|a| a.detail.as_deref() == Some("waiting for approval"))
    );
    let outs = h.l.approve(last.id, m(46.0), "boss", &h.floor).unwrap();
    h.take(m(46.0), outs);
    assert_eq!(
        h.acts
            .iter()
            .filter(|(_, a)| a.verb == CtiVerb::SignOut)
            .count(),
        3
    );
    assert!(h.l.status().is_none());
}

#[test]
fn a_failed_sign_in_is_forgotten_and_a_failed_sign_out_retried() {
    let mut h = H::new("auto");
    h.at(m(0.0), 7.0);
    h.run_to(m(5.0));
    let a = h.acts[0].1.clone();
    h.l.handle_result(&a, false, m(5.0));
    assert_eq!(h.l.signed_in(), ["x2", "x3"]);
    h.at(m(6.0), 1.0);
    h.run_to(m(8.0));
    let out = h
        .acts
        .iter()
        .filter(|(_, a)| a.verb == CtiVerb::SignOut)
        .count();
    assert_eq!(out, 2);
    let failed = h.acts.last().unwrap().1.clone();
    h.l.handle_result(&failed, false, m(8.0));
    h.run_to(m(10.5));
    let retry = h.acts.last().unwrap();
    assert_eq!(
        (retry.0, retry.1.attempt),
        (m(10.0), 2),
        "retried a hold later"
    );
}

#[test]
fn the_ladder_resumes_from_its_log() {
    let mut h = H::new("auto");
    h.at(m(0.0), 7.0);
    h.run_to(m(10.0));
    h.floor.person("o1").status = AgentStatus::OnCall;
    h.at(m(11.0), 1.0);
    h.run_to(m(13.0));
    // outbound released, o1 still on a call; experts active.
    let mut entries = h.entries.clone();
    // Compose as the store would: results of the acts that ran.
    for (_, a) in &h.acts {
        entries[(a.entry - 1) as usize].actions[a.action].result = OK.into();
    }
    // x3's sign-in was decided but never answered (crash).
    entries[0].actions[2].result = PENDING.into();
    let plans = |n: &str| (n == "emergency").then(|| plan("auto"));
    let mut r = QueueLadder::new("hotline", Some(plan("auto")));
    let outs = r.restore(&entries, &plans);
    assert_eq!(
        outs,
        vec![Output::Act(Act {
            entry: 1,
            action: 2,
            verb: CtiVerb::SignIn,
            agent: "x3".into(),
            queue: "hotline".into(),
            attempt: 1,
        })],
        "only the unanswered act runs again"
    );
    let s = r.status().unwrap();
    assert_eq!((s.stage, s.stage_name.as_str()), (1, "experts"));
    let mut people = r.signed_in();
    people.sort();
    assert_eq!(
        people,
        ["o1", "x1", "x2", "x3"],
        "o1 still waits to be signed out"
    );
    // The restored ladder carries on: o1's call ends, then experts go.
    h.l = r;
    h.floor.person("o1").status = AgentStatus::Available;
    h.acts.clear();
    h.at(m(14.0), 1.0);
    h.run_to(m(17.0));
    let outs: Vec<&str> = h.acts.iter().map(|(_, a)| a.agent.as_str()).collect();
    assert_eq!(outs, ["o1", "x1", "x2", "x3"]);
}

#[test]
fn a_schedule_change_waits_until_the_escalation_is_over() {
    let mut h = H::new("auto");
    h.at(m(0.0), 7.0);
    h.run_to(m(5.0));
    let mut night = (*plan("auto")).clone();
    night.name = "night".into();
    h.l.set_plan(Some(&Arc::new(night)));
    assert_eq!(
        h.l.plan().unwrap().name,
        "emergency",
        "deferred while active"
    );
    h.at(m(6.0), 1.0);
    h.run_to(m(9.0));
    assert_eq!(h.l.plan().unwrap().name, "night");
}

#[test]
fn a_restored_escalation_whose_ladder_is_gone_is_still_released() {
    let mut h = H::new("auto");
    h.at(m(0.0), 7.0);
    h.run_to(m(5.0));
    let mut entries = h.entries.clone();
    for a in &mut entries[0].actions {
        a.result = OK.into();
    }
    // The configuration no longer has "emergency", and the queue has no ladder.
    let mut r = QueueLadder::new("hotline", None);
    assert!(r.restore(&entries, &|_| None).is_empty());
    assert_eq!(r.plan().unwrap().name, "emergency");
    h.l = r;
    h.acts.clear();
    h.at(m(10.0), 1.0);
    h.run_to(m(13.0));
    let outs: Vec<&str> = h.acts.iter().map(|(_, a)| a.agent.as_str()).collect();
    assert_eq!(
        outs,
        ["x1", "x2", "x3"],
        "signed out after the default 2m hold"
    );
    assert_eq!(h.acts[0].0, m(12.0));
    assert!(h.l.plan().is_none(), "then the queue runs no ladder");
}

/// A follower keeps the clocks from what it sees; when the leader's
/// "experts" step arrives (at 5:00, rebuilt from the log at 5:30), the
/// clock of the next stage starts again, as the leader's did when it
/// acted. Taking the lead at 7:00, it does not take the surge's onset at
/// 10:00 for the "outbound" wait: outbound follows a full five minutes
/// after the step (at 10:30 by the follower's clock, 10:00 by the dead
/// leader's), not at once.
#[test]
fn a_follower_s_clock_restarts_when_the_leader_s_step_arrives() {
    let mut h = H::new("auto");
    h.at(m(0.0), 7.0);
    h.run_to(m(5.0));
    assert_eq!(h.stages(), [up(m(5.0), "experts")]);
    let fig = QueueFigures {
        waiting: 7.0,
        logged_in: 10.0,
        ..Default::default()
    };
    let plans = |n: &str| (n == "emergency").then(|| plan("auto"));
    let mut onsets = Onsets::default();
    let follower = QueueLadder::new("hotline", Some(plan("auto")));
    for s in 0..=5 {
        follower.shadow_update(&mut onsets, m(s as f64), &fig);
    }
    // The leader's entry arrives; the follower's ladder is rebuilt.
    let mut follower = QueueLadder::new("hotline", Some(plan("auto")));
    drop(follower.restore(&h.entries, &plans));
    follower.shadow_update(&mut onsets, m(5.5), &fig);
    follower.shadow_update(&mut onsets, m(7.0), &fig);

    // The leader dies; the follower takes the lead at 7:00.
    let mut new = H::new("auto");
    drop(new.l.restore(&h.entries, &plans));
    new.ids = h.ids;
    new.l.resume_clocks(onsets);
    assert!(new.at(m(7.0), 7.0).is_empty(), "outbound is not due yet");
    new.run_to(m(10.4));
    assert!(new.entries.is_empty());
    new.run_to(m(10.5));
    assert_eq!(new.stages(), [up(m(10.5), "outbound")]);
}
