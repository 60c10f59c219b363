//! Prometheus metric names and the process-wide recorder.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Peers in all trees (gauge, set at scrape).
pub(crate) const PEERS: &str = "meshrelay_peers";
/// Root peers in all trees (gauge, set at scrape).
pub(crate) const ROOTS: &str = "meshrelay_roots";
/// Percentage of peers fed by another peer (gauge, set at scrape).
pub(crate) const OFFLOAD: &str = "meshrelay_offload_percentage";
/// Live tracks (gauge, set at scrape).
pub(crate) const TRACKS: &str = "meshrelay_tracks";
/// Bytes held by all tracks' rings (gauge, set at scrape).
pub(crate) const RING_BYTES: &str = "meshrelay_ring_bytes";
/// The server-wide ring budget, `--ring-bytes-total` (gauge, set at scrape).
pub(crate) const RING_BYTES_BUDGET: &str = "meshrelay_ring_bytes_budget";
/// Open WebSocket connections on `/signal`, `/ws` and `/ingest`, counted
/// against `--max-connections` (gauge, set at scrape).
pub(crate) const CONNECTIONS: &str = "meshrelay_connections";
/// Open `/signal` connections (gauge).
pub(crate) const SIGNAL_SESSIONS: &str = "meshrelay_signal_sessions";
/// Successful registrations.
pub(crate) const JOINS: &str = "meshrelay_joins_total";
/// Planned leaves, by `reason` (leave, disconnect, timeout, slow_consumer, shutdown).
pub(crate) const LEAVES: &str = "meshrelay_leaves_total";
/// `AssignParent` messages sent after the first one (re-parenting).
pub(crate) const REASSIGNMENTS: &str = "meshrelay_reassignments_total";
/// DropChild of a second, different child by one parent within 10 s: its
/// capacity is lowered to the children it has left.
pub(crate) const REPEATED_DROPS: &str = "meshrelay_repeated_child_drops_total";
/// `/signal` frames received, by `kind`.
pub(crate) const SIGNAL_MESSAGES: &str = "meshrelay_signal_messages_total";
/// `Error` messages sent, by `code`.
pub(crate) const ERRORS: &str = "meshrelay_errors_total";
/// Objects received from publishers.
pub(crate) const OBJECTS_IN: &str = "meshrelay_origin_objects_in_total";
/// Payload bytes received from publishers.
pub(crate) const BYTES_IN: &str = "meshrelay_origin_bytes_in_total";
/// Objects written to `/ws/{track}` subscribers.
pub(crate) const OBJECTS_OUT: &str = "meshrelay_origin_objects_out_total";
/// Bytes written to `/ws/{track}` subscribers: framed objects and text notices.
pub(crate) const BYTES_OUT: &str = "meshrelay_origin_bytes_out_total";
/// Egress subscribers closed because they fell out of the ring.
pub(crate) const EGRESS_LAGGED: &str = "meshrelay_origin_lagged_subscribers_total";

/// The process's Prometheus recorder, installed on first use.
///
/// The `metrics` facade has one global recorder per process, so several
/// servers in one process (tests) share it.
pub(crate) fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program);
        // then our handle renders only what we set on it, which is nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Counts one `Error` sent.
pub(crate) fn error_sent(code: meshrelay_protocol::ErrorCode) {
    metrics::counter!(ERRORS, "code" => code.as_str()).increment(1);
}
