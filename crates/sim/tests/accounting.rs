//! Accounting on scenarios small enough to compute by hand: three peers,
//! one leave at a known time, known delays.
//!
//! Common setting: one root slot, two children a peer, 10 objects/s of
//! 1,000 bytes, a setup delay of 2 round trips × 2 × 50 ms = 200 ms, an
//! abrupt leaver with children noticed after 4 s. A (capacity 2) joins at
//! 0 and is the root, B (capacity 2) at 1 and C (capacity 0) at 2 go under
//! A. When A goes, B (a childless orphan with room for its sibling) stands
//! in: it becomes the root and C moves under it.

use meshrelay_sim::{PolicyKind, Scenario, ScriptedViewer, Simulation};

fn scenario(policy: PolicyKind, repair: bool) -> Scenario {
    let mut s = Scenario::default();
    for (field, value) in [
        ("duration_s", "20"),
        ("sample_every_s", "5"),
        ("audience.initial", "0"),
        ("audience.arrivals", "0:0"),
        ("network.hop_delay_ms", "50"),
        ("network.setup_round_trips", "2"),
        ("network.heartbeat_timeout_s", "10"),
        ("network.channel_close_s", "4"),
        ("stream.objects_per_s", "10"),
        ("stream.object_bytes", "1000"),
        ("planner.max_children", "2"),
        ("planner.root_count", "1"),
        ("planner.max_depth", "4"),
    ] {
        s.set(field, value).unwrap();
    }
    s.policy = policy;
    s.repair = repair;
    s
}

fn viewer(join_s: f64, leave_s: f64, capacity: u32, abrupt: bool) -> ScriptedViewer {
    ScriptedViewer {
        join_s,
        leave_s,
        capacity,
        abrupt,
    }
}

fn run(sc: &Scenario, viewers: &[ScriptedViewer]) -> meshrelay_sim::RunResult {
    let mut sim = Simulation::new(sc);
    sim.script(viewers);
    sim.run(&mut |_| {})
}

#[test]
fn a_graceful_root_leave_costs_the_setup_delay() {
    for policy in [PolicyKind::Shallowest, PolicyKind::Seed] {
        let sc = scenario(policy, true);
        let r = run(
            &sc,
            &[
                viewer(0.0, 10.0, 2, false),
                viewer(1.0, 100.0, 2, false),
                viewer(2.0, 100.0, 0, false),
            ],
        );
        let s = &r.summary;
        // B and C miss (10 s, 10.2 s]: objects 101 and 102, each to 2 peers.
        assert_eq!(s.lost_objects, 0, "{policy:?}: repair is on");
        assert_eq!(s.lost_objects_without_repair, 4, "{policy:?}");
        // B reads them once from the ring and forwards them to C.
        assert_eq!(s.repair_bytes, 2_000.0, "{policy:?}");
        // Roots: A for 0-10 s, B for 10-20 s: 20 s of 10,000 B/s.
        assert_eq!(s.origin_root_bytes, 200_000.0, "{policy:?}");
        assert_eq!(s.origin_bytes, 202_000.0, "{policy:?}");
        // Viewers: A 10 s, B 19 s, C 18 s.
        assert_eq!(s.delivered_bytes, 470_000.0, "{policy:?}");
        assert!((s.byte_offload - (1.0 - 202_000.0 / 470_000.0)).abs() < 1e-12);
        // B and C, each without a parent for the 200 ms setup.
        assert_eq!(s.time_without_parent_ms.count, 2, "{policy:?}");
        assert_eq!(s.time_without_parent_ms.p50, 200.0, "{policy:?}");
        assert_eq!(s.time_without_parent_ms.max, 200.0, "{policy:?}");
        // B and C told their new place; PeerLeft to A's two children.
        assert_eq!(s.departures, 1);
        assert_eq!(s.assign_parent_per_departure, 2.0, "{policy:?}");
        assert_eq!(s.peer_left_per_departure, 2.0, "{policy:?}");
        assert_eq!(s.depth_histogram, vec![1, 1]);
        assert_eq!(s.max_depth_seen, 1);
    }
}

