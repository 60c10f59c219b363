//! Read-only views of the tree: positions, counts, and the cheap listing.

use super::{Planner, State, NONE};
use crate::tree::{PeerAssignment, PeerRole, PeerSummary};

impl Planner {
    /// The role `i` is told: a root, else a leaf when it may have no children.
    pub(super) fn role(&self, i: u32) -> PeerRole {
        let n = self.node(i);
        match n.state {
            State::Root => PeerRole::Root,
            _ if n.capacity == 0 => PeerRole::Leaf,
            _ => PeerRole::Relay,
        }
    }

    /// The position of `i` as sent in `AssignParent`.
    pub(super) fn assignment_of(&self, i: u32) -> PeerAssignment {
        let n = self.node(i);
        PeerAssignment {
            peer_id: n.id.to_string(),
            role: self.role(i),
            parent: (n.parent != NONE).then(|| self.node(n.parent).id.to_string()),
            depth: n.depth,
        }
    }

    /// The peer's current position.
    pub fn assignment(&self, id: &str) -> Option<PeerAssignment> {
        self.slot_of(id).map(|i| self.assignment_of(i))
    }

    /// Whether `a` and `b` are parent and child (either way round).
    pub fn are_neighbours(&self, a: &str, b: &str) -> bool {
        match (self.slot_of(a), self.slot_of(b)) {
            (Some(a), Some(b)) => self.node(a).parent == b || self.node(b).parent == a,
            _ => false,
        }
    }

    /// Number of peers.
    pub fn peer_count(&self) -> usize {
        self.ids.len()
    }

    /// Number of roots.
    pub fn root_count(&self) -> usize {
        self.roots
    }

    /// Number of peers waiting for a place (each fed by the origin meanwhile).
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Percentage of peers fed by another peer rather than by the origin
    /// (roots and waiting peers are fed by the origin). O(1).
    pub fn offload_percentage(&self) -> f64 {
        let peers = self.peer_count();
        if peers == 0 {
            return 0.0;
        }
        let from_origin = self.roots + self.waiting.len();
        (peers - from_origin) as f64 / peers as f64 * 100.0
    }

    /// Every peer's place, in slot order: [`Planner::snapshot`] without the
    /// children's ids, for listing a large tree cheaply.
    pub fn summaries(&self) -> Vec<PeerSummary> {
        let mut out = Vec::with_capacity(self.ids.len());
        for (i, slot) in self.nodes.iter().enumerate() {
            let Some(n) = slot else { continue };
            out.push(PeerSummary {
                id: n.id.to_string(),
                role: self.role(i as u32),
                parent: (n.parent != NONE).then(|| self.node(n.parent).id.to_string()),
                depth: n.depth,
                child_count: n.child_count as usize,
                forwarded_frames: n.forwarded_frames,
                capacity: n.claimed,
                effective_capacity: n.capacity,
            });
        }
        out
    }
}
