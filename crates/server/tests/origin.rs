//! Origin ingest and egress over real sockets, plus the admin endpoints.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn framed(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    match next_msg(ws).await {
        Message::Binary(b) => b.to_vec(),
        other => panic!("expected binary, got {other:?}"),
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("object-{i}").into_bytes()
}

#[tokio::test]
async fn assign_parent_carries_the_tracks_next_object_id() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        ..config()
    })
    .await;
    // The reader sees each object once the origin has numbered it.
    let mut reader = connect(&srv.url("/ws/t?from=0")).await;
    let mut publisher = connect(&srv.url("/ingest/t")).await;
    for i in 0..3u64 {
        publisher
            .send(Message::Binary(payload(i).into()))
            .await
            .unwrap();
        assert_eq!(next_binary(&mut reader).await, framed(i, &payload(i)));
    }
    let (mut a, av) = register(&srv, "a", "t", None).await;
    assert_eq!(av, assign("a", "Root", None, 0, 3));
    let (mut b, bv) = register(&srv, "b", "t", None).await;
    assert_eq!(bv, assign("b", "Relay", Some("a"), 1, 3));
    publisher
        .send(Message::Binary(payload(3).into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut reader).await, framed(3, &payload(3)));
    // A re-assignment says where the stream is now.
    send(&mut a, r#"{"type":"Leave"}"#).await;
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type":"PeerLeft","peer_id":"a"})
    );
    assert_eq!(recv_json(&mut b).await, assign("b", "Root", None, 0, 4));
    srv.stop().await;
}

#[tokio::test]
async fn ingest_to_egress_is_byte_exact_and_resumable() {
    let srv = start(meshrelay_server::ServerConfig {
        ring_objects: 4,
        ..config()
    })
    .await;
    // from=0 removes any race between subscribing and the first publish.
    let mut live = connect(&srv.url("/ws/live/test?from=0")).await;
    let mut publisher = connect(&srv.url("/ingest/live/test")).await;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    // Lockstep, so the live reader never falls out of the 4-object ring.
    for i in 0..9u64 {
        publisher
            .send(Message::Binary(payload(i).into()))
            .await
            .unwrap();
        assert_eq!(next_binary(&mut live).await, framed(i, &payload(i)));
    }
    publisher
        .send(Message::Text("ignored".into()))
        .await
        .unwrap();
    publisher
        .send(Message::Binary(big.clone().into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut live).await, framed(9, &big));

    // Resume inside the ring: exactly from the asked id.
    let mut resumed = connect(&srv.url("/ws/live/test?from=8")).await;
    assert_eq!(next_binary(&mut resumed).await, framed(8, &payload(8)));
    assert_eq!(next_binary(&mut resumed).await, framed(9, &big));

    // Older than the ring (ids 6..=9 kept): a ResumeGap, then from the oldest.
    let mut gap = connect(&srv.url("/ws/live/test?from=1")).await;
    assert_eq!(
        recv_json(&mut gap).await,
        json!({"type":"ResumeGap","requested":1,"first":6})
    );
    for i in 6..9u64 {
        assert_eq!(next_binary(&mut gap).await, framed(i, &payload(i)));
    }
    assert_eq!(next_binary(&mut gap).await, framed(9, &big));

    // Beyond the next id: the next published object.
    let mut ahead = connect(&srv.url("/ws/live/test?from=500")).await;
    // A later publisher continues the numbering (one publisher at a time:
    // the first is gone once the server has ended its connection).
    close_and_wait_end(&mut publisher).await;
    let mut publisher = connect(&srv.url("/ingest/live/test")).await;
    publisher
        .send(Message::Binary(b"ten".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut ahead).await, framed(10, b"ten"));
    assert_eq!(next_binary(&mut live).await, framed(10, b"ten"));
    assert_eq!(next_binary(&mut gap).await, framed(10, b"ten"));
    assert_eq!(next_binary(&mut resumed).await, framed(10, b"ten"));

    let t = track_json(&srv, "live/test").await;
    assert_eq!(
        (&t["subscribers"], &t["publishers"]),
        (&4.into(), &1.into())
    );

    // A send is counted once written, so the counts are final once every
    // reader has closed and seen the server end the connection.
    for mut reader in [live, resumed, gap, ahead] {
        close_and_wait_end(&mut reader).await;
    }
    // The admin API counts exactly what the origin sent to the four readers:
    // the framed objects and the ResumeGap text.
    let size = |i: u64| match i {
        9 => 8 + big.len() as u64,
        10 => 8 + 3,
        i => 8 + payload(i).len() as u64,
    };
    let ranges = [0..11u64, 8..11, 6..11, 10..11];
    let objects: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let resume_gap = r#"{"type":"ResumeGap","requested":1,"first":6}"#.len() as u64;
    let bytes: u64 = ranges.iter().flat_map(|r| r.clone()).map(size).sum::<u64>() + resume_gap;
    let t = track_json(&srv, "live/test").await;
    assert_eq!(t["objects_published"], 11);
    assert_eq!(t["next_object_id"], 11);
    assert_eq!(t["origin_objects_sent"], objects);
    assert_eq!(t["origin_bytes_sent"], bytes);
    assert_eq!(
        (&t["subscribers"], &t["publishers"]),
        (&0.into(), &1.into())
    );
    srv.stop().await;
}

