//! The HEP collector source (`kind = "hep"`): Kamailio, OpenSIPS, Asterisk,
//! FreeSWITCH and capture agents mirror SIP to it, and it derives queue
//! events from the dialogs (see [`crate::sources::sip`]).
//!
//! Layers: [`packet`] decodes HEP (sans-IO), [`HepIngest`] checks the auth
//! key and the payload type and hands SIP to [`SipIngest`], [`task`] owns
//! the UDP and TCP listeners. [`HepReplayDecoder`] replays a recorded HEPv3
//! stream (packets back to back, as a TCP capture would send them) on event
//! time.

pub mod drops;
pub mod packet;
pub mod task;

use std::net::SocketAddr;

use serde::Deserialize;

use crate::config::{HumanDuration, Secret};
use crate::event::{Event, ExitReason};
use crate::sources::Reject;
use crate::sources::sip::SipIngest;
use crate::sources::sip::dialog::{Capture, DialogLimits};
use crate::sources::sip::mapping::{AgentRule, MappingConfig, MappingRules, QueueRule};
use crate::time::Ts;
use packet::{HepPacket, Limits, StreamFramer};

pub use task::spawn;

/// Settings of a `kind = "hep"` source (everything but `name` and `kind`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HepSourceConfig {
    /// UDP address HEP senders send to (HEPv1/v2/v3). Empty string: no UDP.
    #[serde(default = "default_listen_udp")]
    pub listen_udp: String,
    /// TCP address for HEPv3 over TCP (OpenSIPS' default transport).
    /// Optional; off when absent.
    #[serde(default)]
    pub listen_tcp: Option<String>,
    /// Expected HEPv3 auth key (chunk 0x000e). When set, packets without it
    /// or with another key are rejected (`hep_auth`); HEPv1/v2, which carry
    /// no key, are then rejected too.
    #[serde(default)]
    pub auth_key: Option<Secret>,
    /// Largest HEP packet and SIP payload accepted (also bounds inflated
    /// compressed payloads).
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    /// Validate every SIP message with `rsip` after normalisation and
    /// reject those it refuses (`sip_invalid`). Makes ingest ~6x slower.
    #[serde(default)]
    pub full_parse: bool,
    /// Caller-leg rules: which Request-URI/To users are queues.
    #[serde(default)]
    pub queues: Vec<QueueRule>,
    /// Agent-leg rules: which To/Request-URI users are agents.
    #[serde(default)]
    pub agents: Vec<AgentRule>,
    /// Header naming the queue on agent legs (e.g. `X-Queue`).
    #[serde(default)]
    pub queue_header: Option<String>,
    /// Header carrying the caller leg's Call-ID on agent legs.
    #[serde(default)]
    pub correlation_header: Option<String>,
    /// Tie agent legs to caller legs by the HEP correlation id chunk.
    #[serde(default = "yes")]
    pub hep_correlation: bool,
    /// Without a correlation, an answered agent leg of a known queue takes
    /// that queue's longest-waiting caller.
    #[serde(default = "yes")]
    pub fifo_fallback: bool,
    /// Read agent phone states from dialog-info NOTIFYs (RFC 4235).
    #[serde(default = "yes")]
    pub blf: bool,
    /// `call_exited` reason when the platform hangs up on a waiting caller.
    #[serde(default = "default_platform_hangup")]
    pub platform_hangup: String,
    /// A leg quiet this long before answer is expired.
    #[serde(default = "default_unanswered_timeout")]
    pub unanswered_timeout: HumanDuration,
    /// A leg quiet this long after answer is expired (lost BYE).
    #[serde(default = "default_answered_timeout")]
    pub answered_timeout: HumanDuration,
    /// At most this many legs are followed at once; more are refused and
    /// counted (`sip_dialog_limit`).
    #[serde(default = "default_max_dialogs")]
    pub max_dialogs: usize,
    /// Static membership: queue → agent ids (`[sources.members]`,
    /// `sales = ["1001", "1002"]`). Reported when the source starts, so an
    /// agent whose phone never rings (do-not-disturb, 486 at once) is still
    /// a member.
    #[serde(default)]
    pub members: std::collections::BTreeMap<String, Vec<String>>,
    /// Append every accepted packet to this file, as HEPv3 (HEPv1/v2
    /// packets are re-encoded), for `acdmon replay --format hep`.
    #[serde(default)]
    pub record: Option<std::path::PathBuf>,
}

