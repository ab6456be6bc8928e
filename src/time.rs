//! Event time. acdmon has one clock: the timestamps carried by events. The
//! live daemon also advances it with wall time on a tick (so windows roll and
//! waits grow while the floor is quiet); `replay` advances it only with event
//! timestamps, so a recorded day runs in seconds and tests never sleep.
//!
//! Because the clock is an input, a timestamp is bounded where it enters:
//! [`Ts::EARLIEST`]..[`Ts::LATEST`] is the only range an event may carry
//! (checked by [`Ts::event_time`] at every decoder and again by the engine's
//! [`crate::engine_thread::Driver`] for every source), so no input can reach
//! [`Ts::NEVER`], the "no deadline" sentinel, or a value `jiff` cannot show.

use std::fmt;

use serde::{Serialize, Serializer};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

/// Why a timestamp from input was refused: the text says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Well-formed, but outside [`Ts::EARLIEST`]..[`Ts::LATEST`].
    #[error("{0}")]
    OutOfRange(String),
    /// Not an RFC 3339 timestamp.
    #[error("{0}")]
    Syntax(String),
}

impl Ts {
    pub const ZERO: Ts = Ts(0);
    /// "Never": a deadline that does not come. Internal only; input is
    /// bounded by [`Ts::LATEST`], far below it.
    pub const NEVER: Ts = Ts(i64::MAX);
    /// Earliest time an event may carry: 2000-01-01T00:00:00Z.
    pub const EARLIEST: Ts = Ts(946_684_800_000);
    /// Events must be before 2200-01-01T00:00:00Z.
    pub const LATEST: Ts = Ts(7_258_118_400_000);
    /// The accepted years, for messages.
    pub const YEARS: (i32, i32) = (2000, 2199);

    pub fn from_secs_f64(s: f64) -> Ts {
        Ts((s * 1000.0).round() as i64)
    }

    pub fn from_secs(s: i64) -> Ts {
        Ts(s.saturating_mul(1000))
    }

    /// An event time from epoch milliseconds, refused outside the accepted
    /// range with a message that names the year it would be.
    pub fn event_time(ms: i64) -> Result<Ts, TimeError> {
        let t = Ts(ms);
        if t.in_event_range() {
            return Ok(t);
        }
        let (lo, hi) = Ts::YEARS;
        let when = match jiff::Timestamp::from_millisecond(ms) {
            Ok(j) => format!(
                "year {}",
                j.to_zoned_datetime(jiff::tz::TimeZone::UTC).date().year()
            ),
            Err(_) if ms > 0 => "after the year 9999".to_string(),
            Err(_) => "before the year -9999".to_string(),
        };
        Err(TimeError::OutOfRange(format!(
            "{ms} ms since 1970 is {when}, outside the accepted range {lo}..={hi}"
        )))
    }

