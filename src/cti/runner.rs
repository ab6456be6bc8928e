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
//!
//! Every action carries an idempotency key made from what the rule logged
//! about it (the audit entry and the action's index, [`action_key`]), not
//! from a count kept in memory: the same action has the same key in every
//! process that reads the same log, so a restarted daemon or a cluster's
//! new CTI leader that carries it out again sends the key the receiver
//! already saw, and the receiver can drop the repeat.

use tokio::sync::mpsc;

use super::{CtiOutcome, CtiRegistry, CtiRequest, CtiVerb};
use crate::state::Engine;

/// Where actions run, and the outcomes not yet taken. `D` is what the rule
/// wants back with each outcome (its own record of the action).
pub struct ActionRunner<D> {
    runtime: Option<tokio::runtime::Handle>,
    /// Put before every key: `<site>:` in cluster mode (keys are unique per
    /// site), empty on one node.
    scope: String,
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
            scope: String::new(),
            results_tx,
            results_rx,
            inline: Vec::new(),
        }
    }

    /// Keys start with `scope` (see [`key_scope`]).
    pub fn with_scope(mut self, scope: String) -> Self {
        self.scope = scope;
        self
    }

    pub fn set_scope(&mut self, scope: String) {
        self.scope = scope;
    }

    /// Starts `req` through the action `registry` names for the agent's
    /// `source`, with the idempotency key `<scope><key>` (the webhook sends
    /// it as `Idempotency-Key`); `done` turns the outcome into the rule's
    /// record. A source with no action fails at once, as a result like any
    /// other.
    pub fn start(
        &mut self,
        registry: &CtiRegistry,
        source: Option<&str>,
        req: CtiRequest,
        key: &str,
        done: impl FnOnce(CtiOutcome) -> D + Send + 'static,
    ) {
        let cti = match registry.for_source(source) {
            Ok(c) => c,
            Err(why) => {
                self.inline.push(done(CtiOutcome::failed(why)));
                return;
            }
        };
        // The key is set while the action is made and while it runs, so an
        // action may read it in either place.
        let key = format!("{}{key}", self.scope);
        let fut = super::IDEMPOTENCY_KEY.sync_scope(key.clone(), || cti.execute(req));
        let mut fut = Box::pin(super::IDEMPOTENCY_KEY.scope(key, fut));
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

    /// An outcome reached without acting (the phone system already shows
    /// what the action would do), taken with the next inline outcomes.
    pub fn finish(&mut self, d: D) {
        self.inline.push(d);
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

/// The key of action `action` of audit entry `entry`, try `attempt` (1 for
/// the first): `<entry>:<action>`, and `<entry>:<action>:<attempt>` for a
/// retry after a failure (a new try the receiver must not drop as a repeat
/// of the failed one).
pub fn action_key(entry: u64, action: usize, attempt: u32) -> String {
    if attempt > 1 {
        format!("{entry}:{action}:{attempt}")
    } else {
        format!("{entry}:{action}")
    }
}

/// What every key starts with under `cfg`: `<site>:` in cluster mode (one
/// site's entry ids are its own), empty on one node.
pub fn key_scope(cfg: &crate::config::Config) -> String {
    cfg.cluster
        .as_ref()
        .map(|c| format!("{}:", c.site()))
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cti::{Cti, CtiFuture, IDEMPOTENCY_KEY};
    use std::sync::{Arc, Mutex};

    /// Answers at once and remembers the key each action carried.
    struct Witness(Mutex<Vec<String>>);
    impl Cti for Witness {
        fn execute(&self, _req: CtiRequest) -> CtiFuture {
            let key = IDEMPOTENCY_KEY.try_with(|k| k.clone()).unwrap_or_default();
            self.0.lock().unwrap().push(key);
            Box::pin(async { CtiOutcome::ok("done") })
        }
    }

    fn req() -> CtiRequest {
        CtiRequest {
            verb: CtiVerb::SignIn,
            agent: "a1".into(),
            interface: "a1".into(),
            name: None,
            queue: "hotline".into(),
        }
    }

    /// The key is the audit entry and the action, the same in every
    /// process that reads the log (no count kept in memory): entry 7's
    /// second action is `7:1` however often it is started; a retry after a
    /// failure is a new try with its own key; cluster mode puts the site
    /// first.
    #[test]
    fn the_key_is_the_entry_and_the_action() {
        assert_eq!(action_key(7, 1, 1), "7:1");
        assert_eq!(action_key(7, 1, 1), action_key(7, 1, 1));
        assert_eq!(action_key(7, 1, 2), "7:1:2");
        assert_ne!(action_key(7, 1, 1), action_key(1, 7, 1));

        let w = Arc::new(Witness(Mutex::new(Vec::new())));
        let reg = CtiRegistry::only(w.clone());
        let mut one_node: ActionRunner<bool> = ActionRunner::new(4);
        let mut north: ActionRunner<bool> = ActionRunner::new(4).with_scope("north:".into());
        one_node.start(&reg, None, req(), &action_key(7, 1, 1), |o| o.ok);
        north.start(&reg, None, req(), &action_key(7, 1, 1), |o| o.ok);
        north.start(&reg, None, req(), "cover:3:0", |o| o.ok);
        assert_eq!(one_node.take_inline(), vec![true]);
        assert_eq!(north.take_inline(), vec![true, true]);
        assert_eq!(
            *w.0.lock().unwrap(),
            vec![
                "7:1".to_string(),
                "north:7:1".into(),
                "north:cover:3:0".into()
            ]
        );
    }
}
