//! Bad input on `/signal`: every violation gets its `Error` code.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_messages_get_codes_and_the_session_stays_open() {
    let srv = start(config()).await;
    let mut ws = connect(&srv.url("/signal")).await;
    send(&mut ws, "{not json").await;
    expect_error(
        &mut ws,
        "invalid_json",
        "not a JSON object with a string \"type\": key must be a string at line 1 column 2",
    )
    .await;
    send(&mut ws, r#"{"type":"Dance"}"#).await;
    expect_error(&mut ws, "unknown_type", "unknown message type \"Dance\"").await;
    send(&mut ws, r#"{"type":"Register","peer_id":"a"}"#).await;
    expect_error(
        &mut ws,
        "invalid_json",
        "malformed Register: missing field `track`",
    )
    .await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    expect_error(
        &mut ws,
        "invalid_json",
        "binary frames are not accepted on /signal",
    )
    .await;
    send(&mut ws, r#"{"type":"Heartbeat"}"#).await;
    expect_error(
        &mut ws,
        "expected_register",
        "the first message must be Register",
    )
    .await;
    send(&mut ws, register_json("bad id", "t", None)).await;
    expect_error(
        &mut ws,
        "invalid_peer_id",
        "peer_id may contain only A-Z, a-z, 0-9, '_' and '-'",
    )
    .await;
    send(&mut ws, register_json(&"x".repeat(65), "t", None)).await;
    expect_error(
        &mut ws,
        "invalid_peer_id",
        "peer_id is longer than 64 characters",
    )
    .await;
    for (track, why) in [
        ("/t", "track may not start or end with '/'"),
        ("t/", "track may not start or end with '/'"),
        ("a//b", "track may not contain '//'"),
        ("a/../b", "track may not contain '..'"),
        (
            "a b",
            "track may contain only A-Z, a-z, 0-9, '.', '_', '/' and '-'",
        ),
    ] {
        send(&mut ws, register_json("a", track, None)).await;
        expect_error(&mut ws, "invalid_track", why).await;
    }
    // Still open: a valid Register now succeeds.
    send(&mut ws, register_json("a", "t", None)).await;
    assert_eq!(recv_json(&mut ws).await, assign("a", "Root", None, 0, 0));
    send(&mut ws, register_json("a2", "t", None)).await;
    expect_error(
        &mut ws,
        "duplicate_register",
        "this session is already registered",
    )
    .await;
    send(&mut ws, "[]").await;
    expect_error(&mut ws, "invalid_json", "not a JSON object with a string \"type\": invalid length 0, expected struct TypeOnly with 1 element at line 1 column 2").await;
    assert_eq!(mesh_json(&srv).await["peer_count"], 1);
    srv.stop().await;
}

#[tokio::test]
async fn duplicate_peer_id_leaves_the_existing_session_untouched() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        ..config()
    })
    .await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let mut imposter = connect(&srv.url("/signal")).await;
    send(&mut imposter, register_json("a", "t", None)).await;
    expect_error(
        &mut imposter,
        "duplicate_peer_id",
        "peer id a is already registered on this track",
    )
    .await;
    // The imposter may retry with another id on the same socket.
    send(&mut imposter, register_json("b", "t", None)).await;
    assert_eq!(
        recv_json(&mut imposter).await,
        assign("b", "Relay", Some("a"), 1, 0)
    );
    // The original still owns "a" and receives what is sent to it.
    send(
        &mut imposter,
        r#"{"type":"Offer","from":"b","to":"a","sdp":"hi"}"#,
    )
    .await;
    assert_eq!(
        recv_json(&mut a).await,
        serde_json::json!({"type":"Offer","from":"b","to":"a","sdp":"hi"})
    );
    assert_eq!(mesh_json(&srv).await["peer_count"], 2);
    srv.stop().await;
}

/// Writes `n` copies of `text` as fast as the socket takes them. A write
/// error ends the flood: a server that drops the connection with unread
/// input resets it, and the test then fails on the missing Error frame.
async fn flood(ws: &mut Ws, text: &str, n: usize) {
    flood_with(ws, || Message::Text(text.into()), n).await
}

async fn flood_with(ws: &mut Ws, msg: impl Fn() -> Message, n: usize) {
    let writes = async {
        for _ in 0..n {
            if ws.feed(msg()).await.is_err() {
                return;
            }
        }
        let _ = ws.flush().await;
    };
    tokio::time::timeout(WAIT, writes)
        .await
        .expect("the server keeps reading until the client's Close");
}

