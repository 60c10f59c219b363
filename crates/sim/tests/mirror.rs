//! The simulator's copy of the tree matches the planner's own, peer by
//! peer, through heavy churn, for both policies.

use meshrelay_sim::{PolicyKind, Scenario, Simulation};

#[test]
fn the_mirror_follows_the_planner() {
    for policy in [
        PolicyKind::Shallowest,
        PolicyKind::Seed,
        PolicyKind::CapacityFirst,
        PolicyKind::StableFirst,
    ] {
        let mut sc = Scenario::default();
        sc.set("duration_s", "240").unwrap();
        sc.set("audience.initial", "1500").unwrap();
        sc.set("audience.session", "exponential:60").unwrap();
        sc.set("audience.abrupt_fraction", "0.5").unwrap();
        sc.set("audience.capacity_mix", "0:40,1:20,2:15,3:25")
            .unwrap();
        sc.set("planner.root_count", "20").unwrap();
        sc.set("planner.max_depth", "8").unwrap();
        sc.policy = policy;
        let mut sim = Simulation::new(&sc);
        for t in [0.0, 1.0, 30.0, 60.5, 120.0, 239.0] {
            sim.step_until(t);
            sim.check_mirror()
                .unwrap_or_else(|e| panic!("{policy:?} at {t} s: {e}"));
        }
        let r = sim.run(&mut |_| {});
        assert!(r.summary.departures > 3000, "{}", r.summary.departures);
    }
}
