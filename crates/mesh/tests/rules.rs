//! One test per placement and re-planning rule of the planner, under the
//! seed's placement (`PlacementPolicy::Shallowest`); what the other
//! policies change, the default among them, is tests/policies.rs.

use meshrelay_mesh::{MeshConfig, MeshError, PeerAssignment, PeerRole, PlacementPolicy, Planner};
use std::time::{Duration, Instant};

fn planner(max_children: usize, roots: usize, max_depth: u32) -> Planner {
    let config = MeshConfig {
        max_children,
        root_peer_count: roots,
        max_depth,
        heartbeat_timeout_secs: 10,
    };
    Planner::with_policy(config, PlacementPolicy::Shallowest)
}

fn join_all(p: &mut Planner, ids: &[&str]) {
    let now = Instant::now();
    for id in ids {
        p.join(id, None, now).unwrap();
    }
}

fn parent(p: &Planner, id: &str) -> Option<String> {
    p.assignment(id).unwrap().parent
}

fn depth(p: &Planner, id: &str) -> u32 {
    p.assignment(id).unwrap().depth
}

#[test]
fn first_peers_are_roots_up_to_the_root_count() {
    let mut p = planner(3, 2, 4);
    join_all(&mut p, &["a", "b", "c"]);
    assert_eq!(p.assignment("a").unwrap().role, PeerRole::Root);
    assert_eq!(p.assignment("b").unwrap().role, PeerRole::Root);
    let c = p.assignment("c").unwrap();
    assert_eq!((c.role, c.depth), (PeerRole::Relay, 1));
    assert_eq!(p.root_count(), 2);
}

#[test]
fn parent_is_the_shallowest_with_a_free_slot_then_the_least_loaded() {
    let mut p = planner(3, 2, 4);
    let kids = |p: &Planner, r: &str| p.peer(r, "t").unwrap().children.len();
    join_all(&mut p, &["r1", "r2", "c1", "c2", "c3", "c4"]);
    // Both roots have room throughout: the least loaded one takes each
    // newcomer (the first with a free slot would have taken three).
    assert_eq!((kids(&p, "r1"), kids(&p, "r2")), (2, 2));
    join_all(&mut p, &["c5", "c6", "g1"]);
    for c in ["c1", "c2", "c3", "c4", "c5", "c6"] {
        assert_eq!(depth(&p, c), 1);
    }
    // Nobody goes to depth 2 while depth 1 has room.
    assert_eq!((kids(&p, "r1"), kids(&p, "r2")), (3, 3));
    assert_eq!(depth(&p, "g1"), 2);
}

#[test]
fn capacity_is_clamped_and_zero_never_parents() {
    let mut p = planner(2, 1, 5);
    let now = Instant::now();
    p.join("r", Some(99), now).unwrap();
    p.join("zero", Some(0), now).unwrap();
    assert_eq!(p.assignment("zero").unwrap().role, PeerRole::Leaf);
    p.join("x", None, now).unwrap();
    // r holds 2 (clamped from 99); the next goes under x, never under zero.
    let y = p.join("y", None, now).unwrap();
    assert_eq!(y.parent.as_deref(), Some("x"));
    assert_eq!(p.peer("r", "t").unwrap().capacity, Some(99));
}

#[test]
fn a_tree_whose_only_free_slots_are_at_the_depth_limit_refuses_joins() {
    let mut p = planner(1, 1, 2);
    join_all(&mut p, &["r", "d1", "d2"]);
    // d2 could take a child, at depth 3.
    assert_eq!(
        p.join("d3", None, Instant::now()),
        Err(MeshError::TreeDepthExceeded { max: 2 })
    );
    assert_eq!(p.peer_count(), 3);
}

