//! The fence on the escalation stream: only the current CTI leader's
//! appends get in.
//!
//! Why the stream's last sequence (`Nats-Expected-Last-Sequence`) and not a
//! leadership epoch checked by readers: an epoch in each record would let a
//! deposed leader's record into the stream and leave every reader to agree
//! on ignoring it, and the deposed instance would not learn that it had
//! been refused (it would act on an entry nobody else has). With the
//! precondition the broker refuses the append itself, so the stream stays
//! the one log every instance copies, and the refused instance knows at
//! once: it stops acting and follows.
//!
//! A new leader first appends a `lead` record expecting the last sequence
//! it has read (so anything a stalled predecessor slipped in before it is
//! read, and mirrored, first; the takeover reads on and tries again). From
//! then on each append expects the sequence of this instance's previous
//! one; any other instance's append in between (a newer leader's `lead`)
//! makes the next one fail with "wrong last sequence". The `lead` record's
//! sequence is the leadership's epoch: it prefixes every `Nats-Msg-Id`,
//! so a deposed leader's retry is never taken for a duplicate of a newer
//! leader's record with the same entry id.
//!
//! Appends are serialised (one in flight per instance): each needs the
//! previous one's sequence. The ladder's records are few (a decision, a
//! result), so the round trip per record costs nothing that matters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;

use super::broker::Broker;

/// Why an append did not get in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another instance appended since this one's last append (or this
    /// instance does not lead): it is no longer the leader.
    Deposed(String),
    /// The broker did not take it (three tries): not in the stream.
    Failed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Deposed(why) | Refusal::Failed(why) => f.write_str(why),
        }
    }
}

/// The armed fence: the leadership's epoch and the sequence this
/// instance's next append expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Armed {
    epoch: u64,
    last: u64,
}

/// This instance's fence on its site's escalation stream (`None` inside:
/// not leading as far as the stream knows).
#[derive(Debug, Default)]
pub struct Fence {
    armed: tokio::sync::Mutex<Option<Armed>>,
    /// The armed epoch (0: none), for the reader.
    epoch: AtomicU64,
}

/// The subject of the `lead` record.
fn lead_subject(site: &str) -> String {
    format!("acdmon.{site}.escalation.lead")
}

/// Whether `subject` is a `lead` record of `site`'s escalation stream.
pub fn is_lead(site: &str, subject: &str) -> bool {
    subject == lead_subject(site)
}

impl Fence {
    /// Appends this instance's `lead` record, expecting `read` (the last
    /// sequence this instance has read) to be the stream's last. `Ok`: the
    /// epoch; `Err(None)`: the stream moved on (read further and try
    /// again); `Err(Some(e))`: the broker did not answer.
    pub async fn arm(&self, b: &Broker, read: u64) -> Result<u64, Option<String>> {
        let mut armed = self.armed.lock().await;
        *armed = None;
        self.epoch.store(0, Ordering::Relaxed);
        let payload = serde_json::json!({ "instance": b.names.instance }).to_string();
        let msg = PublishMessage::build()
            .payload(payload.into_bytes().into())
            .expected_last_sequence(read);
        let acked = match b.js.send_publish(lead_subject(&b.names.site), msg).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => {
                *armed = Some(Armed {
                    epoch: ack.sequence,
                    last: ack.sequence,
                });
                self.epoch.store(ack.sequence, Ordering::Relaxed);
                Ok(ack.sequence)
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(None),
            Err(e) => Err(Some(e.to_string())),
        }
    }

    /// The epoch of this instance's leadership, if the fence is armed.
    pub fn epoch(&self) -> Option<u64> {
        Some(self.epoch.load(Ordering::Relaxed)).filter(|e| *e != 0)
    }

    /// Whether a record with this `Nats-Msg-Id` is this instance's own,
    /// appended under the fence now armed.
    pub fn is_own(&self, msg_id: &str) -> bool {
        self.epoch().is_some_and(|e| {
            msg_id
                .split_once(':')
                .is_some_and(|(p, _)| p.parse() == Ok(e))
        })
    }

    /// Appends one record under the fence (three tries on a broker error,
    /// with the same message id: a retry after a lost acknowledgement is
    /// stored once). A refusal disarms it.
    pub async fn append(
        &self,
        b: &Broker,
        subject: String,
        msg_id: &str,
        payload: Vec<u8>,
    ) -> Result<u64, Refusal> {
        let mut armed = self.armed.lock().await;
        let Some(a) = *armed else {
            return Err(Refusal::Deposed(
                "this instance is not the site's CTI leader (its escalation stream fence is down)"
                    .into(),
            ));
        };
        let id = format!("{}:{msg_id}", a.epoch);
        let mut last_error = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let msg = PublishMessage::build()
                .payload(payload.clone().into())
                .message_id(&id)
                .expected_last_sequence(a.last);
            let acked = match b.js.send_publish(subject.clone(), msg).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => {
                    *armed = Some(Armed {
                        last: a.last.max(ack.sequence),
                        ..a
                    });
                    return Ok(ack.sequence);
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    *armed = None;
                    self.epoch.store(0, Ordering::Relaxed);
                    return Err(Refusal::Deposed(format!(
                        "refused by the escalation stream: another instance appended after this one's last record (sequence {}); another instance leads the site now",
                        a.last
                    )));
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(Refusal::Failed(last_error))
    }
}
