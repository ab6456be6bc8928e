//! Which decoder reads which recorded format. Adapters register here.

use crate::replay::{Format, ReplayDecoder, ReplayError};

pub fn decoder(format: Format) -> Result<Box<dyn ReplayDecoder>, ReplayError> {
    match format {
        Format::Json => Err(ReplayError::Unsupported(
            "json is decoded by the line decoder".into(),
        )),
        Format::QueueLog => Err(ReplayError::Unsupported(
            "queue_log replay is not built yet".into(),
        )),
        Format::Esl => Ok(Box::new(crate::sources::esl::EslReplay::new())),
        Format::Ami => Err(ReplayError::Unsupported(
            "AMI transcript replay is not built yet".into(),
        )),
    }
}
