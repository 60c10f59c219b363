//! `/metrics` contents. Alone in its test binary because the metrics
//! recorder is process-wide.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
        .trim()
        .parse()
        .unwrap()
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
    let (c, _) = register(&srv, "c", "t", None).await;
    send(&mut b, "nope").await;
    expect_error(&mut b, "invalid_json").await;
    drop(c);
    assert_eq!(recv_json(&mut a).await["type"], "PeerLeft");

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

    let (status, head, body) = http_get(srv.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    assert_eq!(value(&body, "meshrelay_peers"), 2.0);
    assert_eq!(value(&body, "meshrelay_roots"), 1.0);
    assert_eq!(value(&body, "meshrelay_offload_percentage"), 50.0);
    assert_eq!(value(&body, "meshrelay_tracks"), 1.0);
    assert_eq!(value(&body, "meshrelay_joins_total"), 3.0);
    assert_eq!(
        value(&body, "meshrelay_leaves_total{reason=\"disconnect\"}"),
        1.0
    );
    assert_eq!(
        value(&body, "meshrelay_errors_total{code=\"invalid_json\"}"),
        1.0
    );
    assert_eq!(
        value(&body, "meshrelay_signal_messages_total{kind=\"register\"}"),
        3.0
    );
    assert_eq!(value(&body, "meshrelay_origin_objects_in_total"), 2.0);
    assert_eq!(value(&body, "meshrelay_origin_bytes_in_total"), 8.0);
    assert_eq!(value(&body, "meshrelay_origin_objects_out_total"), 2.0);
    assert_eq!(value(&body, "meshrelay_origin_bytes_out_total"), 8.0 + 16.0);
    assert!(body.contains("meshrelay_reassignments_total"), "{body}");
    srv.stop().await;
}
