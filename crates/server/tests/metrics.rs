//! `/metrics` contents. Alone in its test binary because the metrics
//! recorder is process-wide.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// The histograms: their samples are timings, checked apart.
const HISTOGRAMS: [&str; 2] = [
    "meshrelay_register_duration_seconds",
    "meshrelay_replan_duration_seconds",
];

/// The exposition's non-empty lines but `# HELP` ones and the histograms'
/// samples, sorted: the renderer's order of metric families is not fixed.
fn sorted_lines(body: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# HELP "))
        .filter(|l| !HISTOGRAMS.iter().any(|h| l.starts_with(h)))
        .collect();
    lines.sort_unstable();
    lines
}

#[tokio::test]
async fn metrics_count_peers_traffic_and_errors() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        ..config()
    })
    .await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let (mut b, _) = register(&srv, "b", "t", None).await;
    let (mut c, _) = register(&srv, "c", "t", None).await;
    send(&mut b, "nope").await;
    expect_error(
        &mut b,
        "invalid_json",
        "not a JSON object with a string \"type\": expected ident at line 1 column 2",
    )
    .await;
    // The server drops the socket only after its session gauge, so once
    // the stream ends c is off every count.
    c.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut c))
        .await
        .expect("c's stream ends")
    {}
    assert_eq!(
        recv_json(&mut a).await,
        serde_json::json!({"type":"PeerLeft","peer_id":"c"})
    );

    let mut egress = connect(&srv.url("/ws/t?from=0")).await;
    let mut publisher = connect(&srv.url("/ingest/t")).await;
    for payload in [&b"abc"[..], &b"defgh"[..]] {
        publisher
            .send(Message::Binary(payload.to_vec().into()))
            .await
            .unwrap();
        assert!(matches!(next_msg(&mut egress).await, Message::Binary(_)));
    }
    // Sends are counted once written: final once the server ended the stream.
    egress.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut egress))
        .await
        .expect("end in time")
    {}

    // a, b and the publisher; the egress's permit goes once its task ends.
    wait_connections(&srv, 3).await;
    let (status, head, body) = http_get(srv.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.lines()
            .any(|l| l == "content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    // Every series, exactly: c (a leaf under the root a) left by closing,
    // so nobody was reassigned; egress bytes are framed (8 + payload each).
    // Renamed series are still emitted under their old names (the
    // deprecated ones, marked "old").
    let want = [
        "# TYPE meshrelay_connections gauge",
        "# TYPE meshrelay_errors_total counter",
        "# TYPE meshrelay_joins_total counter",
        "# TYPE meshrelay_leaves_total counter",
        "# TYPE meshrelay_offload_percentage gauge", // old
        "# TYPE meshrelay_offload_ratio gauge",
        "# TYPE meshrelay_origin_bytes_in_total counter", // old
        "# TYPE meshrelay_origin_bytes_out_total counter", // old
        "# TYPE meshrelay_origin_in_bytes_total counter",
        "# TYPE meshrelay_origin_objects_in_total counter",
        "# TYPE meshrelay_origin_objects_out_total counter",
        "# TYPE meshrelay_origin_out_bytes_total counter",
        "# TYPE meshrelay_peers gauge",
        "# TYPE meshrelay_reassignments_total counter",
        "# TYPE meshrelay_register_duration_seconds histogram",
        "# TYPE meshrelay_ring_budget_bytes gauge",
        "# TYPE meshrelay_ring_bytes gauge",
        "# TYPE meshrelay_ring_bytes_budget gauge", // old
        "# TYPE meshrelay_roots gauge",
        "# TYPE meshrelay_signal_messages_total counter",
        "# TYPE meshrelay_signal_sessions gauge",
        "# TYPE meshrelay_track_offload_ratio gauge",
        "# TYPE meshrelay_track_origin_in_bytes_total counter",
        "# TYPE meshrelay_track_origin_objects_in_total counter",
        "# TYPE meshrelay_track_origin_objects_out_total counter",
        "# TYPE meshrelay_track_origin_out_bytes_total counter",
        "# TYPE meshrelay_track_peers gauge",
        "# TYPE meshrelay_track_roots gauge",
        "# TYPE meshrelay_tracks gauge",
        "meshrelay_connections 3",
        "meshrelay_errors_total{code=\"invalid_json\"} 1",
        "meshrelay_joins_total 3",
        "meshrelay_leaves_total{reason=\"disconnect\"} 1",
        "meshrelay_offload_percentage 50", // old
        "meshrelay_offload_ratio 0.5",
        "meshrelay_origin_bytes_in_total 8",   // old
        "meshrelay_origin_bytes_out_total 24", // old
        "meshrelay_origin_in_bytes_total 8",
        "meshrelay_origin_objects_in_total 2",
        "meshrelay_origin_objects_out_total 2",
        "meshrelay_origin_out_bytes_total 24",
        "meshrelay_peers 2",
        "meshrelay_reassignments_total 0",
        "meshrelay_ring_budget_bytes 536870912",
        "meshrelay_ring_bytes 24",
        "meshrelay_ring_bytes_budget 536870912", // old
        "meshrelay_roots 1",
        "meshrelay_signal_messages_total{kind=\"refused\"} 1",
        "meshrelay_signal_messages_total{kind=\"register\"} 3",
        "meshrelay_signal_sessions 2",
        "meshrelay_track_offload_ratio{track=\"t\"} 0.5",
        "meshrelay_track_origin_in_bytes_total{track=\"t\"} 8",
        "meshrelay_track_origin_objects_in_total{track=\"t\"} 2",
        "meshrelay_track_origin_objects_out_total{track=\"t\"} 2",
        "meshrelay_track_origin_out_bytes_total{track=\"t\"} 24",
        "meshrelay_track_peers{track=\"t\"} 2",
        "meshrelay_track_roots{track=\"t\"} 1",
        "meshrelay_tracks 1",
    ];
    assert_eq!(sorted_lines(&body), want, "{body}");
    assert_help_for_every_family(&body);
    // Three registrations, each timed from its Register read to its
    // AssignParent written; no re-plan moved anyone yet.
    let register = "meshrelay_register_duration_seconds";
    assert_eq!(
        sample(&body, &format!("{register}_count")),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, &format!("{register}_bucket{{le=\"+Inf\"}}")),
        Some(3.0),
        "{body}"
    );
    assert!(sample(&body, &format!("{register}_sum")).unwrap() > 0.0);
    assert!(
        !body.contains("meshrelay_replan_duration_seconds"),
        "{body}"
    );
    srv.stop().await;
}
