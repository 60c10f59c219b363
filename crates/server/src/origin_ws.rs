//! Origin WebSockets: `/ingest/{track}` (publisher in) and `/ws/{track}` (egress out).

use crate::app::App;
use crate::connections::{Connection, TooManyConnections};
use crate::liveness::{Due, Liveness};
use crate::registry::Lease;
use crate::ring::Read;
use crate::signal_ws::{authorize, Unauthorized, WsQuery};
use crate::track::{PublisherClaim, Track};
use crate::ws_util::{self, Farewell, Input, CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN};
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
pub(crate) enum Refusal {
    /// 400: the track in the path breaks the track rules.
    BadTrack(std::borrow::Cow<'static, str>),
    /// 401: missing or wrong token.
    Unauthorized(Unauthorized),
    /// 503: every connection permit (`--max-connections`) is taken.
    TooManyConnections(TooManyConnections),
    /// 503: the track does not exist and the track limit is reached.
    TrackLimit,
    /// 409: another publisher is publishing on the track.
    PublisherBusy,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::BadTrack(why) => {
                (StatusCode::BAD_REQUEST, format!("invalid track: {why}\n")).into_response()
            }
            Refusal::Unauthorized(u) => u.into_response(),
            Refusal::TooManyConnections(t) => t.into_response(),
            Refusal::TrackLimit => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the server has reached its track limit\n",
            )
                .into_response(),
            Refusal::PublisherBusy => (
                StatusCode::CONFLICT,
                "another publisher is publishing on this track; retry once it disconnects\n",
            )
                .into_response(),
        }
    }
}

/// What an origin connection holds on the server while it is open.
struct Held {
    /// Its connection permit; kept until the socket is gone.
    connection: Connection,
    /// Its claim on the track; let go before the closing handshake.
    lease: Lease,
    /// The publisher slot (ingest only); let go with the lease.
    publisher: Option<PublisherClaim>,
}

/// Checks the path's track, the token and the connection limit, then
/// claims the track.
fn open_track(
    app: &Arc<App>,
    track: &str,
    expected_token: Option<&str>,
    query_token: Option<&str>,
    ws: WebSocketUpgrade,
) -> Result<(WebSocketUpgrade, Held), Refusal> {
    validate_track(track).map_err(|r| Refusal::BadTrack(r.reason))?;
    let ws = authorize(ws, expected_token, query_token).map_err(Refusal::Unauthorized)?;
    let connection = app.connection().map_err(Refusal::TooManyConnections)?;
    let lease = app.registry.acquire(track).ok_or(Refusal::TrackLimit)?;
    let held = Held {
        connection,
        lease,
        publisher: None,
    };
    Ok((ws, held))
}

/// Gives up on a write blocked this long: the reader stopped reading.
fn stall_limit(app: &App) -> Duration {
    app.config
        .heartbeat_timeout
        .clamp(Duration::from_secs(1), Duration::from_secs(2))
}

/// `GET /ingest/{track}`: one binary message per object, from the track's
/// only publisher.
pub(crate) async fn ingest(
    State(app): State<Arc<App>>,
    Path(track): Path<String>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let expected = app.config.publish_token.as_deref();
    let (ws, mut held) = match open_track(&app, &track, expected, q.token.as_deref(), ws) {
        Ok(opened) => opened,
        Err(refused) => return refused.into_response(),
    };
    held.publisher = match held.lease.track().claim_publisher() {
        Some(claim) => Some(claim),
        None => return Refusal::PublisherBusy.into_response(),
    };
    // Up to twice the limit reaches our check and gets a clean `too_large`.
    let cap = app.config.max_object_bytes.saturating_mul(2).max(1024);
    ws.read_buffer_size(64 * 1024)
        .max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |mut socket| async move {
            let track = held.lease.track();
            let bye = run_ingest(&mut socket, &app, track).await;
            goodbye(socket, &app, held, bye).await;
        })
}

