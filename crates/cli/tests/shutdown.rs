//! The real binary: SIGTERM and SIGINT close peers with a close frame and
//! exit 0; the demo publisher follows its flags and environment variables.

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// A running `meshrelay serve` on a free port.
struct Serve {
    child: Child,
    addr: String,
    stdout: BufReader<ChildStdout>,
}

/// Starts `meshrelay serve --listen 127.0.0.1:0 <args>` with only `env`
/// set, and reads the line that names the bound address.
async fn serve(args: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshrelay"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_clear()
        .env("MESHRELAY_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn meshrelay");
    let stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        (line, stdout)
    });
    let (line, stdout) = tokio::time::timeout(WAIT, first)
        .await
        .expect("listening line")
        .unwrap();
    let addr = line
        .strip_prefix("meshrelay listening on http://")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Serve {
        child,
        addr,
        stdout,
    }
}

impl Serve {
    /// Sends `signal` (`TERM`, `INT`) to the server.
    fn kill(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns its code and everything printed on
    /// stdout after the listening line.
    async fn exit(self) -> (Option<i32>, String) {
        let Serve {
            mut child,
            mut stdout,
            ..
        } = self;
        let waited = tokio::task::spawn_blocking(move || {
            let mut rest = String::new();
            stdout.read_to_string(&mut rest).unwrap();
            (child.wait().unwrap().code(), rest)
        });
        tokio::time::timeout(WAIT, waited)
            .await
            .expect("meshrelay exits in time")
            .unwrap()
    }
}

/// A registered peer gets Close 1001 on `signal` and the process exits 0.
async fn signal_closes_peers_and_exits_zero(signal: &str) {
    let server = serve(&["--no-demo"], &[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/signal", server.addr))
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
    let mut assign: serde_json::Value = serde_json::from_str(assign.to_text().unwrap()).unwrap();
    // The binary gives each track a random epoch: 16 hex digits.
    let epoch = assign["epoch"].take();
    let epoch = epoch.as_str().expect("an epoch");
    assert!(
        epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit()),
        "{epoch}"
    );
    assert_eq!(
        assign,
        serde_json::json!({"type":"AssignParent","peer_id":"a","role":"Root","parent_id":null,
                           "depth":0,"ice_servers":[],"next_object_id":0,"epoch":null})
    );

    server.kill(signal);
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close code"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1001);
    assert_eq!(close.reason.as_str(), "server shutting down");
    assert_eq!(server.exit().await, (Some(0), String::new()));
}

#[tokio::test]
async fn sigterm_closes_peers_and_exits_zero() {
    signal_closes_peers_and_exits_zero("TERM").await;
}

#[tokio::test]
async fn sigint_closes_peers_and_exits_zero() {
    signal_closes_peers_and_exits_zero("INT").await;
}

#[tokio::test]
async fn demo_runs_unless_a_flag_or_variable_turns_it_off() {
    let on = |addr: &str| format!("demo: publishing on track demo/live; open http://{addr}/demo\n");
    for (args, env, demo) in [
        (&[][..], &[][..], true),
        (&[], &[("MESHRELAY_DEMO", "true")], true),
        (&[], &[("MESHRELAY_DEMO", "false")], false),
        (&[], &[("MESHRELAY_DEMO", "0")], false),
        (&[], &[("MESHRELAY_NO_DEMO", "true")], false),
        (&[], &[("MESHRELAY_NO_DEMO", "false")], true),
        (&["--demo=no"], &[], false),
        (&["--demo", "--no-demo"], &[], false),
        (&["--no-demo", "--demo"], &[], false),
        // The command line beats its own variable.
        (&["--demo"], &[("MESHRELAY_DEMO", "false")], true),
        (&["--demo=false"], &[("MESHRELAY_DEMO", "true")], false),
        // Off wins between the two flags, never an error.
        (&["--no-demo"], &[("MESHRELAY_DEMO", "true")], false),
        (&["--demo"], &[("MESHRELAY_NO_DEMO", "true")], false),
    ] {
        let server = serve(args, env).await;
        let expected = if demo {
            on(&server.addr)
        } else {
            String::new()
        };
        server.kill("TERM");
        assert_eq!(server.exit().await, (Some(0), expected), "{args:?} {env:?}");
    }
}

#[test]
fn bad_ice_servers_exit_with_code_2() {
    for (args, env, stderr) in [
        (
            vec!["serve", "--mesh-ice-servers", "{nope", "--no-demo"],
            None,
            "error: invalid value '{nope' for '--mesh-ice-servers <JSON>': \
             not valid JSON: key must be a string at line 1 column 2\n\n\
             For more information, try '--help'.\n",
        ),
        (
            vec!["serve", "--no-demo"],
            Some("[{\"urls\":5}]"),
            "error: invalid LVQR_MESH_ICE_SERVERS: \
             entry 0 needs \"urls\": a non-empty string or array of strings\n",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshrelay"));
        cmd.args(&args).env_clear();
        if let Some(v) = env {
            cmd.env("LVQR_MESH_ICE_SERVERS", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{args:?}");
    }
}

#[test]
fn demo_flag_values_are_booleans() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshrelay"))
        .args(["serve", "--demo=maybe"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: invalid value 'maybe' for '--demo[=<BOOL>]'"),
        "{err}"
    );
}

/// Whether a WebSocket upgrade on `url` is refused with HTTP 503.
async fn refused_503(url: &str) -> bool {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status() == 503,
        Err(e) => panic!("{url}: {e}"),
        Ok(_) => false,
    }
}

#[tokio::test]
async fn max_connections_comes_from_the_flag_or_the_variable() {
    for (args, env) in [
        (&["--no-demo", "--max-connections", "1"][..], &[][..]),
        (&["--no-demo"], &[("MESHRELAY_MAX_CONNECTIONS", "1")]),
    ] {
        let server = serve(args, env).await;
        let url = format!("ws://{}/signal", server.addr);
        let (_first, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        assert!(refused_503(&url).await, "{args:?} {env:?}");
        server.kill("TERM");
        assert_eq!(server.exit().await, (Some(0), String::new()));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_meshrelay"))
        .args(["serve", "--max-connections", "0"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
