//! Admin and static endpoints: `/api/v1/mesh`, `/metrics`, `/healthz`, the
//! SDK bundle and the demo page.

use crate::app::App;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The browser SDK bundle, built by sdk/js and committed.
const SDK_JS: &str = include_str!("../../../sdk/js/dist/meshrelay.js");
/// The demo page.
const DEMO_HTML: &str = include_str!("../../../sdk/js/demo/index.html");

/// One peer, in LVQR's `MeshPeerStats` shape plus its track.
#[derive(Debug, Serialize, Deserialize)]
pub struct PeerStats {
    /// Its id.
    pub peer_id: String,
    /// Its track.
    pub track: String,
    /// `Root`, `Relay` or `Leaf`.
    pub role: String,
    /// Its parent's id, if any.
    pub parent: Option<String>,
    /// Hops from the origin.
    pub depth: u32,
    /// Children the planner gave it.
    pub intended_children: usize,
    /// The count it last reported.
    pub forwarded_frames: u64,
    /// The capacity it claimed (unclamped), if any.
    pub capacity: Option<u32>,
}

/// One track's summary.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrackStatsView {
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
    /// Objects sent on egress.
    pub origin_objects_sent: u64,
    /// Framed bytes sent on egress.
    pub origin_bytes_sent: u64,
    /// Open egress subscribers.
    pub subscribers: usize,
    /// Open publishers.
    pub publishers: usize,
}

/// `GET /api/v1/mesh` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct MeshView {
    /// Always true: the mesh is part of the server.
    pub enabled: bool,
    /// Peers over all tracks.
    pub peer_count: usize,
    /// Percentage of all peers fed by a peer.
    pub offload_percentage: f64,
    /// Every peer (omitted with `?peers=false`).
    pub peers: Vec<PeerStats>,
    /// Per-track summaries.
    pub tracks: Vec<TrackStatsView>,
}

/// Query of `/api/v1/mesh`.
#[derive(Debug, Deserialize)]
pub struct MeshQuery {
    /// Include the per-peer list (default true; O(peers)).
    peers: Option<bool>,
}

/// `GET /api/v1/mesh`.
pub async fn mesh(State(app): State<Arc<App>>, Query(q): Query<MeshQuery>) -> Json<MeshView> {
    let with_peers = q.peers.unwrap_or(true);
    let mut view = MeshView {
        enabled: true,
        peer_count: 0,
        offload_percentage: 0.0,
        peers: Vec::new(),
        tracks: Vec::new(),
    };
    let mut offloaded = 0.0;
    for track in app.registry.list() {
        let tree = track.tree_snapshot(with_peers);
        view.peer_count += tree.peer_count;
        offloaded += tree.offload_percentage * tree.peer_count as f64 / 100.0;
        view.peers.extend(tree.peers.into_iter().map(|p| PeerStats {
            role: format!("{:?}", p.role),
            intended_children: p.children.len(),
            peer_id: p.id,
            track: p.track,
            parent: p.parent,
            depth: p.depth,
            forwarded_frames: p.forwarded_frames,
            capacity: p.capacity,
        }));
        let s = &track.stats;
        view.tracks.push(TrackStatsView {
            track: track.name.to_string(),
            peer_count: tree.peer_count,
            root_count: tree.root_count,
            offload_percentage: tree.offload_percentage,
            objects_published: s.objects_published.load(Ordering::Relaxed),
            next_object_id: track.next_object_id(),
            origin_objects_sent: s.origin_objects_sent.load(Ordering::Relaxed),
            origin_bytes_sent: s.origin_bytes_sent.load(Ordering::Relaxed),
            subscribers: s.subscribers.load(Ordering::Relaxed),
            publishers: s.publishers.load(Ordering::Relaxed),
        });
    }
    if view.peer_count > 0 {
        view.offload_percentage = offloaded * 100.0 / view.peer_count as f64;
    }
    Json(view)
}

/// `GET /metrics`: Prometheus text. Tree gauges are computed at scrape time.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let (mut peers, mut roots, mut offloaded) = (0usize, 0usize, 0.0);
    let tracks = app.registry.list();
    for track in &tracks {
        let t = track.tree_snapshot(false);
        peers += t.peer_count;
        roots += t.root_count;
        offloaded += t.offload_percentage * t.peer_count as f64 / 100.0;
    }
    let offload = if peers > 0 {
        offloaded * 100.0 / peers as f64
    } else {
        0.0
    };
    metrics::gauge!(crate::metrics::PEERS).set(peers as f64);
    metrics::gauge!(crate::metrics::ROOTS).set(roots as f64);
    metrics::gauge!(crate::metrics::OFFLOAD).set(offload);
    metrics::gauge!(crate::metrics::TRACKS).set(tracks.len() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::handle().render(),
    )
        .into_response()
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /sdk/meshrelay.js`.
pub async fn sdk() -> Response {
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
pub async fn demo_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DEMO_HTML,
    )
        .into_response()
}
