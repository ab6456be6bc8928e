//! Reconnect delays shared by every source that dials out or binds: doubling
//! from a minimum to a maximum, each delay randomised to 50..100 % so a fleet
//! of clients does not reconnect in lockstep after a PBX restart.

use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// 0.5 s doubling to 30 s.
    pub fn new() -> Self {
        Self::with_bounds(Duration::from_millis(500), Duration::from_secs(30))
    }

    /// Doubling from `min` (at least 10 ms) to `max` (at least `min`).
    pub fn with_bounds(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(10));
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::with_bounds(Duration::from_millis(100), Duration::from_millis(800));
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (i, x) in d.iter().enumerate() {
            let nominal = Duration::from_millis((100u64 << i).min(800));
            assert!(*x >= nominal / 2 && *x <= nominal, "{i}: {x:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
