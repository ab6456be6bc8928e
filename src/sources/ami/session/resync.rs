//! Resync: rebuilding the queues from `QueueStatus`, in one place.
//!
//! AMI keeps no history for clients (protocols.md 1.10), so the picture is
//! rebuilt from a list on every connect, after the engine's inbox
//! overflowed (the driver drops what it could not deliver and asks for a
//! relist), every `resync_interval`, and for one queue after a CTI action
//! was refused in a way that says our picture is wrong. This file holds all
//! of it: when a list is asked for ([`Session::request_resync`] and the
//! relist timer), how it is collected while live events that arrive
//! meanwhile are buffered in order, and how the tracker is reconciled with
//! it ([`Tracker::resync`]) before the buffered events are applied on top.

use super::super::mapping::{
    Caller, CallerState, Member, MemberBlock, QueueEvent, Tracker, classify,
};
use super::super::parser::{Message, OwnedMessage};
use super::{Pending, Phase, Session};
use crate::event::{Event, EventKind, ResyncCaller, ResyncMember};
use crate::time::Ts;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(super) struct Resync {
    /// Our QueueStatus ActionID (`None` in passive mode: take any).
    pub(super) action_id: Option<String>,
    /// Only this queue (a reconcile after a CTI surprise).
    pub(super) full: bool,
    pub(super) listings: Vec<Listing>,
    pub(super) buffered: Vec<(OwnedMessage, Ts)>,
    /// Server time of the list, from the Ping reply.
    pub(super) at: Option<Ts>,
    pub(super) complete: bool,
    /// A list that has not completed by then means a stuck connection.
    pub(super) deadline: Ts,
}

/// A queue as listed by `QueueStatus`.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub queue: String,
    pub members: Vec<MemberOwned>,
    /// (call, wait_ms, caller number)
    pub entries: Vec<(String, i64, Option<String>)>,
}

/// An owned member block, kept while a listing is being collected.
#[derive(Debug, Clone)]
pub struct MemberOwned {
    pub queue: String,
    pub name: Option<String>,
    pub interface: String,
    pub status: u8,
    pub paused: bool,
    pub paused_reason: Option<String>,
    pub in_call: bool,
    pub wrapup_ms: i64,
    pub last_call: Ts,
}

impl MemberOwned {
    pub fn from_block(b: &MemberBlock<'_>) -> Self {
        MemberOwned {
            queue: b.queue.to_string(),
            name: b.name.map(str::to_string),
            interface: b.interface.to_string(),
            status: b.status,
            paused: b.paused,
            paused_reason: b.paused_reason.map(str::to_string),
            in_call: b.in_call,
            wrapup_ms: b.wrapup_ms,
            last_call: b.last_call,
        }
    }

    pub fn block(&self) -> MemberBlock<'_> {
        MemberBlock {
            queue: &self.queue,
            name: self.name.as_deref(),
            interface: &self.interface,
            status: self.status,
            paused: self.paused,
            paused_reason: self.paused_reason.as_deref(),
            in_call: self.in_call,
            wrapup_ms: self.wrapup_ms,
            last_call: self.last_call,
        }
    }
}

fn listing<'r>(r: &'r mut Resync, queue: &str) -> &'r mut Listing {
    if let Some(i) = r.listings.iter().position(|l| l.queue == queue) {
        return &mut r.listings[i];
    }
    r.listings.push(Listing {
        queue: queue.to_string(),
        ..Listing::default()
    });
    let last = r.listings.len() - 1;
    &mut r.listings[last]
}

impl Session {
    /// Relists every queue (after events had to be dropped). Until the list
    /// is complete the session reports itself not synced.
    pub fn request_resync(&mut self) {
        if self.passive || !self.logged_in() {
            return;
        }
        self.synced = false;
        if self.resync.is_none() {
            self.start_resync(None);
        } else {
            self.queued_full_resync = true;
        }
    }

