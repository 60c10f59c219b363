//! `/signal` over real sockets: registration, relaying, leaves, liveness.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use std::time::Duration;

/// A server with these limits. Its trees place peers by the seed's rule
/// (`shallowest`), whose shapes these tests spell out; the default policy's
/// own rules are the planner's tests (crates/mesh/tests/policies.rs).
fn tree_config(roots: usize, max_children: usize) -> meshrelay_server::ServerConfig {
    meshrelay_server::ServerConfig {
        root_peer_count: roots,
        max_children,
        placement: meshrelay_mesh::PlacementPolicy::Shallowest,
        ..config()
    }
}

#[tokio::test]
async fn register_assigns_roots_and_relays_with_ice_servers() {
    let ice = json!([{"urls": "stun:127.0.0.1:3478"}]);
    let srv = start(meshrelay_server::ServerConfig {
        ice_servers: ice.clone(),
        ..tree_config(2, 3)
    })
    .await;
    let (_a, a) = register(&srv, "a", "live/test", None).await;
    let mut want = assign("a", "Root", None, 0, 0);
    want["ice_servers"] = ice.clone();
    assert_eq!(a, want);
    let (_b, b) = register(&srv, "b", "live/test", None).await;
    want = assign("b", "Root", None, 0, 0);
    want["ice_servers"] = ice.clone();
    assert_eq!(b, want);
    // Roots full: the shallowest free slot, ties to the fewest children,
    // then to the peer waiting longest with that many: a.
    let (_c, c) = register(&srv, "c", "live/test", None).await;
    want = assign("c", "Relay", Some("a"), 1, 0);
    want["ice_servers"] = ice.clone();
    assert_eq!(c, want);
    // a has a child now: b has the fewest.
    let (_d, d) = register(&srv, "d", "live/test", None).await;
    want = assign("d", "Relay", Some("b"), 1, 0);
    want["ice_servers"] = ice.clone();
    assert_eq!(d, want);
    // Another track is another tree.
    let (_x, x) = register(&srv, "c", "other", None).await;
    want = assign("c", "Root", None, 0, 0);
    want["ice_servers"] = ice;
    assert_eq!(x, want);
    srv.stop().await;
}

