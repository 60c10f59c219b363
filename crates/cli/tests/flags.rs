//! `meshrelay serve` refuses limits of 0, which would refuse every peer,
//! message or object.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const COUNT_FLAGS: [(&str, &str); 10] = [
    ("--max-peers", "MESHRELAY_MAX_PEERS"),
    ("--mesh-root-peer-count", "MESHRELAY_MESH_ROOT_PEER_COUNT"),
    ("--mesh-max-depth", "MESHRELAY_MESH_MAX_DEPTH"),
    ("--signal-queue-bytes", "MESHRELAY_SIGNAL_QUEUE_BYTES"),
    ("--ring-bytes", "MESHRELAY_RING_BYTES"),
    ("--ring-bytes-total", "MESHRELAY_RING_BYTES_TOTAL"),
    ("--max-signal-bytes", "MESHRELAY_MAX_SIGNAL_BYTES"),
    ("--max-object-bytes", "MESHRELAY_MAX_OBJECT_BYTES"),
    ("--max-peers-per-track", "MESHRELAY_MAX_PEERS_PER_TRACK"),
    ("--max-peers-total", "MESHRELAY_MAX_PEERS_TOTAL"),
];

fn meshrelay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshrelay"));
    for (_, env) in COUNT_FLAGS {
        cmd.env_remove(env);
    }
    cmd.env("MESHRELAY_LOG", "warn");
    cmd
}

#[test]
fn zero_is_refused_at_parse_time_by_flag_and_by_env() {
    for (flag, env) in COUNT_FLAGS {
        let by_flag = meshrelay()
            .args(["serve", "--no-demo", "--listen", "127.0.0.1:0", flag, "0"])
            .output()
            .unwrap();
        let by_env = meshrelay()
            .args(["serve", "--no-demo", "--listen", "127.0.0.1:0"])
            .env(env, "0")
            .output()
            .unwrap();
        for out in [by_flag, by_env] {
            assert_eq!(out.status.code(), Some(2), "{flag}");
            assert!(out.stdout.is_empty(), "{flag}: the server started");
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().next().unwrap_or_default();
            let want = format!("error: invalid value '0' for '{flag} <");
            assert!(first.starts_with(&want), "{flag}: {err}");
            assert!(first.contains(": 0 is not in 1.."), "{flag}: {err}");
        }
    }
}

#[test]
fn one_is_accepted() {
    let mut cmd = meshrelay();
    cmd.args(["serve", "--no-demo", "--listen", "127.0.0.1:0"]);
    for (flag, _) in COUNT_FLAGS {
        cmd.args([flag, "1"]);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("meshrelay listening on http://127.0.0.1:"),
        "{line:?}"
    );
    // Parsed and bound; graceful shutdown is tests/shutdown.rs's business.
    child.kill().unwrap();
    child.wait().unwrap();
}