/// Lets go of the track (and the publisher slot), then closes the socket:
/// both are free before the client sees any farewell or the end of the
/// connection. The connection permit is kept until the socket is gone.
async fn goodbye(mut ws: WebSocket, app: &App, held: Held, bye: Option<Farewell>) {
    let Held {
        connection,
        lease,
        publisher,
    } = held;
    drop(publisher);
    drop(lease);
    if let Some(f) = bye {
        ws_util::farewell(&mut ws, f, stall_limit(app), &app.shutdown).await;
    }
    drop(ws);
    drop(connection);
}

/// Checks liveness when a check is due and sends the ping that is due, if
/// one is; false when the client is to be dropped: it answered no ping
/// within the heartbeat timeout, or the socket failed.
async fn ping_if_due(
    ws: &mut WebSocket,
    liveness: &mut Liveness,
    limit: Duration,
    track: &Track,
    who: &str,
) -> bool {
    let now = ws_util::now();
    if !liveness.check_due(now) {
        return true;
    }
    match liveness.on_due(now) {
        Due::Gone => {
            tracing::debug!(track = %track.name, "{who} answered no ping");
            false
        }
        Due::Quiet => true,
        Due::Ping => ws_util::send(ws, Message::Ping(Default::default()), limit).await,
    }
}

/// Publishes every object received until the publisher goes, stops
/// answering pings, or the server stops; returns how to say goodbye.
async fn run_ingest(ws: &mut WebSocket, app: &App, track: &Track) -> Option<Farewell> {
    let limit = stall_limit(app);
    let mut liveness = Liveness::new(app.config.heartbeat_timeout, ws_util::now());
    let too_large = |input| {
        let why = format!(
            "object exceeds the limit of {} bytes",
            app.config.max_object_bytes
        );
        Some(Farewell::error(ErrorCode::TooLarge, why, input))
    };
    loop {
        // Checked before reading, so a flood of objects cannot postpone it.
        if !ping_if_due(ws, &mut liveness, limit, track, "publisher").await {
            return None;
        }
        let msg = tokio::select! {
            biased;
            _ = app.shutdown.cancelled() => {
                return Some(Farewell::close(CLOSE_GOING_AWAY, "server shutting down"));
            }
            _ = ws_util::sleep_until(liveness.deadline()) => continue,
            m = ws.recv() => m,
        };
        match msg {
            Some(Ok(Message::Binary(object))) => {
                liveness.seen(ws_util::now());
                if object.len() > app.config.max_object_bytes {
                    return too_large(Input::InSync);
                }
                track.origin.publish(&object);
                crate::metrics::object_in(object.len());
            }
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {
                liveness.seen(ws_util::now())
            }
            Some(Err(e)) => {
                return ws_util::is_too_large(e)
                    .then(|| too_large(Input::Desynced))
                    .flatten()
            }
            Some(Ok(Message::Close(_))) | None => return None,
        }
    }
}

/// `GET /ws/{track}?from=<id>`: framed objects in id order.
pub(crate) async fn egress(
    State(app): State<Arc<App>>,
    Path(track): Path<String>,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let expected = app.config.subscribe_token.as_deref();
    let (ws, held) = match open_track(&app, &track, expected, q.token.as_deref(), ws) {
        Ok(opened) => opened,
        Err(refused) => return refused.into_response(),
    };
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
        .on_upgrade(move |mut socket| async move {
            let track = held.lease.track();
            let bye = run_egress(&mut socket, &app, track, q.from).await;
            goodbye(socket, &app, held, bye).await;
        })
}