fn default_listen_udp() -> String {
    "127.0.0.1:9060".into()
}
fn default_max_packet() -> usize {
    65_535
}
fn yes() -> bool {
    true
}
fn default_platform_hangup() -> String {
    "other".into()
}
fn default_unanswered_timeout() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_answered_timeout() -> HumanDuration {
    HumanDuration::from_secs(8 * 3600)
}
fn default_max_dialogs() -> usize {
    100_000
}

impl Default for HepSourceConfig {
    fn default() -> Self {
        HepSourceConfig {
            listen_udp: default_listen_udp(),
            listen_tcp: None,
            auth_key: None,
            max_packet_bytes: default_max_packet(),
            full_parse: false,
            queues: Vec::new(),
            agents: Vec::new(),
            queue_header: None,
            correlation_header: None,
            hep_correlation: true,
            fifo_fallback: true,
            blf: true,
            platform_hangup: default_platform_hangup(),
            unanswered_timeout: default_unanswered_timeout(),
            answered_timeout: default_answered_timeout(),
            max_dialogs: default_max_dialogs(),
            members: Default::default(),
            record: None,
        }
    }
}

impl HepSourceConfig {
    /// Reads the kind-specific keys of a `[[sources]]` table.
    pub fn from_table(t: &toml::Table) -> Result<Self, String> {
        let c: HepSourceConfig = t
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    /// Checks what serde cannot: patterns compile, the reason is known,
    /// something listens.
    pub fn validate(&self) -> Result<(), String> {
        self.rules()?;
        if self.listen_udp.trim().is_empty() && self.listen_tcp.is_none() {
            return Err("hep source needs `listen_udp` or `listen_tcp`".into());
        }
        if let Some(p) = &self.record {
            if p.as_os_str().is_empty() {
                return Err("`record` is an empty path".into());
            }
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                return Err(format!(
                    "`record` {}: the directory does not exist",
                    p.display()
                ));
            }
        }
        if self.max_packet_bytes < 64 {
            return Err("`max_packet_bytes` must be at least 64".into());
        }
        Ok(())
    }

    pub fn rules(&self) -> Result<MappingRules, String> {
        let platform_hangup = ExitReason::parse(&self.platform_hangup).ok_or_else(|| {
            format!(
                "`platform_hangup` {:?} is not one of timeout, empty, key, transfer, other",
                self.platform_hangup
            )
        })?;
        MappingRules::new(&MappingConfig {
            queues: self.queues.clone(),
            agents: self.agents.clone(),
            queue_header: self.queue_header.clone(),
            correlation_header: self.correlation_header.clone(),
            hep_correlation: self.hep_correlation,
            fifo_fallback: self.fifo_fallback,
            blf: self.blf,
            platform_hangup,
            members: self.members.clone(),
        })
    }

    pub fn limits(&self) -> Limits {
        let max = self.max_packet_bytes.min(65_535);
        Limits {
            max_packet: max,
            max_payload: max,
        }
    }

    pub fn dialog_limits(&self) -> DialogLimits {
        DialogLimits {
            max_legs: self.max_dialogs,
            unanswered_timeout_ms: self.unanswered_timeout.millis().max(1000),
            answered_timeout_ms: self.answered_timeout.millis().max(1000),
            ..DialogLimits::default()
        }
    }

    /// The sans-IO ingest this configuration describes.
    pub fn ingest(&self) -> Result<HepIngest, String> {
        Ok(HepIngest {
            limits: self.limits(),
            auth_key: self.auth_key.clone(),
            sip: SipIngest::new(self.rules()?, self.dialog_limits(), self.full_parse),
            refused_seen: 0,
            clock: None,
            record: self.record.clone(),
            recorded: Vec::new(),
        })
    }
}

/// Recorded bytes held in memory at most (a stalled disk must not grow
/// memory without end; beyond this, packets are not recorded and the task
/// says so).
pub const MAX_RECORD_BUFFER: usize = 8 << 20;

