//! One CTI leader per site: only the holder of the site's `cti` lease runs
//! the ladder; every other instance follows its escalation stream.
//!
//! The leader's ladder observer sends every audit entry and every result it
//! writes here ([`run_escalations`]'s publisher), in the order written; an
//! entry's actions start only once the stream has acknowledged it (a failed
//! append fails them, not carried out). Every instance reads the stream
//! (every retained record) and hands each record to its observer,
//! which copies it into its own audit log and rebuilds the queue's ladder
//! from the log (the leader ignores its own records). When this instance
//! gains the lease it reads the stream to its end, waits for its engine to
//! catch up with the event stream, awaits [`BeforeLeading`] (a PBX
//! membership re-read) and only then tells its observer to lead; losing the
//! lease tells it to follow.
//!
//! Auto cover (`floor::cover`) still runs on every instance: its actions
//! are wrapped in a [`Gate`] that only the leader passes; a follower's
//! cover action waits for the leader's result of the same key
//! (`<site>:cover:<id>:0`, from the cover log's ids) and reports it as its
//! own. Ladder actions pass the gate: their observer only starts them
//! while it leads. Behind the gate of an AMI or ESL source is a
//! `super::cti_proxy::Proxy` that has the instance holding the PBX's
//! connection carry the action out, with the same key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

use super::broker::Broker;
use super::lease::{Lease, Renewal};
use crate::cti::{Cti, CtiFuture, CtiOutcome, CtiRequest, CtiVerb};
use crate::escalation::control::Command;
use crate::escalation::stream::Record as EscRecord;

/// Whether this instance is the site's CTI leader.
#[derive(Debug)]
pub struct Leadership {
    leader: AtomicBool,
    changed: watch::Sender<bool>,
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership {
            leader: AtomicBool::new(false),
            changed: watch::channel(false).0,
        }
    }
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
    fn set(&self, v: bool) {
        self.leader.store(v, Ordering::Relaxed);
        self.changed.send_replace(v);
    }
    /// Tells of every change.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.changed.subscribe()
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

/// A cover action's record (subjects `decided` and `result`).
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

/// The leader's cover results, for the followers' cover actions.
#[derive(Default)]
pub struct Mirror {
    results: Mutex<HashMap<String, Record>>,
    arrived: Notify,
}

impl Mirror {
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

/// The takeover hook: awaited when this instance gains the `cti` lease,
/// before its ladders take over (a re-read of the PBX's membership, so the
/// membership check of the acts found unanswered reads the phone system's
/// own state). An error is logged and the hook tried again, up to three
/// times; then the ladders take over with the membership the sources
/// reported.
pub type BeforeLeading = Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The default [`BeforeLeading`]: nothing to do.
pub fn ready_ok() -> BeforeLeading {
    Box::new(|| Box::pin(std::future::ready(Ok(()))))
}

/// What [`run_escalations`] needs.
pub struct Escalations {
    pub broker: watch::Receiver<Option<Broker>>,
    pub retention: Duration,
    pub leadership: Arc<Leadership>,
    pub mirror: Arc<Mirror>,
    /// The event stream's progress: a new leader first catches up with it.
    pub progress: Arc<super::consumer::Progress>,
    /// The ladder observer's command channel.
    pub control: mpsc::Sender<Command>,
    /// What the ladder observer writes (for the stream).
    pub written: mpsc::UnboundedReceiver<EscRecord>,
    pub before_leading: BeforeLeading,
}

/// Runs the escalation stream for the life of the daemon: appends what this
/// instance's ladder writes, feeds every record to it, and switches it to
/// leading or following with the lease.
pub async fn run_escalations(e: Escalations) {
    let Escalations {
        mut broker,
        retention,
        leadership,
        mirror,
        progress,
        control,
        written,
        before_leading,
    } = e;
    let b = match broker.wait_for(|b| b.is_some()).await {
        Ok(b) => b.clone(),
        Err(_) => return,
    };
    let Some(b) = b else { return };
    let applied = Arc::new(AtomicU64::new(0));
    tokio::spawn(publish(b.clone(), written, control.clone()));
    tokio::spawn(read(
        b.clone(),
        retention,
        mirror,
        control.clone(),
        applied.clone(),
    ));
    let mut leading = leadership.watch();
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        if take_over(&b, &leadership, &progress, &applied, &before_leading).await {
            tracing::info!("the escalation ladders lead from here");
            if control.send(Command::Lead).await.is_err() {
                return;
            }
        } else {
            continue;
        }
        if leading.wait_for(|l| !*l).await.is_err() {
            return;
        }
        if control.send(Command::Follow).await.is_err() {
            return;
        }
    }
}

