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
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::Value;

use super::merge_patch;
use super::ws::filter::QueueFilter;
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

/// True when two views of a queue differ at most in time-only values: the
/// common case on a floor with callers waiting (every tick re-publishes
/// them), answered without building and diffing two JSON documents.
/// Exhaustive on purpose: a new field must be sorted into one of the two.
fn same_but_time(a: &QueueView, b: &QueueView) -> bool {
    let QueueView {
        queue,
        site,
        site_stale,
        waiting,
        longest_wait_s: _,
        agents,
        windows,
        required_agents,
        escalation,
        sl_threshold_s,
        sl_target,
        occupancy,
        totals,
        oldest_since,
        as_of: _,
    } = a;
    *queue == b.queue
        && *site == b.site
        && *site_stale == b.site_stale
        && *waiting == b.waiting
        && *agents == b.agents
        && *windows == b.windows
        && *required_agents == b.required_agents
        && *escalation == b.escalation
        && *sl_threshold_s == b.sl_threshold_s
        && *sl_target == b.sl_target
        && *occupancy == b.occupancy
        && *totals == b.totals
        && *oldest_since == b.oldest_since
}

/// One entity that changed in a frame.
#[derive(Debug)]
pub struct Change {
    pub id: String,
    /// From the document before the frame to the one after, as JSON text
    /// (frames stay in the resume history; text is a tenth of a `Value`).
    pub patch: String,
}

/// What one frame changed, as version 2 patches.
#[derive(Debug, Default)]
pub struct Changes {
    pub queues: Vec<Change>,
    pub agents: Vec<Change>,
    /// The minute of the newest trend samples, when the frame took samples:
    /// every queue gets a sample at it (see [`extend`] for the unlisted ones).
    pub trend_at: Option<Ts>,
    /// The newest samples a client cannot derive with [`extend`].
    pub trend: Vec<(String, TrendSample)>,
    /// The unfiltered delta; `None` when the frame changed nothing a
    /// version 2 client holds and brought no escalation entry.
    pub text: Option<Utf8Bytes>,
    /// The messages for filtered clients, once per filter.
    pub per_filter: PerFilter,
}

impl Changes {
    /// Bytes held (for the resume history's bound).
    pub fn bytes(&self) -> usize {
        let patches: usize = self
            .queues
            .iter()
            .chain(&self.agents)
            .map(|c| c.id.len() + c.patch.len() + 64)
            .sum();
        patches + self.text.as_ref().map_or(0, |t| t.len()) + self.trend.len() * 96
    }
}

/// The documents as of the last frame the hub emitted.
#[derive(Debug, Clone, Default)]
pub struct Docs {
    pub seq: u64,
    pub now: Ts,
    pub queues: BTreeMap<String, Arc<Value>>,
    pub agents: BTreeMap<String, Arc<Value>>,
    /// The queue views the documents were made from (for [`same_but_time`]).
    views: BTreeMap<String, Arc<QueueView>>,
    /// Each queue's newest trend sample as clients hold it (sent, or
    /// derived by [`extend`]).
    trend_held: BTreeMap<String, TrendSample>,
}

/// The sample a client derives for a queue at the minute `at` from the last
/// one it holds: the same figures, the longest wait grown by the minutes
/// passed while a caller waits (counted in whole milliseconds, so client and
/// server reach the same number). A quiet minute thus costs no bytes per
/// queue: only samples that differ from this are sent.
pub fn extend(last: &TrendSample, at: Ts) -> TrendSample {
    let longest_wait_s = if last.waiting > 0 {
        let ms = (last.longest_wait_s * 1000.0).round() as i64;
        ms.saturating_add(at.0.saturating_sub(last.at.0)) as f64 / 1000.0
    } else {
        last.longest_wait_s
    };
    TrendSample {
        at,
        longest_wait_s,
        ..*last
    }
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
            views: s
                .queues
                .iter()
                .map(|q| (q.queue.clone(), q.clone()))
                .collect(),
            trend_held: s
                .trends
                .iter()
                .filter_map(|(q, v)| v.last().map(|x| (q.clone(), *x)))
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
        if seq <= self.seq {
            // Already in these documents (they were built from a later
            // snapshot when the first version 2 client joined).
            return Changes::default();
        }
        self.seq = seq;
        self.now = now;
        let views = &mut self.views;
        let moved = queues.iter().filter(|q| {
            let same = views.get(&q.queue).is_some_and(|old| same_but_time(old, q));
            views.insert(q.queue.clone(), (*q).clone());
            !same
        });
        let queues = changes(&mut self.queues, moved.map(|q| (&q.queue, queue_doc(q))));
        let agents = changes(
            &mut self.agents,
            agents.iter().map(|a| (&a.agent, agent_doc(a))),
        );
        let mut trend_at = None;
        let mut trend = Vec::new();
        for (q, s) in trends.into_iter().flatten() {
            let Some(s) = s.last() else { continue };
            let held = self.trend_held.get(q);
            if held.is_some_and(|h| h.at >= s.at) {
                continue; // already held (a snapshot newer than these docs)
            }
            trend_at = trend_at.max(Some(s.at));
            if held.is_none_or(|h| extend(h, s.at) != *s) {
                trend.push((q.clone(), *s));
                self.trend_held.insert(q.clone(), *s);
            } else if let Some(h) = self.trend_held.get_mut(q) {
                *h = extend(h, s.at);
            }
        }
        let text = (!queues.is_empty()
            || !agents.is_empty()
            || !escalations.is_empty()
            || trend_at.is_some())
        .then(|| {
            encode_delta_with(
                seq,
                now,
                queues
                    .iter()
                    .map(|c| (c.id.as_str(), Some(c.patch.as_str()))),
                agents
                    .iter()
                    .map(|c| (c.id.as_str(), Some(c.patch.as_str()))),
                escalations,
                trend_at,
                trend.iter().map(|(q, s)| (q.as_str(), s)),
            )
        });
        Changes {
            queues,
            agents,
            trend_at,
            trend,
            text,
            per_filter: PerFilter::default(),
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
            held.insert(id.clone(), Arc::new(doc));
            out.push(Change {
                id: id.clone(),
                patch: patch.to_string(),
            });
        }
    }
    out
}

