//! The engine's verdicts for `POST /api/v1/events` in cluster mode.
//!
//! Why a rendezvous by message id: the route's events reach the engine by
//! way of the stream (forwarder → JetStream → this instance's consumer), so
//! the engine that judges them is handed a stream message, not the route's
//! request. The forwarder registers the route's reply channel under the
//! message's `Nats-Msg-Id` *before* publishing (the consumer may read the
//! message before the publish acknowledgement comes back); the consumer
//! takes the channels of each message it reads and hands them to the
//! engine with the message ([`Envelope::Awaited`]), which answers each with
//! its refusals, exactly as it answers `Envelope::Checked` in one process.
//! A publish the server drops as a duplicate, or one refused by the fence,
//! is never applied: its awaiters are told so at once.
//!
//! [`Envelope::Awaited`]: crate::sources::Envelope::Awaited

use std::collections::HashMap;
use std::sync::Mutex;

use crate::sources::{Awaiter, Reject};

/// Reply channels waiting for a stream message, by its `Nats-Msg-Id`.
#[derive(Debug, Default)]
pub struct Awaiting {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Vec<(u64, Awaiter)>>,
    next_ticket: u64,
}

impl Awaiting {
    /// Registers `awaiters` for the message `id`; the ticket withdraws
    /// exactly these. Channels whose route stopped waiting are dropped here,
    /// so the map holds at most the requests in flight.
    pub fn register(&self, id: &str, awaiters: Vec<Awaiter>) -> u64 {
        let mut g = self.lock();
        g.by_id.retain(|_, v| {
            v.retain(|(_, a)| !a.verdict.is_closed());
            !v.is_empty()
        });
        g.next_ticket += 1;
        let ticket = g.next_ticket;
        g.by_id
            .entry(id.to_string())
            .or_default()
            .extend(awaiters.into_iter().map(|a| (ticket, a)));
        ticket
    }

    /// The channels waiting for message `id` (the consumer read it): those
    /// of the oldest publish under that id. The forwarder publishes one
    /// message at a time, so a later publish of the same id is either
    /// refused as a duplicate of this one or, after the duplicate window,
    /// stored as a later message of its own.
    pub fn take(&self, id: &str) -> Vec<Awaiter> {
        let mut g = self.lock();
        let Some(v) = g.by_id.get_mut(id) else {
            return Vec::new();
        };
        let oldest = v.iter().map(|(t, _)| *t).min().unwrap_or(0);
        let (mine, rest): (Vec<_>, Vec<_>) = v.drain(..).partition(|(t, _)| *t == oldest);
        *v = rest;
        if v.is_empty() {
            g.by_id.remove(id);
        }
        mine.into_iter().map(|(_, a)| a).collect()
    }

    /// The message was not stored (a duplicate, or fenced): answers the
    /// awaiters of this one publish with `why` for every event.
    pub fn refuse(&self, id: &str, ticket: u64, why: &Reject) {
        let mine = {
            let mut g = self.lock();
            let Some(v) = g.by_id.get_mut(id) else {
                return;
            };
            let (mine, rest): (Vec<_>, Vec<_>) = v.drain(..).partition(|(t, _)| *t == ticket);
            *v = rest;
            if v.is_empty() {
                g.by_id.remove(id);
            }
            mine
        };
        Awaiter::refuse(mine.into_iter().map(|(_, a)| a).collect(), why);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::RejectReason;
    use tokio::sync::oneshot;

    fn awaiter(first: usize, len: usize) -> (Awaiter, oneshot::Receiver<Vec<(usize, Reject)>>) {
        let (tx, rx) = oneshot::channel();
        (
            Awaiter {
                first,
                len,
                verdict: tx,
            },
            rx,
        )
    }

    /// Two requests merged into one message: each hears only about its own
    /// events, numbered from its first.
    #[test]
    fn each_request_gets_the_refusals_of_its_own_events() {
        let aw = Awaiting::default();
        let (a, mut ra) = awaiter(0, 2);
        let (b, mut rb) = awaiter(2, 3);
        aw.register("http:h1", vec![a, b]);
        let taken = aw.take("http:h1");
        assert_eq!(taken.len(), 2);
        assert!(aw.take("http:h1").is_empty(), "taken once");
        let unknown = Reject::new(RejectReason::UnknownCall, "c9");
        Awaiter::answer(taken, &[(1, unknown.clone()), (3, unknown.clone())]);
        assert_eq!(ra.try_recv().unwrap(), vec![(1, unknown.clone())]);
        assert_eq!(rb.try_recv().unwrap(), vec![(1, unknown)]);
    }

    /// A duplicate publish answers its own request, not another one that
    /// waits for the same id.
    #[test]
    fn a_refused_publish_answers_only_its_own_awaiters() {
        let aw = Awaiting::default();
        let (a, mut ra) = awaiter(0, 1);
        let (b, mut rb) = awaiter(0, 2);
        aw.register("http:h1", vec![a]);
        let t = aw.register("http:h1", vec![b]);
        let dup = Reject::new(RejectReason::NotApplied, "duplicate");
        aw.refuse("http:h1", t, &dup);
        assert_eq!(rb.try_recv().unwrap(), vec![(0, dup.clone()), (1, dup)]);
        assert!(ra.try_recv().is_err(), "still waiting");
        assert_eq!(aw.take("http:h1").len(), 1);
    }

    /// The same events posted twice at once: the stored message answers the
    /// first publish only; the second is refused as a duplicate (or, after
    /// the duplicate window, stored and answered as a message of its own).
    #[test]
    fn a_message_answers_the_oldest_publish_under_its_id() {
        let aw = Awaiting::default();
        let (a, _ra) = awaiter(0, 1);
        let (b, _rb) = awaiter(0, 1);
        let first = aw.register("http:h1", vec![a]);
        let second = aw.register("http:h1", vec![b]);
        assert!(first < second);
        assert_eq!(aw.take("http:h1").len(), 1, "the first publish's");
        assert_eq!(aw.take("http:h1").len(), 1, "the second, stored later");
        assert!(aw.take("http:h1").is_empty());
    }

    #[test]
    fn a_request_that_stopped_waiting_is_forgotten() {
        let aw = Awaiting::default();
        let (a, ra) = awaiter(0, 1);
        aw.register("x", vec![a]);
        drop(ra);
        let (b, _rb) = awaiter(0, 1);
        aw.register("y", vec![b]);
        assert!(aw.take("x").is_empty());
        assert_eq!(aw.take("y").len(), 1);
    }
}