/// Reads the escalation stream to its end and lets the engine catch up
/// with the event stream, then awaits the hook. False when the lease was
/// lost meanwhile.
async fn take_over(
    b: &Broker,
    leadership: &Leadership,
    progress: &super::consumer::Progress,
    applied: &AtomicU64,
    before_leading: &BeforeLeading,
) -> bool {
    let site = &b.names.site;
    let last = loop {
        if !leadership.is_leader() {
            return false;
        }
        match b.js.get_stream(stream_name(site)).await {
            Ok(mut s) => match s.info().await {
                Ok(i) => break i.state.last_sequence,
                Err(e) => tracing::warn!(error = %e, "escalation stream info; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "escalation stream; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let started = std::time::Instant::now();
    let mut said = false;
    while applied.load(Ordering::Relaxed) < last || !progress.is_caught_up() {
        if !leadership.is_leader() {
            return false;
        }
        if !said && started.elapsed() > Duration::from_secs(2) {
            tracing::info!(
                escalation_sequence = last,
                "taking the CTI lead once this instance has read the escalation and event streams"
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for attempt in 1..=3 {
        match before_leading().await {
            Ok(()) => break,
            Err(e) if attempt < 3 => {
                tracing::warn!(error = %e, attempt, "before taking the CTI lead; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => tracing::warn!(error = %e,
                "before taking the CTI lead; leading with the membership the sources reported"),
        }
        if !leadership.is_leader() {
            return false;
        }
    }
    leadership.is_leader()
}

/// Appends what the ladder writes, in order; tells it when an entry is in
/// the stream (or is not).
async fn publish(
    b: Broker,
    mut written: mpsc::UnboundedReceiver<EscRecord>,
    control: mpsc::Sender<Command>,
) {
    let site = b.names.site.clone();
    while let Some(r) = written.recv().await {
        let mut error = None;
        for attempt in 0..3 {
            match append_record(&b, &site, &r).await {
                Ok(()) => {
                    error = None;
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    if attempt < 2 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        match &r {
            EscRecord::Entry { entry } => {
                let cmd = Command::Appended {
                    entry: entry.id,
                    error,
                };
                if control.send(cmd).await.is_err() {
                    return;
                }
            }
            EscRecord::Mark { entry, result, .. } => {
                if let Some(e) = error {
                    tracing::error!(entry, result, error = %e,
                        "an escalation result is not in the escalation stream; the other instances miss it");
                }
            }
        }
    }
}

async fn append_record(b: &Broker, site: &str, r: &EscRecord) -> Result<(), String> {
    let payload = serde_json::to_vec(r).map_err(|e| e.to_string())?;
    let msg = async_nats::jetstream::message::PublishMessage::build()
        .payload(payload.into())
        .message_id(r.msg_id());
    b.js.send_publish(subject(site, r.subject_token()), msg)
        .await
        .map_err(|e| e.to_string())?
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Creates the escalation stream if needed and hands every record to the
/// observer (and cover results to `mirror`): every retained record, then
/// (after a reconnect) those after the last one read.
async fn read(
    b: Broker,
    retention: Duration,
    mirror: Arc<Mirror>,
    control: mpsc::Sender<Command>,
    applied: Arc<AtomicU64>,
) {
    let site = b.names.site.clone();
    let entry_subject = subject(&site, "entry");
    let mark_subject = subject(&site, "mark");
    loop {
        let last = applied.load(Ordering::Relaxed);
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
            // Every retained record at first (retention is at least a day,
            // and an escalation that began before midnight is still the
            // ladder's); after a reconnect, after the last one read.
            let deliver_policy = if last == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                }
            };
            let stream_last = s.cached_info().state.last_sequence;
            let c = s
                .create_consumer(pull::OrderedConfig {
                    deliver_policy,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("escalation consumer: {e}"))?;
            // Nothing to read (an empty stream, or nothing since the last
            // record read): this instance has read the stream to its end,
            // which a takeover waits for.
            let info = c.cached_info();
            if info.num_pending == 0 {
                applied.fetch_max(
                    info.delivered.stream_sequence.max(stream_last),
                    Ordering::Relaxed,
                );
            }
            let mut msgs = c
                .messages()
                .await
                .map_err(|e| format!("escalation consumer: {e}"))?;
            while let Some(m) = msgs.next().await {
                let m = m.map_err(|e| format!("escalation consumer: {e}"))?;
                let seq = m.info().map(|i| i.stream_sequence).ok();
                let subj = m.subject.as_str();
                if subj == entry_subject || subj == mark_subject {
                    match serde_json::from_slice::<EscRecord>(&m.payload) {
                        Ok(r) => {
                            if control.send(Command::Mirror(r)).await.is_err() {
                                return Ok(());
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, subject = subj,
                            "escalation stream: unreadable record skipped"),
                    }
                } else {
                    match serde_json::from_slice::<Record>(&m.payload) {
                        Ok(r) => mirror.record(r),
                        Err(e) => tracing::warn!(error = %e, subject = subj,
                            "escalation stream: unreadable record skipped"),
                    }
                }
                if let Some(seq) = seq {
                    applied.fetch_max(seq, Ordering::Relaxed);
                }
            }
            Err::<(), String>("escalation consumer ended".into())
        };
        match run.await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "following the escalation stream; resuming");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// A `[[cti]]` webhook (or an AMI/ESL source's proxy) as auto cover reaches
/// it in cluster mode: only the leader carries a cover action out; a
/// follower's waits for the leader's result of the same key. Ladder
/// actions (any other key) pass: their observer starts them only while it
/// leads.
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
        req: CtiRequest,
    ) -> CtiOutcome {
        let key = crate::cti::IDEMPOTENCY_KEY
            .try_with(|k| k.clone())
            .unwrap_or_default();
        if !key.starts_with(&format!("{site}:cover:")) {
            return inner.execute(req).await;
        }
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
        let mut changed = leadership.watch();
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
                let outcome = inner.execute(req.clone()).await;
                rec.phase = "result".into();
                rec.ok = outcome.ok;
                rec.detail = outcome.detail.clone();
                if let Err(e) = append(&b, &site, &rec).await {
                    tracing::warn!(%key, error = %e, "CTI result not recorded in the escalation stream");
                }
                return outcome;
            }
            // A follower: the leader's result, or the leadership, ends the wait.
            let arrived = mirror.arrived.notified();
            tokio::select! {
                _ = arrived => {}
                _ = changed.changed() => {}
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
        Box::pin(Self::act(
            self.inner.clone(),
            self.mirror.clone(),
            self.leadership.clone(),
            self.broker.clone(),
            self.site.clone(),
            req,
        ))
    }

    fn sign_out_pause_reason(&self) -> Option<&str> {
        self.inner.sign_out_pause_reason()
    }
}
