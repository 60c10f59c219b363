//! Origin WebSockets: `/ingest/{track}` (publisher in) and `/ws/{track}` (egress out).

use crate::app::App;
use crate::registry::Lease;
use crate::ring::Read;
use crate::signal_ws::{authorize, Unauthorized, WsQuery};
use crate::ws_util::{self, CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meshrelay_protocol::{validate_track, EgressNotice, ErrorCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
        .on_upgrade(move |socket| async move {
            let _tracked = token;
            run_ingest(socket, &app, &lease).await;
        })
}

async fn run_ingest(mut ws: WebSocket, app: &App, lease: &Lease) {
    let track = lease.track();
    let limit = stall_limit(app);
    track.stats.publishers.fetch_add(1, Ordering::Relaxed);
    loop {
        let msg = tokio::select! {
            biased;
            _ = app.shutdown.cancelled() => {
                ws_util::close(&mut ws, CLOSE_GOING_AWAY, "server shutting down", limit).await;
                break;
            }
            m = ws.recv() => m,
        };
        match msg {
            Some(Ok(Message::Binary(object))) => {
                if object.len() > app.config.max_object_bytes {
                    let why = format!(
                        "object of {} bytes exceeds the limit of {}",
                        object.len(),
                        app.config.max_object_bytes
                    );
                    ws_util::send_error(&mut ws, ErrorCode::TooLarge, &why, limit).await;
                    break;
                }
                track.publish(&object);
                metrics::counter!(crate::metrics::OBJECTS_IN).increment(1);
                metrics::counter!(crate::metrics::BYTES_IN).increment(object.len() as u64);
            }
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(e)) => {
                if e.to_string().contains("too long") || e.to_string().contains("Space limit") {
                    ws_util::send_error(&mut ws, ErrorCode::TooLarge, "object too large", limit)
                        .await;
                }
                break;
            }
            Some(Ok(Message::Close(_))) | None => break,
        }
    }
    track.stats.publishers.fetch_sub(1, Ordering::Relaxed);
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
        .on_upgrade(move |socket| async move {
            let _tracked = token;
            run_egress(socket, &app, &lease, q.from).await;
        })
}

async fn run_egress(mut ws: WebSocket, app: &App, lease: &Lease, from: Option<u64>) {
    let track = lease.track();
    let limit = stall_limit(app);
    track.stats.subscribers.fetch_add(1, Ordering::Relaxed);
    let (start, mut published) = track.subscribe(from);
    let mut cursor = start.cursor;
    if let Some(requested) = start.gap_from {
        let notice = EgressNotice::ResumeGap {
            requested,
            first: start.cursor,
        };
        let text = serde_json::to_string(&notice).unwrap_or_default();
        if !ws_util::send(&mut ws, Message::Text(text.into()), limit).await {
            track.stats.subscribers.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    }
    'stream: loop {
        published.borrow_and_update();
        let batch = match track.read(cursor, READ_BATCH) {
            Read::Lagged => {
                metrics::counter!(crate::metrics::EGRESS_LAGGED).increment(1);
                ws_util::close(&mut ws, CLOSE_TRY_AGAIN, "slow_consumer", limit).await;
                break;
            }
            Read::Objects(batch) => batch,
        };
        if batch.is_empty() {
            tokio::select! {
                biased;
                _ = app.shutdown.cancelled() => {
                    ws_util::close(&mut ws, CLOSE_GOING_AWAY, "server shutting down", limit).await;
                    break;
                }
                changed = published.changed() => if changed.is_err() { break },
                incoming = ws.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
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
                ok = ws_util::send(&mut ws, Message::Binary(framed), limit) => ok,
            };
            if !sent {
                if app.shutdown.is_cancelled() {
                    ws_util::close(&mut ws, CLOSE_GOING_AWAY, "server shutting down", limit).await;
                }
                break 'stream;
            }
            cursor += 1;
        }
    }
    track.stats.subscribers.fetch_sub(1, Ordering::Relaxed);
}
