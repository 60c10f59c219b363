//! Model test: long random sequences of planner operations, checking after
//! every step the tree invariants (through an independent checker over the
//! public snapshot, and the planner's own exhaustive check) and that each
//! operation reports exactly the peers whose position changed and the links
//! between remaining peers that it ended, and that a peer that does not read
//! the origin on its own is a root only from its own join on.

use meshrelay_mesh::{
    MeshConfig, MeshCoordinator, MeshError, PeerAssignment, PeerInfo, PeerRole, PeerSummary,
    PlacementPolicy, Planner,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Op {
    Join(u16, Option<u32>),
    /// The last field: the peer reads the origin on its own.
    JoinRelaying(u16, Option<u32>, bool),
    Leave(u16),
    Reassign(u16),
    RemoveDetaching(u16),
    LowerCapacity(u16),
    PlaceWaiting,
    Heartbeat(u16),
    HeartbeatAll,
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u16..400;
    prop_oneof![
        6 => (id.clone(), prop::option::of(0u32..6)).prop_map(|(i, c)| Op::Join(i, c)),
        3 => (id.clone(), prop::option::of(0u32..6), any::<bool>())
            .prop_map(|(i, c, o)| Op::JoinRelaying(i, c, o)),
        4 => id.clone().prop_map(Op::Leave),
        2 => id.clone().prop_map(Op::Reassign),
        1 => id.clone().prop_map(Op::RemoveDetaching),
        1 => id.clone().prop_map(Op::LowerCapacity),
        1 => Just(Op::PlaceWaiting),
        2 => id.prop_map(Op::Heartbeat),
        // Peers outlive many operations, so trees grow to their limits.
        1 => Just(Op::HeartbeatAll),
        1 => (0u8..8).prop_map(Op::Advance),
    ]
}

fn config() -> impl Strategy<Value = MeshConfig> {
    let children = prop_oneof![1 => Just(0usize), 5 => 1usize..5];
    (children, 1usize..5, 0u32..7).prop_map(|(c, r, d)| MeshConfig {
        max_children: c,
        root_peer_count: r,
        max_depth: d,
        heartbeat_timeout_secs: 10,
    })
}

/// Every placement policy the planner offers: each must keep every
/// invariant, report and rule the model checks.
const POLICIES: [PlacementPolicy; 3] = [
    PlacementPolicy::Shallowest,
    PlacementPolicy::CapacityFirst,
    PlacementPolicy::StableFirst,
];

type Positions = BTreeMap<String, (Option<String>, u32, PeerRole)>;

fn positions(snapshot: &[PeerInfo]) -> Positions {
    snapshot
        .iter()
        .map(|p| (p.id.clone(), (p.parent.clone(), p.depth, p.role)))
        .collect()
}

/// The invariants of `shared/design.md`, checked from the outside.
/// A peer's capacity as the planner holds it: its claim clamped to
/// `max_children`, or lower once `lower_capacity` lowered it.
fn capacity_of(config: &MeshConfig, lowered: &BTreeMap<String, usize>, p: &PeerInfo) -> usize {
    let claimed = p.effective_capacity(config.max_children);
    lowered.get(&p.id).map_or(claimed, |&l| l.min(claimed))
}

/// The cheap listing says what the full snapshot says, peer for peer, and
/// the capacity the planner holds now.
fn check_summaries(
    config: &MeshConfig,
    lowered: &BTreeMap<String, usize>,
    summaries: &[PeerSummary],
    snapshot: &[PeerInfo],
) {
    assert_eq!(summaries.len(), snapshot.len());
    for (s, p) in summaries.iter().zip(snapshot) {
        assert_eq!(
            s.effective_capacity as usize,
            capacity_of(config, lowered, p),
            "{}: effective capacity",
            p.id
        );
        assert_eq!(
            (
                &s.id,
                s.role,
                &s.parent,
                s.depth,
                s.child_count,
                s.forwarded_frames,
                s.capacity
            ),
            (
                &p.id,
                p.role,
                &p.parent,
                p.depth,
                p.children.len(),
                p.forwarded_frames,
                p.capacity
            ),
        );
    }
}

fn check_tree(config: &MeshConfig, snapshot: &[PeerInfo], waiting: usize) {
    let by_id: BTreeMap<&str, &PeerInfo> = snapshot.iter().map(|p| (p.id.as_str(), p)).collect();
    assert_eq!(by_id.len(), snapshot.len(), "ids are unique");
    let mut roots = 0;
    let mut parentless_relays = 0;
    for p in snapshot {
        let cap = p.capacity.map_or(config.max_children, |c| {
            (c as usize).min(config.max_children)
        });
        assert!(
            p.children.len() <= cap,
            "{} has {} children, capacity {cap}",
            p.id,
            p.children.len()
        );
        for c in &p.children {
            let child = by_id
                .get(c.as_str())
                .unwrap_or_else(|| panic!("{} names missing child {c}", p.id));
            assert_eq!(
                child.parent.as_deref(),
                Some(p.id.as_str()),
                "child {c} names its parent back"
            );
        }
        match &p.parent {
            None => {
                assert_eq!(p.depth, 0, "{} has no parent but depth {}", p.id, p.depth);
                if p.role == PeerRole::Root {
                    roots += 1;
                } else {
                    parentless_relays += 1;
                }
            }
            Some(parent) => {
                assert_ne!(p.role, PeerRole::Root, "{} is a root with a parent", p.id);
                let q = by_id
                    .get(parent.as_str())
                    .unwrap_or_else(|| panic!("{} names missing parent", p.id));
                assert!(q.children.contains(&p.id), "{parent} lists child {}", p.id);
                assert_eq!(p.depth, q.depth + 1, "{} depth under {parent}", p.id);
            }
        }
        if p.capacity == Some(0) && p.role != PeerRole::Root {
            assert_eq!(p.role, PeerRole::Leaf);
        }
        // No cycles: walking up ends at a parentless peer within n steps.
        let mut at = p;
        for _ in 0..=snapshot.len() {
            match &at.parent {
                Some(q) => at = by_id[q.as_str()],
                None => break,
            }
        }
        assert!(at.parent.is_none(), "{} is on a cycle", p.id);
    }
    assert!(
        roots <= config.root_peer_count,
        "{roots} roots over the cap"
    );
    assert_eq!(
        parentless_relays, waiting,
        "parentless non-roots are exactly the waiting peers"
    );
    // Depth limit: peers placed under a root (not inside a waiting subtree).
    for p in snapshot {
        let mut at = p;
        while let Some(q) = &at.parent {
            at = by_id[q.as_str()];
        }
        if at.role == PeerRole::Root {
            assert!(
                p.depth <= config.max_depth,
                "{} at depth {} over the limit",
                p.id,
                p.depth
            );
        }
    }
}

/// A refused join: no placed peer had a free slot above the depth limit,
/// and the error says whether one at the limit had.
fn check_refusal(
    config: &MeshConfig,
    snapshot: &[PeerInfo],
    lowered: &BTreeMap<String, usize>,
    err: &MeshError,
) {
    let by_id: BTreeMap<&str, &PeerInfo> = snapshot.iter().map(|p| (p.id.as_str(), p)).collect();
    let placed = |p: &PeerInfo| {
        let mut at = p;
        while let Some(q) = &at.parent {
            at = by_id[q.as_str()];
        }
        at.role == PeerRole::Root
    };
    let free = |p: &PeerInfo| {
        let cap = capacity_of(config, lowered, p);
        placed(p) && p.children.len() < cap
    };
    for p in snapshot {
        assert!(
            !(free(p) && p.depth < config.max_depth),
            "join refused ({err}) though {} had a free slot",
            p.id
        );
    }
    let at_limit = snapshot
        .iter()
        .any(|p| free(p) && p.depth == config.max_depth);
    let expected = if at_limit || config.max_depth == 0 {
        MeshError::TreeDepthExceeded {
            max: config.max_depth as usize,
        }
    } else {
        MeshError::NoAvailableParent
    };
    assert_eq!(err, &expected);
}

type Links = BTreeSet<(String, String)>;

fn links(snapshot: &[PeerInfo]) -> Links {
    snapshot
        .iter()
        .filter_map(|p| Some((p.parent.clone()?, p.id.clone())))
        .collect()
}

/// The `(parent, child)` links of `before` whose two ends are both still
/// present and no longer linked: exactly the ones an operation must report.
fn ended_links(before: &Links, after: &Links, present: &BTreeSet<String>) -> Links {
    before
        .iter()
        .filter(|(p, c)| {
            present.contains(p) && present.contains(c) && !after.contains(&(p.clone(), c.clone()))
        })
        .cloned()
        .collect()
}

/// Every peer whose position differs is reported, each once, with its new position; no other.
fn check_reported(before: &Positions, after: &Positions, reported: &[PeerAssignment]) {
    let mut seen = BTreeSet::new();
    for a in reported {
        assert!(
            seen.insert(a.peer_id.clone()),
            "{} reported twice",
            a.peer_id
        );
        let now = after.get(&a.peer_id).expect("reported peer exists");
        assert_eq!(
            &(a.parent.clone(), a.depth, a.role),
            now,
            "report for {} is current",
            a.peer_id
        );
    }
    for (id, now) in after {
        if let Some(old) = before.get(id) {
            if old != now {
                assert!(
                    seen.contains(id),
                    "{id} moved {old:?} -> {now:?} but was not reported"
                );
            }
        }
    }
}

fn run(config: MeshConfig, policy: PlacementPolicy, ops: Vec<Op>) {
    let mut planner = Planner::with_policy(config.clone(), policy);
    assert_eq!(planner.policy(), policy);
    let mut members: BTreeSet<String> = BTreeSet::new();
    // When each member was last heard from (its join or its last heartbeat),
    // kept here so the dead are known without asking the planner.
    let mut heard: BTreeMap<String, Instant> = BTreeMap::new();
    // Capacities lowered by lower_capacity, for the peers still present.
    let mut lowered: BTreeMap<String, usize> = BTreeMap::new();
    // Peers that do not read the origin on their own, and those of them that
    // have been a root since their join (the only way they may be one).
    let mut no_origin: BTreeSet<String> = BTreeSet::new();
    let mut root_since_join: BTreeSet<String> = BTreeSet::new();
    let t0 = Instant::now();
    let mut now = t0;
    for op in ops {
        let before_snapshot = planner.snapshot("t");
        let before = positions(&before_snapshot);
        let mut reported: Option<Vec<PeerAssignment>> = None;
        // Ended links each operation reported; None for sweeps (several leaves).
        let mut unlinked: Option<Vec<(String, String)>> = Some(Vec::new());
        let relaying = matches!(op, Op::JoinRelaying(..));
        match op {
            Op::Join(i, cap) | Op::JoinRelaying(i, cap, _) => {
                let reads_origin = !matches!(op, Op::JoinRelaying(_, _, false));
                let id = format!("p{i}");
                let relays = config.effective_capacity(cap) > 0;
                let full = before_snapshot
                    .iter()
                    .filter(|p| p.role == PeerRole::Root)
                    .count()
                    >= config.root_peer_count;
                let leaf_root = before_snapshot
                    .iter()
                    .any(|p| p.role == PeerRole::Root && capacity_of(&config, &lowered, p) == 0);
                // Only join_relaying displaces a leaf root, and only for a relay.
                let displaces = relaying && relays && full && leaf_root && config.max_depth >= 1;
                let result = if relaying {
                    planner.join_relaying(&id, cap, reads_origin, now)
                } else {
                    planner.join(&id, cap, now).map(|a| (a, None))
                };
                match result {
                    Ok((a, moved)) => {
                        assert!(members.insert(id.clone()), "join of a present id succeeded");
                        heard.insert(id.clone(), now);
                        if !reads_origin {
                            no_origin.insert(id.clone());
                            if a.role == PeerRole::Root {
                                root_since_join.insert(id.clone());
                            }
                        }
                        let after = positions(&planner.snapshot("t"));
                        assert_eq!(after[&id], (a.parent.clone(), a.depth, a.role));
                        assert_eq!(moved.is_some(), displaces);
                        if let Some(m) = &moved {
                            assert_eq!(before[&m.peer_id].2, PeerRole::Root);
                            assert_eq!(a.role, PeerRole::Root);
                            assert_eq!(
                                (m.parent.as_deref(), m.depth, m.role),
                                (Some(id.as_str()), 1, PeerRole::Leaf)
                            );
                            assert_eq!(after[&m.peer_id], (m.parent.clone(), m.depth, m.role));
                        }
                        // Nobody else moves.
                        for (other, pos) in &before {
                            if moved.as_ref().is_some_and(|m| &m.peer_id == other) {
                                continue;
                            }
                            assert_eq!(after.get(other), Some(pos), "join moved {other}");
                        }
                    }
                    Err(MeshError::DuplicatePeer(_)) => assert!(members.contains(&id)),
                    Err(
                        e @ (MeshError::NoAvailableParent | MeshError::TreeDepthExceeded { .. }),
                    ) => {
                        assert!(!members.contains(&id));
                        assert!(full, "refused with a root slot free");
                        assert!(!displaces, "refused though a leaf held a root slot");
                        check_refusal(&config, &before_snapshot, &lowered, &e);
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::Leave(i) => {
                let id = format!("p{i}");
                match planner.leave(&id) {
                    Ok(out) => {
                        assert!(members.remove(&id));
                        let old = before_snapshot.iter().find(|p| p.id == id).unwrap();
                        let mut expected: Vec<String> = old.parent.iter().cloned().collect();
                        expected.extend(old.children.iter().cloned());
                        assert_eq!(out.neighbours, expected, "PeerLeft goes to the neighbours");
                        for u in &out.waiting {
                            let a = out
                                .changed
                                .iter()
                                .find(|a| &a.peer_id == u)
                                .expect("waiting reported");
                            assert!(a.parent.is_none() && a.role != PeerRole::Root);
                        }
                        reported = Some(out.changed);
                        unlinked = Some(out.unlinked);
                    }
                    Err(MeshError::PeerNotFound(_)) => assert!(!members.contains(&id)),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::Reassign(i) => match planner.reassign(&format!("p{i}")) {
                Ok(replan) => {
                    reported = Some(replan.changed);
                    unlinked = Some(replan.unlinked);
                }
                Err(MeshError::PeerNotFound(_)) => assert!(!members.contains(&format!("p{i}"))),
                Err(e) => panic!("unexpected {e}"),
            },
            Op::RemoveDetaching(i) => {
                let id = format!("p{i}");
                match planner.remove_without_replan(&id) {
                    Ok(orphans) => {
                        assert!(members.remove(&id));
                        let old = before_snapshot.iter().find(|p| p.id == id).unwrap();
                        assert_eq!(orphans, old.children);
                        for o in &orphans {
                            assert_eq!(planner.assignment(o).unwrap().parent, None);
                        }
                    }
                    Err(_) => assert!(!members.contains(&id)),
                }
            }
            Op::LowerCapacity(i) => {
                let id = format!("p{i}");
                match planner.lower_capacity(&id) {
                    Ok(changed) => {
                        let old = before_snapshot.iter().find(|p| p.id == id).unwrap();
                        let cap = lowered.entry(id.clone()).or_insert(usize::MAX);
                        *cap = (*cap).min(old.children.len());
                        // Nobody moves; a role that changed is reported.
                        reported = Some(changed.into_iter().collect());
                    }
                    Err(MeshError::PeerNotFound(_)) => assert!(!members.contains(&id)),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::PlaceWaiting => {
                let replan = planner.place_waiting();
                reported = Some(replan.changed);
                unlinked = Some(replan.unlinked);
            }
            Op::Heartbeat(i) => {
                let id = format!("p{i}");
                assert_eq!(planner.heartbeat(&id, now), members.contains(&id));
                if members.contains(&id) {
                    heard.insert(id, now);
                }
            }
            Op::HeartbeatAll => {
                for id in &members {
                    assert!(planner.heartbeat(id, now));
                    heard.insert(id.clone(), now);
                }
            }
            Op::Advance(s) => {
                now += Duration::from_secs(u64::from(s));
                let timeout = Duration::from_secs(config.heartbeat_timeout_secs);
                let expected_dead: BTreeSet<String> = members
                    .iter()
                    .filter(|id| now.duration_since(heard[*id]) > timeout)
                    .cloned()
                    .collect();
                let reported_dead: BTreeSet<String> = planner.dead_peers(now).into_iter().collect();
                assert_eq!(
                    reported_dead, expected_dead,
                    "dead_peers names exactly the dead"
                );
                let outs = planner.sweep(now);
                let swept: BTreeSet<String> = outs.iter().map(|o| o.peer_id.clone()).collect();
                assert_eq!(swept, expected_dead, "sweep removes exactly the dead");
                for id in &swept {
                    members.remove(id);
                }
                unlinked = None;
            }
        }
        let after_snapshot = planner.snapshot("t");
        if let Some(changed) = reported {
            check_reported(&before, &positions(&after_snapshot), &changed);
        }
        if let Some(unlinked) = unlinked {
            let set: Links = unlinked.iter().cloned().collect();
            assert_eq!(set.len(), unlinked.len(), "an ended link reported twice");
            let expected = ended_links(&links(&before_snapshot), &links(&after_snapshot), &members);
            assert_eq!(set, expected, "the ended links are reported, and only they");
        }
        no_origin.retain(|id| members.contains(id));
        root_since_join.retain(|id| {
            after_snapshot
                .iter()
                .any(|p| &p.id == id && p.role == PeerRole::Root)
        });
        for p in &after_snapshot {
            if p.role == PeerRole::Root && no_origin.contains(&p.id) {
                assert!(
                    root_since_join.contains(&p.id),
                    "{} does not read the origin but was promoted to root",
                    p.id
                );
            }
        }
        let ids: BTreeSet<String> = after_snapshot.iter().map(|p| p.id.clone()).collect();
        assert_eq!(ids, members, "the planner holds exactly the joined peers");
        lowered.retain(|id, _| members.contains(id));
        for p in &after_snapshot {
            assert!(
                p.children.len() <= capacity_of(&config, &lowered, p),
                "{} over its capacity",
                p.id
            );
        }
        assert_eq!(planner.peer_count(), members.len());
        check_tree(&config, &after_snapshot, planner.waiting_count());
        check_summaries(&config, &lowered, &planner.summaries(), &after_snapshot);
        if let Err(e) = planner.check_invariants() {
            panic!("planner invariant: {e}");
        }
    }
}

/// The facade as the seed's callers drive it: remove a peer, then reassign
/// each orphan; a refused orphan waits whole until a later reassign.
fn run_facade(config: MeshConfig, ops: Vec<Op>) {
    let c = MeshCoordinator::new(config.clone());
    let mut members: BTreeSet<String> = BTreeSet::new();
    let mut waiting: BTreeSet<String> = BTreeSet::new();
    let reassign = |c: &MeshCoordinator, id: &str, waiting: &mut BTreeSet<String>| {
        let before = c.get_peer(id).expect("member");
        match c.reassign_peer(id) {
            Ok(a) => {
                let now = c.get_peer(id).unwrap();
                assert_eq!(
                    (a.parent, a.depth, a.role),
                    (now.parent, now.depth, now.role)
                );
                waiting.remove(id);
            }
            Err(MeshError::NoAvailableParent) => {
                assert!(waiting.contains(id), "{id} refused but was placed");
                let now = c.get_peer(id).unwrap();
                assert_eq!(now.parent, None);
                assert_eq!(
                    now.children, before.children,
                    "a refused subtree stays whole"
                );
            }
            Err(e) => panic!("unexpected {e}"),
        }
    };
    for op in ops {
        match op {
            // The facade keeps the seed's join: nobody is displaced.
            Op::Join(i, cap) | Op::JoinRelaying(i, cap, _) => {
                let id = format!("p{i}");
                match c.add_peer(id.clone(), "t".into(), cap) {
                    Ok(_) => assert!(members.insert(id)),
                    Err(MeshError::DuplicatePeer(_)) => assert!(members.contains(&id)),
                    Err(MeshError::NoAvailableParent | MeshError::TreeDepthExceeded { .. }) => {
                        assert!(!members.contains(&id))
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            // The facade has no such call.
            Op::LowerCapacity(_) => {}
            Op::Leave(i) | Op::RemoveDetaching(i) => {
                let id = format!("p{i}");
                let orphans = c.remove_peer(&id);
                if members.remove(&id) {
                    waiting.remove(&id);
                    for o in &orphans {
                        waiting.insert(o.clone());
                        reassign(&c, o, &mut waiting);
                    }
                } else {
                    assert!(orphans.is_empty());
                }
            }
            Op::Reassign(i) => {
                let id = format!("p{i}");
                if members.contains(&id) {
                    reassign(&c, &id, &mut waiting);
                } else {
                    assert_eq!(c.reassign_peer(&id), Err(MeshError::PeerNotFound(id)));
                }
            }
            Op::PlaceWaiting => {
                for id in waiting.clone() {
                    reassign(&c, &id, &mut waiting);
                }
            }
            Op::Heartbeat(i) => c.heartbeat(&format!("p{i}")),
            Op::HeartbeatAll => members.iter().for_each(|id| c.heartbeat(id)),
            // The facade reads the wall clock; time is not simulated here.
            Op::Advance(_) => assert!(c.find_dead_peers().is_empty()),
        }
        let snapshot = c.tree_snapshot();
        let ids: BTreeSet<String> = snapshot.iter().map(|p| p.id.clone()).collect();
        assert_eq!(ids, members, "the facade holds exactly the added peers");
        assert_eq!(c.peer_count(), members.len());
        check_tree(&config, &snapshot, waiting.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_long_random_sequences(
        config in config(),
        ops in prop::collection::vec(op(), 10_000),
    ) {
        run(config, PlacementPolicy::Shallowest, ops);
    }

    #[test]
    fn invariants_hold_over_long_random_sequences_capacity_first(
        config in config(),
        ops in prop::collection::vec(op(), 10_000),
    ) {
        run(config, PlacementPolicy::CapacityFirst, ops);
    }

    #[test]
    fn invariants_hold_over_long_random_sequences_stable_first(
        config in config(),
        ops in prop::collection::vec(op(), 10_000),
    ) {
        run(config, PlacementPolicy::StableFirst, ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_facade_keeps_the_invariants_over_long_random_sequences(
        config in config(),
        ops in prop::collection::vec(op(), 10_000),
    ) {
        run_facade(config, ops);
    }
}

/// Without leaves, a full tree built of equal-capacity peers is as shallow as
/// possible, and leaves keep it that way: a leave never deepens the tree.
#[test]
fn leaves_never_deepen_a_uniform_tree() {
    let config = MeshConfig {
        max_children: 3,
        root_peer_count: 4,
        max_depth: 10,
        heartbeat_timeout_secs: 10,
    };
    for policy in POLICIES {
        uniform_tree_under(config.clone(), policy);
    }
}

fn uniform_tree_under(config: MeshConfig, policy: PlacementPolicy) {
    let mut planner = Planner::with_policy(config, policy);
    let now = Instant::now();
    for i in 0..2000 {
        planner.join(&format!("p{i}"), None, now).unwrap();
    }
    let depth = |p: &Planner| p.snapshot("t").iter().map(|i| i.depth).max().unwrap();
    let start = depth(&planner);
    // The shallowest tree of 2,000 with 4 roots and 3 children each.
    let (mut held, mut level, mut shallowest) = (4u32, 4u32, 0u32);
    while held < 2000 {
        level *= 3;
        held += level;
        shallowest += 1;
    }
    assert_eq!(start, shallowest);
    for (next, i) in (2000..).zip((0..2000).step_by(3)) {
        planner.leave(&format!("p{i}")).unwrap();
        planner.join(&format!("p{next}"), None, now).unwrap();
        assert!(depth(&planner) <= start);
        assert_eq!(planner.waiting_count(), 0);
    }
    planner.check_invariants().unwrap();
}
