//! The whole bench, and the rate search, against the real meshrelay server
//! on loopback.

use std::net::SocketAddr;

use crate::bench;
use crate::fake_server::plan;

/// Starts `meshrelay serve` in-process (2 roots, 2 children each); returns
/// its `/signal` URL. It runs until the test's runtime ends.
async fn start() -> String {
    let server = meshrelay_server::Server::bind(meshrelay_server::ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        root_peer_count: 2,
        max_children: 2,
        demo: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    format!("ws://{addr}/signal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_against_meshrelay() {
    let url = start().await;
    let out = bench::execute(&plan(&url, 60, 0.25)).await;
    println!("{}", out.table);
    let r = &out.registration;
    assert_eq!(r.registered, 60, "{}", out.table);
    assert_eq!(r.latency.count, 60);
    assert!(out.tree_held.ok(), "{}", out.table);
    assert_eq!(out.tree_held.roots, 2);
    assert_eq!(out.tree_held.checked, 60);
    let (ch, tree) = out.churn.as_ref().expect("churn ran");
    assert_eq!(ch.clean + ch.abrupt, 15);
    assert!(ch.orphans > 0, "{}", out.table);
    assert_eq!(ch.orphans_retold, ch.orphans, "{}", out.table);
    // Who is owed a PeerLeft is read off the pre-churn tree; a peer moved
    // by an earlier leave of the same churn legitimately hears from its new
    // neighbours instead (the server's socket tests check PeerLeft exactly).
    assert!(ch.peer_left_received > 0, "{}", out.table);
    assert!(!ch.timed_out, "{}", out.table);
    assert_eq!(ch.lost, 0);
    assert!(tree.ok(), "{}", out.table);
    assert_eq!(tree.checked, 45);
    assert_eq!(out.clean_close_acked, ch.clean as u64, "{}", out.table);
    assert!(out.table.contains("Register -> AssignParent"));
    assert!(out.problems().is_empty(), "{:?}", out.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_search_steps_up_until_a_step_fails_or_the_cap() {
    let url = start().await;
    let mut p = plan(&url, 30, 0.0);
    let search = crate::args::Search {
        max_p99_ms: 1000.0,
        step: 2.0,
        max_rate: 4000.0,
        max_steps: 3,
    };
    p.rate = 1000.0;
    let out = crate::search::execute(&p, search).await;
    let table = crate::search::render(&p, &search, &out);
    println!("{table}");
    let n = out.steps.len();
    assert!((1..=3).contains(&n), "{table}");
    let offered = [1000.0, 2000.0, 4000.0];
    for (i, s) in out.steps.iter().enumerate() {
        // Every client of every step registers with a correct server;
        // whether a step counts as sustained also depends on the rate it
        // achieved on this machine.
        assert_eq!(s.registration.launched, 30, "{table}");
        assert_eq!(s.registration.registered, 30, "{table}");
        assert!(
            (s.registration.offered_rate - offered[i]).abs() < 1.0,
            "{table}"
        );
        if i + 1 < n {
            assert_eq!(s.verdict, None, "only the last step may fail: {table}");
        }
    }
    match &out.steps[n - 1].verdict {
        None => {
            assert_eq!(n, 3, "sustained steps go on up to --max-rate: {table}");
            assert_eq!(out.best, Some(4000.0));
            assert!(out.reached_max);
            assert!(table.contains("(reached --max-rate)"));
            assert!(table.contains("highest sustained registration rate: 4000 /s"));
        }
        Some(v) => {
            assert_eq!(out.best, (n > 1).then(|| offered[n - 2]), "{table}");
            assert!(!out.reached_max);
            assert!(table.contains(v.as_str()), "{table}");
        }
    }
}