/// After the Error and the close frame the client answers Close, and the
/// server then ends the TCP connection cleanly (end of stream, no reset).
async fn expect_clean_end(ws: &mut Ws) {
    match tokio::time::timeout(WAIT, futures_util::StreamExt::next(ws))
        .await
        .expect("end in time")
    {
        None | Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)) => {}
        other => panic!("expected a clean end of stream, got {other:?}"),
    }
}

const FLOOD: usize = 20_000;

#[tokio::test]
async fn oversized_message_is_refused_and_closes() {
    let srv = start(meshrelay_server::ServerConfig {
        max_signal_bytes: 1024,
        ..config()
    })
    .await;
    // Just over the limit (our own check), then a flood the server must
    // read past so the Error frame is not lost to a reset.
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let big = format!(r#"{{"type":"Heartbeat","pad":"{}"}}"#, "x".repeat(1024));
    send(&mut a, big).await;
    flood(&mut a, r#"{"type":"Heartbeat"}"#, FLOOD).await;
    expect_error(
        &mut a,
        "too_large",
        "message of 1053 bytes exceeds the limit of 1024",
    )
    .await;
    assert_eq!(expect_closed(&mut a).await, Some(1009));
    expect_clean_end(&mut a).await;
    // Far beyond the limit: tungstenite's own cap refuses the frame header,
    // and the server still answers too_large and 1009.
    let (mut b, _) = register(&srv, "b", "t", None).await;
    send(&mut b, "x".repeat(100_000)).await;
    expect_error(
        &mut b,
        "too_large",
        "message exceeds the limit of 1024 bytes",
    )
    .await;
    assert_eq!(expect_closed(&mut b).await, Some(1009));
    srv.stop().await;
}

#[tokio::test]
async fn flooding_is_rate_limited_and_closes() {
    let srv = start(meshrelay_server::ServerConfig {
        message_rate: 0.001,
        message_burst: 3.0,
        ..config()
    })
    .await;
    for round in 0..5 {
        let peer = format!("a{round}");
        let (mut a, _) = register(&srv, &peer, "t", None).await; // 1 token
        send(&mut a, r#"{"type":"Heartbeat"}"#).await; // 2
        send(&mut a, r#"{"type":"Heartbeat"}"#).await; // 3
        flood(&mut a, r#"{"type":"Heartbeat"}"#, FLOOD).await; // over
        expect_error(&mut a, "rate_limited", "too many messages; slow down").await;
        assert_eq!(expect_closed(&mut a).await, Some(1008));
        expect_clean_end(&mut a).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_ping_or_unsolicited_pong_flood_is_rate_limited_like_messages() {
    let srv = start(meshrelay_server::ServerConfig {
        message_rate: 0.001,
        message_burst: 3.0,
        ..config()
    })
    .await;
    for id in ["ping", "pong"] {
        let frame = || match id {
            "ping" => Message::Ping(Default::default()),
            _ => Message::Pong(Default::default()),
        };
        let (mut a, _) = register(&srv, id, "t", None).await; // 1 token
        flood_with(&mut a, frame, FLOOD).await;
        expect_error(&mut a, "rate_limited", "too many messages; slow down").await;
        assert_eq!(expect_closed(&mut a).await, Some(1008), "{id}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn peer_limits_answer_mesh_full_and_keep_the_socket() {
    let srv = start(meshrelay_server::ServerConfig {
        max_peers_total: Some(2),
        max_peers_per_track: Some(1),
        ..config()
    })
    .await;
    let (_a, _) = register(&srv, "a", "t1", None).await;
    let mut b = connect(&srv.url("/signal")).await;
    send(&mut b, register_json("b", "t1", None)).await;
    expect_error(&mut b, "mesh_full", "this track has reached its peer limit").await;
    send(&mut b, register_json("b", "t2", None)).await;
    assert_eq!(recv_json(&mut b).await, assign("b", "Root", None, 0, 0));
    let mut c = connect(&srv.url("/signal")).await;
    send(&mut c, register_json("c", "t3", None)).await;
    expect_error(&mut c, "mesh_full", "the server has reached its peer limit").await;
    srv.stop().await;
}

#[tokio::test]
async fn track_limit_refuses_new_tracks_but_not_existing_ones() {
    let srv = start(meshrelay_server::ServerConfig {
        max_tracks: 2,
        ..config()
    })
    .await;
    let (_a, _) = register(&srv, "a", "t1", None).await;
    let _egress = connect(&srv.url("/ws/t2")).await;
    let mut b = connect(&srv.url("/signal")).await;
    send(&mut b, register_json("b", "t3", None)).await;
    expect_error(
        &mut b,
        "mesh_full",
        "the server has reached its track limit",
    )
    .await;
    for path in ["/ws/t3", "/ingest/t3"] {
        match tokio_tungstenite::connect_async(srv.url(path).as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 503, "{path}")
            }
            other => panic!("{path}: expected 503, got {:?}", other.map(|_| ())),
        }
    }
    // The socket stays open and existing tracks are still joined.
    send(&mut b, register_json("b", "t2", None)).await;
    assert_eq!(recv_json(&mut b).await, assign("b", "Root", None, 0, 0));
    let _publisher = connect(&srv.url("/ingest/t1")).await;
    srv.stop().await;
}

#[tokio::test]
async fn depth_limit_answers_mesh_full() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        max_children: 1,
        max_depth: 1,
        ..config()
    })
    .await;
    let (_a, _) = register(&srv, "a", "t", None).await;
    let (_b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 0));
    let mut c = connect(&srv.url("/signal")).await;
    send(&mut c, register_json("c", "t", None)).await;
    expect_error(&mut c, "mesh_full", "tree depth limit of 1 reached").await;
    srv.stop().await;
}

/// A 60 KB `Offer` from `from` to `to`: three fill the share of a 256 KiB
/// queue that relayed messages may use.
fn big_offer(from: &str, to: &str) -> String {
    let sdp = "x".repeat(60_000);
    format!(r#"{{"type":"Offer","from":"{from}","to":"{to}","sdp":"{sdp}"}}"#)
}

/// Sends `offer` from `sender` to `to` until the server refuses one with
/// `rate_limited` (the recipient's queue is full), then a probe whose reply
/// proves every earlier offer was handled. Returns how many offers were
/// accepted for relaying; every message the sender gets is a refusal.
async fn flood_until_refused(sender: &mut Ws, to: &str, offer: &str) -> usize {
    let refusal = serde_json::json!({
        "type": "Error",
        "code": "rate_limited",
        "reason": format!("{to} is not reading fast enough; this message was dropped"),
    });
    let mut sent = 0;
    let mut refused = 0;
    while refused == 0 {
        assert!(sent < 2_000, "no rate_limited after {sent} offers");
        send(sender, offer).await;
        sent += 1;
        let poll = futures_util::StreamExt::next(sender);
        match tokio::time::timeout(std::time::Duration::ZERO, poll).await {
            Err(_) | Ok(Some(Ok(Message::Ping(_)))) => {}
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v, refusal);
                refused += 1;
            }
            Ok(other) => panic!("expected a refusal, got {other:?}"),
        }
    }
    send(sender, r#"{"type":"Nope"}"#).await;
    loop {
        let v = recv_json(sender).await;
        if v["code"] == "unknown_type" {
            break;
        }
        assert_eq!(v, refusal);
        refused += 1;
    }
    sent - refused
}

/// Reads `n` messages and asserts each is `want`.
async fn expect_n(ws: &mut Ws, n: usize, want: &str) {
    let want: serde_json::Value = serde_json::from_str(want).unwrap();
    for i in 0..n {
        assert!(recv_json(ws).await == want, "message {i} of {n} differs");
    }
}

#[tokio::test]
async fn a_child_flooding_its_parent_is_refused_and_the_parent_keeps_its_place() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        message_rate: 1e9,
        message_burst: 1e9,
        relay_bytes_rate: 1e9,
        ..config()
    })
    .await;
    // r -> p -> c; p never reads while its child c floods it. The queue
    // has 256 slots, so what refuses the offers is its byte bound.
    let (mut r, _) = register(&srv, "r", "t", Some(1)).await;
    let (mut p, pv) = register(&srv, "p", "t", None).await;
    assert_eq!(pv, assign("p", "Relay", Some("r"), 1, 0));
    let (mut c, cv) = register(&srv, "c", "t", None).await;
    assert_eq!(cv, assign("c", "Relay", Some("p"), 2, 0));
    let offer = big_offer("c", "p");
    let accepted = flood_until_refused(&mut c, "p", &offer).await;

    // p's queue is full for relayed messages, not for the planner's. The
    // planner fills r's root slot with the childless c, which hosts p at
    // its old depth: the link p -> c ends, then both hear their new places.
    r.close(None).await.unwrap();
    assert_eq!(
        recv_json(&mut c).await,
        serde_json::json!({"type":"PeerLeft","peer_id":"p"})
    );
    assert_eq!(recv_json(&mut c).await, assign("c", "Root", None, 0, 0));
    // p reads at last: every accepted offer, then its news, in order.
    expect_n(&mut p, accepted, &offer).await;
    assert_eq!(
        recv_json(&mut p).await,
        serde_json::json!({"type":"PeerLeft","peer_id":"r"})
    );
    assert_eq!(
        recv_json(&mut p).await,
        serde_json::json!({"type":"PeerLeft","peer_id":"c"})
    );
    assert_eq!(
        recv_json(&mut p).await,
        assign("p", "Relay", Some("c"), 1, 0)
    );
    // Its queue serves relays again.
    send(
        &mut c,
        r#"{"type":"Answer","from":"c","to":"p","sdp":"after"}"#,
    )
    .await;
    assert_eq!(
        recv_json(&mut p).await,
        serde_json::json!({"type":"Answer","from":"c","to":"p","sdp":"after"})
    );
    let mesh = mesh_json(&srv).await;
    assert_eq!(mesh["peer_count"], 2);
    srv.stop().await;
}

