//! `acdmon replay --format queue_log`: a recorded file through the same
//! splitter and decoder as the tail.

use super::{LineSplitter, QueueLogDecoder};
use crate::event::Event;
use crate::sources::ami::mapping::AgentIds;
use crate::sources::{Reject, ReplayDecoder};

/// `acdmon replay --format queue_log`.
#[derive(Debug)]
pub struct QueueLogReplay {
    decoder: QueueLogDecoder,
    lines: LineSplitter,
}

impl QueueLogReplay {
    /// Replays with the given agent directory; times in the database format
    /// are read in `zone`.
    pub fn new(ids: AgentIds, zone: jiff::tz::TimeZone) -> Self {
        QueueLogReplay {
            decoder: QueueLogDecoder::new(ids, zone),
            lines: LineSplitter::default(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        let mut out = Vec::new();
        let dec = &mut self.decoder;
        self.lines
            .feed(bytes, |n, l| push_line(dec, n, l, &mut out));
        out
    }

    pub fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        let mut out = Vec::new();
        let dec = &mut self.decoder;
        self.lines.finish(|n, l| push_line(dec, n, l, &mut out));
        out
    }
}

fn push_line(
    dec: &mut QueueLogDecoder,
    n: u64,
    line: Result<&[u8], Reject>,
    out: &mut Vec<Result<Event, Reject>>,
) {
    let mut evs = Vec::new();
    match line.and_then(|l| dec.decode_line(l, &mut evs)) {
        Ok(()) => out.extend(evs.into_iter().map(Ok)),
        Err(mut r) => {
            r.detail = format!("line {n}: {}", r.detail);
            out.push(Err(r));
        }
    }
}

/// The replay entry point: `agents` are the `[[agents]]` with an interface
/// (`(id, interface)`); database times are read in `zone` (the
/// configuration's `[time] zone`).
pub fn replay_decoder(agents: &[(String, String)], zone: jiff::tz::TimeZone) -> QueueLogReplay {
    let mut ids = AgentIds::default();
    for (id, interface) in agents {
        ids.insert(id, interface);
    }
    QueueLogReplay::new(ids, zone)
}

impl ReplayDecoder for QueueLogReplay {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        QueueLogReplay::feed(self, bytes)
    }
    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        QueueLogReplay::finish(self)
    }
}
