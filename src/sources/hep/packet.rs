//! HEP (Homer Encapsulation Protocol) packets, sans-IO.
//!
//! Why hand-written: HEP is a flat TLV format (protocols.md section 3) and the
//! one crate (`hep` 0.1) is young and IPv4-only for v2. Here every field
//! borrows from the datagram or the stream buffer; nothing is allocated
//! unless a payload is compressed.
//!
//! Versions: HEPv3 (`HEP3` magic, u16 total length, chunks) over UDP and TCP,
//! where the total length frames the stream; HEPv1/v2 (no magic, fixed
//! header) over UDP only, since they carry no length. Offsets of v1/v2 are
//! computed from version and address family, never from `hdr_len`, because
//! Kamailio and sofia-sip disagree on what `hdr_len` counts (3.6). The v2
//! time header is 12 bytes on the wire from Kamailio 5.6 (the 10-byte C
//! struct padded; seen in a real capture, tests/data/hep/kamailio_v2), not
//! the 10 protocols.md 3.6 gives; both are accepted.

use std::borrow::Cow;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

use crate::sources::{Reject, RejectReason};
use crate::time::Ts;

/// `HEP3` in network order.
pub const HEP3_MAGIC: &[u8; 4] = b"HEP3";
/// The 2013 draft's magic; treated as v3 (same layout).
const EEP1_MAGIC: &[u8; 4] = b"EEP1";
/// HEP protocol type (chunk 0x000b) of SIP.
pub const PROTO_SIP: u8 = 0x01;
/// Largest decompressed payload accepted, whatever the limits say: a zip
/// bomb in a 64 KB packet stops here.
const HARD_MAX_PAYLOAD: usize = 1 << 20;

/// Size limits. A HEPv3 packet cannot exceed 65535 bytes (u16 length); the
/// payload limit also bounds what a compressed payload may inflate to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_packet: usize,
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet: 65_535,
            max_payload: 65_535,
        }
    }
}

/// Why a packet was refused. [`HepError::reason`] is the reject counter label.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HepError {
    #[error("not a HEP packet (first bytes {0:02x?})")]
    NotHep(Vec<u8>),
    #[error("truncated HEP packet: {0}")]
    Truncated(&'static str),
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("bad HEP chunk 0x{vendor:04x}/0x{kind:04x}: {why}")]
    BadChunk {
        vendor: u16,
        kind: u16,
        why: &'static str,
    },
    #[error("unsupported address family {0}")]
    Family(u8),
    #[error("HEPv1/v2 cannot be framed on a stream (no length field)")]
    V2OnStream,
    #[error("compressed payload could not be inflated: {0}")]
    Inflate(String),
    #[error("packet carries no payload")]
    NoPayload,
}

impl HepError {
    pub fn reason(&self) -> RejectReason {
        match self {
            HepError::NotHep(_) => RejectReason::HepNotHep,
            HepError::Truncated(_) => RejectReason::HepTruncated,
            HepError::TooLarge { .. } => RejectReason::HepTooLarge,
            HepError::BadChunk { .. } | HepError::Family(_) => RejectReason::HepBadChunk,
            HepError::V2OnStream => RejectReason::HepNotHep,
            HepError::Inflate(_) => RejectReason::HepBadPayload,
            HepError::NoPayload => RejectReason::HepNoPayload,
        }
    }

    pub fn to_reject(&self) -> Reject {
        Reject::new(self.reason(), self.to_string())
    }
}

/// The captured payload as carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Plain(&'a [u8]),
    /// Chunk 0x0010: gzip, zlib or raw deflate (senders differ).
    Compressed(&'a [u8]),
}

/// One decoded HEP packet. Fields the sender did not send are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HepPacket<'a> {
    /// 1, 2 or 3.
    pub version: u8,
    pub ip_proto: Option<u8>,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// Capture time from the sender (v2: time header; v3: chunks 9 and 10).
    pub ts: Option<Ts>,
    /// Chunk 0x000b; v1/v2 carry SIP only.
    pub proto_type: Option<u8>,
    pub capture_id: Option<u32>,
    /// Chunk 0x000e, plain text.
    pub auth_key: Option<&'a [u8]>,
    /// Chunk 0x0011: ties B2BUA legs together when the sender sets it.
    pub correlation_id: Option<&'a [u8]>,
    /// Chunk 0x0013.
    pub agent_name: Option<&'a [u8]>,
    pub payload: Payload<'a>,
}

