//! Why the daemon is not ready: the one list `/readyz`, the wall's banner
//! and the watchdog's log read, so a new kind of trouble (storage that
//! cannot be written, say) is added in [`not_ready_reasons`] and shows
//! everywhere at once.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::AppState;
use crate::watchdog::{EngineStatus, EngineWatch};

/// One reason the daemon is not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// What is wrong, for machines and the wall's styling:
    /// `engine_stalled`, `engine_behind`, `source_down`, `storage`.
    pub kind: &'static str,
    /// What is wrong, for people.
    pub detail: String,
}

/// Envelopes waiting in the engine's inbox.
pub fn inbox_backlog(s: &AppState) -> usize {
    backlogs(&s.engine_inbox, &s.inbox).engine
}

/// What waits in front of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlogs {
    /// In the engine's own inbox.
    pub engine: usize,
    /// In cluster mode, what sources sent that is not yet in the stream
    /// (the forwarder's channel); `None` without `[cluster]`.
    pub forwarder: Option<usize>,
}

/// Why two channels: in cluster mode sources send to the forwarder and the
/// stream's consumer feeds the engine, so the sources' channel says nothing
/// about the engine (it empties into the broker even while the engine is
/// stalled).
fn backlogs(engine: &crate::sources::Inbox, sources: &crate::sources::Inbox) -> Backlogs {
    let waiting = |i: &crate::sources::Inbox| i.max_capacity().saturating_sub(i.capacity());
    Backlogs {
        engine: waiting(engine),
        forwarder: (!engine.same_channel(sources)).then(|| waiting(sources)),
    }
}

/// Every reason the daemon is not ready now; empty when it is.
pub fn not_ready_reasons(s: &AppState) -> Vec<Reason> {
    let mut out = Vec::new();
    let b = backlogs(&s.engine_inbox, &s.inbox);
    if let Some(mut r) = engine_reason(&s.engine.status(), s.engine.stall_after(), b.engine) {
        if let Some(f) = b.forwarder.filter(|f| *f > 0) {
            r.detail.push_str(&format!(
                "; {f} more waiting to be appended to the event stream"
            ));
        }
        out.push(r);
    }
    for h in s.health.all() {
        if let Some(detail) = h.not_ready_reason() {
            out.push(Reason {
                kind: "source_down",
                detail,
            });
        }
    }
    // "storage: <error>" while the audit log or interval history cannot be
    // written, or escalation decisions wait to be written.
    if let Some(detail) = s
        .ladder
        .as_ref()
        .and_then(|l| l.store.health().not_ready_reason())
    {
        out.push(Reason {
            kind: "storage",
            detail,
        });
    }
    out
}

fn engine_reason(st: &EngineStatus, limit: Duration, backlog: usize) -> Option<Reason> {
    if st.stalled {
        Some(Reason {
            kind: "engine_stalled",
            detail: format!(
                "engine stalled: no batch finished for {:.1} s (limit {:.0} s); {backlog} inbox entries waiting",
                st.since_batch.as_secs_f64(),
                limit.as_secs_f64()
            ),
        })
    } else if st.behind {
        Some(Reason {
            kind: "engine_behind",
            detail: format!(
                "engine behind: its inbox has not emptied for {:.1} s (limit {:.0} s); {backlog} entries waiting",
                st.lag.as_secs_f64(),
                limit.as_secs_f64()
            ),
        })
    } else {
        None
    }
}

/// How often the watchdog looks at the heartbeat (for the log only; the
/// routes read it on demand).
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Logs when the engine stalls and when it recovers, once each.
pub fn spawn_watchdog(watch: Arc<EngineWatch>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(WATCH_EVERY);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was = false;
        loop {
            t.tick().await;
            let st = watch.status();
            if st.stalled && !was {
                tracing::error!(
                    since_batch_s = st.since_batch.as_secs_f64(),
                    "the engine has stopped applying events; /readyz reports it"
                );
            } else if !st.stalled && was {
                tracing::warn!("the engine is applying events again");
            }
            was = st.stalled;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_names_itself_and_its_backlog() {
        let st = EngineStatus {
            since_batch: Duration::from_millis(7200),
            lag: Duration::from_millis(7200),
            stalled: true,
            behind: false,
        };
        let r = engine_reason(&st, Duration::from_secs(5), 42).unwrap();
        assert_eq!(r.kind, "engine_stalled");
        assert!(
            r.detail.contains("7.2 s") && r.detail.contains("42 inbox"),
            "{}",
            r.detail
        );
        let ok = EngineStatus {
            since_batch: Duration::ZERO,
            lag: Duration::ZERO,
            stalled: false,
            behind: false,
        };
        assert_eq!(engine_reason(&ok, Duration::from_secs(5), 0), None);
    }

    fn envelope() -> crate::sources::Envelope {
        crate::sources::Envelope::Batch {
            source: "pbx".into(),
            events: Vec::new(),
        }
    }

    /// In cluster mode a stalled engine's backlog is in its own inbox (fed
    /// by the stream), not in the channel the sources send to.
    #[test]
    fn the_engine_backlog_is_the_engines_own_inbox() {
        let (engine, _erx) = tokio::sync::mpsc::channel(100);
        let (forwarder, _frx) = tokio::sync::mpsc::channel(100);
        for _ in 0..7 {
            engine.try_send(envelope()).unwrap();
        }
        for _ in 0..2 {
            forwarder.try_send(envelope()).unwrap();
        }
        assert_eq!(
            backlogs(&engine, &forwarder),
            Backlogs {
                engine: 7,
                forwarder: Some(2)
            }
        );
        // One process: one channel, no forwarder.
        assert_eq!(
            backlogs(&engine, &engine.clone()),
            Backlogs {
                engine: 7,
                forwarder: None
            }
        );
    }
}
