//! Prometheus metric names, their descriptions, and the process-wide
//! recorder.
//!
//! Conventions (issue 14): every series has `# HELP` and `# TYPE`; names
//! carry base units (`_bytes`, `_seconds`); ratios are 0-1 (`_ratio`);
//! counters end in `_total`. Names renamed to follow them are still emitted
//! under their old name for one release (README.md lists them).
//!
//! Per-track series (label `track`) are not kept in the recorder: they are
//! rendered at scrape time from the live tracks ([`render_tracks`]), so a
//! track that is gone is not exported at the next scrape, and the number of
//! series is bounded by `--max-tracks`.

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Peers in all trees (gauge, set at scrape).
pub(crate) const PEERS: &str = "meshrelay_peers";
/// Root peers in all trees (gauge, set at scrape).
pub(crate) const ROOTS: &str = "meshrelay_roots";
/// Share of peers fed by another peer, 0-1 (gauge, set at scrape).
pub(crate) const OFFLOAD: &str = "meshrelay_offload_ratio";
/// Old name of [`OFFLOAD`], 0-100 (gauge, set at scrape). Deprecated.
pub(crate) const OFFLOAD_PERCENTAGE: &str = "meshrelay_offload_percentage";
/// Live tracks (gauge, set at scrape).
pub(crate) const TRACKS: &str = "meshrelay_tracks";
/// Bytes held by all tracks' rings (gauge, set at scrape).
pub(crate) const RING_BYTES: &str = "meshrelay_ring_bytes";
/// The server-wide ring budget, `--ring-bytes-total` (gauge, set at scrape).
pub(crate) const RING_BUDGET_BYTES: &str = "meshrelay_ring_budget_bytes";
/// Old name of [`RING_BUDGET_BYTES`]. Deprecated.
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
pub(crate) const BYTES_IN: &str = "meshrelay_origin_in_bytes_total";
/// Old name of [`BYTES_IN`]. Deprecated.
pub(crate) const BYTES_IN_OLD: &str = "meshrelay_origin_bytes_in_total";
/// Objects written to `/ws/{track}` subscribers.
pub(crate) const OBJECTS_OUT: &str = "meshrelay_origin_objects_out_total";
/// Bytes written to `/ws/{track}` subscribers: framed objects and text notices.
pub(crate) const BYTES_OUT: &str = "meshrelay_origin_out_bytes_total";
/// Old name of [`BYTES_OUT`]. Deprecated.
pub(crate) const BYTES_OUT_OLD: &str = "meshrelay_origin_bytes_out_total";
/// Egress subscribers closed because they fell out of the ring.
pub(crate) const EGRESS_LAGGED: &str = "meshrelay_origin_lagged_subscribers_total";
/// Seconds from a `Register` frame read to its `AssignParent` written.
pub(crate) const REGISTER_DURATION: &str = "meshrelay_register_duration_seconds";
/// Seconds from a peer's leave learned (before the track's lock) to each
/// moved peer's `AssignParent` queued.
pub(crate) const REPLAN_DURATION: &str = "meshrelay_replan_duration_seconds";

/// Buckets of both latency histograms, in seconds: 10 µs to 2.5 s.
const LATENCY_BUCKETS: [f64; 17] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Describes every series the recorder holds: `# HELP` and the unit.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(PEERS, Unit::Count, "Peers in all trees.");
    describe_gauge!(
        ROOTS,
        Unit::Count,
        "Root peers (fed by the origin) in all trees."
    );
    describe_gauge!(
        OFFLOAD,
        Unit::Count,
        "Share of all peers fed by another peer rather than the origin, 0-1."
    );
    describe_gauge!(
        OFFLOAD_PERCENTAGE,
        Unit::Count,
        "Deprecated, use meshrelay_offload_ratio: the same share as 0-100."
    );
    describe_gauge!(TRACKS, Unit::Count, "Live tracks.");
    describe_gauge!(
        RING_BYTES,
        Unit::Bytes,
        "Bytes held by all tracks' resume rings."
    );
    describe_gauge!(
        RING_BUDGET_BYTES,
        Unit::Bytes,
        "Bytes all tracks' resume rings may hold together (--ring-bytes-total)."
    );
    describe_gauge!(
        RING_BYTES_BUDGET,
        Unit::Bytes,
        "Deprecated, use meshrelay_ring_budget_bytes: the same value."
    );
    describe_gauge!(
        CONNECTIONS,
        Unit::Count,
        "Open WebSocket connections on /signal, /ws and /ingest (counted against --max-connections)."
    );
    describe_gauge!(SIGNAL_SESSIONS, Unit::Count, "Open /signal connections.");
    describe_counter!(
        JOINS,
        Unit::Count,
        "Successful registrations (Register answered by AssignParent)."
    );
    describe_counter!(LEAVES, Unit::Count, "Planned leaves, by reason.");
    describe_counter!(
        REASSIGNMENTS,
        Unit::Count,
        "Peer placements changed by a re-plan (after a join, leave, dropped child or lowered capacity)."
    );
    describe_counter!(
        REPEATED_DROPS,
        Unit::Count,
        "Parents that dropped a second, different child within 10 s (their capacity is lowered)."
    );
    describe_counter!(
        SIGNAL_MESSAGES,
        Unit::Count,
        "/signal frames received, by kind."
    );
    describe_counter!(
        ERRORS,
        Unit::Count,
        "Error messages sent to clients, by code."
    );
    describe_counter!(OBJECTS_IN, Unit::Count, "Objects received from publishers.");
    describe_counter!(
        BYTES_IN,
        Unit::Bytes,
        "Payload bytes received from publishers."
    );
    describe_counter!(
        BYTES_IN_OLD,
        Unit::Bytes,
        "Deprecated, use meshrelay_origin_in_bytes_total: the same count."
    );
    describe_counter!(
        OBJECTS_OUT,
        Unit::Count,
        "Objects written to /ws/{track} subscribers."
    );
    describe_counter!(
        BYTES_OUT,
        Unit::Bytes,
        "Bytes written to /ws/{track} subscribers: framed objects and text notices."
    );
    describe_counter!(
        BYTES_OUT_OLD,
        Unit::Bytes,
        "Deprecated, use meshrelay_origin_out_bytes_total: the same count."
    );
    describe_counter!(
        EGRESS_LAGGED,
        Unit::Count,
        "Egress subscribers closed because they fell out of the resume ring."
    );
    describe_histogram!(
        REGISTER_DURATION,
        Unit::Seconds,
        "Seconds from a Register frame read on /signal to its AssignParent written to the socket."
    );
    describe_histogram!(
        REPLAN_DURATION,
        Unit::Seconds,
        "Seconds from the server learning a peer is gone (its session ended or was cut off; before the track's lock) to the AssignParent of each peer its leave moved being queued for that peer. Server side only: not the delivery, nor the new peer link."
    );
}