#[test]
fn a_tree_with_no_free_slot_refuses_joins() {
    let mut p = planner(1, 1, 2);
    join_all(&mut p, &["r", "d1"]);
    p.join("d2", Some(0), Instant::now()).unwrap();
    assert_eq!(
        p.join("d3", None, Instant::now()),
        Err(MeshError::NoAvailableParent)
    );
    // Freeing a slot above the limit makes room again.
    p.leave("d2").unwrap();
    assert_eq!(
        p.join("d3", None, Instant::now())
            .unwrap()
            .parent
            .as_deref(),
        Some("d1")
    );
    p.check_invariants().unwrap();
}

#[test]
fn a_duplicate_id_is_refused_and_the_original_kept() {
    let mut p = planner(3, 1, 4);
    join_all(&mut p, &["r", "a"]);
    p.record_forward_report("a", 7);
    let err = p.join("a", Some(1), Instant::now()).unwrap_err();
    assert_eq!(err, MeshError::DuplicatePeer("a".into()));
    let a = p.peer("a", "t").unwrap();
    assert_eq!(
        (a.forwarded_frames, a.capacity, a.parent.as_deref()),
        (7, None, Some("r"))
    );
}

#[test]
fn an_inner_peer_is_replaced_by_a_leaf_child_that_hosts_its_siblings() {
    let mut p = planner(3, 1, 4);
    let now = Instant::now();
    p.join("r", Some(1), now).unwrap();
    join_all(&mut p, &["m", "k1", "k2", "k3"]);
    assert_eq!(p.peer("m", "t").unwrap().children, vec!["k1", "k2", "k3"]);
    let out = p.leave("m").unwrap();
    assert_eq!(out.neighbours, vec!["r", "k1", "k2", "k3"]);
    assert!(out.waiting.is_empty());
    // One child takes m's place under r; the other two stay at depth 2 under it.
    assert_eq!(out.changed.len(), 3);
    let stand_in = out
        .changed
        .iter()
        .find(|a| a.parent.as_deref() == Some("r"))
        .expect("a child moved up");
    assert_eq!(stand_in.depth, 1);
    for a in out.changed.iter().filter(|a| a.peer_id != stand_in.peer_id) {
        assert_eq!(a.parent.as_deref(), Some(stand_in.peer_id.as_str()));
        assert_eq!(a.depth, 2);
    }
    p.check_invariants().unwrap();
}

#[test]
fn a_lone_leaf_orphan_moves_up_itself_rather_than_a_leaf_from_elsewhere() {
    let mut p = planner(2, 1, 4);
    let now = Instant::now();
    p.join("r", None, now).unwrap();
    p.join("a", Some(1), now).unwrap();
    join_all(&mut p, &["b", "c", "d", "e"]);
    assert_eq!(p.peer("a", "t").unwrap().children, vec!["c"]);
    assert_eq!(p.peer("b", "t").unwrap().children, vec!["d", "e"]);
    let out = p.leave("a").unwrap();
    // c alone moves; d and e (leaves that could host c) stay put.
    assert_eq!(
        out.changed,
        vec![PeerAssignment {
            peer_id: "c".into(),
            role: PeerRole::Relay,
            parent: Some("r".into()),
            depth: 1,
        }]
    );
    p.check_invariants().unwrap();
}

#[test]
fn a_root_that_leaves_is_replaced_and_the_root_count_kept() {
    let mut p = planner(2, 2, 4);
    join_all(&mut p, &["r1", "r2", "a", "b", "c", "d", "e"]);
    let out = p.leave("r1").unwrap();
    assert_eq!(p.root_count(), 2);
    assert!(out.changed.iter().any(|a| a.role == PeerRole::Root));
    for a in &out.changed {
        assert!(a.depth <= 1, "nobody moves deeper: {a:?}");
    }
    p.check_invariants().unwrap();
}

#[test]
fn a_freed_root_slot_is_filled_by_promoting_a_leaf() {
    let mut p = planner(2, 2, 4);
    join_all(&mut p, &["r1", "r2", "a"]);
    assert_eq!(parent(&p, "a").as_deref(), Some("r1"));
    let out = p.leave("r2").unwrap();
    assert_eq!(out.neighbours, Vec::<String>::new());
    assert_eq!(out.changed.len(), 1);
    assert_eq!(out.changed[0].peer_id, "a");
    assert_eq!(out.changed[0].role, PeerRole::Root);
    assert_eq!(p.root_count(), 2);
    assert_eq!(p.offload_percentage(), 0.0);
}