    /// Whether an event may carry this time.
    pub fn in_event_range(self) -> bool {
        self >= Ts::EARLIEST && self < Ts::LATEST
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Milliseconds from `earlier` to `self`, never negative: events from two
    /// sources may arrive slightly out of order.
    pub fn since(self, earlier: Ts) -> i64 {
        self.0.saturating_sub(earlier.0).max(0)
    }

    pub fn plus_ms(self, ms: i64) -> Ts {
        Ts(self.0.saturating_add(ms))
    }

    pub fn now() -> Ts {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ts(d.as_millis() as i64)
    }

    pub fn to_jiff(self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(if self.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }

    /// RFC 3339 in UTC with millisecond precision.
    pub fn rfc3339(self) -> String {
        format!("{:.3}", self.to_jiff())
    }

    /// Parses an RFC 3339 timestamp (offset required) in the accepted range;
    /// `None` on any error (see [`Ts::parse_event_time`] for the reason).
    pub fn parse_rfc3339(s: &str) -> Option<Ts> {
        Ts::parse_event_time(s).ok()
    }

    /// Parses every RFC 3339 form: `T`, `t` or a space between date and time
    /// (RFC 3339 section 5.6 note), `Z`, `z`, `+hh:mm`, `-hh:mm` and
    /// `-00:00`, any number of fraction digits (kept to the millisecond), a
    /// leap second `:60` (shown as `:59.999`, the last instant Unix time
    /// can name in that minute). Other forms `jiff` reads (RFC 9557
    /// annotations) are accepted as before. The error says what is wrong.
    pub fn parse_event_time(s: &str) -> Result<Ts, TimeError> {
        match rfc3339::parse(s) {
            Ok(ms) => Ts::event_time(ms).map_err(|_| {
                let (lo, hi) = Ts::YEARS;
                let year = s.get(..4).unwrap_or(s);
                TimeError::OutOfRange(format!(
                    "{s:?}: year {year} is outside the accepted range {lo}..={hi}"
                ))
            }),
            Err(why) => match s.parse::<jiff::Timestamp>() {
                Ok(t) => Ts::event_time(t.as_millisecond()),
                Err(_) => Err(TimeError::Syntax(format!("{s:?}: {why}"))),
            },
        }
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

/// A strict RFC 3339 (`date-time`, section 5.6) reader: plain arithmetic on
/// the fields, so a well-formed year 9999 is read (and then refused for its
/// range with that reason) instead of failing inside a calendar library.
mod rfc3339 {
    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl Cursor<'_> {
        fn digits(&mut self, n: usize, what: &str) -> Result<i64, String> {
            let part = self
                .b
                .get(self.i..self.i + n)
                .filter(|p| p.iter().all(u8::is_ascii_digit))
                .ok_or_else(|| format!("expected {n} digits of {what} at byte {}", self.i + 1))?;
            self.i += n;
            Ok(part.iter().fold(0, |v, d| v * 10 + i64::from(d - b'0')))
        }

        fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
            if self.b.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(what.to_string())
            }
        }

        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }
    }

