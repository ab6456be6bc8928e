//! The connection to NATS and the JetStream objects cluster mode uses: the
//! site's event stream and its lease bucket. Created on first use with the
//! configured retention and replicas; an existing stream is used as it is
//! (an operator may have tuned it).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::config::ClusterConfig;

/// One instance's handles on the broker.
#[derive(Clone)]
pub struct Broker {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub stream: stream::Stream,
    pub leases: kv::Store,
    pub names: Names,
}

impl Broker {
    /// This site's stream as its own instances read it.
    pub fn feed(&self) -> super::consumer::Feed {
        super::consumer::Feed {
            stream: self.stream.clone(),
            names: self.names.clone(),
            qualify: false,
            awaiting: None,
        }
    }
}

/// The names one site's objects have in NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub site: String,
    pub instance: String,
}

impl Names {
    pub fn new(cfg: &ClusterConfig) -> Names {
        Names {
            site: cfg.site().to_string(),
            instance: cfg.instance.clone().unwrap_or_else(default_instance),
        }
    }
    pub fn stream(&self) -> String {
        format!("ACDMON_{}", self.site)
    }
    /// Every event subject of this site.
    pub fn events(&self) -> String {
        format!("acdmon.{}.events.>", self.site)
    }
    /// The subject of one source's events.
    pub fn source_subject(&self, source: &str) -> String {
        format!("acdmon.{}.events.{source}", self.site)
    }
    /// Where an instance of this site publishes its heartbeat: under the
    /// event subjects (so the stream carries it; an existing stream needs
    /// no change) but with five tokens, so no source's subject is it.
    pub fn heartbeat_subject(&self) -> String {
        format!("acdmon.{}.events._hb.{}", self.site, self.instance)
    }
    pub fn is_heartbeat(&self, subject: &str) -> bool {
        subject
            .strip_prefix(&format!("acdmon.{}.events._hb.", self.site))
            .is_some()
    }
    pub fn lease_bucket(&self) -> String {
        format!("acdmon_{}_leases", self.site)
    }
}

/// Host name and process id: unique on a machine and readable in a lease.
fn default_instance() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "acdmon".into());
    format!("{host}-{}", std::process::id())
}

/// Connects and makes sure the stream and the lease bucket exist. Errors
/// are one line for the log and `/readyz`, never a secret.
pub async fn connect(cfg: &ClusterConfig) -> Result<Broker, String> {
    let names = Names::new(cfg);
    let (client, js) = connect_client(cfg, &names).await?;
    let stream = site_stream(&js, &names, cfg).await?;
    let storage = storage_type(cfg);
    let leases = lease_bucket(&js, &names, cfg, storage).await?;
    Ok(Broker {
        client,
        js,
        stream,
        leases,
        names,
    })
}

fn storage_type(cfg: &ClusterConfig) -> stream::StorageType {
    if cfg.memory_storage() {
        stream::StorageType::Memory
    } else {
        stream::StorageType::File
    }
}

/// The connection alone (a central instance opens several sites' streams
/// on it).
pub async fn connect_client(
    cfg: &ClusterConfig,
    names: &Names,
) -> Result<(async_nats::Client, jetstream::Context), String> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("acdmon {}", names.instance))
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5));
    if let Some(c) = &cfg.credentials {
        opts = opts
            .credentials(c.expose())
            .map_err(|e| format!("[cluster] credentials cannot be used: {e}"))?;
    }
    if let Some(t) = &cfg.token {
        opts = opts.token(t.expose().to_string());
    }
    if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(u.clone(), p.expose().to_string());
    }
    if let Some(t) = &cfg.tls {
        opts = opts.require_tls(true);
        if let Some(ca) = &t.ca {
            opts = opts.add_root_certificates(ca.into());
        }
        if let (Some(c), Some(k)) = (&t.cert, &t.key) {
            opts = opts.add_client_certificate(c.into(), k.into());
        }
    }
    let client = opts
        .connect(cfg.servers())
        .await
        .map_err(|e| format!("cannot connect to NATS {:?}: {e}", cfg.servers()))?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// `names.site`'s event stream, created (with this configuration's
/// retention and replicas) when it does not exist yet, so a central
/// instance may start before the sites it shows.
pub async fn site_stream(
    js: &jetstream::Context,
    names: &Names,
    cfg: &ClusterConfig,
) -> Result<stream::Stream, String> {
    js.get_or_create_stream(stream::Config {
        name: names.stream(),
        subjects: vec![names.events()],
        max_age: cfg.retention(),
        storage: storage_type(cfg),
        num_replicas: cfg.replicas(),
        duplicate_window: cfg.duplicate_window(),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot create the stream {}: {e}", names.stream()))
}

/// The lease bucket. Created as the stream a key-value bucket is
/// (`KV_<bucket>`, the layout every NATS client reads), not through
/// `create_key_value`: that asks for the account's API level first, which a
/// 2.9 server (Debian's) answers in a shape the client cannot read.
async fn lease_bucket(
    js: &jetstream::Context,
    names: &Names,
    cfg: &ClusterConfig,
    storage: stream::StorageType,
) -> Result<kv::Store, String> {
    let bucket = names.lease_bucket();
    if let Ok(kv) = js.get_key_value(&bucket).await {
        return Ok(kv);
    }
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: cfg.lease_ttl(),
        storage,
        num_replicas: cfg.replicas(),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot create the lease bucket {bucket}: {e}"))?;
    js.get_key_value(&bucket)
        .await
        .map_err(|e| format!("cannot open the lease bucket {bucket}: {e}"))
}
