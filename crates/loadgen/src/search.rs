//! Maximum-rate search: offer increasing registration rates until the
//! server stops keeping up.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::sleep;

use crate::args::{Plan, Search};
use crate::bench::{client_config, shutdown};
use crate::fleet::Fleet;
use crate::register::{self, Registration};
use crate::stats::ms;

/// Pause between steps so the server drains the previous step's closes.
const BETWEEN_STEPS: Duration = Duration::from_secs(1);

/// Achieved rate below this share of the offered one ends the search.
const MIN_ACHIEVED_SHARE: f64 = 0.95;

/// Why a step does not count as sustained, if it does not.
pub(crate) fn verdict(r: &Registration, s: &Search) -> Option<String> {
    if r.failed > 0 || r.pending > 0 {
        return Some(format!("{} failed, {} pending", r.failed, r.pending));
    }
    let p99_ms = r.latency.p99 as f64 / 1000.0;
    if p99_ms > s.max_p99_ms {
        return Some(format!("p99 {p99_ms:.3} ms > {} ms", s.max_p99_ms));
    }
    if r.achieved_rate < MIN_ACHIEVED_SHARE * r.offered_rate {
        return Some(format!(
            "achieved {:.0}/s < {:.0}% of offered",
            r.achieved_rate,
            MIN_ACHIEVED_SHARE * 100.0
        ));
    }
    None
}

/// One step of a search: what was offered, what came of it.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) registration: Registration,
    /// Why the step was not sustained; `None` if it was.
    pub(crate) verdict: Option<String>,
}

/// A finished search.
#[derive(Debug)]
pub(crate) struct SearchOutcome {
    /// Every step run, in order; only the last may have a verdict.
    pub(crate) steps: Vec<Step>,
    /// The highest offered rate sustained, if any.
    pub(crate) best: Option<f64>,
    /// Whether the last step sustained `--max-rate` itself.
    pub(crate) reached_max: bool,
}

/// Runs the search and prints one row per step and the result.
pub(crate) async fn run(plan: &Plan, search: Search) -> anyhow::Result<()> {
    let outcome = execute(plan, search).await;
    println!("{}", render(plan, &search, &outcome));
    Ok(())
}

/// Runs the search: steps of rising offered rate until one is not sustained,
/// `--max-rate` is reached or `--max-steps` have run.
pub(crate) async fn execute(plan: &Plan, search: Search) -> SearchOutcome {
    let cfg = client_config(plan);
    let mut outcome = SearchOutcome {
        steps: Vec::new(),
        best: None,
        reached_max: false,
    };
    let mut rate = plan.rate;
    for step in 1..=search.max_steps {
        let fleet = Arc::new(Fleet::new(format!("{}s{step}-", plan.prefix), plan.clients));
        let mut tasks = JoinSet::new();
        eprintln!("step {step}: offering {rate:.0}/s...");
        let registration = register::register_all(&fleet, &cfg, rate, &mut tasks).await;
        shutdown(&fleet, &mut tasks).await;
        let verdict = verdict(&registration, &search);
        let failed = verdict.is_some();
        outcome.steps.push(Step {
            registration,
            verdict,
        });
        if failed {
            break;
        }
        outcome.best = Some(rate);
        if rate >= search.max_rate {
            outcome.reached_max = true;
            break;
        }
        rate = (rate * search.step).min(search.max_rate);
        sleep(BETWEEN_STEPS).await;
    }
    outcome
}

/// The report: one row per step, then the result.
pub(crate) fn render(plan: &Plan, search: &Search, outcome: &SearchOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "meshrelay bench-signal --find-max-rate: {} N={} per step, bound p99 <= {} ms and achieved >= 95% of offered\n",
        plan.target.request_url.split('?').next().unwrap_or(""),
        plan.clients,
        search.max_p99_ms
    );
    let _ = writeln!(
        out,
        "  {:>4} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9}  verdict",
        "step", "offered/s", "achieved", "registered", "p50 ms", "p99 ms", "max ms"
    );
    for (i, s) in outcome.steps.iter().enumerate() {
        let r = &s.registration;
        let _ = writeln!(
            out,
            "  {:>4} {:>9.0} {:>9.0} {:>11} {:>9} {:>9} {:>9}  {}",
            i + 1,
            r.offered_rate,
            r.achieved_rate,
            format!("{}/{}", r.registered, r.launched),
            ms(r.latency.p50),
            ms(r.latency.p99),
            ms(r.latency.max),
            s.verdict.as_deref().unwrap_or("sustained")
        );
    }
    if outcome.reached_max {
        let _ = writeln!(out, "  (reached --max-rate)");
    }
    let _ = writeln!(
        out,
        "\nhighest sustained registration rate: {}",
        outcome
            .best
            .map_or("none (the first step already failed)".to_string(), |b| {
                format!("{b:.0} /s")
            })
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn reg(achieved: f64, p99_us: u64, failed: usize) -> Registration {
        Registration {
            launched: 100,
            offered_rate: 1000.0,
            registered: 100 - failed,
            failed,
            pending: 0,
            latency: Summary {
                count: 100,
                p50: 100,
                p90: 200,
                p99: p99_us,
                max: p99_us,
                mean: 100,
            },
            connect: Summary::default(),
            by_decile: Vec::new(),
            achieved_rate: achieved,
            launch_secs: 0.1,
        }
    }

    #[test]
    fn verdicts() {
        let s = Search {
            max_p99_ms: 10.0,
            step: 1.5,
            max_rate: 1e5,
            max_steps: 10,
        };
        assert_eq!(verdict(&reg(990.0, 9_000, 0), &s), None);
        assert!(verdict(&reg(990.0, 10_001, 0), &s).unwrap().contains("p99"));
        assert!(verdict(&reg(940.0, 1_000, 0), &s)
            .unwrap()
            .contains("achieved"));
        assert!(verdict(&reg(990.0, 1_000, 1), &s)
            .unwrap()
            .contains("failed"));
    }
}
