use super::*;
use crate::sources::esl::lists::MemberRow;

fn row(uuid: &str, state: &str, joined: i64, bridge: i64, abandoned: i64) -> MemberRow {
    MemberRow {
        queue: "support@default".into(),
        uuid: uuid.into(),
        joined_epoch: joined,
        bridge_epoch: bridge,
        abandoned_epoch: abandoned,
        state: state.into(),
        serving_agent: if bridge > 0 {
            "1000@default".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

fn lists(members: Vec<MemberRow>) -> Vec<QueueLists> {
    vec![QueueLists {
        queue: "support@default".into(),
        max_wait_s: 300,
        agents: Vec::new(),
        members,
        tiers: Vec::new(),
    }]
}

fn calls_in(out: &[Mapped]) -> Vec<String> {
    out.iter()
        .filter_map(|m| match m {
            Ok(Event {
                kind:
                    EventKind::CallEnqueued { call, .. }
                    | EventKind::CallAnswered { call, .. }
                    | EventKind::CallAbandoned { call, .. },
                ..
            }) => Some(call.clone()),
            _ => None,
        })
        .collect()
}

/// After a restart that restored a checkpoint taken at 10:00:00, the
/// first resync lists a call answered at 09:50 and one abandoned at
/// 09:55 (both counted before the checkpoint) and one answered at
/// 10:00:30 while the daemon was down: only the last is sent.
#[test]
fn rows_decided_before_the_checkpoint_are_not_sent_again() {
    let t10 = 1_800_000_000; // epoch seconds of "10:00:00"
    let mut m = Mapper::new(TimerConfig::default());
    m.counted_until = Some(Ts::from_secs(t10));
    let mut out = Vec::new();
    let rows = vec![
        row("old-answered", "Answered", t10 - 700, t10 - 600, 0),
        row("old-abandoned", "Abandoned", t10 - 320, 0, t10 - 300),
        row("down-answered", "Answered", t10 - 20, t10 + 30, 0),
    ];
    m.apply_resync(Ts::from_secs(t10 + 60), lists(rows.clone()), &mut out);
    let sent = calls_in(&out);
    assert!(sent.iter().all(|c| c == "down-answered"), "{sent:?}");
    assert_eq!(
        sent.len(),
        2,
        "arrival and answer of down-answered: {sent:?}"
    );
    // A later resync that still lists the lingering rows sends nothing.
    let mut again = Vec::new();
    m.apply_resync(Ts::from_secs(t10 + 120), lists(rows), &mut again);
    assert!(calls_in(&again).is_empty(), "{:?}", calls_in(&again));
}

#[test]
fn without_a_checkpoint_every_listed_outcome_counts() {
    let t10 = 1_800_000_000;
    let mut m = Mapper::new(TimerConfig::default());
    let mut out = Vec::new();
    let rows = vec![row("old-answered", "Answered", t10 - 700, t10 - 600, 0)];
    m.apply_resync(Ts::from_secs(t10 + 60), lists(rows), &mut out);
    assert_eq!(calls_in(&out), ["old-answered", "old-answered"]);
}
