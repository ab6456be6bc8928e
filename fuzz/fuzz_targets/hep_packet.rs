//! HEP datagrams and TCP streams, all the way through the collector (HEP
//! decode, SIP reader, dialog tracker, mapping): nothing may panic.
#![no_main]

use std::sync::OnceLock;

use acdmon::sources::hep::{HepIngest, HepSourceConfig};
use acdmon::sources::hep::packet::{Limits, StreamFramer};
use acdmon::sources::sip::mapping::{AgentRule, AnswerMode, QueueRule, UserFrom};
use acdmon::time::Ts;
use libfuzzer_sys::fuzz_target;

fn config() -> HepSourceConfig {
    HepSourceConfig {
        queues: vec![QueueRule {
            pattern: "^8".into(),
            queue: None,
            match_on: UserFrom::RequestUri,
            answer: AnswerMode::EarlyMedia,
        }],
        agents: vec![AgentRule {
            pattern: "^1".into(),
            agent: None,
            match_on: UserFrom::To,
        }],
        queue_header: Some("X-Queue".into()),
        correlation_header: Some("X-Call-Ref".into()),
        ..HepSourceConfig::default()
    }
}

/// Compiled once (regexes); each run starts from a fresh clone.
static TEMPLATE: OnceLock<HepIngest> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mut ingest = TEMPLATE
        .get_or_init(|| config().ingest().expect("static config"))
        .clone();
    let mut events = Vec::new();
    // As one datagram.
    let _ = ingest.handle_datagram(data, Ts(1_000), &mut events);
    // As a TCP stream, split at a point the input chooses.
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut f = StreamFramer::new(Limits::default());
    for part in [&data[..split], &data[split..]] {
        f.feed(part);
        while let Some(r) = f.next_packet() {
            if let Ok(p) = r {
                let _ = ingest.handle_packet(&p, Ts(2_000), &mut events);
            }
        }
    }
    ingest.handle_timeout(Ts(i64::from(u32::MAX) * 1000), &mut events);
});
