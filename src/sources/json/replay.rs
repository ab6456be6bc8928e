//! `acdmon replay --format json`: the same line decoder as the live
//! source; rejections keep their line number for the log (`file:line`).

use std::collections::VecDeque;

use super::decode::{Decoded, LineDecoder};
use crate::event::Event;
use crate::sources::{Reject, ReplayDecoder};

/// Decodes a JSON-lines recording.
#[derive(Debug, Default)]
pub struct JsonReplay {
    lines: LineDecoder,
    decoded: Vec<Decoded>,
    /// Line numbers of the rejections returned and not yet asked for.
    reject_lines: VecDeque<u64>,
}

/// The replay entry point (the JSON feed needs no settings).
pub fn replay_decoder() -> JsonReplay {
    JsonReplay::default()
}

impl JsonReplay {
    fn collect(&mut self) -> Vec<Result<Event, Reject>> {
        let mut out = Vec::with_capacity(self.decoded.len());
        for (line, r) in self.decoded.drain(..) {
            if r.is_err() {
                self.reject_lines.push_back(line);
            }
            out.push(r);
        }
        out
    }
}

impl ReplayDecoder for JsonReplay {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        self.lines.feed(bytes, &mut self.decoded);
        self.collect()
    }

    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        self.lines.finish(&mut self.decoded);
        self.collect()
    }

    fn next_reject_line(&mut self) -> Option<u64> {
        self.reject_lines.pop_front()
    }
}
