//! A whole AMI transcript decoder (parser, mapping, resync, tracker) on
//! arbitrary bytes. Seeds: tests/data/ami/*.ami.
#![no_main]

use acdmon::sources::ami::{AgentIds, AmiReplay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = AmiReplay::new(AgentIds::default());
    for piece in data.chunks(97) {
        let _ = r.feed(piece);
    }
    let _ = r.finish();
});
