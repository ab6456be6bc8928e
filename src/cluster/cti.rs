//! One CTI leader per site: only the holder of the site's `cti` lease runs
//! the ladder; every other instance follows its escalation stream.
//!
//! The leader's ladder observer sends every audit entry and every result it
//! writes here ([`run_escalations`]'s publisher), in the order written; an
//! entry's actions start only once the stream has acknowledged it (a failed
//! append fails them, not carried out). Appends go through the leader's
//! fence ([`super::esc_fence`]): refused once another instance appended, and
//! then this instance follows and sets the refused record aside. Every
//! instance reads the stream (every retained record) and hands each record
//! to its observer, which copies it into its own audit log and rebuilds the
//! queue's ladder from the log (the leader's own records, appended under
//! its fence, are not handed over). When this instance gains the lease it
//! reads the stream to its end, waits for its engine to catch up with the
//! event stream, awaits [`BeforeLeading`] (a PBX membership re-read),
//! appends its `lead` record (the fence) and only then tells its observer
//! to lead; losing the lease tells it to follow.
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
use super::esc_fence::{self, Fence, Refusal};
use super::lease::{Lease, Renewal};
use crate::cti::{Cti, CtiFuture, CtiOutcome, CtiRequest, CtiVerb};
use crate::escalation::control::Command;
use crate::escalation::stream::Record as EscRecord;
use crate::time::Ts;