#[tokio::test]
async fn capacity_is_clamped_to_max_peers() {
    let srv = start(tree_config(1, 2)).await;
    let (_a, a) = register(&srv, "a", "t", Some(10)).await;
    assert_eq!(a, assign("a", "Root", None, 0, 0));
    let (_b, b) = register(&srv, "b", "t", Some(10)).await;
    assert_eq!(b, assign("b", "Relay", Some("a"), 1, 0));
    let (_c, c) = register(&srv, "c", "t", Some(0)).await;
    assert_eq!(c, assign("c", "Leaf", Some("a"), 1, 0));
    // a claimed 10 but is clamped to 2, so d descends to b.
    let (_d, d) = register(&srv, "d", "t", None).await;
    assert_eq!(d, assign("d", "Relay", Some("b"), 2, 0));
    let mesh = mesh_json(&srv).await;
    let a_stats = mesh["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == "a")
        .unwrap()
        .clone();
    assert_eq!(
        a_stats["capacity"], 2,
        "the effective capacity, as LVQR shows"
    );
    assert_eq!(a_stats["claimed_capacity"], 10);
    assert_eq!(a_stats["intended_children"], 2);
    srv.stop().await;
}

#[tokio::test]
async fn sdp_is_relayed_between_neighbours_only_and_from_is_checked() {
    // A chain a -> b -> c (one child each).
    let srv = start(tree_config(1, 1)).await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let (mut b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 0));
    let (mut c, cv) = register(&srv, "c", "t", None).await;
    assert_eq!(cv, assign("c", "Relay", Some("b"), 2, 0));

    let offer = r#"{"type":"Offer","from":"b","to":"a","sdp":"v=0 offer"}"#;
    send(&mut b, offer).await;
    assert_eq!(
        recv_json(&mut a).await,
        serde_json::from_str::<serde_json::Value>(offer).unwrap()
    );
    let answer = r#"{"type":"Answer","from":"a","to":"b","sdp":"v=0 answer"}"#;
    send(&mut a, answer).await;
    assert_eq!(
        recv_json(&mut b).await,
        serde_json::from_str::<serde_json::Value>(answer).unwrap()
    );
    let ice = r#"{"type":"IceCandidate","from":"c","to":"b","candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdp_mid":"0","sdp_mline_index":0}"#;
    send(&mut c, ice).await;
    assert_eq!(
        recv_json(&mut b).await,
        serde_json::from_str::<serde_json::Value>(ice).unwrap()
    );

    // Only the protocol's own fields are relayed, in its order.
    send(
        &mut b,
        r#"{"sdp":"s","to":"a","from":"b","type":"Offer","extra":{"x":[1]},"pad":"y"}"#,
    )
    .await;
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type":"Offer","from":"b","to":"a","sdp":"s"})
    );
    send(
        &mut c,
        r#"{"type":"IceCandidate","from":"c","to":"b","candidate":"c1","sdp_mid":null,"ufrag":"u"}"#,
    )
    .await;
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type":"IceCandidate","from":"c","to":"b","candidate":"c1"})
    );

    // c -> a: not a neighbour; nothing reaches a.
    send(&mut c, r#"{"type":"Offer","from":"c","to":"a","sdp":"x"}"#).await;
    expect_error(
        &mut c,
        "not_neighbour",
        "a is not this peer's parent or child",
    )
    .await;
    // c speaking for b: refused; nothing reaches a or b.
    send(&mut c, r#"{"type":"Offer","from":"b","to":"a","sdp":"x"}"#).await;
    expect_error(
        &mut c,
        "spoofed_from",
        "\"from\" must be this session's own peer id",
    )
    .await;
    send(&mut c, r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#).await;
    expect_error(
        &mut c,
        "spoofed_from",
        "\"from\" must be this session's own peer id",
    )
    .await;
    // An unknown recipient is not a neighbour either.
    send(
        &mut c,
        r#"{"type":"Answer","from":"c","to":"ghost","sdp":"x"}"#,
    )
    .await;
    expect_error(
        &mut c,
        "not_neighbour",
        "ghost is not this peer's parent or child",
    )
    .await;
    // The sessions stay open, and the next thing a and b receive is the
    // legitimate follow-up, proving nothing else was relayed to them.
    let marker_a = r#"{"type":"Offer","from":"b","to":"a","sdp":"marker-a"}"#;
    send(&mut b, marker_a).await;
    assert_eq!(
        recv_json(&mut a).await,
        serde_json::from_str::<serde_json::Value>(marker_a).unwrap()
    );
    let marker_b = r#"{"type":"Answer","from":"c","to":"b","sdp":"marker-b"}"#;
    send(&mut c, marker_b).await;
    assert_eq!(
        recv_json(&mut b).await,
        serde_json::from_str::<serde_json::Value>(marker_b).unwrap()
    );
    srv.stop().await;
}

#[tokio::test]
async fn parent_disconnect_reassigns_its_child_and_tells_neighbours() {
    // a (capacity 1) -> b -> c
    let srv = start(tree_config(1, 3)).await;
    let (mut a, _) = register(&srv, "a", "t", Some(1)).await;
    let (b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 0));
    let (mut c, cv) = register(&srv, "c", "t", None).await;
    assert_eq!(cv, assign("c", "Relay", Some("b"), 2, 0));
    drop(b); // abrupt: no close frame
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type":"PeerLeft","peer_id":"b"})
    );
    assert_eq!(
        recv_json(&mut c).await,
        json!({"type":"PeerLeft","peer_id":"b"})
    );
    assert_eq!(
        recv_json(&mut c).await,
        assign("c", "Relay", Some("a"), 1, 0)
    );
    let mesh = mesh_json(&srv).await;
    assert_eq!(mesh["peer_count"], 2);
    srv.stop().await;
}

/// The reply to a `{"type":"Nope"}` probe.
fn nope_reply() -> serde_json::Value {
    json!({"type":"Error","code":"unknown_type","reason":"unknown message type \"Nope\""})
}

/// Sends a probe and asserts the reply is the next message: nothing else
/// was queued for `ws` before it.
async fn expect_nothing_queued(ws: &mut Ws) {
    send(ws, r#"{"type":"Nope"}"#).await;
    assert_eq!(recv_json(ws).await, nope_reply());
}

#[tokio::test]
async fn abrupt_parent_drop_tells_its_neighbours_and_moves_its_children_only() {
    // Roots a and z (one slot each); a -> b -> {c, d}; z -> y.
    let srv = start(tree_config(2, 2)).await;
    let (mut a, _) = register(&srv, "a", "t", Some(1)).await;
    let (mut z, _) = register(&srv, "z", "t", Some(1)).await;
    let (b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 0));
    let (mut y, yv) = register(&srv, "y", "t", Some(0)).await;
    assert_eq!(yv, assign("y", "Leaf", Some("z"), 1, 0));
    let (mut c, cv) = register(&srv, "c", "t", None).await;
    assert_eq!(cv, assign("c", "Relay", Some("b"), 2, 0));
    let (mut d, dv) = register(&srv, "d", "t", Some(0)).await;
    assert_eq!(dv, assign("d", "Leaf", Some("b"), 2, 0));

    // The TCP connection ends with no Close frame.
    drop(b);
    let left = json!({"type":"PeerLeft","peer_id":"b"});
    assert_eq!(recv_json(&mut a).await, left);
    // c, the childless orphan able to host its sibling, stands in for b:
    // it takes b's place and d stays at its depth, under c.
    assert_eq!(recv_json(&mut c).await, left);
    assert_eq!(
        recv_json(&mut c).await,
        assign("c", "Relay", Some("a"), 1, 0)
    );
    assert_eq!(recv_json(&mut d).await, left);
    assert_eq!(
        recv_json(&mut d).await,
        assign("d", "Leaf", Some("c"), 2, 0)
    );
    // Nothing more for anyone, and nothing at all for the bystanders.
    for ws in [&mut a, &mut c, &mut d, &mut z, &mut y] {
        expect_nothing_queued(ws).await;
    }
    let mesh = mesh_json(&srv).await;
    let mut places: Vec<_> = mesh["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["peer_id"].clone(),
                p["parent"].clone(),
                p["depth"].clone(),
            )
        })
        .collect();
    places.sort_by_key(|p| p.0.as_str().unwrap().to_owned());
    assert_eq!(
        places,
        [
            (json!("a"), json!(null), json!(0)),
            (json!("c"), json!("a"), json!(1)),
            (json!("d"), json!("c"), json!(2)),
            (json!("y"), json!("z"), json!(1)),
            (json!("z"), json!(null), json!(0)),
        ]
    );
    srv.stop().await;
}

