//! RFC 4235 `application/dialog-info+xml` bodies (BLF), read minimally.
//!
//! Only what tells an agent's phone state is kept: the entity, `state`
//! (full/partial), `version`, and each dialog's id, direction and state.
//! Prefixed or default namespaces are both accepted (local names only).
//! Safe by construction: quick-xml resolves no external entities and
//! expands no DTDs; bodies are bounded by the packet size and at most
//! [`MAX_DIALOGS`] dialogs are read.

use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::{Reader, XmlVersion};

use crate::event::AgentStatus;

pub const MAX_DIALOGS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Trying,
    Proceeding,
    Early,
    Confirmed,
    Terminated,
}

impl DialogState {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "trying" => DialogState::Trying,
            "proceeding" => DialogState::Proceeding,
            "early" => DialogState::Early,
            "confirmed" => DialogState::Confirmed,
            "terminated" => DialogState::Terminated,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogEntry {
    pub id: String,
    /// `recipient` (also OPAL's non-standard `receiver`) is true; an
    /// absent direction is `None`.
    pub incoming: Option<bool>,
    pub state: DialogState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfo {
    pub entity: String,
    pub full: bool,
    pub version: Option<u64>,
    pub dialogs: Vec<DialogEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialogInfoError {
    #[error("XML error: {0}")]
    Xml(String),
    #[error("no dialog-info root element")]
    NoRoot,
    #[error("dialog-info without entity")]
    NoEntity,
    #[error("more than {MAX_DIALOGS} dialogs")]
    TooMany,
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

pub fn parse(body: &[u8]) -> Result<DialogInfo, DialogInfoError> {
    let text = std::str::from_utf8(body).map_err(|_| DialogInfoError::Xml("not UTF-8".into()))?;
    let mut r = Reader::from_str(text);
    r.config_mut().trim_text(true);
    let mut info: Option<DialogInfo> = None;
    let mut current: Option<DialogEntry> = None;
    let mut in_state = false;
    let mut depth_in_dialog = 0usize;
    loop {
        let ev = r
            .read_event()
            .map_err(|e| DialogInfoError::Xml(e.to_string()))?;
        match ev {
            XmlEvent::Start(ref e) | XmlEvent::Empty(ref e) => {
                let empty = matches!(ev, XmlEvent::Empty(_));
                let name = e.local_name();
                match name.as_ref() {
                    "dialog-info" if info.is_none() => {
                        let entity = attr(e, "entity").ok_or(DialogInfoError::NoEntity)?;
                        info = Some(DialogInfo {
                            entity,
                            full: attr(e, "state").is_none_or(|s| s.trim() != "partial"),
                            version: attr(e, "version").and_then(|v| v.trim().parse().ok()),
                            dialogs: Vec::new(),
                        });
                    }
                    "dialog" if info.is_some() && current.is_none() => {
                        let dir = attr(e, "direction");
                        let d = DialogEntry {
                            id: attr(e, "id").unwrap_or_default(),
                            incoming: dir.map(|d| matches!(d.trim(), "recipient" | "receiver")),
                            // A dialog element without a state says nothing
                            // is going on.
                            state: DialogState::Terminated,
                        };
                        if empty {
                            push(&mut info, d)?;
                        } else {
                            current = Some(d);
                            depth_in_dialog = 0;
                        }
                    }
                    "state" if current.is_some() && depth_in_dialog == 0 && !empty => {
                        in_state = true
                    }
                    _ => {
                        if current.is_some() && !empty {
                            depth_in_dialog += 1;
                        }
                    }
                }
            }
            XmlEvent::Text(t) if in_state => {
                if let (Some(d), Some(st)) = (current.as_mut(), DialogState::parse(&t)) {
                    d.state = st;
                }
            }
            XmlEvent::End(e) => match e.local_name().as_ref() {
                "state" if in_state => in_state = false,
                "dialog" if current.is_some() && depth_in_dialog == 0 => {
                    if let Some(d) = current.take() {
                        push(&mut info, d)?;
                    }
                }
                _ => {
                    if current.is_some() {
                        depth_in_dialog = depth_in_dialog.saturating_sub(1);
                    }
                }
            },
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    info.ok_or(DialogInfoError::NoRoot)
}

fn push(info: &mut Option<DialogInfo>, d: DialogEntry) -> Result<(), DialogInfoError> {
    if let Some(i) = info.as_mut() {
        if i.dialogs.len() >= MAX_DIALOGS {
            return Err(DialogInfoError::TooMany);
        }
        i.dialogs.push(d);
    }
    Ok(())
}

/// The agent status a set of dialogs implies: any confirmed dialog is a
/// call; an early incoming one is ringing; an early outgoing one (the agent
/// dialling) is busy too; none, or all terminated, is available.
///
/// Asterisk shows "not in use" and "unavailable" both as `terminated`
/// (protocols.md 4.3), so BLF alone never says an agent logged out.
pub fn status_of<'a>(dialogs: impl IntoIterator<Item = &'a DialogEntry>) -> AgentStatus {
    let mut status = AgentStatus::Available;
    for d in dialogs {
        match d.state {
            DialogState::Confirmed => return AgentStatus::OnCall,
            DialogState::Trying | DialogState::Proceeding | DialogState::Early => {
                status = if d.incoming == Some(false) {
                    AgentStatus::OnCall
                } else if status == AgentStatus::OnCall {
                    status
                } else {
                    AgentStatus::Ringing
                };
            }
            DialogState::Terminated => {}
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASTERISK_RINGING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:1001@pbx.example.com">
 <dialog id="1001" call-id="pickup-abc" local-tag="x" remote-tag="y" direction="recipient">
  <remote>
   <identity display="Alice">sip:alice@example.com</identity>
   <target uri="sip:alice@example.com"/>
  </remote>
  <local>
   <identity display="1001">sip:1001@pbx.example.com</identity>
   <target uri="sip:1001@pbx.example.com"/>
  </local>
  <state>early</state>
 </dialog>
</dialog-info>"#;

    #[test]
    fn asterisk_ringing_is_ringing() {
        let i = parse(ASTERISK_RINGING.as_bytes()).unwrap();
        assert_eq!(i.entity, "sip:1001@pbx.example.com");
        assert!(i.full);
        assert_eq!(i.version, Some(3));
        assert_eq!(i.dialogs.len(), 1);
        assert_eq!(i.dialogs[0].incoming, Some(true));
        assert_eq!(i.dialogs[0].state, DialogState::Early);
        assert_eq!(status_of(&i.dialogs), AgentStatus::Ringing);
    }

    #[test]
    fn prefixed_namespace_partial_and_several_dialogs() {
        let x = r#"<d:dialog-info xmlns:d="urn:ietf:params:xml:ns:dialog-info" version="9" state="partial" entity="sip:agent-7@h">
            <d:dialog id="a" direction="initiator"><d:state event="remote-bye" code="200">terminated</d:state></d:dialog>
            <d:dialog id="b" direction="receiver"><d:state>confirmed</d:state></d:dialog>
        </d:dialog-info>"#;
        let i = parse(x.as_bytes()).unwrap();
        assert!(!i.full);
        assert_eq!(i.dialogs[1].incoming, Some(true));
        assert_eq!(status_of(&i.dialogs), AgentStatus::OnCall);
    }

    #[test]
    fn idle_phone_and_garbage() {
        let idle = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="4" state="full" entity="sip:1001@h"/>"#;
        let i = parse(idle.as_bytes()).unwrap();
        assert_eq!(status_of(&i.dialogs), AgentStatus::Available);
        assert!(parse(b"<nope/>").is_err());
        assert!(parse(b"<dialog-info><dialog>").is_err());
        assert!(parse(b"\xff\xfe").is_err());
        // An entity bomb is not expanded: quick-xml reads no DTD.
        let bomb = r#"<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>
            <dialog-info entity="sip:&b;@h"/>"#;
        let _ = parse(bomb.as_bytes());
        let many: String = std::iter::once(r#"<dialog-info entity="sip:1@h">"#.to_string())
            .chain((0..100).map(|i| format!(r#"<dialog id="{i}"><state>early</state></dialog>"#)))
            .chain(std::iter::once("</dialog-info>".to_string()))
            .collect();
        assert_eq!(parse(many.as_bytes()), Err(DialogInfoError::TooMany));
    }

    #[test]
    fn outgoing_early_is_busy() {
        let x = r#"<dialog-info entity="sip:1@h"><dialog id="o" direction="initiator"><state>early</state></dialog></dialog-info>"#;
        assert_eq!(
            status_of(&parse(x.as_bytes()).unwrap().dialogs),
            AgentStatus::OnCall
        );
    }
}
