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
use super::wire;
use crate::event::Event;
use crate::sources::{Envelope, Inbox, Origin};
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
    verdicts: Vec<tokio::sync::oneshot::Sender<Vec<(usize, crate::sources::Reject)>>>,
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
                let mut x = p(source, events, None);
                x.origins = origins.map(|mut o| {
                    o.resize(x.events.len(), None);
                    o
                });
                x.verdicts.push(verdict);
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
        self.events.extend(next.events);
        if let (Some(a), Some(b)) = (self.origins.as_mut(), next.origins) {
            a.extend(b);
        }
        self.position = next.position.or(self.position);
        self.verdicts.extend(next.verdicts);
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
                        publish(&mut broker, &fences, msg).await;
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
            publish(&mut broker, &fences, msg).await;
        }
    }
}

async fn publish(
    broker: &mut tokio::sync::watch::Receiver<Option<Broker>>,
    fences: &Fences,
    msg: Pending,
) {
    let b = match broker.wait_for(|b| b.is_some()).await {
        Ok(b) => b.clone(),
        Err(_) => return,
    };
    let Some(b) = b else { return };
    match &msg.origins {
        None => {
            let payload = wire::encode(&msg.events);
            let id = wire::message_id(&msg.source, msg.position, &payload);
            publish_one(&b, fences, &msg.source, msg.position, payload, &id).await;
        }
        Some(origins) => {
            let messages: Vec<(Vec<u8>, String, bool)> = by_origin(origins)
                .into_iter()
                .map(|(range, origin)| {
                    let payload = wire::encode(&msg.events[range]);
                    let id = wire::origin_id(&msg.source, origin, &payload);
                    (payload, id, origin.is_some())
                })
                .collect();
            let mut i = 0;
            while i < messages.len() {
                // The first of a run of PBX events, and every event of the
                // source's own (a resync's), one at a time behind the fence.
                let (payload, id, named) = &messages[i];
                if !publish_one(&b, fences, &msg.source, None, payload.clone(), id).await {
                    break;
                }
                i += 1;
                if !named {
                    continue;
                }
                // The rest of the run: pipelined. Their ids name the PBX's
                // events, so a copy another ingester stored is dropped by
                // the server without a fence; the next run is fenced again.
                let end = messages[i..]
                    .iter()
                    .position(|m| !m.2)
                    .map_or(messages.len(), |p| i + p);
                if end > i && !publish_pipelined(&b, fences, &msg.source, &messages[i..end]).await {
                    break;
                }
                i = end;
            }
        }
    }
    for v in msg.verdicts {
        // The engine's verdicts are not known here: the events are in the
        // stream; rejects show in /metrics of every instance.
        let _ = v.send(Vec::new());
    }
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

/// Appends messages without waiting for each one's acknowledgement before
/// the next (up to `WINDOW` in flight); a message whose
/// publish fails is sent again, alone, until it is stored. False when the
/// source is fenced (nothing sent).
async fn publish_pipelined(
    b: &Broker,
    fences: &Fences,
    source: &Arc<str>,
    messages: &[(Vec<u8>, String, bool)],
) -> bool {
    if fences.get(source) == Some(None) {
        tracing::warn!(%source, "another instance ingests this source now; batch dropped");
        return false;
    }
    let subject = b.names.source_subject(source);
    let build = |payload: &[u8], id: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(wire::SOURCE, source.as_ref());
        headers.insert(wire::INSTANCE, b.names.instance.as_str());
        PublishMessage::build()
            .payload(payload.to_vec().into())
            .headers(headers)
            .message_id(id)
    };
    // Acknowledgements awaited once this many are in flight (each holds
    // one of the client's in-flight permits until it is awaited).
    const WINDOW: usize = 512;
    let mut inflight = std::collections::VecDeque::with_capacity(WINDOW);
    let mut next = messages.iter();
    loop {
        while inflight.len() < WINDOW {
            let Some(m) = next.next() else { break };
            inflight.push_back((
                b.js.send_publish(subject.clone(), build(&m.0, &m.1)).await,
                m,
            ));
        }
        let Some((ack, (payload, id, _))) = inflight.pop_front() else {
            break;
        };
        let acked = match ack {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => fences.advance(source, ack.sequence),
            Err(_) => {
                // Alone and in order, retried until stored; the id keeps a
                // copy that did land from being stored twice.
                let mut backoff = Duration::from_millis(50);
                loop {
                    let again = match b.js.send_publish(subject.clone(), build(payload, id)).await {
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

/// Appends one message; false when the source is fenced (the message, and
/// the rest of its batch, are dropped).
async fn publish_one(
    b: &Broker,
    fences: &Fences,
    source: &Arc<str>,
    position: Option<SourcePosition>,
    payload: Vec<u8>,
    id: &str,
) -> bool {
    let subject = b.names.source_subject(source);
    let mut backoff = Duration::from_millis(50);
    let mut logged = false;
    loop {
        let fence = fences.get(source);
        if fence == Some(None) {
            tracing::warn!(%source, "another instance ingests this source now; batch dropped");
            return false;
        }
        let mut headers = HeaderMap::new();
        headers.insert(wire::SOURCE, source.as_ref());
        headers.insert(wire::INSTANCE, b.names.instance.as_str());
        if let Some(p) = position {
            headers.insert(wire::POSITION, wire::position_header(p).as_str());
        }
        let mut m = PublishMessage::build()
            .payload(payload.clone().into())
            .headers(headers)
            .message_id(id);
        if let Some(Some(last)) = fence {
            m = m.expected_last_subject_sequence(last);
        }
        let acked = match b.js.send_publish(subject.clone(), m).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => {
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
