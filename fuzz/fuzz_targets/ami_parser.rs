//! The AMI framer on arbitrary bytes, split at arbitrary points: it must
//! never panic, always make progress, and never report more bytes consumed
//! than it was given.
#![no_main]

use acdmon::sources::ami::parser::{Item, Parser, MAX_HEADERS, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let step = (split as usize % 64) + 1;
    let mut p = Parser::new();
    let mut buf: Vec<u8> = Vec::new();
    for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            let len = buf.len();
            let (n, item) = p.parse(&buf);
            assert!(n <= len);
            let done = item.is_none();
            if let Some(Item::Message(m)) = &item {
                assert!(m.len() <= MAX_HEADERS);
                for (k, v) in m.headers() {
                    assert!(k.len() + v.len() <= MAX_LINE);
                }
            }
            buf.drain(..n);
            if done {
                break;
            }
        }
        // Bounded buffering: a pending block is at most MAX_HEADERS lines.
        assert!(buf.len() <= (MAX_HEADERS + 1) * (MAX_LINE + 2));
    }
});
