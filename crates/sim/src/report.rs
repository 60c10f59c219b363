//! The text and JSON reports of one run or of several seeds.
//!
//! Everything here is a function of the deterministic figures, except the
//! timing section, which is printed only when asked for and is headed as
//! wall-clock.

use crate::metrics::{Quantiles, Summary, TimingSummary};
use crate::model::RunResult;
use serde::Serialize;
use std::fmt::Write as _;

/// Most rows of the time series the text report prints.
const SERIES_ROWS: usize = 24;

fn thousands(n: f64) -> String {
    let v = n.round() as i64;
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 {
        out.insert(0, '-');
    }
    out
}

fn gb(bytes: f64) -> String {
    format!("{:.2} GB", bytes / 1e9)
}

fn q_line(q: &Quantiles, unit: &str) -> String {
    format!(
        "p50 {:.1} {unit}, p99 {:.1} {unit}, max {:.1} {unit} over {}",
        q.p50,
        q.p99,
        q.max,
        thousands(q.count as f64)
    )
}

/// The text report of one run; `timing` adds the wall-clock section.
pub fn text(result: &RunResult, timing: bool) -> String {
    let s = &result.summary;
    let sc = &result.scenario;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "meshrelay sim: policy {}, seed {}, repair {}, {} s simulated",
        s.policy,
        s.seed,
        if s.repair { "on" } else { "off" },
        s.duration_s
    );
    let _ = writeln!(out, "\nscenario (as a file for --scenario):");
    for line in sc.to_toml().lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "\ntime series:");
    let _ = writeln!(
        out,
        "  {:>8} {:>9} {:>6} {:>7} {:>7} {:>5} {:>13} {:>12} {:>9}",
        "t_s",
        "peers",
        "roots",
        "waiting",
        "refused",
        "depth",
        "origin_Mbit/s",
        "repair_Mbit/s",
        "offload_%"
    );
    let every = result.series.len().div_ceil(SERIES_ROWS).max(1);
    for (k, p) in result.series.iter().enumerate() {
        if !(k + 1).is_multiple_of(every) && k + 1 != result.series.len() {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:>8.0} {:>9} {:>6} {:>7} {:>7} {:>5} {:>13.2} {:>12.3} {:>9.3}",
            p.t_s,
            p.peers,
            p.roots,
            p.waiting,
            p.refused,
            p.max_depth,
            p.origin_bps / 1e6,
            p.repair_bps / 1e6,
            p.byte_offload * 100.0
        );
    }
    summary_text(&mut out, s, sc.hop_delay_ms);
    if timing {
        timing_text(&mut out, &result.timing);
    }
    out
}

fn summary_text(out: &mut String, s: &Summary, hop_delay_ms: f64) {
    let _ = writeln!(out, "\nsummary:");
    let row = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "  {k:<26} {v}");
    };
    row(
        out,
        "viewers",
        format!(
            "mean {}, peak {}; {} joins",
            thousands(s.mean_viewers),
            thousands(s.peak_viewers as f64),
            thousands(s.joins as f64)
        ),
    );
    row(
        out,
        "refused joins",
        format!(
            "{} attempts by {} viewers, {} viewer-s unserved",
            thousands(s.refused_joins as f64),
            thousands(s.refused_viewers as f64),
            thousands(s.refused_viewer_s)
        ),
    );
    row(
        out,
        "departures",
        format!(
            "{} ({} abrupt)",
            thousands(s.departures as f64),
            thousands(s.abrupt_departures as f64)
        ),
    );
    row(
        out,
        "roots",
        format!(
            "mean {:.1}; waiting peers: peak {}, {} peer-s",
            s.mean_roots,
            s.peak_waiting,
            thousands(s.waiting_peer_s)
        ),
    );
    row(
        out,
        "origin egress",
        format!(
            "mean {:.2} Mbit/s, peak {:.2} Mbit/s (a sample interval)",
            s.mean_origin_bps / 1e6,
            s.peak_origin_bps / 1e6
        ),
    );
    row(
        out,
        "origin bytes",
        format!(
            "{}: roots {}, waiting {}, repair {}",
            gb(s.origin_bytes),
            gb(s.origin_root_bytes),
            gb(s.origin_waiting_bytes),
            gb(s.repair_bytes)
        ),
    );
    row(
        out,
        "delivered",
        format!(
            "{}; byte offload {:.3}%",
            gb(s.delivered_bytes),
            s.byte_offload * 100.0
        ),
    );
    row(
        out,
        "depth",
        format!(
            "max {} at the end, {} seen (relay latency {:.0} ms at {} hops)",
            s.max_depth_end,
            s.max_depth_seen,
            s.max_depth_seen as f64 * hop_delay_ms,
            s.max_depth_seen
        ),
    );
    row(
        out,
        "lost objects",
        format!(
            "{:.2} per viewer-hour without repair; {} lost in this run",
            s.lost_per_viewer_hour_without_repair,
            thousands(s.lost_objects as f64)
        ),
    );
    row(
        out,
        "repair",
        format!(
            "{:.3} MB per viewer-hour read from the origin's ring{}",
            s.repair_bytes_per_viewer_hour / 1e6,
            if s.repair { "" } else { " (off: not sent)" }
        ),
    );
    row(
        out,
        "per departure",
        format!(
            "{:.3} AssignParent + {:.3} PeerLeft = {:.3} messages ({:.3} more AssignParent from joins and ticks)",
            s.assign_parent_per_departure,
            s.peer_left_per_departure,
            s.assign_parent_per_departure + s.peer_left_per_departure,
            s.other_assign_parent_per_departure
        ),
    );
    row(
        out,
        "time without parent",
        format!(
            "{}; {:.3} s per viewer-hour",
            q_line(&s.time_without_parent_ms, "ms"),
            s.time_without_parent_s_per_viewer_hour
        ),
    );
    let _ = writeln!(out, "\ndepth histogram at the end:");
    let total: u64 = s.depth_histogram.iter().sum();
    for (d, &n) in s.depth_histogram.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {d:>3} {:>10} {:>6.2}%",
            thousands(n as f64),
            n as f64 * 100.0 / total.max(1) as f64
        );
    }
}

