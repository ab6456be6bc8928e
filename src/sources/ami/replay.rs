//! `acdmon replay --format ami`: a recorded AMI transcript (contract section
//! 1: the raw text a client received, `timestampevents = yes`) through the
//! same session code the daemon runs, passively. Event time is each event's
//! `Timestamp:`; the `QueueStatus` list (which carries no `Timestamp`) is
//! placed at the preceding `Ping` reply's time, else at the latest event
//! time seen, else at the first event time that follows it.

use super::mapping::AgentIds;
use super::session::Session;
use crate::event::Event;
use crate::sources::{Origin, Reject, ReplayDecoder};

/// Decodes an AMI transcript into events on event time.
#[derive(Debug)]
pub struct AmiReplay {
    session: Session,
    events: Vec<Event>,
    /// With [`AmiReplay::traced`]: the origin of each event returned since
    /// the last [`AmiReplay::take_origins`].
    origins: Option<Vec<Option<Origin>>>,
}

impl AmiReplay {
    pub fn new(ids: AgentIds) -> Self {
        AmiReplay {
            session: Session::passive(ids),
            events: Vec::new(),
            origins: None,
        }
    }

    /// A decoder that also keeps each event's wire origin (a digest of its
    /// AMI block, see [`crate::sources::Origin`]): the events a cluster
    /// ingester would hand on, for tests and tools.
    pub fn traced(ids: AgentIds) -> Self {
        let mut r = Self::new(ids);
        r.session.trace_origins();
        r.origins = Some(Vec::new());
        r
    }

    /// The origins of the events returned since the last call, one per
    /// event, in order (empty unless [`AmiReplay::traced`]).
    pub fn take_origins(&mut self) -> Vec<Option<Origin>> {
        self.origins
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Feeds the next bytes of the transcript (any chunking).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        self.session.handle_input(bytes, crate::time::Ts::ZERO);
        self.collect()
    }

    /// The transcript has ended: settles callers whose leave was still
    /// waiting for an `AgentConnect`.
    pub fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        self.session.handle_eof();
        self.collect()
    }

    fn collect(&mut self) -> Vec<Result<Event, Reject>> {
        match self.origins.as_mut() {
            Some(o) => self.session.poll_events_traced(&mut self.events, o),
            None => self.session.poll_events(&mut self.events),
        }
        let mut out: Vec<Result<Event, Reject>> =
            self.session.poll_rejects().into_iter().map(Err).collect();
        out.extend(self.events.drain(..).map(Ok));
        out
    }
}

/// The replay entry point: `agents` are the `[[agents]]` with an interface
/// (`(id, interface)`), so events name the agents as the daemon does.
pub fn replay_decoder(agents: &[(String, String)]) -> AmiReplay {
    let mut ids = AgentIds::default();
    for (id, interface) in agents {
        ids.insert(id, interface);
    }
    AmiReplay::new(ids)
}

impl ReplayDecoder for AmiReplay {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        AmiReplay::feed(self, bytes)
    }
    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        AmiReplay::finish(self)
    }
}
