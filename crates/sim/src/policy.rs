//! The planner policies the simulator can drive, each through the same
//! calls as its real caller.

use crate::scenario::PolicyKind;
use meshrelay_mesh::{
    MeshConfig, MeshCoordinator, PeerAssignment, PeerRole, PlacementPolicy, Planner,
};
use std::collections::BTreeSet;
use std::time::Instant;

/// What one departure told the peers: the positions that changed and the
/// signal messages it cost.
#[derive(Debug, Default)]
pub struct Departure {
    /// Every remaining peer whose position changed (an orphan that found no
    /// place is listed with no parent and a non-root role).
    pub changed: Vec<PeerAssignment>,
    /// `PeerLeft` messages sent.
    pub peer_lefts: usize,
}

/// The topology side of a relay, as the simulator drives it.
pub trait Policy {
    /// Places a newcomer that can relay to `capacity` children. Returns its
    /// assignment first, then every other peer the join moved; `None` when
    /// the join was refused.
    fn join(&mut self, id: &str, capacity: u32, now: Instant) -> Option<Vec<PeerAssignment>>;
    /// Removes a peer and re-plans what it leaves.
    fn leave(&mut self, id: &str) -> Departure;
    /// The once-a-second housekeeping of the policy's caller; returns the
    /// peers it moved.
    fn tick(&mut self) -> Vec<PeerAssignment>;
    /// A peer's current position.
    fn assignment(&self, id: &str) -> Option<PeerAssignment>;
    /// Peers in the tree.
    fn peer_count(&self) -> usize;
    /// Peers fed by the origin as roots.
    fn root_count(&self) -> usize;
    /// Peers waiting, parentless, for a place (fed by the origin meanwhile).
    fn waiting_count(&self) -> usize;
    /// Every peer as `(id, parent, depth, role)`, in a fixed order, for checks.
    fn positions(&self) -> Vec<(String, Option<String>, u32, PeerRole)>;
}

/// The policy of `kind` with these planner limits.
pub fn new_policy(kind: PolicyKind, config: MeshConfig) -> Box<dyn Policy> {
    match kind {
        PolicyKind::Seed => Box::new(SeedPolicy::new(config)),
        PolicyKind::Shallowest => Box::new(MeshrelayPolicy::with_placement(
            config,
            PlacementPolicy::Shallowest,
        )),
        PolicyKind::CapacityFirst => Box::new(MeshrelayPolicy::with_placement(
            config,
            PlacementPolicy::CapacityFirst,
        )),
        PolicyKind::StableFirst => Box::new(MeshrelayPolicy::with_placement(
            config,
            PlacementPolicy::StableFirst,
        )),
    }
}

/// The current planner, driven as `meshrelay serve` drives it.
pub struct MeshrelayPolicy {
    planner: Planner,
}

impl MeshrelayPolicy {
    /// An empty tree with these limits, placing peers by `placement`.
    pub fn with_placement(config: MeshConfig, placement: PlacementPolicy) -> Self {
        Self {
            planner: Planner::with_policy(config, placement),
        }
    }
}

impl Policy for MeshrelayPolicy {
    fn join(&mut self, id: &str, capacity: u32, now: Instant) -> Option<Vec<PeerAssignment>> {
        let (me, displaced) = self
            .planner
            .join_relaying(id, Some(capacity), true, now)
            .ok()?;
        let mut out = vec![me];
        out.extend(displaced);
        // As the server: waiting peers are offered the room a join made.
        if self.planner.waiting_count() > 0 {
            out.extend(self.planner.place_waiting().changed);
        }
        Some(out)
    }

    fn leave(&mut self, id: &str) -> Departure {
        match self.planner.leave(id) {
            Ok(outcome) => Departure {
                // Each ended link costs a PeerLeft to both of its ends.
                peer_lefts: outcome.neighbours.len() + 2 * outcome.unlinked.len(),
                changed: outcome.changed,
            },
            Err(_) => Departure::default(),
        }
    }

    fn tick(&mut self) -> Vec<PeerAssignment> {
        if self.planner.waiting_count() == 0 {
            return Vec::new();
        }
        self.planner.place_waiting().changed
    }

