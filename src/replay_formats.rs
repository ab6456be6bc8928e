//! Which decoder reads which recorded format. Adapters register here.

use crate::config::Config;
use crate::event::Event;
use crate::replay::{Format, ReplayDecoder, ReplayError};
use crate::sources::Reject;
use crate::sources::ami::{AgentIds, AmiReplay};
use crate::sources::queue_log::QueueLogReplay;

/// A decoder that knows the configured agents (`[[agents]] interface` names
/// the agent whose id events should carry) and reads queue_log database
/// times in the configured `[time] zone`.
pub fn decoder_with_config(
    format: Format,
    cfg: &Config,
) -> Result<Box<dyn ReplayDecoder>, ReplayError> {
    if format == Format::Esl {
        return Ok(Box::new(crate::sources::esl::EslReplay::for_config(cfg)));
    }
    if format == Format::Hep {
        return crate::sources::hep::replay_decoder(cfg)
            .map(|d| Box::new(d) as Box<dyn ReplayDecoder>)
            .map_err(ReplayError::Unsupported);
    }
    let mut ids = AgentIds::default();
    for a in &cfg.agents {
        if let Some(i) = &a.interface {
            ids.insert(&a.id, i);
        }
    }
    decoder_for(format, ids, cfg.zone.clone())
}

fn decoder_for(
    format: Format,
    ids: AgentIds,
    zone: jiff::tz::TimeZone,
) -> Result<Box<dyn ReplayDecoder>, ReplayError> {
    match format {
        Format::Json => Err(ReplayError::Unsupported(
            "json is decoded by the line decoder".into(),
        )),
        Format::QueueLog => Ok(Box::new(QueueLogReplay::new(ids, zone))),
        Format::Ami => Ok(Box::new(AmiReplay::new(ids))),
        Format::Hep | Format::Esl => Err(ReplayError::Unsupported(
            "hep and esl replay need the configuration".into(),
        )),
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
