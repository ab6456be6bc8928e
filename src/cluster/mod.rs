//! Cluster mode: a NATS JetStream stream between the sources and the engine
//! (docs/cluster.md).
//!
//! ```text
//!  PBX / files ──► source (one instance, by lease) ──► forwarder ──► stream ACDMON_<site>
//!                                                                       │
//!            every instance:  engine ◄── consumer ◄─────────────────────┘
//! ```
//!
//! Why a stream and not replication between instances: the stream is the
//! one ordered log every instance applies, so all instances show the same
//! figures, a restarted one rebuilds its day by reading it again, and the
//! broker (which operators already run and trust) does the durable part.
//! Without `[cluster]` none of this runs and acdmon is one process.
//!
//! The daemon hooks in at two places: the inbox it gives sources (and
//! `POST /api/v1/events`) is [`Cluster::inbox`], and sources are started by
//! [`Cluster::spawn_ingesters`] instead of directly.

pub mod broker;
pub mod consumer;
pub mod cti;
pub mod cti_proxy;
pub mod forwarder;
pub mod ingest;
pub mod lease;
pub mod relist;
pub mod sites;
pub mod verdicts;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::{Gauge, Key, Label, Metadata, Recorder};
use tokio::sync::{mpsc, watch};

use crate::config::{ClusterConfig, SourceConfig};
use crate::sources::{HealthRegistry, INBOX_CAPACITY, Inbox, RejectCounter, SourceHealth};
use crate::time::Ts;

pub use consumer::{site_positions, stream_position};
pub use ingest::StartSource;

/// A running cluster attachment.
pub struct Cluster {
    /// Where sources send their events (the forwarder).
    pub inbox: Inbox,
    pub progress: Arc<consumer::Progress>,
    broker: watch::Receiver<Option<broker::Broker>>,
    fences: Arc<forwarder::Fences>,
    recorder: Arc<dyn Recorder + Send + Sync>,
    instance: String,
    ttl: Duration,
    zone: jiff::tz::TimeZone,
    health: Arc<HealthRegistry>,
    site: String,
    leadership: Arc<cti::Leadership>,
    mirror: Arc<cti::Mirror>,
    retention: Duration,
    /// A central instance's sites and their freshness (`[cluster] sites`).
    pub board: Option<Arc<sites::Board>>,
    /// This instance's engine inbox (before the stream).
    engine: Inbox,
    /// The real actions of the PBX sources this instance runs.
    executors: Arc<cti_proxy::Executors>,
    repeats: Arc<cti_proxy::Repeats>,
    /// Every source this instance ingests when it holds the lease, and
    /// whether it can relist a PBX (set by [`Cluster::spawn_ingesters`]).
    sources: Arc<std::sync::RwLock<Vec<(String, bool)>>>,
}

/// What [`Cluster::attach`] needs from the daemon.
pub struct Attach {
    /// The engine's own inbox (the consumer feeds it; control messages pass).
    pub engine: Inbox,
    /// Stream sequence the restored engine checkpoint ends at, if one was
    /// restored; otherwise the stream is read from the start of the day.
    pub resume_after: Option<u64>,
    /// A central instance: per site, the stream sequence the restored
    /// checkpoint ends at; a site not listed is read from the start of
    /// the day (its events are not in the figures).
    pub resume_sites: std::collections::BTreeMap<String, u64>,
    pub zone: jiff::tz::TimeZone,
    pub health: Arc<HealthRegistry>,
    pub rejects: Arc<RejectCounter>,
    pub recorder: Arc<dyn Recorder + Send + Sync>,
}

