//! Admin and static endpoints: `/api/v1/mesh`, `/metrics`, `/healthz`, the
//! SDK bundle and the demo page.

use crate::app::App;
use crate::auth;
use crate::config::CorsOrigins;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The browser SDK bundle, built by sdk/js and committed.
const SDK_JS: &str = include_str!("../../../sdk/js/dist/meshrelay.js");
/// The demo page.
const DEMO_HTML: &str = include_str!("../../../sdk/js/demo/index.html");

/// One peer, in LVQR's `MeshPeerStats` shape plus its track.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PeerStats {
    /// Its id.
    pub peer_id: String,
    /// Its track.
    pub track: String,
    /// `Root`, `Relay` or `Leaf`, spelt as in `AssignParent`.
    pub role: meshrelay_protocol::Role,
    /// Its parent's id, if any.
    pub parent: Option<String>,
    /// Hops from the origin.
    pub depth: u32,
    /// Children the planner gave it.
    pub intended_children: usize,
    /// The count it last reported.
    pub forwarded_frames: u64,
    /// The children it may have: its claim clamped to `--max-peers` (or
    /// lowered after it dropped children), as LVQR shows it.
    pub capacity: u32,
    /// The capacity it claimed at `Register`, unclamped; `null` when it
    /// claimed none.
    pub claimed_capacity: Option<u32>,
}

/// One track's summary.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TrackStatsView {
    /// Its name.
    pub track: String,
    /// Peers in its tree.
    pub peer_count: usize,
    /// Roots (fed by the origin).
    pub root_count: usize,
    /// Percentage of peers fed by a peer.
    pub offload_percentage: f64,
    /// Objects accepted from publishers.
    pub objects_published: u64,
    /// Id the next object gets.
    pub next_object_id: u64,
    /// The identity of the track's id sequence (as in `AssignParent`).
    pub epoch: String,
    /// Objects written to egress subscribers.
    pub origin_objects_sent: u64,
    /// Bytes written to egress subscribers: framed objects and text notices.
    pub origin_bytes_sent: u64,
    /// Open egress subscribers.
    pub subscribers: usize,
    /// Open publishers.
    pub publishers: usize,
}

/// `GET /api/v1/mesh` body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MeshView {
    /// Always true: the mesh is part of the server.
    pub enabled: bool,
    /// Peers over all tracks.
    pub peer_count: usize,
    /// Percentage of all peers fed by a peer.
    pub offload_percentage: f64,
    /// Open WebSocket connections (`/signal`, `/ws`, `/ingest`), counted
    /// against `--max-connections`.
    pub connections: usize,
    /// Every peer (omitted with `?peers=false`).
    pub peers: Vec<PeerStats>,
    /// Per-track summaries.
    pub tracks: Vec<TrackStatsView>,
}

/// Query of `/api/v1/mesh`.
#[derive(Debug, Deserialize)]
pub(crate) struct MeshQuery {
    /// Include the per-peer list (default true; O(peers)).
    peers: Option<bool>,
}

/// The token part of an admin request's query.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

/// Lets an admin request through only with the `--admin-token` (when one is
/// set): `Authorization: Bearer <token>` or `?token=`. Otherwise 401 with a
/// `WWW-Authenticate` challenge, and the handler never runs.
pub(crate) async fn require_admin_token(
    State(app): State<Arc<App>>,
    Query(q): Query<TokenQuery>,
    req: Request,
    next: Next,
) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth::admin_allowed(
        app.config.admin_token.as_deref(),
        authorization,
        q.token.as_deref(),
    ) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"meshrelay admin\"")],
        "admin token required: Authorization: Bearer <token> or ?token=\n",
    )
        .into_response()
}

/// The CORS layer of the admin API, or `None` when it is off. Answers a
/// preflight for `GET` with an `Authorization` header (the admin token).
pub(crate) fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        CorsOrigins::Off => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD])
            .allow_headers([header::AUTHORIZATION])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Percentage of all peers fed by a peer, over tracks given as
/// `(peer_count, offload_percentage)`: each track's percentage weighted by
/// its peers.
pub(crate) fn overall_offload(tracks: impl IntoIterator<Item = (usize, f64)>) -> f64 {
    let (peers, offloaded) = tracks
        .into_iter()
        .fold((0usize, 0.0f64), |(peers, offloaded), (n, pct)| {
            (peers + n, offloaded + pct * n as f64 / 100.0)
        });
    if peers == 0 {
        0.0
    } else {
        offloaded * 100.0 / peers as f64
    }
}

