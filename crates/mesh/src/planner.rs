//! The pure planner core. (API stub: implementation in progress.)

use crate::config::MeshConfig;
use crate::error::MeshError;
use crate::tree::{PeerAssignment, PeerId, PeerInfo};
use std::time::Instant;

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
    /// Peers that could not be placed for now (no free slot within the depth
    /// limit). They are also in `changed`, with no parent; they wait, fed by
    /// the origin, until [`Planner::place_detached`] finds them a place.
    pub unplaced: Vec<PeerId>,
}

/// One track's relay tree.
#[derive(Debug)]
pub struct Planner {
    config: MeshConfig,
}

impl Planner {
    /// An empty tree with these limits.
    pub fn new(config: MeshConfig) -> Self {
        Self { config }
    }

    /// The limits this tree was built with.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// Places a new peer: a root while root slots are free, else under the
    /// shallowest peer with a free slot (ties to the fewest children).
    /// `capacity` is clamped to `max_children`; 0 means never a parent.
    pub fn join(
        &mut self,
        _id: &str,
        _capacity: Option<u32>,
        _now: Instant,
    ) -> Result<PeerAssignment, MeshError> {
        todo!()
    }

    /// Removes a peer and re-plans its children in the same step.
    pub fn leave(&mut self, _id: &str) -> Result<LeaveOutcome, MeshError> {
        todo!()
    }

    /// Records that the peer was heard from at `now`. Returns false for an unknown id.
    pub fn heartbeat(&mut self, _id: &str, _now: Instant) -> bool {
        todo!()
    }

    /// Replaces the peer's cumulative forwarded count. Returns false for an unknown id.
    pub fn record_forward_report(&mut self, _id: &str, _forwarded_frames: u64) -> bool {
        todo!()
    }

    /// Removes every peer not heard from for longer than the heartbeat
    /// timeout, each as one [`Planner::leave`].
    pub fn sweep(&mut self, _now: Instant) -> Vec<LeaveOutcome> {
        todo!()
    }

    /// Tries to place the peers waiting without a parent; returns what changed.
    pub fn place_detached(&mut self) -> Vec<PeerAssignment> {
        todo!()
    }

    /// Whether `a` and `b` are parent and child (either way round).
    pub fn are_neighbours(&self, _a: &str, _b: &str) -> bool {
        todo!()
    }

    /// The peer's current position.
    pub fn assignment(&self, _id: &str) -> Option<PeerAssignment> {
        todo!()
    }

    /// A copy of one peer.
    pub fn peer(&self, _id: &str, _track: &str) -> Option<PeerInfo> {
        todo!()
    }

    /// Number of peers.
    pub fn peer_count(&self) -> usize {
        todo!()
    }

    /// Number of roots.
    pub fn root_count(&self) -> usize {
        todo!()
    }

    /// Percentage of peers fed by another peer rather than by the origin.
    pub fn offload_percentage(&self) -> f64 {
        todo!()
    }

    /// A copy of every peer, O(n).
    pub fn snapshot(&self, _track: &str) -> Vec<PeerInfo> {
        todo!()
    }
}

impl Planner {
    /// Removes a peer and detaches its children without re-planning them
    /// (each keeps its subtree and waits, parentless, for
    /// [`Planner::reassign`] or [`Planner::place_detached`]). Returns them.
    pub fn remove_detaching(&mut self, _id: &str) -> Result<Vec<PeerId>, MeshError> {
        todo!()
    }

    /// Moves a peer (with its subtree) to the best place outside its own
    /// subtree and other than its current parent; a waiting peer is placed.
    /// A peer with nowhere better to go stays where it is.
    pub fn reassign(&mut self, _id: &str) -> Result<Vec<PeerAssignment>, MeshError> {
        todo!()
    }

    /// Ids of peers not heard from for longer than the timeout, O(n).
    pub fn dead_peers(&self, _now: Instant) -> Vec<PeerId> {
        todo!()
    }

    /// Checks every tree invariant, O(n).
    pub fn check_invariants(&self) -> Result<(), String> {
        todo!()
    }
}
