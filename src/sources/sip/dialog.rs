//! Follows INVITE dialogs ("legs") from mirrored SIP and reports the moments
//! a queue monitor cares about: ringing, answer, failure or cancel, hang-up.
//! Sans-IO: fed parsed messages with their capture time and addresses.
//!
//! Why it matches responses by transaction: a proxy that mirrors
//! everything (Kamailio `trace_mode`) shows each message twice, as received
//! and as forwarded, and with forking it shows the final response of every
//! branch. Only the final response of the originator's own transaction ends
//! the leg: the one whose top Via branch is the branch of the INVITE the
//! originator sent (RFC 3261 17.1.3; the proxy's own Via is on top of a
//! branch's responses). The address the response was sent to is not used
//! when branches are known: without `rport` a response goes to the port in
//! the caller's Via, not the port the INVITE came from (RFC 3261 18.2.2).
//! Only for a sender without a Via branch (RFC 2543) does the tracker fall
//! back to addresses (the response sent to the source of the first INVITE),
//! and without addresses either, any final response ends the leg.
//!
//! A proxy that forks the INVITE (a ring-all hunt group) sends it on with
//! the same Call-ID and CSeq under its own Via branch, one per target, with
//! the target's user in the Request-URI: each such branch is reported
//! ([`LegEvent::Branch`]) so the mapper can show the agents it rings.
//!
//! A digest challenge (401/407) is not the end of a call: the phone sends
//! the INVITE again with the same Call-ID and a higher CSeq (RFC 3261
//! 22.2). The leg waits for it ("challenge pending") and follows the new
//! transaction; only if no new INVITE comes within the linger time does the
//! challenge end the leg as a failure.
//!
//! Retransmissions and the proxy's second copy are absorbed by the state
//! machine itself: every report happens on a state change (first
//! provisional, first 2xx, first final, first BYE), so a repeat changes
//! nothing. Ended legs linger for [`DialogLimits::linger_ms`] so that late
//! repeats do not open a new leg.
//!
//! Memory is bounded: at most `max_legs` legs (new ones beyond are refused
//! and counted), and legs that go quiet expire on event time
//! (`unanswered_timeout` before answer, `answered_timeout` after).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::message::{Method, SipMessage};
use crate::time::Ts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogLimits {
    pub max_legs: usize,
    /// A leg with no message for this long before answer expires.
    pub unanswered_timeout_ms: i64,
    /// A leg with no message for this long after answer expires (a lost
    /// BYE; session timers refresh long calls with re-INVITE/UPDATE).
    pub answered_timeout_ms: i64,
    /// How long an ended leg is remembered to absorb retransmissions.
    pub linger_ms: i64,
}

impl Default for DialogLimits {
    fn default() -> Self {
        DialogLimits {
            max_legs: 100_000,
            unanswered_timeout_ms: 3_600_000,
            answered_timeout_ms: 8 * 3_600_000,
            linger_ms: 32_000,
        }
    }
}

/// Where a message was captured: HEP addresses and capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    pub ts: Ts,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// First 180/183 (or other 101..199) of the leg.
    Ringing { call_id: String, ts: Ts, code: u16 },
    /// First 2xx to the INVITE. `contact_user` is the answering device.
    Answered {
        call_id: String,
        ts: Ts,
        contact_user: Option<String>,
    },
    /// Final non-2xx toward the originator. `cancelled`: the originator
    /// sent CANCEL first, and `ts` is the CANCEL's time (when the caller gave
    /// up, not when the 487 came back).
    Failed {
        call_id: String,
        ts: Ts,
        code: u16,
        cancelled: bool,
    },
    /// BYE. `by_originator`: sent by the side that sent the INVITE.
    /// `answered` is false for a BYE on a leg whose 2xx was never seen.
    Ended {
        call_id: String,
        ts: Ts,
        by_originator: bool,
        answered: bool,
    },
    /// A branch of a forked INVITE (same Call-ID and CSeq, the proxy's own
    /// Via branch, `user` from its Request-URI) reached a moment.
    Branch {
        call_id: String,
        ts: Ts,
        user: String,
        moment: BranchMoment,
    },
    /// Nothing seen for the timeout; `ts` is when that was noticed (the
    /// sweep's time: the leg was live until then as far as anyone could
    /// tell, and events are not dated back past what the engine has seen).
    Expired {
        call_id: String,
        ts: Ts,
        answered: bool,
    },
}