#[tokio::test]
async fn parent_leave_tells_every_child_its_new_place_and_no_bystander() {
    // roots a and z, one slot each; bystanders a -> y; z -> b -> {c, d}.
    let srv = start(tree_config(2, 2)).await;
    let (mut a, _) = register(&srv, "a", "t", Some(1)).await;
    let (mut z, _) = register(&srv, "z", "t", Some(1)).await;
    let (mut y, yv) = register(&srv, "y", "t", Some(0)).await;
    assert_eq!(yv, assign("y", "Leaf", Some("a"), 1, 0));
    let (mut b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("z"), 1, 0));
    let (mut c, cv) = register(&srv, "c", "t", None).await;
    assert_eq!(cv, assign("c", "Relay", Some("b"), 2, 0));
    let (mut d, dv) = register(&srv, "d", "t", None).await;
    assert_eq!(dv, assign("d", "Relay", Some("b"), 2, 0));

    send(&mut b, r#"{"type":"Leave"}"#).await;
    assert_eq!(
        recv_json(&mut z).await,
        json!({"type":"PeerLeft","peer_id":"b"})
    );
    // The childless orphans tie as stand-ins; the one waiting longest, c,
    // takes b's place and hosts d at its old depth.
    for ws in [&mut c, &mut d] {
        assert_eq!(
            recv_json(ws).await,
            json!({"type":"PeerLeft","peer_id":"b"})
        );
    }
    assert_eq!(
        recv_json(&mut c).await,
        assign("c", "Relay", Some("z"), 1, 0)
    );
    assert_eq!(
        recv_json(&mut d).await,
        assign("d", "Relay", Some("c"), 2, 0)
    );
    // a and y were never b's neighbours and kept their places: nothing was
    // sent to them.
    for ws in [&mut a, &mut y, &mut c, &mut d, &mut z] {
        expect_nothing_queued(ws).await;
    }
    assert_eq!(mesh_json(&srv).await["peer_count"], 5);
    srv.stop().await;
}

#[tokio::test]
async fn a_relay_registering_takes_the_root_slot_of_a_leaf_which_is_told_its_new_parent() {
    // One root slot, taken by a peer that can feed nobody.
    let srv = start(tree_config(1, 2)).await;
    let (mut leaf, lv) = register(&srv, "leaf", "t", Some(0)).await;
    assert_eq!(lv, assign("leaf", "Root", None, 0, 0));
    // Another leaf finds no place: the only root feeds nobody.
    let mut refused = connect(&srv.url("/signal")).await;
    send(&mut refused, register_json("leaf2", "t", Some(0))).await;
    expect_error(
        &mut refused,
        "mesh_full",
        "no peer has a free child slot within the depth limit",
    )
    .await;
    // A relay takes the slot, and the leaf moves under it.
    let (mut r, rv) = register(&srv, "r", "t", None).await;
    assert_eq!(rv, assign("r", "Root", None, 0, 0));
    assert_eq!(
        recv_json(&mut leaf).await,
        assign("leaf", "Leaf", Some("r"), 1, 0)
    );
    // Now they are neighbours: the leaf offers to its new parent.
    send(
        &mut leaf,
        r#"{"type":"Offer","from":"leaf","to":"r","sdp":"v=0"}"#,
    )
    .await;
    assert_eq!(
        recv_json(&mut r).await,
        json!({"type":"Offer","from":"leaf","to":"r","sdp":"v=0"})
    );
    // And the tree has room again.
    let (_l2, l2) = register(&srv, "leaf2", "t", Some(0)).await;
    assert_eq!(l2, assign("leaf2", "Leaf", Some("r"), 1, 0));
    let mesh = mesh_json(&srv).await;
    assert_eq!(mesh["tracks"][0]["root_count"], 1);
    assert_eq!(mesh["peer_count"], 3);
    srv.stop().await;
}