/// r(2) -> {m(2) -> {k1(1) -> g1, k2(1) -> g2}, o(2) -> {y}}: a free slot under o.
fn two_full_branches() -> Planner {
    let mut p = planner(3, 1, 6);
    let now = Instant::now();
    for (id, cap) in [
        ("r", 2),
        ("m", 2),
        ("o", 2),
        ("k1", 1),
        ("x", 0),
        ("k2", 1),
        ("y", 0),
        ("g1", 0),
        ("g2", 0),
    ] {
        p.join(id, Some(cap), now).unwrap();
    }
    assert_eq!(p.peer("m", "t").unwrap().children, vec!["k1", "k2"]);
    assert_eq!(p.peer("o", "t").unwrap().children, vec!["x", "y"]);
    assert_eq!(parent(&p, "g1").as_deref(), Some("k1"));
    assert_eq!(parent(&p, "g2").as_deref(), Some("k2"));
    p.leave("x").unwrap();
    p
}

#[test]
fn children_the_stand_in_cannot_host_move_with_their_subtrees() {
    let mut p = two_full_branches();
    let out = p.leave("m").unwrap();
    assert!(out.waiting.is_empty());
    // No childless peer can host anyone, so k1 moves up with its subtree and
    // k2 moves whole to the free slot under o, outside its own subtree.
    assert_eq!(parent(&p, "k1").as_deref(), Some("r"));
    assert_eq!((depth(&p, "k1"), depth(&p, "g1")), (1, 2));
    assert_eq!(parent(&p, "k2").as_deref(), Some("o"));
    assert_eq!(depth(&p, "g2"), depth(&p, "k2") + 1);
    let mut moved: Vec<_> = out.changed.iter().map(|a| a.peer_id.as_str()).collect();
    moved.sort();
    assert_eq!(
        moved,
        vec!["g1", "k1", "k2"],
        "g2 kept its parent and depth"
    );
    for a in &out.changed {
        assert_eq!(p.assignment(&a.peer_id).as_ref(), Some(a));
    }
    p.check_invariants().unwrap();
}

#[test]
fn an_orphan_with_free_slots_moves_up_and_hosts_its_siblings() {
    let mut p = planner(3, 1, 6);
    let now = Instant::now();
    for (id, cap) in [
        ("r", 1),
        ("m", 2),
        ("k1", 1),
        ("k2", 3),
        ("g1", 0),
        ("g2", 0),
    ] {
        p.join(id, Some(cap), now).unwrap();
    }
    assert_eq!(parent(&p, "g2").as_deref(), Some("k2"));
    let out = p.leave("m").unwrap();
    assert_eq!(parent(&p, "k2").as_deref(), Some("r"));
    assert_eq!(parent(&p, "k1").as_deref(), Some("k2"));
    assert_eq!(
        (depth(&p, "k1"), depth(&p, "g1"), depth(&p, "g2")),
        (2, 3, 2)
    );
    let mut moved: Vec<_> = out.changed.iter().map(|a| a.peer_id.as_str()).collect();
    moved.sort();
    assert_eq!(moved, vec!["g2", "k1", "k2"]);
    p.check_invariants().unwrap();
}

