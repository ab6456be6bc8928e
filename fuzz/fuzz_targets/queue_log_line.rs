//! The queue_log decoder (line splitting, fields, both time formats) on
//! arbitrary bytes. Seeds: tests/data/queue_log/*.
#![no_main]

use acdmon::sources::ami::AgentIds;
use acdmon::sources::queue_log::QueueLogReplay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ids = AgentIds::default();
    ids.insert("1001", "PJSIP/1001");
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap_or(jiff::tz::TimeZone::UTC);
    let mut r = QueueLogReplay::new(ids, zone);
    let _ = r.feed(data);
    let _ = r.finish();
});
