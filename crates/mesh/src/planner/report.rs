//! What an operation changed: the old positions of the peers it touched,
//! turned into the reports the server sends on.

use super::{Planner, NONE};
use crate::tree::{PeerAssignment, PeerId, PeerRole};

/// What a re-plan (a reassign, or placing waiting peers) changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replan {
    /// The new position of every peer whose parent, role or depth changed,
    /// each once: the peers to send a new `AssignParent` to.
    pub changed: Vec<PeerAssignment>,
    /// Parent-child links between two remaining peers that the re-plan
    /// ended, as `(parent, child)`: both ends must drop their connection.
    pub unlinked: Vec<(PeerId, PeerId)>,
}

/// What one leave changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaveOutcome {
    /// The peer that left.
    pub peer_id: PeerId,
    /// Its tree neighbours before it left (its parent, then its children): the
    /// peers to send `PeerLeft` to.
    pub neighbours: Vec<PeerId>,
    /// The new position of every remaining peer whose parent, role or depth
    /// changed, each once: the peers to send a new `AssignParent` to.
    pub changed: Vec<PeerAssignment>,
    /// Parent-child links between two remaining peers that the leave's
    /// re-plan ended, as `(parent, child)` (links to the leaving peer are
    /// in `neighbours`): both ends must drop their connection.
    pub unlinked: Vec<(PeerId, PeerId)>,
    /// Peers this leave left waiting for a place (no free slot within the
    /// depth limit, or none they may take). They are also in `changed`, with
    /// no parent; they wait, fed by the origin when they can read it, until
    /// [`Planner::place_waiting`] finds them a place.
    pub waiting: Vec<PeerId>,
}

/// Records the old position of peers an operation touches, so the operation
/// can report exactly those whose position changed.
pub(super) struct Touched {
    /// Slot, parent, depth and role before the operation, per note.
    old: Vec<(u32, u32, u32, PeerRole)>,
    /// Whether notes are kept; an operation whose caller wants no report
    /// keeps none.
    keep: bool,
}

impl Default for Touched {
    fn default() -> Self {
        Self {
            old: Vec::new(),
            keep: true,
        }
    }
}

impl Touched {
    /// A record that keeps nothing, for an operation that reports nothing.
    pub(super) fn discarding() -> Self {
        Self {
            old: Vec::new(),
            keep: false,
        }
    }

    /// Remembers `i`'s position before the operation first touches it.
    pub(super) fn note(&mut self, planner: &Planner, i: u32) {
        if self.keep {
            let n = planner.node(i);
            self.old.push((i, n.parent, n.depth, planner.role(i)));
        }
    }

    /// The final position of every touched peer that still exists and
    /// moved, and the links to old parents that still exist. Operations
    /// insert no peer, so a slot live now held the same peer before.
    pub(super) fn replan(mut self, planner: &Planner) -> Replan {
        // Keep each peer's first (oldest) record.
        self.old.sort_by_key(|&(i, ..)| i);
        self.old.dedup_by_key(|&mut (i, ..)| i);
        let live = |i: u32| i != NONE && planner.nodes[i as usize].is_some();
        let mut out = Replan::default();
        for (i, parent, depth, role) in self.old {
            if !live(i) {
                continue;
            }
            let n = planner.node(i);
            if n.parent != parent && live(parent) {
                out.unlinked
                    .push((planner.node(parent).id.to_string(), n.id.to_string()));
            }
            if n.parent != parent || n.depth != depth || planner.role(i) != role {
                out.changed.push(planner.assignment_of(i));
            }
        }
        out
    }
}
