//! Same scenario and seed, same output, byte for byte.

use meshrelay_sim::{plot, report, run, run_seeds, PolicyKind, Scenario};

fn small(policy: PolicyKind) -> Scenario {
    let mut s = Scenario::default();
    s.set("duration_s", "300").unwrap();
    s.set("audience.initial", "2000").unwrap();
    s.set("audience.flash_crowds", "100:500:20").unwrap();
    s.set("audience.session", "pareto:300:1.5").unwrap();
    s.set("planner.root_count", "40").unwrap();
    s.set("planner.max_depth", "10").unwrap();
    s.policy = policy;
    s
}

#[test]
fn two_runs_give_identical_text_json_and_chart() {
    let dir = std::env::temp_dir();
    for policy in [
        PolicyKind::Shallowest,
        PolicyKind::Seed,
        PolicyKind::CapacityFirst,
        PolicyKind::StableFirst,
    ] {
        let sc = small(policy);
        let a = run(&sc, &mut |_| {});
        let b = run(&sc, &mut |_| {});
        assert_eq!(report::text(&a, false), report::text(&b, false));
        assert_eq!(report::json(&a, false), report::json(&b, false));
        let (pa, pb) = (
            dir.join(format!("meshrelay-sim-a-{}.svg", std::process::id())),
            dir.join(format!("meshrelay-sim-b-{}.svg", std::process::id())),
        );
        plot::write_svg(&a, &pa).unwrap();
        plot::write_svg(&b, &pb).unwrap();
        assert_eq!(std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        let _ = std::fs::remove_file(pa);
        let _ = std::fs::remove_file(pb);
        // Something happened at all.
        assert!(a.summary.departures > 500, "{:?}", a.summary.departures);
        assert!(a.summary.joins > 2500);
    }
}

#[test]
fn another_seed_gives_another_run_and_seeds_are_reported_together() {
    let sc = small(PolicyKind::Shallowest);
    let runs = run_seeds(&sc, 3, &mut |_| {});
    assert_eq!(runs.len(), 3);
    assert_ne!(runs[0].summary, runs[1].summary);
    assert_eq!(runs[2].summary.seed, sc.seed + 2);
    let text = report::multi_text(&runs, false);
    assert!(text.contains("mean ± 95% confidence interval"), "{text}");
    assert_eq!(
        report::multi_json(&runs, false),
        report::multi_json(&run_seeds(&sc, 3, &mut |_| {}), false)
    );
}
