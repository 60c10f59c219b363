//! Origin WebSockets: `/ingest/{track}` (publisher in) and `/ws/{track}` (egress out).

use crate::app::App;
use crate::registry::Lease;
use crate::ring::Read;
use crate::signal_ws::{authorize, Unauthorized, WsQuery};
use crate::ws_util::{self, Farewell, Input, CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meshrelay_protocol::{validate_track, EgressNotice, ErrorCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Objects copied out of the ring per lock acquisition.
const READ_BATCH: usize = 64;

/// Why an origin upgrade was refused, answered over HTTP before the upgrade.
#[derive(Debug)]
pub enum Refusal {
    /// 400: the track in the path breaks the track rules.
    BadTrack(&'static str),
    /// 401: missing or wrong token.
    Unauthorized(Unauthorized),
    /// 503: the track does not exist and the track limit is reached.
    TrackLimit,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::BadTrack(why) => {
                (StatusCode::BAD_REQUEST, format!("invalid track: {why}\n")).into_response()
            }
            Refusal::Unauthorized(u) => u.into_response(),
            Refusal::TrackLimit => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the server has reached its track limit\n",
            )
                .into_response(),
        }
    }
}

/// Checks the path's track and the token, then claims the track.
fn open_track(
    app: &Arc<App>,
    track: &str,
    expected_token: Option<&str>,
    query_token: Option<&str>,
    ws: WebSocketUpgrade,
) -> Result<(WebSocketUpgrade, Lease), Refusal> {
    validate_track(track).map_err(|(_, why)| Refusal::BadTrack(why))?;
    let ws = authorize(ws, expected_token, query_token).map_err(Refusal::Unauthorized)?;
    let lease = app.registry.acquire(track).ok_or(Refusal::TrackLimit)?;
    Ok((ws, lease))
}

/// Gives up on a write blocked this long: the reader stopped reading.
fn stall_limit(app: &App) -> Duration {
    app.config
        .heartbeat_timeout
        .clamp(Duration::from_secs(1), Duration::from_secs(2))
}

/// `GET /ingest/{track}`: one binary message per object.
pub async fn ingest(
    State(app): State<Arc<App>>,
    Path(track): Path<String>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let expected = app.config.publish_token.as_deref();
    let (ws, lease) = match open_track(&app, &track, expected, q.token.as_deref(), ws) {
        Ok(opened) => opened,
        Err(refused) => return refused.into_response(),
    };
    // Up to twice the limit reaches our check and gets a clean `too_large`.
    let cap = app.config.max_object_bytes.saturating_mul(2).max(1024);
    let token = app.tracker.token();
    ws.read_buffer_size(64 * 1024)
        .max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |mut socket| async move {
            let _tracked = token;
            let bye = run_ingest(&mut socket, &app, &lease).await;
            goodbye(socket, &app, lease, bye).await;
        })
}

/// Lets go of the track, then closes the socket: the track slot is free
/// before the client sees any farewell or the end of the connection.
async fn goodbye(mut ws: WebSocket, app: &App, lease: Lease, bye: Option<Farewell>) {
    drop(lease);
    if let Some(f) = bye {
        ws_util::farewell(&mut ws, f, stall_limit(app), &app.shutdown).await;
    }
}

/// Publishes every object received; returns how to say goodbye.
async fn run_ingest(ws: &mut WebSocket, app: &App, lease: &Lease) -> Option<Farewell> {
    let track = lease.track();
    track.stats.publishers.fetch_add(1, Ordering::Relaxed);
    let too_large = |input| {
        let why = format!(
            "object exceeds the limit of {} bytes",
            app.config.max_object_bytes
        );
        Some(Farewell::error(ErrorCode::TooLarge, why, input))
    };
    let farewell = loop {
        let msg = tokio::select! {
            biased;
            _ = app.shutdown.cancelled() => {
                break Some(Farewell::close(CLOSE_GOING_AWAY, "server shutting down"));
            }
            m = ws.recv() => m,
        };
        match msg {
            Some(Ok(Message::Binary(object))) => {
                if object.len() > app.config.max_object_bytes {
                    break too_large(Input::InSync);
                }
                track.publish(&object);
                metrics::counter!(crate::metrics::OBJECTS_IN).increment(1);
                metrics::counter!(crate::metrics::BYTES_IN).increment(object.len() as u64);
            }
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(e)) => {
                break ws_util::is_too_large(e)
                    .then(|| too_large(Input::Desynced))
                    .flatten()
            }
            Some(Ok(Message::Close(_))) | None => break None,
        }
    };
    track.stats.publishers.fetch_sub(1, Ordering::Relaxed);
    farewell
}

