use super::*;

#[test]
fn a_plan_reports_every_bad_line() {
    let text = "agent,start,end,activity\n\
        a1,2026-11-23 09:00,2026-11-23 12:00,phone\n\
        a1,2026-11-23 11:00,2026-11-23 11:15,break\n\
        zz,2026-11-23 09:00,2026-11-23 12:00,phone\n\
        a1,2026-11-23 13:00,2026-11-23 12:00,phone\n\
        a1,09:00,10:00,phone\n\
        a1,2026-11-23T14:00:00+08:00,2026-11-23T15:00:00+08:00\n";
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let e = parse_plan(text, &zone, &|a| a == "a1").unwrap_err();
    let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7], "{e:#?}");
    assert!(e[0].message.contains("overlaps the one on line 2"));
    assert!(e[1].message.contains("unknown agent `zz`"));
}

#[test]
fn local_and_rfc3339_times_are_the_same_instant() {
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let p = parse_plan(
        "a1,2026-11-23 09:00,2026-11-23T10:00:00+08:00,phone\n",
        &zone,
        &|_| true,
    )
    .unwrap();
    let s = &p.agents["a1"][0];
    assert_eq!(s.end.since(s.start), 3_600_000);
    assert_eq!(p.at("a1", s.start).map(|s| &*s.activity), Some("phone"));
    assert_eq!(p.at("a1", s.end), None);
    assert_eq!(p.next_boundary(s.start), Some(s.end));
}
