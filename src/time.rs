//! Event time. acdmon has one clock: the timestamps carried by events. The
//! live daemon also advances it with wall time on a tick (so windows roll and
//! waits grow while the floor is quiet); `replay` advances it only with event
//! timestamps, so a recorded day runs in seconds and tests never sleep.

use std::fmt;

use serde::{Serialize, Serializer};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

impl Ts {
    pub const ZERO: Ts = Ts(0);

    pub fn from_secs_f64(s: f64) -> Ts {
        Ts((s * 1000.0).round() as i64)
    }

    pub fn from_secs(s: i64) -> Ts {
        Ts(s.saturating_mul(1000))
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
        (self.0 - earlier.0).max(0)
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
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC with millisecond precision.
    pub fn rfc3339(self) -> String {
        format!("{:.3}", self.to_jiff())
    }

    /// Parses an RFC 3339 timestamp (offset required).
    pub fn parse_rfc3339(s: &str) -> Option<Ts> {
        let t: jiff::Timestamp = s.parse().ok()?;
        Some(Ts(t.as_millisecond()))
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
