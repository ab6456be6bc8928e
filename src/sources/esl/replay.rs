//! `acdmon replay --format esl`: a recorded event-socket transcript (the raw
//! bytes an ESL client received: `auth/request`, command replies, the resync
//! lists, events, and, after a dropped connection, the next
//! `auth/request`…) through the same [`Session`] as the live source.
//!
//! Replies carry no time, so each is stamped with the time of the next event
//! the server sent (the lists of a resync are answered just before the
//! events that follow them). The session's own commands are not needed:
//! ESL answers in order, and the session asks the same questions in the same
//! order when replaying as it did when live, with the default settings
//! (every queue `queue list` shows).

use super::parser::{Framer, Message, Parse};
use super::session::{Output, Session, SessionConfig};
use crate::config::EslConfig;
use crate::event::Event;
use crate::sources::{Origin, Reject, RejectReason, ReplayDecoder};
use crate::time::Ts;

/// The replay entry point: with the settings of the configuration's
/// `kind = "esl"` source (its queues and timers), so a transcript recorded
/// with them replays the same way; defaults without one.
pub fn replay_decoder(spec: Option<&EslConfig>) -> EslReplay {
    match spec {
        Some(c) => EslReplay::with_config(c.session_config(None)),
        None => EslReplay::new(),
    }
}

/// Decodes an ESL transcript into domain events on event time.
#[derive(Debug)]
pub struct EslReplay {
    framer: Framer,
    buf: Vec<u8>,
    session: Session,
    /// Frames without time, waiting for the next event's time (raw bytes;
    /// re-framed when released).
    held: Vec<Vec<u8>>,
    /// With [`EslReplay::traced`]: the origin of each event returned since
    /// the last [`EslReplay::take_origins`].
    origins: Option<Vec<Option<Origin>>>,
}

impl Default for EslReplay {
    fn default() -> Self {
        Self::new()
    }
}

impl EslReplay {
    pub fn new() -> Self {
        Self::with_config(SessionConfig::replay())
    }

    /// With the settings the recording session ran with (queues, timers).
    pub fn with_config(mut cfg: SessionConfig) -> Self {
        cfg.replay = true;
        EslReplay {
            framer: Framer::default(),
            buf: Vec::new(),
            session: Session::new(cfg),
            held: Vec::new(),
            origins: None,
        }
    }

    /// A decoder that also keeps each event's wire origin (ESL
    /// `e<Core-UUID>:<Event-Sequence>`, see [`crate::sources::Origin`]): the
    /// events a cluster ingester would hand on, for tests and tools.
    pub fn traced(mut cfg: SessionConfig) -> Self {
        cfg.origins = true;
        let mut r = Self::with_config(cfg);
        r.origins = Some(Vec::new());
        r
    }

    /// The origins of the events returned since the last call, one per
    /// event, in order (empty unless [`EslReplay::traced`]).
    pub fn take_origins(&mut self) -> Vec<Option<Origin>> {
        self.origins
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        self.buf.extend_from_slice(bytes);
        let mut results = Vec::new();
        let mut pos = 0;
        loop {
            match self.framer.next(&self.buf[pos..]) {
                Parse::NeedMore => break,
                Parse::Skip(r, n) => {
                    results.push(Err(r));
                    pos += n;
                }
                Parse::Frame(frame, n) => {
                    let raw = &self.buf[pos..pos + n];
                    pos += n;
                    match frame.message() {
                        Err(r) => results.push(Err(r)),
                        Ok(Message::Event(ev)) => {
                            let ts = ev
                                .int(super::parser::Field::Timestamp)
                                .map(|us| Ts(us.div_euclid(1000)))
                                .unwrap_or_else(|| self.session.clock());
                            release(&mut self.session, &mut self.held, ts);
                            self.session.handle_message(Message::Event(ev), ts);
                        }
                        Ok(_) => self.held.push(raw.to_vec()),
                    }
                    drain(&mut self.session, &mut results, &mut self.origins);
                }
            }
        }
        self.buf.drain(..pos);
        results
    }

    pub fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        let mut results = Vec::new();
        if !self.buf.is_empty() {
            results.push(Err(Reject::new(
                RejectReason::TruncatedFrame,
                format!("transcript ends inside a frame ({} bytes)", self.buf.len()),
            )));
            self.buf.clear();
        }
        let ts = self.session.clock();
        release(&mut self.session, &mut self.held, ts);
        drain(&mut self.session, &mut results, &mut self.origins);
        results
    }
}

impl EslReplay {
    /// Ends the wrap-ups and delays still running at the end of the
    /// transcript that fall due by `until`, as the live source's tick would
    /// (call after [`EslReplay::finish`]).
    pub fn finish_timers(&mut self, until: Ts) -> Vec<Result<Event, Reject>> {
        let mut results = Vec::new();
        if until > self.session.clock() {
            self.session.handle_timeout(until);
        }
        drain(&mut self.session, &mut results, &mut self.origins);
        results
    }
}

fn release(session: &mut Session, held: &mut Vec<Vec<u8>>, ts: Ts) {
    let mut framer = Framer::default();
    for raw in held.drain(..) {
        if let Parse::Frame(f, _) = framer.next(&raw)
            && let Ok(m) = f.message()
        {
            session.handle_message(m, ts);
        }
    }
}

fn drain(
    session: &mut Session,
    results: &mut Vec<Result<Event, Reject>>,
    origins: &mut Option<Vec<Option<Origin>>>,
) {
    let mut push = |results: &mut Vec<Result<Event, Reject>>, e, o| {
        results.push(Ok(e));
        if let Some(v) = origins.as_mut() {
            v.push(o);
        }
    };
    let mut closed = None;
    while let Some(o) = session.poll_output() {
        match o {
            Output::Event(e) => push(results, e, None),
            Output::Traced(e, o) => push(results, e, Some(o)),
            Output::Reject(r) => results.push(Err(r)),
            Output::Close(why) => closed = Some(why),
            Output::Send(_) | Output::ResyncStarted(_) | Output::Synced | Output::Reply { .. } => {}
        }
    }
    if let Some(why) = closed {
        // The recording goes on with the server's next connection.
        tracing::info!(%why, "recorded connection closed");
        session.handle_disconnect(&why);
        while let Some(o) = session.poll_output() {
            match o {
                Output::Event(e) => push(results, e, None),
                Output::Traced(e, o) => push(results, e, Some(o)),
                Output::Reject(r) => results.push(Err(r)),
                _ => {}
            }
        }
    }
}

impl ReplayDecoder for EslReplay {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        EslReplay::feed(self, bytes)
    }
    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        EslReplay::finish(self)
    }
    fn finish_timers(&mut self, until: Ts) -> Vec<Result<Event, Reject>> {
        EslReplay::finish_timers(self, until)
    }
}