#[test]
fn orphans_with_no_room_anywhere_are_reported_waiting() {
    let mut p = planner(3, 1, 6);
    let now = Instant::now();
    for (id, cap) in [
        ("r", 1),
        ("m", 3),
        ("k0", 0),
        ("k1", 1),
        ("k2", 1),
        ("g1", 0),
        ("g2", 0),
    ] {
        p.join(id, Some(cap), now).unwrap();
    }
    let out = p.leave("m").unwrap();
    let mut waiting = out.waiting.clone();
    waiting.sort();
    assert_eq!(waiting, vec!["k1", "k2"]);
    for id in ["k1", "k2"] {
        let a = out.changed.iter().find(|a| a.peer_id == id).unwrap();
        assert_eq!((a.parent.as_deref(), a.depth), (None, 0));
    }
    // Their subtrees stay with them.
    assert_eq!(parent(&p, "g1").as_deref(), Some("k1"));
    assert_eq!(p.waiting_count(), 2);
    assert_eq!(p.offload_percentage(), 100.0 * 3.0 / 6.0);
    p.check_invariants().unwrap();
    // k0 leaving frees r's slot: one waiting subtree is placed in the same step.
    let out = p.leave("k0").unwrap();
    assert_eq!(p.waiting_count(), 1);
    assert_eq!(
        out.changed.len(),
        2,
        "a waiting peer and its child moved: {out:?}"
    );
    p.check_invariants().unwrap();
}

/// r (capacity 1) -> a (capacity 2) -> {b, c} (capacity 0): when a leaves,
/// its one freed slot under r can host only one of its two children.
fn two_leaves_under_a_relay() -> Planner {
    let mut p = planner(2, 1, 4);
    let now = Instant::now();
    p.join("r", Some(1), now).unwrap();
    p.join("a", Some(2), now).unwrap();
    p.join("b", Some(0), now).unwrap();
    p.join("c", Some(0), now).unwrap();
    assert_eq!(parent(&p, "c").as_deref(), Some("a"));
    p
}

#[test]
fn the_leave_result_names_peers_that_could_not_be_placed() {
    let mut p = two_leaves_under_a_relay();
    let out = p.leave("a").unwrap();
    assert_eq!(out.waiting.len(), 1, "{out:?}");
    let waiting = out.waiting[0].as_str();
    let placed = if waiting == "b" { "c" } else { "b" };
    assert_eq!(parent(&p, placed).as_deref(), Some("r"));
    assert_eq!(parent(&p, waiting), None);
    assert_eq!(p.waiting_count(), 1);
    // Both orphans are told: one its new parent, one that it has none.
    let mut told: Vec<_> = out.changed.iter().map(|a| a.peer_id.as_str()).collect();
    told.sort();
    assert_eq!(told, ["b", "c"]);
    p.check_invariants().unwrap();
}

#[test]
fn peers_that_fit_nowhere_wait_and_are_placed_when_room_frees() {
    let mut p = two_leaves_under_a_relay();
    let waiting = p.leave("a").unwrap().waiting[0].clone();
    let placed = if waiting == "b" { "c" } else { "b" };
    // The placed one leaving frees r's slot: the waiting one takes it in
    // the same step.
    let out = p.leave(placed).unwrap();
    assert!(out.waiting.is_empty(), "{out:?}");
    assert_eq!(p.waiting_count(), 0);
    assert_eq!(parent(&p, &waiting).as_deref(), Some("r"));
    assert!(out.changed.iter().any(|a| a.peer_id == waiting), "{out:?}");
    p.check_invariants().unwrap();

    // A subtree cut off without re-planning waits for place_waiting,
    // which moves it whole and updates every depth in it.
    let mut p = planner(1, 1, 3);
    join_all(&mut p, &["r", "a", "b", "c"]);
    let orphans = p.remove_without_replan("a").unwrap();
    assert_eq!(orphans, vec!["b"]);
    assert_eq!(p.waiting_count(), 1);
    let changed = p.place_waiting();
    assert_eq!(p.waiting_count(), 0);
    assert_eq!(parent(&p, "b").as_deref(), Some("r"));
    assert_eq!(depth(&p, "c"), 2);
    assert_eq!(
        changed.changed.len(),
        2,
        "b and c both moved up: {changed:?}"
    );
    assert_eq!(changed.unlinked, [], "b kept c");
    p.check_invariants().unwrap();
}

