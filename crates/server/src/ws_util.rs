//! Small helpers shared by the WebSocket handlers.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use meshrelay_protocol::{ErrorCode, Refusal, ServerMessage};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Close code for "going away" (server shutdown).
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a policy violation (limits, auth, registration deadline).
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// Close code for "try again later" (slow consumer).
pub(crate) const CLOSE_TRY_AGAIN: u16 = 1013;
/// Close code for a message too big.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// How long a server that closed a connection keeps reading (and
/// discarding) client input while waiting for the client's Close.
pub(crate) const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// The runtime's clock (paused in tests) as the `std` instant the pure
/// cores take, so their deadlines and the shell's timers agree.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Resolves at `deadline`, a [`now`]-based instant.
pub(crate) async fn sleep_until(deadline: std::time::Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await
}

/// Sends one message, giving up after `limit` (a client that does not read
/// must not hold a task forever). False when the socket is unusable.
pub(crate) async fn send(ws: &mut WebSocket, msg: Message, limit: Duration) -> bool {
    matches!(tokio::time::timeout(limit, ws.send(msg)).await, Ok(Ok(())))
}

/// Sends a close frame, best effort, without waiting for the answer.
pub(crate) async fn close(
    ws: &mut WebSocket,
    code: u16,
    reason: &'static str,
    limit: Duration,
) -> bool {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    send(ws, Message::Close(Some(frame)), limit).await
}

/// The close code that goes with an `Error` that ends a session.
pub(crate) fn close_code(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::TooLarge => CLOSE_TOO_BIG,
        ErrorCode::SlowConsumer => CLOSE_TRY_AGAIN,
        _ => CLOSE_POLICY,
    }
}

/// Sends an `Error` that leaves the session open, counting it. False when
/// the socket is unusable.
pub(crate) async fn send_error(ws: &mut WebSocket, refusal: &Refusal, limit: Duration) -> bool {
    crate::metrics::error_sent(refusal.code);
    let text = ServerMessage::refused(refusal).to_json();
    send(ws, Message::Text(text.into()), limit).await
}

/// Whether the reader can still parse the client's frames after the
/// server decided to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// Frames are still delimited: read and discard them.
    InSync,
    /// A frame header was refused (over the size cap) and its payload is
    /// still on the wire: reading on would buffer that payload, so the
    /// server only waits for the client to read what was sent.
    Desynced,
}

/// Why and how the server ends a connection.
#[derive(Debug)]
pub(crate) struct Farewell {
    /// The `Error` sent first, if any (counted).
    pub error: Option<Refusal>,
    /// The close frame's code.
    pub close_code: u16,
    /// The close frame's reason.
    pub close_reason: &'static str,
    /// Whether the client's frames can still be read.
    pub input: Input,
}

impl Farewell {
    /// An `Error` that ends the session, with its documented close code.
    pub(crate) fn error(
        code: ErrorCode,
        reason: impl Into<std::borrow::Cow<'static, str>>,
        input: Input,
    ) -> Self {
        Self::refused(Refusal::new(code, reason), input)
    }

    /// The `Error` of `refusal` that ends the session, with its documented
    /// close code.
    pub(crate) fn refused(refusal: Refusal, input: Input) -> Self {
        Self {
            close_code: close_code(refusal.code),
            close_reason: refusal.code.as_str(),
            error: Some(refusal),
            input,
        }
    }

    /// A close frame alone.
    pub(crate) fn close(close_code: u16, close_reason: &'static str) -> Self {
        Self {
            error: None,
            close_code,
            close_reason,
            input: Input::InSync,
        }
    }
}

/// The closing handshake: the `Error` text frame (if any), the Close frame,
/// then client input is read and discarded until the client's Close (or
/// end of stream, or an error) arrives, [`CLOSE_DRAIN`] passes, or the
/// server shuts down. Only then may the socket be dropped: dropping it with
/// unread input makes the kernel send a reset, which makes the client's
/// kernel discard the frames it has not yet handed to the client.
pub(crate) async fn farewell(
    ws: &mut WebSocket,
    farewell: Farewell,
    limit: Duration,
    shutdown: &CancellationToken,
) {
    if let Some(refusal) = &farewell.error {
        crate::metrics::error_sent(refusal.code);
        let text = ServerMessage::refused(refusal).to_json();
        if !send(ws, Message::Text(text.into()), limit).await {
            return;
        }
    }
    if !close(ws, farewell.close_code, farewell.close_reason, limit).await {
        return;
    }
    drain(ws, farewell.input, shutdown).await;
}

/// Reads and discards client input until its Close (see [`farewell`]).
async fn drain(ws: &mut WebSocket, input: Input, shutdown: &CancellationToken) {
    let deadline = tokio::time::sleep(CLOSE_DRAIN);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = &mut deadline => return,
            incoming = ws.recv(), if input == Input::InSync => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Whether a read error is a message or frame over the configured size
/// cap (tungstenite's `Capacity` error), told by type, not by its text.
pub(crate) fn is_too_large(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong { .. }
        ))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_errors_are_told_by_type() {
        let too_long =
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size: 10,
                max_size: 5,
            });
        assert!(is_too_large(axum::Error::new(too_long)));
        assert!(!is_too_large(axum::Error::new(
            tungstenite::Error::ConnectionClosed
        )));
        // The same words in another error do not count.
        let io = std::io::Error::other("Space limit exceeded: message too long");
        assert!(!is_too_large(axum::Error::new(io)));
    }
}