/// Writes `{"id":value,...}` from JSON texts; `None` is written as `null`
/// (remove).
fn write_keyed<'a>(out: &mut String, items: impl Iterator<Item = (&'a str, Option<&'a str>)>) {
    out.push('{');
    for (i, (k, v)) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json(out, &k);
        out.push(':');
        out.push_str(v.unwrap_or("null"));
    }
    out.push('}');
}

fn push_json<T: Serialize + ?Sized>(out: &mut String, v: &T) {
    // Plain data (strings, numbers, entries); cannot fail.
    out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
}

/// A version 2 message, written by hand so patches kept as text are not
/// parsed again.
fn message<'a>(
    kind: &str,
    seq: u64,
    now: Ts,
    queues: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    agents: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    extra: &[(&str, &str)],
) -> Utf8Bytes {
    let mut s = String::with_capacity(256);
    s.push_str("{\"type\":");
    push_json(&mut s, kind);
    s.push_str(",\"v\":2,\"seq\":");
    s.push_str(&seq.to_string());
    s.push_str(",\"now\":");
    push_json(&mut s, &now);
    s.push_str(",\"queues\":");
    write_keyed(&mut s, queues);
    s.push_str(",\"agents\":");
    write_keyed(&mut s, agents);
    for (k, v) in extra {
        s.push_str(",\"");
        s.push_str(k);
        s.push_str("\":");
        s.push_str(v);
    }
    s.push('}');
    Utf8Bytes::from(s)
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
    queues: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    agents: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    escalations: &[Arc<Entry>],
) -> Utf8Bytes {
    encode_delta_with(
        seq,
        now,
        queues,
        agents,
        escalations,
        None,
        std::iter::empty(),
    )
}

/// A version 2 delta with a new trend minute: `"trend_at"` (the minute) and
/// `"trend": {queue: sample}` with the samples a client cannot derive by
/// [`extend`]ing its last one.
pub fn encode_delta_with<'a>(
    seq: u64,
    now: Ts,
    queues: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    agents: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    escalations: &[Arc<Entry>],
    trend_at: Option<Ts>,
    trend: impl Iterator<Item = (&'a str, &'a TrendSample)>,
) -> Utf8Bytes {
    let trend: BTreeMap<&str, &TrendSample> = trend.collect();
    let esc = serde_json::to_string(escalations).unwrap_or_else(|_| "[]".into());
    let tr = serde_json::to_string(&trend).unwrap_or_else(|_| "{}".into());
    let at = serde_json::to_string(&trend_at).unwrap_or_else(|_| "null".into());
    let mut extra = vec![("escalations", esc.as_str())];
    if trend_at.is_some() {
        extra.push(("trend_at", at.as_str()));
        extra.push(("trend", tr.as_str()));
    }
    message("delta", seq, now, queues, agents, &extra)
}

/// A version 2 heartbeat: the last `seq` this client is current with and
/// the server's clock.
pub fn heartbeat(seq: u64, now: Ts) -> Utf8Bytes {
    to_text(&serde_json::json!({"type": "heartbeat", "v": 2, "seq": seq, "now": now}))
}

