//! Bytes one `/signal` session may relay to each neighbour: a token bucket
//! per recipient, so a neighbour can never push more at a peer than a slow
//! link drains (which would delay its `AssignParent`s and stall its
//! socket), whatever its message rate allows.

use crate::ratelimit::TokenBucket;
use std::time::Instant;

/// Most recipients tracked at once. Only tree neighbours are charged (the
/// track checks that first), and a peer has at most its parent and
/// `--max-peers` children; entries of former neighbours go once idle.
const MAX_RECIPIENTS: usize = 16;

/// Per-recipient byte buckets of one session.
#[derive(Debug)]
pub struct RelayBudget {
    rate: f64,
    burst: f64,
    buckets: Vec<(String, TokenBucket)>,
}

impl RelayBudget {
    /// `rate` bytes per second to each recipient, in bursts of up to `burst` bytes.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Vec::new(),
        }
    }

    /// Takes `bytes` from `to`'s bucket; false (taking nothing) when it does
    /// not hold them.
    pub fn allow(&mut self, to: &str, bytes: usize, now: Instant) -> bool {
        let i = match self.buckets.iter().position(|(id, _)| id == to) {
            Some(i) => i,
            None => {
                if self.buckets.len() >= MAX_RECIPIENTS {
                    // A full bucket owes nothing, so forgetting it changes
                    // nothing; failing that, the oldest goes.
                    let victim = self
                        .buckets
                        .iter()
                        .position(|(_, b)| b.is_full(now))
                        .unwrap_or(0);
                    self.buckets.swap_remove(victim);
                }
                let bucket = TokenBucket::new(self.rate, self.burst, now);
                self.buckets.push((to.to_owned(), bucket));
                self.buckets.len() - 1
            }
        };
        self.buckets[i].1.allow_n(bytes as f64, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_recipient_has_its_own_bucket() {
        let t0 = Instant::now();
        let mut b = RelayBudget::new(1000.0, 3000.0);
        assert!(b.allow("a", 2000, t0));
        assert!(!b.allow("a", 2000, t0), "1000 left for a");
        assert!(b.allow("b", 3000, t0), "b is untouched by a");
        assert!(b.allow("a", 1000, t0));
        assert!(!b.allow("a", 1, t0));
        assert!(b.allow("a", 2000, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn recipients_are_bounded_and_one_still_owed_is_kept() {
        let t0 = Instant::now();
        let mut b = RelayBudget::new(1.0, 10.0);
        assert!(b.allow("busy", 10, t0));
        for i in 0..100 {
            assert!(b.allow(&format!("p{i}"), 0, t0));
            assert!(b.buckets.len() <= MAX_RECIPIENTS);
        }
        assert!(!b.allow("busy", 1, t0), "its spent budget is remembered");
    }
}