#[test]
fn without_repair_the_gap_is_lost_and_the_origin_pays_nothing_more() {
    let sc = scenario(PolicyKind::Shallowest, false);
    let r = run(
        &sc,
        &[
            viewer(0.0, 10.0, 2, false),
            viewer(1.0, 100.0, 2, false),
            viewer(2.0, 100.0, 0, false),
        ],
    );
    assert_eq!(r.summary.lost_objects, 4);
    assert_eq!(r.summary.repair_bytes, 0.0);
    assert_eq!(r.summary.origin_bytes, 200_000.0);
}

#[test]
fn an_abrupt_leave_starves_the_subtree_until_it_is_noticed() {
    let sc = scenario(PolicyKind::Shallowest, false);
    let r = run(
        &sc,
        &[
            viewer(0.0, 10.0, 2, true),
            viewer(1.0, 100.0, 2, false),
            viewer(2.0, 100.0, 0, false),
        ],
    );
    let s = &r.summary;
    // Gone at 10 s, noticed at 14 s (it had children), new feed at 14.2 s:
    // objects 101..=142 to B and C.
    assert_eq!(s.lost_objects, 84);
    assert_eq!(s.abrupt_departures, 1);
    assert_eq!(s.time_without_parent_ms.p50, 4_200.0);
    assert_eq!(s.time_without_parent_ms.count, 2);
    // The origin fed A (gone or not) as a root until it was noticed.
    assert_eq!(s.origin_root_bytes, 200_000.0);
    // A watched until 10 s: the same 47 viewer-seconds.
    assert_eq!(s.delivered_bytes, 470_000.0);
}

#[test]
fn a_newcomer_placed_under_a_silently_gone_parent_starves_too() {
    let sc = scenario(PolicyKind::Shallowest, true);
    let r = run(
        &sc,
        &[
            viewer(0.0, 5.0, 2, true),
            viewer(1.0, 100.0, 2, false),
            // The planner still counts A: C goes under it at 6 s.
            viewer(6.0, 100.0, 0, false),
        ],
    );
    let s = &r.summary;
    // B starves from 5 s, C from its would-be start at 6.2 s; A is noticed
    // at 9 s and B's new feed as the root is up at 9.2 s. B reads
    // objects 51..=92 from the ring and forwards them to C.
    assert_eq!(s.repair_bytes, 42_000.0);
    assert_eq!(s.lost_objects_without_repair, 84);
    let mut gaps = [s.time_without_parent_ms.p50, s.time_without_parent_ms.max];
    gaps.sort_by(f64::total_cmp);
    assert_eq!(gaps, [3_000.0, 4_200.0]);
}

#[test]
fn a_refused_viewer_retries_each_second_and_gets_nothing_meanwhile() {
    for policy in [PolicyKind::Shallowest, PolicyKind::Seed] {
        let mut sc = scenario(policy, true);
        sc.set("planner.max_children", "1").unwrap();
        sc.set("planner.max_depth", "1").unwrap();
        // A is the root and B fills its one slot; C finds no place until B
        // leaves at 5 s and is let in by the tick at 5 s.
        let r = run(
            &sc,
            &[
                viewer(0.0, 100.0, 1, false),
                viewer(1.0, 5.0, 1, false),
                viewer(2.5, 100.0, 1, false),
            ],
        );
        let s = &r.summary;
        assert_eq!(s.refused_viewers, 1, "{policy:?}");
        // At 2.5 s, then at the ticks of 3 s and 4 s.
        assert_eq!(s.refused_joins, 3, "{policy:?}");
        assert_eq!(s.refused_viewer_s, 2.5, "{policy:?}");
        assert_eq!(s.joins, 3, "{policy:?}");
        // A 20 s, B 4 s, C 15 s.
        assert_eq!(s.delivered_bytes, 390_000.0, "{policy:?}");
        // B had no child: nobody lost anything.
        assert_eq!(s.lost_objects_without_repair, 0, "{policy:?}");
    }
}
