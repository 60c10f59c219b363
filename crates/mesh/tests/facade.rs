//! The seed-compatible facade: the seed's types and error semantics, over
//! the planner.

use meshrelay_mesh::{MeshConfig, MeshCoordinator, MeshError, PeerInfo, PeerRole};

fn coordinator(max_children: usize, roots: usize, max_depth: u32) -> MeshCoordinator {
    MeshCoordinator::new(MeshConfig {
        max_children,
        root_peer_count: roots,
        max_depth,
        heartbeat_timeout_secs: 10,
    })
}

fn parent(c: &MeshCoordinator, id: &str) -> Option<String> {
    c.get_peer(id).expect("known peer").parent
}

#[test]
fn an_orphan_whose_subtree_fits_nowhere_is_refused_and_kept_whole() {
    // r -> a -> b -> c, then a goes: b waits with c below it.
    let c = coordinator(1, 1, 3);
    for id in ["r", "a", "b", "c"] {
        c.add_peer(id.into(), "t".into(), None).unwrap();
    }
    assert_eq!(c.remove_peer("a"), vec!["b".to_string()]);
    // z takes a's old slot; w leaves one free slot, at depth 2, where b
    // alone would fit but b with c would not.
    c.add_peer("z".into(), "t".into(), None).unwrap();
    c.add_peer("w".into(), "t".into(), None).unwrap();
    assert_eq!(parent(&c, "w").as_deref(), Some("z"));

    assert_eq!(c.reassign_peer("b"), Err(MeshError::NoAvailableParent));
    assert_eq!(parent(&c, "b"), None);
    assert_eq!(parent(&c, "c").as_deref(), Some("b"));
    assert_eq!(c.get_peer("w").unwrap().children, Vec::<String>::new());

    // Once w goes, z's slot at depth 1 holds b and c.
    c.remove_peer("w");
    let placed = c.reassign_peer("b").unwrap();
    assert_eq!((placed.parent.as_deref(), placed.depth), (Some("z"), 2));
    assert_eq!(c.get_peer("c").unwrap().depth, 3);
}

#[test]
fn a_live_peer_with_nowhere_better_to_go_stays_put() {
    let c = coordinator(2, 1, 4);
    for id in ["r", "a"] {
        c.add_peer(id.into(), "t".into(), None).unwrap();
    }
    let before = c.get_peer("a").unwrap();
    let after = c.reassign_peer("a").unwrap();
    assert_eq!((after.parent, after.depth), (before.parent, before.depth));
    assert_eq!(
        c.reassign_peer("nobody"),
        Err(MeshError::PeerNotFound("nobody".into()))
    );
}

#[test]
fn a_full_depth_limited_tree_refuses_with_the_seed_errors() {
    let c = coordinator(1, 1, 1);
    c.add_peer("r".into(), "t".into(), None).unwrap();
    c.add_peer("a".into(), "t".into(), None).unwrap();
    assert_eq!(
        c.add_peer("b".into(), "t".into(), None),
        Err(MeshError::TreeDepthExceeded { max: 1 })
    );
    let full = coordinator(1, 1, 3);
    full.add_peer("r".into(), "t".into(), Some(0)).unwrap();
    assert_eq!(
        full.add_peer("a".into(), "t".into(), None),
        Err(MeshError::NoAvailableParent)
    );
    // The seed's peer-limit variant exists for callers that name it.
    let limit = MeshError::MeshFull { max: 5 };
    assert_eq!(limit.to_string(), "mesh is full (max peers: 5)");
}

#[test]
fn peer_info_serialises_like_the_seed_without_its_instants() {
    let c = coordinator(3, 1, 4);
    c.add_peer("r".into(), "live/t".into(), Some(2)).unwrap();
    c.add_peer("a".into(), "live/t".into(), None).unwrap();
    c.record_forward_report("r", 7);
    let r = c.get_peer("r").unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": "r", "track": "live/t", "role": "Root", "parent": null,
            "children": ["a"], "depth": 0, "upload_kbps": 0,
            "forwarded_frames": 7, "capacity": 2
        })
    );
    let back: PeerInfo = serde_json::from_value(json).unwrap();
    assert_eq!(back.role, PeerRole::Root);
    assert_eq!((back.forwarded_frames, back.last_heartbeat), (7, None));
    let upload: u32 = back.upload_kbps;
    assert_eq!(upload, 0);
    // A snapshot serialises as a list of the same shape.
    let all = serde_json::to_value(c.tree_snapshot()).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(2));
}

#[test]
fn each_peer_keeps_the_track_it_named() {
    let c = coordinator(3, 2, 4);
    for (id, track) in [("a", "live/a"), ("b", "live/b"), ("c", "live/a")] {
        c.add_peer(id.into(), track.into(), None).unwrap();
    }
    let track = |id: &str| c.get_peer(id).expect("known peer").track;
    assert_eq!(
        (track("a"), track("b"), track("c")),
        ("live/a".into(), "live/b".into(), "live/a".into())
    );
    let listed: Vec<(String, String)> = c
        .tree_snapshot()
        .into_iter()
        .map(|p| (p.id, p.track))
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(listed.contains(&("b".into(), "live/b".into())));
    assert!(listed.contains(&("c".into(), "live/a".into())));
    // An id that comes back names its track afresh.
    c.remove_peer("b");
    c.add_peer("b".into(), "live/a".into(), None).unwrap();
    assert_eq!(track("b"), "live/a");
    c.remove_peer("a");
    c.add_peer("a".into(), "live/c".into(), None).unwrap();
    assert_eq!((track("a"), track("c")), ("live/c".into(), "live/a".into()));
}
