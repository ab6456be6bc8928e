//! One ingester per source across the site: every instance runs this loop
//! for every configured source, and only the holder of the source's lease
//! runs the source itself.
//!
//! Taking a source over: the stream's last message on the source's subject
//! says how far the previous holder got (`Acdmon-Position` for a file, the
//! newest event time for a CTI link that relists calls); the source starts
//! from there, and the forwarder's fence is armed with that message's
//! sequence, so if the previous holder is not dead after all its next write
//! is refused.
//!
//! A configuration reload gives ingesters orders ([`Ingesters`]). Whoever
//! stops a source's task (removed or changed) first waits until the task's
//! last events are in the stream, so the stream's last message says where
//! the next task starts, as it does for a takeover: a changed source is
//! restarted by its holder from there, under the same lease and fence; a
//! removed one's holder then deletes its lease, so an instance that still
//! has the source (not reloaded yet) carries on at once instead of after
//! the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use metrics::{Gauge, Label, Recorder};
use tokio::sync::watch;

use super::broker::Broker;
use super::cti_proxy::{self, Executors, Repeats};
use super::forwarder::Fences;
use super::lease::{Lease, Renewal};
use super::wire;
use crate::config::SourceConfig;
use crate::sources::{Envelope, HealthRegistry, Inbox, Restart};
use crate::time::Ts;

/// Starts one configured source the way the daemon does; `None` when its
/// settings cannot run (the reason is on its health).
pub type StartSource = Arc<
    dyn Fn(&SourceConfig, Option<Restart>) -> Option<tokio::task::JoinHandle<()>> + Send + Sync,
>;

/// Where the previous ingester of a source stopped, as the stream says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handover {
    /// Sequence of the subject's last message (0: none).
    pub last_seq: u64,
    pub position: Option<crate::state::SourcePosition>,
    pub newest: Option<Ts>,
}

/// Reads the subject's last message.
pub async fn handover(b: &Broker, source: &str) -> Result<Handover, String> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    match b
        .stream
        .get_last_raw_message_by_subject(&b.names.source_subject(source))
        .await
    {
        Ok(m) => Ok(Handover {
            last_seq: m.sequence,
            position: m
                .headers
                .get(wire::POSITION)
                .and_then(|v| wire::parse_position(v.as_str())),
            newest: wire::decode(&m.payload)
                .ok()
                .and_then(|evs| evs.iter().map(|e| e.ts).max()),
        }),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(Handover::default()),
        Err(e) => Err(format!("reading the last message of {source}: {e}")),
    }
}

/// Aborts the source task when the ingester lets go of it.
struct Running(tokio::task::JoinHandle<()>);

