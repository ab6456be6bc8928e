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
use crate::sources::{Awaiter, Envelope, Inbox, Reject, RejectReason};
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
    fn advance(&self, source: &str, seq: u64) {
        if let Some(s @ Some(_)) = self.lock().get_mut(source) {
            *s = Some(seq);
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
            verdicts: Vec::new(),
        };
        match env {
            Envelope::Event { source, event } => Ok(p(source, vec![event], None)),
            Envelope::Batch { source, events } => Ok(p(source, events, None)),
            Envelope::Positioned {
                source,
                events,
                position,
            } => Ok(p(source, events, Some(position))),
            Envelope::Checked {
                source,
                events,
                verdict,
            } => {
                let len = events.len();
                let mut x = p(source, events, None);
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
        let same_kind = self.position.is_some() == next.position.is_some();
        if next.source != self.source || !same_kind || self.events.len() + next.events.len() > 4096
        {
            return Err(next);
        }
        let shift = self.events.len();
        self.events.extend(next.events);
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
    let payload = wire::encode(&msg.events);
    let id = wire::message_id(&msg.source, msg.position, &payload);
    let subject = b.names.source_subject(&msg.source);
    // Before publishing: this instance's consumer may read the message
    // before the acknowledgement is back.
    let ticket = (!msg.verdicts.is_empty())
        .then(|| awaiting.register(&id, std::mem::take(&mut msg.verdicts)));
    let mut attempts = 0u32;
    let mut backoff = Duration::from_millis(50);
    let mut logged = false;
    loop {
        let fence = fences.get(&msg.source);
        if fence == Some(None) {
            tracing::warn!(source = %msg.source, events = msg.events.len(), "another instance ingests this source now; batch dropped");
            if let Some(t) = ticket {
                let why = Reject::new(
                    RejectReason::NotApplied,
                    "another instance ingests this source now",
                );
                awaiting.refuse(&id, t, &why);
            }
            break;
        }
        let mut headers = HeaderMap::new();
        headers.insert(wire::SOURCE, msg.source.as_ref());
        headers.insert(wire::INSTANCE, b.names.instance.as_str());
        if let Some(p) = msg.position {
            headers.insert(wire::POSITION, wire::position_header(p).as_str());
        }
        let mut m = PublishMessage::build()
            .payload(payload.clone().into())
            .headers(headers)
            .message_id(&id);
        if let Some(Some(last)) = fence {
            m = m.expected_last_subject_sequence(last);
        }
        attempts += 1;
        let acked = match b.js.send_publish(subject.clone(), m).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => {
                // A duplicate on the first attempt is someone's earlier
                // message with the same events (a client's retry within the
                // duplicate window): these were not applied again. On a
                // later attempt it is our own first one, which the
                // consumer answers.
                if let Some(t) = ticket.filter(|_| ack.duplicate && attempts == 1) {
                    let why = Reject::new(
                        RejectReason::NotApplied,
                        format!(
                            "the same events are already in the stream (sequence {}, within its duplicate window): not applied again",
                            ack.sequence
                        ),
                    );
                    awaiting.refuse(&id, t, &why);
                }
                fences.advance(&msg.source, ack.sequence);
                if logged {
                    tracing::info!(source = %msg.source, "publishing to the stream again");
                }
                break;
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                // Our own earlier attempt may have landed (an ack lost on
                // the way back): then the last message is ours.
                match b.stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(last)
                        if last
                            .headers
                            .get("Nats-Msg-Id")
                            .is_some_and(|v| v.as_str() == id) =>
                    {
                        fences.advance(&msg.source, last.sequence);
                        break;
                    }
                    _ => {
                        if let Some(t) = ticket {
                            let why = Reject::new(
                                RejectReason::NotApplied,
                                "another instance ingests this source now",
                            );
                            awaiting.refuse(&id, t, &why);
                        }
                        fences.fence(&msg.source);
                        tracing::error!(source = %msg.source, "another instance wrote this source's subject: this instance lost its lease and stops ingesting it");
                        break;
                    }
                }
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(source = %msg.source, error = %e, "cannot append to the stream; retrying (sources wait)");
                    logged = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
