//! Per-connection token bucket; time is passed in.

use std::time::Instant;

/// Allows `rate` events per second on average with bursts up to `burst`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        self.allow_n(1.0, now)
    }

    /// Takes `cost` tokens if the bucket holds them; false (taking none)
    /// otherwise. A cost above the burst never passes.
    pub(crate) fn allow_n(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Puts back `cost` tokens taken for nothing (up to the burst).
    pub(crate) fn refund(&mut self, cost: f64) {
        self.tokens = (self.tokens + cost).min(self.burst);
    }

    /// Whether the bucket is full again at `now` (nothing taken is still owed).
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        assert!(b.allow(t0) && b.allow(t0) && b.allow(t0));
        assert!(!b.allow(t0));
        assert!(b.allow(t0 + Duration::from_millis(100)));
        assert!(!b.allow(t0 + Duration::from_millis(100)));
        assert!(b.allow(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn costs_in_bulk() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 250.0, t0);
        assert!(b.allow_n(200.0, t0));
        assert!(!b.allow_n(100.0, t0), "50 left");
        assert!(b.allow_n(50.0, t0));
        assert!(!b.is_full(t0));
        assert!(
            !b.allow_n(251.0, t0 + Duration::from_secs(60)),
            "above the burst"
        );
        assert!(b.is_full(t0 + Duration::from_secs(3)));
        assert!(b.allow_n(250.0, t0 + Duration::from_secs(3)));
    }
}
