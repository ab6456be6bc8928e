//! HEP+SIP ingest speed on one core, with baselines measured in the same
//! run over the same bytes:
//! - `baseline/memchr_lines`: finding every line end and the blank line of
//!   each message with `memchr` (the least any SIP reader must do);
//! - `rsip/*`: `rsip` 0.4's full parse of the same messages, raw and after
//!   our normalisation (what a full-parse hot path would cost);
//! - `reader/*`: the hot-path reader alone, then HEP decode + reader;
//! - `ingest/calls`: the whole collector (HEP decode, reader, dialog
//!   tracker, mapping) over realistic calls as a mirroring proxy reports
//!   them (each message twice), events included.
//!
//! Run: `cargo bench --bench hep` (add `-- --quick` for a fast look).

use std::hint::black_box;
use std::net::SocketAddr;

use acdmon::sources::hep::HepSourceConfig;
use acdmon::sources::hep::packet::{HepBuilder, Limits, parse_datagram};
use acdmon::sources::sip::full;
use acdmon::sources::sip::mapping::{AgentRule, AnswerMode, QueueRule, UserFrom};
use acdmon::sources::sip::message::SipMessage;
use acdmon::time::Ts;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const SDP: &str = "v=0\r\no=root 1955 1955 IN IP4 10.0.0.20\r\ns=Asterisk PBX 20.5.0\r\nc=IN IP4 10.0.0.20\r\nt=0 0\r\n\
m=audio 14212 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// One call's messages (INVITE, 100, 180, 200, ACK, BYE, 200), as a PBX
/// writes them: the INVITE and 200 carry SDP (the INVITE is ~1 KB).
fn call(id: usize) -> Vec<(bool, String)> {
    let cid = format!("{id:08x}-7dj0q1gzwkbn@10.0.0.20");
    let via = "Via: SIP/2.0/UDP 10.0.0.20:5060;rport;branch=z9hG4bKPj5a4f0a6c-1b2f-4e0e-9a53-5d1f6d0b3c1e";
    let from = "From: \"Caller\" <sip:+4930123456@10.0.0.20>;tag=as58f4201b";
    let to = "To: <sip:8001@10.0.0.5>";
    let to_t = "To: <sip:8001@10.0.0.5>;tag=8f3a2b";
    let common = "Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER\r\n\
                  Supported: 100rel, timer, replaces, norefersub\r\nUser-Agent: Asterisk PBX 20.5.0\r\n";
    let inv = format!(
        "INVITE sip:8001@10.0.0.5:5060 SIP/2.0\r\n{via}\r\n{from}\r\n{to}\r\nContact: <sip:asterisk@10.0.0.20:5060>\r\n\
         Call-ID: {cid}\r\nCSeq: 102 INVITE\r\n{common}Session-Expires: 1800\r\nMin-SE: 90\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let resp = |code: &str, to: &str, body: bool| {
        let b = if body { SDP } else { "" };
        let ct = if body {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        format!(
            "SIP/2.0 {code}\r\n{via};received=10.0.0.20\r\n{from}\r\n{to}\r\nCall-ID: {cid}\r\nCSeq: 102 INVITE\r\n\
             Contact: <sip:8001@10.0.0.5:5060>\r\n{common}{ct}Content-Length: {}\r\n\r\n{b}",
            b.len()
        )
    };
    let req = |m: &str, n: u32| {
        format!(
            "{m} sip:8001@10.0.0.5:5060 SIP/2.0\r\n{via}\r\n{from}\r\n{to_t}\r\nCall-ID: {cid}\r\nCSeq: {n} {m}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    vec![
        (true, inv),
        (false, resp("100 Trying", to, false)),
        (false, resp("180 Ringing", to_t, false)),
        (false, resp("200 OK", to_t, true)),
        (true, req("ACK", 102)),
        (true, req("BYE", 103)),
        (
            false,
            resp("200 OK", to_t, false).replace("CSeq: 102 INVITE", "CSeq: 103 BYE"),
        ),
    ]
}

fn config() -> HepSourceConfig {
    HepSourceConfig {
        queues: vec![QueueRule {
            pattern: "^8\\d{3}$".into(),
            queue: None,
            match_on: UserFrom::RequestUri,
            answer: AnswerMode::Platform,
        }],
        agents: vec![AgentRule {
            pattern: "^1\\d{3}$".into(),
            agent: None,
            match_on: UserFrom::To,
        }],
        ..HepSourceConfig::default()
    }
}

fn bench(c: &mut Criterion) {
    let caller: SocketAddr = "10.0.0.20:5060".parse().unwrap();
    let proxy: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let platform: SocketAddr = "10.0.0.5:5060".parse().unwrap();
    let one_call = call(1);
    let sips: Vec<Vec<u8>> = one_call
        .iter()
        .map(|(_, s)| s.clone().into_bytes())
        .collect();
    let sip_bytes: usize = sips.iter().map(Vec::len).sum();
    let heps: Vec<Vec<u8>> = sips
        .iter()
        .map(|s| HepBuilder::sip(caller, proxy, Ts(1_767_225_600_000)).build(s))
        .collect();
    let limits = Limits::default();

    let mut g = c.benchmark_group("per_message");
    g.throughput(Throughput::Elements(sips.len() as u64));
    g.bench_function("baseline/memchr_lines", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in &sips {
                n += memchr::memchr_iter(b'\n', black_box(s)).count();
                n += memchr::memmem::find(s, b"\r\n\r\n").unwrap_or(0);
            }
            n
        })
    });
    g.bench_function("reader/sip", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in &sips {
                let m = SipMessage::parse(black_box(s)).unwrap();
                n += m.cseq_num as usize
                    + m.to().tag.map_or(0, str::len)
                    + m.from().tag.map_or(0, str::len);
                n += m.request_user().map_or(0, str::len) + m.call_id.len();
            }
            n
        })
    });
    g.bench_function("reader/hep+sip", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for h in &heps {
                let p = parse_datagram(black_box(h), &limits).unwrap();
                let payload = p.payload_bytes(65_535).unwrap();
                let m = SipMessage::parse(&payload).unwrap();
                n += m.cseq_num as usize + m.to().tag.map_or(0, str::len) + m.call_id.len();
            }
            n
        })
    });
    g.bench_function("rsip/raw", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in &sips {
                let m = full::parse_raw(black_box(s)).unwrap();
                n += rsip::message::HasHeaders::headers(&m).iter().count();
            }
            n
        })
    });
    g.bench_function("rsip/normalized", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for s in &sips {
                let m = full::parse(black_box(s)).unwrap();
                n += rsip::message::HasHeaders::headers(&m).iter().count();
            }
            n
        })
    });
    g.bench_function("rsip/raw+typed_fields", |b| {
        use rsip::prelude::*;
        b.iter(|| {
            let mut n = 0usize;
            for s in &sips {
                let m = full::parse_raw(black_box(s)).unwrap();
                n += m.call_id_header().unwrap().value().len();
                n += m.cseq_header().unwrap().typed().unwrap().seq as usize;
                n += m.to_header().unwrap().typed().unwrap().params.len();
                n += m.from_header().unwrap().typed().unwrap().params.len();
            }
            n
        })
    });
    g.finish();

    // Whole collector over 500 calls, each message mirrored twice (proxy in
    // and out), so half the messages are repeats the tracker absorbs.
    let calls = 500;
    let mut packets = Vec::new();
    for i in 0..calls {
        for (k, (from_caller, s)) in call(i).into_iter().enumerate() {
            let ts = Ts(1_767_225_600_000 + i as i64 * 10 + k as i64);
            let (a, b) = if from_caller {
                (caller, proxy)
            } else {
                (platform, proxy)
            };
            packets.push(HepBuilder::sip(a, b, ts).build(s.as_bytes()));
            let (a, b) = if from_caller {
                (proxy, platform)
            } else {
                (proxy, caller)
            };
            packets.push(HepBuilder::sip(a, b, ts).build(s.as_bytes()));
        }
    }
    let cfg = config();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function("calls", |b| {
        b.iter_batched(
            || cfg.ingest().unwrap(),
            |mut ingest| {
                let mut events = Vec::with_capacity(2048);
                for p in &packets {
                    let _ = ingest.handle_datagram(black_box(p), Ts(0), &mut events);
                }
                assert_eq!(events.len(), calls * 2, "enqueued + completed per call");
                events.len()
            },
            BatchSize::LargeInput,
        )
    });
    let mut full_cfg = config();
    full_cfg.full_parse = true;
    g.bench_function("calls_full_parse", |b| {
        b.iter_batched(
            || full_cfg.ingest().unwrap(),
            |mut ingest| {
                let mut events = Vec::with_capacity(2048);
                for p in &packets {
                    let _ = ingest.handle_datagram(black_box(p), Ts(0), &mut events);
                }
                events.len()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    eprintln!(
        "one call: {} messages, {} SIP bytes (INVITE {} bytes)",
        sips.len(),
        sip_bytes,
        sips[0].len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