/// `GET /ws/{track}?from=<id>`: framed objects in id order.
pub async fn egress(
    State(app): State<Arc<App>>,
    Path(track): Path<String>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let expected = app.config.subscribe_token.as_deref();
    let (ws, lease) = match open_track(&app, &track, expected, q.token.as_deref(), ws) {
        Ok(opened) => opened,
        Err(refused) => return refused.into_response(),
    };
    let token = app.tracker.token();
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
        .on_upgrade(move |mut socket| async move {
            let _tracked = token;
            let bye = run_egress(&mut socket, &app, &lease, q.from).await;
            goodbye(socket, &app, lease, bye).await;
        })
}

async fn run_egress(
    ws: &mut WebSocket,
    app: &App,
    lease: &Lease,
    from: Option<u64>,
) -> Option<Farewell> {
    let track = lease.track();
    track.stats.subscribers.fetch_add(1, Ordering::Relaxed);
    let farewell = stream(ws, app, lease, from).await;
    track.stats.subscribers.fetch_sub(1, Ordering::Relaxed);
    farewell
}

/// What the subscriber sent since the last look, without waiting.
enum Incoming {
    Nothing,
    Alive,
    Gone,
}

fn incoming(msg: Option<Result<Message, axum::Error>>) -> Incoming {
    match msg {
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Incoming::Gone,
        Some(Ok(_)) => Incoming::Alive,
    }
}

/// Streams objects until the subscriber goes, lags, stops answering pings
/// or the server stops; returns how to say goodbye.
async fn stream(
    ws: &mut WebSocket,
    app: &App,
    lease: &Lease,
    from: Option<u64>,
) -> Option<Farewell> {
    let track = lease.track();
    let limit = stall_limit(app);
    // Liveness as on /signal: a ping every timeout/3; a subscriber that
    // answers none (nor sends anything) within the timeout is dropped.
    let timeout = app.config.heartbeat_timeout;
    let ping_every = (timeout / 3).max(Duration::from_millis(10));
    let mut next_ping = Instant::now() + ping_every;
    let mut last_seen = Instant::now();
    let (start, mut published) = track.subscribe(from);
    let mut cursor = start.cursor;
    if let Some(requested) = start.gap_from {
        let notice = EgressNotice::ResumeGap {
            requested,
            first: start.cursor,
        };
        let text = serde_json::to_string(&notice).unwrap_or_default();
        if !ws_util::send(ws, Message::Text(text.into()), limit).await {
            return None;
        }
    }
    loop {
        // Pongs are read between batches too, so a busy track does not
        // starve the liveness check.
        loop {
            let polled = tokio::select! {
                biased;
                m = ws.recv() => incoming(m),
                _ = std::future::ready(()) => Incoming::Nothing,
            };
            match polled {
                Incoming::Nothing => break,
                Incoming::Alive => last_seen = Instant::now(),
                Incoming::Gone => return None,
            }
        }
        if Instant::now() >= next_ping {
            if last_seen.elapsed() > timeout {
                tracing::debug!(track = %track.name, "egress subscriber answered no ping");
                return None;
            }
            if !ws_util::send(ws, Message::Ping(Default::default()), limit).await {
                return None;
            }
            next_ping = Instant::now() + ping_every;
        }
        published.borrow_and_update();
        let batch = match track.read(cursor, READ_BATCH) {
            Read::Lagged => {
                metrics::counter!(crate::metrics::EGRESS_LAGGED).increment(1);
                return Some(Farewell::close(CLOSE_TRY_AGAIN, "slow_consumer"));
            }
            Read::Objects(batch) => batch,
        };
        if batch.is_empty() {
            tokio::select! {
                biased;
                _ = app.shutdown.cancelled() => {
                    return Some(Farewell::close(CLOSE_GOING_AWAY, "server shutting down"));
                }
                changed = published.changed() => if changed.is_err() { return None },
                m = ws.recv() => match incoming(m) {
                    Incoming::Gone => return None,
                    _ => last_seen = Instant::now(),
                },
                _ = tokio::time::sleep_until(next_ping) => {}
            }
            continue;
        }
        for framed in batch {
            let len = framed.len() as u64;
            // Counted when handed to the socket, so a reader that has the
            // object always sees it counted.
            track
                .stats
                .origin_objects_sent
                .fetch_add(1, Ordering::Relaxed);
            track
                .stats
                .origin_bytes_sent
                .fetch_add(len, Ordering::Relaxed);
            metrics::counter!(crate::metrics::OBJECTS_OUT).increment(1);
            metrics::counter!(crate::metrics::BYTES_OUT).increment(len);
            let sent = tokio::select! {
                biased;
                _ = app.shutdown.cancelled() => false,
                ok = ws_util::send(ws, Message::Binary(framed), limit) => ok,
            };
            if !sent {
                if app.shutdown.is_cancelled() {
                    return Some(Farewell::close(CLOSE_GOING_AWAY, "server shutting down"));
                }
                return None;
            }
            cursor += 1;
        }
    }
}
