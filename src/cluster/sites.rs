//! Several sites on one wall: a central instance (`[cluster] sites`) reads
//! every listed site's stream, read only, into one engine.
//!
//! Why ids are qualified (`north/hotline`) rather than the engine learning
//! about sites: two sites may both have a `hotline` queue and an agent
//! `1001`, and the engine's figures are keyed by id. Qualifying at the
//! consumer keeps the engine one engine; the views name the site again
//! ([`crate::state::SiteNames::Qualified`]).
//!
//! Why a heartbeat: a quiet site (night, no calls) and a dead one look the
//! same from its event stream. Every site instance publishes a heartbeat to
//! its stream every [`HEARTBEAT_EVERY`]; the central instance calls a site
//! STALE when nothing, not even a heartbeat, was stored in its stream for
//! `stale_after`. Freshness is measured by the server's store time of the
//! newest message read, so a central instance replaying the day does not
//! take old messages for fresh ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::{Label, Recorder};
use serde::Serialize;

use super::broker::Names;
use super::consumer::Progress;
use crate::event::{Event, EventKind};
use crate::sources::{Envelope, INBOX_CAPACITY, Inbox, Reject, RejectCounter, SourceHealth};
use crate::time::Ts;

/// How often a site instance tells its stream it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Makes every id of `ev` `<site>/<id>`.
pub fn qualify(ev: &mut Event, site: &str) {
    let q = |s: &mut String| *s = format!("{site}/{s}");
    match &mut ev.kind {
        EventKind::CallEnqueued { call, queue, .. }
        | EventKind::CallAbandoned { call, queue }
        | EventKind::CallExited { call, queue, .. } => {
            q(call);
            q(queue);
        }
        EventKind::CallAnswered { call, queue, agent }
        | EventKind::CallCompleted { call, queue, agent } => {
            q(call);
            q(queue);
            q(agent);
        }
        EventKind::AgentState { agent, queue, .. } => {
            q(agent);
            if let Some(queue) = queue {
                q(queue);
            }
        }
        EventKind::AgentJoinedQueue { agent, queue }
        | EventKind::AgentLeftQueue { agent, queue }
        | EventKind::AgentQueuePause { agent, queue, .. } => {
            q(agent);
            q(queue);
        }
        EventKind::QueueResync {
            queue,
            callers,
            members,
        } => {
            q(queue);
            for c in callers {
                q(&mut c.call);
            }
            for m in members {
                q(&mut m.agent);
            }
        }
    }
}

/// Publishes this instance's heartbeat to its site's stream, for good.
/// A failed publish is retried at the next beat (the broker being away
/// shows in `/readyz` already).
pub async fn beat(js: async_nats::jetstream::Context, names: Names) {
    let subject = names.heartbeat_subject();
    loop {
        let body = format!(
            "{{\"instance\":{:?},\"at\":{}}}",
            names.instance,
            Ts::now().0
        );
        if let Ok(ack) = js.publish(subject.clone(), body.into()).await {
            let _ = ack.await;
        }
        tokio::time::sleep(HEARTBEAT_EVERY).await;
    }
}

/// A central instance's sites.
#[derive(Debug)]
pub struct Board {
    pub stale_after: Duration,
    pub sites: Vec<Site>,
}

/// One site as the central instance sees it.
#[derive(Debug)]
pub struct Site {
    pub site: String,
    pub progress: Arc<Progress>,
    /// `cluster:<site> (nats)`: connected and caught up with its stream.
    pub health: Arc<SourceHealth>,
    /// `site:<site> (heartbeat)`: not ready while STALE.
    pub freshness: Arc<SourceHealth>,
    stale: AtomicBool,
}

/// `GET /api/v1/sites`: one site's freshness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteView {
    pub site: String,
    /// `live` or `stale`.
    pub state: &'static str,
    /// When the newest message (events or heartbeat) read from the site's
    /// stream was stored; `null` before the first.
    pub last_message_at: Option<Ts>,
    /// Seconds since then.
    pub silent_s: Option<f64>,
    /// Connected and caught up with the site's stream.
    pub caught_up: bool,
    pub applied_sequence: u64,
}

impl Board {
    pub fn new(sites: &[String], stale_after: Duration) -> Arc<Board> {
        Arc::new(Board {
            stale_after,
            sites: sites
                .iter()
                .map(|s| Site {
                    site: s.clone(),
                    progress: Arc::new(Progress::default()),
                    health: SourceHealth::new(&format!("cluster:{s}"), "nats"),
                    freshness: SourceHealth::new(&format!("site:{s}"), "heartbeat"),
                    stale: AtomicBool::new(true),
                })
                .collect(),
        })
    }

