//! The HEP collector source (`kind = "hep"`): Kamailio, OpenSIPS, Asterisk,
//! FreeSWITCH and capture agents mirror SIP to it, and it derives queue
//! events from the dialogs (see [`crate::sources::sip`]).
//!
//! Layers: [`packet`] decodes HEP (sans-IO), [`HepIngest`] checks the auth
//! key and the payload type and hands SIP to [`SipIngest`], [`task`] owns
//! the UDP and TCP listeners. [`replay`] ([`HepReplayDecoder`]) replays a recorded HEPv3
//! stream (packets back to back, as a TCP capture would send them) on event
//! time.

pub mod drops;
pub mod packet;
pub mod replay;
pub mod task;

use std::net::SocketAddr;

use crate::config::Secret;
use crate::event::Event;
use crate::sources::sip::SipIngest;
use crate::sources::sip::dialog::{Capture, DialogLimits};
use crate::sources::sip::mapping::{MappingConfig, MappingRules};
use crate::sources::{Reject, RejectReason};
use crate::time::Ts;
use packet::{HepPacket, Limits};

pub use crate::config::HepSourceConfig;
pub use replay::{HepReplayDecoder, replay_decoder};
pub use task::spawn;

impl HepSourceConfig {
    /// The compiled mapping rules.
    pub fn rules(&self) -> Result<MappingRules, String> {
        let platform_hangup = self.platform_hangup()?;
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
                RejectReason::HepAuth,
                format!("{why} (HEPv{})", p.version),
            ));
        }
        self.record_packet(p, p.ts.unwrap_or(received));
        if !p.is_sip() {
            return Err(Reject::new(
                RejectReason::HepNotSip,
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
                RejectReason::HepNotSip,
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
                RejectReason::SipDialogLimit,
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

/// Formats a capture address for logs.
pub fn peer(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "?".into(), |a| a.to_string())
}
