//! The built-in demo publisher: a synthetic live stream on `demo/live`.

use crate::app::App;
use meshrelay_mesh::MeshConfig;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The demo's track.
pub(crate) const DEMO_TRACK: &str = "demo/live";

/// The demo track's tree: one root fed by the origin and at most two
/// children per peer, so the handful of viewers a newcomer opens forms a
/// visible relay tree instead of a row of roots.
pub(crate) fn demo_mesh(server: &MeshConfig) -> MeshConfig {
    MeshConfig {
        root_peer_count: 1,
        max_children: server.max_children.clamp(1, 2),
        ..server.clone()
    }
}
/// Time between objects.
const PERIOD: Duration = Duration::from_millis(100);
/// Every this many objects one is large, so chunking is exercised.
const BIG_EVERY: u64 = 50;
/// Size of the large objects.
const BIG_BYTES: usize = 100 * 1024;

/// The payload of object number `seq`: JSON text, padded when large.
pub(crate) fn demo_object(seq: u64, ts_ms: u128) -> Vec<u8> {
    let big = seq % BIG_EVERY == BIG_EVERY - 1;
    let head = format!(r#"{{"seq":{seq},"ts_ms":{ts_ms},"big":{big},"pad":""#);
    let mut out = head.into_bytes();
    if big {
        let pad = BIG_BYTES.saturating_sub(out.len() + 2);
        out.extend(std::iter::repeat_n(b'x', pad));
    }
    out.extend_from_slice(b"\"}");
    out
}

/// Publishes until shutdown.
pub(crate) async fn run(app: Arc<App>) {
    let Some(lease) = app.registry.acquire(DEMO_TRACK) else {
        tracing::warn!("track limit reached: the demo publisher does not run");
        return;
    };
    let track = lease.track();
    let Some(_claim) = track.claim_publisher() else {
        tracing::warn!("{DEMO_TRACK} already has a publisher: the demo publisher does not run");
        return;
    };
    let mut tick = tokio::time::interval(PERIOD);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let object = demo_object(seq, ts_ms);
        track.origin.publish(&object);
        crate::metrics::object_in(object.len());
        seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_json_and_some_are_big() {
        let small = demo_object(0, 5);
        let v: serde_json::Value = serde_json::from_slice(&small).unwrap();
        assert_eq!(v["seq"], 0);
        let big = demo_object(BIG_EVERY - 1, 5);
        assert_eq!(big.len(), BIG_BYTES);
        let v: serde_json::Value = serde_json::from_slice(&big).unwrap();
        assert_eq!(v["big"], true);
    }
}
