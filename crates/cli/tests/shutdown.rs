//! The real binary: SIGTERM closes peers with a close frame and exits 0.

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sigterm_closes_peers_and_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshrelay"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
        .env("MESHRELAY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn meshrelay");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(WAIT, line)
        .await
        .expect("listening line")
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("meshrelay listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/signal"))
        .await
        .unwrap();
    ws.send(Message::Text(
        r#"{"type":"Register","peer_id":"a","track":"t"}"#.into(),
    ))
    .await
    .unwrap();
    let assign = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        assign.to_text().unwrap().contains("AssignParent"),
        "{assign:?}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    let exit = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("meshrelay exits in time")
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn bad_ice_servers_exit_with_code_2() {
    for (args, env) in [
        (
            vec!["serve", "--mesh-ice-servers", "{nope", "--no-demo"],
            None,
        ),
        (vec!["serve", "--no-demo"], Some("[{\"urls\":5}]")),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshrelay"));
        cmd.args(&args).env_remove("MESHRELAY_MESH_ICE_SERVERS");
        if let Some(v) = env {
            cmd.env("LVQR_MESH_ICE_SERVERS", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ice") || err.contains("ICE"), "{err}");
    }
}