impl<'a> HepPacket<'a> {
    /// The payload as plain bytes, inflating a compressed one within
    /// `max_payload` bytes.
    pub fn payload_bytes(&self, max_payload: usize) -> Result<Cow<'a, [u8]>, HepError> {
        match self.payload {
            Payload::Plain(p) => Ok(Cow::Borrowed(p)),
            Payload::Compressed(z) => inflate(z, max_payload.min(HARD_MAX_PAYLOAD)).map(Cow::Owned),
        }
    }

    /// Whether the payload is SIP: by the protocol type chunk when present,
    /// else by the look of the first line (v1/v2, or v3 senders that omit
    /// chunk 0x000b).
    pub fn is_sip(&self) -> bool {
        match self.proto_type {
            Some(t) => t == PROTO_SIP,
            None => match self.payload {
                Payload::Plain(p) => looks_like_sip(p),
                Payload::Compressed(_) => true,
            },
        }
    }

    /// Constant-time comparison of the auth key chunk with `key`.
    pub fn auth_matches(&self, key: &[u8]) -> bool {
        let Some(got) = self.auth_key else {
            return false;
        };
        // Senders written in C may include the terminating NUL.
        let got = got.strip_suffix(&[0]).unwrap_or(got);
        crate::config::ct_eq(got, key)
    }
}

/// A SIP start line begins with `SIP/2.0 ` (response) or a method token
/// followed by a space and a URI scheme (request).
pub fn looks_like_sip(p: &[u8]) -> bool {
    if p.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let Some(sp) = p.iter().take(32).position(|&b| b == b' ') else {
        return false;
    };
    sp > 0
        && p[..sp]
            .iter()
            .all(|b| b.is_ascii_alphabetic() || *b == b'-' || *b == b'_')
        && p[sp + 1..].iter().take(64).any(|&b| b == b':')
}

fn inflate(z: &[u8], max: usize) -> Result<Vec<u8>, HepError> {
    let mut out = Vec::new();
    let limit = max as u64 + 1;
    let r = if z.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(z)
            .take(limit)
            .read_to_end(&mut out)
    } else if z.len() >= 2
        && (z[0] & 0x0f) == 8
        && (u16::from(z[0]) << 8 | u16::from(z[1])) % 31 == 0
    {
        flate2::read::ZlibDecoder::new(z)
            .take(limit)
            .read_to_end(&mut out)
    } else {
        flate2::read::DeflateDecoder::new(z)
            .take(limit)
            .read_to_end(&mut out)
    };
    r.map_err(|e| HepError::Inflate(e.to_string()))?;
    if out.len() > max {
        return Err(HepError::TooLarge {
            len: out.len(),
            max,
        });
    }
    Ok(out)
}

/// Parses one UDP datagram: HEPv3, or HEPv1/v2.
pub fn parse_datagram<'a>(buf: &'a [u8], limits: &Limits) -> Result<HepPacket<'a>, HepError> {
    if buf.len() > limits.max_packet {
        return Err(HepError::TooLarge {
            len: buf.len(),
            max: limits.max_packet,
        });
    }
    if buf.len() >= 4 && (&buf[..4] == HEP3_MAGIC || &buf[..4] == EEP1_MAGIC) {
        match parse_v3(buf, limits)? {
            Some((p, _)) => Ok(p),
            None => Err(HepError::Truncated(
                "datagram shorter than its length field",
            )),
        }
    } else if matches!(buf.first(), Some(1 | 2)) {
        parse_v12(buf, limits)
    } else {
        Err(HepError::NotHep(buf.iter().take(4).copied().collect()))
    }
}