/// Whether this instance is the site's CTI leader.
#[derive(Debug)]
pub struct Leadership {
    leader: AtomicBool,
    changed: watch::Sender<bool>,
    /// The leader's fence on the escalation stream: armed when this
    /// instance takes the lead, down once another instance appended.
    pub fence: Fence,
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership {
            leader: AtomicBool::new(false),
            changed: watch::channel(false).0,
            fence: Fence::default(),
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
    /// The escalation stream refused this instance's append: another
    /// instance leads. It follows (the lease loop finds the lease taken).
    fn deposed(&self) {
        if self.is_leader() {
            tracing::warn!(
                "no longer the site's CTI leader (the escalation stream took another instance's record)"
            );
        }
        self.set(false);
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
    tokio::spawn(publish(
        b.clone(),
        written,
        control.clone(),
        leadership.clone(),
    ));
    tokio::spawn(read(
        b.clone(),
        retention,
        leadership.clone(),
        mirror,
        control.clone(),
        applied.clone(),
    ));
    tokio::spawn(caught_up(
        b.clone(),
        leadership.clone(),
        control.clone(),
        applied.clone(),
    ));
    let mut leading = leadership.watch();
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        if take_over(
            &b,
            &leadership,
            &progress,
            &applied,
            &before_leading,
            &control,
        )
        .await
        {
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

/// The escalation stream's last sequence and the time of its oldest
/// record (`None` when it holds nothing).
async fn stream_state(b: &Broker) -> Result<(u64, Option<Ts>), String> {
    let mut s =
        b.js.get_stream(stream_name(&b.names.site))
            .await
            .map_err(|e| e.to_string())?;
    let i = s.info().await.map_err(|e| e.to_string())?;
    let first = (i.state.messages > 0).then(|| {
        let ms = i.state.first_timestamp.unix_timestamp_nanos() / 1_000_000;
        Ts(i64::try_from(ms).unwrap_or(i64::MAX))
    });
    Ok((i.state.last_sequence, first))
}

/// Once at start-up: when this instance has read the escalation stream to
/// its end, its observer sets aside what it wrote as leader and never
/// appended (`Command::ReadToEnd`).
async fn caught_up(
    b: Broker,
    leadership: Arc<Leadership>,
    control: mpsc::Sender<Command>,
    applied: Arc<AtomicU64>,
) {
    let (last, first) = loop {
        match stream_state(&b).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    while applied.load(Ordering::Relaxed) < last {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(retained_from) = first
        && !leadership.is_leader()
    {
        let _ = control.send(Command::ReadToEnd { retained_from }).await;
    }
}

/// Reads the escalation stream to its end and lets the engine catch up
/// with the event stream, then awaits the hook, sets aside what this
/// instance never appended, and arms the fence. False when the lease was
/// lost meanwhile.
async fn take_over(
    b: &Broker,
    leadership: &Leadership,
    progress: &super::consumer::Progress,
    applied: &AtomicU64,
    before_leading: &BeforeLeading,
    control: &mpsc::Sender<Command>,
) -> bool {
    let site = &b.names.site;
    let (last, first) = loop {
        if !leadership.is_leader() {
            return false;
        }
        match stream_state(b).await {
            Ok(s) => break s,
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
    if let Some(retained_from) = first
        && control
            .send(Command::ReadToEnd { retained_from })
            .await
            .is_err()
    {
        return false;
    }
    // The fence: this instance's `lead` record, after everything it has
    // read (a stalled predecessor's late record is read, and mirrored,
    // first).
    loop {
        if !leadership.is_leader() {
            return false;
        }
        let read = applied.load(Ordering::Relaxed);
        match leadership.fence.arm(b, read).await {
            Ok(epoch) => {
                tracing::info!(epoch, "the escalation stream is fenced for this instance");
                return leadership.is_leader();
            }
            Err(None) => {
                tracing::info!(
                    read,
                    "the escalation stream moved on before this instance's lead record; reading on"
                );
                let target = match b.js.get_stream(stream_name(site)).await {
                    Ok(mut s) => s.info().await.map(|i| i.state.last_sequence).ok(),
                    Err(_) => None,
                };
                let until = std::time::Instant::now() + Duration::from_secs(5);
                while let Some(t) = target
                    && applied.load(Ordering::Relaxed) < t
                    && std::time::Instant::now() < until
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(Some(e)) => {
                tracing::warn!(error = %e, "cannot append the lead record to the escalation stream; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Appends what the ladder writes, in order, under the fence; tells it
/// when an entry is in the stream, could not be appended, or was refused
/// (another instance leads: this one follows and acts no more).
async fn publish(
    b: Broker,
    mut written: mpsc::UnboundedReceiver<EscRecord>,
    control: mpsc::Sender<Command>,
    leadership: Arc<Leadership>,
) {
    let site = b.names.site.clone();
    while let Some(r) = written.recv().await {
        let result = match serde_json::to_vec(&r) {
            Ok(payload) => leadership
                .fence
                .append(&b, subject(&site, r.subject_token()), &r.msg_id(), payload)
                .await
                .map(drop),
            Err(e) => Err(Refusal::Failed(e.to_string())),
        };
        let cmd = match result {
            Ok(()) => match &r {
                EscRecord::Entry { entry } => Some(Command::Appended {
                    entry: entry.id,
                    error: None,
                }),
                EscRecord::Mark { .. } => None,
            },
            Err(Refusal::Deposed(why)) => {
                tracing::warn!(entry = r.entry_id(), error = %why,
                    "an escalation record of this instance is not in the escalation stream");
                leadership.deposed();
                Some(Command::Deposed { refused: r, why })
            }
            Err(Refusal::Failed(e)) => match &r {
                EscRecord::Entry { entry } => Some(Command::Appended {
                    entry: entry.id,
                    error: Some(e),
                }),
                EscRecord::Mark { entry, result, .. } => {
                    tracing::error!(entry, result, error = %e,
                        "an escalation result is not in the escalation stream; the other instances miss it");
                    None
                }
            },
        };
        if let Some(cmd) = cmd
            && control.send(cmd).await.is_err()
        {
            return;
        }
    }
}

/// Creates the escalation stream if needed and hands every record to the
/// observer (and cover results to `mirror`): every retained record, then
/// (after a reconnect) those after the last one read.
async fn read(
    b: Broker,
    retention: Duration,
    leadership: Arc<Leadership>,
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
                let own = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .is_some_and(|id| leadership.fence.is_own(id.as_str()));
                let ladder = subj == entry_subject || subj == mark_subject;
                if esc_fence::is_lead(&site, subj) || (own && ladder) {
                    // A leader's fence, or this leader's own record (in
                    // its log already): nothing to copy.
                } else if ladder {
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
                if let Err(e) = append(&b, &site, &leadership, &rec).await {
                    return CtiOutcome::failed(format!(
                        "not recorded in the escalation stream, not carried out: {e}"
                    ));
                }
                let outcome = inner.execute(req.clone()).await;
                rec.phase = "result".into();
                rec.ok = outcome.ok;
                rec.detail = outcome.detail.clone();
                if let Err(e) = append(&b, &site, &leadership, &rec).await {
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

/// A cover record, under the leader's fence (a refusal: this instance
/// follows from now on).
async fn append(b: &Broker, site: &str, leadership: &Leadership, r: &Record) -> Result<(), String> {
    let payload = serde_json::to_vec(r).map_err(|e| e.to_string())?;
    let id = format!("{}:{}", r.key, r.phase);
    match leadership
        .fence
        .append(b, subject(site, &r.phase), &id, payload)
        .await
    {
        Ok(_) => Ok(()),
        Err(Refusal::Deposed(why)) => {
            leadership.deposed();
            Err(why)
        }
        Err(Refusal::Failed(e)) => Err(e),
    }
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
