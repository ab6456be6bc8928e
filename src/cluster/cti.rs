//! One CTI leader per site: only the holder of the site's `cti` lease calls
//! the `[[cti]]` webhooks; every other instance mirrors its results.
//!
//! Every instance runs the ladder on the same event stream, so every
//! instance's ladder reaches the same decisions in the same order. The
//! webhooks are wrapped in a [`Gate`]: each action gets a key from what it
//! does and how many times this instance's ladder asked for the same thing
//! (`<site>:<verb>:<queue>:<agent>:<n>`), identical on every instance. The
//! leader appends a `decided` record to the site's escalation stream, calls
//! the webhook with the key as `Idempotency-Key`, and appends the `result`.
//! A standby's action waits for the leader's `result` of the same key and
//! reports it as its own, so its ladder holds what the leader's holds;
//! when the standby becomes leader while waiting (the leader died between
//! deciding and acting), it acts itself with the same key, and a receiver
//! that saw the first attempt drops the repeat.
//!
//! Limits, stated where they bite: the key's count is this process's, so an
//! instance restarted mid-day counts from zero. It therefore mirrors only
//! results recorded after it started: an action whose key never comes
//! waits until this instance leads and then is carried out with its own
//! key (a possible repeat the receiver cannot drop, never a lost action).
//! AMI and ESL actions are gated too: behind the gate is a
//! `super::cti_proxy::Proxy` that has the instance holding the PBX's
//! connection carry the action out, with the same key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use super::broker::Broker;
use super::lease::{Lease, Renewal};
use crate::cti::{Cti, CtiFuture, CtiOutcome, CtiRequest, CtiVerb};

/// Whether this instance is the site's CTI leader.
#[derive(Debug, Default)]
pub struct Leadership {
    leader: AtomicBool,
    changed: Notify,
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
    fn set(&self, v: bool) {
        if self.leader.swap(v, Ordering::Relaxed) != v {
            self.changed.notify_waiters();
        }
    }
}

/// Holds the `cti` lease when it can, for the life of the daemon.
pub async fn hold_leadership(
    mut broker: watch::Receiver<Option<Broker>>,
    ttl: Duration,
    me: Arc<Leadership>,
    gauge: metrics::Gauge,
) {
    let b = match broker.wait_for(|b| b.is_some()).await {
        Ok(b) => b.clone(),
        Err(_) => return,
    };
    let Some(b) = b else { return };
    let mut lease = Lease::new(
        b.leases.clone(),
        "cti".into(),
        b.names.instance.clone(),
        ttl,
    );
    loop {
        if me.is_leader() {
            match lease.renew().await {
                Renewal::Held => {}
                Renewal::Lost => {
                    tracing::warn!("no longer the site's CTI leader");
                    me.set(false);
                }
                Renewal::Unknown(e) => tracing::warn!(error = %e, "CTI lease not renewed yet"),
            }
        } else {
            match lease.acquire().await {
                Ok(true) => {
                    tracing::info!(instance = %b.names.instance, "this instance is the site's CTI leader now");
                    me.set(true);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the CTI lease"),
            }
        }
        gauge.set(me.is_leader() as u8 as f64);
        tokio::time::sleep(lease.period()).await;
    }
}

/// One record of the escalation stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Record {
    key: String,
    /// `decided` or `result`.
    phase: String,
    verb: String,
    agent: String,
    queue: String,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    detail: String,
    by: String,
}

