//! The engine's side of the stream: every instance reads the site's whole
//! event stream in order (an ordered consumer: no acks, no shared state on
//! the server, recreated by the client after a gap or a server restart) and
//! hands each message to its engine as one batch.
//!
//! Each batch travels as `Envelope::Positioned` with the message's stream
//! sequence as the position ([`STREAM_FILE`] in place of a file id), so the
//! engine checkpoint that holds the figures also holds how far into the
//! stream they go: a restarted instance resumes right after it, and without
//! a usable checkpoint it replays the stream from the start of the local day.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt;

use super::broker::Names;
use super::wire;
use crate::sources::{Envelope, Inbox, Reject, RejectCounter};
use crate::state::SourcePosition;

/// `SourcePosition::file` of a stream position (no inode is this large).
pub const STREAM_FILE: u64 = u64::MAX - 0x5354;

/// The last stream sequence among checkpointed positions, if any.
pub fn stream_position(positions: &[(String, SourcePosition)]) -> Option<u64> {
    positions
        .iter()
        .filter(|(_, p)| p.file == STREAM_FILE)
        .map(|(_, p)| p.offset)
        .max()
}

/// A central instance's checkpointed positions, per site: the last stream
/// sequence of each site's events in the figures (its consumer names
/// sources `<site>/<source>`, all positioned in that site's stream).
pub fn site_positions(
    positions: &[(String, SourcePosition)],
) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (source, p) in positions {
        if p.file != STREAM_FILE {
            continue;
        }
        if let Some((site, _)) = source.split_once('/') {
            let seq = out.entry(site.to_string()).or_insert(0);
            *seq = p.offset.max(*seq);
        }
    }
    out
}

/// How far this instance has read the stream (for `/readyz` and metrics).
#[derive(Debug, Default)]
pub struct Progress {
    /// Stream sequence of the last message handed to the engine.
    pub applied: AtomicU64,
    /// The stream's last sequence, as last seen.
    pub last: AtomicU64,
    /// Messages after `applied` the server still had for us.
    pub pending: AtomicU64,
    pub caught_up: AtomicBool,
    pub connected: AtomicBool,
    /// Messages read since start.
    pub messages: AtomicU64,
    /// When the newest message read (an event batch or a heartbeat) was
    /// stored by the server, ms since the epoch; 0 before the first. A
    /// central instance calls a site STALE from it.
    pub last_stored_ms: std::sync::atomic::AtomicI64,
    /// Told by the progress watch when the stream has more than this
    /// instance read and nothing arrived for a while (the server that held
    /// the ordered consumer died quietly): the consumer is recreated after
    /// the last message read.
    pub stalled: tokio::sync::Notify,
}

impl Progress {
    /// Messages in the stream this instance has not handed to its engine.
    pub fn lag(&self) -> u64 {
        let pending = self.pending.load(Ordering::Relaxed);
        let applied = self.applied.load(Ordering::Relaxed);
        if applied == 0 {
            return pending;
        }
        // Once something was read, the stream's own last sequence (fetched
        // every 250 ms) says what is left: the pending count a message
        // carried can stay one too high after a broker restart, which with
        // the heartbeats arriving every 5 s kept an instance from ever
        // being caught up.
        self.last.load(Ordering::Relaxed).saturating_sub(applied)
    }

    /// Caught up: connected, and nothing in the stream left to read. Once
    /// something was read, by the stream's last sequence (the `caught_up`
    /// flag comes from a message's pending count, see [`Progress::lag`]);
    /// before, by the consumer's word that nothing is pending.
    pub fn is_caught_up(&self) -> bool {
        let read_some = self.applied.load(Ordering::Relaxed) > 0;
        self.connected.load(Ordering::Relaxed)
            && (read_some || self.caught_up.load(Ordering::Relaxed))
            && self.lag() == 0
    }
}

/// Where to start reading.
pub fn start_policy(resume_after: Option<u64>, day_start_ms: i64) -> DeliverPolicy {
    match resume_after {
        Some(seq) => DeliverPolicy::ByStartSequence {
            start_sequence: seq + 1,
        },
        None => DeliverPolicy::ByStartTime {
            start_time: async_nats::datetime::from_nanos(day_start_ms as i128 * 1_000_000)
                .unwrap_or_else(|_| async_nats::datetime::now()),
        },
    }
}

/// The stream one consumer reads.
#[derive(Clone)]
pub struct Feed {
    pub stream: async_nats::jetstream::stream::Stream,
    pub names: Names,
    /// A central instance's consumer: every call, queue and agent id
    /// becomes `<site>/<id>` (two sites' `hotline` stay two queues).
    pub qualify: bool,
    /// `POST /api/v1/events` requests on this instance waiting for the
    /// engine's verdict on a message (a site's own instances).
    pub awaiting: Option<Arc<super::verdicts::Awaiting>>,
}

/// Reads the stream into `engine` until the engine is gone. Heartbeats
/// move the position (and `last_stored_ms`) but reach no engine.
pub async fn run(
    broker: Feed,
    engine: Inbox,
    start: DeliverPolicy,
    progress: Arc<Progress>,
    rejects: Arc<RejectCounter>,
) {
    let mut start = start;
    loop {
        match read(&broker, &engine, start, &progress, &rejects).await {
            Ok(()) => return,
            Err(e) => {
                progress.connected.store(false, Ordering::Relaxed);
                progress.caught_up.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "reading the event stream failed; resuming");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let applied = progress.applied.load(Ordering::Relaxed);
                if applied > 0 {
                    start = DeliverPolicy::ByStartSequence {
                        start_sequence: applied + 1,
                    };
                }
            }
        }
    }
}

