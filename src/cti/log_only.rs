//! The CTI action `replay` uses: records the request in the log and answers
//! `ok`, so a config written for `run` replays unchanged. The membership
//! change it reports is applied by the ladder (no phone system will report
//! it), so a replay's members match the daemon's.

use super::{Cti, CtiFuture, CtiOutcome, CtiRequest};

#[derive(Debug, Default, Clone)]
pub struct LogOnly;

impl Cti for LogOnly {
    fn execute(&self, req: CtiRequest) -> CtiFuture {
        tracing::info!(verb = ?req.verb, agent = %req.agent, queue = %req.queue, "log-only CTI action");
        Box::pin(async {
            CtiOutcome {
                apply_membership: true,
                ..CtiOutcome::ok("log-only")
            }
        })
    }
}
