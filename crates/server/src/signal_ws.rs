//! `/signal`: the async shell around [`crate::session`] and [`crate::track`].

use crate::app::App;
use crate::auth::{self, AuthDecision};
use crate::liveness::{Due, Liveness};
use crate::outbox::{self, Outbox};
use crate::ratelimit::TokenBucket;
use crate::registry::Lease;
use crate::session::{step, SessionState, Step};
use crate::tree::{LeaveReason, SessionHandle};
use crate::ws_util::{self, Farewell, Input, CLOSE_GOING_AWAY};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use meshrelay_protocol::{ErrorCode, Features};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Query parameters accepted on WebSocket endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// Bearer token, as an alternative to the subprotocol.
    pub token: Option<String>,
    /// Egress resume point.
    pub from: Option<u64>,
}

/// Small initial read buffer: signaling frames are small, and tungstenite's
/// default 128 KiB per connection would dominate memory at many peers.
const SIGNAL_READ_BUFFER: usize = 4 * 1024;

/// A refused upgrade: HTTP 401 before any WebSocket exists.
#[derive(Debug)]
pub struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            "unauthorized: missing or wrong token\n",
        )
            .into_response()
    }
}

/// Checks the token before the upgrade and selects the echoed subprotocol.
pub fn authorize(
    mut ws: WebSocketUpgrade,
    expected: Option<&str>,
    query_token: Option<&str>,
) -> Result<WebSocketUpgrade, Unauthorized> {
    let requested: Vec<String> = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok().map(str::to_owned))
        .collect();
    match auth::check(expected, requested.iter().map(String::as_str), query_token) {
        AuthDecision::Deny => {
            crate::metrics::error_sent(ErrorCode::Unauthorized);
            Err(Unauthorized)
        }
        AuthDecision::Allow(protocol) => {
            if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
                ws.set_selected_protocol(p);
            }
            Ok(ws)
        }
    }
}

/// `GET /signal`.
pub async fn handler(
    State(app): State<Arc<App>>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let expected = if app.config.no_auth_signal {
        None
    } else {
        app.config.subscribe_token.as_deref()
    };
    let ws = match authorize(ws, expected, q.token.as_deref()) {
        Ok(ws) => ws,
        Err(refused) => return refused.into_response(),
    };
    // Frames up to twice the limit reach our own check (which answers
    // `too_large` cleanly); beyond that tungstenite refuses to buffer them.
    let hard_cap = app.config.max_signal_bytes.saturating_mul(2).max(1024);
    let token = match app.connection() {
        Ok(token) => token,
        Err(full) => return full.into_response(),
    };
    ws.read_buffer_size(SIGNAL_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(hard_cap.saturating_mul(4))
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_upgrade(move |socket| async move {
            let _tracked = token;
            run(socket, app).await;
        })
}

/// This session's place in a track. Dropping it plans the leave, so every
/// way a registration ends (`Leave`, close, socket error, timeout, kill,
/// shutdown, even a panic) plans it exactly once.
struct Registration {
    app: Arc<App>,
    lease: Lease,
    peer_id: String,
    id: u64,
    kill: Option<oneshot::Receiver<ErrorCode>>,
    reason: LeaveReason,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let track = self.lease.track();
        track.leave(&self.app.ctx, &self.peer_id, self.id, self.reason);
    }
}

enum Event {
    Shutdown,
    RegisterDeadline,
    Killed(ErrorCode),
    Out(Utf8Bytes),
    Tick,
    In(Option<Result<Message, axum::Error>>),
}

/// Resolves when the track cuts this session off.
async fn killed(reg: &mut Option<Registration>) -> ErrorCode {
    if let Some(rx) = reg.as_mut().and_then(|r| r.kill.as_mut()) {
        if let Ok(code) = rx.await {
            return code;
        }
        if let Some(r) = reg.as_mut() {
            r.kill = None;
        }
    }
    std::future::pending().await
}

struct SessionsGauge;

