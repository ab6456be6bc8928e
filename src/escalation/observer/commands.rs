//! The HTTP routes' commands (see `escalation::control`): approving or
//! rejecting advice and signing agents in or out by hand, answered on the
//! engine thread.

use super::*;

impl LadderObserver {
    pub(super) fn drain_control(&mut self, engine: &mut Engine) {
        let Some(mut rx) = self.control_rx.take() else {
            return;
        };
        while let Ok(cmd) = rx.try_recv() {
            self.command(engine, cmd);
        }
        self.control_rx = Some(rx);
    }

    pub(super) fn command(&mut self, engine: &mut Engine, cmd: Command) {
        match cmd {
            Command::Approve { id, by, reply } => {
                let r = self.decide(engine, id, &by, true);
                let _ = reply.send(r);
            }
            Command::Reject { id, by, reply } => {
                let r = self.decide(engine, id, &by, false);
                let _ = reply.send(r);
            }
            Command::SignIn {
                agent,
                queue,
                by,
                reply,
            } => {
                let r = self.manual(engine, CtiVerb::SignIn, &agent, &queue, &by);
                let _ = reply.send(r);
            }
            Command::SignOut {
                agent,
                queue,
                by,
                reply,
            } => {
                let r = self.manual(engine, CtiVerb::SignOut, &agent, &queue, &by);
                let _ = reply.send(r);
            }
            Command::Mirror(r) => self.mirror(engine, r),
            Command::Appended { entry, error } => self.appended(engine, entry, error),
            Command::Lead => self.lead(engine),
            Command::Follow => self.follow(engine),
        }
    }

    pub(super) fn composed(&self, id: u64) -> Result<Entry, ControlError> {
        match self.store.entry(id) {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(ControlError::NotFound(format!("no escalation entry {id}"))),
            Err(e) => Err(ControlError::Storage(e.to_string())),
        }
    }

    pub(super) fn decide(
        &mut self,
        engine: &mut Engine,
        id: u64,
        by: &str,
        approve: bool,
    ) -> Result<Entry, ControlError> {
        self.refuse_while_unwritten()?;
        let now = engine.now();
        let q = self
            .ladders
            .iter()
            .position(|l| l.as_ref().and_then(|l| l.pending_entry()) == Some(id));
        let Some(q) = q else {
            let e = self.composed(id)?;
            let state = e
                .decision
                .map(|d| format!("already {}", d.result))
                .unwrap_or_else(|| format!("mode {}", e.mode));
            return Err(ControlError::Conflict(format!(
                "entry {id} is not waiting for a decision ({state})"
            )));
        };
        let floor_assign = self.assignments.clone();
        let Some(l) = self.ladders[q].as_mut() else {
            return Err(ControlError::NotFound(format!("no escalation entry {id}")));
        };
        let outs = if approve {
            let floor = EngineFloor {
                engine,
                q,
                assignments: &floor_assign,
                cti: &self.cti,
            };
            l.approve(id, now, by, &floor)
        } else {
            l.reject(id, now, by)
        };
        let outs = outs.map_err(|NotPending| {
            ControlError::Conflict(format!("entry {id} is not waiting for a decision"))
        })?;
        tracing::info!(id, by, approve, "escalation advice answered");
        self.changed.insert(q);
        self.process(engine, outs);
        self.sync(engine);
        if !self.pending.is_empty() {
            return Err(ControlError::Storage(format!(
                "the answer to entry {id} cannot be written to the audit log yet; it is kept, \
                 and acted on once written"
            )));
        }
        // The next stage's clock starts at the answer, not at the next event.
        self.evaluate(engine, q);
        self.sync(engine);
        self.composed(id)
    }

    pub(super) fn manual(
        &mut self,
        engine: &mut Engine,
        verb: CtiVerb,
        agent: &str,
        queue: &str,
        by: &str,
    ) -> Result<Entry, ControlError> {
        if engine.find_agent(agent).is_none() {
            return Err(ControlError::NotFound(format!("unknown agent {agent}")));
        }
        let Some(q) = engine.find_queue(queue) else {
            return Err(ControlError::NotFound(format!("unknown queue {queue}")));
        };
        self.ensure_ladder(engine, q);
        self.refuse_while_unwritten()?;
        let id = self.next_id + 1;
        let (kind, direction, what) = match verb {
            CtiVerb::SignIn => ("sign_in", Direction::Up, "sign-in"),
            CtiVerb::SignOut => ("sign_out", Direction::Down, "sign-out"),
        };
        let entry = Entry {
            id,
            ts: engine.now(),
            queue: queue.to_string(),
            stage: 0,
            stage_name: "manual".into(),
            direction,
            reason: format!("manual {what} by {by}"),
            mode: "manual".into(),
            actions: vec![ActionRecord {
                kind: kind.into(),
                agent: Some(agent.to_string()),
                target_queue: Some(queue.to_string()),
                result: PENDING.into(),
                detail: None,
                seats: None,
                at: None,
            }],
            ladder: None,
            decision: None,
        };
        // Written here, not queued: a person waits for the answer, and an
        // action that cannot be logged is not done (nor its id spent).
        if let Err(e) = self.store.insert_entry(&entry) {
            return Err(ControlError::Storage(format!(
                "cannot write entry {id} to the audit log ({e}); nothing was done"
            )));
        }
        self.next_id = id;
        self.meta
            .insert(id, (entry.queue.clone(), entry.stage_name.clone()));
        self.outbox.push(id);
        self.append_entry(entry.clone());
        self.manual.insert(id);
        let mut outs = vec![Output::Act(Act {
            entry: id,
            action: 0,
            verb,
            agent: agent.to_string(),
            queue: queue.to_string(),
            attempt: 1,
        })];
        if let Some(l) = self.ladders[q].as_mut() {
            outs.extend(l.forget(
                agent,
                &format!(
                    "the agent was signed {} by hand (entry {id})",
                    if verb == CtiVerb::SignIn { "in" } else { "out" }
                ),
            ));
        }
        self.changed.insert(q);
        self.process(engine, outs);
        self.sync(engine);
        self.composed(id)
    }

    pub(super) fn refuse_while_unwritten(&self) -> Result<(), ControlError> {
        if self.role == Role::Following {
            return Err(ControlError::Conflict(
                "this instance follows the site's CTI leader (cluster mode); \
                 ask the leader (acd_cluster_cti_leader 1 in its /metrics); nothing was done"
                    .into(),
            ));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let why = self
            .store
            .health()
            .last_error()
            .unwrap_or_else(|| "writes fail".into());
        Err(ControlError::Storage(format!(
            "the audit log cannot be written ({why}); {} escalation writes wait; nothing was done",
            self.pending.len()
        )))
    }
}
