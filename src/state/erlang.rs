//! Erlang C staffing: how many agents a queue needs to meet its service-level
//! target, given the arrival rate and the average handle time.
//!
//! Erlang C is computed through the Erlang B recursion
//! `B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1))` and `C = N·B / (N − A·(1 − B))`,
//! which needs no factorials and stays finite for thousands of agents.

/// Offered traffic in Erlangs: arrivals per second times handle time.
pub fn traffic(arrivals_per_s: f64, aht_s: f64) -> f64 {
    arrivals_per_s * aht_s
}

/// Probability that a call waits (Erlang C), for `agents` agents and
/// `traffic` Erlangs. 1.0 when the queue is overloaded (`agents <= traffic`).
pub fn prob_wait(traffic: f64, agents: u32) -> f64 {
    if traffic.is_nan() || traffic <= 0.0 {
        return 0.0;
    }
    let n = agents as f64;
    if n <= traffic {
        return 1.0;
    }
    let mut b = 1.0_f64;
    for k in 1..=agents {
        let ab = traffic * b;
        b = ab / (k as f64 + ab);
    }
    let c = n * b / (n - traffic * (1.0 - b));
    c.clamp(0.0, 1.0)
}

/// Share of calls answered within `threshold_s`.
pub fn service_level(traffic: f64, agents: u32, aht_s: f64, threshold_s: f64) -> f64 {
    if traffic.is_nan() || traffic <= 0.0 {
        return 1.0;
    }
    let n = agents as f64;
    if n <= traffic {
        return 0.0;
    }
    let c = prob_wait(traffic, agents);
    (1.0 - c * (-(n - traffic) * threshold_s / aht_s).exp()).clamp(0.0, 1.0)
}

/// Average speed of answer in seconds; infinite when overloaded.
pub fn asa(traffic: f64, agents: u32, aht_s: f64) -> f64 {
    if traffic.is_nan() || traffic <= 0.0 {
        return 0.0;
    }
    let n = agents as f64;
    if n <= traffic {
        return f64::INFINITY;
    }
    prob_wait(traffic, agents) * aht_s / (n - traffic)
}

/// Agent occupancy: traffic / agents.
pub fn occupancy(traffic: f64, agents: u32) -> f64 {
    if agents == 0 {
        return 0.0;
    }
    (traffic / agents as f64).min(1.0)
}

/// Upper bound on the search, so a nonsense input (a day-long AHT) cannot
/// spin the engine.
const MAX_AGENTS: u32 = 100_000;

/// The fewest agents that meet `target` service level within `threshold_s`.
/// `None` when the inputs are not usable (no handle time yet) or no staffing
/// up to `MAX_AGENTS` (100,000) meets the target.
pub fn required_agents(
    arrivals_per_s: f64,
    aht_s: f64,
    threshold_s: f64,
    target: f64,
) -> Option<u32> {
    if !arrivals_per_s.is_finite() || !aht_s.is_finite() || arrivals_per_s < 0.0 || aht_s <= 0.0 {
        return None;
    }
    let a = traffic(arrivals_per_s, aht_s);
    if a == 0.0 {
        return Some(0);
    }
    let target = target.clamp(0.0, 0.999_999);
    let mut n = (a.floor() as u32).saturating_add(1);
    while n <= MAX_AGENTS {
        if service_level(a, n, aht_s, threshold_s) >= target {
            return Some(n);
        }
        n += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// architecture.md: 100 calls in 30 min, AHT 180 s, T = 20 s, N = 14.
    #[test]
    fn reference_vector() {
        let a = traffic(100.0 / 1800.0, 180.0);
        assert!((a - 10.0).abs() < 1e-12);
        assert!((prob_wait(a, 14) - 0.1741).abs() < 5e-5);
        assert!((service_level(a, 14, 180.0, 20.0) - 0.8884).abs() < 5e-5);
        assert!((asa(a, 14, 180.0) - 7.84).abs() < 5e-3);
        assert!((occupancy(a, 14) - 0.714).abs() < 5e-4);
        assert_eq!(required_agents(100.0 / 1800.0, 180.0, 20.0, 0.8), Some(14));
    }

    #[test]
    fn overload_and_degenerate_inputs() {
        assert_eq!(prob_wait(10.0, 10), 1.0);
        assert_eq!(service_level(10.0, 9, 180.0, 20.0), 0.0);
        assert_eq!(required_agents(0.0, 180.0, 20.0, 0.8), Some(0));
        assert_eq!(required_agents(1.0, 0.0, 20.0, 0.8), None);
        assert_eq!(required_agents(f64::NAN, 180.0, 20.0, 0.8), None);
        // Large centre: the recursion stays finite.
        let n = required_agents(10.0, 300.0, 20.0, 0.9).unwrap();
        assert!(n > 3000 && n < 3200, "{n}");
    }
}
