//! Test harness: an in-process server on 127.0.0.1:0 and small clients.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use meshrelay_server::{Server, ServerConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The epoch every track of a test server reports (see [`config`]).
pub const EPOCH: &str = "e";

/// Longest any single awaited event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server run");
    }
}

pub fn config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        demo: false,
        fixed_epoch: Some(EPOCH.into()),
        ..ServerConfig::default()
    }
}

pub async fn start(config: ServerConfig) -> TestServer {
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        stop: Some(stop),
        task,
    }
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

/// Connects offering a subprotocol; returns the socket and the echoed one.
pub async fn connect_with_protocol(
    url: &str,
    protocol: &str,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocol).unwrap(),
    );
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect in time")?;
    let echoed = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, echoed))
}

pub async fn send(ws: &mut Ws, text: impl Into<String>) {
    ws.send(Message::Text(text.into().into()))
        .await
        .expect("send");
}

/// The next data message (pings are answered by tungstenite while reading).
pub async fn next_msg(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("no socket error");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

/// The next text message, parsed.
pub async fn recv_json(ws: &mut Ws) -> Value {
    match next_msg(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON text"),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Asserts the next message is exactly this `Error`.
pub async fn expect_error(ws: &mut Ws, code: &str, reason: &str) {
    assert_eq!(
        recv_json(ws).await,
        serde_json::json!({"type": "Error", "code": code, "reason": reason})
    );
}

/// Asserts the server closes the socket (close frame or end of stream).
pub async fn expect_closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            None | Some(Err(_)) => return None,
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("expected a close, got {other:?}"),
        }
    }
}

/// A `Register` stating what the meshrelay SDK states: it reads the origin
/// on its own and keeps its link on a new depth or role.
pub fn register_json(peer: &str, track: &str, capacity: Option<u32>) -> String {
    register_text(peer, track, capacity, r#","features":["origin","updates"]"#)
}

/// A `Register` as LVQR's client sends it: no features.
pub fn register_json_lvqr(peer: &str, track: &str, capacity: Option<u32>) -> String {
    register_text(peer, track, capacity, "")
}

fn register_text(peer: &str, track: &str, capacity: Option<u32>, features: &str) -> String {
    let c = capacity.map_or(String::new(), |c| format!(r#","capacity":{c}"#));
    format!(r#"{{"type":"Register","peer_id":"{peer}","track":"{track}"{c}{features}}}"#)
}

/// Connects, registers as the meshrelay SDK does, and returns the socket
/// and its `AssignParent`.
pub async fn register(
    srv: &TestServer,
    peer: &str,
    track: &str,
    capacity: Option<u32>,
) -> (Ws, Value) {
    register_with(srv, register_json(peer, track, capacity)).await
}

/// Connects, registers as LVQR's client does, and returns the socket and
/// its `AssignParent`.
pub async fn register_lvqr(
    srv: &TestServer,
    peer: &str,
    track: &str,
    capacity: Option<u32>,
) -> (Ws, Value) {
    register_with(srv, register_json_lvqr(peer, track, capacity)).await
}

async fn register_with(srv: &TestServer, register: String) -> (Ws, Value) {
    let mut ws = connect(&srv.url("/signal")).await;
    send(&mut ws, register).await;
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AssignParent", "{v}");
    (ws, v)
}

pub fn assign(
    peer: &str,
    role: &str,
    parent: Option<&str>,
    depth: u32,
    next_object_id: u64,
) -> Value {
    serde_json::json!({
        "type": "AssignParent",
        "peer_id": peer,
        "role": role,
        "parent_id": parent,
        "depth": depth,
        "ice_servers": [],
        "next_object_id": next_object_id,
        "epoch": EPOCH,
    })
}

/// A plain HTTP/1.1 GET; returns (status, headers, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http_get_with(addr, path, &[]).await
}

/// [`http_get`] with extra request headers.
pub async fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    http_request(addr, "GET", path, headers).await
}

/// A plain HTTP/1.1 request with this method; returns (status, headers, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

pub async fn mesh_json(srv: &TestServer) -> Value {
    let (status, _, body) = http_get(srv.addr, "/api/v1/mesh").await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).expect("mesh JSON")
}

/// Polls server state (every 5 ms, for at most [`WAIT`]) until `done`:
/// for what a server task does after the client can last observe it.
pub async fn poll_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut every = tokio::time::interval(std::time::Duration::from_millis(5));
    loop {
        every.tick().await;
        if done().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in time: {what}"
        );
    }
}

/// Waits until `/api/v1/mesh` counts `n` connections: a closed
/// connection's permit is released by its server task once the socket is
/// gone, which the client cannot observe.
pub async fn wait_connections(srv: &TestServer, n: u64) {
    poll_until("the connection count", || async {
        mesh_json(srv).await["connections"] == n
    })
    .await;
}

/// What [`traffic`] keeps open, so its track stays alive.
pub struct Traffic {
    pub peers: Vec<Ws>,
    pub publisher: Ws,
}

/// Traffic on `track` that gives every series a sample, on a server with
/// one root per track: two registrations, the root leaving (so its child is
/// re-planned: a second `AssignParent`), a bad message (an error), two
/// objects published and read back from `/ws`.
pub async fn traffic(srv: &TestServer, track: &str) -> Traffic {
    let (mut p1, _) = register(srv, &format!("{}-1", track.replace('/', "-")), track, None).await;
    let (mut p2, first) =
        register(srv, &format!("{}-2", track.replace('/', "-")), track, None).await;
    assert_eq!(
        first["role"], "Relay",
        "the server has one root per track: {first}"
    );
    p1.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, p1.next())
        .await
        .expect("the root's stream ends")
    {}
    // A PeerLeft, then the new place.
    loop {
        let v = recv_json(&mut p2).await;
        if v["type"] == "AssignParent" {
            break;
        }
    }
    let (mut bad, _) = register(srv, &format!("{}-3", track.replace('/', "-")), track, None).await;
    send(&mut bad, "nope").await;
    assert_eq!(recv_json(&mut bad).await["type"], "Error");

    let mut egress = connect(&srv.url(&format!("/ws/{track}?from=0"))).await;
    let mut publisher = connect(&srv.url(&format!("/ingest/{track}"))).await;
    for payload in [&b"abc"[..], &b"defgh"[..]] {
        publisher
            .send(Message::Binary(payload.to_vec().into()))
            .await
            .unwrap();
        assert!(matches!(next_msg(&mut egress).await, Message::Binary(_)));
    }
    egress.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, egress.next())
        .await
        .expect("the egress stream ends")
    {}
    Traffic {
        peers: vec![p2, bad],
        publisher,
    }
}

/// Runs `promtool check metrics` on `exposition`: it must exit 0 and say
/// nothing (a lint warning is a line). Fails, rather than skips, when
/// promtool is missing.
pub fn promtool_check(exposition: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run promtool ({e}): install Debian's `prometheus` package \
             (apt-get install prometheus; ./scripts/test-all does it when /usr/bin/promtool is missing)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}\n{said}\non:\n{exposition}",
        out.status
    );
}

/// Every `# TYPE` line's family has one `# HELP` line, before it.
pub fn assert_help_for_every_family(body: &str) {
    let mut helped = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("a HELP text");
            assert!(!help.trim().is_empty(), "{line}");
            assert!(helped.insert(name), "two HELP lines for {name}:\n{body}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helped.contains(name), "no HELP before {line}:\n{body}");
        }
    }
}

/// The value of the sample `series` (name and labels, exactly).
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}