/// Parses one HEPv3 packet at the start of `buf`. `Ok(None)` means more
/// bytes are needed; `Ok(Some((packet, used)))` consumed `used` bytes.
pub fn parse_v3<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(HepPacket<'a>, usize)>, HepError> {
    if buf.len() < 6 {
        if !HEP3_MAGIC.starts_with(&buf[..buf.len().min(4)])
            && !EEP1_MAGIC.starts_with(&buf[..buf.len().min(4)])
        {
            return Err(HepError::NotHep(buf.to_vec()));
        }
        return Ok(None);
    }
    if &buf[..4] != HEP3_MAGIC && &buf[..4] != EEP1_MAGIC {
        return Err(HepError::NotHep(buf[..4].to_vec()));
    }
    let total = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    if total < 6 {
        return Err(HepError::Truncated("total length below header size"));
    }
    if total > limits.max_packet {
        return Err(HepError::TooLarge {
            len: total,
            max: limits.max_packet,
        });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mut p = HepPacket {
        version: 3,
        ip_proto: None,
        src: None,
        dst: None,
        ts: None,
        proto_type: None,
        capture_id: None,
        auth_key: None,
        correlation_id: None,
        agent_name: None,
        payload: Payload::Plain(&[]),
    };
    let mut have_payload = false;
    let (mut src_ip, mut dst_ip): (Option<IpAddr>, Option<IpAddr>) = (None, None);
    let (mut sport, mut dport): (Option<u16>, Option<u16>) = (None, None);
    let (mut secs, mut usecs): (Option<u32>, Option<u32>) = (None, None);
    let mut rest = &buf[6..total];
    while !rest.is_empty() {
        if rest.len() < 6 {
            return Err(HepError::Truncated("chunk header"));
        }
        let vendor = u16::from_be_bytes([rest[0], rest[1]]);
        let kind = u16::from_be_bytes([rest[2], rest[3]]);
        let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        if len < 6 {
            return Err(HepError::BadChunk {
                vendor,
                kind,
                why: "length below chunk header size",
            });
        }
        if len > rest.len() {
            return Err(HepError::BadChunk {
                vendor,
                kind,
                why: "length beyond the packet",
            });
        }
        let v = &rest[6..len];
        rest = &rest[len..];
        if vendor != 0 {
            // Vendor chunks are skipped, as Kamailio's receiver does.
            continue;
        }
        let bad = |why| HepError::BadChunk { vendor, kind, why };
        match kind {
            0x0002 => p.ip_proto = Some(*v.first().ok_or(bad("empty"))?),
            0x0003 | 0x0004 => {
                let a: [u8; 4] = v
                    .try_into()
                    .map_err(|_| bad("IPv4 address is not 4 bytes"))?;
                let ip = Some(IpAddr::V4(Ipv4Addr::from(a)));
                if kind == 3 { src_ip = ip } else { dst_ip = ip }
            }
            0x0005 | 0x0006 => {
                let a: [u8; 16] = v
                    .try_into()
                    .map_err(|_| bad("IPv6 address is not 16 bytes"))?;
                let ip = Some(IpAddr::V6(Ipv6Addr::from(a)));
                if kind == 5 { src_ip = ip } else { dst_ip = ip }
            }
            0x0007 | 0x0008 => {
                let a: [u8; 2] = v.try_into().map_err(|_| bad("port is not 2 bytes"))?;
                let port = Some(u16::from_be_bytes(a));
                if kind == 7 {
                    sport = port
                } else {
                    dport = port
                }
            }
            0x0009 => secs = Some(be_u32(v).ok_or(bad("seconds are not 4 bytes"))?),
            0x000a => usecs = Some(be_u32(v).ok_or(bad("microseconds are not 4 bytes"))?),
            0x000b => p.proto_type = Some(*v.first().ok_or(bad("empty"))?),
            0x000c => p.capture_id = Some(be_u32(v).ok_or(bad("capture id is not 4 bytes"))?),
            0x000e => p.auth_key = Some(v),
            0x000f | 0x0010 => {
                if v.len() > limits.max_payload {
                    return Err(HepError::TooLarge {
                        len: v.len(),
                        max: limits.max_payload,
                    });
                }
                p.payload = if kind == 0x000f {
                    Payload::Plain(v)
                } else {
                    Payload::Compressed(v)
                };
                have_payload = true;
            }
            0x0011 => p.correlation_id = Some(v),
            0x0013 => p.agent_name = Some(v),
            _ => {}
        }
    }
    if !have_payload {
        return Err(HepError::NoPayload);
    }
    p.src = src_ip.map(|ip| SocketAddr::new(ip, sport.unwrap_or(0)));
    p.dst = dst_ip.map(|ip| SocketAddr::new(ip, dport.unwrap_or(0)));
    if let Some(s) = secs {
        let us = i64::from(usecs.unwrap_or(0).min(999_999));
        p.ts = Some(Ts(i64::from(s) * 1000 + us / 1000));
    }
    Ok(Some((p, total)))
}

fn be_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// AF_INET is 2 everywhere; AF_INET6 is 10 on Linux, 28 on FreeBSD, 30 on
/// macOS. v1/v2 senders write their own OS's value.
fn family_len(f: u8) -> Option<usize> {
    match f {
        2 => Some(4),
        10 | 28 | 30 => Some(16),
        _ => None,
    }
}

fn parse_v12<'a>(buf: &'a [u8], limits: &Limits) -> Result<HepPacket<'a>, HepError> {
    if buf.len() < 8 {
        return Err(HepError::Truncated("HEPv1/v2 header"));
    }
    let version = buf[0];
    let family = buf[2];
    let alen = family_len(family).ok_or(HepError::Family(family))?;
    let sport = u16::from_be_bytes([buf[4], buf[5]]);
    let dport = u16::from_be_bytes([buf[6], buf[7]]);
    let mut off = 8;
    if buf.len() < off + 2 * alen {
        return Err(HepError::Truncated("HEPv1/v2 addresses"));
    }
    let ip = |b: &[u8]| -> IpAddr {
        if alen == 4 {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    };
    let src = SocketAddr::new(ip(&buf[off..off + alen]), sport);
    let dst = SocketAddr::new(ip(&buf[off + alen..off + 2 * alen]), dport);
    off += 2 * alen;
    let mut ts = None;
    let mut capture_id = None;
    if version == 2 {
        if buf.len() < off + 10 {
            return Err(HepError::Truncated("HEPv2 time header"));
        }
        let t = &buf[off..off + 10];
        let (secs, usecs) = v2_time(t);
        ts = Some(Ts(
            i64::from(secs) * 1000 + i64::from(usecs.min(999_999)) / 1000
        ));
        capture_id = Some(u32::from(u16::from_le_bytes([t[8], t[9]])));
        // The C struct (u32, u32, u16) is padded to 12 bytes, and Kamailio
        // and sofia-sip send `sizeof`: 2 padding bytes follow. A sender that
        // packs the struct sends 10; take whichever leaves a SIP start line.
        off += if buf.len() >= off + 12
            && (looks_like_sip(&buf[off + 12..]) || !looks_like_sip(&buf[off + 10..]))
        {
            12
        } else {
            10
        };
    }
    let payload = &buf[off..];
    if payload.is_empty() {
        return Err(HepError::NoPayload);
    }
    if payload.len() > limits.max_payload {
        return Err(HepError::TooLarge {
            len: payload.len(),
            max: limits.max_payload,
        });
    }
    Ok(HepPacket {
        version,
        ip_proto: Some(buf[3]),
        src: Some(src),
        dst: Some(dst),
        ts,
        proto_type: None,
        capture_id,
        auth_key: None,
        correlation_id: None,
        agent_name: None,
        payload: Payload::Plain(payload),
    })
}