/// `GET /api/v1/mesh`.
pub(crate) async fn mesh(
    State(app): State<Arc<App>>,
    Query(q): Query<MeshQuery>,
) -> Json<MeshView> {
    let with_peers = q.peers.unwrap_or(true);
    let mut view = MeshView {
        enabled: true,
        peer_count: 0,
        offload_percentage: 0.0,
        connections: app.connections.open_count(),
        peers: Vec::new(),
        tracks: Vec::new(),
    };
    for track in app.registry.list() {
        let tree = track.tree_snapshot(with_peers);
        view.peer_count += tree.peer_count;
        view.peers.extend(tree.peers.into_iter().map(|p| PeerStats {
            role: crate::wire::role(p.role),
            intended_children: p.child_count,
            peer_id: p.id,
            track: track.name.to_string(),
            parent: p.parent,
            depth: p.depth,
            forwarded_frames: p.forwarded_frames,
            capacity: p.effective_capacity,
            claimed_capacity: p.capacity,
        }));
        let s = &track.origin.stats;
        view.tracks.push(TrackStatsView {
            track: track.name.to_string(),
            peer_count: tree.peer_count,
            root_count: tree.root_count,
            offload_percentage: tree.offload_percentage,
            objects_published: s.objects_published.load(Ordering::Relaxed),
            next_object_id: track.origin.next_object_id(),
            epoch: track.origin.epoch.to_string(),
            origin_objects_sent: s.origin_objects_sent.load(Ordering::Relaxed),
            origin_bytes_sent: s.origin_bytes_sent.load(Ordering::Relaxed),
            subscribers: s.subscribers.load(Ordering::Relaxed),
            publishers: s.publishers.load(Ordering::Relaxed),
        });
    }
    view.offload_percentage = overall_offload(
        view.tracks
            .iter()
            .map(|t| (t.peer_count, t.offload_percentage)),
    );
    Json(view)
}

/// `GET /metrics`: Prometheus text. Tree gauges are computed at scrape
/// time; the per-track series are rendered from the live tracks, so a track
/// that is gone is not exported.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    use crate::metrics as m;
    let tracks = app.registry.list();
    let trees: Vec<_> = tracks.iter().map(|t| t.tree_snapshot(false)).collect();
    let peers: usize = trees.iter().map(|t| t.peer_count).sum();
    let roots: usize = trees.iter().map(|t| t.root_count).sum();
    let offload = overall_offload(trees.iter().map(|t| (t.peer_count, t.offload_percentage)));
    metrics::gauge!(m::PEERS).set(peers as f64);
    metrics::gauge!(m::ROOTS).set(roots as f64);
    metrics::gauge!(m::OFFLOAD).set(offload / 100.0);
    metrics::gauge!(m::OFFLOAD_PERCENTAGE).set(offload);
    metrics::gauge!(m::TRACKS).set(tracks.len() as f64);
    metrics::gauge!(m::CONNECTIONS).set(app.connections.open_count() as f64);
    let budget = app.registry.ring_budget();
    metrics::gauge!(m::RING_BYTES).set(budget.used() as f64);
    metrics::gauge!(m::RING_BUDGET_BYTES).set(budget.max() as f64);
    metrics::gauge!(m::RING_BYTES_BUDGET).set(budget.max() as f64);
    let per_track: Vec<m::TrackValues> = tracks
        .iter()
        .zip(&trees)
        .map(|(track, tree)| {
            let s = &track.origin.stats;
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
            m::TrackValues {
                track: track.name.to_string(),
                values: [
                    tree.peer_count as f64,
                    tree.root_count as f64,
                    tree.offload_percentage / 100.0,
                    load(&s.objects_published),
                    load(&s.bytes_published),
                    load(&s.origin_objects_sent),
                    load(&s.origin_bytes_sent),
                ],
            }
        })
        .collect();
    let mut body = m::handle().render();
    if !body.is_empty() && !body.ends_with("\n\n") {
        body.push('\n');
    }
    m::render_tracks(&mut body, &per_track);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /sdk/meshrelay.js`.
pub(crate) async fn sdk() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SDK_JS,
    )
        .into_response()
}

/// `GET /` and `GET /demo`.
pub(crate) async fn demo_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DEMO_HTML,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::overall_offload;

    #[test]
    fn overall_offload_weights_tracks_by_peers() {
        assert_eq!(overall_offload([]), 0.0);
        assert_eq!(overall_offload([(0, 0.0)]), 0.0);
        assert_eq!(overall_offload([(2, 50.0)]), 50.0);
        // 1 of 2 and 9 of 10 offloaded: 10 of 12.
        let all = overall_offload([(2, 50.0), (10, 90.0), (0, 0.0)]);
        assert!((all - 100.0 * 10.0 / 12.0).abs() < 1e-9, "{all}");
    }
}