/// The track's entry in `/api/v1/mesh`.
async fn track_json(srv: &TestServer, track: &str) -> Value {
    let mesh = mesh_json(srv).await;
    mesh["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["track"] == track)
        .unwrap_or_else(|| panic!("no track {track} in {mesh}"))
        .clone()
}

/// Whether `/api/v1/mesh` lists the track.
async fn has_track(srv: &TestServer, track: &str) -> bool {
    let mesh = mesh_json(srv).await;
    mesh["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["track"] == track)
}

/// Starts the closing handshake and reads until the server ends the
/// connection.
async fn close_and_wait_end(ws: &mut Ws) {
    ws.close(None).await.expect("close sent");
    loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(ws))
            .await
            .expect("end in time")
        {
            None | Some(Err(_)) => return,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn oversized_object_is_refused_and_closes() {
    let srv = start(meshrelay_server::ServerConfig {
        max_object_bytes: 1000,
        ..config()
    })
    .await;
    let mut publisher = connect(&srv.url("/ingest/t")).await;
    publisher
        .send(Message::Binary(vec![0; 1000].into()))
        .await
        .unwrap();
    publisher
        .send(Message::Binary(vec![0; 1001].into()))
        .await
        .unwrap();
    // Objects still in flight after the refused one are read and discarded,
    // so the Error, the close frame and a clean end all reach the publisher.
    let flood = async {
        for _ in 0..5_000 {
            if publisher
                .feed(Message::Binary(vec![1; 500].into()))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = publisher.flush().await;
    };
    tokio::time::timeout(WAIT, flood)
        .await
        .expect("flood written");
    expect_error(
        &mut publisher,
        "too_large",
        "object exceeds the limit of 1000 bytes",
    )
    .await;
    assert_eq!(expect_closed(&mut publisher).await, Some(1009));
    match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut publisher))
        .await
        .expect("end in time")
    {
        None | Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)) => {}
        other => panic!("expected a clean end of stream, got {other:?}"),
    }
    let mesh = mesh_json(&srv).await;
    // The publisher is gone and nobody else holds the track, so it is dropped.
    assert!(
        mesh["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["track"] != "t"),
        "{mesh}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn invalid_track_in_path_is_a_400() {
    let srv = start(config()).await;
    for path in ["/ws/a..b", "/ingest/a%20b", "/ws/a//b"] {
        let (status, _, _) = http_get(srv.addr, path).await;
        assert!(status == 400, "{path}: {status}");
    }
    srv.stop().await;
}

/// The value of header `name` in a response head, if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn admin_shows_the_effective_capacity_and_keeps_the_claim() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        max_children: 2,
        ..config()
    })
    .await;
    let (_a, _) = register(&srv, "a", "live/x", Some(u32::MAX)).await;
    let (_b, _) = register(&srv, "b", "live/x", Some(0)).await;
    let mesh = mesh_json(&srv).await;
    let peer = |id: &str| {
        let p = mesh["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["peer_id"] == id);
        let p = p.unwrap();
        (p["capacity"].clone(), p["claimed_capacity"].clone())
    };
    assert_eq!(peer("a"), (json!(2), json!(u32::MAX)));
    assert_eq!(peer("b"), (json!(0), json!(0)));
    srv.stop().await;
}