/// Kamailio writes the v2 time fields little-endian (`to_le`), other senders
/// may use network order: take the reading that gives a plausible time
/// (2001..2100), preferring little-endian.
fn v2_time(t: &[u8]) -> (u32, u32) {
    const MIN: u32 = 978_307_200; // 2001-01-01
    const MAX: u32 = 4_102_444_800u64 as u32; // 2100-01-01
    let le = (
        u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
        u32::from_le_bytes([t[4], t[5], t[6], t[7]]),
    );
    let be = (
        u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
        u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
    );
    if (MIN..MAX).contains(&le.0) || !(MIN..MAX).contains(&be.0) {
        le
    } else {
        be
    }
}

/// Frames HEPv3 packets on a byte stream (TCP) by their total length.
///
/// Bytes that are not HEPv3 are skipped up to the next `HEP3` magic, and each
/// such skip is reported once, so a peer that sends garbage loses that
/// garbage only. Buffer growth is bounded by one packet (64 KB).
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Bytes at the front already handed out (consumed on the next call).
    consumed: usize,
    limits: Limits,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: Vec::new(),
            consumed: 0,
            limits,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
    }

    /// The bytes of the packet the last `next_packet` returned (valid until
    /// the next call).
    pub fn last_packet(&self) -> &[u8] {
        &self.buf[..self.consumed]
    }

    /// Bytes received but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next complete packet, an error for skipped bytes, or `None` when
    /// more bytes are needed.
    pub fn next_packet(&mut self) -> Option<Result<HepPacket<'_>, HepError>> {
        self.compact();
        if self.buf.is_empty() {
            return None;
        }
        let buf = &self.buf[..];
        match parse_v3(buf, &self.limits) {
            Ok(None) => None,
            Ok(Some((p, used))) => {
                self.consumed = used;
                Some(Ok(p))
            }
            Err(e) => {
                // A packet with a valid header but bad content is dropped
                // whole; otherwise skip to the next magic after the first
                // byte, keeping the last 3 bytes when there is none (a magic
                // may straddle two reads).
                let skip = match (&e, declared_len(buf)) {
                    (
                        HepError::BadChunk { .. }
                        | HepError::NoPayload
                        | HepError::TooLarge { .. }
                        | HepError::Truncated(_),
                        Some(n),
                    ) if n >= 6 => n,
                    _ => memchr::memmem::find(&buf[1..], HEP3_MAGIC)
                        .map(|i| i + 1)
                        .unwrap_or_else(|| buf.len().saturating_sub(3).max(1)),
                };
                self.consumed = skip.min(buf.len());
                Some(Err(e))
            }
        }
    }
}

