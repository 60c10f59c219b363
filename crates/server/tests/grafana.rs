//! The Grafana dashboard in `deploy/grafana/` queries only series that a
//! real `/metrics` scrape has: every metric name its PromQL references
//! (panel `expr`s and template variable queries) is a sample name after
//! traffic that gives every series a sample.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/grafana/meshrelay.json"
);

/// Every PromQL string of the dashboard: panel targets' `expr`, template
/// variables' `query` and `definition`.
fn promql(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => promql(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| promql(v, out)),
        _ => {}
    }
}

/// The metric names a PromQL expression references: its identifiers that
/// start with `meshrelay_` (label names and functions never do).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("meshrelay_") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !preceded {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.5, sum by (le) (rate(meshrelay_a_bucket{x=\"meshrelay_no\"}[5m]))) / meshrelay_b"
        ),
        ["meshrelay_a_bucket", "meshrelay_no", "meshrelay_b"]
    );
}

#[tokio::test]
async fn every_series_the_dashboard_queries_is_exported() {
    let text = std::fs::read_to_string(DASHBOARD).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    promql(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let wanted: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();

    let srv = start(meshrelay_server::ServerConfig {
        root_peer_count: 1,
        ..config()
    })
    .await;
    let _kept = traffic(&srv, "live/g").await;
    let (status, _, body) = http_get(srv.addr, "/metrics").await;
    assert_eq!(status, 200);
    let exported: BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not in /metrics:\n{body}"
    );
    // What the issue asks the dashboard to show.
    for name in [
        "meshrelay_track_peers",
        "meshrelay_track_roots",
        "meshrelay_track_offload_ratio",
        "meshrelay_origin_out_bytes_total",
        "meshrelay_joins_total",
        "meshrelay_leaves_total",
        "meshrelay_reassignments_total",
        "meshrelay_register_duration_seconds_bucket",
        "meshrelay_replan_duration_seconds_bucket",
        "meshrelay_errors_total",
    ] {
        assert!(wanted.contains(name), "the dashboard does not show {name}");
    }
    srv.stop().await;
}