impl Cluster {
    /// Connects (in the background, retrying) and starts the forwarder and
    /// the consumer. Must run inside the tokio runtime.
    pub fn attach(cfg: &ClusterConfig, a: Attach) -> Cluster {
        if cfg.is_central() {
            return Self::attach_central(cfg, a);
        }
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let (btx, brx) = watch::channel(None);
        let fences = Arc::new(forwarder::Fences::default());
        let awaiting = Arc::new(verdicts::Awaiting::default());
        let progress = Arc::new(consumer::Progress::default());
        let names = broker::Names::new(cfg);
        let health = SourceHealth::new(&format!("cluster:{}", names.site), "nats");
        health.set_error("connecting to NATS");
        a.health.register(health.clone());
        tokio::spawn(forwarder::run(
            rx,
            a.engine.clone(),
            brx.clone(),
            fences.clone(),
            awaiting.clone(),
        ));
        let day_start = crate::state::window::day_bounds(Ts::now(), &a.zone).0;
        let start = consumer::start_policy(a.resume_after, day_start.0);
        tracing::info!(site = %names.site, instance = %names.instance, from = ?start, "cluster mode: events go through the stream");
        let gauges = StreamGauges::new(&*a.recorder, &names.site);
        let leadership = Arc::new(cti::Leadership::default());
        let mirror = Arc::new(cti::Mirror::default());
        let leader_gauge = gauge(
            &*a.recorder,
            "acd_cluster_cti_leader",
            vec![
                Label::new("site", names.site.clone()),
                Label::new("instance", names.instance.clone()),
            ],
        );
        leader_gauge.set(0.0);
        tokio::spawn(cti::hold_leadership(
            brx.clone(),
            cfg.lease_ttl(),
            leadership.clone(),
            leader_gauge,
        ));
        {
            let cfg = cfg.clone();
            let progress = progress.clone();
            let rejects = a.rejects.clone();
            let engine = a.engine.clone();
            tokio::spawn(async move {
                let mut wait = Duration::from_millis(200);
                let b = loop {
                    match broker::connect(&cfg).await {
                        Ok(b) => break b,
                        Err(e) => {
                            health.set_error(e.clone());
                            tracing::warn!(error = %e, "cluster: NATS not reachable yet; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                let _ = btx.send(Some(b.clone()));
                tokio::spawn(watch_progress(
                    b.client.clone(),
                    b.stream.clone(),
                    progress.clone(),
                    health,
                    gauges,
                ));
                tokio::spawn(sites::beat(b.js.clone(), b.names.clone()));
                let feed = consumer::Feed {
                    awaiting: Some(awaiting),
                    ..b.feed()
                };
                consumer::run(feed, engine, start, progress, rejects).await;
            });
        }
        Cluster {
            inbox: tx,
            progress,
            broker: brx,
            fences,
            recorder: a.recorder,
            instance: names.instance,
            ttl: cfg.lease_ttl(),
            zone: a.zone,
            health: a.health,
            site: names.site,
            leadership,
            mirror,
            retention: cfg.retention(),
            board: None,
            engine: a.engine,
            executors: Arc::default(),
            repeats: Arc::default(),
            sources: Arc::default(),
        }
    }

    /// A central instance: one consumer per site, no forwarder, lease or
    /// CTI leadership (docs/cluster.md, "Several sites").
    fn attach_central(cfg: &ClusterConfig, a: Attach) -> Cluster {
        let names = broker::Names::new(cfg);
        let board = sites::Board::new(cfg.sites(), cfg.stale_after());
        let day_start = crate::state::window::day_bounds(Ts::now(), &a.zone).0;
        tracing::info!(sites = ?cfg.sites(), instance = %names.instance, "central instance: showing the sites' streams");
        for site in &board.sites {
            site.health.set_error("connecting to NATS");
            a.health.register(site.health.clone());
            a.health.register(site.freshness.clone());
        }
        tokio::spawn(sites::watch_freshness(
            board.clone(),
            a.recorder.clone(),
            a.engine.clone(),
        ));
        {
            let names = names.clone();
            let resume_sites = a.resume_sites.clone();
            let (cfg, board, engine, rejects, recorder) = (
                cfg.clone(),
                board.clone(),
                a.engine.clone(),
                a.rejects.clone(),
                a.recorder.clone(),
            );
            tokio::spawn(async move {
                let mut wait = Duration::from_millis(200);
                let (client, js) = loop {
                    match broker::connect_client(&cfg, &names).await {
                        Ok(c) => break c,
                        Err(e) => {
                            for s in &board.sites {
                                s.nats_error(&e);
                            }
                            tracing::warn!(error = %e, "cluster: NATS not reachable yet; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                for site in &board.sites {
                    let names = broker::Names {
                        site: site.site.clone(),
                        instance: names.instance.clone(),
                    };
                    let stream = loop {
                        match broker::site_stream(&js, &names, &cfg).await {
                            Ok(s) => break s,
                            Err(e) => {
                                site.nats_error(&e);
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    };
                    let gauges = StreamGauges::new(&*recorder, &site.site);
                    tokio::spawn(watch_progress(
                        client.clone(),
                        stream.clone(),
                        site.progress.clone(),
                        site.health.clone(),
                        gauges,
                    ));
                    let feed = consumer::Feed {
                        stream,
                        names,
                        qualify: true,
                        awaiting: None,
                    };
                    let resume = resume_sites.get(&site.site).copied();
                    match resume {
                        Some(seq) => {
                            tracing::info!(site = %site.site, after = seq, "resuming the site's stream after the restored checkpoint")
                        }
                        None => {
                            tracing::info!(site = %site.site, "reading the site's stream from the start of the day")
                        }
                    }
                    let start = consumer::start_policy(resume, day_start.0);
                    tokio::spawn(consumer::run(
                        feed,
                        engine.clone(),
                        start,
                        site.progress.clone(),
                        rejects.clone(),
                    ));
                }
            });
        }
        let (_, brx) = watch::channel(None);
        Cluster {
            inbox: sites::refuse_input(a.engine.clone(), a.rejects.clone()),
            progress: Arc::new(consumer::Progress::default()),
            broker: brx,
            fences: Arc::new(forwarder::Fences::default()),
            recorder: a.recorder,
            instance: names.instance,
            ttl: cfg.lease_ttl(),
            zone: a.zone,
            health: a.health,
            site: names.site,
            leadership: Arc::new(cti::Leadership::default()),
            mirror: Arc::new(cti::Mirror::default()),
            retention: cfg.retention(),
            board: Some(board),
            engine: a.engine,
            executors: Arc::default(),
            repeats: Arc::default(),
            sources: Arc::default(),
        }
    }

    /// Connects the ladder to the site's escalation stream (a site's
    /// instance; a central instance runs no CTI leader): it follows the
    /// leader's records until this instance holds the `cti` lease, then
    /// leads once `before_leading` is done (`cti::run_escalations`).
    pub fn link_ladder(
        &self,
        ladder: &crate::escalation::control::LadderHandle,
        before_leading: cti::BeforeLeading,
    ) {
        if self.board.is_some() {
            return;
        }
        let written = ladder
            .stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(written) = written else {
            return;
        };
        tokio::spawn(cti::run_escalations(cti::Escalations {
            broker: self.broker.clone(),
            retention: self.retention,
            leadership: self.leadership.clone(),
            mirror: self.mirror.clone(),
            progress: self.progress.clone(),
            control: ladder.tx.clone(),
            written,
            before_leading,
        }));
    }

    /// Routes the `[[cti]]` actions named `webhooks`, and the AMI and ESL
    /// actions of `sources`, through the site's CTI leader ([`cti::Gate`]).
    /// An AMI or ESL action is a [`cti_proxy::Proxy`] to whichever instance
    /// holds that PBX's connection; the real one, registered when this
    /// instance starts the source, is kept for answering it.
    pub fn gate_cti(
        &self,
        registry: &crate::cti::CtiRegistry,
        webhooks: Vec<String>,
        sources: &[SourceConfig],
    ) {
        let pbx = cti_proxy::pbx_sources(sources);
        let gate = {
            let (site, mirror, leadership, broker) = (
                self.site.clone(),
                self.mirror.clone(),
                self.leadership.clone(),
                self.broker.clone(),
            );
            move |inner| -> Arc<dyn crate::cti::Cti> {
                Arc::new(cti::Gate {
                    inner,
                    site: site.clone(),
                    mirror: mirror.clone(),
                    leadership: leadership.clone(),
                    broker: broker.clone(),
                })
            }
        };
        let proxies: Vec<(String, Arc<dyn crate::cti::Cti>)> = pbx
            .iter()
            .map(|p| {
                let proxy = cti_proxy::Proxy {
                    source: p.clone(),
                    broker: self.broker.clone(),
                    patience: self.ttl * 2,
                };
                (p.name.clone(), gate(Arc::new(proxy)))
            })
            .collect();
        for (name, proxy) in &proxies {
            registry.insert_unwrapped(name, proxy.clone());
        }
        let executors = self.executors.clone();
        registry.wrap_inserts(Arc::new(move |name, inner| {
            if let Some((_, proxy)) = proxies.iter().find(|(n, _)| n == name) {
                if !Arc::ptr_eq(proxy, &inner) {
                    executors.set(name, inner);
                }
                return proxy.clone();
            }
            if !webhooks.iter().any(|w| w == name) {
                return inner;
            }
            gate(inner)
        }));
    }

    /// Has every PBX source's holder relist its queues and waits until this
    /// instance's engine has applied them ([`relist::Relister`]).
    pub fn relister(&self, timeout: Duration) -> relist::Relister {
        relist::Relister {
            broker: self.broker.clone(),
            progress: self.progress.clone(),
            engine: self.engine.clone(),
            sources: self.sources.clone(),
            timeout,
        }
    }

    /// One lease-holding ingester per source; each handle stops its source
    /// when aborted.
    pub fn spawn_ingesters(
        &self,
        sources: &[SourceConfig],
        start: StartSource,
    ) -> Vec<(String, tokio::task::JoinHandle<()>)> {
        let pbx = cti_proxy::pbx_sources(sources);
        if let Ok(mut list) = self.sources.write() {
            *list = sources
                .iter()
                .map(|s| (s.name.clone(), pbx.iter().any(|p| p.name == s.name)))
                .collect();
        }
        sources
            .iter()
            .map(|s| {
                let held = gauge(
                    &*self.recorder,
                    "acd_cluster_lease_held",
                    vec![
                        Label::new("source", s.name.clone()),
                        Label::new("instance", self.instance.clone()),
                    ],
                );
                held.set(0.0);
                let ing = ingest::Ingester {
                    source: s.clone(),
                    broker: self.broker.clone(),
                    fences: self.fences.clone(),
                    start: start.clone(),
                    health: self.health.clone(),
                    zone: self.zone.clone(),
                    ttl: self.ttl,
                    held,
                    pbx: pbx
                        .iter()
                        .any(|p| p.name == s.name)
                        .then(|| ingest::PbxServe {
                            executors: self.executors.clone(),
                            repeats: self.repeats.clone(),
                            counted: cti_proxy::repeats_counter(&*self.recorder, &s.name),
                        }),
                };
                (s.name.clone(), tokio::spawn(ing.run()))
            })
            .collect()
    }
}

struct StreamGauges {
    lag: Gauge,
    applied: Gauge,
    last: Gauge,
    caught_up: Gauge,
}

impl StreamGauges {
    fn new(r: &dyn Recorder, site: &str) -> StreamGauges {
        let l = || vec![Label::new("site", site.to_string())];
        StreamGauges {
            lag: gauge(r, "acd_cluster_stream_lag_messages", l()),
            applied: gauge(r, "acd_cluster_stream_applied_sequence", l()),
            last: gauge(r, "acd_cluster_stream_last_sequence", l()),
            caught_up: gauge(r, "acd_cluster_caught_up", l()),
        }
    }
}

pub(crate) fn gauge(r: &dyn Recorder, name: &'static str, labels: Vec<Label>) -> Gauge {
    static META: Metadata<'static> =
        Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
    r.register_gauge(&Key::from_parts(name, labels), &META)
}

/// How long the consumer may deliver nothing while the stream has more.
const STALL_AFTER: Duration = Duration::from_secs(5);

/// Keeps the stream's last sequence, `/readyz` (through the `cluster:<site>`
/// health entry) and the stream gauges current.
async fn watch_progress(
    client: async_nats::Client,
    mut stream: async_nats::jetstream::stream::Stream,
    progress: Arc<consumer::Progress>,
    health: Arc<SourceHealth>,
    g: StreamGauges,
) {
    let mut behind_logged = false;
    // (applied sequence, when it last moved) for the stall check.
    let mut moved = (0u64, std::time::Instant::now());
    loop {
        match stream.info().await {
            Ok(info) => {
                let last = info.state.last_sequence;
                progress.last.fetch_max(last, Ordering::Relaxed);
            }
            Err(e) => health.set_error(format!("stream info: {e}")),
        }
        let connected = client.connection_state() == async_nats::connection::State::Connected
            && progress.connected.load(Ordering::Relaxed);
        let caught_up = connected && progress.is_caught_up();
        health.set_connected(connected);
        health.set_synced(caught_up);
        let lag = progress.lag();
        if !connected {
            health.set_error("not connected to NATS");
        }
        if caught_up {
            behind_logged = false;
        } else if connected && !behind_logged {
            tracing::info!(lag, "catching up with the event stream");
            behind_logged = true;
        }
        let applied = progress.applied.load(Ordering::Relaxed);
        if applied != moved.0 || lag == 0 {
            moved = (applied, std::time::Instant::now());
        } else if moved.1.elapsed() >= STALL_AFTER {
            tracing::warn!(
                lag,
                applied,
                "the stream consumer is stalled; recreating it"
            );
            progress.stalled.notify_one();
            moved.1 = std::time::Instant::now();
        }
        let seen = progress.messages.swap(0, Ordering::Relaxed);
        health.add_events(seen);
        g.lag.set(lag as f64);
        g.applied.set(applied as f64);
        g.last.set(progress.last.load(Ordering::Relaxed) as f64);
        g.caught_up.set(caught_up as u8 as f64);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