/// The total length of a HEPv3 packet at the start of `buf`, when the whole
/// packet is there.
fn declared_len(buf: &[u8]) -> Option<usize> {
    if buf.len() >= 6 && &buf[..4] == HEP3_MAGIC {
        let n = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        (n <= buf.len()).then_some(n)
    } else {
        None
    }
}

/// Builds HEPv3 packets: for tests, benches, fuzz seeds and the replay
/// recorder. Chunk order follows Kamailio.
#[derive(Debug, Clone, Default)]
pub struct HepBuilder<'a> {
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    pub ts: Option<Ts>,
    pub ip_proto: u8,
    pub proto_type: u8,
    pub capture_id: u32,
    pub auth_key: Option<&'a [u8]>,
    pub correlation_id: Option<&'a [u8]>,
    pub compressed: bool,
}

impl<'a> HepBuilder<'a> {
    pub fn sip(src: SocketAddr, dst: SocketAddr, ts: Ts) -> Self {
        HepBuilder {
            src: Some(src),
            dst: Some(dst),
            ts: Some(ts),
            ip_proto: 17,
            proto_type: PROTO_SIP,
            capture_id: 1,
            ..Default::default()
        }
    }

    /// Encodes a HEPv3 packet around `payload` (which must fit in 64 KB).
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: u16, v: &[u8]) {
            out.extend_from_slice(&0u16.to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&((v.len() + 6) as u16).to_be_bytes());
            out.extend_from_slice(v);
        }
        let mut out = Vec::with_capacity(payload.len() + 128);
        out.extend_from_slice(HEP3_MAGIC);
        out.extend_from_slice(&[0, 0]);
        let fam = match self.src {
            Some(SocketAddr::V6(_)) => 10,
            _ => 2,
        };
        chunk(&mut out, 1, &[fam]);
        chunk(&mut out, 2, &[self.ip_proto]);
        for (addr, ipk, portk) in [(self.src, 3u16, 7u16), (self.dst, 4, 8)] {
            if let Some(a) = addr {
                match a.ip() {
                    IpAddr::V4(ip) => chunk(&mut out, ipk, &ip.octets()),
                    IpAddr::V6(ip) => chunk(&mut out, ipk + 2, &ip.octets()),
                }
                chunk(&mut out, portk, &a.port().to_be_bytes());
            }
        }
        if let Some(ts) = self.ts {
            let ms = ts.millis().max(0);
            chunk(&mut out, 9, &((ms / 1000) as u32).to_be_bytes());
            chunk(&mut out, 10, &(((ms % 1000) * 1000) as u32).to_be_bytes());
        }
        chunk(&mut out, 0x0b, &[self.proto_type]);
        chunk(&mut out, 0x0c, &self.capture_id.to_be_bytes());
        if let Some(k) = self.auth_key {
            chunk(&mut out, 0x0e, k);
        }
        if self.compressed {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = z.write_all(payload);
            let zipped = z.finish().unwrap_or_default();
            chunk(&mut out, 0x10, &zipped);
        } else {
            chunk(&mut out, 0x0f, payload);
        }
        if let Some(c) = self.correlation_id {
            chunk(&mut out, 0x11, c);
        }
        let total = out.len().min(usize::from(u16::MAX)) as u16;
        out[4..6].copy_from_slice(&total.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests;
