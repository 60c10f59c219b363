//! Bytes one `/signal` session may relay to each neighbour: a token bucket
//! per recipient, so a neighbour cannot push SDP at a peer faster than the
//! sustained rate, whatever its message rate allows (bursts are bounded by
//! the recipient's queue).

use crate::ratelimit::TokenBucket;
use std::time::Instant;

/// Per-recipient byte buckets of one session.
#[derive(Debug)]
pub struct RelayBudget {
    rate: f64,
    burst: f64,
    max_recipients: usize,
    /// Recipient, its bucket, and when it was last charged.
    buckets: Vec<(String, TokenBucket, Instant)>,
}

impl RelayBudget {
    /// `rate` bytes per second to each recipient, in bursts of up to
    /// `burst` bytes. Only tree neighbours are charged (the track checks
    /// that first), so `neighbours` (a parent and `--max-peers` children)
    /// bounds the recipients a sender has at once; twice that many buckets
    /// are kept, so former neighbours go only once idle.
    pub fn new(rate: f64, burst: f64, neighbours: usize) -> Self {
        Self {
            rate,
            burst,
            max_recipients: 2 * neighbours.max(1),
            buckets: Vec::new(),
        }
    }

    /// Takes `bytes` from `to`'s bucket; false (taking nothing) when it does
    /// not hold them.
    pub fn allow(&mut self, to: &str, bytes: usize, now: Instant) -> bool {
        let i = match self.buckets.iter().position(|(id, ..)| id == to) {
            Some(i) => i,
            None => {
                if self.buckets.len() >= self.max_recipients {
                    // A full bucket owes nothing, so forgetting it changes
                    // nothing; failing that, the one charged longest ago goes.
                    let victim = self
                        .buckets
                        .iter()
                        .position(|(_, b, _)| b.is_full(now))
                        .or_else(|| (0..self.buckets.len()).min_by_key(|&i| self.buckets[i].2))
                        .unwrap_or(0);
                    self.buckets.swap_remove(victim);
                }
                let bucket = TokenBucket::new(self.rate, self.burst, now);
                self.buckets.push((to.to_owned(), bucket, now));
                self.buckets.len() - 1
            }
        };
        let entry = &mut self.buckets[i];
        entry.2 = now;
        entry.1.allow_n(bytes as f64, now)
    }

    /// Gives back `bytes` taken for `to` by a message that was not relayed
    /// after all.
    pub fn refund(&mut self, to: &str, bytes: usize) {
        if let Some((_, b, _)) = self.buckets.iter_mut().find(|(id, ..)| id == to) {
            b.refund(bytes as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_recipient_has_its_own_bucket() {
        let t0 = Instant::now();
        let mut b = RelayBudget::new(1000.0, 3000.0, 4);
        assert!(b.allow("a", 2000, t0));
        assert!(!b.allow("a", 2000, t0), "1000 left for a");
        assert!(b.allow("b", 3000, t0), "b is untouched by a");
        assert!(b.allow("a", 1000, t0));
        assert!(!b.allow("a", 1, t0));
        b.refund("a", 500);
        assert!(b.allow("a", 500, t0), "a refund is spent again");
        assert!(!b.allow("a", 1, t0));
        assert!(b.allow("a", 2000, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn recipients_are_bounded_and_one_still_owed_is_kept() {
        let t0 = Instant::now();
        let mut b = RelayBudget::new(1.0, 10.0, 4);
        assert!(b.allow("busy", 10, t0));
        for i in 0..100 {
            assert!(b.allow(&format!("p{i}"), 0, t0));
            assert!(b.buckets.len() <= 8);
        }
        assert!(!b.allow("busy", 1, t0), "its spent budget is remembered");
    }

    #[test]
    fn cycling_through_every_neighbour_earns_no_fresh_burst() {
        // A parent with the most children (here 4 neighbours) spends each
        // one's burst; sending to them in turn never brings a full bucket back.
        let t0 = Instant::now();
        let mut b = RelayBudget::new(1.0, 10.0, 4);
        let kids: Vec<String> = (0..4).map(|k| format!("c{k}")).collect();
        for k in &kids {
            assert!(b.allow(k, 10, t0));
        }
        for _ in 0..10 {
            for k in &kids {
                assert!(!b.allow(k, 10, t0), "{k} got a fresh burst");
            }
        }
    }
}