impl Running {
    /// Stops the task and waits until it has ended, so everything it sent
    /// is in the forwarder's channel.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the holder of a PBX source (AMI, ESL) answers for the site: its
/// CTI requests and relists (`super::cti_proxy`, `super::relist`).
pub struct PbxServe {
    pub executors: Arc<Executors>,
    pub repeats: Arc<Repeats>,
    /// `acd_cluster_cti_repeats_total{source}`.
    pub counted: metrics::Counter,
}

/// The answering tasks of a held PBX source; they stop with the lease.
struct Answering(Vec<tokio::task::JoinHandle<()>>);

impl Answering {
    fn start(b: &Broker, source: &str, p: &PbxServe) -> Answering {
        Answering(vec![
            tokio::spawn(cti_proxy::serve(
                b.clone(),
                source.to_string(),
                p.executors.clone(),
                p.repeats.clone(),
                p.counted.clone(),
            )),
            tokio::spawn(super::relist::serve(
                b.clone(),
                source.to_string(),
                p.executors.clone(),
            )),
        ])
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The sources this instance would ingest, each with its ingester. The
/// daemon starts one per configured source; a configuration reload adds,
/// removes and changes them (docs/cluster.md, "Reloading sources").
pub struct Ingesters {
    pub broker: watch::Receiver<Option<Broker>>,
    pub fences: Arc<Fences>,
    pub start: StartSource,
    pub health: Arc<HealthRegistry>,
    pub zone: jiff::tz::TimeZone,
    pub ttl: Duration,
    pub recorder: Arc<dyn Recorder + Send + Sync>,
    pub instance: String,
    pub executors: Arc<Executors>,
    pub repeats: Arc<Repeats>,
    /// The forwarder's inbox. A source that stops sends a marker after its
    /// last events; once the marker is through, they are in the stream, and
    /// the stream says where the next task (or the next holder) resumes.
    pub inbox: Inbox,
    /// Every source and whether it can relist a PBX (read by
    /// `super::relist`).
    pub sources: Arc<RwLock<Vec<(String, bool)>>>,
    /// Each running ingester's orders: the source's settings now, `None`
    /// once it is removed. A watch channel: a later reload's settings
    /// replace an earlier one's that were not taken yet.
    pub(super) orders: Mutex<HashMap<String, watch::Sender<Option<SourceConfig>>>>,
}

impl Ingesters {
    /// Starts the ingester of `s`; it competes for the source's lease until
    /// the task is aborted or [`Ingesters::stop`] removes it.
    pub fn spawn(self: &Arc<Self>, s: &SourceConfig) -> tokio::task::JoinHandle<()> {
        let held = self.held_gauge(&s.name);
        held.set(0.0);
        let (tx, rx) = watch::channel(Some(s.clone()));
        self.lock_orders().insert(s.name.clone(), tx);
        self.list(&s.name, Some(s));
        let ing = Ingester {
            source: s.clone(),
            orders: rx,
            pbx: self.pbx_serve(s),
            set: self.clone(),
            held,
        };
        tokio::spawn(ing.run())
    }

    /// A reload changed `s`'s settings: its holder stops the task and
    /// starts the new settings under the same lease; a standby takes them
    /// for when it takes the source over.
    pub fn change(&self, s: &SourceConfig) {
        if let Some(tx) = self.lock_orders().get(&s.name) {
            tx.send_replace(Some(s.clone()));
        }
        self.list(&s.name, Some(s));
    }

    /// A reload removed source `name`: its ingester stops the task, waits
    /// until the task's last events are in the stream, gives the lease up
    /// (deletes the key, so an instance that still has the source need not
    /// wait for the TTL) and ends. Waits for `task` up to the lease TTL,
    /// then aborts it (the lease then expires by itself).
    pub async fn stop(&self, name: &str, task: Option<tokio::task::JoinHandle<()>>) {
        let tx = self.lock_orders().remove(name);
        if let Some(tx) = &tx {
            tx.send_replace(None);
        }
        self.list(name, None);
        if let Some(mut task) = task
            && tokio::time::timeout(self.ttl, &mut task).await.is_err()
        {
            tracing::warn!(source = %name, "the removed source's ingester did not stop in time; its lease expires by itself");
            task.abort();
            let _ = task.await;
            self.held_gauge(name).set(0.0);
            self.health.remove(name);
        }
        drop(tx);
    }

    fn pbx_serve(&self, s: &SourceConfig) -> Option<PbxServe> {
        (!cti_proxy::pbx_sources(std::slice::from_ref(s)).is_empty()).then(|| PbxServe {
            executors: self.executors.clone(),
            repeats: self.repeats.clone(),
            counted: cti_proxy::repeats_counter(&*self.recorder, &s.name),
        })
    }

    fn held_gauge(&self, source: &str) -> Gauge {
        super::gauge(
            &*self.recorder,
            "acd_cluster_lease_held",
            vec![
                Label::new("source", source.to_string()),
                Label::new("instance", self.instance.clone()),
            ],
        )
    }

    /// Keeps the relist's list of sources current (`None`: removed).
    fn list(&self, name: &str, s: Option<&SourceConfig>) {
        let Ok(mut list) = self.sources.write() else {
            return;
        };
        list.retain(|(n, _)| n != name);
        if let Some(s) = s {
            let pbx = !cti_proxy::pbx_sources(std::slice::from_ref(s)).is_empty();
            list.push((name.to_string(), pbx));
        }
    }

    fn lock_orders(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<SourceConfig>>>> {
        self.orders.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The next order of a reload: `Some(settings)`, or `None` when the source
/// was removed. Without a sender (no reloader) it never comes.
async fn next_order(orders: &mut watch::Receiver<Option<SourceConfig>>) -> Option<SourceConfig> {
    if orders.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    orders.borrow_and_update().clone()
}

/// Why an ingester stopped holding its source.
enum Ended {
    /// Lost the lease, or fenced: stand by again.
    Lost,
    /// The settings cannot run here: let another instance try.
    CannotRun,
    /// A reload removed the source.
    Removed,
}

struct Ingester {
    source: SourceConfig,
    orders: watch::Receiver<Option<SourceConfig>>,
    set: Arc<Ingesters>,
    /// `acd_cluster_lease_held{source,instance}`.
    held: Gauge,
    /// Set for a PBX source: answered while the lease is held.
    pbx: Option<PbxServe>,
}

impl Ingester {
    /// Runs until a reload removes the source (aborting it stops the source).
    async fn run(mut self) {
        let name = self.source.name.clone();
        let Some(b) = self.wait_for_broker().await else {
            return;
        };
        let mut lease = Lease::new(
            b.leases.clone(),
            format!("ingest.{name}"),
            b.names.instance.clone(),
            self.set.ttl,
        );
        let mut last_holder: Option<String> = None;
        loop {
            // Standby until the lease is ours.
            match lease.acquire().await {
                Ok(true) => {}
                Ok(false) => {
                    let holder = lease.holder().await;
                    if holder != last_holder {
                        tracing::info!(source = %name, holder = holder.as_deref().unwrap_or("?"), "standing by: another instance ingests this source");
                        last_holder = holder;
                    }
                    if !self.pause(lease.period()).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(source = %name, error = %e, "cannot take the lease; retrying");
                    if !self.pause(lease.period()).await {
                        return;
                    }
                    continue;
                }
            }
            last_holder = None;
            tracing::info!(source = %name, instance = %b.names.instance, "took the source's lease: ingesting it");
            let ended = self.hold(&b, &mut lease).await;
            self.held.set(0.0);
            self.set.health.remove(&name);
            match ended {
                Ended::Lost => {}
                Ended::CannotRun => {
                    lease.release().await;
                    if !self.pause(self.set.ttl).await {
                        return;
                    }
                }
                Ended::Removed => {
                    self.set.fences.disarm(&name);
                    lease.release().await;
                    tracing::info!(source = %name, "source removed by a config reload: its last events are in the stream, lease given up");
                    return;
                }
            }
        }
    }

    /// Ingests the source while the lease is ours, restarting its task
    /// when a reload changes its settings.
    async fn hold(&mut self, b: &Broker, lease: &mut Lease) -> Ended {
        let name = self.source.name.clone();
        let mut running = match self.start_task(b).await {
            Ok(r) => r,
            Err(e) => return e,
        };
        let mut answering = self.pbx.as_ref().map(|p| Answering::start(b, &name, p));
        self.held.set(1.0);
        loop {
            let order = tokio::select! {
                _ = tokio::time::sleep(lease.period()) => None,
                o = next_order(&mut self.orders) => Some(o),
            };
            match order {
                None => {
                    if self.set.fences.is_fenced(&name) {
                        return Ended::Lost;
                    }
                    match lease.renew().await {
                        Renewal::Held => {}
                        Renewal::Lost => {
                            tracing::warn!(source = %name, "lost the source's lease: another instance ingests it now");
                            return Ended::Lost;
                        }
                        Renewal::Unknown(e) => {
                            tracing::warn!(source = %name, error = %e, "lease not renewed yet");
                        }
                    }
                }
                Some(next) => {
                    // Removed or changed: stop the task (and what answers
                    // for it) and wait until its last events are in the
                    // stream, so the stream says where it stopped.
                    drop(answering.take());
                    running.stop().await;
                    self.flushed().await;
                    let Some(cfg) = next else {
                        return Ended::Removed;
                    };
                    self.adopt(cfg);
                    tracing::info!(source = %name, "source settings changed by a config reload: restarting it where the stream ends");
                    running = match self.start_task(b).await {
                        Ok(r) => r,
                        Err(e) => return e,
                    };
                    answering = self.pbx.as_ref().map(|p| Answering::start(b, &name, p));
                }
            }
        }
    }

    /// Starts the source where the stream's last message on its subject
    /// ends, with the fence armed on that message.
    async fn start_task(&self, b: &Broker) -> Result<Running, Ended> {
        let name = &self.source.name;
        if self.set.fences.is_fenced(name) {
            return Err(Ended::Lost);
        }
        let from = match handover(b, name).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "lease held but the stream cannot be read; letting go");
                return Err(Ended::CannotRun);
            }
        };
        self.set.fences.arm(name, from.last_seq);
        let now = Ts::now();
        let restart = Restart {
            applied: from.position,
            today_start: crate::state::window::day_bounds(now, &self.set.zone).0,
            counted_until: from.newest,
        };
        tracing::info!(source = %name, after_seq = from.last_seq, position = ?from.position, "starting the source where the stream ends");
        match (self.set.start)(&self.source, Some(restart)) {
            Some(task) => Ok(Running(task)),
            // Cannot run here (bad settings; the reason is on its health).
            None => Err(Ended::CannotRun),
        }
    }

    /// Waits until everything the stopped task sent is in the stream.
    async fn flushed(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let marker = Envelope::Checked {
            source: Arc::from(self.source.name.as_str()),
            events: Vec::new(),
            verdict: tx,
            origins: None,
        };
        if self.set.inbox.send(marker).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn adopt(&mut self, cfg: SourceConfig) {
        self.pbx = self.set.pbx_serve(&cfg);
        self.source = cfg;
    }

    /// Sleeps for `d`, taking the settings of any reload meanwhile; `false`
    /// when a reload removed the source.
    async fn pause(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                o = next_order(&mut self.orders) => match o {
                    Some(cfg) => self.adopt(cfg),
                    None => return false,
                },
            }
        }
    }

    /// The broker, once connected; `None` when a reload removed the source
    /// first (or the cluster stopped).
    async fn wait_for_broker(&mut self) -> Option<Broker> {
        let mut broker = self.set.broker.clone();
        loop {
            tokio::select! {
                b = broker.wait_for(|b| b.is_some()) => return b.ok().and_then(|b| b.clone()),
                o = next_order(&mut self.orders) => match o {
                    Some(cfg) => self.adopt(cfg),
                    None => return None,
                },
            }
        }
    }
}
