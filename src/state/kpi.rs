//! The one place that turns counters into the figures users see
//! (contract section 4): the four service-level formulas, ASA, AHT and
//! abandon rate. A ratio with a zero denominator is `null`, never 0 or NaN.

use serde::{Deserialize, Serialize};

use super::window::Tally;

/// Which service-level formula a queue reports as `service_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlFormula {
    /// answered_in_sl / answered
    Answered,
    /// answered_in_sl / offered
    Offered,
    /// answered_in_sl / (offered - short_abandoned)
    #[default]
    AbandonNegative,
    /// (answered_in_sl + abandoned_in_sl) / offered
    AbandonPositive,
}

/// How a wait is judged against the service-level threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlRound {
    /// The wait as measured, to the millisecond: 20.02 s is over a 20 s
    /// threshold.
    #[default]
    Exact,
    /// As Asterisk's app_queue does (`now - qe->start <= servicelevel`,
    /// both whole epoch seconds): the whole seconds of the answer time minus
    /// those of the join time. For centres that reconcile with Asterisk's
    /// own service-level figures.
    WholeSeconds,
}

impl SlRound {
    /// The wait from `joined` to `at` (epoch ms) as this rule counts it.
    pub fn wait_ms(self, joined_ms: i64, at_ms: i64) -> i64 {
        match self {
            SlRound::Exact => at_ms - joined_ms,
            SlRound::WholeSeconds => {
                (at_ms.div_euclid(1000) - joined_ms.div_euclid(1000)).saturating_mul(1000)
            }
        }
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// All four service-level variants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlVariants {
    pub answered: Option<f64>,
    pub offered: Option<f64>,
    pub abandon_negative: Option<f64>,
    pub abandon_positive: Option<f64>,
}

impl SlVariants {
    pub fn from_tally(t: &Tally) -> Self {
        let offered = t.offered();
        SlVariants {
            answered: ratio(t.answered_in_sl, t.answered),
            offered: ratio(t.answered_in_sl, offered),
            abandon_negative: ratio(t.answered_in_sl, offered.saturating_sub(t.short_abandoned)),
            abandon_positive: ratio(t.answered_in_sl + t.abandoned_in_sl, offered),
        }
    }

    pub fn pick(&self, f: SlFormula) -> Option<f64> {
        match f {
            SlFormula::Answered => self.answered,
            SlFormula::Offered => self.offered,
            SlFormula::AbandonNegative => self.abandon_negative,
            SlFormula::AbandonPositive => self.abandon_positive,
        }
    }
}

/// `W` of contract section 4. Ratios are rounded to 4 decimals (a step of
/// 0.01 %, finer than any SL target) for the API, the wall and `/metrics`,
/// which writes these views; the ladder's `when` expressions read the
/// unrounded [`service_level`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    pub offered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub abandoned_in_sl: u64,
    pub short_abandoned: u64,
    pub exited: u64,
    pub service_level: Option<f64>,
    pub sl: SlVariants,
    pub asa_s: Option<f64>,
    pub aht_s: Option<f64>,
    pub abandon_rate: Option<f64>,
    /// Calls that entered the queue in the window (extension).
    pub arrivals: u64,
    /// Bridged calls that ended in the window (extension; AHT's denominator).
    pub handled: u64,
}

impl WindowView {
    pub fn from_tally(t: &Tally, formula: SlFormula) -> Self {
        let sl = SlVariants::from_tally(t);
        let offered = t.offered();
        let r4 = |x: Option<f64>| x.map(round4);
        WindowView {
            offered,
            answered: t.answered,
            answered_in_sl: t.answered_in_sl,
            abandoned: t.abandoned,
            abandoned_in_sl: t.abandoned_in_sl,
            short_abandoned: t.short_abandoned,
            exited: t.exited,
            service_level: r4(sl.pick(formula)),
            sl: SlVariants {
                answered: r4(sl.answered),
                offered: r4(sl.offered),
                abandon_negative: r4(sl.abandon_negative),
                abandon_positive: r4(sl.abandon_positive),
            },
            asa_s: asa_s(t).map(round3),
            aht_s: aht_s(t).map(round3),
            abandon_rate: r4(ratio(t.abandoned, offered)),
            arrivals: t.arrivals,
            handled: t.handled,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Average speed of answer: mean wait of answered calls, seconds.
pub fn asa_s(t: &Tally) -> Option<f64> {
    (t.answered > 0).then(|| t.answered_wait_ms as f64 / 1000.0 / t.answered as f64)
}

/// Average handle time: (talk + after-call work) per handled call, seconds.
pub fn aht_s(t: &Tally) -> Option<f64> {
    (t.handled > 0).then(|| (t.talk_ms + t.acw_ms) as f64 / 1000.0 / t.handled as f64)
}

/// Unrounded service level with the queue's formula.
pub fn service_level(t: &Tally, f: SlFormula) -> Option<f64> {
    SlVariants::from_tally(t).pick(f)
}

/// Unrounded abandon rate.
pub fn abandon_rate(t: &Tally) -> Option<f64> {
    ratio(t.abandoned, t.offered())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asterisk subtracts whole epoch seconds: 20.02 s spanning 21 second
    /// boundaries is 21, 20.9 s inside them is 20.
    #[test]
    fn whole_seconds_count_second_boundaries_as_asterisk_does() {
        assert_eq!(SlRound::Exact.wait_ms(100_990, 121_010), 20_020);
        assert_eq!(SlRound::WholeSeconds.wait_ms(100_990, 121_010), 21_000);
        assert_eq!(SlRound::WholeSeconds.wait_ms(100_000, 120_900), 20_000);
        assert_eq!(SlRound::WholeSeconds.wait_ms(-1, 0), 1_000);
    }

    /// The worked example of contract section 4.
    #[test]
    fn contract_example() {
        let t = Tally {
            answered: 100,
            answered_in_sl: 80,
            abandoned: 15,
            abandoned_in_sl: 8,
            short_abandoned: 3,
            exited: 5,
            answered_wait_ms: 1_250_000,
            handled: 100,
            talk_ms: 21_000_000,
            ..Tally::default()
        };
        let w = WindowView::from_tally(&t, SlFormula::AbandonNegative);
        assert_eq!(w.offered, 120);
        assert_eq!(w.sl.answered, Some(0.8));
        assert_eq!(w.sl.offered, Some(0.6667));
        assert_eq!(w.sl.abandon_negative, Some(0.6838));
        assert_eq!(w.sl.abandon_positive, Some(0.7333));
        assert_eq!(w.service_level, Some(0.6838));
        assert_eq!(w.asa_s, Some(12.5));
        assert_eq!(w.aht_s, Some(210.0));
        assert_eq!(w.abandon_rate, Some(0.125));
    }

    #[test]
    fn empty_window_is_null_not_zero() {
        let w = WindowView::from_tally(&Tally::default(), SlFormula::Answered);
        assert_eq!(w.service_level, None);
        assert_eq!(w.asa_s, None);
        assert_eq!(w.abandon_rate, None);
    }
}
