//! Ping-based liveness of one origin WebSocket (`/ingest`, `/ws`), as on
//! `/signal`: a ping every heartbeat timeout / 3, and a client from which
//! nothing (pongs included) arrived within the timeout is presumed gone.

use std::time::Duration;
use tokio::time::Instant;

/// What to do now that a ping is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a ping; the next one is scheduled.
    Ping,
    /// Nothing arrived within the timeout: drop the client.
    Gone,
}

/// When the next ping is due and when the client was last heard from.
#[derive(Debug)]
pub struct Liveness {
    timeout: Duration,
    ping_every: Duration,
    next_ping: Instant,
    last_seen: Instant,
}

impl Liveness {
    /// Starts the clock: the client counts as heard from now.
    pub fn new(timeout: Duration) -> Self {
        let ping_every = (timeout / 3).max(Duration::from_millis(10));
        let now = Instant::now();
        Self {
            timeout,
            ping_every,
            next_ping: now + ping_every,
            last_seen: now,
        }
    }

    /// Records that something (a message, a ping, a pong) arrived.
    pub fn seen(&mut self) {
        self.last_seen = Instant::now();
    }

    /// Whether a ping is due now.
    pub fn ping_due(&self) -> bool {
        Instant::now() >= self.next_ping
    }

    /// Resolves when the next ping is due.
    pub async fn until_ping(&self) {
        tokio::time::sleep_until(self.next_ping).await
    }

    /// Decides on a due ping; schedules the next one when the client is alive.
    pub fn on_due(&mut self) -> Due {
        if self.last_seen.elapsed() > self.timeout {
            return Due::Gone;
        }
        self.next_ping = Instant::now() + self.ping_every;
        Due::Ping
    }
}