/// The process's Prometheus recorder, installed on first use.
///
/// The `metrics` facade has one global recorder per process, so several
/// servers in one process (tests) share it.
pub(crate) fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for name in [REGISTER_DURATION, REPLAN_DURATION] {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), &LATENCY_BUCKETS)
                .expect("the buckets are not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program);
        // then our handle renders only what we set on it, which is nothing.
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
        }
        handle
    })
}

/// Counts one `Error` sent.
pub(crate) fn error_sent(code: meshrelay_protocol::ErrorCode) {
    metrics::counter!(ERRORS, "code" => code.as_str()).increment(1);
}

/// Counts one object of `len` payload bytes received from a publisher.
pub(crate) fn object_in(len: usize) {
    metrics::counter!(OBJECTS_IN).increment(1);
    metrics::counter!(BYTES_IN).increment(len as u64);
    metrics::counter!(BYTES_IN_OLD).increment(len as u64);
}

/// Counts `len` bytes written to an egress subscriber.
pub(crate) fn bytes_out(len: u64) {
    metrics::counter!(BYTES_OUT).increment(len);
    metrics::counter!(BYTES_OUT_OLD).increment(len);
}

/// The per-track families: name, type, help.
pub(crate) const TRACK_FAMILIES: [(&str, &str, &str); 7] = [
    ("meshrelay_track_peers", "gauge", "Peers in the track's tree."),
    ("meshrelay_track_roots", "gauge", "Root peers (fed by the origin) in the track's tree."),
    (
        "meshrelay_track_offload_ratio",
        "gauge",
        "Share of the track's peers fed by another peer rather than the origin, 0-1.",
    ),
    (
        "meshrelay_track_origin_objects_in_total",
        "counter",
        "Objects received from the track's publishers since the track was created.",
    ),
    (
        "meshrelay_track_origin_in_bytes_total",
        "counter",
        "Payload bytes received from the track's publishers since the track was created.",
    ),
    (
        "meshrelay_track_origin_objects_out_total",
        "counter",
        "Objects written to the track's /ws subscribers since the track was created.",
    ),
    (
        "meshrelay_track_origin_out_bytes_total",
        "counter",
        "Bytes written to the track's /ws subscribers (framed objects and text notices) since the track was created.",
    ),
];

/// One live track's values for [`render_tracks`], in [`TRACK_FAMILIES`] order.
pub(crate) struct TrackValues {
    pub(crate) track: String,
    pub(crate) values: [f64; 7],
}

/// Renders the per-track families for the live `tracks`, each family with
/// its `# HELP` and `# TYPE`; a family with no track is left out.
pub(crate) fn render_tracks(out: &mut String, tracks: &[TrackValues]) {
    if tracks.is_empty() {
        return;
    }
    for (i, (name, kind, help)) in TRACK_FAMILIES.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for t in tracks {
            let _ = writeln!(
                out,
                "{name}{{track=\"{}\"}} {}",
                escape_label(&t.track),
                t.values[i]
            );
        }
        out.push('\n');
    }
}

/// A label value as the text format wants it.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_rename() {
        let readme = include_str!("../../../README.md");
        for (old, new) in [
            (OFFLOAD_PERCENTAGE, OFFLOAD),
            (RING_BYTES_BUDGET, RING_BUDGET_BYTES),
            (BYTES_IN_OLD, BYTES_IN),
            (BYTES_OUT_OLD, BYTES_OUT),
        ] {
            let row = format!("| `{old}` | `{new}` |");
            assert!(readme.contains(&row), "README.md has no row {row}");
        }
    }

    #[test]
    fn track_families_have_help_type_and_one_line_a_track() {
        let mut out = String::new();
        render_tracks(&mut out, &[]);
        assert_eq!(out, "");
        let t = |name: &str| TrackValues {
            track: name.to_owned(),
            values: [3.0, 1.0, 2.0 / 3.0, 4.0, 5.0, 6.0, 7.0],
        };
        render_tracks(&mut out, &[t("a/b"), t("q\"x")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), TRACK_FAMILIES.len() * 5);
        assert_eq!(
            lines[..5],
            [
                "# HELP meshrelay_track_peers Peers in the track's tree.",
                "# TYPE meshrelay_track_peers gauge",
                "meshrelay_track_peers{track=\"a/b\"} 3",
                "meshrelay_track_peers{track=\"q\\\"x\"} 3",
                "",
            ]
        );
        assert!(out.contains("meshrelay_track_origin_out_bytes_total{track=\"a/b\"} 7\n"));
    }
}