impl LegEvent {
    pub fn call_id(&self) -> &str {
        match self {
            LegEvent::Ringing { call_id, .. }
            | LegEvent::Answered { call_id, .. }
            | LegEvent::Failed { call_id, .. }
            | LegEvent::Ended { call_id, .. }
            | LegEvent::Branch { call_id, .. }
            | LegEvent::Expired { call_id, .. } => call_id,
        }
    }
}

/// What happened on one branch of a forked INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchMoment {
    /// The proxy sent the INVITE to this target.
    Offered,
    /// First 18x of the branch.
    Ringing,
    /// The branch's 2xx.
    Answered,
    /// The branch's final non-2xx (busy, declined, or 487 after the proxy
    /// cancelled it because another branch answered or the caller gave up).
    Failed { code: u16 },
}

/// At most this many fork branches are followed per leg.
const MAX_BRANCHES: usize = 32;

#[derive(Debug, Clone)]
struct Branch {
    via: Box<str>,
    user: Box<str>,
    state: State,
}

/// What the tracker made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// An initial INVITE of a leg not tracked yet: call [`DialogTracker::start`]
    /// if the leg is of interest.
    NewInvite,
    /// Belongs to a tracked leg (events, if any, were pushed).
    Tracked,
    /// Belongs to no tracked leg.
    Untracked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Calling,
    Ringing,
    Answered,
    Ended,
}

#[derive(Debug, Clone)]
struct Leg {
    state: State,
    invite_cseq: u32,
    from_tag: Option<Box<str>>,
    uac: Option<SocketAddr>,
    /// Top Via branch of the originator's current INVITE.
    uac_branch: Option<Box<str>>,
    /// The user of the originator's Request-URI (forks go to other users).
    ruri_user: Option<Box<str>>,
    /// A 401/407 came back; the leg waits for the INVITE sent again.
    challenged: Option<(Ts, u16)>,
    branches: Vec<Branch>,
    cancel_ts: Option<Ts>,
    last_seen: Ts,
}

/// Counters for tests and the report; not exported as metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DialogStats {
    pub started: u64,
    /// Messages of tracked legs that changed nothing (retransmissions,
    /// proxy copies, provisional repeats, ACKs).
    pub repeats: u64,
    /// Final responses of a forked branch, not sent to the originator.
    pub branch_finals: u64,
    /// 401/407 challenges followed by a new INVITE on the same Call-ID.
    pub challenges: u64,
    pub expired: u64,
    pub refused: u64,
}

#[derive(Debug, Clone)]
pub struct DialogTracker {
    legs: HashMap<Box<str>, Leg>,
    limits: DialogLimits,
    last_sweep: Option<Ts>,
    pub stats: DialogStats,
}

