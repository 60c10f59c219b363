//! Ping-based liveness of one WebSocket (`/signal`, `/ingest`, `/ws`): a
//! ping every heartbeat timeout / 3, and a client from which nothing (pongs
//! included) arrived within the timeout is presumed gone, which is checked
//! at least every second (so it is dropped within the timeout plus a second,
//! however rare the pings).

use std::time::Duration;
use tokio::time::Instant;

/// What to do now that a check is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a ping; the next one is scheduled.
    Ping,
    /// Alive, and no ping due yet.
    Quiet,
    /// Nothing arrived within the timeout: drop the client.
    Gone,
}

/// When the next ping is due and when the client was last heard from.
#[derive(Debug)]
pub struct Liveness {
    timeout: Duration,
    ping_every: Duration,
    check_every: Duration,
    next_ping: Instant,
    next_check: Instant,
    last_seen: Instant,
}

impl Liveness {
    /// Starts the clock: the client counts as heard from now.
    pub fn new(timeout: Duration) -> Self {
        let ping_every = (timeout / 3).max(Duration::from_millis(10));
        let check_every = ping_every.min(Duration::from_secs(1));
        let now = Instant::now();
        Self {
            timeout,
            ping_every,
            check_every,
            next_ping: now + ping_every,
            next_check: now + check_every,
            last_seen: now,
        }
    }

    /// Records that something (a message, a ping, a pong) arrived.
    pub fn seen(&mut self) {
        self.last_seen = Instant::now();
    }

    /// When the next check is due.
    pub fn deadline(&self) -> Instant {
        self.next_ping.min(self.next_check)
    }

    /// Whether a check (and maybe a ping) is due now.
    pub fn check_due(&self) -> bool {
        Instant::now() >= self.deadline()
    }

    /// Resolves when the next check is due.
    pub async fn until_due(&self) {
        tokio::time::sleep_until(self.deadline()).await
    }

    /// Decides on a due check; schedules the next check, and the next ping
    /// when one is sent.
    pub fn on_due(&mut self) -> Due {
        if self.last_seen.elapsed() > self.timeout {
            return Due::Gone;
        }
        let now = Instant::now();
        self.next_check = now + self.check_every;
        if now >= self.next_ping {
            self.next_ping = now + self.ping_every;
            Due::Ping
        } else {
            Due::Quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps the paused clock to the next due check and decides it.
    async fn next(l: &mut Liveness) -> (Duration, Due) {
        l.until_due().await;
        assert!(l.check_due());
        (l.last_seen.elapsed(), l.on_due())
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_gone_within_a_second_of_the_timeout() {
        let mut l = Liveness::new(Duration::from_secs(6));
        let secs = Duration::from_secs;
        // Checks every second, pings every two.
        assert_eq!(next(&mut l).await, (secs(1), Due::Quiet));
        assert_eq!(next(&mut l).await, (secs(2), Due::Ping));
        for t in 3..=6 {
            let due = if t % 2 == 0 { Due::Ping } else { Due::Quiet };
            assert_eq!(next(&mut l).await, (secs(t), due));
        }
        assert_eq!(next(&mut l).await, (secs(7), Due::Gone));
    }

    #[tokio::test(start_paused = true)]
    async fn anything_heard_restarts_the_timeout() {
        let mut l = Liveness::new(Duration::from_secs(3));
        for _ in 0..10 {
            assert_ne!(next(&mut l).await.1, Due::Gone);
            l.seen();
        }
        assert!(!l.check_due());
    }
}
