//! The arrival process: a Poisson process whose rate is piecewise constant
//! (rate steps plus flash crowds), sampled by inverting its cumulative rate.

use crate::scenario::{Arrivals, Scenario};

/// Arrival rate over time, as breakpoints `(from_s, per_s)` in increasing time;
/// the rate is 0 before the first.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    points: Vec<(f64, f64)>,
}

impl RateCurve {
    /// The scenario's arrival rate: its steps (or the steady rate) plus every
    /// flash crowd spread evenly over its length.
    pub fn from_scenario(s: &Scenario) -> Self {
        let base: Vec<(f64, f64)> = match &s.arrivals {
            Arrivals::Steady => vec![(0.0, s.steady_rate())],
            Arrivals::Steps(steps) => steps.iter().map(|p| (p.from_s, p.per_s)).collect(),
        };
        let mut times: Vec<f64> = base.iter().map(|&(t, _)| t).collect();
        for c in &s.flash_crowds {
            times.push(c.at_s);
            times.push(c.at_s + c.over_s);
        }
        times.push(0.0);
        times.sort_by(f64::total_cmp);
        times.dedup();
        let base_at = |t: f64| {
            base.iter()
                .rev()
                .find(|&&(from, _)| from <= t)
                .map_or(0.0, |&(_, r)| r)
        };
        let points = times
            .into_iter()
            .map(|t| {
                let flash: f64 = s
                    .flash_crowds
                    .iter()
                    .filter(|c| c.at_s <= t && t < c.at_s + c.over_s)
                    .map(|c| c.viewers / c.over_s)
                    .sum();
                (t, base_at(t) + flash)
            })
            .collect();
        Self { points }
    }

    /// The rate at `t_s`, arrivals per second.
    pub fn rate_at(&self, t_s: f64) -> f64 {
        self.points
            .iter()
            .rev()
            .find(|&&(from, _)| from <= t_s)
            .map_or(0.0, |&(_, r)| r)
    }

    /// The next arrival after `t_s`, given `draw` from an exponential of mean
    /// 1 (the unit of cumulative rate to cover); `None` when the rate stays 0.
    pub fn next_after(&self, t_s: f64, draw: f64) -> Option<f64> {
        let mut left = draw;
        let mut t = t_s;
        let mut k = self.points.partition_point(|&(from, _)| from <= t);
        loop {
            let rate = if k == 0 { 0.0 } else { self.points[k - 1].1 };
            let end = self.points.get(k).map_or(f64::INFINITY, |&(from, _)| from);
            if rate > 0.0 {
                let need = left / rate;
                if t + need < end {
                    return Some(t + need);
                }
                left -= rate * (end - t);
            }
            if end.is_infinite() {
                return None;
            }
            t = end;
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_crowds_add_to_the_steps() {
        let mut s = Scenario::default();
        s.set("audience.arrivals", "0:10,100:20").unwrap();
        s.set("audience.flash_crowds", "50:1000:10").unwrap();
        let c = RateCurve::from_scenario(&s);
        assert_eq!(c.rate_at(0.0), 10.0);
        assert_eq!(c.rate_at(55.0), 110.0);
        assert_eq!(c.rate_at(60.0), 10.0);
        assert_eq!(c.rate_at(150.0), 20.0);
        // 10/s for 5 s covers 50 units; the other 110 take 1 s at 110/s.
        assert_eq!(c.next_after(0.0, 5.0), Some(0.5));
        let t = c.next_after(45.0, 160.0).unwrap();
        assert!((t - 51.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn a_rate_that_stops_gives_no_arrival() {
        let mut s = Scenario::default();
        s.set("audience.arrivals", "0:1,10:0").unwrap();
        let c = RateCurve::from_scenario(&s);
        assert_eq!(c.next_after(9.0, 5.0), None);
        assert_eq!(c.next_after(9.0, 0.5), Some(9.5));
    }
}
