//! meshrelay's deterministic discrete-event simulator: a scenario's
//! audience joins and leaves the real planner (through the same calls as
//! the server, or as the seed's facade), and the run reports origin egress,
//! byte offload, depth, feed gaps and signalling cost.
//!
//! Same scenario and seed, same [`RunResult::summary`] and series, byte for
//! byte: randomness comes from one seeded generator, events are ordered by
//! time then scheduling order, and no hash-map order or wall clock reaches
//! them. Only [`RunResult::timing`] (planner wall-clock time) differs.

#![warn(missing_docs)]

pub mod arrivals;
pub mod metrics;
pub mod mirror;
pub mod model;
pub mod plot;
pub mod policy;
pub mod queue;
pub mod report;
pub mod rng;
pub mod scenario;

pub use model::{RunResult, ScriptedViewer, Simulation};
pub use scenario::{PolicyKind, Scenario, ScenarioError};

/// Runs `scenario` once; `progress` gets the simulated seconds done.
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(f64)) -> RunResult {
    Simulation::new(scenario).run(progress)
}

/// Runs `scenario` with `runs` consecutive seeds from its own; `progress`
/// gets the simulated seconds done over all runs.
pub fn run_seeds(scenario: &Scenario, runs: u32, progress: &mut dyn FnMut(f64)) -> Vec<RunResult> {
    (0..u64::from(runs))
        .map(|k| {
            let mut sc = scenario.clone();
            sc.seed = scenario.seed.wrapping_add(k);
            let done = k as f64 * sc.duration_s;
            run(&sc, &mut |t| progress(done + t))
        })
        .collect()
}