#[tokio::test]
async fn relaying_past_the_byte_budget_is_refused_and_the_recipient_untouched() {
    // 1,000 bytes/s to each neighbour, in bursts of one largest message.
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        relay_bytes_rate: 1000.0,
        max_signal_bytes: 4096,
        ..config()
    })
    .await;
    let (mut r, _) = register(&srv, "r", "t", None).await;
    let (mut c, _) = register(&srv, "c", "t", None).await;
    let (mut d, _) = register(&srv, "d", "t", None).await;
    let offer = |from: &str| {
        let sdp = "x".repeat(1_900);
        format!(r#"{{"type":"Offer","from":"{from}","to":"r","sdp":"{sdp}"}}"#)
    };
    // Two fit in 4,096 bytes; the third is dropped and its sender told.
    for _ in 0..3 {
        send(&mut c, offer("c")).await;
    }
    expect_error(
        &mut c,
        "rate_limited",
        "relaying to r faster than its budget allows; this message was dropped",
    )
    .await;
    // Another neighbour has a budget of its own, and r hears exactly what
    // was relayed, in order, and is still in the tree.
    send(&mut d, offer("d")).await;
    expect_n(&mut r, 2, &offer("c")).await;
    assert_eq!(
        recv_json(&mut r).await,
        serde_json::from_str::<serde_json::Value>(&offer("d")).unwrap()
    );
    send(
        &mut r,
        r#"{"type":"Answer","from":"r","to":"c","sdp":"ok"}"#,
    )
    .await;
    assert_eq!(
        recv_json(&mut c).await,
        serde_json::json!({"type":"Answer","from":"r","to":"c","sdp":"ok"})
    );
    assert_eq!(mesh_json(&srv).await["peer_count"], 3);
    srv.stop().await;
}

