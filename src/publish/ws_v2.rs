//! `/ws` protocol version 2: deltas carry changes only.
//!
//! Why: in version 1 every delta repeats whole views, and values that move
//! with time alone (longest wait, `as_of`) make every queue with a caller
//! "changed" on every engine tick, so a quiet floor of 200 queues cost each
//! client 2.7 MB/s to show clocks ticking. Version 2 leaves time-only values
//! to the client (it has the server's clock, `now`, in every message, and
//! `oldest_since` / `since` to count from) and sends, per changed queue or
//! agent, only the fields that changed: a JSON Merge Patch (RFC 7396) keyed
//! by id, so `{queues, agents}` of a delta is itself a merge patch of the
//! client's `{queues, agents}` maps.
//!
//! The hub keeps the documents as it last sent them ([`Docs`]) and turns each
//! coalesced frame into patches once, for every client ([`Changes`]); a frame
//! that changed nothing a document holds is not sent at all. Documents are
//! free of nulls (a missing member reads as `null`), because a null in a
//! merge patch means "remove".

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use super::merge_patch;
use crate::escalation::Entry;
use crate::state::snapshot::Trends;
use crate::state::trend::TrendSample;
use crate::state::{AgentView, QueueView, Snapshot};

/// Minutes of trend a snapshot carries.
pub const SNAPSHOT_TREND_MINUTES: usize = 60;
use crate::time::Ts;

/// Fields of a queue view that change with time alone; version 2 clients
/// derive them (longest wait = `now - oldest_since`).
const QUEUE_TIME_ONLY: [&str; 2] = ["longest_wait_s", "as_of"];

/// A queue as a version 2 document: the view without time-only values or nulls.
pub fn queue_doc(q: &QueueView) -> Value {
    let mut v = serde_json::to_value(q).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in QUEUE_TIME_ONLY {
            m.remove(k);
        }
    }
    merge_patch::strip_nulls(&mut v);
    v
}

/// An agent as a version 2 document (time in state is `now - since`).
pub fn agent_doc(a: &AgentView) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    merge_patch::strip_nulls(&mut v);
    v
}

/// One entity that changed in a frame.
#[derive(Debug)]
pub struct Change {
    pub id: String,
    /// From the document before the frame to the one after.
    pub patch: Value,
    /// The whole document after the frame (for a filtered client seeing
    /// this agent for the first time).
    pub doc: Arc<Value>,
}

/// What one frame changed, as version 2 patches.
#[derive(Debug, Default)]
pub struct Changes {
    pub queues: Vec<Change>,
    pub agents: Vec<Change>,
    /// Each queue's newest trend sample, when the frame took samples.
    pub trend: Vec<(String, TrendSample)>,
    /// The unfiltered delta; `None` when the frame changed nothing a
    /// version 2 client holds and brought no escalation entry.
    pub text: Option<Utf8Bytes>,
}

/// The documents as of the last frame the hub emitted.
#[derive(Debug, Clone, Default)]
pub struct Docs {
    pub seq: u64,
    pub now: Ts,
    pub queues: BTreeMap<String, Arc<Value>>,
    pub agents: BTreeMap<String, Arc<Value>>,
}

impl Docs {
    pub fn from_snapshot(s: &Snapshot, seq: u64) -> Docs {
        Docs {
            seq,
            now: s.as_of,
            queues: s
                .queues
                .iter()
                .map(|q| (q.queue.clone(), Arc::new(queue_doc(q))))
                .collect(),
            agents: s
                .agents
                .iter()
                .map(|a| (a.agent.clone(), Arc::new(agent_doc(a))))
                .collect(),
        }
    }

    /// Moves the documents to a frame's views and returns the patches.
    pub fn advance(
        &mut self,
        seq: u64,
        now: Ts,
        queues: &[Arc<QueueView>],
        agents: &[Arc<AgentView>],
        escalations: &[Arc<Entry>],
        trends: Option<&Trends>,
    ) -> Changes {
        self.seq = seq;
        self.now = now;
        let queues = changes(&mut self.queues, queues.iter().map(|q| (&q.queue, queue_doc(q))));
        let agents = changes(&mut self.agents, agents.iter().map(|a| (&a.agent, agent_doc(a))));
        let trend: Vec<(String, TrendSample)> = trends
            .into_iter()
            .flatten()
            .filter_map(|(q, s)| s.last().map(|s| (q.clone(), *s)))
            .collect();
        let text = (!queues.is_empty()
            || !agents.is_empty()
            || !escalations.is_empty()
            || !trend.is_empty())
        .then(|| {
            encode_delta_with(
                seq,
                now,
                queues.iter().map(|c| (c.id.as_str(), Some(&c.patch))),
                agents.iter().map(|c| (c.id.as_str(), Some(&c.patch))),
                escalations,
                trend.iter().map(|(q, s)| (q.as_str(), s)),
            )
        });
        Changes {
            queues,
            agents,
            trend,
            text,
        }
    }
}

