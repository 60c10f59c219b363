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
    for (extra, says) in [
        (&["--track", "/bad"][..], "invalid --track"),
        (&["--peer-prefix", "no spaces"][..], "invalid --peer-prefix"),
        (&["--churn", "2"][..], "--churn must be"),
        (&["--rate", "0"][..], "--rate must be"),
        (&["-n", "0"][..], "--clients must be at least 1"),
        (&["--hold-secs=-1"][..], "--hold-secs must be"),
    ] {
        let mut a = vec!["--url", "ws://127.0.0.1:9/signal"];
        a.extend_from_slice(extra);
        let err = meshrelay_loadgen::run(args(&a))
            .await
            .expect_err(says)
            .to_string();
        assert!(err.contains(says), "{extra:?}: {err}");
    }
}

#[tokio::test]
async fn a_dead_server_fails_the_run_instead_of_hanging() {
    // Port 9 (discard) on loopback: nothing listens, every connect is refused;
    // the run still completes, reports, and fails.
    let err = meshrelay_loadgen::run(args(&[
        "--url",
        "ws://127.0.0.1:9/signal",
        "-n",
        "5",
        "--hold-secs",
        "0",
    ]))
    .await
    .expect_err("nothing registered");
    assert!(err.to_string().contains("no client registered"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_at_the_time_limit() {
    // Accepts connections and never says a word: without the time limit the
    // clients would wait out their hour-long register timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/signal", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let err = meshrelay_loadgen::run(args(&[
        "--url",
        &url,
        "-n",
        "3",
        "--register-timeout-secs",
        "3600",
        "--time-limit-secs",
        "1",
    ]))
    .await
    .expect_err("stopped at the time limit")
    .to_string();
    assert!(err.contains("time limit of 1 s reached"), "{err}");
    held.abort();
}