#[tokio::test]
async fn a_large_binary_frame_is_refused_as_too_large_and_closes() {
    let srv = start(meshrelay_server::ServerConfig {
        max_signal_bytes: 1024,
        ..config()
    })
    .await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    // Over the limit, under the hard cap at which the frame header itself
    // is refused.
    a.send(Message::Binary(vec![0u8; 1500].into()))
        .await
        .unwrap();
    expect_error(
        &mut a,
        "too_large",
        "message of 1500 bytes exceeds the limit of 1024",
    )
    .await;
    assert_eq!(expect_closed(&mut a).await, Some(1009));
    srv.stop().await;
}

#[tokio::test]
async fn slow_consumer_is_cut_off_and_its_leave_planned() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        // Three slots for relayed messages, one more for the planner's.
        send_queue: 4,
        message_rate: 1e9,
        message_burst: 1e9,
        relay_bytes_rate: 1e9,
        ..config()
    })
    .await;
    // r -> deaf -> child; deaf never reads until it is cut off.
    let (mut r, _) = register(&srv, "r", "t", Some(1)).await;
    let (mut deaf, dv) = register(&srv, "deaf", "t", None).await;
    assert_eq!(dv, assign("deaf", "Relay", Some("r"), 1, 0));
    let (mut child, cv) = register(&srv, "child", "t", None).await;
    assert_eq!(cv, assign("child", "Relay", Some("deaf"), 2, 0));
    let offer = big_offer("child", "deaf");
    let accepted = flood_until_refused(&mut child, "deaf", &offer).await;

    // r's leave owes deaf three planner messages (PeerLeft r, PeerLeft
    // child for their ended link, AssignParent under child, which takes r's
    // root slot): the first takes the last slot, the second overflows it,
    // and deaf's own leave is planned.
    r.close(None).await.unwrap();
    let left_deaf = serde_json::json!({"type":"PeerLeft","peer_id":"deaf"});
    assert_eq!(recv_json(&mut child).await, left_deaf, "the link ended");
    assert_eq!(
        recv_json(&mut child).await,
        assign("child", "Root", None, 0, 0)
    );
    assert_eq!(recv_json(&mut child).await, left_deaf, "deaf left");
    assert_eq!(mesh_json(&srv).await["peer_count"], 1);
    // deaf, reading at last, gets what reached its socket (all but the
    // three queued offers), then the Error, then the Close.
    expect_n(&mut deaf, accepted - 3, &offer).await;
    expect_error(
        &mut deaf,
        "slow_consumer",
        "the server's queue towards this client overflowed",
    )
    .await;
    assert_eq!(expect_closed(&mut deaf).await, Some(1013));
    srv.stop().await;
}