    fn days_in_month(y: i64, m: i64) -> i64 {
        match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Epoch milliseconds, or what is wrong with the text.
    pub(super) fn parse(s: &str) -> Result<i64, String> {
        let mut c = Cursor {
            b: s.as_bytes(),
            i: 0,
        };
        let date = "expected a date YYYY-MM-DD";
        let year = c.digits(4, "the year").map_err(|_| date.to_string())?;
        c.expect(b'-', date)?;
        let month = c.digits(2, "the month")?;
        c.expect(b'-', date)?;
        let day = c.digits(2, "the day")?;
        match c.peek() {
            Some(b'T' | b't' | b' ') => c.i += 1,
            None => return Err("missing the time (THH:MM:SS) and UTC offset".into()),
            Some(_) => return Err("expected T, t or a space between date and time".into()),
        }
        let hour = c.digits(2, "the hour")?;
        c.expect(b':', "expected HH:MM:SS")?;
        let minute = c.digits(2, "the minutes")?;
        c.expect(b':', "missing seconds (HH:MM:SS)")?;
        let mut second = c.digits(2, "the seconds")?;
        let mut milli = 0;
        if c.peek() == Some(b'.') {
            c.i += 1;
            let start = c.i;
            while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                let d = i64::from(c.b[c.i] - b'0');
                let pos = c.i - start;
                if pos < 3 {
                    milli += d * [100, 10, 1][pos];
                }
                c.i += 1;
            }
            if c.i == start {
                return Err("a '.' must be followed by fraction digits".into());
            }
        }
        let offset_min = match c.peek() {
            Some(b'Z' | b'z') => {
                c.i += 1;
                0
            }
            Some(sign @ (b'+' | b'-')) => {
                c.i += 1;
                let h = c.digits(2, "the offset hours")?;
                c.expect(b':', "expected the offset as ±hh:mm")?;
                let m = c.digits(2, "the offset minutes")?;
                if h > 23 || m > 59 {
                    return Err(format!("offset {h:02}:{m:02} is not a valid ±hh:mm"));
                }
                // -00:00 ("offset unknown", RFC 3339 section 4.3) is UTC.
                let v = h * 60 + m;
                if sign == b'-' { -v } else { v }
            }
            None => return Err("missing UTC offset (end with Z or ±hh:mm)".into()),
            Some(_) => {
                return Err(format!(
                    "unexpected {:?} after the time (expected Z or ±hh:mm)",
                    &s[c.i..]
                ));
            }
        };
        if c.i != c.b.len() {
            return Err(format!("unexpected {:?} after the offset", &s[c.i..]));
        }
        if !(1..=12).contains(&month) {
            return Err(format!("month {month:02} is not 01..12"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(format!(
                "day {day:02} does not exist in {year:04}-{month:02}"
            ));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(format!(
                "time {hour:02}:{minute:02}:{second:02} is not a valid time of day"
            ));
        }
        if second == 60 {
            // A leap second: Unix time has no name for it; the last
            // millisecond of its minute keeps order and date.
            second = 59;
            milli = 999;
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
        Ok(secs * 1000 + milli)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        Ts::parse_event_time(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .0
    }

    #[test]
    fn every_rfc3339_form_is_read() {
        let base = ms("2026-11-23T09:00:00Z");
        assert_eq!(base, 1_795_424_400_000);
        for s in [
            "2026-11-23t09:00:00z",
            "2026-11-23 09:00:00Z",
            "2026-11-23T09:00:00+00:00",
            "2026-11-23T09:00:00-00:00",
            "2026-11-23T10:00:00+01:00",
            "2026-11-23T03:30:00-05:30",
        ] {
            assert_eq!(ms(s), base, "{s}");
        }
        assert_eq!(ms("2026-11-23T09:00:00.5Z"), base + 500);
        assert_eq!(ms("2026-11-23T09:00:00.123456789Z"), base + 123);
        // A leap second keeps its date and order: just before midnight.
        assert_eq!(ms("2016-12-31T23:59:60Z"), ms("2017-01-01T00:00:00Z") - 1);
        // What jiff read before still reads (an RFC 9557 annotation).
        assert_eq!(ms("2026-11-23T10:00:00+01:00[Europe/Berlin]"), base);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |s: &str| match Ts::parse_event_time(s) {
            Ok(t) => panic!("{s} read as {t}"),
            Err(e) => e,
        };
        let e = err("9999-12-31T23:59:59Z");
        assert!(matches!(e, TimeError::OutOfRange(_)), "{e}");
        assert!(
            e.to_string()
                .contains("year 9999 is outside the accepted range"),
            "{e}"
        );
        let e = err("1969-07-20T20:17:40Z").to_string();
        assert!(e.contains("year 1969 is outside"), "{e}");
        for (s, says) in [
            ("2026-11-23T09:00:00", "missing UTC offset"),
            ("2026-11-23", "missing the time"),
            ("2026-13-01T00:00:00Z", "month 13"),
            ("2026-02-29T00:00:00Z", "day 29 does not exist in 2026-02"),
            ("2026-11-23T24:00:00Z", "not a valid time of day"),
            ("2026-11-23T09:00:00.Z", "fraction digits"),
            ("23/11/2026 09:00", "expected a date"),
        ] {
            let e = err(s);
            assert!(matches!(e, TimeError::Syntax(_)), "{s}: {e}");
            assert!(e.to_string().contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn integer_times_are_bounded_and_named() {
        assert!(Ts::event_time(1_795_424_400_000).is_ok());
        let e = Ts::event_time(1_000_000_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("after the year 9999, outside the accepted range"),
            "{e}"
        );
        let e = Ts::event_time(253_402_300_799_000).unwrap_err().to_string();
        assert!(e.contains("year 9999, outside"), "{e}");
        let e = Ts::event_time(i64::MAX).unwrap_err().to_string();
        assert!(e.contains("outside the accepted range"), "{e}");
        assert!(Ts::event_time(0).is_err());
        assert!(!Ts::NEVER.in_event_range());
    }
}