/// `Ok` when the engine's inbox closed (the daemon is stopping).
async fn read(
    broker: &Feed,
    engine: &Inbox,
    start: DeliverPolicy,
    progress: &Progress,
    rejects: &RejectCounter,
) -> Result<(), String> {
    let consumer = broker
        .stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: broker.names.events(),
            deliver_policy: start,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot create the stream consumer: {e}"))?;
    let info = consumer
        .get_info()
        .await
        .map_err(|e| format!("stream consumer info: {e}"))?;
    progress.pending.store(info.num_pending, Ordering::Relaxed);
    progress.connected.store(true, Ordering::Relaxed);
    if info.num_pending == 0 {
        progress.caught_up.store(true, Ordering::Relaxed);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("stream consumer: {e}"))?;
    loop {
        let m = tokio::select! {
            m = messages.next() => m,
            _ = progress.stalled.notified() => {
                return Err("no message for a while although the stream has more".into());
            }
        };
        let Some(m) = m else { break };
        let m = m.map_err(|e| format!("stream consumer: {e}"))?;
        let (seq, pending) = match m.info() {
            Ok(i) => (i.stream_sequence, i.pending),
            Err(e) => return Err(format!("stream message without its metadata: {e}")),
        };
        let stored_ms = m
            .info()
            .map(|i| (i.published.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or(0);
        progress
            .last_stored_ms
            .fetch_max(stored_ms, Ordering::Relaxed);
        if broker.names.is_heartbeat(m.subject.as_str()) {
            progress.applied.store(seq, Ordering::Relaxed);
            progress.pending.store(pending, Ordering::Relaxed);
            if pending == 0 {
                progress.caught_up.store(true, Ordering::Relaxed);
            }
            progress.last.fetch_max(seq, Ordering::Relaxed);
            continue;
        }
        let headers = m.headers.as_ref();
        let source: Arc<str> = headers
            .and_then(|h| h.get(wire::SOURCE))
            .map(|v| Arc::from(v.as_str()))
            .or_else(|| m.subject.as_str().rsplit('.').next().map(Arc::from))
            .unwrap_or_else(|| Arc::from("unknown"));
        let events = match wire::decode(&m.payload) {
            Ok(mut evs) if broker.qualify => {
                for ev in &mut evs {
                    super::sites::qualify(ev, &broker.names.site);
                }
                evs
            }
            Ok(evs) => evs,
            Err(why) => {
                rejects.record(
                    &source,
                    &format_args!("stream {} seq {seq}", broker.names.stream()),
                    &Reject::new(crate::event::RejectReason::MalformedEvent, why),
                );
                Vec::new()
            }
        };
        let source = if broker.qualify {
            Arc::from(format!("{}/{source}", broker.names.site))
        } else {
            source
        };
        let position = SourcePosition {
            file: STREAM_FILE,
            offset: seq,
        };
        let awaiting = match (&broker.awaiting, headers.and_then(|h| h.get("Nats-Msg-Id"))) {
            (Some(a), Some(id)) => a.take(id.as_str()),
            _ => Vec::new(),
        };
        let env = if awaiting.is_empty() {
            Envelope::Positioned {
                source,
                events,
                position,
            }
        } else {
            Envelope::Awaited {
                source,
                events,
                position,
                awaiting,
            }
        };
        if engine.send(env).await.is_err() {
            return Ok(());
        }
        progress.applied.store(seq, Ordering::Relaxed);
        progress.pending.store(pending, Ordering::Relaxed);
        progress.messages.fetch_add(1, Ordering::Relaxed);
        if pending == 0 {
            progress.caught_up.store(true, Ordering::Relaxed);
        }
        if progress.last.load(Ordering::Relaxed) < seq {
            progress.last.store(seq, Ordering::Relaxed);
        }
    }
    Err("the stream consumer ended".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_says_where_in_the_stream_the_figures_end() {
        let file = SourcePosition {
            file: 7,
            offset: 900,
        };
        let at = |offset| SourcePosition {
            file: STREAM_FILE,
            offset,
        };
        assert_eq!(stream_position(&[("feed".into(), file)]), None);
        assert_eq!(
            stream_position(&[
                ("feed".into(), at(40)),
                ("pbx".into(), at(41)),
                ("old".into(), file)
            ]),
            Some(41)
        );
        assert_eq!(
            site_positions(&[
                ("north/pbx".into(), at(40)),
                ("north/acd".into(), at(44)),
                ("south/pbx".into(), at(9)),
                ("feed".into(), at(3)),
                ("east/old".into(), file)
            ]),
            [("north".to_string(), 44), ("south".to_string(), 9)].into()
        );
        assert!(matches!(
            start_policy(Some(41), 0),
            DeliverPolicy::ByStartSequence { start_sequence: 42 }
        ));
        assert!(matches!(
            start_policy(None, 1_765_000_000_000),
            DeliverPolicy::ByStartTime { .. }
        ));
    }

    #[test]
    fn lag_counts_what_the_stream_has_beyond_what_was_applied() {
        let p = Progress::default();
        p.connected.store(true, Ordering::Relaxed);
        p.pending.store(5, Ordering::Relaxed);
        assert_eq!(
            p.lag(),
            5,
            "nothing applied yet: the consumer's pending count"
        );
        assert!(!p.is_caught_up());
        p.applied.store(10, Ordering::Relaxed);
        p.pending.store(0, Ordering::Relaxed);
        p.last.store(12, Ordering::Relaxed);
        p.caught_up.store(true, Ordering::Relaxed);
        assert_eq!(p.lag(), 2, "two published since the last read");
        assert!(!p.is_caught_up());
        p.applied.store(12, Ordering::Relaxed);
        assert_eq!(p.lag(), 0);
        assert!(p.is_caught_up());
        p.connected.store(false, Ordering::Relaxed);
        assert!(!p.is_caught_up(), "not connected is never caught up");
    }
}
