//! The facade under concurrent callers: no interleaving exceeds a cap,
//! duplicates one another, or breaks an invariant.

use meshrelay_mesh::{MeshConfig, MeshCoordinator, MeshError, PeerRole};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

#[test]
fn concurrent_joins_of_the_same_ids_admit_each_id_once_within_the_caps() {
    let coord = Arc::new(MeshCoordinator::new(MeshConfig {
        max_children: 2,
        root_peer_count: 4,
        max_depth: 20,
        heartbeat_timeout_secs: 10,
    }));
    let threads = 6;
    let admitted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (coord, admitted, refused, barrier) = (
                coord.clone(),
                admitted.clone(),
                refused.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                for i in 0..500 {
                    match coord.add_peer(format!("p{i}"), "live/t".into(), None) {
                        Ok(_) => admitted.fetch_add(1, Ordering::Relaxed),
                        Err(MeshError::DuplicatePeer(_)) => refused.fetch_add(1, Ordering::Relaxed),
                        Err(e) => panic!("unexpected {e}"),
                    };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 500);
    assert_eq!(refused.load(Ordering::Relaxed), 500 * (threads - 1));
    assert_eq!(coord.peer_count(), 500);
    assert_eq!(coord.root_count(), 4);
    for p in coord.tree_snapshot() {
        assert!(p.children.len() <= 2);
    }
    coord.check_invariants().unwrap();
}

#[test]
fn mixed_concurrent_operations_keep_every_invariant() {
    let coord = Arc::new(MeshCoordinator::new(MeshConfig {
        max_children: 3,
        root_peer_count: 3,
        max_depth: 5,
        heartbeat_timeout_secs: 10,
    }));
    let threads = 4;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let done = Arc::new(AtomicBool::new(false));
    // Readers see a consistent tree between any two writes.
    let reader = {
        let (coord, barrier, done) = (coord.clone(), barrier.clone(), done.clone());
        thread::spawn(move || {
            barrier.wait();
            let mut rounds = 0u32;
            while !done.load(Ordering::Acquire) || rounds == 0 {
                coord.check_invariants().unwrap();
                let snapshot = coord.tree_snapshot();
                let ids: std::collections::HashSet<&str> =
                    snapshot.iter().map(|p| p.id.as_str()).collect();
                for p in &snapshot {
                    assert!(p.children.len() <= p.effective_capacity(3));
                    assert!(p.children.iter().all(|c| ids.contains(c.as_str())));
                }
                if let Some(p) = snapshot.first() {
                    // It may have left since; if not, it is a whole peer.
                    if let Some(q) = coord.get_peer(&p.id) {
                        assert_eq!(q.id, p.id);
                    }
                }
                let offload = coord.offload_percentage();
                assert!((0.0..=100.0).contains(&offload), "{offload}");
                assert!(coord.find_dead_peers().is_empty());
                rounds += 1;
            }
            rounds
        })
    };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (coord, barrier) = (coord.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                // A cheap deterministic generator per thread: ids overlap across threads.
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ t as u64;
                for _ in 0..4000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = format!("p{}", x % 300);
                    match x % 7 {
                        0..=2 => {
                            let cap = (x >> 8) % 5;
                            let _ = coord.add_peer(id, "live/t".into(), Some(cap as u32));
                        }
                        3 => {
                            for orphan in coord.remove_peer(&id) {
                                let _ = coord.reassign_peer(&orphan);
                            }
                        }
                        4 => {
                            let _ = coord.reassign_peer(&id);
                        }
                        5 => coord.heartbeat(&id),
                        _ => coord.record_forward_report(&id, x >> 40),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    done.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    coord.check_invariants().unwrap();
    let snapshot = coord.tree_snapshot();
    assert_eq!(snapshot.len(), coord.peer_count());
    let roots = snapshot.iter().filter(|p| p.role == PeerRole::Root).count();
    assert!(roots <= 3);
    for p in &snapshot {
        assert!(p.children.len() <= p.effective_capacity(3));
        assert!(p.parent.is_some() || p.depth == 0);
    }
}
