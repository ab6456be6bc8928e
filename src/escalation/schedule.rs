//! Schedules: which ladder a queue runs at a given local time.
//!
//! A hotline's plan changes with the shift: at night the non-phone staff join
//! at once, on public holidays a few seats are kept spare. Rather than one
//! ladder with time conditions inside its expressions, each schedule names a
//! whole ladder and the time it applies; the first schedule that matches wins
//! (so the holiday calendar is listed before the nightly window), and outside
//! every schedule a queue runs its own `ladder`. Times are local to `[time]
//! zone`, so "22:00" means 22:00 on the floor's wall clock across DST.

use jiff::civil::{Date, DateTime, Time, Weekday};

/// One compiled `[[schedules]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    /// Local dates the schedule is on (empty: any date).
    pub dates: Vec<Date>,
    /// Weekdays the schedule is on (empty: any weekday).
    pub weekdays: Vec<Weekday>,
    /// Time-of-day window `[from, to)`; `from > to` wraps midnight, and the
    /// part after midnight belongs to the previous day (Friday's night shift
    /// runs into Saturday morning).
    pub window: Option<(Time, Time)>,
    /// The ladder to run; `None`: no ladder while on.
    pub ladder: Option<String>,
    /// Queues it applies to (empty: every queue).
    pub queues: Vec<String>,
    /// `select_ladder = false`: the schedule is only a time window for
    /// `[[posts]]` `when` (a night post), and never chooses a ladder.
    /// Without it a post-only window with no `ladder` would turn every
    /// queue's ladder off while it is on.
    pub select_ladder: bool,
}

impl Schedule {
    /// Does the schedule choose the ladder of `queue` at local time `t`?
    pub fn matches(&self, queue: &str, t: DateTime) -> bool {
        if !self.select_ladder {
            return false;
        }
        if !self.queues.is_empty() && !self.queues.iter().any(|q| q == queue) {
            return false;
        }
        self.on_at(t)
    }

    /// Is the schedule's time window on at local time `t` (whatever its
    /// queues)? What a post's `when` asks.
    pub fn on_at(&self, t: DateTime) -> bool {
        let mut day = t.date();
        if let Some((from, to)) = self.window {
            let tod = t.time();
            let on = if from <= to {
                tod >= from && tod < to
            } else {
                tod >= from || tod < to
            };
            if !on {
                return false;
            }
            if from > to && tod < to {
                day = day.yesterday().unwrap_or(day);
            }
        }
        (self.dates.is_empty() || self.dates.contains(&day))
            && (self.weekdays.is_empty() || self.weekdays.contains(&day.weekday()))
    }
}

/// The ladder `queue` runs at local time `t`: the first matching schedule's
/// (with its name), else `base` (the queue's own).
pub fn ladder_for<'a>(
    schedules: &'a [Schedule],
    queue: &str,
    base: Option<&'a str>,
    t: DateTime,
) -> (Option<&'a str>, Option<&'a str>) {
    for s in schedules {
        if s.matches(queue, t) {
            return (s.ladder.as_deref(), Some(s.name.as_str()));
        }
    }
    (base, None)
}

/// Parses `"mon"`..`"sun"` (also full English names).
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    let s = s.to_ascii_lowercase();
    Some(match s.get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
    .filter(|_| {
        [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ]
        .iter()
        .any(|full| *full == s || full[..3] == s)
    })
}

/// Parses `"HH:MM"` (or `"HH:MM:SS"`), 00:00 to 23:59.
pub fn parse_time(s: &str) -> Option<Time> {
    let mut it = s.split(':');
    let h: i8 = it.next()?.parse().ok()?;
    let m: i8 = it.next()?.parse().ok()?;
    let sec: i8 = match it.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if it.next().is_some() {
        return None;
    }
    Time::new(h, m, sec, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn night() -> Schedule {
        Schedule {
            name: "night".into(),
            dates: vec![],
            weekdays: vec![Weekday::Friday],
            window: Some((parse_time("22:00").unwrap(), parse_time("08:00").unwrap())),
            ladder: Some("night".into()),
            queues: vec![],
            select_ladder: true,
        }
    }

    #[test]
    fn a_night_window_wraps_midnight_and_belongs_to_the_evening() {
        let s = night();
        // 2026-11-27 is a Friday.
        assert!(s.matches("q", date(2026, 11, 27).at(23, 0, 0, 0)));
        assert!(
            s.matches("q", date(2026, 11, 28).at(2, 0, 0, 0)),
            "Saturday 02:00 is Friday's night"
        );
        assert!(
            !s.matches("q", date(2026, 11, 28).at(23, 0, 0, 0)),
            "Saturday night is not Friday's"
        );
        assert!(!s.matches("q", date(2026, 11, 27).at(21, 59, 0, 0)));
        assert!(
            !s.matches("q", date(2026, 11, 28).at(8, 0, 0, 0)),
            "to is exclusive"
        );
    }

    #[test]
    fn first_match_wins() {
        let holiday = Schedule {
            name: "holidays".into(),
            dates: vec![date(2026, 11, 27)],
            weekdays: vec![],
            window: None,
            ladder: Some("holiday".into()),
            queues: vec!["hotline".into()],
            select_ladder: true,
        };
        let all = [holiday, night()];
        let t = date(2026, 11, 27).at(23, 0, 0, 0);
        assert_eq!(
            ladder_for(&all, "hotline", Some("day"), t),
            (Some("holiday"), Some("holidays"))
        );
        assert_eq!(
            ladder_for(&all, "billing", Some("day"), t),
            (Some("night"), Some("night"))
        );
        let noon = date(2026, 11, 26).at(12, 0, 0, 0);
        assert_eq!(
            ladder_for(&all, "billing", Some("day"), noon),
            (Some("day"), None)
        );
    }

    /// A night window written for a post (`select_ladder = false`) is on
    /// for the post but leaves every queue on its own ladder.
    #[test]
    fn a_post_only_window_never_chooses_a_ladder() {
        let post_night = Schedule {
            ladder: None,
            select_ladder: false,
            ..night()
        };
        let t = date(2026, 11, 27).at(23, 0, 0, 0);
        assert!(post_night.on_at(t));
        assert_eq!(
            ladder_for(&[post_night], "hotline", Some("day"), t),
            (Some("day"), None)
        );
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_weekday("Sat"), Some(Weekday::Saturday));
        assert_eq!(parse_weekday("sunday"), Some(Weekday::Sunday));
        assert_eq!(parse_weekday("sundae"), None);
        assert_eq!(parse_weekday("x"), None);
        assert_eq!(parse_time("22:00"), Time::new(22, 0, 0, 0).ok());
        assert_eq!(parse_time("24:00"), None);
        assert_eq!(parse_time("7"), None);
    }
}
