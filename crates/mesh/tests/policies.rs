//! One test per rule of the placement policies other than the default
//! (`rules.rs` tests the default's): what each changes, against the default.

use meshrelay_mesh::{MeshConfig, PeerRole, PlacementPolicy, Planner};
use std::time::{Duration, Instant};

fn planner(max_children: usize, roots: usize, max_depth: u32, policy: PlacementPolicy) -> Planner {
    Planner::with_policy(
        MeshConfig {
            max_children,
            root_peer_count: roots,
            max_depth,
            heartbeat_timeout_secs: 10,
        },
        policy,
    )
}

fn parent(p: &Planner, id: &str) -> Option<String> {
    p.assignment(id).unwrap().parent
}

#[test]
fn the_default_policy_is_capacity_first() {
    assert_eq!(PlacementPolicy::default(), PlacementPolicy::CapacityFirst);
    let p = Planner::new(MeshConfig::default());
    assert_eq!(p.policy(), PlacementPolicy::CapacityFirst);
    for policy in PlacementPolicy::ALL {
        assert_eq!(policy.as_str().parse::<PlacementPolicy>(), Ok(policy));
    }
    assert!("deepest".parse::<PlacementPolicy>().is_err());
}

#[test]
fn capacity_first_keeps_root_slots_for_relays_while_a_relay_has_room() {
    let now = Instant::now();
    let mut p = planner(3, 2, 4, PlacementPolicy::CapacityFirst);
    // No relay yet: a peer that cannot relay is a root, as by default.
    p.join("l0", Some(0), now).unwrap();
    assert_eq!(p.assignment("l0").unwrap().role, PeerRole::Root);
    p.join("r", None, now).unwrap();
    assert_eq!(p.assignment("r").unwrap().role, PeerRole::Root);
    let mut p = planner(3, 2, 4, PlacementPolicy::CapacityFirst);
    p.join("r", None, now).unwrap();
    // A root slot is free, but r has room: the leaf goes under r.
    let l = p.join("l", Some(0), now).unwrap();
    assert_eq!(
        (l.role, l.parent.as_deref(), l.depth),
        (PeerRole::Leaf, Some("r"), 1)
    );
    let s = p.join("s", Some(2), now).unwrap();
    assert_eq!(s.role, PeerRole::Root, "the slot kept went to a relay");
    p.check_invariants().unwrap();
    // By default the leaf would have taken the root slot.
    let mut d = planner(3, 2, 4, PlacementPolicy::Shallowest);
    d.join("r", None, now).unwrap();
    assert_eq!(d.join("l", Some(0), now).unwrap().role, PeerRole::Root);
}

/// r(2) -> {a(2) -> {c(2)}, b(2)}: free slots under a and b at depth 1
/// (b the least loaded) and under c at depth 2.
fn uneven(policy: PlacementPolicy) -> Planner {
    let now = Instant::now();
    let mut p = planner(2, 1, 5, policy);
    for id in ["r", "a", "b"] {
        p.join(id, None, now).unwrap();
    }
    let c = p.join("c", None, now).unwrap();
    assert_eq!(c.parent.as_deref(), Some("a"));
    p
}

#[test]
fn capacity_first_puts_a_peer_that_cannot_relay_under_the_deepest_free_slot() {
    let now = Instant::now();
    let mut p = uneven(PlacementPolicy::CapacityFirst);
    let l = p.join("l", Some(0), now).unwrap();
    assert_eq!((l.parent.as_deref(), l.depth), (Some("c"), 3));
    // A relay still takes the shallowest, least loaded slot.
    let x = p.join("x", Some(1), now).unwrap();
    assert_eq!((x.parent.as_deref(), x.depth), (Some("b"), 2));
    p.check_invariants().unwrap();
    // By default the leaf takes the shallowest slot, as anyone.
    let mut d = uneven(PlacementPolicy::Shallowest);
    assert_eq!(
        d.join("l", Some(0), now).unwrap().parent.as_deref(),
        Some("b")
    );
}

#[test]
fn capacity_first_never_places_below_the_depth_limit() {
    let now = Instant::now();
    let mut p = planner(1, 1, 2, PlacementPolicy::CapacityFirst);
    for id in ["r", "a"] {
        p.join(id, None, now).unwrap();
    }
    // a at depth 1 has the only free slot; its child sits at the limit.
    let l = p.join("l", Some(0), now).unwrap();
    assert_eq!((l.parent.as_deref(), l.depth), (Some("a"), 2));
    assert!(p.join("m", Some(0), now).is_err());
    p.check_invariants().unwrap();
}