impl SessionsGauge {
    fn new() -> Self {
        metrics::gauge!(crate::metrics::SIGNAL_SESSIONS).increment(1.0);
        SessionsGauge
    }
}

impl Drop for SessionsGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::SIGNAL_SESSIONS).decrement(1.0);
    }
}

async fn run(mut ws: WebSocket, app: Arc<App>) {
    let _gauge = SessionsGauge::new();
    let cfg = &app.config;
    let timeout = cfg.heartbeat_timeout;
    // A write blocks only once the socket buffers (hundreds of KiB) are
    // full of unread frames: the client stopped reading.
    let send_limit = timeout.clamp(Duration::from_millis(200), Duration::from_secs(2));
    let mut reg: Option<Registration> = None;
    let (end, farewell) = session(&mut ws, &app, &mut reg, send_limit).await;
    // The leave is planned before the closing handshake, which may wait
    // for the client's Close.
    if let Some(mut r) = reg.take() {
        r.reason = end;
    }
    if let Some(f) = farewell {
        // Last words to a client being dropped must not delay shutdown.
        let limit = send_limit.min(Duration::from_millis(500));
        ws_util::farewell(&mut ws, f, limit, &app.shutdown).await;
    }
}

/// Runs the session until it ends; returns why, and how to say goodbye.
async fn session(
    ws: &mut WebSocket,
    app: &Arc<App>,
    reg: &mut Option<Registration>,
    send_limit: Duration,
) -> (LeaveReason, Option<Farewell>) {
    let cfg = &app.config;
    let (tx, mut rx) = outbox::channel(cfg.send_queue, cfg.signal_queue_bytes);
    let mut state = SessionState::Unregistered;
    let mut bucket = TokenBucket::new(
        cfg.message_rate,
        cfg.message_burst,
        std::time::Instant::now(),
    );
    let mut relay_budget = cfg.relay_budget();
    let mut liveness = Liveness::new(cfg.heartbeat_timeout, ws_util::now());
    // One timer for the session, moved when a check reschedules the next.
    let tick = tokio::time::sleep_until(Instant::from_std(liveness.deadline()));
    tokio::pin!(tick);
    // Pings sent and not yet answered: their pongs cost no rate budget.
    let mut pings_owed = 0u32;
    // An unregistered session must Register by then (restarted by Leave).
    let register_by = tokio::time::sleep(cfg.register_timeout);
    tokio::pin!(register_by);

    loop {
        let unregistered = reg.is_none();
        let due = Instant::from_std(liveness.deadline());
        if tick.deadline() != due {
            tick.as_mut().reset(due);
        }
        // Ticks come first so a steady stream either way can never postpone
        // the liveness check; the client's own frames come before queued
        // ones so neighbours keeping its queue busy cannot leave its
        // heartbeats unread (its input is rate-limited, so it cannot starve
        // the queue in turn).
        let event = tokio::select! {
            biased;
            _ = app.shutdown.cancelled() => Event::Shutdown,
            code = killed(reg) => Event::Killed(code),
            _ = &mut register_by, if unregistered => Event::RegisterDeadline,
            _ = &mut tick => Event::Tick,
            incoming = ws.recv() => Event::In(incoming),
            Some(out) = rx.recv() => Event::Out(out),
        };
        match event {
            Event::Shutdown => {
                let bye = Farewell::close(CLOSE_GOING_AWAY, "server shutting down");
                return (LeaveReason::Shutdown, Some(bye));
            }
            Event::Killed(code) => {
                let why = "the server's queue towards this client overflowed";
                let bye = Farewell::error(code, why, Input::InSync);
                return (LeaveReason::SlowConsumer, Some(bye));
            }
            Event::RegisterDeadline => {
                let why = format!("no Register within {:?}", cfg.register_timeout);
                let mut bye = Farewell::error(ErrorCode::ExpectedRegister, why, Input::InSync);
                bye.close_code = ws_util::CLOSE_POLICY;
                return (LeaveReason::Timeout, Some(bye));
            }
            Event::Out(text) => {
                // A client that stopped reading blocks this send for up to
                // `send_limit`; shutdown must not wait for it.
                let sent = tokio::select! {
                    biased;
                    _ = app.shutdown.cancelled() => continue,
                    sent = ws_util::send(ws, Message::Text(text), send_limit) => sent,
                };
                if !sent {
                    return (LeaveReason::Disconnect, None);
                }
            }
            Event::Tick => match liveness.on_due(ws_util::now()) {
                Due::Gone => {
                    tracing::debug!(
                        peer_id = reg.as_ref().map(|r| r.peer_id.as_str()),
                        "heartbeat timeout"
                    );
                    // Best effort: a peer that is merely stalled learns why
                    // it was dropped; a vanished one costs the send limit.
                    let bye = Farewell::close(ws_util::CLOSE_GOING_AWAY, "heartbeat timeout");
                    return (LeaveReason::Timeout, Some(bye));
                }
                Due::Ping => {
                    if !ws_util::send(ws, Message::Ping(Default::default()), send_limit).await {
                        return (LeaveReason::Disconnect, None);
                    }
                    pings_owed = pings_owed.saturating_add(1);
                }
                Due::Quiet => {}
            },
            Event::In(None) | Event::In(Some(Ok(Message::Close(_)))) => {
                return (LeaveReason::Disconnect, None)
            }
            Event::In(Some(Err(e))) => {
                // A frame beyond the hard cap: its header was refused and its
                // payload is still unread.
                let bye = ws_util::is_too_large(e).then(|| {
                    let why = format!(
                        "message exceeds the limit of {} bytes",
                        cfg.max_signal_bytes
                    );
                    Farewell::error(ErrorCode::TooLarge, why, Input::Desynced)
                });
                return (LeaveReason::Disconnect, bye);
            }
            // A pong answering one of our pings is free; any other pong, and
            // a client's ping (which costs the server a pong), is a message
            // the client chose to send.
            Event::In(Some(Ok(Message::Pong(_)))) => {
                liveness.seen(ws_util::now());
                if pings_owed > 0 {
                    pings_owed -= 1;
                } else if let Some(bye) = admit(&mut bucket) {
                    return (LeaveReason::Disconnect, Some(bye));
                }
            }
            Event::In(Some(Ok(Message::Ping(_)))) => {
                liveness.seen(ws_util::now());
                if let Some(bye) = admit(&mut bucket) {
                    return (LeaveReason::Disconnect, Some(bye));
                }
            }
            Event::In(Some(Ok(Message::Binary(bytes)))) => {
                liveness.seen(ws_util::now());
                if let Some(bye) = too_large(bytes.len(), cfg.max_signal_bytes) {
                    return (LeaveReason::Disconnect, Some(bye));
                }
                if let Some(bye) = admit(&mut bucket) {
                    return (LeaveReason::Disconnect, Some(bye));
                }
                let why = "binary frames are not accepted on /signal";
                if !ws_util::send_error(ws, ErrorCode::InvalidJson, why, send_limit).await {
                    return (LeaveReason::Disconnect, None);
                }
            }
            Event::In(Some(Ok(Message::Text(text)))) => {
                liveness.seen(ws_util::now());
                if let Some(bye) = too_large(text.len(), cfg.max_signal_bytes) {
                    return (LeaveReason::Disconnect, Some(bye));
                }
                if let Some(bye) = admit(&mut bucket) {
                    return (LeaveReason::Disconnect, Some(bye));
                }
                let s = step(&state, text.as_str());
                metrics::counter!(crate::metrics::SIGNAL_MESSAGES, "kind" => s.label())
                    .increment(1);
                let reply = match s {
                    Step::Reply(code, reason) => Some((code, reason)),
                    Step::Register {
                        peer_id,
                        track,
                        capacity,
                        features,
                    } => match register(app, &tx, &peer_id, &track, capacity, features) {
                        Ok((registration, assign)) => {
                            state = SessionState::Registered { peer_id, track };
                            *reg = Some(registration);
                            if !ws_util::send(ws, Message::Text(assign), send_limit).await {
                                return (LeaveReason::Disconnect, None);
                            }
                            None
                        }
                        Err(refusal) => Some(refusal),
                    },
                    // Every relay refusal leaves the session open, a full
                    // recipient queue (`rate_limited`) included: the sender
                    // keeps its place in the tree.
                    Step::Relay { to, text } => {
                        let refused = reg.as_ref().and_then(|r| {
                            let track = r.lease.track();
                            track
                                .relay(&r.peer_id, r.id, &to, text.into(), &mut relay_budget)
                                .err()
                        });
                        if let Some((code, reason)) = refused {
                            if !ws_util::send_error(ws, code, &reason, send_limit).await {
                                return (LeaveReason::Disconnect, None);
                            }
                        }
                        None
                    }
                    // A refusal leaves the session open, as for a relay.
                    Step::DropChild { child } => {
                        let refused = reg.as_ref().and_then(|r| {
                            let track = r.lease.track();
                            track.drop_child(&app.ctx, &r.peer_id, r.id, &child).err()
                        });
                        if let Some((code, reason)) = refused {
                            if !ws_util::send_error(ws, code, &reason, send_limit).await {
                                return (LeaveReason::Disconnect, None);
                            }
                        }
                        None
                    }
                    Step::ForwardReport(n) => {
                        if let Some(r) = reg.as_ref() {
                            r.lease.track().forward_report(&r.peer_id, r.id, n);
                        }
                        None
                    }
                    Step::Heartbeat => None,
                    Step::Leave => {
                        if let Some(mut r) = reg.take() {
                            r.reason = LeaveReason::Leave;
                        }
                        state = SessionState::Unregistered;
                        register_by
                            .as_mut()
                            .reset(Instant::now() + cfg.register_timeout);
                        // Frames queued for the old position are stale now.
                        rx.clear();
                        None
                    }
                };
                if let Some((code, reason)) = reply {
                    if code.closes_session() {
                        let bye = Farewell::error(code, reason, Input::InSync);
                        return (LeaveReason::Disconnect, Some(bye));
                    }
                    if !ws_util::send_error(ws, code, &reason, send_limit).await {
                        return (LeaveReason::Disconnect, None);
                    }
                }
            }
        }
    }
}