#[tokio::test]
async fn quiet_connected_peer_survives_three_heartbeat_timeouts() {
    let timeout = Duration::from_millis(300);
    let srv = start(meshrelay_server::ServerConfig {
        heartbeat_timeout: timeout,
        ..tree_config(1, 3)
    })
    .await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    // Read (so tungstenite answers pings) but never send a message.
    let until = tokio::time::Instant::now() + timeout * 4;
    let mut pings = 0;
    while let Ok(msg) = tokio::time::timeout_at(until, a.next()).await {
        match msg.expect("open").expect("no error") {
            tokio_tungstenite::tungstenite::Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "the server pings every timeout/3, got {pings}");
    let mesh = mesh_json(&srv).await;
    assert_eq!(mesh["peer_count"], 1);
    // And it is still served.
    let (mut b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 0));
    send(&mut b, r#"{"type":"Offer","from":"b","to":"a","sdp":"s"}"#).await;
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type":"Offer","from":"b","to":"a","sdp":"s"})
    );
    srv.stop().await;
}

#[tokio::test]
async fn peer_that_stops_answering_pings_is_evicted() {
    let srv = start(meshrelay_server::ServerConfig {
        heartbeat_timeout: Duration::from_millis(300),
        ..tree_config(1, 3)
    })
    .await;
    // A client that registers and then never reads (so never pongs); the
    // server hears from it last no earlier than `started`.
    let started = tokio::time::Instant::now();
    let (mut mute, _) = register(&srv, "mute", "t", None).await;
    let (mut child, cv) = register(&srv, "child", "t", None).await;
    assert_eq!(cv, assign("child", "Relay", Some("mute"), 1, 0));
    assert_eq!(
        recv_json(&mut child).await,
        json!({"type":"PeerLeft","peer_id":"mute"})
    );
    assert_eq!(
        recv_json(&mut child).await,
        assign("child", "Root", None, 0, 0)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "evicted before the timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(mesh_json(&srv).await["peer_count"], 1);
    // Its socket, read at last, holds the server's pings and then a Close
    // saying why.
    assert_eq!(expect_closed(&mut mute).await, Some(1001));
    srv.stop().await;
}

#[tokio::test]
async fn a_dead_peer_is_evicted_no_sooner_than_its_timeout_and_its_child_re_told() {
    // How soon after the timeout eviction comes (within a second, not on
    // the rarer ping grid) is `liveness`'s unit test, on a paused clock.
    let timeout = Duration::from_millis(2_400);
    let srv = start(meshrelay_server::ServerConfig {
        heartbeat_timeout: timeout,
        ..tree_config(1, 3)
    })
    .await;
    let (mut mute, _) = register(&srv, "mute", "t", None).await;
    let (mut child, cv) = register(&srv, "child", "t", None).await;
    assert_eq!(cv, assign("child", "Relay", Some("mute"), 1, 0));
    let last = tokio::time::Instant::now();
    send(&mut mute, r#"{"type":"Heartbeat"}"#).await;
    // mute never reads again, so it answers no ping.
    let left = tokio::time::timeout(timeout * 3, recv_json_untimed(&mut child))
        .await
        .expect("evicted");
    assert_eq!(left, json!({"type":"PeerLeft","peer_id":"mute"}));
    let after = last.elapsed();
    assert!(after >= timeout, "evicted {after:?} after its last message");
    assert_eq!(
        recv_json(&mut child).await,
        assign("child", "Root", None, 0, 0)
    );
    srv.stop().await;
}

/// The next text message, parsed, however long it takes.
async fn recv_json_untimed(ws: &mut Ws) -> serde_json::Value {
    loop {
        match ws.next().await.expect("open").expect("no error") {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                return serde_json::from_str(t.as_str()).unwrap()
            }
            tokio_tungstenite::tungstenite::Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn closed_client_leaves_at_once() {
    let srv = start(tree_config(1, 3)).await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let (mut b, _) = register(&srv, "b", "t", None).await;
    b.close(None).await.unwrap();
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type":"PeerLeft","peer_id":"b"})
    );
    srv.stop().await;
}

#[tokio::test]
async fn auth_by_subprotocol_or_query_else_401() {
    let srv = start(meshrelay_server::ServerConfig {
        subscribe_token: Some("s3cret".into()),
        publish_token: Some("pub".into()),
        ..config()
    })
    .await;
    let (mut ws, echoed) = connect_with_protocol(&srv.url("/signal"), "lvqr.bearer.s3cret")
        .await
        .unwrap();
    assert_eq!(echoed.as_deref(), Some("lvqr.bearer.s3cret"));
    send(&mut ws, register_json("a", "t", None)).await;
    assert_eq!(recv_json(&mut ws).await, assign("a", "Root", None, 0, 0));

    let mut ws = connect(&srv.url("/signal?token=s3cret")).await;
    send(&mut ws, register_json("b", "t", None)).await;
    assert_eq!(recv_json(&mut ws).await, assign("b", "Root", None, 0, 0));

    for url in [
        srv.url("/signal"),
        srv.url("/signal?token=wrong"),
        srv.url("/ws/t"),
        srv.url("/ingest/t?token=s3cret"),
    ] {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{url}")
            }
            other => panic!("{url}: expected 401, got {:?}", other.map(|_| ())),
        }
    }
    match connect_with_protocol(&srv.url("/signal"), "lvqr.bearer.nope").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let _ = connect(&srv.url("/ws/t?token=s3cret")).await;
    let (_, echoed) = connect_with_protocol(&srv.url("/ingest/t"), "lvqr.bearer.pub")
        .await
        .unwrap();
    assert_eq!(echoed.as_deref(), Some("lvqr.bearer.pub"));
    srv.stop().await;
}

#[tokio::test]
async fn no_auth_signal_opens_only_signal() {
    let srv = start(meshrelay_server::ServerConfig {
        subscribe_token: Some("s3cret".into()),
        no_auth_signal: true,
        ..config()
    })
    .await;
    let mut ws = connect(&srv.url("/signal")).await;
    send(&mut ws, register_json("a", "t", None)).await;
    assert_eq!(recv_json(&mut ws).await, assign("a", "Root", None, 0, 0));
    // The token is still accepted (and echoed) when offered.
    let (mut ws, echoed) = connect_with_protocol(&srv.url("/signal"), "lvqr.bearer.s3cret")
        .await
        .unwrap();
    assert_eq!(echoed.as_deref(), Some("lvqr.bearer.s3cret"));
    send(&mut ws, register_json("b", "t", None)).await;
    assert_eq!(recv_json(&mut ws).await, assign("b", "Root", None, 0, 0));
    match tokio_tungstenite::connect_async(srv.url("/ws/t").as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    srv.stop().await;
}

#[tokio::test]
async fn admin_token_guards_mesh_and_metrics_only() {
    let srv = start(meshrelay_server::ServerConfig {
        admin_token: Some("adm1n".into()),
        ..config()
    })
    .await;
    // Peers are not admins: /signal and the egress need no admin token.
    let (_a, a) = register(&srv, "a", "t", None).await;
    assert_eq!(a, assign("a", "Root", None, 0, 0));
    let (_egress, _) = tokio_tungstenite::connect_async(srv.url("/ws/t").as_str())
        .await
        .expect("egress without an admin token");
    for path in ["/api/v1/mesh", "/api/v1/mesh?peers=false", "/metrics"] {
        let (status, head, body) = http_get(srv.addr, path).await;
        assert_eq!(status, 401, "{path} without a token");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer realm=\"meshrelay admin\""),
            "{path}: {head}"
        );
        assert_eq!(
            body,
            "admin token required: Authorization: Bearer <token> or ?token=\n"
        );
        let wrong = http_get_with(srv.addr, path, &[("Authorization", "Bearer adm1")]).await;
        assert_eq!(wrong.0, 401, "{path} with a wrong token");
        let basic = http_get_with(srv.addr, path, &[("Authorization", "Basic adm1n")]).await;
        assert_eq!(basic.0, 401, "{path} with another scheme");
    }
    let (status, _, body) = http_get_with(
        srv.addr,
        "/api/v1/mesh",
        &[("Authorization", "Bearer adm1n")],
    )
    .await;
    assert_eq!(status, 200);
    let mesh: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(mesh["peers"][0]["peer_id"], "a");
    let (status, _, body) = http_get(srv.addr, "/api/v1/mesh?peers=false&token=adm1n").await;
    assert_eq!(status, 200);
    let mesh: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(mesh["peer_count"], 1);
    assert_eq!(mesh["peers"], json!([]));
    let (status, _, body) =
        http_get_with(srv.addr, "/metrics", &[("Authorization", "Bearer adm1n")]).await;
    assert_eq!(status, 200);
    assert!(body.contains("\nmeshrelay_peers "), "{body}");
    // Liveness probes and the SDK stay open.
    assert_eq!(http_get(srv.addr, "/healthz").await.0, 200);
    assert_eq!(http_get(srv.addr, "/sdk/meshrelay.js").await.0, 200);
    srv.stop().await;
}