/// r(1) -> m -> {k1, k2, k3}, where k1 left and joined again later: the
/// children of m, k1 the youngest though first in slot order.
fn rejoined(policy: PlacementPolicy) -> Planner {
    let t0 = Instant::now();
    let mut p = planner(3, 1, 4, policy);
    p.join("r", Some(1), t0).unwrap();
    for id in ["m", "k1", "k2", "k3"] {
        p.join(id, None, t0).unwrap();
    }
    p.leave("k1").unwrap();
    let k1 = p.join("k1", None, t0 + Duration::from_secs(5)).unwrap();
    assert_eq!(k1.parent.as_deref(), Some("m"));
    p
}

#[test]
fn stable_first_the_oldest_child_stands_in_for_its_parent() {
    let mut p = rejoined(PlacementPolicy::StableFirst);
    p.leave("m").unwrap();
    assert_eq!(parent(&p, "k2").as_deref(), Some("r"));
    assert_eq!(parent(&p, "k1").as_deref(), Some("k2"));
    assert_eq!(parent(&p, "k3").as_deref(), Some("k2"));
    p.check_invariants().unwrap();
    // By default the first child in slot order does, young or not.
    let mut d = rejoined(PlacementPolicy::Shallowest);
    d.leave("m").unwrap();
    assert_eq!(parent(&d, "k1").as_deref(), Some("r"));
}

/// r1(2) -> {a -> c, b} and r2, a root that feeds nobody: b has been
/// a childless relay the longest, c is deeper.
fn promotable(policy: PlacementPolicy) -> Planner {
    let now = Instant::now();
    let mut p = planner(2, 2, 4, policy);
    p.join("r1", None, now).unwrap();
    p.join("r2", Some(0), now).unwrap();
    for id in ["a", "b", "c"] {
        p.join(id, None, now).unwrap();
    }
    assert_eq!(parent(&p, "b").as_deref(), Some("r1"));
    assert_eq!(parent(&p, "c").as_deref(), Some("a"));
    p
}

#[test]
fn stable_first_promotes_the_longest_childless_relay_over_the_deepest() {
    let mut p = promotable(PlacementPolicy::StableFirst);
    let out = p.leave("r2").unwrap();
    assert_eq!(out.changed.len(), 1);
    assert_eq!(
        (out.changed[0].peer_id.as_str(), out.changed[0].role),
        ("b", PeerRole::Root)
    );
    p.check_invariants().unwrap();
    // By default the deepest one is promoted.
    let mut d = promotable(PlacementPolicy::Shallowest);
    let out = d.leave("r2").unwrap();
    assert_eq!(out.changed[0].peer_id, "c");
}

/// r1(2) -> {m(1) -> b(2), d(2)} and r2, a root that feeds nobody: b has
/// been a childless relay since its join, d only since its child x left.
fn moved_leaf(policy: PlacementPolicy) -> Planner {
    let now = Instant::now();
    let mut p = planner(2, 2, 5, policy);
    p.join("r1", None, now).unwrap();
    p.join("r2", Some(0), now).unwrap();
    p.join("m", Some(1), now).unwrap();
    p.join("d", Some(2), now).unwrap();
    p.join("b", Some(2), now).unwrap();
    assert_eq!(parent(&p, "b").as_deref(), Some("m"));
    p.join("x", Some(2), now).unwrap();
    assert_eq!(parent(&p, "x").as_deref(), Some("d"));
    p.leave("x").unwrap();
    // m leaves: b stands in for it, at depth 1 now, beside d.
    p.leave("m").unwrap();
    assert_eq!(parent(&p, "b").as_deref(), Some("r1"));
    p
}

#[test]
fn stable_first_a_leaf_keeps_its_rank_when_it_moves() {
    let mut p = moved_leaf(PlacementPolicy::StableFirst);
    let out = p.leave("r2").unwrap();
    assert_eq!(out.changed[0].peer_id, "b");
    p.check_invariants().unwrap();
    // By default a peer that moved ranks last among its equals.
    let mut d = moved_leaf(PlacementPolicy::Shallowest);
    let out = d.leave("r2").unwrap();
    assert_eq!(out.changed[0].peer_id, "d");
}

#[test]
fn capacity_first_spreads_leaves_over_the_least_loaded_deepest_parents() {
    let now = Instant::now();
    let mut p = planner(2, 1, 5, PlacementPolicy::CapacityFirst);
    for id in ["r", "a", "b", "c", "d"] {
        p.join(id, None, now).unwrap();
    }
    // c under a and d under b, both at depth 2 with two free slots.
    assert_eq!(parent(&p, "c").as_deref(), Some("a"));
    assert_eq!(parent(&p, "d").as_deref(), Some("b"));
    let l1 = p.join("l1", Some(0), now).unwrap();
    let l2 = p.join("l2", Some(0), now).unwrap();
    assert_eq!(l1.parent.as_deref(), Some("c"));
    assert_eq!(
        l2.parent.as_deref(),
        Some("d"),
        "the less loaded of the deepest"
    );
    p.check_invariants().unwrap();
}