#[test]
fn a_leave_lists_only_the_peers_it_newly_left_waiting() {
    let mut p = planner(2, 1, 1);
    let now = Instant::now();
    p.join("r", None, now).unwrap();
    p.join("a", Some(0), now).unwrap();
    p.join("b", Some(0), now).unwrap();
    // Remove the root without re-planning, then fill the root slot with a newcomer.
    p.remove_without_replan("r").unwrap();
    p.join("n", Some(1), now).unwrap();
    assert_eq!(p.root_count(), 1);
    // n hosts one of them; the other has nowhere to go.
    let placed = p.place_waiting();
    assert_eq!(placed.changed.len(), 1);
    assert_eq!(p.waiting_count(), 1);
    let waiting = if parent(&p, "a").is_none() { "a" } else { "b" };
    // When n leaves, the placed one takes the root slot and the waiting one
    // stays waiting, as it already was.
    let out = p.leave("n").unwrap();
    assert_eq!(p.root_count(), 1);
    assert_eq!(p.waiting_count(), 1);
    assert!(p.assignment(waiting).unwrap().parent.is_none());
    assert!(out.waiting.is_empty(), "{out:?}");
    p.check_invariants().unwrap();
}

#[test]
fn reassign_never_moves_a_peer_into_its_own_subtree() {
    let mut p = planner(1, 1, 10);
    join_all(&mut p, &["r", "a", "b", "c"]);
    // The only free slot is under c, a's own descendant: a stays.
    assert_eq!(p.reassign("a").unwrap(), Default::default());
    assert_eq!(parent(&p, "a").as_deref(), Some("r"));
    p.check_invariants().unwrap();
}

#[test]
fn reassign_moves_a_live_peer_to_a_less_loaded_parent() {
    let mut p = planner(3, 2, 4);
    join_all(&mut p, &["r1", "r2", "a", "b", "c"]);
    // a under r1, b under r2, c under r1; leaving b makes r2 the least loaded.
    p.leave("b").unwrap();
    assert_eq!(parent(&p, "c").as_deref(), Some("r1"));
    let replan = p.reassign("c").unwrap();
    assert_eq!(replan.changed.len(), 1);
    assert_eq!(replan.changed[0].parent.as_deref(), Some("r2"));
    assert_eq!(replan.changed[0].depth, 1);
    assert_eq!(replan.unlinked, [("r1".to_string(), "c".to_string())]);
}

#[test]
fn sweep_removes_only_peers_silent_past_the_timeout() {
    let mut p = planner(3, 1, 4);
    let t0 = Instant::now();
    p.join("r", None, t0).unwrap();
    p.join("quiet", None, t0).unwrap();
    p.join("chatty", None, t0).unwrap();
    for s in [4, 8, 12] {
        assert!(p.heartbeat("r", t0 + Duration::from_secs(s)));
        assert!(p.heartbeat("chatty", t0 + Duration::from_secs(s)));
    }
    assert!(
        p.sweep(t0 + Duration::from_secs(10)).is_empty(),
        "exactly at the timeout is alive"
    );
    let outs = p.sweep(t0 + Duration::from_secs(11));
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].peer_id, "quiet");
    assert_eq!(outs[0].neighbours, vec!["r"]);
    assert!(p.sweep(t0 + Duration::from_secs(22)).is_empty());
    assert_eq!(p.sweep(t0 + Duration::from_secs(23)).len(), 2);
    assert!(!p.heartbeat("gone", t0));
}

#[test]
fn forward_reports_replace_the_count() {
    let mut p = planner(3, 1, 4);
    join_all(&mut p, &["r"]);
    assert!(p.record_forward_report("r", 500));
    assert!(p.record_forward_report("r", 5));
    assert_eq!(p.peer("r", "t").unwrap().forwarded_frames, 5);
    assert!(!p.record_forward_report("nobody", 1));
}

