//! Small helpers shared by the WebSocket handlers.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use meshrelay_protocol::{ErrorCode, ServerMessage};
use std::time::Duration;

/// Close code for "going away" (server shutdown).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a policy violation (limits, auth).
pub const CLOSE_POLICY: u16 = 1008;
/// Close code for "try again later" (slow consumer).
pub const CLOSE_TRY_AGAIN: u16 = 1013;
/// Close code for a message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Sends one message, giving up after `limit` (a client that does not read
/// must not hold a task forever). False when the socket is unusable.
pub async fn send(ws: &mut WebSocket, msg: Message, limit: Duration) -> bool {
    matches!(tokio::time::timeout(limit, ws.send(msg)).await, Ok(Ok(())))
}

/// Sends a close frame, best effort.
pub async fn close(ws: &mut WebSocket, code: u16, reason: &'static str, limit: Duration) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    send(ws, Message::Close(Some(frame)), limit).await;
}

/// Sends an `Error`, counting it; when the code closes the session, also a
/// close frame. Returns false when the session must end.
pub async fn send_error(
    ws: &mut WebSocket,
    code: ErrorCode,
    reason: &str,
    limit: Duration,
) -> bool {
    crate::metrics::error_sent(code);
    let text = ServerMessage::error(code, reason).to_json();
    let sent = send(ws, Message::Text(text.into()), limit).await;
    if code.closes_session() {
        let close_code = match code {
            ErrorCode::TooLarge => CLOSE_TOO_BIG,
            ErrorCode::SlowConsumer => CLOSE_TRY_AGAIN,
            _ => CLOSE_POLICY,
        };
        close(ws, close_code, code.as_str(), limit).await;
        return false;
    }
    sent
}
