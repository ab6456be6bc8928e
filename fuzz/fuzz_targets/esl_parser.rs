//! Arbitrary bytes through the whole ESL path: framer, message decoding,
//! session (auth, resync, lists, gap checks) and mapping, split into two
//! reads at a point the input chooses. Nothing may panic.

#![no_main]

use acdmon::sources::esl::EslReplay;
use acdmon::sources::esl::lists;
use acdmon::sources::esl::parser::{Framer, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut d = EslReplay::new();
    let _ = d.feed(&data[..cut]);
    let _ = d.feed(&data[cut..]);
    let _ = d.finish();

    let mut f = Framer::default();
    let mut rest = data;
    loop {
        let n = match f.next(rest) {
            Parse::NeedMore => break,
            Parse::Skip(_, n) => n,
            Parse::Frame(fr, n) => {
                let _ = fr.message();
                n
            }
        };
        assert!(n > 0, "the framer must make progress");
        rest = &rest[n..];
    }

    let text = String::from_utf8_lossy(data);
    let _ = lists::agents(&text);
    let _ = lists::members(&text);
    let _ = lists::tiers(&text);
    let _ = lists::queue_names(&text);
});