    pub(super) fn schedule_relist(&mut self) {
        self.next_relist = if self.cfg.resync_interval_ms > 0 {
            self.now.plus_ms(self.cfg.resync_interval_ms)
        } else {
            Ts(i64::MAX)
        };
    }

    pub(super) fn start_resync(&mut self, queue: Option<String>) {
        let full = queue.is_none();
        self.send(Pending::Ping, "Ping", &[]);
        let id = match &queue {
            Some(q) => self.send(Pending::QueueStatus, "QueueStatus", &[("Queue", q)]),
            None => self.send(Pending::QueueStatus, "QueueStatus", &[]),
        };
        // Lists take milliseconds; allow a generous multiple of the action
        // timeout before calling the connection stuck.
        let deadline = self
            .now
            .plus_ms(self.cfg.action_timeout_ms.saturating_mul(4));
        self.resync = Some(Resync {
            action_id: Some(id),
            full,
            deadline,
            ..Resync::default()
        });
    }

    pub(super) fn on_list_event(&mut self, m: &Message<'_>) {
        if self.resync.is_none() {
            if !self.passive {
                return; // Someone else's list; not ours.
            }
            self.resync = Some(Resync {
                action_id: None,
                full: true,
                at: self.pending_list_time.take(),
                ..Resync::default()
            });
        }
        let Some(r) = self.resync.as_mut() else {
            return;
        };
        if let Some(want) = &r.action_id
            && m.get("ActionID") != Some(want.as_str())
        {
            return;
        }
        match classify(m) {
            Ok(Some(QueueEvent::ListParams { queue })) => {
                if !r.listings.iter().any(|l| l.queue == queue) {
                    r.listings.push(Listing {
                        queue: queue.to_string(),
                        ..Listing::default()
                    });
                }
            }
            Ok(Some(QueueEvent::ListMember(b))) => {
                listing(r, b.queue)
                    .members
                    .push(MemberOwned::from_block(&b));
            }
            Ok(Some(QueueEvent::ListEntry {
                queue,
                call,
                wait_ms,
                caller,
            })) => {
                listing(r, queue).entries.push((
                    call.to_string(),
                    wait_ms,
                    caller.map(str::to_string),
                ));
            }
            Ok(Some(QueueEvent::ListComplete)) => {
                r.complete = true;
                let at = if self.passive {
                    r.at.or(self.last_ts)
                } else {
                    Some(r.at.unwrap_or(self.now))
                };
                if let Some(at) = at {
                    self.finish_resync(at);
                }
            }
            Ok(_) => {}
            Err(e) => self.rejects.push(e),
        }
    }

    pub(super) fn finish_resync(&mut self, at: Ts) {
        let Some(r) = self.resync.take() else {
            return;
        };
        let mut joins = Vec::new();
        let mut outcomes = Vec::new();
        for (m, _) in &r.buffered {
            if let Ok(Some(ev)) = classify(m) {
                match ev {
                    QueueEvent::CallerJoin { call, .. } => joins.push(call.to_string()),
                    QueueEvent::CallerAbandon { call, .. }
                    | QueueEvent::CallerLeave { call, .. }
                    | QueueEvent::AgentConnect { call, .. } => outcomes.push(call.to_string()),
                    _ => {}
                }
            }
        }
        let evs = self.tracker.resync(&r.listings, at, &joins, &outcomes);
        self.events.extend(evs);
        for (m, ts) in &r.buffered {
            self.apply_live(m, *ts);
        }
        if r.full {
            self.synced = true;
            if self.phase == Phase::Resync {
                self.phase = Phase::Live;
            }
        }
        if std::mem::take(&mut self.queued_full_resync) {
            self.queued_resync = None;
            self.synced = false;
            self.start_resync(None);
        } else if let Some(q) = self.queued_resync.take() {
            self.start_resync(Some(q));
        }
    }
}