/// HEP packets in, domain events out. Sans-IO; the calling order is
/// [`SipIngest`]'s (`handle_start`, `handle_datagram`/`handle_packet`,
/// `handle_timeout` with the local clock).
#[derive(Debug, Clone)]
pub struct HepIngest {
    limits: Limits,
    auth_key: Option<Secret>,
    sip: SipIngest,
    refused_seen: u64,
    /// The latest capture time seen and the local time it was received:
    /// quiet legs are expired on the senders' clock, advanced by local time
    /// while traffic is quiet, so a sender whose clock is off does not get
    /// its calls expired early (or never).
    clock: Option<(Ts, Ts)>,
    /// Where accepted packets are recorded (see [`HepIngest::take_recorded`]).
    record: Option<std::path::PathBuf>,
    recorded: Vec<u8>,
}

impl HepIngest {
    /// The file packets are recorded to, if any.
    pub fn record_path(&self) -> Option<&std::path::Path> {
        self.record.as_deref()
    }

    /// Stops recording (replay must not record what it reads).
    pub fn stop_recording(&mut self) {
        self.record = None;
        self.recorded = Vec::new();
    }

    /// The packets accepted since the last call, as HEPv3, for the task to
    /// append to the record file.
    pub fn take_recorded(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.recorded)
    }

    /// Re-encodes an accepted packet as HEPv3 (v1/v2 have no length field,
    /// so they cannot be read back to back; v3 can). Keeps what the rules
    /// use: time, addresses, transport, correlation id, payload; the auth
    /// key is the configured one, so a replay with the same configuration
    /// accepts it.
    fn record_packet(&mut self, p: &HepPacket<'_>, ts: Ts) {
        if self.record.is_none() || self.recorded.len() >= MAX_RECORD_BUFFER {
            return;
        }
        let Ok(payload) = p.payload_bytes(self.limits.max_payload) else {
            return;
        };
        let key = self
            .auth_key
            .as_ref()
            .map(|k| k.expose().as_bytes().to_vec());
        let b = packet::HepBuilder {
            src: p.src,
            dst: p.dst,
            ts: Some(ts),
            ip_proto: p.ip_proto.unwrap_or(17),
            proto_type: p.proto_type.unwrap_or(packet::PROTO_SIP),
            capture_id: p.capture_id.unwrap_or(0),
            auth_key: key.as_deref(),
            correlation_id: p.correlation_id,
            compressed: false,
        };
        self.recorded.extend_from_slice(&b.build(&payload));
    }

    /// Reports what is known before any traffic (static members), dated
    /// `now`; the live task calls it when it starts listening.
    pub fn handle_start(&mut self, now: Ts, out: &mut Vec<Event>) {
        self.sip.handle_start(now, out);
    }
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn sip(&self) -> &SipIngest {
        &self.sip
    }

    /// One decoded packet. `received` stands in for the capture time when
    /// the packet has none (HEPv1).
    pub fn handle_packet(
        &mut self,
        p: &HepPacket<'_>,
        received: Ts,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        if let Some(key) = &self.auth_key
            && !p.auth_matches(key.expose().as_bytes())
        {
            let why = if p.auth_key.is_some() {
                "wrong auth key"
            } else {
                "no auth key"
            };
            return Err(Reject::new(
                "hep_auth",
                format!("{why} (HEPv{})", p.version),
            ));
        }
        self.record_packet(p, p.ts.unwrap_or(received));
        if !p.is_sip() {
            return Err(Reject::new(
                "hep_not_sip",
                format!(
                    "HEP protocol type {}",
                    p.proto_type.map_or("?".into(), |t| format!("0x{t:02x}"))
                ),
            ));
        }
        let payload = p
            .payload_bytes(self.limits.max_payload)
            .map_err(|e| e.to_reject())?;
        if !packet::looks_like_sip(&payload) {
            return Err(Reject::new(
                "hep_not_sip",
                "payload does not start with a SIP start line",
            ));
        }
        let cap = Capture {
            ts: p.ts.unwrap_or(received),
            src: p.src,
            dst: p.dst,
        };
        if self.clock.is_none_or(|(seen, _)| cap.ts > seen) {
            self.clock = Some((cap.ts, received));
        }
        let corr = p.correlation_id.map(String::from_utf8_lossy);
        let r = self
            .sip
            .handle_payload(
                &payload,
                &cap,
                corr.as_deref(),
                p.ip_proto.is_some_and(|ip| ip != 17),
                out,
            )
            .map_err(|e| e.to_reject());
        let refused = self.sip.tracker().stats.refused;
        if refused > self.refused_seen {
            self.refused_seen = refused;
            return Err(Reject::new(
                "sip_dialog_limit",
                format!(
                    "already following {} legs; a new call was not followed",
                    self.sip.tracker().len()
                ),
            ));
        }
        r
    }

    /// One UDP datagram.
    pub fn handle_datagram(
        &mut self,
        d: &[u8],
        received: Ts,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let p = packet::parse_datagram(d, &self.limits).map_err(|e| e.to_reject())?;
        self.handle_packet(&p, received, out)
    }

    /// Expires quiet legs. `local_now` is the local wall clock; it is
    /// turned into the senders' time (see `clock`).
    pub fn handle_timeout(&mut self, local_now: Ts, out: &mut Vec<Event>) {
        let now = match self.clock {
            Some((seen, at)) => seen.plus_ms(local_now.since(at)),
            None => return,
        };
        self.sip.handle_timeout(now, out);
    }
}

