//! Shifts: the floor's working day cut into named, non-overlapping spans of
//! local time (`[[shifts]] name, from, to`), every day.
//!
//! Why shift edges must sit on interval boundaries: a handover's queue
//! figures are the sum of the shift's closed intervals (the same rows
//! `acdmon report` reads), so that the handover and the interval history
//! never disagree. A shift ending mid-interval would have to split an
//! interval's calls, which nothing records.

use jiff::civil::{Date, Time};

use crate::time::Ts;

/// One compiled `[[shifts]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    pub name: String,
    /// Local start; `from > to` wraps midnight (a night shift ends on the
    /// next day and belongs to the day it started).
    pub from: Time,
    pub to: Time,
}

/// One occurrence of a shift: the instants it ran between.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShiftSpan {
    pub shift: String,
    /// The local date the shift started on (`YYYY-MM-DD`).
    pub day: String,
    pub start: Ts,
    pub end: Ts,
}

fn minutes(t: Time) -> i32 {
    i32::from(t.hour()) * 60 + i32::from(t.minute())
}

impl Shift {
    /// Minutes after midnight it covers, as one or two `[a, b)` ranges.
    fn ranges(&self) -> Vec<(i32, i32)> {
        let (f, t) = (minutes(self.from), minutes(self.to));
        if f < t {
            vec![(f, t)]
        } else {
            vec![(f, 1440), (0, t)]
        }
    }

    /// Does it overlap `other` anywhere in the day?
    pub fn overlaps(&self, other: &Shift) -> bool {
        self.ranges().iter().any(|&(a, b)| {
            other
                .ranges()
                .iter()
                .any(|&(c, d)| a < d && c < b && a < b && c < d)
        })
    }

    /// The occurrence that started on local date `day`.
    pub fn on(&self, day: Date, zone: &jiff::tz::TimeZone) -> Option<ShiftSpan> {
        let end_day = if self.from < self.to {
            day
        } else {
            day.tomorrow().ok()?
        };
        let at = |d: Date, t: Time| -> Option<Ts> {
            let z = d.to_datetime(t).to_zoned_datetime(zone.clone()).ok()?;
            Some(Ts(z.timestamp().as_millisecond()))
        };
        Some(ShiftSpan {
            shift: self.name.clone(),
            day: day.to_string(),
            start: at(day, self.from)?,
            end: at(end_day, self.to)?,
        })
    }
}

/// Checks a shift's times: `HH:MM` on a whole minute, from != to, and on
/// the boundary of every interval length in use (`interval_ms`).
pub fn check_time(t: Time, interval_ms: &[i64]) -> Result<(), String> {
    if t.second() != 0 || t.subsec_nanosecond() != 0 {
        return Err("shift times are whole minutes (HH:MM)".into());
    }
    let m = i64::from(minutes(t)) * 60_000;
    for &i in interval_ms {
        if i > 0 && m % i != 0 {
            return Err(format!(
                "must be on an interval boundary (every {} min): a handover adds up whole intervals",
                i / 60_000
            ));
        }
    }
    Ok(())
}

/// The latest occurrence of any shift that ended at or before `now`.
pub fn last_ended(shifts: &[Shift], now: Ts, zone: &jiff::tz::TimeZone) -> Option<ShiftSpan> {
    spans_around(shifts, now, zone)
        .filter(|s| s.end <= now)
        .max_by_key(|s| s.end)
}

/// The first occurrence of any shift that ends after `now`.
pub fn next_ending(shifts: &[Shift], now: Ts, zone: &jiff::tz::TimeZone) -> Option<ShiftSpan> {
    spans_around(shifts, now, zone)
        .filter(|s| s.end > now)
        .min_by_key(|s| s.end)
}

/// The first start of any shift after `now` (the end of a gap).
pub fn next_starting(shifts: &[Shift], now: Ts, zone: &jiff::tz::TimeZone) -> Option<Ts> {
    spans_around(shifts, now, zone)
        .map(|s| s.start)
        .filter(|&t| t > now)
        .min()
}

/// The occurrence running at `now`, if any.
pub fn current(shifts: &[Shift], now: Ts, zone: &jiff::tz::TimeZone) -> Option<ShiftSpan> {
    spans_around(shifts, now, zone).find(|s| s.start <= now && now < s.end)
}

/// Occurrences starting on the local day of `now`, the one before and the
/// one after (a shift is at most a day long).
fn spans_around<'a>(
    shifts: &'a [Shift],
    now: Ts,
    zone: &'a jiff::tz::TimeZone,
) -> impl Iterator<Item = ShiftSpan> + 'a {
    let today = now.to_jiff().to_zoned_datetime(zone.clone()).date();
    let days = [today.yesterday().ok(), Some(today), today.tomorrow().ok()];
    days.into_iter()
        .flatten()
        .flat_map(move |d| shifts.iter().filter_map(move |s| s.on(d, zone)))
}

/// Occurrences that started on local date `day` (for `report --handover`).
pub fn spans_on(shifts: &[Shift], day: Date, zone: &jiff::tz::TimeZone) -> Vec<ShiftSpan> {
    let mut v: Vec<ShiftSpan> = shifts.iter().filter_map(|s| s.on(day, zone)).collect();
    v.sort_by_key(|s| s.start);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(name: &str, from: &str, to: &str) -> Shift {
        Shift {
            name: name.into(),
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
        }
    }

    #[test]
    fn a_night_shift_wraps_midnight_and_belongs_to_the_day_it_started() {
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let day = shift("day", "08:00", "20:00");
        let night = shift("night", "20:00", "08:00");
        assert!(!day.overlaps(&night));
        assert!(night.overlaps(&shift("late", "06:00", "09:00")));
        assert!(day.overlaps(&shift("late", "06:00", "09:00")));
        assert!(!day.overlaps(&shift("early", "06:00", "08:00")));
        let d: Date = "2026-11-23".parse().unwrap();
        let n = night.on(d, &zone).unwrap();
        assert_eq!(n.start, Ts::parse_rfc3339("2026-11-23T12:00:00Z").unwrap());
        assert_eq!(n.end, Ts::parse_rfc3339("2026-11-24T00:00:00Z").unwrap());
        // At 03:00 on the 24th the night shift of the 23rd is running.
        let t = Ts::parse_rfc3339("2026-11-23T19:00:00Z").unwrap();
        let shifts = [day, night];
        assert_eq!(current(&shifts, t, &zone).unwrap().day, "2026-11-23");
        assert_eq!(next_ending(&shifts, t, &zone).unwrap().end, n.end);
        assert_eq!(last_ended(&shifts, t, &zone).unwrap().shift, "day");
    }

    #[test]
    fn shift_edges_sit_on_interval_boundaries() {
        let t: Time = "08:10".parse().unwrap();
        assert!(check_time(t, &[900_000]).is_err());
        assert!(check_time(t, &[600_000, 300_000]).is_ok());
    }
}
