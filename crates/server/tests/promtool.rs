//! `/metrics` against `promtool check metrics` (Debian's `prometheus`
//! package) after traffic. Not in `metrics.rs`: that binary asserts exact
//! counts, and the metrics recorder is process-wide.

mod common;

use common::*;

/// After traffic that gives every series a sample (a re-plan included),
/// `/metrics` passes `promtool check metrics` with nothing to say; a track
/// that is gone is no longer exported at the next scrape.
#[tokio::test]
async fn metrics_pass_promtool_and_forget_gone_tracks() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        ..config()
    })
    .await;
    let kept = traffic(&srv, "live/u").await;
    let (status, _, body) = http_get(srv.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_help_for_every_family(&body);
    // The root's leave moved its child: one re-plan timed, at least.
    let count = sample(&body, "meshrelay_replan_duration_seconds_count");
    assert!(count.is_some_and(|n| n >= 1.0), "{body}");
    assert!(body.contains("# TYPE meshrelay_replan_duration_seconds histogram"));
    assert_eq!(
        sample(&body, "meshrelay_track_peers{track=\"live/u\"}"),
        Some(2.0),
        "{body}"
    );
    promtool_check(&body);

    drop(kept);
    poll_until("the track is gone", || async {
        mesh_json(&srv).await["tracks"] == serde_json::json!([])
    })
    .await;
    let (_, _, body) = http_get(srv.addr, "/metrics").await;
    assert!(!body.contains("track=\"live/u\""), "{body}");
    assert!(!body.contains("meshrelay_track_"), "{body}");
    promtool_check(&body);
    srv.stop().await;
}