#[test]
fn neighbours_are_parent_and_child_only() {
    let mut p = planner(3, 1, 4);
    join_all(&mut p, &["r", "a", "b"]);
    assert!(p.are_neighbours("r", "a"));
    assert!(p.are_neighbours("a", "r"));
    assert!(!p.are_neighbours("a", "b"));
    assert!(!p.are_neighbours("a", "a"));
    assert!(!p.are_neighbours("a", "ghost"));
}

#[test]
fn offload_counts_peers_fed_by_peers() {
    let mut p = planner(3, 2, 4);
    assert_eq!(p.offload_percentage(), 0.0);
    join_all(&mut p, &["r1", "r2", "a", "b"]);
    assert_eq!(p.offload_percentage(), 50.0);
}

#[test]
fn churn_without_sweeps_keeps_liveness_bookkeeping_bounded() {
    let mut p = planner(3, 2, 4);
    let now = Instant::now();
    join_all(&mut p, &["r1", "r2"]);
    for i in 0..20_000 {
        let id = format!("c{i}");
        p.join(&id, None, now).unwrap();
        p.leave(&id).unwrap();
        if i % 997 == 0 {
            p.check_invariants().unwrap();
        }
    }
    // No bookkeeping of the peers that left survives them.
    p.check_invariants().unwrap();
    // The survivors are still found when they go silent.
    let later = now + Duration::from_secs(11);
    let gone: Vec<_> = p.sweep(later).into_iter().map(|o| o.peer_id).collect();
    assert_eq!(gone.len(), 2);
}

#[test]
fn a_relay_joining_takes_a_root_slot_held_by_a_leaf_which_becomes_its_child() {
    let mut p = planner(3, 2, 4);
    let now = Instant::now();
    p.join("l1", Some(0), now).unwrap();
    p.join("l2", Some(0), now).unwrap();
    // Plain join: both root slots feed nobody, so nobody else fits.
    assert_eq!(p.join("x", None, now), Err(MeshError::NoAvailableParent));
    let (a, moved) = p.join_relaying("r", None, true, now).unwrap();
    assert_eq!((a.role, a.parent, a.depth), (PeerRole::Root, None, 0));
    let moved = moved.expect("a leaf moved");
    assert_eq!(moved.peer_id, "l1");
    assert_eq!(
        (moved.role, moved.parent.as_deref(), moved.depth),
        (PeerRole::Leaf, Some("r"), 1)
    );
    assert_eq!(p.assignment("l1").unwrap(), moved);
    assert_eq!(p.root_count(), 2);
    p.check_invariants().unwrap();
    // The next relay takes the other leaf's slot; then no leaf holds one,
    // and joins are plain again.
    let (_, moved) = p.join_relaying("s", Some(2), true, now).unwrap();
    assert_eq!(moved.map(|m| m.peer_id).as_deref(), Some("l2"));
    let (c, moved) = p.join_relaying("c", None, true, now).unwrap();
    assert_eq!(moved, None);
    assert_eq!(c.depth, 1);
    // A leaf newcomer never displaces anyone.
    let mut q = planner(3, 1, 4);
    q.join("l", Some(0), now).unwrap();
    assert_eq!(
        q.join_relaying("m", Some(0), true, now),
        Err(MeshError::NoAvailableParent)
    );
    assert_eq!(
        q.join_relaying("l", Some(3), true, now),
        Err(MeshError::DuplicatePeer("l".into()))
    );
    assert_eq!(q.assignment("l").unwrap().role, PeerRole::Root);
    q.check_invariants().unwrap();
    p.check_invariants().unwrap();
}

