//! What the seed-compatible facade needs beyond the planner's own
//! operations: a join that keeps the caller's id, a removal that leaves the
//! orphans waiting, a reassign that never splits a subtree, and full copies
//! of peers (`PeerInfo`).

use super::{Planner, Replan, Touched};
use crate::error::MeshError;
use crate::tree::{PeerAssignment, PeerId, PeerInfo};
use std::borrow::Cow;
use std::time::Instant;

impl Planner {
    /// [`Planner::join`] keeping the caller's id rather than a copy of it.
    pub(crate) fn join_owned(
        &mut self,
        id: PeerId,
        capacity: Option<u32>,
        now: Instant,
    ) -> Result<PeerAssignment, MeshError> {
        let hash = self.ids.hash(&id);
        self.join_with(Cow::Owned(id), hash, capacity, true, now)
    }

    /// Removes a peer and detaches its children without re-planning them
    /// (each keeps its subtree and waits, parentless, for
    /// [`Planner::reassign`] or [`Planner::place_waiting`]). Returns them.
    pub fn remove_without_replan(&mut self, id: &str) -> Result<Vec<PeerId>, MeshError> {
        let gone = self.require(id)?;
        let mut touched = Touched::discarding();
        let children = self.children_of(gone);
        for &c in &children {
            self.detach(c, &mut touched);
        }
        self.unlink(gone);
        let ids = children
            .iter()
            .map(|&c| self.node(c).id.to_string())
            .collect();
        self.remove_slot(gone);
        Ok(ids)
    }

    /// As [`Planner::reassign`], but a waiting peer is placed with its whole
    /// subtree or not at all (never split), so the only peers that move are
    /// the peer and its descendants, whose parents stay the same.
    pub fn reassign_whole(&mut self, id: &str) -> Result<Replan, MeshError> {
        self.reassign_with(id, false)
    }

    /// [`Planner::reassign_whole`] for a caller that reads the new position
    /// itself: no report is built, so moving a subtree of k peers allocates
    /// none of the 2k strings a report would hold.
    pub(crate) fn reassign_whole_unreported(&mut self, id: &str) -> Result<(), MeshError> {
        self.reassign_noting(id, false, &mut Touched::discarding())
    }

    /// A copy of one peer, labelled with `track`.
    pub fn peer(&self, id: &str, track: &str) -> Option<PeerInfo> {
        self.slot_of(id).map(|i| self.info(i, track))
    }

    /// A copy of every peer, labelled with `track`, O(n).
    pub fn snapshot(&self, track: &str) -> Vec<PeerInfo> {
        (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].is_some())
            .map(|i| self.info(i, track))
            .collect()
    }

    /// The full copy of `i`, labelled with `track`.
    fn info(&self, i: u32, track: &str) -> PeerInfo {
        let n = self.node(i);
        let a = self.assignment_of(i);
        PeerInfo {
            id: a.peer_id,
            track: track.to_string(),
            role: a.role,
            parent: a.parent,
            children: self
                .children_of(i)
                .into_iter()
                .map(|c| self.node(c).id.to_string())
                .collect(),
            depth: n.depth,
            upload_kbps: 0,
            forwarded_frames: n.forwarded_frames,
            capacity: n.claimed,
            joined_at: n.joined_at,
            last_heartbeat: Some(n.last_heartbeat),
        }
    }
}