/// What one frame means for the clients with one filter: the message (or
/// `None`: nothing in the frame concerns them) and the agents entering and
/// leaving their queues.
#[derive(Debug)]
pub struct Filtered {
    pub text: Option<Utf8Bytes>,
    entered: Vec<String>,
    left: Vec<String>,
}

/// One frame's messages for filtered clients, made once per filter in use
/// and shared by every client with that filter (a wall of team TVs costs
/// one patch set per team, not per screen). Sound because what a filtered
/// client holds follows from its filter and the frame's `seq` alone: its
/// snapshot and every frame since are the same for all such clients.
#[derive(Debug, Default)]
pub struct PerFilter(Mutex<Vec<(QueueFilter, Arc<OnceLock<Filtered>>)>>);

impl PerFilter {
    /// Frames kept in the resume history beyond the last few are past
    /// every client that keeps up; their messages are dropped (a client
    /// further behind makes its own again).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn cell(&self, f: &QueueFilter) -> Arc<OnceLock<Filtered>> {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = v.iter().find(|(k, _)| k == f) {
            return c.clone();
        }
        let c = Arc::new(OnceLock::new());
        v.push((f.clone(), c.clone()));
        c
    }
}

/// What one version 2 client holds beyond the shared frames: with a queue
/// filter, which agents it has (so it hears when one leaves its queues).
#[derive(Debug, Default, Clone)]
pub struct Client {
    pub filter: Option<QueueFilter>,
    known: HashSet<String>,
}

impl Client {
    pub fn new(filter: Option<QueueFilter>) -> Self {
        Client {
            filter,
            known: HashSet::new(),
        }
    }