#[test]
fn lowering_a_capacity_keeps_its_children_and_stops_refills() {
    let mut p = planner(3, 1, 4);
    join_all(&mut p, &["r", "a", "b"]);
    // r has a and b; it can no longer feed a third.
    assert_eq!(p.lower_capacity("r").unwrap(), None, "a root stays a root");
    let c = p.join("c", None, Instant::now()).unwrap();
    assert_ne!(c.parent.as_deref(), Some("r"));
    // It fed two: when one leaves, that slot is its to refill.
    p.leave("b").unwrap();
    let d = p.join("d", None, Instant::now()).unwrap();
    assert_eq!(d.parent.as_deref(), Some("r"));
    let e = p.join("e", None, Instant::now()).unwrap();
    assert_ne!(e.parent.as_deref(), Some("r"));
    // A childless relay lowered becomes a leaf, and says so.
    let childless = ["a", "c", "d", "e"]
        .into_iter()
        .find(|x| p.peer(x, "t").unwrap().children.is_empty())
        .unwrap();
    let now_leaf = p.lower_capacity(childless).unwrap().expect("role changed");
    assert_eq!(now_leaf.role, PeerRole::Leaf);
    assert_eq!(
        p.lower_capacity(childless).unwrap(),
        None,
        "already as low as it goes"
    );
    assert_eq!(
        p.lower_capacity("ghost"),
        Err(MeshError::PeerNotFound("ghost".into()))
    );
    p.check_invariants().unwrap();
}

/// Joins through the server's path, each peer stating whether it reads the
/// origin on its own.
fn join_reading(p: &mut Planner, peers: &[(&str, bool)]) {
    let now = Instant::now();
    for &(id, reads_origin) in peers {
        p.join_relaying(id, None, reads_origin, now).unwrap();
    }
}

#[test]
fn a_peer_that_does_not_read_the_origin_is_never_promoted() {
    // Chain r <- a <- b, none but r reading the origin.
    let mut p = planner(1, 1, 4);
    join_reading(&mut p, &[("r", false), ("a", false), ("b", false)]);
    assert_eq!(
        p.assignment("r").unwrap().role,
        PeerRole::Root,
        "a root at its own join"
    );
    let out = p.leave("r").unwrap();
    // Nobody may take the root slot: a waits with b under it, told so.
    assert_eq!(p.root_count(), 0);
    assert_eq!(out.waiting, ["a"]);
    assert_eq!(out.unlinked, []);
    assert_eq!(parent(&p, "b").as_deref(), Some("a"));
    p.check_invariants().unwrap();
    // The next newcomer takes the slot at its join; the waiting subtree goes under it.
    let (n, _) = p.join_relaying("n", None, false, Instant::now()).unwrap();
    assert_eq!(n.role, PeerRole::Root);
    let placed = p.place_waiting();
    assert_eq!(parent(&p, "a").as_deref(), Some("n"));
    assert_eq!(depth(&p, "b"), 2);
    assert_eq!(placed.changed.len(), 2, "{placed:?}");
    assert_eq!(placed.unlinked, []);
    p.check_invariants().unwrap();
}

#[test]
fn a_root_slot_goes_to_a_peer_that_reads_the_origin_when_one_is_childless() {
    // r (root, 2 slots) <- x (does not read the origin), y (does).
    let mut p = planner(2, 1, 4);
    join_reading(&mut p, &[("r", true), ("x", false), ("y", true)]);
    p.leave("r").unwrap();
    assert_eq!(p.assignment("y").unwrap().role, PeerRole::Root);
    assert_eq!(parent(&p, "x").as_deref(), Some("y"));
    p.check_invariants().unwrap();
}

#[test]
fn a_leave_reports_the_links_it_ends_between_remaining_peers() {
    // Chain a <- b <- c: when a leaves, c (childless) stands in as the root
    // and hosts b, so the link b -> c ends with both ends still present.
    let mut p = planner(1, 1, 4);
    join_all(&mut p, &["a", "b", "c"]);
    let out = p.leave("a").unwrap();
    assert_eq!(out.neighbours, ["b"]);
    assert_eq!(p.assignment("c").unwrap().role, PeerRole::Root);
    assert_eq!(parent(&p, "b").as_deref(), Some("c"));
    assert_eq!(out.unlinked, [("b".to_string(), "c".to_string())]);
    p.check_invariants().unwrap();
}
