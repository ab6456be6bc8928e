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

use std::sync::Arc;

use metrics::Gauge;

use super::broker::Broker;
use super::cti_proxy::{self, Executors, Repeats};
use super::forwarder::Fences;
use super::lease::{Lease, Renewal};
use super::wire;
use crate::config::SourceConfig;
use crate::sources::HealthRegistry;
use crate::sources::Restart;
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

pub struct Ingester {
    pub source: SourceConfig,
    pub broker: tokio::sync::watch::Receiver<Option<Broker>>,
    pub fences: Arc<Fences>,
    pub start: StartSource,
    pub health: Arc<HealthRegistry>,
    pub zone: jiff::tz::TimeZone,
    pub ttl: std::time::Duration,
    /// `acd_cluster_lease_held{source,instance}`.
    pub held: Gauge,
    /// Set for a PBX source: answered while the lease is held.
    pub pbx: Option<PbxServe>,
}

impl Ingester {
    /// Runs for the life of the daemon (aborting it stops the source).
    pub async fn run(mut self) {
        let name = self.source.name.clone();
        let b = match self.broker.wait_for(|b| b.is_some()).await {
            Ok(b) => b.clone(),
            Err(_) => return,
        };
        let Some(b) = b else { return };
        let mut lease = Lease::new(
            b.leases.clone(),
            format!("ingest.{name}"),
            b.names.instance.clone(),
            self.ttl,
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
                    tokio::time::sleep(lease.period()).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(source = %name, error = %e, "cannot take the lease; retrying");
                    tokio::time::sleep(lease.period()).await;
                    continue;
                }
            }
            last_holder = None;
            let from = match handover(&b, &name).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(source = %name, error = %e, "lease taken but the stream cannot be read; letting go");
                    lease.release().await;
                    tokio::time::sleep(lease.period()).await;
                    continue;
                }
            };
            self.fences.arm(&name, from.last_seq);
            let now = Ts::now();
            let restart = Restart {
                applied: from.position,
                today_start: crate::state::window::day_bounds(now, &self.zone).0,
                counted_until: from.newest,
            };
            tracing::info!(source = %name, instance = %b.names.instance, after_seq = from.last_seq, position = ?from.position, "took the source's lease: ingesting it");
            let Some(task) = (self.start)(&self.source, Some(restart)) else {
                // Cannot run here (bad settings): let another instance try.
                lease.release().await;
                tokio::time::sleep(self.ttl).await;
                continue;
            };
            let running = Running(task);
            let answering = self.pbx.as_ref().map(|p| Answering::start(&b, &name, p));
            self.held.set(1.0);
            loop {
                tokio::time::sleep(lease.period()).await;
                if self.fences.is_fenced(&name) {
                    break;
                }
                match lease.renew().await {
                    Renewal::Held => {}
                    Renewal::Lost => {
                        tracing::warn!(source = %name, "lost the source's lease: another instance ingests it now");
                        break;
                    }
                    Renewal::Unknown(e) => {
                        tracing::warn!(source = %name, error = %e, "lease not renewed yet");
                    }
                }
            }
            drop(answering);
            drop(running);
            self.held.set(0.0);
            self.health.remove(&name);
        }
    }
}
