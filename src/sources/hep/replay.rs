//! `acdmon replay --format hep`: a recorded HEPv3 stream through the same
//! ingest as the live collector.

use super::HepIngest;
use super::packet::StreamFramer;
use crate::config::HepSourceConfig;
use crate::event::Event;
use crate::sources::{Reject, RejectReason, ReplayDecoder};
use crate::time::Ts;

/// `acdmon replay --format hep`: a recorded HEPv3 stream (packets back to
/// back, e.g. what a TCP sender wrote) replayed on the packets' capture
/// time. Packets without a time (none in HEPv3 from the known senders) are
/// dated with the previous packet's time.
#[derive(Debug)]
pub struct HepReplayDecoder {
    framer: StreamFramer,
    ingest: HepIngest,
    last_ts: Ts,
}

impl HepReplayDecoder {
    pub fn new(cfg: &HepSourceConfig) -> Result<Self, String> {
        let mut ingest = cfg.ingest()?;
        ingest.stop_recording();
        Ok(HepReplayDecoder {
            framer: StreamFramer::new(ingest.limits()),
            ingest,
            last_ts: Ts::ZERO,
        })
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        self.framer.feed(bytes);
        let mut results = Vec::new();
        let mut events = Vec::new();
        while let Some(r) = self.framer.next_packet() {
            match r {
                Ok(p) => {
                    if let Some(ts) = p.ts {
                        self.last_ts = self.last_ts.max(ts);
                    }
                    if let Err(rej) = self.ingest.handle_packet(&p, self.last_ts, &mut events) {
                        results.push(Err(rej));
                    }
                    results.extend(events.drain(..).map(Ok));
                }
                Err(e) => results.push(Err(e.to_reject())),
            }
        }
        results
    }

    /// Bytes left that do not make a packet are reported; open calls stay
    /// open (as of the last packet, they are still waiting or talking).
    pub fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        let n = self.framer.buffered();
        if n > 0 {
            vec![Err(Reject::new(
                RejectReason::HepTruncated,
                format!("{n} bytes at the end of the input"),
            ))]
        } else {
            Vec::new()
        }
    }
}

/// The replay entry point: mapping rules from the configuration's
/// `kind = "hep"` source (required: they say which legs are queue calls).
pub fn replay_decoder(spec: Option<&HepSourceConfig>) -> Result<HepReplayDecoder, String> {
    let spec = spec.ok_or("replaying HEP needs a [[sources]] entry with kind = \"hep\" (its mapping rules say which legs are queue calls)")?;
    HepReplayDecoder::new(spec)
}

impl ReplayDecoder for HepReplayDecoder {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        HepReplayDecoder::feed(self, bytes)
    }

    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        HepReplayDecoder::finish(self)
    }
}
