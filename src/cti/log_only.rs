//! The CTI action `replay` uses: records the request in the log and answers
//! `ok`, so a config written for `run` replays unchanged.

use super::{Cti, CtiFuture, CtiOutcome, CtiRequest};

#[derive(Debug, Default, Clone)]
pub struct LogOnly;

impl Cti for LogOnly {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        tracing::info!(verb = ?req.verb, agent = %req.agent, queue = %req.queue, "log-only CTI action");
        Box::pin(async { CtiOutcome::ok("log-only") })
    }
}
