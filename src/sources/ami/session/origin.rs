//! Which AMI event each domain event came from, for cluster mode's message
//! ids ([`crate::sources::Origin`]): `a<MD5 of the event's header block>`.
//!
//! Asterisk formats an event once and writes the same text to every manager
//! session that receives it, so two ingesters connected to one Asterisk see
//! the same block and name it alike, whatever their reads and batches.
//! With `timestampevents = yes` (what the adapter's event times need
//! anyway) every block carries `Timestamp:` to the microsecond, so no two
//! events share a block. Without it two events can be identical text (a
//! member paused twice, the same caller joining the same queue again at
//! the same position): a block seen before on this connection gets the
//! number of its repeat (`#1`, `#2`…), so a repeat is never taken for a
//! copy of the first. The limit: an ingester that connects between the two
//! numbers the second occurrence `#0`, the same as the first's id, and the
//! stream keeps one of them if both land within the duplicate window. For
//! state events (member status, pause) that is harmless (the second says
//! what the first said); for a call that rejoins a queue it can lose the
//! rejoin, hence `timestampevents = yes` (docs/cluster.md).

use std::collections::HashMap;

use md5::{Digest, Md5};

use super::super::parser::Headers;
use crate::sources::Origin;

/// Distinct untimestamped blocks remembered for repeat numbers (then the
/// count starts again: a repeat that far apart is outside any duplicate
/// window at a realistic event rate).
const MAX_REMEMBERED: usize = 65_536;

const HEX: &[u8; 16] = b"0123456789abcdef";

#[derive(Debug, Default)]
pub(super) struct Origins {
    /// Untimestamped blocks seen on this connection: how many times.
    repeats: HashMap<[u8; 16], u32>,
    /// The origin of each event in the session's event list (same length
    /// once [`Origins::pad`] ran).
    pub(super) of_events: Vec<Option<Origin>>,
    /// The block's text, rebuilt for each digest (kept for its capacity).
    scratch: Vec<u8>,
}

impl Origins {
    /// The origin of the block `m`.
    pub(super) fn of(&mut self, m: &impl Headers) -> Origin {
        let mut stamped = false;
        let text = &mut self.scratch;
        text.clear();
        m.each_header(&mut |k, v| {
            stamped |= k.eq_ignore_ascii_case(b"Timestamp");
            text.extend_from_slice(k);
            text.extend_from_slice(b": ");
            text.extend_from_slice(v);
            text.push(b'\n');
        });
        // One call over the whole block: MD5's per-call cost on 25 short
        // pieces was most of its price.
        let d: [u8; 16] = Md5::digest(&text[..]).into();
        let mut id = String::with_capacity(40);
        id.push('a');
        for b in d {
            id.push(HEX[usize::from(b >> 4)] as char);
            id.push(HEX[usize::from(b & 15)] as char);
        }
        if !stamped {
            if self.repeats.len() >= MAX_REMEMBERED {
                self.repeats.clear();
            }
            let n = self.repeats.entry(d).or_insert(0);
            if *n > 0 {
                id.push_str(&format!("#{n}"));
            }
            *n += 1;
        }
        id.into()
    }

    /// Gives the events up to `len` that have no origin yet `origin`.
    pub(super) fn pad(&mut self, len: usize, origin: Option<Origin>) {
        if self.of_events.len() < len {
            self.of_events.resize(len, origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::parser::OwnedMessage;
    use super::*;

    fn block(lines: &[(&str, &str)]) -> OwnedMessage {
        OwnedMessage {
            headers: lines
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_same_block_is_named_alike_on_two_connections_and_a_repeat_is_numbered() {
        let pause = block(&[
            ("Event", "QueueMemberPause"),
            ("Queue", "sales"),
            ("Interface", "PJSIP/1001"),
            ("Paused", "1"),
        ]);
        let (mut east, mut west) = (Origins::default(), Origins::default());
        let first = east.of(&pause);
        assert_eq!(first, west.of(&pause), "one event, one name");
        assert!(first.starts_with('a') && first.len() == 33, "{first}");
        let again = east.of(&pause);
        assert_eq!(&*again, &*format!("{first}#1"), "a repeat is not a copy");
        let other = block(&[
            ("Event", "QueueMemberPause"),
            ("Queue", "sales"),
            ("Interface", "PJSIP/1001"),
            ("Paused", "0"),
        ]);
        assert_ne!(east.of(&other), first);
        let stamped = block(&[("Event", "QueueCallerJoin"), ("Timestamp", "1.5")]);
        assert_eq!(
            east.of(&stamped),
            east.of(&stamped),
            "a Timestamp makes a block unique"
        );
    }
}