fn changes<'a>(
    held: &mut BTreeMap<String, Arc<Value>>,
    fresh: impl Iterator<Item = (&'a String, Value)>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (id, doc) in fresh {
        let patch = match held.get(id) {
            Some(old) => merge_patch::diff(old, &doc),
            None => Some(doc.clone()),
        };
        if let Some(patch) = patch {
            let doc = Arc::new(doc);
            held.insert(id.clone(), doc.clone());
            out.push(Change {
                id: id.clone(),
                patch,
                doc,
            });
        }
    }
    out
}

/// `{id: value}` with `None` written as `null` (remove).
struct Keyed<I>(std::cell::RefCell<Option<I>>);

impl<'a, I: Iterator<Item = (&'a str, Option<&'a Value>)>> Serialize for Keyed<I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(it) = self.0.borrow_mut().take() {
            for (k, v) in it {
                m.serialize_entry(k, &v)?;
            }
        }
        m.end()
    }
}

fn keyed<I>(it: I) -> Keyed<I> {
    Keyed(std::cell::RefCell::new(Some(it)))
}

#[derive(Serialize)]
struct Msg<Q, A, E> {
    #[serde(rename = "type")]
    kind: &'static str,
    v: u8,
    seq: u64,
    now: Ts,
    queues: Q,
    agents: A,
    #[serde(skip_serializing_if = "Option::is_none")]
    escalations: Option<E>,
    /// Delta: each queue's newest one-minute sample, when one was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    trend: Option<Value>,
    /// Snapshot: the last hour of samples per queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    trends: Option<Value>,
}

fn to_text<T: Serialize>(m: &T) -> Utf8Bytes {
    match serde_json::to_string(m) {
        Ok(s) => Utf8Bytes::from(s),
        Err(e) => Utf8Bytes::from(format!(
            "{{\"type\":\"error\",\"error\":{:?}}}",
            e.to_string()
        )),
    }
}

/// A version 2 delta.
pub fn encode_delta<'a>(
    seq: u64,
    now: Ts,
    queues: impl Iterator<Item = (&'a str, Option<&'a Value>)>,
    agents: impl Iterator<Item = (&'a str, Option<&'a Value>)>,
    escalations: &[Arc<Entry>],
) -> Utf8Bytes {
    encode_delta_with(seq, now, queues, agents, escalations, std::iter::empty())
}

/// A version 2 delta with new trend samples.
pub fn encode_delta_with<'a>(
    seq: u64,
    now: Ts,
    queues: impl Iterator<Item = (&'a str, Option<&'a Value>)>,
    agents: impl Iterator<Item = (&'a str, Option<&'a Value>)>,
    escalations: &[Arc<Entry>],
    trend: impl Iterator<Item = (&'a str, &'a TrendSample)>,
) -> Utf8Bytes {
    let trend: serde_json::Map<String, Value> = trend
        .map(|(q, s)| (q.to_string(), serde_json::to_value(s).unwrap_or(Value::Null)))
        .collect();
    to_text(&Msg {
        kind: "delta",
        v: 2,
        seq,
        now,
        queues: keyed(queues),
        agents: keyed(agents),
        escalations: Some(escalations),
        trend: (!trend.is_empty()).then_some(Value::Object(trend)),
        trends: None,
    })
}

/// A version 2 heartbeat: the last `seq` this client is current with and
/// the server's clock.
pub fn heartbeat(seq: u64, now: Ts) -> Utf8Bytes {
    to_text(&serde_json::json!({"type": "heartbeat", "v": 2, "seq": seq, "now": now}))
}

/// What one version 2 client holds beyond the shared frames: with a queue
/// filter, which agents it has (so it hears when one leaves its queues).
#[derive(Debug, Default)]
pub struct Client {
    pub filter: Option<HashSet<String>>,
    known: HashSet<String>,
}

impl Client {
    pub fn new(filter: Option<HashSet<String>>) -> Self {
        Client {
            filter,
            known: HashSet::new(),
        }
    }

