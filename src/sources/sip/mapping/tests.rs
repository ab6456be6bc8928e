use super::*;

fn rules() -> MappingRules {
    MappingRules::new(&MappingConfig {
        queues: vec![QueueRule {
            pattern: "^q(\\d)$".into(),
            queue: Some("queue-$1".into()),
            match_on: UserFrom::RequestUri,
            answer: AnswerMode::EarlyMedia,
        }],
        agents: vec![AgentRule {
            pattern: "^(?<ext>1\\d{3})$".into(),
            agent: Some("a${ext}".into()),
            match_on: UserFrom::To,
        }],
        ..MappingConfig::default()
    })
    .unwrap()
}

fn invite(call: &str, ruri: &str, to: &str) -> String {
    format!(
        "INVITE sip:{ruri}@h SIP/2.0\r\nFrom: <sip:c@h>;tag=f\r\nTo: <sip:{to}@h>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\r\n"
    )
}

#[test]
fn rules_name_queues_and_agents_with_templates() {
    let m = Mapper::new(rules());
    let text = invite("x", "q7", "whatever");
    let msg = SipMessage::parse(text.as_bytes()).unwrap();
    assert_eq!(
        m.classify(&msg, None),
        Some(Role::Caller {
            queue: "queue-7".into(),
            answer: AnswerMode::EarlyMedia
        })
    );
    let text = invite("y", "anything", "1017");
    let msg = SipMessage::parse(text.as_bytes()).unwrap();
    assert_eq!(
        m.classify(&msg, None),
        Some(Role::Agent {
            agent: "a1017".into(),
            queue: None,
            caller_call: None,
            tagged: false
        })
    );
    let text = invite("z", "999", "reception");
    assert_eq!(
        m.classify(&SipMessage::parse(text.as_bytes()).unwrap(), None),
        None
    );
    assert!(
        MappingRules::new(&MappingConfig {
            queues: vec![QueueRule {
                pattern: "([".into(),
                queue: None,
                match_on: UserFrom::To,
                answer: AnswerMode::Platform
            }],
            ..MappingConfig::default()
        })
        .is_err()
    );
}

#[test]
fn the_fifo_list_of_a_queue_stays_bounded_when_nobody_asks() {
    let mut m = Mapper::new(rules());
    let mut out = Vec::new();
    for i in 0..10_000 {
        let text = invite(&format!("c{i}"), "q1", "x");
        let msg = SipMessage::parse(text.as_bytes()).unwrap();
        let role = m.classify(&msg, None).unwrap();
        m.start(role, &msg, Ts(i), None, &mut out);
        m.handle_leg(
            LegEvent::Failed {
                call_id: format!("c{i}"),
                ts: Ts(i + 1),
                code: 487,
                cancelled: true,
            },
            &mut out,
        );
    }
    assert_eq!(out.len(), 20_000);
    assert!(
        m.waiting["queue-1"].calls.len() <= 128,
        "{}",
        m.waiting["queue-1"].calls.len()
    );
    assert_eq!(m.open_calls(), 0);
}