/// What every instance knows of the leader's actions.
#[derive(Default)]
pub struct Mirror {
    results: Mutex<HashMap<String, Record>>,
    arrived: Notify,
    counts: Mutex<HashMap<(&'static str, String, String), u64>>,
}

impl Mirror {
    fn key(&self, site: &str, req: &CtiRequest) -> String {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let verb = verb(req.verb);
        let n = c
            .entry((verb, req.queue.clone(), req.agent.clone()))
            .or_insert(0);
        let key = format!("{site}:{verb}:{}:{}:{n}", req.queue, req.agent);
        *n += 1;
        key
    }
    fn result(&self, key: &str) -> Option<Record> {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
    fn record(&self, r: Record) {
        if r.phase == "result" {
            self.results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(r.key.clone(), r);
            self.arrived.notify_waiters();
        }
    }
}

fn verb(v: CtiVerb) -> &'static str {
    match v {
        CtiVerb::SignIn => "in",
        CtiVerb::SignOut => "out",
    }
}

pub fn stream_name(site: &str) -> String {
    format!("ACDMON_{site}_ESC")
}

fn subject(site: &str, phase: &str) -> String {
    format!("acdmon.{site}.escalation.{phase}")
}

/// Creates the escalation stream if needed and feeds `mirror` from it, for
/// the life of the daemon.
pub async fn follow(
    mut broker: watch::Receiver<Option<Broker>>,
    retention: Duration,
    mirror: Arc<Mirror>,
) {
    let b = match broker.wait_for(|b| b.is_some()).await {
        Ok(b) => b.clone(),
        Err(_) => return,
    };
    let Some(b) = b else { return };
    let site = b.names.site.clone();
    // Results from before this process started are not mirrored: its
    // action counts start at zero, so older keys would match other actions
    // (see the module docs). After a reconnect: after the last record read.
    let started = async_nats::datetime::now();
    let mut last = 0u64;
    loop {
        let run = async {
            let s =
                b.js.get_or_create_stream(stream::Config {
                    name: stream_name(&site),
                    subjects: vec![format!("acdmon.{site}.escalation.>")],
                    max_age: retention,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("escalation stream: {e}"))?;
            let c = s
                .create_consumer(pull::OrderedConfig {
                    deliver_policy: if last == 0 {
                        DeliverPolicy::ByStartTime {
                            start_time: started,
                        }
                    } else {
                        DeliverPolicy::ByStartSequence {
                            start_sequence: last + 1,
                        }
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("escalation consumer: {e}"))?;
            let mut msgs = c
                .messages()
                .await
                .map_err(|e| format!("escalation consumer: {e}"))?;
            while let Some(m) = msgs.next().await {
                let m = m.map_err(|e| format!("escalation consumer: {e}"))?;
                if let Ok(i) = m.info() {
                    last = i.stream_sequence;
                }
                match serde_json::from_slice::<Record>(&m.payload) {
                    Ok(r) => mirror.record(r),
                    Err(e) => {
                        tracing::warn!(error = %e, "escalation stream: unreadable record skipped")
                    }
                }
            }
            Err::<(), String>("escalation consumer ended".into())
        };
        if let Err(e) = run.await {
            tracing::warn!(error = %e, "following the escalation stream; resuming");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A `[[cti]]` action (or an AMI/ESL source's proxy) that only the leader
/// carries out.
pub struct Gate {
    pub inner: Arc<dyn Cti>,
    pub site: String,
    pub mirror: Arc<Mirror>,
    pub leadership: Arc<Leadership>,
    pub broker: watch::Receiver<Option<Broker>>,
}

impl Gate {
    async fn act(
        inner: Arc<dyn Cti>,
        mirror: Arc<Mirror>,
        leadership: Arc<Leadership>,
        mut broker: watch::Receiver<Option<Broker>>,
        site: String,
        key: String,
        req: CtiRequest,
    ) -> CtiOutcome {
        let b = match broker.wait_for(|b| b.is_some()).await {
            Ok(b) => b.clone(),
            Err(_) => None,
        };
        let Some(b) = b else {
            return CtiOutcome::failed("cluster mode: not connected to NATS");
        };
        let me = b.names.instance.clone();
        let mut rec = Record {
            key: key.clone(),
            phase: "decided".into(),
            verb: verb(req.verb).into(),
            agent: req.agent.clone(),
            queue: req.queue.clone(),
            ok: false,
            detail: String::new(),
            by: me.clone(),
        };
        loop {
            if let Some(r) = mirror.result(&key) {
                let detail = if r.by == me {
                    r.detail
                } else {
                    format!("{} (carried out by the CTI leader {})", r.detail, r.by)
                };
                return CtiOutcome {
                    ok: r.ok,
                    detail,
                    apply_membership: false,
                };
            }
            if leadership.is_leader() {
                if let Err(e) = append(&b, &site, &rec).await {
                    return CtiOutcome::failed(format!(
                        "not recorded in the escalation stream, not carried out: {e}"
                    ));
                }
                let outcome = crate::cti::IDEMPOTENCY_KEY
                    .scope(key.clone(), inner.execute(req.clone()))
                    .await;
                rec.phase = "result".into();
                rec.ok = outcome.ok;
                rec.detail = outcome.detail.clone();
                if let Err(e) = append(&b, &site, &rec).await {
                    tracing::warn!(%key, error = %e, "CTI result not recorded in the escalation stream");
                }
                return outcome;
            }
            // A standby: the leader's result, or the leadership, ends the wait.
            let arrived = mirror.arrived.notified();
            let changed = leadership.changed.notified();
            tokio::select! {
                _ = arrived => {}
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

async fn append(b: &Broker, site: &str, r: &Record) -> Result<(), String> {
    let payload = serde_json::to_vec(r).map_err(|e| e.to_string())?;
    let msg = async_nats::jetstream::message::PublishMessage::build()
        .payload(payload.into())
        .message_id(format!("{}:{}", r.key, r.phase));
    b.js.send_publish(subject(site, &r.phase), msg)
        .await
        .map_err(|e| e.to_string())?
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Cti for Gate {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        let key = self.mirror.key(&self.site, &req);
        Box::pin(Self::act(
            self.inner.clone(),
            self.mirror.clone(),
            self.leadership.clone(),
            self.broker.clone(),
            self.site.clone(),
            key,
            req,
        ))
    }

    fn sign_out_pause_reason(&self) -> Option<&str> {
        self.inner.sign_out_pause_reason()
    }
}