impl Tracker {
    /// Rebuilds the listed queues from a `QueueStatus` listing taken at
    /// `at`, and returns one `QueueResync` per queue.
    ///
    /// `joins_buffered` are callers whose `QueueCallerJoin` arrived during
    /// the listing: they are left out of the resync so that the buffered join,
    /// applied next, counts them as offered. `outcomes_buffered` are callers
    /// whose outcome arrived during the listing: if we knew them before, they
    /// are kept (with their original join time) so that the outcome counts.
    pub fn resync(
        &mut self,
        listings: &[Listing],
        at: Ts,
        joins_buffered: &[String],
        outcomes_buffered: &[String],
    ) -> Vec<Event> {
        let mut out = Vec::new();
        self.handle_timeout(at, &mut out);
        for l in listings {
            let q = l.queue.as_str();
            // Callers.
            let previous: HashMap<String, Caller> = self
                .callers
                .iter()
                .filter(|(_, c)| c.queue == q)
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect();
            for call in previous.keys() {
                self.take_caller(call);
            }
            let mut callers = Vec::new();
            for (call, wait_ms, _) in &l.entries {
                if joins_buffered.contains(call) {
                    continue;
                }
                let joined = previous
                    .get(call)
                    .map(|c| c.joined)
                    .unwrap_or(Ts(at.0 - wait_ms));
                let hangup_requested = previous.get(call).is_some_and(|c| c.hangup_requested);
                self.callers.insert(
                    call.clone(),
                    Caller {
                        queue: q.to_string(),
                        joined,
                        hangup_requested,
                        rings_open: 0,
                        state: CallerState::Waiting,
                    },
                );
                callers.push(ResyncCaller {
                    call: call.clone(),
                    joined,
                });
            }
            for (call, c) in &previous {
                if outcomes_buffered.contains(call) && !self.callers.contains_key(call) {
                    if let CallerState::Left(t) = c.state {
                        self.leaves.insert((t, call.clone()));
                    }
                    self.callers.insert(call.clone(), c.clone());
                    callers.push(ResyncCaller {
                        call: call.clone(),
                        joined: c.joined,
                    });
                }
            }
            callers.sort_by_key(|c| c.joined);
            // Members.
            let old: HashMap<(String, String), Member> = self
                .members
                .iter()
                .filter(|((mq, _), _)| mq == q)
                .map(|(k, m)| (k.clone(), m.clone()))
                .collect();
            for key in old.keys() {
                self.drop_member(key);
            }
            let mut agents = Vec::new();
            let mut paused_here = Vec::new();
            for mo in &l.members {
                let b = mo.block();
                let agent = self.ids.agent(b.interface, b.name);
                let key = (q.to_string(), b.interface.to_ascii_lowercase());
                let mut m = Member::from_block(&b, agent.clone(), old.get(&key));
                // A ring survives a relist only while its caller still waits.
                let rung_for_listed = m
                    .ringing_for
                    .as_deref()
                    .is_some_and(|c| l.entries.iter().any(|(e, _, _)| e == c));
                if !rung_for_listed {
                    m.stop_ringing();
                }
                if !m.in_call {
                    m.call = None;
                }
                paused_here.push(m.logged_in() && m.paused);
                self.put_member(key, m);
                agents.push(agent);
            }
            let mut members = Vec::new();
            for (agent, here) in agents.iter().zip(paused_here) {
                let (status, reason) = self.folded(agent, at);
                self.believed.insert(agent.clone(), status);
                let set = self.believed_paused.entry(agent.clone()).or_default();
                if here {
                    set.insert(q.to_string());
                } else {
                    set.remove(q);
                }
                members.push(ResyncMember {
                    agent: agent.clone(),
                    status,
                    reason,
                    paused_here: here,
                });
            }
            out.push(Event {
                ts: at,
                kind: EventKind::QueueResync {
                    queue: q.to_string(),
                    callers,
                    members,
                },
            });
            // Agents dropped from this queue who are in no queue any more.
            for m in old.values() {
                if !agents.contains(&m.agent) {
                    self.refresh_agent(&m.agent.clone(), None, at, &mut out);
                }
            }
        }
        out
    }
}
