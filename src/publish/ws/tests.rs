use super::*;

fn frame(from: u64, seq: u64, bytes: usize) -> Arc<Frame> {
    Arc::new(Frame {
        number: seq,
        from,
        seq,
        reset: false,
        as_of: Ts(0),
        queues: Vec::new(),
        agents: Vec::new(),
        escalations: Vec::new(),
        trend: false,
        text: Utf8Bytes::from("x".repeat(bytes)),
        v2: ws_v2::Changes::default(),
        v2_ready: false,
    })
}

#[test]
fn history_serves_resume_only_while_it_reaches_back() {
    let mut h = History::new(10, 3, 1000);
    assert_eq!(h.after(10).map(|v| v.len()), Some(0), "nothing missed");
    h.push(frame(11, 12, 10));
    h.push(frame(13, 13, 10));
    h.push(frame(14, 16, 10));
    assert_eq!(h.after(10).map(|v| v.len()), Some(3));
    assert_eq!(h.after(13).map(|v| v.len()), Some(1));
    assert!(h.after(9).is_none(), "from before the hub started");
    assert!(
        h.after(17).is_none(),
        "from the future (a restarted daemon)"
    );
    h.push(frame(17, 18, 10));
    assert!(h.after(10).is_none(), "the first frame was evicted");
    assert_eq!(h.after(12).map(|v| v.len()), Some(3));
}

#[test]
fn history_is_bounded_by_bytes_and_cleared_by_a_reset() {
    let mut h = History::new(0, 100, 25);
    for i in 1..=5 {
        h.push(frame(i, i, 10));
    }
    assert_eq!(h.frames.len(), 2);
    assert!(h.bytes <= 25);
    assert!(h.after(2).is_none());
    assert!(h.after(3).is_some());
    let mut r = Frame {
        reset: true,
        ..Arc::try_unwrap(frame(6, 6, 0)).unwrap()
    };
    r.text = Utf8Bytes::from_static("");
    h.push(Arc::new(r));
    assert!(h.after(5).is_none());
    assert_eq!(h.after(6).map(|v| v.len()), Some(0));
}

#[test]
fn params() {
    let p = Params::parse(Some("token=x&queues=hot%20line,billing&since=42")).unwrap();
    assert_eq!(p.since, Some(42));
    let q = p.queues.unwrap();
    assert!(q.contains("hot line") && q.contains("billing") && q.len() == 2);
    assert!(Params::parse(Some("since=abc")).is_err());
    assert_eq!(Params::parse(None).unwrap(), Params::default());
}

#[test]
fn params_take_a_pattern_or_names_not_both() {
    let p = Params::parse(Some("v=2&pattern=repair-*")).unwrap();
    assert_eq!(p.pattern.as_deref(), Some("repair-*"));
    let f = p.filter().unwrap();
    assert!(f.shows("repair-east") && !f.shows("billing"));
    assert!(Params::parse(Some("pattern=a*&queues=b")).is_err());
    assert_eq!(
        Params::parse(Some("pattern=")).unwrap().filter(),
        None,
        "an empty pattern is not given"
    );
    assert_eq!(Params::parse(Some("v=2")).unwrap().filter(), None);
}

/// Version 1 resumes by frame number (its `seq`), version 2 by engine
/// change: the same history answers both.
#[test]
fn history_resumes_by_frame_number_and_by_engine_seq() {
    let mut h = History::new(0, 3, 1000);
    for (number, from, seq) in [(1, 1, 10), (2, 11, 25), (3, 26, 26)] {
        let mut f = Arc::try_unwrap(frame(from, seq, 10)).unwrap();
        f.number = number;
        h.push(Arc::new(f));
    }
    assert_eq!(h.after_number(1).map(|v| v.len()), Some(2));
    assert_eq!(h.after_number(3).map(|v| v.len()), Some(0));
    assert!(h.after_number(4).is_none(), "a number never issued");
    assert_eq!(h.after(10).map(|v| v.len()), Some(2));
    assert_eq!(h.after(25).map(|v| v.len()), Some(1));
    let mut f = Arc::try_unwrap(frame(27, 30, 10)).unwrap();
    f.number = 4;
    h.push(Arc::new(f));
    assert!(h.after_number(0).is_none(), "frame 1 was evicted");
    assert_eq!(h.after_number(1).map(|v| v.len()), Some(3));
}
