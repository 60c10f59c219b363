//! The server-wide cap on open WebSocket connections (`--max-connections`).
//!
//! Every `/signal`, `/ws` and `/ingest` connection takes a permit before its
//! upgrade and holds it until the connection's task ends, so open sockets
//! (file descriptors and their buffers) stay under the cap whatever clients
//! do; registered peers are capped separately by `--max-peers-total`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

/// Permits for open WebSocket connections.
#[derive(Debug)]
pub struct Connections {
    permits: Arc<Semaphore>,
    max: usize,
}

/// One open connection: keeps its permit and makes graceful shutdown wait
/// for its task; dropping it frees both.
#[derive(Debug)]
pub struct Connection {
    _permit: OwnedSemaphorePermit,
    _tracked: TaskTrackerToken,
}

/// A refused upgrade: HTTP 503, every connection permit is taken.
#[derive(Debug)]
pub struct TooManyConnections {
    max: usize,
}

impl IntoResponse for TooManyConnections {
    fn into_response(self) -> Response {
        let body = format!(
            "the server has reached its connection limit ({} open WebSocket connections); retry later\n",
            self.max
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

impl Connections {
    /// At most `max` connections at once (clamped to what a semaphore holds).
    pub fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Takes a permit for one connection tracked by `tracker`, or refuses
    /// without waiting when all are taken.
    pub fn open(&self, tracker: &TaskTracker) -> Result<Connection, TooManyConnections> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Ok(Connection {
                _permit: permit,
                _tracked: tracker.token(),
            }),
            Err(_) => Err(TooManyConnections { max: self.max }),
        }
    }

    /// Connections open now.
    pub fn open_count(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_capped_and_freed_on_drop() {
        let tracker = TaskTracker::new();
        let c = Connections::new(2);
        let a = c.open(&tracker).unwrap();
        let _b = c.open(&tracker).unwrap();
        assert_eq!(c.open_count(), 2);
        assert!(c.open(&tracker).is_err());
        drop(a);
        assert_eq!(c.open_count(), 1);
        assert!(c.open(&tracker).is_ok());
    }

    #[test]
    fn a_huge_cap_is_clamped() {
        let c = Connections::new(usize::MAX);
        assert_eq!(c.max(), Semaphore::MAX_PERMITS);
        assert_eq!(c.open_count(), 0);
    }
}
