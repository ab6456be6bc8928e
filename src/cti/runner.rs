//! Carrying out CTI actions for a rule that runs on the engine thread (the
//! escalation ladder, a post's auto cover). Both need the same thing: the
//! engine thread must never wait on the phone system, so an action runs as
//! a task on the daemon's runtime and its outcome comes back on a bounded
//! channel the rule drains before each publish; in `replay` there is no
//! runtime, the log-only action answers at once, and the outcome is taken on
//! the spot so a replayed day acts exactly where the live one would.
//!
//! One type for both rules, so a change to how actions run (an idempotency
//! key, a timeout, a runtime of its own) is made once.

use tokio::sync::mpsc;

use super::{CtiOutcome, CtiRegistry, CtiRequest, CtiVerb};
use crate::state::Engine;

/// Where actions run, and the outcomes not yet taken. `D` is what the rule
/// wants back with each outcome (its own record of the action).
pub struct ActionRunner<D> {
    runtime: Option<tokio::runtime::Handle>,
    results_tx: mpsc::Sender<D>,
    results_rx: mpsc::Receiver<D>,
    inline: Vec<D>,
}

impl<D: Send + 'static> ActionRunner<D> {
    /// Runs actions on the current tokio runtime when there is one (the
    /// daemon), else on the spot (replay). `capacity` bounds the outcomes
    /// waiting to be drained.
    pub fn new(capacity: usize) -> Self {
        let (results_tx, results_rx) = mpsc::channel(capacity);
        ActionRunner {
            runtime: tokio::runtime::Handle::try_current().ok(),
            results_tx,
            results_rx,
            inline: Vec::new(),
        }
    }

    /// Starts `req` through the action `registry` names for the agent's
    /// `source`; `done` turns the outcome into the rule's record. A source
    /// with no action fails at once, as a result like any other.
    pub fn start(
        &mut self,
        registry: &CtiRegistry,
        source: Option<&str>,
        req: CtiRequest,
        done: impl FnOnce(CtiOutcome) -> D + Send + 'static,
    ) {
        let cti = match registry.for_source(source) {
            Ok(c) => c,
            Err(why) => {
                self.inline.push(done(CtiOutcome::failed(why)));
                return;
            }
        };
        let mut fut = cti.execute(req);
        match &self.runtime {
            Some(h) => {
                let tx = self.results_tx.clone();
                h.spawn(async move {
                    let outcome = fut.await;
                    let _ = tx.send(done(outcome)).await;
                });
            }
            None => {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let outcome = match fut.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(o) => o,
                    std::task::Poll::Pending => CtiOutcome::failed(
                        "this CTI action cannot run without the daemon's runtime",
                    ),
                };
                self.inline.push(done(outcome));
            }
        }
    }

    /// Outcomes taken on the spot (replay, or an action that could not
    /// start), oldest first.
    pub fn take_inline(&mut self) -> Vec<D> {
        std::mem::take(&mut self.inline)
    }

    /// Whether outcomes taken on the spot wait.
    pub fn has_inline(&self) -> bool {
        !self.inline.is_empty()
    }

    /// One outcome that came back from the runtime, if any.
    pub fn try_recv(&mut self) -> Option<D> {
        self.results_rx.try_recv().ok()
    }
}

/// The request for `agent` in `queue`, with the agent's interface and name
/// from the engine's directory, and the source whose action carries it.
pub fn request_for(
    engine: &Engine,
    verb: CtiVerb,
    agent: &str,
    queue: &str,
) -> (CtiRequest, Option<String>) {
    let profile = engine.find_agent(agent).map(|i| engine.agent(i));
    let req = CtiRequest {
        verb,
        agent: agent.to_string(),
        interface: profile
            .and_then(|p| p.interface.clone())
            .unwrap_or_else(|| agent.to_string()),
        name: profile.and_then(|p| p.name.clone()),
        queue: queue.to_string(),
    };
    (req, profile.and_then(|p| p.source.clone()))
}
