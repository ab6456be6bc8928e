//! The sources' side of the stream: what sources send to "the engine" is
//! appended to the site's stream instead; control messages (shutdown, a
//! reloaded configuration) go straight to this instance's engine.
//!
//! Per source the forwarder publishes one message at a time and waits for
//! its acknowledgement, with the subject's last sequence as a precondition
//! (`Nats-Expected-Last-Subject-Sequence`) when this instance ingests the
//! source under a lease: that is the fence. An instance whose lease was
//! taken over while it was stalled finds its next publish refused, drops the
//! batch (the new ingester re-reads a file from the stream's last position,
//! and holds the live PBX link itself) and stops the source. While a publish
//! is in flight, the envelopes that arrive are merged into the next message,
//! so throughput does not pay one round trip per event.
//!
//! Live sources in cluster mode hand on each event's wire origin
//! ([`crate::sources::Origin`]): their batches are published as one message
//! per origin (the events one PBX event gave), whose id is that origin, so
//! the same PBX event published by two ingesters (an old holder still
//! connected while the new one connects), in whatever batches each read
//! it, is stored once: JetStream drops the second copy within its
//! duplicate window. The first message of a batch goes behind the fence;
//! the PBX events after it are pipelined (their ids already keep a second
//! ingester's copies out; waiting for each acknowledgement would cost a
//! round trip per PBX event), and an event the source made itself (a
//! resync's, a timer's) is fenced again, so a stale holder's resync never
//! lands after the new holder's events.
//!
//! A publish that fails for any other reason (the broker restarting, no
//! quorum) is retried with the same `Nats-Msg-Id`, forever, with backoff:
//! the sources wait meanwhile (backpressure), nothing is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use tokio::sync::mpsc;

use super::broker::Broker;
use super::verdicts::Awaiting;
use super::wire;
use crate::event::Event;
use crate::sources::{Awaiter, Envelope, Inbox, Origin, Reject, RejectReason};
use crate::state::SourcePosition;

/// Largest payload merged into one message (the server's default
/// `max_payload` is 1 MB).
const MAX_MESSAGE: usize = 512 * 1024;

/// The expected last sequence per source this instance ingests under a
/// lease (`None`: fenced, drop its batches).
#[derive(Debug, Default)]
pub struct Fences {
    inner: Mutex<HashMap<String, Option<u64>>>,
}