    fn assignment(&self, id: &str) -> Option<PeerAssignment> {
        self.planner.assignment(id)
    }

    fn peer_count(&self) -> usize {
        self.planner.peer_count()
    }

    fn root_count(&self) -> usize {
        self.planner.root_count()
    }

    fn waiting_count(&self) -> usize {
        self.planner.waiting_count()
    }

    fn positions(&self) -> Vec<(String, Option<String>, u32, PeerRole)> {
        self.planner
            .summaries()
            .into_iter()
            .map(|p| (p.id, p.parent, p.depth, p.role))
            .collect()
    }
}

/// The seed's behaviour through the `lvqr-mesh` facade.
pub struct SeedPolicy {
    mesh: MeshCoordinator,
    /// Orphans `reassign_peer` refused, retried each second.
    refused: BTreeSet<String>,
    max_children: u32,
}

impl SeedPolicy {
    /// An empty mesh with these limits.
    pub fn new(config: MeshConfig) -> Self {
        Self {
            max_children: config.effective_capacity(None),
            mesh: MeshCoordinator::new(config),
            refused: BTreeSet::new(),
        }
    }

    /// `reassign_peer`, reporting a refused orphan as waiting (no parent).
    fn reassign(&mut self, id: &str) -> Option<PeerAssignment> {
        match self.mesh.reassign_peer(id) {
            Ok(a) => {
                self.refused.remove(id);
                Some(a)
            }
            Err(meshrelay_mesh::MeshError::NoAvailableParent) => {
                let newly = self.refused.insert(id.to_string());
                let info = self.mesh.get_peer(id)?;
                let role = if info.effective_capacity(self.max_children as usize) == 0 {
                    PeerRole::Leaf
                } else {
                    PeerRole::Relay
                };
                newly.then_some(PeerAssignment {
                    peer_id: info.id,
                    role,
                    parent: None,
                    depth: 0,
                })
            }
            Err(_) => {
                self.refused.remove(id);
                None
            }
        }
    }
}

impl Policy for SeedPolicy {
    fn join(&mut self, id: &str, capacity: u32, _now: Instant) -> Option<Vec<PeerAssignment>> {
        self.mesh
            .add_peer(id.to_string(), "sim".to_string(), Some(capacity))
            .ok()
            .map(|a| vec![a])
    }

    fn leave(&mut self, id: &str) -> Departure {
        self.refused.remove(id);
        let had_parent = self.mesh.get_peer(id).is_some_and(|p| p.parent.is_some());
        let orphans = self.mesh.remove_peer(id);
        let peer_lefts = orphans.len() + usize::from(had_parent);
        let changed = orphans.iter().filter_map(|o| self.reassign(o)).collect();
        Departure {
            changed,
            peer_lefts,
        }
    }

    fn tick(&mut self) -> Vec<PeerAssignment> {
        let waiting: Vec<String> = self.refused.iter().cloned().collect();
        waiting
            .iter()
            .filter_map(|id| match self.mesh.reassign_peer(id) {
                Ok(a) => {
                    self.refused.remove(id);
                    Some(a)
                }
                Err(meshrelay_mesh::MeshError::NoAvailableParent) => None,
                Err(_) => {
                    self.refused.remove(id);
                    None
                }
            })
            .collect()
    }

    fn assignment(&self, id: &str) -> Option<PeerAssignment> {
        let info = self.mesh.get_peer(id)?;
        let role = info.role;
        Some(PeerAssignment {
            peer_id: info.id,
            role,
            parent: info.parent,
            depth: info.depth,
        })
    }

    fn peer_count(&self) -> usize {
        self.mesh.peer_count()
    }

    fn root_count(&self) -> usize {
        self.mesh.root_count()
    }

    fn waiting_count(&self) -> usize {
        self.refused.len()
    }

    fn positions(&self) -> Vec<(String, Option<String>, u32, PeerRole)> {
        self.mesh
            .tree_snapshot()
            .into_iter()
            .map(|p| (p.id, p.parent, p.depth, p.role))
            .collect()
    }
}