/// `acdmon replay --format hep`: a recorded HEPv3 stream (packets back to
/// back, e.g. what a TCP sender wrote) replayed on the packets' capture
/// time. Packets without a time (none in HEPv3 from the known senders) are
/// dated with the previous packet's time.
#[derive(Debug)]
pub struct HepReplayDecoder {
    framer: StreamFramer,
    ingest: HepIngest,
    last_ts: Ts,
}

impl HepReplayDecoder {
    pub fn new(cfg: &HepSourceConfig) -> Result<Self, String> {
        let mut ingest = cfg.ingest()?;
        ingest.stop_recording();
        Ok(HepReplayDecoder {
            framer: StreamFramer::new(ingest.limits()),
            ingest,
            last_ts: Ts::ZERO,
        })
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        self.framer.feed(bytes);
        let mut results = Vec::new();
        let mut events = Vec::new();
        while let Some(r) = self.framer.next_packet() {
            match r {
                Ok(p) => {
                    if let Some(ts) = p.ts {
                        self.last_ts = self.last_ts.max(ts);
                    }
                    if let Err(rej) = self.ingest.handle_packet(&p, self.last_ts, &mut events) {
                        results.push(Err(rej));
                    }
                    results.extend(events.drain(..).map(Ok));
                }
                Err(e) => results.push(Err(e.to_reject())),
            }
        }
        results
    }

    /// Bytes left that do not make a packet are reported; open calls stay
    /// open (as of the last packet, they are still waiting or talking).
    pub fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        let n = self.framer.buffered();
        if n > 0 {
            vec![Err(Reject::new(
                "hep_truncated",
                format!("{n} bytes at the end of the input"),
            ))]
        } else {
            Vec::new()
        }
    }
}

/// The replay decoder for `acdmon replay --format hep`: mapping rules from
/// the configuration's first `kind = "hep"` source.
pub fn replay_decoder(cfg: &crate::config::Config) -> Result<HepReplayDecoder, String> {
    let spec = cfg
        .sources
        .iter()
        .find(|s| s.kind == "hep")
        .ok_or("replaying HEP needs a [[sources]] entry with kind = \"hep\" (its mapping rules say which legs are queue calls)")?;
    let hep = match &spec.spec {
        crate::config::SourceSpec::Other(t) => HepSourceConfig::from_table(t)?,
        crate::config::SourceSpec::Json(_) => return Err("hep source has no hep settings".into()),
    };
    HepReplayDecoder::new(&hep)
}

/// Formats a capture address for logs.
pub fn peer(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "?".into(), |a| a.to_string())
}

impl crate::replay::ReplayDecoder for HepReplayDecoder {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        HepReplayDecoder::feed(self, bytes)
    }

    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        HepReplayDecoder::finish(self)
    }
}
