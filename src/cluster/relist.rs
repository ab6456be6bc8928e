//! Re-reading the PBX's membership before a new CTI leader acts.
//!
//! The stream says who the engine believes is signed in where, but a
//! leader that died may have acted (or a supervisor may have changed a
//! queue on the PBX) without the effect reaching the stream yet. So a new
//! leader first has every PBX source's holder relist its queues (AMI
//! `QueueStatus`, the event socket's `callcenter_config` lists: the resync
//! a reconnect ends in), over NATS request/reply on
//! `acdmon.<site>.relist.<source>`. The holder answers once the relist's
//! events are in the stream, with the source subject's last sequence then;
//! the leader waits until its own engine has applied that far, so its
//! ladder decides on the PBX's membership, not on a guess. Sources with no
//! relist (queue_log, JSON, HEP) are skipped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::RequestErrorKind;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::broker::Broker;
use super::consumer::Progress;
use super::cti_proxy::Executors;
use crate::sources::{Envelope, Inbox};

/// A whole membership refresh, by default: a relist takes milliseconds, a
/// few seconds under load; longer means a PBX link in trouble, and a new
/// leader should not stand still for it.
pub const REFRESH_WITHIN: Duration = Duration::from_secs(15);

/// How long one source's holder may take to relist and publish.
const RELIST_WITHIN: Duration = Duration::from_secs(10);

/// The subject of `source`'s relist requests.
pub fn subject(site: &str, source: &str) -> String {
    format!("acdmon.{site}.relist.{source}")
}

/// A holder's answer.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    /// The source subject's last stream sequence once the relist's events
    /// were appended.
    sequence: Option<u64>,
    error: Option<String>,
}

/// Answers `source`'s relist requests until aborted (the ingester runs it
/// while it holds the source's lease).
pub async fn serve(b: Broker, source: String, executors: Arc<Executors>) {
    let subject = subject(&b.names.site, &source);
    let mut sub = match b.client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%source, error = %e, "cannot answer relist requests for this source");
            return;
        }
    };
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply.clone() else {
            continue;
        };
        let (b, executors, source) = (b.clone(), executors.clone(), source.clone());
        tokio::spawn(async move {
            let answer = match relist_here(&b, &source, &executors).await {
                Ok(seq) => Answer {
                    sequence: Some(seq),
                    error: None,
                },
                Err(e) => Answer {
                    sequence: None,
                    error: Some(e),
                },
            };
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            if let Err(e) = b.client.publish(reply, body.into()).await {
                tracing::warn!(%source, error = %e, "relist answer not sent back");
            }
        });
    }
}

async fn relist_here(b: &Broker, source: &str, executors: &Executors) -> Result<u64, String> {
    let relist = executors
        .get(source)
        .and_then(|c| c.relist())
        .ok_or_else(|| format!("the source {source} cannot relist on this instance"))?;
    tracing::info!(%source, "relisting the PBX's queues for the CTI leader");
    tokio::time::timeout(RELIST_WITHIN, relist)
        .await
        .map_err(|_| format!("{source}: relist not finished within {RELIST_WITHIN:?}"))??;
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    match b
        .stream
        .get_last_raw_message_by_subject(&b.names.source_subject(source))
        .await
    {
        Ok(m) => Ok(m.sequence),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
        Err(e) => Err(format!(
            "{source}: reading the stream after the relist: {e}"
        )),
    }
}

/// What [`Relister::refresh_membership`] needs; cheap to clone.
#[derive(Clone)]
pub struct Relister {
    pub broker: watch::Receiver<Option<Broker>>,
    pub progress: Arc<Progress>,
    /// This instance's engine (its inbox, before the stream).
    pub engine: Inbox,
    /// Every configured source, and whether it has a PBX relist.
    pub sources: Arc<std::sync::RwLock<Vec<(String, bool)>>>,
    /// How long the whole refresh may take.
    pub timeout: Duration,
}

impl Relister {
    /// Has every PBX source's holder relist its queues, then waits until this
    /// instance's engine has applied the relists' events. A source nobody
    /// holds, or one with no PBX relist, is skipped (and logged); an error
    /// says which sources failed and why, after all were asked.
    pub async fn refresh_membership(&self) -> Result<(), String> {
        let started = Instant::now();
        let mut broker = self.broker.clone();
        let b = tokio::time::timeout(self.timeout, broker.wait_for(|b| b.is_some()))
            .await
            .map_err(|_| "not connected to NATS".to_string())?
            .map_err(|_| "the cluster connection is gone".to_string())?
            .clone();
        let Some(b) = b else {
            return Err("not connected to NATS".into());
        };
        let sources = self.sources.read().map(|s| s.clone()).unwrap_or_default();
        let asks = sources.iter().map(|(name, pbx)| {
            let b = b.clone();
            let timeout = self.timeout;
            async move {
                if !pbx {
                    tracing::info!(source = %name, "membership refresh: no PBX relist for this source; skipped");
                    return Ok(None);
                }
                ask(&b, name, timeout).await.map_err(|e| format!("{name}: {e}"))
            }
        });
        let answers = futures_util::future::join_all(asks).await;
        let mut upto = 0u64;
        let mut failed = Vec::new();
        for a in answers {
            match a {
                Ok(Some(seq)) => upto = upto.max(seq),
                Ok(None) => {}
                Err(e) => failed.push(e),
            }
        }
        let left = self.timeout.saturating_sub(started.elapsed());
        tokio::time::timeout(left, self.applied(upto))
            .await
            .map_err(|_| {
                format!(
                    "the engine has not applied the relisted membership (stream sequence {upto}) within {:?}",
                    self.timeout
                )
            })??;
        if failed.is_empty() {
            tracing::info!(upto, took = ?started.elapsed(), "membership refreshed from the PBXs");
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    /// Until the consumer has handed the engine `upto`, and the engine has
    /// taken everything handed before (an empty batch behind them answers).
    async fn applied(&self, upto: u64) -> Result<(), String> {
        while self.progress.applied.load(Ordering::Relaxed) < upto {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (verdict, done) = tokio::sync::oneshot::channel();
        let env = Envelope::Checked {
            source: Arc::from("_relist"),
            events: Vec::new(),
            verdict,
        };
        self.engine
            .send(env)
            .await
            .map_err(|_| "the engine has stopped".to_string())?;
        done.await
            .map_err(|_| "the engine has stopped".to_string())?;
        Ok(())
    }
}

/// One source's relist; `None` when nobody holds the source now.
async fn ask(b: &Broker, source: &str, timeout: Duration) -> Result<Option<u64>, String> {
    let request = async_nats::Request::new()
        .payload(Vec::new().into())
        .timeout(Some(timeout.min(RELIST_WITHIN + Duration::from_secs(5))));
    match b
        .client
        .send_request(subject(&b.names.site, source), request)
        .await
    {
        Ok(m) => {
            let a: Answer = serde_json::from_slice(&m.payload)
                .map_err(|e| format!("unreadable answer: {e}"))?;
            match (a.sequence, a.error) {
                (Some(seq), _) => Ok(Some(seq)),
                (None, e) => Err(e.unwrap_or_else(|| "relist failed".into())),
            }
        }
        Err(e) if e.kind() == RequestErrorKind::NoResponders => {
            tracing::info!(%source, "membership refresh: nobody holds this source now; skipped");
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}
