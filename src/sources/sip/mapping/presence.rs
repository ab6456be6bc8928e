//! Agent presence without calls: REGISTER (an agent whose registration
//! lapses is logged out) and RFC 4235 dialog-info NOTIFY (BLF), where the
//! platform publishes it.

use super::*;

impl Mapper {
    /// The agent a REGISTER's address of record names: by the agent rules,
    /// or, without rules, a configured static member.
    pub(super) fn registering_agent(&self, msg: &SipMessage<'_>) -> Option<String> {
        let user = unescape(msg.to().user()?).into_owned();
        if self.rules.agents.is_empty() {
            return self
                .rules
                .members
                .iter()
                .any(|(a, _)| *a == user)
                .then_some(user);
        }
        self.rules.agent_by_rule(&user)
    }

    /// A REGISTER or its response: an agent's phone that registers is
    /// logged in until the registration is removed or lapses.
    pub fn handle_register(&mut self, msg: &SipMessage<'_>, ts: Ts, out: &mut Vec<Event>) {
        let key = (msg.call_id.to_string(), msg.cseq_num);
        if msg.method() == Some(Method::Register) {
            if self.pending_registers.len() >= MAX_PENDING_REGISTERS {
                self.pending_registers.clear();
            }
            self.pending_registers
                .insert(key, register_expiry(msg).unwrap_or(3600));
            return;
        }
        if !msg.status().is_some_and(|c| (200..300).contains(&c)) {
            return;
        }
        // The proxy's mirror shows the 200 twice: the first one counts.
        let Some(asked) = self.pending_registers.remove(&key) else {
            return;
        };
        let Some(agent) = self.registering_agent(msg) else {
            return;
        };
        let granted = if asked == 0 {
            0
        } else {
            register_expiry(msg).unwrap_or(asked)
        };
        if granted == 0 {
            self.registered.remove(&agent);
            self.presence_lost(&agent, ts, out);
            return;
        }
        if !self.registered.contains_key(&agent) && self.registered.len() >= MAX_AGENTS {
            return;
        }
        let until = ts.plus_ms(i64::from(granted) * 1000);
        self.registered.insert(agent.clone(), until);
        self.next_lapse = Some(self.next_lapse.map_or(until, |t| t.min(until)));
        match self.agent_status.get(&agent) {
            None | Some(AgentStatus::LoggedOut) => {
                self.agent_state(&agent, AgentStatus::Available, None, ts, out)
            }
            _ => {}
        }
    }

    pub(super) fn presence_lost(&mut self, agent: &str, ts: Ts, out: &mut Vec<Event>) {
        // A phone on a call keeps the call; the next leg event says more.
        match self.agent_status.get(agent) {
            Some(AgentStatus::OnCall) | Some(AgentStatus::Ringing) => {}
            _ => self.agent_state(agent, AgentStatus::LoggedOut, None, ts, out),
        }
    }

    /// Registrations that lapsed by `now` log their agents out.
    pub fn handle_timeout(&mut self, now: Ts, out: &mut Vec<Event>) {
        if self.next_lapse.is_none_or(|t| t > now) {
            return;
        }
        self.next_lapse = self
            .registered
            .values()
            .filter(|&&u| u > now)
            .min()
            .copied();
        let mut lapsed: Vec<String> = self
            .registered
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(a, _)| a.clone())
            .collect();
        lapsed.sort();
        for agent in lapsed {
            self.registered.remove(&agent);
            self.presence_lost(&agent, now, out);
        }
    }

    /// Reports `agent` as a member of `queue`, once.
    pub(super) fn join(&mut self, agent: &str, queue: &str, ts: Ts, out: &mut Vec<Event>) {
        if self.joined.len() >= MAX_AGENTS {
            return;
        }
        if self.joined.insert((agent.to_string(), queue.to_string())) {
            out.push(Event {
                ts,
                kind: EventKind::AgentJoinedQueue {
                    agent: agent.to_string(),
                    queue: queue.to_string(),
                },
            });
        }
    }

    pub(super) fn longest_waiting_in(&mut self, queue: &str) -> Option<String> {
        self.longest_waiting(queue)
    }

    /// The agent leg ended while the caller leg is still up (in `platform`
    /// mode the platform may keep the caller, e.g. for a survey): the queue
    /// call is complete; the caller leg is no longer followed.
    pub(super) fn complete_from_agent(&mut self, call: &str, ts: Ts, out: &mut Vec<Event>) {
        self.end_caller(call, ts, None, out);
    }

    /// A NOTIFY: if it carries dialog-info for an agent, report the phone's
    /// state when it changed.
    pub fn handle_notify(
        &mut self,
        msg: &SipMessage<'_>,
        ts: Ts,
        out: &mut Vec<Event>,
    ) -> Result<(), String> {
        if !self.rules.blf || !is_dialog_info(msg) {
            return Ok(());
        }
        let info = dialog_info::parse(msg.body).map_err(|e| e.to_string())?;
        let Some(user) = uri_user(&info.entity) else {
            return Err(format!("dialog-info entity {:?} has no user", info.entity));
        };
        let Some(agent) = self.rules.agent_of_user(&unescape(user)) else {
            return Ok(());
        };
        if !self.blf.contains_key(&agent) && self.blf.len() >= MAX_AGENTS {
            return Err(format!(
                "more than {MAX_AGENTS} BLF entities; {agent} not followed"
            ));
        }
        let status = {
            let cur = self.blf.entry(agent.clone()).or_default();
            if info.full {
                *cur = info.dialogs;
            } else {
                for d in info.dialogs {
                    cur.retain(|x| x.id != d.id);
                    if d.state != DialogState::Terminated {
                        cur.push(d);
                    }
                }
            }
            cur.retain(|d| d.state != DialogState::Terminated);
            dialog_info::status_of(cur.iter())
        };
        if self.blf.get(&agent).is_some_and(Vec::is_empty) {
            self.blf.remove(&agent);
        }
        self.agent_state(&agent, status, None, ts, out);
        Ok(())
    }
}
