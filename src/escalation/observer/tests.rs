use std::time::Duration;

use super::*;
use crate::sources::ami::cti::{AmiCti, SignOutMode};
use crate::sources::ami::{AgentIds, AmiReplay};
use crate::state::{AgentProfile, EngineConfig};

/// Real Asterisk 20.20.1: static members 2001 and 2002 of `support`
/// paused with reason "acdmon" (a pause-mode sign-out), 2003 paused for
/// lunch, then 2001 unpaused (a pause-mode sign-in) and 2004 added by
/// `queue reload members`. The ladder may sign 2002 in again, and only
/// 2002: not the agent on lunch, not those already taking calls.
#[test]
fn a_member_paused_by_a_pause_mode_sign_out_is_eligible_again() {
    let capture = include_bytes!("../../../tests/data/ami/asterisk20_reload_pause.ami");
    let agents = ["2001", "2002", "2003", "2004"]
        .iter()
        .map(|id| AgentProfile {
            id: id.to_string(),
            interface: Some(format!("Local/{id}@agents/n")),
            source: Some("pbx".into()),
            groups: vec!["backup".into()],
            ..AgentProfile::default()
        })
        .collect();
    let mut r = AmiReplay::new(AgentIds::default());
    let evs: Vec<_> = r
        .feed(capture)
        .into_iter()
        .chain(r.finish())
        .collect::<Result<_, _>>()
        .unwrap();
    let mut engine = Engine::starting_at(
        EngineConfig {
            agents,
            ..EngineConfig::default()
        },
        evs[0].ts,
    );
    for ev in evs {
        engine.apply(ev).unwrap();
    }
    let (tx, _rx) = mpsc::channel(1);
    let cti = CtiRegistry::new();
    let candidates = |cti: &CtiRegistry, engine: &mut Engine| {
        let q = engine.queue_index("support");
        let floor = EngineFloor {
            engine,
            q,
            assignments: &HashMap::new(),
            cti,
        };
        let mut c: Vec<String> = floor
            .candidates("backup")
            .into_iter()
            .map(|c| c.agent)
            .collect();
        c.sort();
        c
    };
    // Signing out by removal: a paused member is still in the queue.
    let remove = AmiCti::new(
        tx.clone(),
        SignOutMode::Remove,
        "acdmon".into(),
        Duration::from_secs(1),
    );
    cti.insert("pbx", Arc::new(remove));
    assert!(candidates(&cti, &mut engine).is_empty());
    let pause = AmiCti::new(
        tx,
        SignOutMode::Pause,
        "acdmon".into(),
        Duration::from_secs(1),
    );
    cti.insert("pbx", Arc::new(pause));
    assert_eq!(candidates(&cti, &mut engine), ["2002"]);
}