fn timing_text(out: &mut String, t: &TimingSummary) {
    let _ = writeln!(
        out,
        "\nplanner time per operation (wall clock, NOT deterministic):"
    );
    let _ = writeln!(out, "  join    {}", q_line(&t.join_us, "us"));
    let _ = writeln!(out, "  leave   {}", q_line(&t.leave_us, "us"));
    let _ = writeln!(out, "  tick    {}", q_line(&t.tick_us, "us"));
    let _ = writeln!(out, "  whole run {:.2} s", t.run_s);
}

#[derive(Serialize)]
struct RunJson<'a> {
    scenario_toml: String,
    summary: &'a Summary,
    series: &'a [crate::metrics::SamplePoint],
    #[serde(skip_serializing_if = "Option::is_none")]
    timing_non_deterministic: Option<&'a TimingSummary>,
}

/// The JSON report of one run; `timing` adds `timing_non_deterministic`.
pub fn json(result: &RunResult, timing: bool) -> String {
    let doc = RunJson {
        scenario_toml: result.scenario.to_toml(),
        summary: &result.summary,
        series: &result.series,
        timing_non_deterministic: timing.then_some(&result.timing),
    };
    serde_json::to_string_pretty(&doc).expect("plain data serialises") + "\n"
}

/// Two-sided 95% Student t critical values for 1..=30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Mean and half-width of the 95% confidence interval of the mean
/// (Student t; 0 for a single value).
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

/// One headline figure over several seeds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Headline {
    /// What it is.
    pub name: String,
    /// Mean over the seeds.
    pub mean: f64,
    /// Half-width of its 95% confidence interval.
    pub ci95: f64,
    /// Each seed's value, in seed order.
    pub values: Vec<f64>,
}

/// The headline figures of several runs, mean ± 95% CI.
pub fn headlines(results: &[RunResult]) -> Vec<Headline> {
    let Some(first) = results.first() else {
        return Vec::new();
    };
    first
        .summary
        .headline()
        .iter()
        .enumerate()
        .map(|(k, (name, _))| {
            let values: Vec<f64> = results.iter().map(|r| r.summary.headline()[k].1).collect();
            let (mean, ci95) = mean_ci95(&values);
            Headline {
                name: name.to_string(),
                mean,
                ci95,
                values,
            }
        })
        .collect()
}

/// The text report of several seeds: the headline table, then each run's
/// summary line.
pub fn multi_text(results: &[RunResult], timing: bool) -> String {
    let mut out = String::new();
    let Some(first) = results.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "meshrelay sim: policy {}, {} runs, seeds {}..={}, repair {}, {} s simulated each",
        first.summary.policy,
        results.len(),
        first.summary.seed,
        results
            .last()
            .map_or(first.summary.seed, |r| r.summary.seed),
        if first.summary.repair { "on" } else { "off" },
        first.summary.duration_s
    );
    let _ = writeln!(
        out,
        "\nscenario (as a file for --scenario; seed is the first):"
    );
    for line in first.scenario.to_toml().lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "\nheadline figures, mean ± 95% confidence interval:");
    for h in headlines(results) {
        let _ = writeln!(out, "  {:<42} {:>14.3} ± {:.3}", h.name, h.mean, h.ci95);
    }
    if timing {
        let _ = writeln!(
            out,
            "\nplanner time per operation (wall clock, NOT deterministic), per run:"
        );
        for r in results {
            let t = &r.timing;
            let _ = writeln!(
                out,
                "  seed {}: join p50 {:.2} us, leave p50 {:.2} us p99 {:.2} us, run {:.2} s",
                r.summary.seed, t.join_us.p50, t.leave_us.p50, t.leave_us.p99, t.run_s
            );
        }
    }
    out
}

#[derive(Serialize)]
struct MultiJson<'a> {
    scenario_toml: String,
    headline: Vec<Headline>,
    runs: Vec<&'a Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timing_non_deterministic: Option<Vec<&'a TimingSummary>>,
}

/// The JSON report of several seeds.
pub fn multi_json(results: &[RunResult], timing: bool) -> String {
    let doc = MultiJson {
        scenario_toml: results
            .first()
            .map(|r| r.scenario.to_toml())
            .unwrap_or_default(),
        headline: headlines(results),
        runs: results.iter().map(|r| &r.summary).collect(),
        timing_non_deterministic: timing.then(|| results.iter().map(|r| &r.timing).collect()),
    };
    serde_json::to_string_pretty(&doc).expect("plain data serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_interval_of_known_values() {
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        // s = 1, n = 3, t(2) = 4.303.
        assert!((h - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(mean_ci95(&[5.0]), (5.0, 0.0));
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(12.0), "12");
    }
}