impl Fences {
    /// The ingester took `source` over; the stream's last message on its
    /// subject has sequence `last` (0: none).
    pub fn arm(&self, source: &str, last: u64) {
        self.lock().insert(source.to_string(), Some(last));
    }
    /// The ingester stopped `source`: its later batches (a source that is
    /// still winding down) are not fenced but published as they are.
    pub fn disarm(&self, source: &str) {
        self.lock().remove(source);
    }
    /// Whether `source`'s publish was refused since it was armed.
    pub fn is_fenced(&self, source: &str) -> bool {
        matches!(self.lock().get(source), Some(None))
    }
    fn get(&self, source: &str) -> Option<Option<u64>> {
        self.lock().get(source).copied()
    }
    /// The subject's last message is at least `seq` (a duplicate's
    /// acknowledgement names the earlier copy, which may be older than what
    /// this instance wrote since: the fence never moves back).
    fn advance(&self, source: &str, seq: u64) {
        if let Some(Some(s)) = self.lock().get_mut(source) {
            *s = (*s).max(seq);
        }
    }
    fn fence(&self, source: &str) {
        if let Some(s) = self.lock().get_mut(source) {
            *s = None;
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<u64>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One message to publish: a source's events, where they end if the source
/// is re-readable, and who waits for the answer.
struct Pending {
    source: Arc<str>,
    events: Vec<Event>,
    position: Option<SourcePosition>,
    /// A traced batch: each event's origin (see the module docs).
    origins: Option<Vec<Option<Origin>>>,
    /// `POST /api/v1/events` requests waiting for the engine's verdict on
    /// their part of the message (see [`super::verdicts`]).
    verdicts: Vec<Awaiter>,
}

impl Pending {
    fn from(env: Envelope) -> Result<Pending, Envelope> {
        let p = |source, events, position| Pending {
            source,
            events,
            position,
            origins: None,
            verdicts: Vec::new(),
        };
        match env {
            Envelope::Event { source, event } => Ok(p(source, vec![event], None)),
            Envelope::Batch { source, events } => Ok(p(source, events, None)),
            Envelope::Traced {
                source,
                events,
                mut origins,
            } => {
                origins.resize(events.len(), None);
                let mut x = p(source, events, None);
                x.origins = Some(origins);
                Ok(x)
            }
            Envelope::Positioned {
                source,
                events,
                position,
            } => Ok(p(source, events, Some(position))),
            Envelope::Checked {
                source,
                events,
                verdict,
                origins,
            } => {
                let len = events.len();
                let mut x = p(source, events, None);
                x.origins = origins.map(|mut o| {
                    o.resize(len, None);
                    o
                });
                x.verdicts.push(Awaiter {
                    first: 0,
                    len,
                    verdict,
                });
                Ok(x)
            }
            other => Err(other),
        }
    }

    /// Takes `next` into this message when it continues it.
    fn absorb(&mut self, next: Pending) -> Result<(), Pending> {
        let same_kind = self.position.is_some() == next.position.is_some()
            && self.origins.is_some() == next.origins.is_some();
        if next.source != self.source || !same_kind || self.events.len() + next.events.len() > 4096
        {
            return Err(next);
        }
        let shift = self.events.len();
        self.events.extend(next.events);
        if let (Some(a), Some(b)) = (self.origins.as_mut(), next.origins) {
            a.extend(b);
        }
        self.position = next.position.or(self.position);
        self.verdicts
            .extend(next.verdicts.into_iter().map(|a| Awaiter {
                first: a.first + shift,
                ..a
            }));
        Ok(())
    }
}

/// Runs until the sources' channel closes: publishes events, passes control
/// messages to `engine`.
pub async fn run(
    mut rx: mpsc::Receiver<Envelope>,
    engine: Inbox,
    broker: tokio::sync::watch::Receiver<Option<Broker>>,
    fences: Arc<Fences>,
    awaiting: Arc<Awaiting>,
) {
    let mut carry: Option<Pending> = None;
    let mut broker = broker;
    loop {
        let mut msg = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                None => return,
                Some(env) => match Pending::from(env) {
                    Ok(p) => p,
                    Err(control) => {
                        if engine.send(control).await.is_err() {
                            return;
                        }
                        continue;
                    }
                },
            },
        };
        // Merge what is already waiting behind it.
        let mut size_guess = msg.events.len() * 120;
        while size_guess < MAX_MESSAGE {
            match rx.try_recv() {
                Ok(env) => match Pending::from(env) {
                    Ok(p) => match msg.absorb(p) {
                        Ok(()) => size_guess = msg.events.len() * 120,
                        Err(p) => {
                            carry = Some(p);
                            break;
                        }
                    },
                    Err(control) => {
                        // Control messages keep their place after what came
                        // before them: publish first, then pass it on.
                        publish(&mut broker, &fences, &awaiting, msg).await;
                        if engine.send(control).await.is_err() {
                            return;
                        }
                        msg = Pending {
                            source: Arc::from(""),
                            events: Vec::new(),
                            position: None,
                            origins: None,
                            verdicts: Vec::new(),
                        };
                        break;
                    }
                },
                Err(_) => break,
            }
        }
        if !msg.source.is_empty() {
            publish(&mut broker, &fences, &awaiting, msg).await;
        }
    }
}

async fn publish(
    broker: &mut tokio::sync::watch::Receiver<Option<Broker>>,
    fences: &Fences,
    awaiting: &Awaiting,
    mut msg: Pending,
) {
    if msg.events.is_empty() {
        // Nothing to append (a relist's "all handed on" marker, see
        // `crate::sources::tcp`): what came before it is published.
        crate::sources::Awaiter::answer(std::mem::take(&mut msg.verdicts), &[]);
        return;
    }
    let b = match broker.wait_for(|b| b.is_some()).await {
        Ok(b) => b.clone(),
        Err(_) => return,
    };
    let Some(b) = b else { return };
    let verdicts = std::mem::take(&mut msg.verdicts);
    let Some(origins) = msg.origins.take() else {
        let payload = wire::encode(&msg.events);
        let id = wire::message_id(&msg.source, msg.position, &payload);
        let one = Outgoing {
            payload,
            id,
            named: false,
            awaiters: verdicts,
        };
        publish_one(&b, fences, awaiting, &msg.source, msg.position, one).await;
        return;
    };
    let groups = by_origin(&origins);
    let ranges: Vec<_> = groups.iter().map(|(r, _)| r.clone()).collect();
    let mut messages: std::collections::VecDeque<Outgoing> = groups
        .into_iter()
        .zip(split_awaiters(verdicts, &ranges))
        .map(|((range, origin), awaiters)| {
            let payload = wire::encode(&msg.events[range]);
            let id = wire::origin_id(&msg.source, origin, &payload);
            Outgoing {
                payload,
                id,
                named: origin.is_some(),
                awaiters,
            }
        })
        .collect();
    while let Some(first) = messages.pop_front() {
        // The first of a run of PBX events, and every event of the
        // source's own (a resync's), one at a time behind the fence.
        let named = first.named;
        if !publish_one(&b, fences, awaiting, &msg.source, None, first).await {
            break;
        }
        if !named {
            continue;
        }
        // The rest of the run: pipelined. Their ids name the PBX's events,
        // so a copy another ingester stored is dropped by the server
        // without a fence; the next run is fenced again.
        let end = messages
            .iter()
            .position(|m| !m.named)
            .unwrap_or(messages.len());
        let run: Vec<Outgoing> = messages.drain(..end).collect();
        if !run.is_empty() && !publish_pipelined(&b, fences, awaiting, &msg.source, run).await {
            break;
        }
    }
    // Fenced: what was not sent is not applied.
    let why = Reject::new(
        RejectReason::NotApplied,
        "another instance ingests this source now",
    );
    for m in messages {
        Awaiter::refuse(m.awaiters, &why);
    }
}

/// One stream message: its payload, its `Nats-Msg-Id`, whether the id names
/// a PBX event (an origin), and the requests waiting for its verdict.
struct Outgoing {
    payload: Vec<u8>,
    id: String,
    named: bool,
    awaiters: Vec<Awaiter>,
}

/// The messages of a traced batch: each run of events with one origin, and
/// each event without one on its own (a timer's or a resync's event: two
/// ingesters make the same one from the same input, so its content, alone,
/// is its identity).
fn by_origin(origins: &[Option<Origin>]) -> Vec<(std::ops::Range<usize>, Option<&str>)> {
    let mut out: Vec<(std::ops::Range<usize>, Option<&str>)> = Vec::new();
    for (i, o) in origins.iter().enumerate() {
        let o = o.as_deref();
        match out.last_mut() {
            Some((r, Some(last))) if o == Some(*last) && r.end == i => r.end = i + 1,
            _ => out.push((i..i + 1, o)),
        }
    }
    out
}

/// The awaiters of each message of a traced batch (`ranges`: the messages'
/// events). A request whose events span several messages gets one reply
/// channel per message; a task gathers their verdicts, renumbered from the
/// request's first event, into the request's own channel (dropped unanswered
/// if a part never is, as a lost reply is).
fn split_awaiters(verdicts: Vec<Awaiter>, ranges: &[std::ops::Range<usize>]) -> Vec<Vec<Awaiter>> {
    let mut per: Vec<Vec<Awaiter>> = ranges.iter().map(|_| Vec::new()).collect();
    for a in verdicts {
        let span = a.first..a.first + a.len;
        let mut parts = Vec::new();
        for (k, r) in ranges.iter().enumerate() {
            let (lo, hi) = (r.start.max(span.start), r.end.min(span.end));
            if lo >= hi {
                continue;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            per[k].push(Awaiter {
                first: lo - r.start,
                len: hi - lo,
                verdict: tx,
            });
            parts.push((lo - span.start, rx));
        }
        tokio::spawn(async move {
            let mut all = Vec::new();
            for (shift, rx) in parts {
                match rx.await {
                    Ok(v) => all.extend(v.into_iter().map(|(i, r)| (i + shift, r))),
                    Err(_) => return,
                }
            }
            let _ = a.verdict.send(all);
        });
    }
    per
}

/// The headers of every event message.
fn message(
    b: &Broker,
    source: &str,
    position: Option<SourcePosition>,
    m: &Outgoing,
) -> PublishMessage {
    let mut headers = HeaderMap::new();
    headers.insert(wire::SOURCE, source);
    headers.insert(wire::INSTANCE, b.names.instance.as_str());
    if let Some(p) = position {
        headers.insert(wire::POSITION, wire::position_header(p).as_str());
    }
    PublishMessage::build()
        .payload(m.payload.clone().into())
        .headers(headers)
        .message_id(&m.id)
}

/// A first attempt's acknowledgement of a duplicate: someone's earlier
/// message with the same id (a client's retry, another ingester's copy):
/// these events were not applied again.
fn duplicate(ack_sequence: u64) -> Reject {
    Reject::new(
        RejectReason::NotApplied,
        format!(
            "the same events are already in the stream (sequence {ack_sequence}, within its duplicate window): not applied again"
        ),
    )
}

/// Appends messages without waiting for each one's acknowledgement before
/// the next (up to `WINDOW` in flight); a message whose publish fails is
/// sent again, alone, until it is stored. False when the source is fenced
/// (nothing sent; the awaiters are refused).
async fn publish_pipelined(
    b: &Broker,
    fences: &Fences,
    awaiting: &Awaiting,
    source: &Arc<str>,
    messages: Vec<Outgoing>,
) -> bool {
    if fences.get(source) == Some(None) {
        tracing::warn!(%source, "another instance ingests this source now; batch dropped");
        let why = Reject::new(
            RejectReason::NotApplied,
            "another instance ingests this source now",
        );
        for m in messages {
            Awaiter::refuse(m.awaiters, &why);
        }
        return false;
    }
    // Acknowledgements awaited once this many are in flight (each holds
    // one of the client's in-flight permits until it is awaited).
    const WINDOW: usize = 512;
    let subject = b.names.source_subject(source);
    let mut inflight = std::collections::VecDeque::with_capacity(WINDOW);
    let mut next = messages.into_iter();
    loop {
        while inflight.len() < WINDOW {
            let Some(mut m) = next.next() else { break };
            // Before publishing: this instance's consumer may read the
            // message before the acknowledgement is back.
            let awaiters = std::mem::take(&mut m.awaiters);
            let ticket = (!awaiters.is_empty()).then(|| awaiting.register(&m.id, awaiters));
            let sent =
                b.js.send_publish(subject.clone(), message(b, source, None, &m))
                    .await;
            inflight.push_back((sent, m, ticket));
        }
        let Some((sent, m, ticket)) = inflight.pop_front() else {
            break;
        };
        let acked = match sent {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => {
                if let Some(t) = ticket.filter(|_| ack.duplicate) {
                    awaiting.refuse(&m.id, t, &duplicate(ack.sequence));
                }
                fences.advance(source, ack.sequence);
            }
            Err(_) => {
                // Alone and in order, retried until stored; the id keeps a
                // copy that did land from being stored twice (and then the
                // consumer answers its awaiters).
                let mut backoff = Duration::from_millis(50);
                loop {
                    let again = match b
                        .js
                        .send_publish(subject.clone(), message(b, source, None, &m))
                        .await
                    {
                        Ok(ack) => ack.await,
                        Err(e) => Err(e),
                    };
                    match again {
                        Ok(ack) => {
                            fences.advance(source, ack.sequence);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(%source, error = %e, "cannot append to the stream; retrying (sources wait)");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            }
        }
    }
    true
}

/// Appends one message behind the fence; false when the source is fenced
/// (the message, and the rest of its batch, are dropped).
async fn publish_one(
    b: &Broker,
    fences: &Fences,
    awaiting: &Awaiting,
    source: &Arc<str>,
    position: Option<SourcePosition>,
    mut m: Outgoing,
) -> bool {
    let id = m.id.clone();
    let subject = b.names.source_subject(source);
    // Before publishing: this instance's consumer may read the message
    // before the acknowledgement is back.
    let awaiters = std::mem::take(&mut m.awaiters);
    let ticket = (!awaiters.is_empty()).then(|| awaiting.register(&id, awaiters));
    let lost = || {
        Reject::new(
            RejectReason::NotApplied,
            "another instance ingests this source now",
        )
    };
    let mut attempts = 0u32;
    let mut backoff = Duration::from_millis(50);
    let mut logged = false;
    loop {
        let fence = fences.get(source);
        if fence == Some(None) {
            tracing::warn!(%source, "another instance ingests this source now; batch dropped");
            if let Some(t) = ticket {
                awaiting.refuse(&id, t, &lost());
            }
            return false;
        }
        let mut pm = message(b, source, position, &m);
        if let Some(Some(last)) = fence {
            pm = pm.expected_last_subject_sequence(last);
        }
        attempts += 1;
        let acked = match b.js.send_publish(subject.clone(), pm).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => {
                // A duplicate on the first attempt is someone's earlier
                // message with the same id (a client's retry within the
                // duplicate window, another ingester's copy): these were
                // not applied again. On a later attempt it is our own first
                // one, which the consumer answers.
                if let Some(t) = ticket.filter(|_| ack.duplicate && attempts == 1) {
                    awaiting.refuse(&id, t, &duplicate(ack.sequence));
                }
                fences.advance(source, ack.sequence);
                if logged {
                    tracing::info!(%source, "publishing to the stream again");
                }
                return true;
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                // Our own earlier attempt may have landed (an ack lost on
                // the way back), or another ingester stored the same PBX
                // event under the same id: then the last message is this one.
                match b.stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(last)
                        if last
                            .headers
                            .get("Nats-Msg-Id")
                            .is_some_and(|v| v.as_str() == id) =>
                    {
                        fences.advance(source, last.sequence);
                        return true;
                    }
                    _ => {
                        if let Some(t) = ticket {
                            awaiting.refuse(&id, t, &lost());
                        }
                        fences.fence(source);
                        tracing::error!(%source, "another instance wrote this source's subject: this instance lost its lease and stops ingesting it");
                        return false;
                    }
                }
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(%source, error = %e, "cannot append to the stream; retrying (sources wait)");
                    logged = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traced_batch_is_one_message_per_origin_and_per_event_without_one() {
        let o = |s: &str| Some(Origin::from(s));
        let origins = vec![o("e1"), o("e1"), None, None, o("e2"), o("e1")];
        let got: Vec<_> = by_origin(&origins)
            .into_iter()
            .map(|(r, o)| (r.start, r.end, o.map(String::from)))
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            got,
            vec![
                (0, 2, s("e1")),
                (2, 3, None),
                (3, 4, None),
                (4, 5, s("e2")),
                (5, 6, s("e1")),
            ]
        );
    }
}
