//! Which decoder reads which recorded format. Adapters register here.

use crate::event::Event;
use crate::replay::{Format, ReplayDecoder, ReplayError};
use crate::sources::Reject;
use crate::sources::ami::{AgentIds, AmiReplay};
use crate::sources::queue_log::QueueLogReplay;

pub fn decoder(format: Format) -> Result<Box<dyn ReplayDecoder>, ReplayError> {
    match format {
        Format::Json => Err(ReplayError::Unsupported(
            "json is decoded by the line decoder".into(),
        )),
        // The agent directory (`[[agents]] interface`) is not passed here
        // yet: ids come from MemberName / the queue_log agent column.
        Format::QueueLog => Ok(Box::new(QueueLogReplay::new(
            AgentIds::default(),
            jiff::tz::TimeZone::system(),
        ))),
        Format::Ami => Ok(Box::new(AmiReplay::new(AgentIds::default()))),
    }
}

impl ReplayDecoder for AmiReplay {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        AmiReplay::feed(self, bytes)
    }
    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        AmiReplay::finish(self)
    }
}

impl ReplayDecoder for QueueLogReplay {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, Reject>> {
        QueueLogReplay::feed(self, bytes)
    }
    fn finish(&mut self) -> Vec<Result<Event, Reject>> {
        QueueLogReplay::finish(self)
    }
}
