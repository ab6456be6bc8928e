//! The native JSON-lines feed as `POST /api/v1/events` and the TCP feed read
//! it: the line splitter ([`LineDecoder`], fed in arbitrary chunks, as a
//! body streams in) and the line decoder. Checks, beyond "no panic":
//! chunking does not change the result, line numbers only grow, and every
//! accepted event survives an encode/decode round trip. Seeds:
//! tests/data/json/*; dictionary fuzz/dict/json_ingest.dict (absurd
//! timestamps among others).
#![no_main]

use acdmon::sources::json::{LineDecoder, decode_line, encode};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], chunk: usize) -> Vec<(u64, Result<acdmon::event::Event, &'static str>)> {
    let mut dec = LineDecoder::new();
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        dec.feed(c, &mut out);
    }
    dec.finish(&mut out);
    out.into_iter()
        .map(|(n, r)| (n, r.map_err(|e| e.reason.as_str())))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let whole = run(body, body.len());
    let chunked = run(body, first as usize % 17 + 1);
    assert_eq!(whole, chunked, "chunking changed the result");
    let mut last = 0;
    for (n, r) in &whole {
        assert!(*n > last, "line numbers must grow: {n} after {last}");
        last = *n;
        if let Ok(ev) = r
            && let Some(line) = encode(ev)
        {
            let back = decode_line(line.as_bytes());
            assert_eq!(back, Ok(Some(ev.clone())), "{line}");
        }
    }
});