    /// Every site's freshness at `now`.
    pub fn views(&self, now: Ts) -> Vec<SiteView> {
        self.sites
            .iter()
            .map(|s| {
                let last = s.progress.last_stored_ms.load(Ordering::Relaxed);
                let last = (last > 0).then_some(Ts(last));
                SiteView {
                    site: s.site.clone(),
                    state: if s.is_stale(now, self.stale_after) {
                        "stale"
                    } else {
                        "live"
                    },
                    last_message_at: last,
                    silent_s: last.map(|t| (now.0 - t.0).max(0) as f64 / 1000.0),
                    caught_up: s.progress.is_caught_up(),
                    applied_sequence: s.progress.applied.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// The sites STALE now (what centre-wide totals lack).
    pub fn stale_sites(&self) -> Vec<String> {
        self.sites
            .iter()
            .filter(|s| s.stale.load(Ordering::Relaxed))
            .map(|s| s.site.clone())
            .collect()
    }
}

impl Site {
    /// Nothing stored in the site's stream for `stale_after` (or never).
    pub fn is_stale(&self, now: Ts, stale_after: Duration) -> bool {
        let last = self.progress.last_stored_ms.load(Ordering::Relaxed);
        last == 0 || now.0.saturating_sub(last) > stale_after.as_millis() as i64
    }

    pub fn nats_error(&self, e: &str) {
        self.health.set_error(e.to_string());
    }
}

/// Keeps each site's STALE state, its `site:<site>` health entry,
/// `acd_cluster_site_stale{site}` and the engine's views (`site_stale`,
/// which `/ws` carries to the wall) current; logs each change once.
pub async fn watch_freshness(
    board: Arc<Board>,
    recorder: Arc<dyn Recorder + Send + Sync>,
    engine: Inbox,
) {
    // What the engine was last told per site; a full inbox (a stalled
    // engine) is told at a later turn, never waited for.
    let mut told: Vec<Option<Option<Option<Ts>>>> = vec![None; board.sites.len()];
    let gauges: Vec<_> = board
        .sites
        .iter()
        .map(|s| {
            let g = super::gauge(
                &*recorder,
                "acd_cluster_site_stale",
                vec![Label::new("site", s.site.clone())],
            );
            g.set(1.0);
            g
        })
        .collect();
    for s in &board.sites {
        s.freshness.set_error("no message from the site yet");
    }
    loop {
        let now = Ts::now();
        for ((s, g), told) in board.sites.iter().zip(&gauges).zip(&mut told) {
            let stale = s.is_stale(now, board.stale_after);
            let was = s.stale.swap(stale, Ordering::Relaxed);
            let last = s.progress.last_stored_ms.load(Ordering::Relaxed);
            let state = stale.then_some((last > 0).then_some(Ts(last)));
            if *told != Some(state) {
                let env = Envelope::SiteFreshness {
                    site: s.site.clone(),
                    stale: state,
                };
                if engine.try_send(env).is_ok() {
                    *told = Some(state);
                }
            }
            g.set(stale as u8 as f64);
            s.freshness.set_connected(!stale);
            s.freshness.set_synced(!stale);
            if stale {
                let last = s.progress.last_stored_ms.load(Ordering::Relaxed);
                let why = if last == 0 {
                    "STALE: nothing in the site's stream yet".to_string()
                } else {
                    format!(
                        "STALE: nothing in the site's stream (not even a heartbeat) for {} s",
                        (now.0 - last) / 1000
                    )
                };
                s.freshness.set_error(why.clone());
                if !was {
                    tracing::warn!(site = %s.site, "{why}; its figures are not current");
                }
            } else if was {
                tracing::info!(site = %s.site, "site is live");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A central instance's inbox: it ingests nothing, so events sent to it
/// (`POST /api/v1/events`) are refused and counted; control messages
/// (stop, reconfigure) pass to the engine.
pub fn refuse_input(engine: Inbox, rejects: Arc<RejectCounter>) -> Inbox {
    let (tx, mut rx) = tokio::sync::mpsc::channel(INBOX_CAPACITY);
    tokio::spawn(async move {
        let why = || {
            Reject::new(
                crate::event::RejectReason::BadValue,
                "a central instance ingests no events; send them to the site's instances",
            )
        };
        while let Some(env) = rx.recv().await {
            let (source, n, verdict) = match env {
                Envelope::Event { source, .. } => (source, 1, None),
                Envelope::Batch { source, events }
                | Envelope::Positioned { source, events, .. } => (source, events.len(), None),
                Envelope::Checked {
                    source,
                    events,
                    verdict,
                } => (source, events.len(), Some(verdict)),
                other => {
                    if engine.send(other).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            for _ in 0..n {
                rejects.record(&source, &"central instance", &why());
            }
            if let Some(v) = verdict {
                let _ = v.send((0..n).map(|i| (i, why())).collect());
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ResyncCaller, ResyncMember};

    #[test]
    fn every_id_of_an_event_names_its_site() {
        let mut ev = Event {
            ts: Ts(1),
            kind: EventKind::CallAnswered {
                call: "c1".into(),
                queue: "hotline".into(),
                agent: "1001".into(),
            },
        };
        qualify(&mut ev, "north");
        assert_eq!(
            ev.kind,
            EventKind::CallAnswered {
                call: "north/c1".into(),
                queue: "north/hotline".into(),
                agent: "north/1001".into(),
            }
        );
        let mut ev = Event {
            ts: Ts(1),
            kind: EventKind::QueueResync {
                queue: "hotline".into(),
                callers: vec![ResyncCaller {
                    call: "c2".into(),
                    joined: Ts(0),
                }],
                members: vec![ResyncMember {
                    agent: "1002".into(),
                    status: crate::event::AgentStatus::Available,
                    reason: None,
                    paused_here: false,
                }],
            },
        };
        qualify(&mut ev, "south");
        let EventKind::QueueResync {
            queue,
            callers,
            members,
        } = ev.kind
        else {
            unreachable!()
        };
        assert_eq!(
            (
                queue.as_str(),
                callers[0].call.as_str(),
                members[0].agent.as_str()
            ),
            ("south/hotline", "south/c2", "south/1002")
        );
    }

    #[test]
    fn a_site_is_stale_when_its_stream_has_been_silent_too_long() {
        let board = Board::new(&["north".into()], Duration::from_secs(15));
        let s = &board.sites[0];
        assert!(s.is_stale(Ts(100_000), board.stale_after), "never heard of");
        s.progress.last_stored_ms.store(100_000, Ordering::Relaxed);
        assert!(!s.is_stale(Ts(115_000), board.stale_after));
        assert!(s.is_stale(Ts(115_001), board.stale_after));
        let v = board.views(Ts(110_000));
        assert_eq!(v[0].state, "live");
        assert_eq!(v[0].silent_s, Some(10.0));
    }
}