async fn run_egress(
    ws: &mut WebSocket,
    app: &App,
    track: &Track,
    from: Option<u64>,
) -> Option<Farewell> {
    track
        .origin
        .stats
        .subscribers
        .fetch_add(1, Ordering::Relaxed);
    let farewell = stream(ws, app, track, from).await;
    track
        .origin
        .stats
        .subscribers
        .fetch_sub(1, Ordering::Relaxed);
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

/// How a counted send ended.
enum Sent {
    /// Written: counted.
    Ok,
    /// The socket failed or the subscriber stopped reading.
    Failed,
    /// The server is stopping; the message may not have been written.
    Shutdown,
}

/// Sends one egress message and, once it is written, counts it in the
/// track's origin counters: bytes always, an object when it is binary.
async fn send_counted(ws: &mut WebSocket, app: &App, track: &Track, msg: Message) -> Sent {
    let (len, object) = match &msg {
        Message::Binary(b) => (b.len() as u64, true),
        Message::Text(t) => (t.len() as u64, false),
        _ => (0, false),
    };
    let sent = tokio::select! {
        biased;
        _ = app.shutdown.cancelled() => return Sent::Shutdown,
        ok = ws_util::send(ws, msg, stall_limit(app)) => ok,
    };
    if !sent {
        return Sent::Failed;
    }
    let stats = &track.origin.stats;
    stats.origin_bytes_sent.fetch_add(len, Ordering::Relaxed);
    crate::metrics::bytes_out(len);
    if object {
        stats.origin_objects_sent.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::OBJECTS_OUT).increment(1);
    }
    Sent::Ok
}

/// The farewell after a send that did not complete, if any.
fn unsent(outcome: Sent) -> Option<Option<Farewell>> {
    match outcome {
        Sent::Ok => None,
        Sent::Failed => Some(None),
        Sent::Shutdown => Some(Some(Farewell::close(
            CLOSE_GOING_AWAY,
            "server shutting down",
        ))),
    }
}

/// Streams objects until the subscriber goes, lags, stops answering pings
/// or the server stops; returns how to say goodbye.
async fn stream(
    ws: &mut WebSocket,
    app: &App,
    track: &Track,
    from: Option<u64>,
) -> Option<Farewell> {
    let limit = stall_limit(app);
    let mut liveness = Liveness::new(app.config.heartbeat_timeout, ws_util::now());
    let (start, mut published) = track.origin.subscribe(from);
    let mut cursor = start.cursor;
    if let Some(requested) = start.gap_from {
        let notice = EgressNotice::ResumeGap {
            requested,
            first: start.cursor,
        };
        let text = Message::Text(notice.to_json().into());
        if let Some(bye) = unsent(send_counted(ws, app, track, text).await) {
            return bye;
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
                Incoming::Alive => liveness.seen(ws_util::now()),
                Incoming::Gone => return None,
            }
        }
        if !ping_if_due(ws, &mut liveness, limit, track, "egress subscriber").await {
            return None;
        }
        published.borrow_and_update();
        let batch = match track.origin.read(cursor, READ_BATCH) {
            Read::Lagged => return lagged(ws, app, track, cursor).await,
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
                    _ => liveness.seen(ws_util::now()),
                },
                _ = ws_util::sleep_until(liveness.deadline()) => {}
            }
            continue;
        }
        for framed in batch {
            if let Some(bye) = unsent(send_counted(ws, app, track, Message::Binary(framed)).await) {
                return bye;
            }
            cursor += 1;
        }
    }
}

/// Tells a subscriber whose next object (`cursor`) left the ring why it is
/// dropped: a `slow_consumer` `Error` text frame, then Close 1013.
async fn lagged(ws: &mut WebSocket, app: &App, track: &Track, cursor: u64) -> Option<Farewell> {
    metrics::counter!(crate::metrics::EGRESS_LAGGED).increment(1);
    let code = ErrorCode::SlowConsumer;
    let notice = EgressNotice::Error {
        code,
        reason: format!(
            "object {cursor} left the ring buffer before this subscriber read it; \
             reconnect with ?from={cursor} to resume from the oldest kept object"
        ),
    };
    crate::metrics::error_sent(code);
    let text = Message::Text(notice.to_json().into());
    if let Some(bye) = unsent(send_counted(ws, app, track, text).await) {
        return bye;
    }
    Some(Farewell::close(CLOSE_TRY_AGAIN, code.as_str()))
}
