//! Ping-based liveness of one WebSocket (`/signal`, `/ingest`, `/ws`): a
//! ping every heartbeat timeout / 3, and a client from which nothing (pongs
//! included) arrived within the timeout is presumed gone, which is checked
//! at least every second (so it is dropped within the timeout plus a second,
//! however rare the pings). Time is passed in.

use std::time::{Duration, Instant};

/// What to do now that a check is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send a ping; the next one is scheduled.
    Ping,
    /// Alive, and no ping due yet.
    Quiet,
    /// Nothing arrived within the timeout: drop the client.
    Gone,
}

/// When the next ping is due and when the client was last heard from.
#[derive(Debug)]
pub(crate) struct Liveness {
    timeout: Duration,
    ping_every: Duration,
    check_every: Duration,
    next_ping: Instant,
    next_check: Instant,
    last_seen: Instant,
}

impl Liveness {
    /// Starts the clock: the client counts as heard from at `now`.
    pub(crate) fn new(timeout: Duration, now: Instant) -> Self {
        let ping_every = (timeout / 3).max(Duration::from_millis(10));
        let check_every = ping_every.min(Duration::from_secs(1));
        Self {
            timeout,
            ping_every,
            check_every,
            next_ping: now + ping_every,
            next_check: now + check_every,
            last_seen: now,
        }
    }

    /// Records that something (a message, a ping, a pong) arrived at `now`.
    pub(crate) fn seen(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// When the next check is due.
    pub(crate) fn deadline(&self) -> Instant {
        self.next_ping.min(self.next_check)
    }

    /// Whether a check (and maybe a ping) is due at `now`.
    pub(crate) fn check_due(&self, now: Instant) -> bool {
        now >= self.deadline()
    }

    /// Decides on a check due at `now`; schedules the next check, and the
    /// next ping when one is sent.
    pub(crate) fn on_due(&mut self, now: Instant) -> Due {
        if now.saturating_duration_since(self.last_seen) > self.timeout {
            return Due::Gone;
        }
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

    /// Steps time to the next due check and decides it.
    fn next(l: &mut Liveness) -> (Instant, Duration, Due) {
        let now = l.deadline();
        assert!(l.check_due(now));
        (now, now - l.last_seen, l.on_due(now))
    }

    #[test]
    fn a_silent_client_is_gone_within_a_second_of_the_timeout() {
        let mut l = Liveness::new(Duration::from_secs(6), Instant::now());
        let secs = Duration::from_secs;
        let step = |l: &mut Liveness| {
            let (_, silent, due) = next(l);
            (silent, due)
        };
        // Checks every second, pings every two.
        assert_eq!(step(&mut l), (secs(1), Due::Quiet));
        assert_eq!(step(&mut l), (secs(2), Due::Ping));
        for t in 3..=6 {
            let due = if t % 2 == 0 { Due::Ping } else { Due::Quiet };
            assert_eq!(step(&mut l), (secs(t), due));
        }
        assert_eq!(step(&mut l), (secs(7), Due::Gone));
    }

    #[test]
    fn anything_heard_restarts_the_timeout() {
        let mut l = Liveness::new(Duration::from_secs(3), Instant::now());
        let mut now = Instant::now();
        for _ in 0..10 {
            let (at, _, due) = next(&mut l);
            assert_ne!(due, Due::Gone);
            now = at;
            l.seen(now);
        }
        assert!(!l.check_due(now));
    }
}