    fn wants_queue(&self, q: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.shows(q))
    }

    fn agent_inside(&self, queues: &[String]) -> bool {
        match &self.filter {
            None => true,
            Some(f) => f.shows_any(queues.iter().map(String::as_str)),
        }
    }

    fn doc_inside(&self, doc: &Value) -> bool {
        match &self.filter {
            None => true,
            Some(f) => doc["queues"]
                .as_array()
                .is_some_and(|qs| f.shows_any(qs.iter().filter_map(|q| q.as_str()))),
        }
    }

    /// The snapshot of `docs` this client may see, with the last hour of
    /// trend samples.
    pub fn snapshot(&mut self, docs: &Docs, trends: &Trends) -> Utf8Bytes {
        let trends: BTreeMap<&str, &[TrendSample]> = trends
            .iter()
            .filter(|(k, _)| self.wants_queue(k))
            .map(|(k, v)| {
                (
                    k.as_str(),
                    &v[v.len().saturating_sub(SNAPSHOT_TREND_MINUTES)..],
                )
            })
            .collect();
        let queues: Vec<(&str, String)> = docs
            .queues
            .iter()
            .filter(|(k, _)| self.wants_queue(k))
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        let agents: Vec<(&str, String)> = docs
            .agents
            .iter()
            .filter(|(_, v)| self.doc_inside(v))
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        if self.filter.is_some() {
            self.known = agents.iter().map(|(k, _)| k.to_string()).collect();
        }
        let tr = serde_json::to_string(&trends).unwrap_or_else(|_| "{}".into());
        message(
            "snapshot",
            docs.seq,
            docs.now,
            queues.iter().map(|(k, v)| (*k, Some(v.as_str()))),
            agents.iter().map(|(k, v)| (*k, Some(v.as_str()))),
            &[("trends", tr.as_str())],
        )
    }

    /// The delta of one frame for this client, or `None` when nothing in it
    /// concerns the client. Unfiltered: the frame's one shared text.
    /// Filtered: the message shared by every client with the same filter
    /// (the first of them to get here writes it).
    pub fn frame(
        &mut self,
        seq: u64,
        now: Ts,
        c: &Changes,
        escalations: &[Arc<Entry>],
        views: &[Arc<AgentView>],
    ) -> Option<Utf8Bytes> {
        let Some(filter) = &self.filter else {
            return c.text.clone();
        };
        let cell = c.per_filter.cell(filter);
        let out = cell.get_or_init(|| self.filtered(seq, now, c, escalations, views));
        for id in &out.entered {
            self.known.insert(id.clone());
        }
        for id in &out.left {
            self.known.remove(id);
        }
        out.text.clone()
    }

    /// One frame for this client's filter, from the agents it holds.
    fn filtered(
        &self,
        seq: u64,
        now: Ts,
        c: &Changes,
        escalations: &[Arc<Entry>],
        views: &[Arc<AgentView>],
    ) -> Filtered {
        let queues: Vec<_> = c
            .queues
            .iter()
            .filter(|q| self.wants_queue(&q.id))
            .map(|q| (q.id.as_str(), Some(q.patch.as_str())))
            .collect();
        let by_id: std::collections::HashMap<&str, &AgentView> =
            views.iter().map(|v| (v.agent.as_str(), &**v)).collect();
        // Whole documents of agents entering this client's queues.
        let mut entering: Vec<(&str, String)> = Vec::new();
        let (mut entered, mut left) = (Vec::new(), Vec::new());
        let mut agents = Vec::new();
        for a in &c.agents {
            let Some(view) = by_id.get(a.id.as_str()) else {
                continue;
            };
            let inside = self.agent_inside(&view.queues);
            let known = self.known.contains(&a.id);
            match (inside, known) {
                (true, true) => agents.push((a.id.as_str(), Some(a.patch.as_str()))),
                (true, false) => {
                    entered.push(a.id.clone());
                    entering.push((a.id.as_str(), agent_doc(view).to_string()));
                }
                (false, true) => {
                    left.push(a.id.clone());
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
        let text = (!queues.is_empty()
            || !agents.is_empty()
            || !entering.is_empty()
            || !escalations.is_empty()
            || c.trend_at.is_some())
        .then(|| {
            encode_delta_with(
                seq,
                now,
                queues.into_iter(),
                agents
                    .into_iter()
                    .chain(entering.iter().map(|(k, v)| (*k, Some(v.as_str())))),
                &escalations,
                c.trend_at,
                trend.map(|(q, s)| (q.as_str(), s)),
            )
        });
        Filtered {
            text,
            entered,
            left,
        }
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
            site: None,
            site_stale: None,
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

    fn agent(id: &str, queues: &[&str], reason: &str) -> Arc<AgentView> {
        Arc::new(AgentView {
            agent: id.into(),
            site: None,
            name: None,
            state: crate::event::AgentStatus::Paused,
            reason: Some(reason.into()),
            since: Ts(1_000),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            groups: Vec::new(),
            signed_in_by_escalation: false,
            call: None,
            paused_in: Vec::new(),
            adherence: None,
        })
    }

    /// Three TVs over the billing team and one over repairs: each frame is
    /// written once per team, the billing screens are sent the very same
    /// bytes, and each screen still follows its agents in and out.
    #[test]
    fn clients_with_the_same_filter_share_one_message_per_frame() {
        let billing = || Some(QueueFilter::Names(["billing".to_string()].into()));
        let snap = Snapshot {
            seq: 1,
            agents: vec![
                agent("ann", &["billing"], "lunch"),
                agent("bob", &["repair"], "lunch"),
            ],
            ..Default::default()
        };
        let mut docs = Docs::from_snapshot(&snap, 1);
        let mut tvs = [
            Client::new(billing()),
            Client::new(billing()),
            Client::new(billing()),
            Client::new(Some(QueueFilter::Pattern("rep*".into()))),
        ];
        for tv in &mut tvs {
            tv.snapshot(&docs, &Default::default());
        }
        // Ann takes a break; Bob moves to billing.
        let views = [
            agent("ann", &["billing"], "coffee"),
            agent("bob", &["billing"], "lunch"),
        ];
        let c = docs.advance(2, Ts(2_000), &[], &views, &[], None);
        let sent: Vec<_> = tvs
            .iter_mut()
            .map(|tv| tv.frame(2, Ts(2_000), &c, &[], &views).expect("a message"))
            .collect();
        assert!(
            sent[1..3]
                .iter()
                .all(|t| t.as_str().as_ptr() == sent[0].as_str().as_ptr()),
            "the billing screens share one buffer"
        );
        let v: Value = serde_json::from_str(&sent[0]).unwrap();
        assert_eq!(v["agents"]["ann"], serde_json::json!({"reason": "coffee"}));
        assert_eq!(
            v["agents"]["bob"]["queues"],
            serde_json::json!(["billing"]),
            "bob arrives whole"
        );
        let r: Value = serde_json::from_str(&sent[3]).unwrap();
        assert_eq!(
            r["agents"],
            serde_json::json!({"bob": null}),
            "bob left the repair screen"
        );
        // Each screen kept its own account of who it holds: Bob's next
        // change reaches the billing screens as a patch, not the repair one.
        let views = [agent("bob", &["billing"], "coffee")];
        let c = docs.advance(3, Ts(3_000), &[], &views, &[], None);
        for tv in &mut tvs[..3] {
            let t = tv.frame(3, Ts(3_000), &c, &[], &views).unwrap();
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(
                v["agents"],
                serde_json::json!({"bob": {"reason": "coffee"}})
            );
        }
        assert!(tvs[3].frame(3, Ts(3_000), &c, &[], &views).is_none());
    }
}