#[tokio::test]
async fn a_session_may_register_again_after_leave() {
    let srv = start(tree_config(1, 3)).await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let (mut b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 0));
    send(&mut a, r#"{"type":"Leave"}"#).await;
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type":"PeerLeft","peer_id":"a"})
    );
    assert_eq!(recv_json(&mut b).await, assign("b", "Root", None, 0, 0));
    // Unregistered now: relaying is refused until it registers again.
    send(&mut a, r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#).await;
    expect_error(
        &mut a,
        "expected_register",
        "the first message must be Register",
    )
    .await;
    send(&mut a, register_json("a", "t", None)).await;
    assert_eq!(
        recv_json(&mut a).await,
        assign("a", "Relay", Some("b"), 1, 0)
    );
    send(
        &mut a,
        r#"{"type":"Offer","from":"a","to":"b","sdp":"again"}"#,
    )
    .await;
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type":"Offer","from":"a","to":"b","sdp":"again"})
    );
    // Dropping the socket now plans exactly one more leave.
    drop(a);
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type":"PeerLeft","peer_id":"a"})
    );
    assert_eq!(mesh_json(&srv).await["peer_count"], 1);
    send(&mut b, r#"{"type":"Nope"}"#).await;
    expect_error(&mut b, "unknown_type", "unknown message type \"Nope\"").await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registers_build_a_valid_tree() {
    const PEERS: usize = 200;
    const ROOTS: usize = 3;
    const MAX_CHILDREN: u32 = 2;
    // The Registers land in any order, so the tree must hold every order:
    // no depth limit can bind (a chain of capacity-1 peers is the deepest
    // tree), and free slots never run out: the roots bring at least one
    // more than the leaves (two) can take, and every other peer brings at
    // least the slot it takes.
    let srv = start(meshrelay_server::ServerConfig {
        max_depth: PEERS as u32,
        ..tree_config(ROOTS, MAX_CHILDREN as usize)
    })
    .await;
    // Claims over, at and under the clamp, and two leaves.
    let claim = |i: usize| match (i, i % 3) {
        (0 | 1, _) => Some(0),
        (_, 0) => None,
        (_, 1) => Some(1),
        _ => Some(7),
    };
    let url = srv.url("/signal");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(PEERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..PEERS {
        let (url, barrier) = (url.clone(), barrier.clone());
        tasks.spawn(async move {
            let mut ws = connect(&url).await;
            // Every Register goes out at once.
            barrier.wait().await;
            send(&mut ws, register_json(&format!("p{i}"), "t", claim(i))).await;
            let assigned = recv_json(&mut ws).await;
            (i, ws, assigned)
        });
    }
    let mut clients = Vec::new();
    while let Some(done) = tasks.join_next().await {
        clients.push(done.expect("client task"));
    }
    clients.sort_by_key(|c| c.0);
    let (clients, mut clients_ws): (Vec<_>, Vec<_>) = clients
        .into_iter()
        .map(|(i, ws, assigned)| ((i, assigned), ws))
        .unzip();

    let mesh = mesh_json(&srv).await;
    assert_eq!(mesh["peer_count"], PEERS);
    let peers = mesh["peers"].as_array().unwrap();
    let by_id: std::collections::HashMap<&str, &serde_json::Value> = peers
        .iter()
        .map(|p| (p["peer_id"].as_str().unwrap(), p))
        .collect();
    // Every peer placed exactly once.
    assert_eq!((peers.len(), by_id.len()), (PEERS, PEERS));
    let mut children: std::collections::HashMap<&str, usize> = Default::default();
    let mut roots = 0;
    for (i, assigned) in &clients {
        let id = format!("p{i}");
        let p = by_id[id.as_str()];
        let capacity = claim(*i).unwrap_or(MAX_CHILDREN).min(MAX_CHILDREN);
        let role = p["role"].as_str().unwrap();
        let parent = p["parent"].as_str();
        let depth = p["depth"].as_u64().unwrap() as u32;
        let now = assign(&id, role, parent, depth, 0);
        // Its AssignParent told it the place it holds: joins move nobody
        // but a leaf that took a root slot before every slot was taken,
        // which a relay joining after it displaces (and tells).
        if *assigned != now {
            assert_eq!(*assigned, assign(&id, "Root", None, 0, 0), "{p}");
            assert_eq!((capacity, role, depth), (0, "Leaf", 1), "{p}");
            let ws = &mut clients_ws[*i];
            assert_eq!(recv_json(ws).await, now, "{p}");
        }
        match parent {
            None => {
                roots += 1;
                assert_eq!((role, depth), ("Root", 0), "{p}");
            }
            Some(parent) => {
                *children.entry(parent).or_default() += 1;
                let want_role = if capacity == 0 { "Leaf" } else { "Relay" };
                assert_eq!(role, want_role, "{p}");
                assert_eq!(
                    u64::from(depth),
                    by_id[parent]["depth"].as_u64().unwrap() + 1,
                    "{p}"
                );
            }
        }
        assert!(
            p["intended_children"].as_u64().unwrap() <= u64::from(capacity),
            "{p}"
        );
    }
    assert_eq!(roots, ROOTS);
    for p in peers {
        let id = p["peer_id"].as_str().unwrap();
        let n = children.get(id).copied().unwrap_or(0);
        assert_eq!(p["intended_children"], n, "{p}");
    }
    // Nothing else was sent to anyone.
    for ws in &mut clients_ws {
        expect_nothing_queued(ws).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_track_created_anew_names_a_new_epoch() {
    let srv = start(meshrelay_server::ServerConfig {
        fixed_epoch: None,
        ..config()
    })
    .await;
    let epoch = |v: &serde_json::Value| {
        let e = v["epoch"].as_str().expect("an epoch").to_owned();
        assert!(
            e.len() == 16 && e.bytes().all(|b| b.is_ascii_hexdigit()),
            "{e}"
        );
        e
    };
    let (a, va) = register(&srv, "a", "t", None).await;
    let (b, vb) = register(&srv, "b", "t", None).await;
    let (_u, vu) = register(&srv, "u", "other", None).await;
    let first = epoch(&va);
    assert_eq!(epoch(&vb), first, "one track, one sequence");
    assert_ne!(epoch(&vu), first, "each track its own");
    let mesh = mesh_json(&srv).await;
    let t = mesh["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["track"] == "t")
        .unwrap();
    assert_eq!(t["epoch"], first.as_str());

    // Its last user gone, the track is dropped; the next Register on the
    // same name creates it again, its ids from 0 under another epoch.
    drop((a, b));
    poll_until("track t dropped", || async {
        let mesh = mesh_json(&srv).await;
        mesh["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["track"] != "t")
    })
    .await;
    let (_c, vc) = register(&srv, "c", "t", None).await;
    assert_eq!(vc["next_object_id"], 0);
    assert_ne!(epoch(&vc), first);
    srv.stop().await;
}

#[tokio::test]
async fn drop_child_moves_the_child_with_its_subtree_and_only_for_its_parent() {
    // a -> {b, c}; b -> d.
    let srv = start(tree_config(1, 2)).await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let (mut b, bv) = register(&srv, "b", "t", None).await;
    let (mut c, cv) = register(&srv, "c", "t", None).await;
    let (mut d, dv) = register(&srv, "d", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 0));
    assert_eq!(cv, assign("c", "Relay", Some("a"), 1, 0));
    assert_eq!(dv, assign("d", "Relay", Some("b"), 2, 0));

    // a could not keep up with b: b moves under c, d comes along. Both
    // ends of the link that ended are told first.
    send(&mut a, r#"{"type":"DropChild","peer_id":"b"}"#).await;
    assert_eq!(recv_json(&mut a).await, left("b"));
    assert_eq!(recv_json(&mut b).await, left("a"));
    assert_eq!(
        recv_json(&mut b).await,
        assign("b", "Relay", Some("c"), 2, 0)
    );
    assert_eq!(
        recv_json(&mut d).await,
        assign("d", "Relay", Some("b"), 3, 0)
    );
    let mesh = mesh_json(&srv).await;
    assert_eq!(place_of(&mesh, "b"), (json!("c"), json!(2)));
    assert_eq!(place_of(&mesh, "d"), (json!("b"), json!(3)));

    // Only a peer's own children: not a grandchild, not its parent.
    send(&mut a, r#"{"type":"DropChild","peer_id":"d"}"#).await;
    expect_error(&mut a, "not_neighbour", "d is not this peer's child").await;
    send(&mut c, r#"{"type":"DropChild","peer_id":"a"}"#).await;
    expect_error(&mut c, "not_neighbour", "a is not this peer's child").await;
    send(&mut c, r#"{"type":"DropChild","peer_id":"x y"}"#).await;
    let why = "peer_id may contain only A-Z, a-z, 0-9, '_' and '-'";
    expect_error(&mut c, "invalid_peer_id", why).await;
    let mut stranger = connect(&srv.url("/signal")).await;
    send(&mut stranger, r#"{"type":"DropChild","peer_id":"b"}"#).await;
    let why = "the first message must be Register";
    expect_error(&mut stranger, "expected_register", why).await;

    // c has nowhere else to go (every other free slot is in its own
    // subtree, and a is the parent that dropped it): it stays, and nobody
    // is told anything.
    send(&mut a, r#"{"type":"DropChild","peer_id":"c"}"#).await;
    for ws in [&mut a, &mut b, &mut c, &mut d] {
        expect_nothing_queued(ws).await;
    }
    let mesh = mesh_json(&srv).await;
    assert_eq!(place_of(&mesh, "c"), (json!("a"), json!(1)));
    srv.stop().await;
}

#[tokio::test]
async fn a_parent_that_drops_two_different_children_is_not_refilled() {
    // a -> {b, c, d}, three slots.
    let srv = start(tree_config(1, 3)).await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let (mut b, _) = register(&srv, "b", "t", None).await;
    let (mut c, _) = register(&srv, "c", "t", None).await;
    let (_d, dv) = register(&srv, "d", "t", None).await;
    assert_eq!(dv, assign("d", "Relay", Some("a"), 1, 0));
    // One drop says nothing about a: b moves, and a's slot is refilled.
    send(&mut a, r#"{"type":"DropChild","peer_id":"b"}"#).await;
    assert_eq!(recv_json(&mut a).await, left("b"));
    assert_eq!(recv_json(&mut b).await, left("a"));
    assert_eq!(
        recv_json(&mut b).await,
        assign("b", "Relay", Some("c"), 2, 0)
    );
    let (_x, xv) = register(&srv, "x", "t", None).await;
    assert_eq!(xv, assign("x", "Relay", Some("a"), 1, 0));
    // A second, different child soon after: a is the one that cannot keep
    // up. c moves (b with it) and a keeps the two children it has left.
    send(&mut a, r#"{"type":"DropChild","peer_id":"c"}"#).await;
    assert_eq!(recv_json(&mut c).await, left("a"));
    assert_eq!(
        recv_json(&mut c).await,
        assign("c", "Relay", Some("d"), 2, 0)
    );
    assert_eq!(
        recv_json(&mut b).await,
        assign("b", "Relay", Some("c"), 3, 0)
    );
    // a, still a root, is told only that c is no longer its child; its
    // free slot is not refilled.
    assert_eq!(recv_json(&mut a).await, left("c"));
    expect_nothing_queued(&mut a).await;
    let (_e, ev) = register(&srv, "e", "t", None).await;
    assert_eq!(ev, assign("e", "Relay", Some("x"), 2, 0));
    let mesh = mesh_json(&srv).await;
    let kids_of_a = mesh["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == "a")
        .unwrap()["intended_children"]
        .clone();
    assert_eq!(kids_of_a, 2);
    srv.stop().await;
}

/// The `PeerLeft` naming `id`.
fn left(id: &str) -> serde_json::Value {
    json!({"type": "PeerLeft", "peer_id": id})
}

/// `(parent, depth)` of `id` on `/api/v1/mesh`.
fn place_of(mesh: &serde_json::Value, id: &str) -> (serde_json::Value, serde_json::Value) {
    let p = mesh["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == id)
        .unwrap_or_else(|| panic!("{id} on /api/v1/mesh"));
    (p["parent"].clone(), p["depth"].clone())
}

/// How a test client registers: as the meshrelay SDK (features stated) or
/// as LVQR's client (none).
#[derive(Clone, Copy, Debug)]
enum Client {
    Meshrelay,
    Lvqr,
}

async fn join(srv: &TestServer, client: Client, id: &str) -> (Ws, serde_json::Value) {
    match client {
        Client::Meshrelay => register(srv, id, "t", None).await,
        Client::Lvqr => register_lvqr(srv, id, "t", None).await,
    }
}

#[tokio::test]
async fn a_re_plan_tells_both_ends_of_every_link_it_ends() {
    for client in [Client::Meshrelay, Client::Lvqr] {
        // Chain a <- b <- c <- d.
        let srv = start(tree_config(1, 1)).await;
        let (mut a, _) = join(&srv, client, "a").await;
        let (_b, _) = join(&srv, client, "b").await;
        let (mut c, _) = join(&srv, client, "c").await;
        let (mut d, dv) = join(&srv, client, "d").await;
        assert_eq!(dv, assign("d", "Relay", Some("c"), 3, 0));
        // b leaves: the childless d stands in under a and hosts c, so the
        // link c -> d ends with both alive. Every parent changes, so an
        // LVQR client hears the same as the SDK.
        drop(_b);
        assert_eq!(recv_json(&mut a).await, left("b"), "{client:?}");
        assert_eq!(recv_json(&mut c).await, left("b"), "{client:?}");
        assert_eq!(recv_json(&mut c).await, left("d"), "{client:?}");
        assert_eq!(recv_json(&mut d).await, left("c"), "{client:?}");
        assert_eq!(
            recv_json(&mut c).await,
            assign("c", "Relay", Some("d"), 2, 0)
        );
        assert_eq!(
            recv_json(&mut d).await,
            assign("d", "Relay", Some("a"), 1, 0)
        );
        for ws in [&mut a, &mut c, &mut d] {
            expect_nothing_queued(ws).await;
        }
        srv.stop().await;
    }
}

#[tokio::test]
async fn an_lvqr_client_is_never_promoted_and_hears_only_parent_changes() {
    // Chain a <- b <- c of LVQR clients.
    let srv = start(tree_config(1, 1)).await;
    let (a, av) = register_lvqr(&srv, "a", "t", None).await;
    assert_eq!(
        av,
        assign("a", "Root", None, 0, 0),
        "a root at its own join"
    );
    let (mut b, _) = register_lvqr(&srv, "b", "t", None).await;
    let (mut c, _) = register_lvqr(&srv, "c", "t", None).await;
    // a leaves. Neither b nor c reads the origin on its own, so nobody
    // takes the root slot: b waits with c under it. c keeps its parent, so
    // it is told nothing (it would reconnect on any AssignParent).
    drop(a);
    assert_eq!(recv_json(&mut b).await, left("a"));
    assert_eq!(recv_json(&mut b).await, assign("b", "Relay", None, 0, 0));
    expect_nothing_queued(&mut c).await;
    let mesh = mesh_json(&srv).await;
    assert_eq!(mesh["tracks"][0]["root_count"], 0, "{mesh}");
    // The next newcomer takes the slot at its join; b goes under it.
    let (mut d, dv) = register_lvqr(&srv, "d", "t", None).await;
    assert_eq!(dv, assign("d", "Root", None, 0, 0));
    assert_eq!(
        recv_json(&mut b).await,
        assign("b", "Relay", Some("d"), 1, 0)
    );
    for ws in [&mut b, &mut c, &mut d] {
        expect_nothing_queued(ws).await;
    }
    let mesh = mesh_json(&srv).await;
    assert_eq!(place_of(&mesh, "c"), (json!("b"), json!(2)));
    srv.stop().await;

    // A peer that states it reads the origin is promoted instead.
    let srv = start(tree_config(1, 1)).await;
    let (a, _) = register(&srv, "a", "t", None).await;
    let (mut b, _) = register(&srv, "b", "t", None).await;
    drop(a);
    assert_eq!(recv_json(&mut b).await, left("a"));
    assert_eq!(recv_json(&mut b).await, assign("b", "Root", None, 0, 0));
    srv.stop().await;
}