#[tokio::test]
async fn a_session_that_never_registers_is_closed_at_the_deadline() {
    let register_timeout = std::time::Duration::from_millis(1500);
    let srv = start(meshrelay_server::ServerConfig {
        // Pings every 150 ms: only a session answering them outlives 450 ms
        // (three times over before the deadline; long enough that a loaded
        // machine's scheduling delays do not pass for silence).
        heartbeat_timeout: std::time::Duration::from_millis(450),
        register_timeout,
        ..config()
    })
    .await;
    let opened = tokio::time::Instant::now();
    let mut idle = connect(&srv.url("/signal")).await;
    // Reading answers the pings, so the heartbeat never ends this session:
    // the registration deadline does, with an Error and close code 1008.
    expect_error(&mut idle, "expected_register", "no Register within 1.5s").await;
    assert!(
        opened.elapsed() >= register_timeout,
        "{:?}",
        opened.elapsed()
    );
    assert_eq!(expect_closed(&mut idle).await, Some(1008));
    expect_clean_end(&mut idle).await;

    // Leave restarts the deadline; a registered session has none.
    let (mut left, _) = register(&srv, "a", "t", None).await;
    send(&mut left, r#"{"type":"Leave"}"#).await;
    let left_at = tokio::time::Instant::now();
    expect_error(&mut left, "expected_register", "no Register within 1.5s").await;
    assert!(
        left_at.elapsed() >= register_timeout,
        "{:?}",
        left_at.elapsed()
    );
    assert_eq!(expect_closed(&mut left).await, Some(1008));

    let (stayed, _) = register(&srv, "b", "t", None).await;
    let (mut tx, mut rx) = futures_util::StreamExt::split(stayed);
    let reader = tokio::spawn(async move {
        // Reading answers pings; the first text message is handed back.
        loop {
            match futures_util::StreamExt::next(&mut rx).await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => return other,
            }
        }
    });
    // The deadline of a session opened after b's registration passes...
    let mut probe = connect(&srv.url("/signal")).await;
    expect_error(&mut probe, "expected_register", "no Register within 1.5s").await;
    // ...and b is still served.
    tx.send(Message::Text(r#"{"type":"Nope"}"#.into()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(WAIT, reader)
        .await
        .expect("reply in time")
        .unwrap();
    match reply {
        Some(Ok(Message::Text(t))) => assert_eq!(
            serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap(),
            serde_json::json!({"type":"Error","code":"unknown_type","reason":"unknown message type \"Nope\""})
        ),
        other => panic!("expected unknown_type, got {other:?}"),
    }
    srv.stop().await;
}
