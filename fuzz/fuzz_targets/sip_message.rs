//! SIP messages: the hot-path reader and every accessor, the normaliser and
//! rsip behind it, dialog-info bodies, and the ingest pipeline. Nothing may
//! panic.
#![no_main]

use acdmon::sources::sip::dialog::{Capture, DialogLimits};
use acdmon::sources::sip::mapping::{MappingConfig, MappingRules, QueueRule, UserFrom, AnswerMode};
use acdmon::sources::sip::message::SipMessage;
use acdmon::sources::sip::{SipIngest, dialog_info, full};
use acdmon::time::Ts;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Compiled once (regexes); each run starts from a fresh clone.
static RULES: OnceLock<MappingRules> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SipMessage::parse(data) {
        let _ = (m.method(), m.status(), m.request_user(), m.is_initial_invite());
        let _ = (m.from().user(), m.from().tag, m.to().user(), m.to().tag);
        let _ = m.contact().and_then(|c| c.user());
        let _ = m.cseq_method();
        let _ = m.header("X-Queue");
        let _ = m.headers().count();
        let _ = full::normalize(&m);
        let _ = full::parse_read(&m);
        let _ = dialog_info::parse(m.body);
    }
    let _ = dialog_info::parse(data);
    let rules = RULES
        .get_or_init(|| {
            MappingRules::new(&MappingConfig {
                queues: vec![QueueRule {
                    pattern: ".".into(),
                    queue: None,
                    match_on: UserFrom::To,
                    answer: AnswerMode::Platform,
                }],
                ..MappingConfig::default()
            })
            .expect("static rules")
        })
        .clone();
    let mut ingest = SipIngest::new(rules, DialogLimits::default(), false);
    let cap = Capture {
        ts: Ts(0),
        src: None,
        dst: None,
    };
    let mut events = Vec::new();
    let _ = ingest.handle_payload(data, &cap, Some("corr"), true, &mut events);
    let _ = ingest.handle_payload(data, &cap, None, false, &mut events);
});