impl DialogTracker {
    pub fn new(limits: DialogLimits) -> Self {
        DialogTracker {
            legs: HashMap::new(),
            limits,
            last_sweep: None,
            stats: DialogStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.legs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    pub fn is_tracked(&self, call_id: &str) -> bool {
        self.legs.contains_key(call_id)
    }

    /// Feeds one message. Pushes the leg's events, if any.
    pub fn handle_message(
        &mut self,
        msg: &SipMessage<'_>,
        cap: &Capture,
        out: &mut Vec<LegEvent>,
    ) -> Seen {
        let Some(leg) = self.legs.get_mut(msg.call_id.as_ref()) else {
            return if msg.is_initial_invite() {
                Seen::NewInvite
            } else {
                Seen::Untracked
            };
        };
        leg.last_seen = leg.last_seen.max(cap.ts);
        let call_id = || msg.call_id.to_string();
        let before = leg.state;
        match msg.method() {
            Some(Method::Cancel) => {
                if msg.cseq_num == leg.invite_cseq
                    && leg.state < State::Answered
                    && leg.cancel_ts.is_none()
                {
                    leg.cancel_ts = Some(cap.ts);
                    return Seen::Tracked;
                }
            }
            Some(Method::Bye) => {
                if leg.state != State::Ended {
                    let by_originator = match (&leg.from_tag, msg.from().tag) {
                        (Some(t), Some(f)) => **t == *f,
                        _ => true,
                    };
                    let answered = leg.state == State::Answered;
                    leg.state = State::Ended;
                    leg.last_seen = cap.ts;
                    out.push(LegEvent::Ended {
                        call_id: call_id(),
                        ts: cap.ts,
                        by_originator,
                        answered,
                    });
                }
            }
            Some(Method::Invite) if msg.to().tag.is_none() && leg.state < State::Ended => {
                if msg.cseq_num > leg.invite_cseq && leg.challenged.is_some() {
                    // The INVITE again, with credentials: a new transaction.
                    leg.challenged = None;
                    leg.invite_cseq = msg.cseq_num;
                    leg.uac_branch = msg.via_branch().map(Into::into);
                    leg.cancel_ts = None;
                    leg.branches.clear();
                    self.stats.challenges += 1;
                    return Seen::Tracked;
                }
                if let Some(b) = fork_branch(leg, msg) {
                    let user = b.user.to_string();
                    leg.branches.push(b);
                    out.push(LegEvent::Branch {
                        call_id: call_id(),
                        ts: cap.ts,
                        user,
                        moment: BranchMoment::Offered,
                    });
                    return Seen::Tracked;
                }
            }
            Some(_) => {}
            None => {
                let code = msg.status().unwrap_or(0);
                if msg.cseq_method() == Method::Invite && msg.cseq_num == leg.invite_cseq {
                    let rb = msg.via_branch();
                    if let Some(b) =
                        rb.and_then(|rb| leg.branches.iter_mut().find(|b| *b.via == *rb))
                    {
                        let moment = match code {
                            101..=199 if b.state == State::Calling => {
                                b.state = State::Ringing;
                                Some(BranchMoment::Ringing)
                            }
                            200..=299 if b.state < State::Answered => {
                                b.state = State::Answered;
                                Some(BranchMoment::Answered)
                            }
                            300..=699 if b.state < State::Answered => {
                                b.state = State::Ended;
                                Some(BranchMoment::Failed { code })
                            }
                            _ => None,
                        };
                        if let Some(moment) = moment {
                            out.push(LegEvent::Branch {
                                call_id: call_id(),
                                ts: cap.ts,
                                user: b.user.to_string(),
                                moment,
                            });
                        }
                    }
                    let to_originator = match (leg.uac_branch.as_deref(), rb) {
                        (Some(ub), Some(rb)) => ub == rb,
                        _ => match (leg.uac, cap.dst) {
                            (Some(uac), Some(dst)) => uac == dst,
                            _ => true,
                        },
                    };
                    match code {
                        401 | 407 if to_originator && leg.state < State::Answered => {
                            if leg.challenged.is_none() {
                                leg.challenged = Some((cap.ts, code));
                            }
                            return Seen::Tracked;
                        }
                        101..=199 if leg.state == State::Calling => {
                            leg.state = State::Ringing;
                            out.push(LegEvent::Ringing {
                                call_id: call_id(),
                                ts: cap.ts,
                                code,
                            });
                        }
                        200..=299 if leg.state < State::Answered => {
                            leg.state = State::Answered;
                            out.push(LegEvent::Answered {
                                call_id: call_id(),
                                ts: cap.ts,
                                contact_user: msg.contact().and_then(|c| {
                                    c.user().map(|u| super::message::unescape(u).into_owned())
                                }),
                            });
                        }
                        300..=699 if leg.state < State::Answered => {
                            if to_originator {
                                leg.state = State::Ended;
                                out.push(LegEvent::Failed {
                                    call_id: call_id(),
                                    ts: leg.cancel_ts.unwrap_or(cap.ts),
                                    code,
                                    cancelled: leg.cancel_ts.is_some(),
                                });
                            } else {
                                self.stats.branch_finals += 1;
                                return Seen::Tracked;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if leg.state == before {
            self.stats.repeats += 1;
        }
        Seen::Tracked
    }

    /// Starts tracking the leg opened by an initial INVITE. Returns false
    /// when the tracker is full (the leg is refused, counted in stats).
    pub fn start(&mut self, msg: &SipMessage<'_>, cap: &Capture) -> bool {
        if self.legs.len() >= self.limits.max_legs {
            self.stats.refused += 1;
            return false;
        }
        self.stats.started += 1;
        self.legs.insert(
            msg.call_id.as_ref().into(),
            Leg {
                state: State::Calling,
                invite_cseq: msg.cseq_num,
                from_tag: msg.from().tag.map(Into::into),
                uac: cap.src,
                uac_branch: msg.via_branch().map(Into::into),
                ruri_user: msg.request_user().map(Into::into),
                challenged: None,
                branches: Vec::new(),
                cancel_ts: None,
                last_seen: cap.ts,
            },
        );
        true
    }

    /// Expires quiet legs and forgets ended ones, on event time. Cheap to
    /// call often: it scans at most once per second of event time.
    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<LegEvent>) {
        if self.last_sweep.is_some_and(|t| now.since(t) < 1000) {
            return;
        }
        self.last_sweep = Some(now);
        let l = self.limits;
        let mut expired = 0;
        self.legs.retain(|call_id, leg| {
            let quiet = now.since(leg.last_seen);
            match leg.state {
                State::Ended => quiet < l.linger_ms,
                // A challenge nobody answered: the call failed there.
                _ if leg.challenged.is_some() && quiet >= l.linger_ms => {
                    if let Some((_, code)) = leg.challenged {
                        out.push(LegEvent::Failed {
                            call_id: call_id.to_string(),
                            ts: now,
                            code,
                            cancelled: false,
                        });
                    }
                    false
                }
                State::Answered if quiet >= l.answered_timeout_ms => {
                    expired += 1;
                    out.push(LegEvent::Expired {
                        call_id: call_id.to_string(),
                        ts: now,
                        answered: true,
                    });
                    false
                }
                State::Calling | State::Ringing if quiet >= l.unanswered_timeout_ms => {
                    expired += 1;
                    // A CANCEL whose 487 was never seen is still a cancel.
                    out.push(match leg.cancel_ts {
                        Some(ts) => LegEvent::Failed {
                            call_id: call_id.to_string(),
                            ts,
                            code: 487,
                            cancelled: true,
                        },
                        None => LegEvent::Expired {
                            call_id: call_id.to_string(),
                            ts: now,
                            answered: false,
                        },
                    });
                    false
                }
                _ => true,
            }
        });
        self.stats.expired += expired;
    }
}

/// The INVITE is the originator's, forwarded by a forking proxy to another
/// target: same CSeq, another top Via branch, another Request-URI user.
fn fork_branch(leg: &Leg, msg: &SipMessage<'_>) -> Option<Branch> {
    if msg.cseq_num != leg.invite_cseq || leg.branches.len() >= MAX_BRANCHES {
        return None;
    }
    let via = msg.via_branch()?;
    let user = msg.request_user()?;
    if leg.uac_branch.as_deref() == Some(via)
        || leg.ruri_user.as_deref() == Some(user)
        || leg.branches.iter().any(|b| *b.via == *via)
    {
        return None;
    }
    Some(Branch {
        via: via.into(),
        user: super::message::unescape(user).into(),
        state: State::Calling,
    })
}

#[cfg(test)]
mod tests;
