//! `/signal`: the async shell around [`crate::session_core`]: it owns the
//! socket, the queue towards the client and the one timer, feeds the core
//! what happens, and does what the core decides, asking the track where
//! the core says so.

use crate::app::App;
use crate::auth::{self, AuthDecision};
use crate::config::ServerConfig;
use crate::outbox::{self, Inbox, Outbox};
use crate::registry::Lease;
use crate::relay_budget::RelayBudget;
use crate::session_core::{End, Input, Limits, Membership, Output, SessionCore};
use crate::tree::{LeaveReason, Refusal, SessionHandle};
use crate::ws_util;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use meshrelay_protocol::{ErrorCode, Features};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Query parameters accepted on WebSocket endpoints.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WsQuery {
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
pub(crate) struct Unauthorized;

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
pub(crate) fn authorize(
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
pub(crate) async fn handler(
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

impl Membership for Registration {
    fn peer_id(&self) -> &str {
        &self.peer_id
    }
}

impl Registration {
    /// Plans the leave now, counted under `reason`.
    fn leave(mut self, reason: LeaveReason) {
        self.reason = reason;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let track = self.lease.track();
        track.leave(&self.app.ctx, &self.peer_id, self.id, self.reason);
    }
}

/// Resolves when the track cuts this session off.
async fn killed(core: &mut SessionCore<Registration>) -> ErrorCode {
    if let Some(r) = core.membership_mut() {
        if let Some(rx) = r.kill.as_mut() {
            if let Ok(code) = rx.await {
                return code;
            }
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
    // A write blocks only once the socket buffers (hundreds of KiB) are
    // full of unread frames: the client stopped reading.
    let send_limit = app
        .config
        .heartbeat_timeout
        .clamp(Duration::from_millis(200), Duration::from_secs(2));
    let end = session(&mut ws, &app, send_limit).await;
    // The leave is planned before the closing handshake, which may wait
    // for the client's Close.
    if let Some(r) = end.membership {
        r.leave(end.reason);
    }
    if let Some(f) = end.farewell {
        // Last words to a client being dropped must not delay shutdown.
        let limit = send_limit.min(Duration::from_millis(500));
        ws_util::farewell(&mut ws, f, limit, &app.shutdown).await;
    }
}

fn limits(cfg: &ServerConfig) -> Limits {
    Limits {
        max_message_bytes: cfg.max_signal_bytes,
        message_rate: cfg.message_rate,
        message_burst: cfg.message_burst,
        register_timeout: cfg.register_timeout,
        heartbeat_timeout: cfg.heartbeat_timeout,
    }
}

enum Event {
    Shutdown,
    Killed(ErrorCode),
    Timeout,
    In(Option<Result<Message, axum::Error>>),
    Out(Utf8Bytes),
}

type Feedback = Option<Input<'static, Registration>>;

/// `SendFailed` unless the send went out.
fn sent(ok: bool) -> Feedback {
    (!ok).then_some(Input::SendFailed)
}

/// What the session's shell owns besides the core.
struct Shell<'a> {
    ws: &'a mut WebSocket,
    app: &'a Arc<App>,
    tx: Outbox,
    rx: Inbox,
    relay_budget: RelayBudget,
    send_limit: Duration,
    /// When the last text frame was read ([`ws_util::now`]).
    read_at: std::time::Instant,
    /// When the `Register` whose `AssignParent` is next to go was read.
    register_read_at: Option<std::time::Instant>,
}

/// Runs the session until its core ends it: waits for the next event,
/// feeds it to the core, applies what the core decides.
async fn session(ws: &mut WebSocket, app: &Arc<App>, send_limit: Duration) -> End<Registration> {
    let cfg = &app.config;
    let (tx, rx) = outbox::channel(cfg.send_queue, cfg.signal_queue_bytes);
    let mut shell = Shell {
        ws,
        app,
        tx,
        rx,
        relay_budget: cfg.relay_budget(),
        send_limit,
        read_at: ws_util::now(),
        register_read_at: None,
    };
    let mut core = SessionCore::new(limits(cfg), ws_util::now());
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        let deadline = loop {
            match core.poll_output() {
                Output::Timeout(at) => break tokio::time::Instant::from_std(at),
                Output::End(end) => return end,
                out => {
                    if let Some(input) = shell.apply(out, &core).await {
                        core.handle_input(input, ws_util::now());
                    }
                }
            }
        };
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        // The timer comes first so a steady stream either way can never
        // postpone the liveness check or the registration deadline; the
        // client's own frames come before queued ones so neighbours keeping
        // its queue busy cannot leave its heartbeats unread (its input is
        // rate-limited, so it cannot starve the queue in turn).
        let event = tokio::select! {
            biased;
            _ = app.shutdown.cancelled() => Event::Shutdown,
            code = killed(&mut core) => Event::Killed(code),
            _ = &mut timer => Event::Timeout,
            incoming = shell.ws.recv() => Event::In(incoming),
            Some(out) = shell.rx.recv() => Event::Out(out),
        };
        shell.feed(event, &mut core).await;
    }
}

impl Shell<'_> {
    /// Feeds one event to the core; a queued frame is sent first.
    async fn feed(&mut self, event: Event, core: &mut SessionCore<Registration>) {
        let now = ws_util::now();
        match event {
            Event::Shutdown => core.handle_input(Input::Shutdown, now),
            Event::Killed(code) => core.handle_input(Input::Killed(code), now),
            Event::Timeout => core.handle_input(Input::Timeout, now),
            Event::Out(text) => {
                // A client that stopped reading blocks this send for up to
                // `send_limit`; shutdown must not wait for it.
                let feedback = tokio::select! {
                    biased;
                    _ = self.app.shutdown.cancelled() => Some(Input::Shutdown),
                    ok = ws_util::send(self.ws, Message::Text(text), self.send_limit) => sent(ok),
                };
                if let Some(input) = feedback {
                    core.handle_input(input, ws_util::now());
                }
            }
            Event::In(Some(Ok(Message::Text(text)))) => {
                self.read_at = now;
                core.handle_input(Input::Text(text.as_str()), now)
            }
            Event::In(Some(Ok(Message::Binary(bytes)))) => {
                core.handle_input(Input::Binary(bytes.len()), now)
            }
            Event::In(Some(Ok(Message::Ping(_)))) => core.handle_input(Input::Ping, now),
            Event::In(Some(Ok(Message::Pong(_)))) => core.handle_input(Input::Pong, now),
            Event::In(None | Some(Ok(Message::Close(_)))) => core.handle_input(Input::Closed, now),
            Event::In(Some(Err(e))) => {
                // A frame beyond the hard cap: its header was refused and its
                // payload is still unread.
                let too_large = ws_util::is_too_large(e);
                core.handle_input(Input::ReadFailed { too_large }, now)
            }
        }
    }

    /// Does what the core decided; returns what the core must hear back.
    async fn apply(
        &mut self,
        out: Output<Registration>,
        core: &SessionCore<Registration>,
    ) -> Feedback {
        let (ws, limit) = (&mut *self.ws, self.send_limit);
        match out {
            Output::Text(text) => {
                let ok = ws_util::send(ws, Message::Text(text), limit).await;
                // The core's first text after a registration is its AssignParent.
                if let (true, Some(read)) = (ok, self.register_read_at.take()) {
                    metrics::histogram!(crate::metrics::REGISTER_DURATION)
                        .record(ws_util::now().saturating_duration_since(read).as_secs_f64());
                }
                sent(ok)
            }
            Output::Error(refusal) => sent(ws_util::send_error(ws, &refusal, limit).await),
            Output::Ping => sent(ws_util::send(ws, Message::Ping(Default::default()), limit).await),
            Output::Register {
                peer_id,
                track,
                capacity,
                features,
            } => {
                let joined = register(self.app, &self.tx, &peer_id, &track, capacity, features);
                self.register_read_at = joined.is_ok().then_some(self.read_at);
                Some(Input::Registered(joined))
            }
            Output::Relay { to, text } => {
                let r = core.membership()?;
                let track = r.lease.track();
                let budget = &mut self.relay_budget;
                let refused = track
                    .relay(&r.peer_id, r.id, &to, text.into(), budget)
                    .err();
                refused.map(Input::Refused)
            }
            Output::DropChild { child } => {
                let r = core.membership()?;
                let track = r.lease.track();
                let refused = track
                    .drop_child(&self.app.ctx, &r.peer_id, r.id, &child)
                    .err();
                refused.map(Input::Refused)
            }
            Output::ForwardReport(n) => {
                let r = core.membership()?;
                r.lease.track().forward_report(&r.peer_id, r.id, n);
                None
            }
            Output::Leave(r) => {
                r.leave(LeaveReason::Leave);
                self.rx.clear();
                None
            }
            // The session loop handles these two itself.
            Output::End(_) | Output::Timeout(_) => None,
        }
    }
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
) -> Result<(Registration, Utf8Bytes), Refusal> {
    let lease = app.registry.acquire(track).ok_or_else(|| {
        let why = "the server has reached its track limit";
        Refusal::new(ErrorCode::MeshFull, why.to_owned())
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