/// The `too_large` goodbye for a frame of `len` bytes over the `max`, if it is.
fn too_large(len: usize, max: usize) -> Option<Farewell> {
    (len > max).then(|| {
        let why = format!("message of {len} bytes exceeds the limit of {max}");
        Farewell::error(ErrorCode::TooLarge, why, Input::InSync)
    })
}

/// Joins `track`'s tree as `peer_id`; returns the registration and the
/// `AssignParent` to send.
fn register(
    app: &Arc<App>,
    tx: &Outbox,
    peer_id: &str,
    track: &str,
    capacity: Option<u32>,
    features: Features,
) -> Result<(Registration, Utf8Bytes), (ErrorCode, String)> {
    let lease = app.registry.acquire(track).ok_or_else(|| {
        let why = "the server has reached its track limit";
        (ErrorCode::MeshFull, why.to_owned())
    })?;
    let id = app.next_registration_id();
    let (kill_tx, kill_rx) = oneshot::channel();
    let handle = SessionHandle::new(id, tx.clone(), kill_tx, features);
    let assign = lease
        .track()
        .register(&app.ctx, peer_id, capacity, handle)?;
    let registration = Registration {
        app: Arc::clone(app),
        lease,
        peer_id: peer_id.to_owned(),
        id,
        kill: Some(kill_rx),
        reason: LeaveReason::Disconnect,
    };
    Ok((registration, assign))
}

/// Applies the per-connection rate limit; `Some` (a `rate_limited`
/// farewell) ends the session.
fn admit(bucket: &mut TokenBucket) -> Option<Farewell> {
    if bucket.allow(std::time::Instant::now()) {
        return None;
    }
    let why = "too many messages; slow down";
    Some(Farewell::error(ErrorCode::RateLimited, why, Input::InSync))
}
