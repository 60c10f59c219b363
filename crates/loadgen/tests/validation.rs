//! The public entry point refuses what it must before opening any socket.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: meshrelay_loadgen::Args,
}

fn args(extra: &[&str]) -> meshrelay_loadgen::Args {
    let mut argv = vec!["meshrelay-loadgen"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).expect("parses").args
}

#[tokio::test]
async fn refuses_non_loopback_targets() {
    for url in [
        "ws://10.1.2.3:8080/signal",
        "ws://192.168.0.10:8080/signal",
        "ws://8.8.8.8/signal",
        "ws://example.org/signal",
        "wss://127.0.0.1:8443/signal",
    ] {
        let err = meshrelay_loadgen::run(args(&["--url", url, "-n", "1"]))
            .await
            .expect_err(url)
            .to_string();
        assert!(
            err.contains("loopback") || err.contains("ws://"),
            "{url}: {err}"
        );
    }
}

#[tokio::test]
async fn refuses_more_clients_than_the_open_file_limit_allows() {
    let err = meshrelay_loadgen::run(args(&[
        "--url",
        "ws://127.0.0.1:9/signal",
        "-n",
        "100000000",
    ]))
    .await
    .expect_err("too many clients")
    .to_string();
    assert!(err.contains("open-file limit"), "{err}");
    assert!(err.contains("or fewer"), "{err}");
}

#[tokio::test]
async fn refuses_invalid_options() {
    for extra in [
        &["--track", "/bad"][..],
        &["--peer-prefix", "no spaces"][..],
        &["--churn", "2"][..],
        &["--rate", "0"][..],
        &["-n", "0"][..],
    ] {
        let mut a = vec!["--url", "ws://127.0.0.1:9/signal"];
        a.extend_from_slice(extra);
        assert!(meshrelay_loadgen::run(args(&a)).await.is_err(), "{extra:?}");
    }
}

#[tokio::test]
async fn a_dead_server_fails_every_client_within_the_time_limit() {
    // Port 9 (discard) on loopback: nothing listens, every connect is refused;
    // the run still completes, reports, and fails instead of hanging.
    let started = std::time::Instant::now();
    let err = meshrelay_loadgen::run(args(&[
        "--url",
        "ws://127.0.0.1:9/signal",
        "-n",
        "5",
        "--hold-secs",
        "0",
        "--time-limit-secs",
        "20",
    ]))
    .await
    .expect_err("nothing registered");
    assert!(err.to_string().contains("no client registered"), "{err}");
    assert!(started.elapsed().as_secs() < 20);
}