    fn wants_queue(&self, q: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.contains(q))
    }

    fn agent_inside(&self, doc: &Value) -> bool {
        match &self.filter {
            None => true,
            Some(f) => doc["queues"]
                .as_array()
                .is_some_and(|qs| qs.iter().any(|q| q.as_str().is_some_and(|q| f.contains(q)))),
        }
    }

    /// The snapshot of `docs` this client may see, with the last hour of
    /// trend samples.
    pub fn snapshot(&mut self, docs: &Docs, trends: &Trends) -> Utf8Bytes {
        let trends: serde_json::Map<String, Value> = trends
            .iter()
            .filter(|(k, _)| self.wants_queue(k))
            .map(|(k, v)| {
                let from = v.len().saturating_sub(SNAPSHOT_TREND_MINUTES);
                (k.clone(), serde_json::to_value(&v[from..]).unwrap_or(Value::Null))
            })
            .collect();
        let queues: Vec<(&str, Option<&Value>)> = docs
            .queues
            .iter()
            .filter(|(k, _)| self.wants_queue(k))
            .map(|(k, v)| (k.as_str(), Some(&**v)))
            .collect();
        let agents: Vec<(&str, Option<&Value>)> = docs
            .agents
            .iter()
            .filter(|(_, v)| self.agent_inside(v))
            .map(|(k, v)| (k.as_str(), Some(&**v)))
            .collect();
        if self.filter.is_some() {
            self.known = agents.iter().map(|(k, _)| k.to_string()).collect();
        }
        to_text(&Msg::<_, _, ()> {
            kind: "snapshot",
            v: 2,
            seq: docs.seq,
            now: docs.now,
            queues: keyed(queues.into_iter()),
            agents: keyed(agents.into_iter()),
            escalations: None,
            trend: None,
            trends: Some(Value::Object(trends)),
        })
    }

    /// The delta of one frame for this client, or `None` when nothing in it
    /// concerns the client.
    pub fn frame(
        &mut self,
        seq: u64,
        now: Ts,
        c: &Changes,
        escalations: &[Arc<Entry>],
    ) -> Option<Utf8Bytes> {
        if self.filter.is_none() {
            return c.text.clone();
        }
        let queues: Vec<_> = c
            .queues
            .iter()
            .filter(|q| self.wants_queue(&q.id))
            .map(|q| (q.id.as_str(), Some(&q.patch)))
            .collect();
        let mut agents = Vec::new();
        for a in &c.agents {
            let inside = self.agent_inside(&a.doc);
            let known = self.known.contains(&a.id);
            match (inside, known) {
                (true, true) => agents.push((a.id.as_str(), Some(&a.patch))),
                (true, false) => {
                    self.known.insert(a.id.clone());
                    agents.push((a.id.as_str(), Some(&*a.doc)));
                }
                (false, true) => {
                    self.known.remove(&a.id);
                    agents.push((a.id.as_str(), None));
                }
                (false, false) => {}
            }
        }
        let escalations: Vec<_> = escalations
            .iter()
            .filter(|e| self.wants_queue(&e.queue))
            .cloned()
            .collect();
        let trend = c.trend.iter().filter(|(q, _)| self.wants_queue(q));
        if queues.is_empty()
            && agents.is_empty()
            && escalations.is_empty()
            && trend.clone().next().is_none()
        {
            return None;
        }
        Some(encode_delta_with(
            seq,
            now,
            queues.into_iter(),
            agents.into_iter(),
            &escalations,
            trend.map(|(q, s)| (q.as_str(), s)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_with_only_time_moving_sends_nothing() {
        let mut docs = Docs::default();
        let mut q = QueueView {
            queue: "hotline".into(),
            waiting: 1,
            longest_wait_s: 3.0,
            agents: Default::default(),
            windows: crate::state::view::Windows {
                rolling: crate::state::kpi::WindowView::from_tally(
                    &Default::default(),
                    Default::default(),
                ),
                interval: crate::state::kpi::WindowView::from_tally(
                    &Default::default(),
                    Default::default(),
                ),
                today: crate::state::kpi::WindowView::from_tally(
                    &Default::default(),
                    Default::default(),
                ),
            },
            required_agents: None,
            escalation: None,
            sl_threshold_s: 20.0,
            sl_target: 0.8,
            occupancy: None,
            totals: Default::default(),
            oldest_since: Some(Ts(1_000)),
            as_of: Ts(4_000),
        };
        let first = docs.advance(1, Ts(4_000), &[Arc::new(q.clone())], &[], &[], None);
        assert_eq!(first.queues.len(), 1, "a new queue is sent whole");
        q.longest_wait_s = 9.0;
        q.as_of = Ts(10_000);
        let tick = docs.advance(2, Ts(10_000), &[Arc::new(q.clone())], &[], &[], None);
        assert!(tick.queues.is_empty() && tick.text.is_none(), "{tick:?}");
        q.waiting = 0;
        q.oldest_since = None;
        let answered = docs.advance(3, Ts(11_000), &[Arc::new(q)], &[], &[], None);
        let text = answered.text.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["queues"],
            serde_json::json!({"hotline": {"waiting": 0, "oldest_since": null}})
        );
        assert_eq!(v["seq"], 3);
        assert_eq!(v["v"], 2);
    }
}