#[tokio::test]
async fn the_admin_api_answers_cors_and_still_wants_its_token() {
    let srv = start(meshrelay_server::ServerConfig {
        admin_token: Some("sesame".into()),
        ..config()
    })
    .await;
    let origin = ("Origin", "http://admin.example.org");
    // The preflight carries no token and is answered.
    let (status, head, _) = http_request(
        srv.addr,
        "OPTIONS",
        "/api/v1/mesh",
        &[
            origin,
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    let methods = header(&head, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("GET"), "{head}");
    let allowed = header(&head, "access-control-allow-headers").unwrap_or_default();
    assert!(
        allowed.to_ascii_lowercase().contains("authorization"),
        "{head}"
    );
    // Without the token: 401, readable by the page.
    let (status, head, _) = http_get_with(srv.addr, "/api/v1/mesh", &[origin]).await;
    assert_eq!(status, 401);
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    // With it: the body, with the header; /metrics alike.
    for path in ["/api/v1/mesh", "/metrics"] {
        let auth = ("Authorization", "Bearer sesame");
        let (status, head, _) = http_get_with(srv.addr, path, &[origin, auth]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&head, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
    }
    srv.stop().await;

    // A list of origins: only those are named back; `none`: no CORS at all.
    for (origins, expected) in [
        (
            meshrelay_server::CorsOrigins::List(vec!["http://ops.example.org".into()]),
            [Some("http://ops.example.org"), None],
        ),
        (meshrelay_server::CorsOrigins::Off, [None, None]),
    ] {
        let srv = start(meshrelay_server::ServerConfig {
            cors_allow_origin: origins,
            ..config()
        })
        .await;
        for (from, want) in ["http://ops.example.org", "http://evil.example.org"]
            .into_iter()
            .zip(expected)
        {
            let (status, head, _) =
                http_get_with(srv.addr, "/api/v1/mesh", &[("Origin", from)]).await;
            assert_eq!(status, 200);
            assert_eq!(header(&head, "access-control-allow-origin"), want, "{from}");
        }
        srv.stop().await;
    }
}

#[tokio::test]
async fn admin_endpoints() {
    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        ..config()
    })
    .await;
    let (_a, _) = register(&srv, "a", "live/x", Some(2)).await;
    let (mut b, _) = register(&srv, "b", "live/x", None).await;
    send(
        &mut b,
        r#"{"type":"ForwardReport","forwarded_frames":1200}"#,
    )
    .await;
    send(&mut b, r#"{"type":"ForwardReport","forwarded_frames":7}"#).await;
    // The reports are handled in order before this error reply.
    send(&mut b, r#"{"type":"Nope"}"#).await;
    expect_error(&mut b, "unknown_type", "unknown message type \"Nope\"").await;
    let mesh = mesh_json(&srv).await;
    assert_eq!(mesh["enabled"], true);
    assert_eq!(mesh["peer_count"], 2);
    assert_eq!(mesh["offload_percentage"], 50.0);
    let mut peers = mesh["peers"].as_array().unwrap().clone();
    peers.sort_by_key(|p| p["peer_id"].as_str().unwrap().to_owned());
    assert_eq!(
        serde_json::Value::Array(peers),
        json!([
            {"peer_id":"a","track":"live/x","role":"Root","parent":null,"depth":0,"intended_children":1,"forwarded_frames":0,"capacity":2,"claimed_capacity":2},
            {"peer_id":"b","track":"live/x","role":"Relay","parent":"a","depth":1,"intended_children":0,"forwarded_frames":7,"capacity":3,"claimed_capacity":null}
        ])
    );
    assert_eq!(
        mesh["tracks"],
        json!([{"track":"live/x","peer_count":2,"root_count":1,"offload_percentage":50.0,
                "objects_published":0,"next_object_id":0,"epoch":EPOCH,"origin_objects_sent":0,"origin_bytes_sent":0,
                "subscribers":0,"publishers":0}])
    );
    let (status, _, body) = http_get(srv.addr, "/api/v1/mesh?peers=false").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["peers"], json!([]));
    assert_eq!(v["peer_count"], 2);

    let (status, _, body) = http_get(srv.addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, head, body) = http_get(srv.addr, "/sdk/meshrelay.js").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/javascript"),
        "{head}"
    );
    assert_eq!(body, include_str!("../../../sdk/js/dist/meshrelay.js"));
    for path in ["/", "/demo"] {
        let (status, head, body) = http_get(srv.addr, path).await;
        assert_eq!(status, 200);
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/html"),
            "{head}"
        );
        assert_eq!(body, include_str!("../../../sdk/js/demo/index.html"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn graceful_stop_sends_close_frames() {
    let srv = start(config()).await;
    let (mut a, _) = register(&srv, "a", "t", None).await;
    let mut egress = connect(&srv.url("/ws/t")).await;
    let mut publisher = connect(&srv.url("/ingest/t")).await;
    let stopping = tokio::spawn(srv.stop());
    assert_eq!(expect_closed(&mut a).await, Some(1001));
    assert_eq!(expect_closed(&mut egress).await, Some(1001));
    assert_eq!(expect_closed(&mut publisher).await, Some(1001));
    stopping.await.unwrap();
}

#[tokio::test]
async fn demo_publisher_streams_on_demo_live() {
    let srv = start(meshrelay_server::ServerConfig {
        demo: true,
        ..config()
    })
    .await;
    let mut ws = connect(&srv.url("/ws/demo/live?from=0")).await;
    let first = next_binary(&mut ws).await;
    assert_eq!(&first[..8], &0u64.to_be_bytes());
    let v: serde_json::Value = serde_json::from_slice(&first[8..]).unwrap();
    assert_eq!(v["seq"], 0);
    // The demo publisher is the track's publisher: nobody else may mix in.
    assert_eq!(
        try_upgrade(srv.addr, "/ingest/demo/live").await.err(),
        Some((409, PUBLISHER_BUSY.to_owned()))
    );
    assert_eq!(track_json(&srv, "demo/live").await["publishers"], 1);
    srv.stop().await;
}

#[tokio::test]
async fn demo_track_forms_a_relay_tree_with_a_few_viewers() {
    let srv = start(meshrelay_server::ServerConfig {
        demo: true,
        ..config()
    })
    .await;
    // One root, two children each on the demo track, whatever the server's limits.
    let (_a, a) = register(&srv, "a", "demo/live", None).await;
    let (_b, b) = register(&srv, "b", "demo/live", Some(5)).await;
    let (_c, c) = register(&srv, "c", "demo/live", None).await;
    let (_d, d) = register(&srv, "d", "demo/live", None).await;
    assert_eq!(
        (&a["role"], &a["parent_id"]),
        (&"Root".into(), &Value::Null)
    );
    assert_eq!((&b["parent_id"], &b["depth"]), (&"a".into(), &1.into()));
    assert_eq!((&c["parent_id"], &c["depth"]), (&"a".into(), &1.into()));
    assert_eq!((&d["parent_id"], &d["depth"]), (&"b".into(), &2.into()));
    // Other tracks keep the server's limits (30 roots by default).
    let (_e, e) = register(&srv, "e", "live/other", None).await;
    let (_f, f) = register(&srv, "f", "live/other", None).await;
    assert_eq!((&e["role"], &f["role"]), (&"Root".into(), &"Root".into()));
    srv.stop().await;
}

#[tokio::test]
async fn lagging_subscriber_is_closed_never_skipped() {
    let srv = start(meshrelay_server::ServerConfig {
        ring_objects: 4,
        ..config()
    })
    .await;
    let mut slow = connect(&srv.url("/ws/t?from=0")).await;
    let mut publisher = connect(&srv.url("/ingest/t")).await;
    // 24 MiB while the reader reads nothing: more than socket buffers hold,
    // so the reader falls out of the 4-object ring.
    for i in 0..24u8 {
        publisher
            .send(Message::Binary(vec![i; 1 << 20].into()))
            .await
            .unwrap();
    }
    let mut expected = 0u64;
    let notice = loop {
        match next_msg(&mut slow).await {
            Message::Binary(b) => {
                assert_eq!(b.len(), 8 + (1 << 20));
                assert_eq!(
                    &b[..8],
                    &expected.to_be_bytes(),
                    "objects in order, none skipped"
                );
                expected += 1;
            }
            Message::Text(t) => break t.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(expected < 24, "the reader should have lagged");
    // The reason names the first object it missed.
    let reason = format!(
        "object {expected} left the ring buffer before this subscriber read it; \
         reconnect with ?from={expected} to resume from the oldest kept object"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&notice).unwrap(),
        json!({"type":"Error","code":"slow_consumer","reason":reason})
    );
    match next_msg(&mut slow).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1013);
            assert_eq!(frame.reason.as_str(), "slow_consumer");
        }
        other => panic!("expected Close 1013, got {other:?}"),
    }
    // Counted: exactly the objects and the text written to this reader.
    let t = track_json(&srv, "t").await;
    assert_eq!(t["origin_objects_sent"], expected);
    assert_eq!(
        t["origin_bytes_sent"],
        expected * (8 + (1 << 20)) + notice.len() as u64
    );
    srv.stop().await;
}

/// The body of the 409 refusing a second publisher on a track.
const PUBLISHER_BUSY: &str =
    "another publisher is publishing on this track; retry once it disconnects\n";

/// The body of the 503 refusing a connection beyond `--max-connections`.
fn too_many_connections(max: usize) -> String {
    format!(
        "the server has reached its connection limit ({max} open WebSocket connections); retry later\n"
    )
}

/// A WebSocket upgrade on a bare TCP socket: the socket once upgraded (a
/// client that answers nothing, pings included), else the refusal's
/// status and body.
async fn try_upgrade(
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<tokio::net::TcpStream, (u16, String)> {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    try_upgrade_on(s, addr, path).await
}

/// [`try_upgrade`] on a connected socket.
async fn try_upgrade_on(
    mut s: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<tokio::net::TcpStream, (u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .expect("upgrade response in time")
            .unwrap();
        assert_eq!(n, 1, "upgrade response cut short");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 101 {
        return Ok(s);
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = vec![0u8; len];
    tokio::time::timeout(WAIT, s.read_exact(&mut body))
        .await
        .expect("body in time")
        .unwrap();
    Err((status, String::from_utf8(body).unwrap()))
}

/// [`try_upgrade`] that must succeed.
async fn raw_upgrade(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    match try_upgrade(addr, path).await {
        Ok(s) => s,
        Err(refused) => panic!("upgrade on {path} refused: {refused:?}"),
    }
}

/// Waits for the server to end a bare-socket client that answers nothing;
/// returns what it received, which must be empty pings only.
async fn dropped_after_pings(raw: &mut tokio::net::TcpStream) {
    let mut bytes = Vec::new();
    let ended = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read_to_end(raw, &mut bytes))
        .await
        .expect("the server drops the silent client");
    assert!(ended.is_ok(), "{ended:?}");
    // Nothing but empty pings came before the end: [0x89, 0x00] each.
    assert!(
        !bytes.is_empty() && bytes.chunks(2).all(|f| f == [0x89, 0]),
        "{bytes:?}"
    );
}

#[tokio::test]
async fn egress_subscriber_that_answers_no_ping_is_dropped() {
    let timeout = std::time::Duration::from_millis(300);
    let srv = start(meshrelay_server::ServerConfig {
        heartbeat_timeout: timeout,
        max_tracks: 2,
        ..config()
    })
    .await;
    // A well-behaved subscriber on track a: reading answers the pings.
    let good = connect(&srv.url("/ws/a")).await;
    let (objects_tx, mut objects) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut good = good;
        while let Some(Ok(msg)) = futures_util::StreamExt::next(&mut good).await {
            if let Message::Binary(b) = msg {
                let _ = objects_tx.send(b.to_vec());
            }
        }
    });
    // A vanished one on idle track b (the track limit is now reached).
    let opened = tokio::time::Instant::now();
    let mut raw = raw_upgrade(srv.addr, "/ws/b").await;
    dropped_after_pings(&mut raw).await;
    assert!(opened.elapsed() >= timeout, "{:?}", opened.elapsed());
    // Its track slot is free: a new track fits under the limit of 2.
    let _c = connect(&srv.url("/ws/c")).await;
    // The subscriber that answers pings is still served.
    let mut publisher = connect(&srv.url("/ingest/a")).await;
    publisher
        .send(Message::Binary(b"still here".to_vec().into()))
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, objects.recv())
        .await
        .expect("object in time");
    assert_eq!(got, Some(framed(0, b"still here")));
    srv.stop().await;
}

#[tokio::test]
async fn second_publisher_is_refused_until_the_first_leaves() {
    let srv = start(config()).await;
    let mut sub = connect(&srv.url("/ws/t?from=0")).await;
    let mut first = connect(&srv.url("/ingest/t")).await;
    assert_eq!(
        try_upgrade(srv.addr, "/ingest/t").await.err(),
        Some((409, PUBLISHER_BUSY.to_owned()))
    );
    // The refused one left nothing behind; the first publishes alone.
    assert_eq!(track_json(&srv, "t").await["publishers"], 1);
    first
        .send(Message::Binary(b"a".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut sub).await, framed(0, b"a"));
    // The slot is free once the server has ended the first connection.
    close_and_wait_end(&mut first).await;
    let mut second = connect(&srv.url("/ingest/t")).await;
    second
        .send(Message::Binary(b"b".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut sub).await, framed(1, b"b"));
    // Other tracks have publishers of their own.
    let _other = connect(&srv.url("/ingest/u")).await;
    srv.stop().await;
}

#[tokio::test]
async fn publisher_that_answers_no_ping_is_dropped_and_frees_its_slot() {
    let timeout = std::time::Duration::from_millis(300);
    let srv = start(meshrelay_server::ServerConfig {
        heartbeat_timeout: timeout,
        ..config()
    })
    .await;
    // A well-behaved publisher on track a: reading answers the pings.
    let good = connect(&srv.url("/ingest/a")).await;
    let (mut good_tx, mut good_rx) = futures_util::StreamExt::split(good);
    tokio::spawn(async move {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut good_rx).await {}
    });
    // A vanished one on track b holds the publisher slot while it lasts.
    let opened = tokio::time::Instant::now();
    let mut silent = raw_upgrade(srv.addr, "/ingest/b").await;
    assert_eq!(
        try_upgrade(srv.addr, "/ingest/b").await.err(),
        Some((409, PUBLISHER_BUSY.to_owned()))
    );
    dropped_after_pings(&mut silent).await;
    assert!(opened.elapsed() >= timeout, "{:?}", opened.elapsed());
    // Its task let go of the track (nobody else held it) and of the slot
    // before the connection ended.
    assert!(!has_track(&srv, "b").await);
    let mut again = raw_upgrade(srv.addr, "/ingest/b").await;
    dropped_after_pings(&mut again).await;
    assert!(opened.elapsed() >= timeout * 2, "{:?}", opened.elapsed());
    // A WebSocket client that is never polled answers no ping either.
    let _unpolled = connect(&srv.url("/ingest/b")).await;
    assert_eq!(track_json(&srv, "b").await["publishers"], 1);
    poll_until("the unpolled publisher dropped", || async {
        !has_track(&srv, "b").await
    })
    .await;
    assert!(opened.elapsed() >= timeout * 3, "{:?}", opened.elapsed());
    let _next = raw_upgrade(srv.addr, "/ingest/b").await;
    // The publisher that answers pings outlived them all and still publishes.
    let mut sub = connect(&srv.url("/ws/a?from=0")).await;
    good_tx
        .send(Message::Binary(b"still here".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next_binary(&mut sub).await, framed(0, b"still here"));
    assert_eq!(track_json(&srv, "a").await["publishers"], 1);
    srv.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503_until_one_closes() {
    let srv = start(meshrelay_server::ServerConfig {
        max_connections: 2,
        ..config()
    })
    .await;
    let _signal = connect(&srv.url("/signal")).await;
    let mut egress = connect(&srv.url("/ws/t")).await;
    assert_eq!(mesh_json(&srv).await["connections"], 2);
    for path in ["/signal", "/ws/t", "/ws/new", "/ingest/t"] {
        assert_eq!(
            try_upgrade(srv.addr, path).await.err(),
            Some((503, too_many_connections(2))),
            "{path}"
        );
    }
    // Refused upgrades hold nothing: no permit, no new track.
    assert_eq!(mesh_json(&srv).await["connections"], 2);
    assert!(!has_track(&srv, "new").await);
    // Plain HTTP is not counted.
    assert_eq!(http_get(srv.addr, "/healthz").await.0, 200);
    close_and_wait_end(&mut egress).await;
    wait_connections(&srv, 1).await;
    let mut publisher = connect(&srv.url("/ingest/t")).await;
    assert_eq!(mesh_json(&srv).await["connections"], 2);
    assert_eq!(
        try_upgrade(srv.addr, "/ws/t").await.err(),
        Some((503, too_many_connections(2)))
    );
    close_and_wait_end(&mut publisher).await;
    wait_connections(&srv, 1).await;
    srv.stop().await;
}

/// The complete frames in bytes a server wrote: `(opcode, payload length)`
/// each; a frame cut short at the end is left out.
fn complete_frames(mut bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut frames = Vec::new();
    loop {
        let [b0, b1, rest @ ..] = bytes else {
            return frames;
        };
        assert_eq!(b1 & 0x80, 0, "server frames are unmasked");
        let (len, rest) = match b1 & 0x7f {
            126 => match rest.split_first_chunk::<2>() {
                Some((n, rest)) => (u16::from_be_bytes(*n) as usize, rest),
                None => return frames,
            },
            127 => match rest.split_first_chunk::<8>() {
                Some((n, rest)) => (u64::from_be_bytes(*n) as usize, rest),
                None => return frames,
            },
            n => (n as usize, rest),
        };
        if rest.len() < len {
            return frames;
        }
        frames.push((b0 & 0x0f, len));
        bytes = &rest[len..];
    }
}

#[tokio::test]
async fn a_write_that_fails_is_not_counted() {
    let srv = start(meshrelay_server::ServerConfig {
        // The shortest stall limit (1 s) and pings the reader never answers.
        heartbeat_timeout: std::time::Duration::from_secs(1),
        ..config()
    })
    .await;
    // A reader that reads nothing until the server has given up on it,
    // with a small receive buffer so the server's writes soon stall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(srv.addr).await.unwrap();
    let mut raw = try_upgrade_on(stream, srv.addr, "/ws/t?from=0")
        .await
        .expect("upgraded");
    let mut publisher = connect(&srv.url("/ingest/t")).await;
    // More than the socket buffers hold, so a write stalls and fails.
    for i in 0..24u8 {
        publisher
            .send(Message::Binary(vec![i; 1 << 20].into()))
            .await
            .unwrap();
    }
    // Reading would unblock the writes: wait for the server to give up first.
    poll_until("the reader dropped", || async {
        track_json(&srv, "t").await["subscribers"] == 0
    })
    .await;
    let mut bytes = Vec::new();
    tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut bytes),
    )
    .await
    .expect("the connection ends")
    .unwrap();
    let frames = complete_frames(&bytes);
    let objects = frames.iter().filter(|&&(opcode, _)| opcode == 0x2).count();
    // Pings (0x9) at most besides the objects: the server gave up on a
    // stalled write, and no Close frame fitted either.
    assert!(
        frames.iter().all(
            |&(opcode, len)| (opcode, len) == (0x2, 8 + (1 << 20)) || (opcode, len) == (0x9, 0)
        ),
        "{frames:?}"
    );
    assert!(objects < 24, "a write should have failed: {frames:?}");
    // Counted: exactly the objects that reached the reader whole.
    let t = track_json(&srv, "t").await;
    assert_eq!(t["origin_objects_sent"], objects);
    assert_eq!(t["origin_bytes_sent"], objects * (8 + (1 << 20)));
    srv.stop().await;
}
