//! The operations that change the tree: join, leave, reassign, placing the
//! waiting peers, lowering a capacity, and recording forward reports.

use super::ids::IdHash;
use super::placement::Prefer;
use super::{LeaveOutcome, PlacementPolicy, Planner, Replan, State, Touched, NONE};
use crate::error::MeshError;
use crate::tree::{PeerAssignment, PeerRole};
use std::borrow::Cow;
use std::time::Instant;

impl Planner {
    /// Places a new peer: a root while root slots are free, else under the
    /// shallowest peer with a free slot (ties to the fewest children); with
    /// `PlacementPolicy::CapacityFirst` a peer of capacity 0 goes under the
    /// deepest free slot instead (ties to the fewest children), and takes a
    /// root slot only when no placed peer has a free slot.
    /// `capacity` is clamped to `max_children`; 0 means never a parent.
    /// An id already in the tree is refused, never overwritten. The peer is
    /// taken to read the origin on its own, so it may be promoted later.
    pub fn join(
        &mut self,
        id: &str,
        capacity: Option<u32>,
        now: Instant,
    ) -> Result<PeerAssignment, MeshError> {
        self.join_with(Cow::Borrowed(id), self.ids.hash(id), capacity, true, now)
    }

    /// [`Planner::join`] of an id with this hash, saying whether the peer
    /// reads the origin on its own.
    pub(super) fn join_with(
        &mut self,
        id: Cow<'_, str>,
        hash: IdHash,
        capacity: Option<u32>,
        reads_origin: bool,
        now: Instant,
    ) -> Result<PeerAssignment, MeshError> {
        if self.find_slot(&id, hash).is_some() {
            return Err(MeshError::DuplicatePeer(id.into_owned()));
        }
        // Capacity-first: a peer that cannot relay leaves root slots to
        // relays while one has room, and takes the deepest free slot (the
        // least loaded parent at that depth).
        let edge = self.policy == PlacementPolicy::CapacityFirst
            && self.config.effective_capacity(capacity) == 0;
        let root_free = self.roots < self.config.root_peer_count;
        let parent = if root_free && (!edge || self.open.is_empty()) {
            NONE
        } else {
            let best = if edge {
                // The deepest depth with a free slot, fewest children there.
                let deepest = self.open.last_key().map(|(d, _)| d);
                deepest.and_then(|d| self.open.first_from((d, 0)))
            } else {
                self.open.first()
            };
            match best {
                Some(p) => p,
                None if self.deep_free > 0 || self.config.max_depth == 0 => {
                    return Err(MeshError::TreeDepthExceeded {
                        max: self.config.max_depth as usize,
                    })
                }
                None => return Err(MeshError::NoAvailableParent),
            }
        };
        let i = self.insert(id, hash, capacity, reads_origin, now);
        if parent == NONE {
            self.set_state(i, State::Root);
        } else {
            let depth = self.node(parent).depth + 1;
            self.node_mut(i).depth = depth;
            self.set_state(i, State::Attached);
            self.link(parent, i);
        }
        Ok(self.assignment_of(i))
    }

    /// [`Planner::join`], except that a newcomer that can relay (capacity
    /// above 0) arriving while every root slot is taken and one is held by
    /// a leaf (capacity 0) takes that slot, and the leaf becomes its first
    /// child at depth 1. Origin fan-out is then never spent on a peer that
    /// feeds nobody while a relay could use it, and a track whose first
    /// peers are all leaves does not refuse everyone after them. Returns the
    /// newcomer's assignment and, when a leaf moved, the leaf's new one.
    ///
    /// `reads_origin` says whether the peer reads the origin on its own
    /// when it is a root or waiting: one that does not becomes a root only
    /// here, at its own join (where its client learns its role), and is
    /// never promoted later.
    pub fn join_relaying(
        &mut self,
        id: &str,
        capacity: Option<u32>,
        reads_origin: bool,
        now: Instant,
    ) -> Result<(PeerAssignment, Option<PeerAssignment>), MeshError> {
        let relays = self.config.effective_capacity(capacity) > 0;
        // With a depth limit of 0 the leaf would have nowhere to go.
        let full = self.roots >= self.config.root_peer_count && self.config.max_depth >= 1;
        let hash = self.ids.hash(id);
        let leaf = match self.leaf_roots.first() {
            Some(&l) if relays && full && self.find_slot(id, hash).is_none() => l,
            _ => {
                return self
                    .join_with(Cow::Borrowed(id), hash, capacity, reads_origin, now)
                    .map(|a| (a, None))
            }
        };
        // The newcomer takes the leaf's root slot; the leaf goes under it.
        let me = self.insert(Cow::Borrowed(id), hash, capacity, reads_origin, now);
        self.set_state(leaf, State::Attached);
        self.set_state(me, State::Root);
        self.update(leaf, |n| n.depth = 1);
        self.link(me, leaf);
        Ok((self.assignment_of(me), Some(self.assignment_of(leaf))))
    }

    /// The peer has shown that it cannot feed as many children as it has
    /// slots (it dropped children it could not keep up with): its capacity
    /// falls to the number of children it has now, never below, so the
    /// slots those children freed are not refilled. Nobody moves. Returns
    /// its new assignment when its role changed (a childless relay becomes
    /// a leaf).
    pub fn lower_capacity(&mut self, id: &str) -> Result<Option<PeerAssignment>, MeshError> {
        let i = self.require(id)?;
        let (children, capacity, root) = {
            let n = self.node(i);
            (n.child_count, n.capacity, n.state == State::Root)
        };
        if children >= capacity {
            return Ok(None);
        }
        let before = self.role(i);
        self.update(i, |n| n.capacity = children);
        if root && children == 0 {
            self.leaf_roots.insert(i);
        }
        Ok((self.role(i) != before).then(|| self.assignment_of(i)))
    }

    /// Removes a peer and re-plans its children in the same step: a childless
    /// peer takes its place and hosts its children at their old depth; those
    /// it cannot host are placed elsewhere with their subtrees, outside their
    /// own subtree. A freed root slot is refilled. Waiting peers are placed
    /// where the leave freed room.
    pub fn leave(&mut self, id: &str) -> Result<LeaveOutcome, MeshError> {
        let gone = self.require(id)?;
        let mut touched = Touched::default();
        let (parent, depth, state) = {
            let n = self.node(gone);
            (n.parent, n.depth, n.state)
        };
        let children = self.children_of(gone);
        let mut neighbours = Vec::with_capacity(children.len() + 1);
        if parent != NONE {
            neighbours.push(self.node(parent).id.to_string());
        }
        neighbours.extend(children.iter().map(|&c| self.node(c).id.to_string()));

        for &c in &children {
            touched.note(self, c);
            self.unlink(c);
        }
        self.unlink(gone);
        self.remove_slot(gone);

        if state == State::Waiting {
            for &c in &children {
                self.detach(c, &mut touched);
            }
        } else if !children.is_empty() {
            self.replace(parent, depth, state, &children, &mut touched);
        }
        self.place_all_waiting(&mut touched);
        self.fill_root_slot(&mut touched);

        let Replan { changed, unlinked } = touched.replan(self);
        let waiting = changed
            .iter()
            .filter(|a| a.parent.is_none() && a.role != PeerRole::Root)
            .map(|a| a.peer_id.clone())
            .collect();
        Ok(LeaveOutcome {
            peer_id: id.to_string(),
            neighbours,
            changed,
            unlinked,
            waiting,
        })
    }

    /// Puts a stand-in at the vacated place (under `parent`, or a root) and
    /// re-homes the orphaned `children` (already unlinked).
    fn replace(
        &mut self,
        parent: u32,
        depth: u32,
        state: State,
        children: &[u32],
        touched: &mut Touched,
    ) {
        let mut orphans: Vec<u32> = children.to_vec();
        if let Some(s) = self.stand_in(children, parent, state == State::Root) {
            touched.note(self, s);
            self.unlink(s);
            orphans.retain(|&c| c != s);
            let s_state = if state == State::Root {
                State::Root
            } else {
                State::Attached
            };
            self.rebase_subtree(s, depth, s_state, touched);
            if state != State::Root {
                self.link(parent, s);
            }
            let hosted = orphans.len().min(self.free_slots(s) as usize);
            for &c in &orphans[..hosted] {
                self.link(s, c);
            }
            orphans.drain(..hosted);
        }
        for c in orphans {
            self.detach(c, touched);
            self.place(c, NONE, Prefer::Root, true, touched);
        }
    }

    /// Moves a peer (with its subtree) to the best place outside its own
    /// subtree and other than its current parent; a waiting peer is placed.
    /// A root, or a peer with nowhere else to go, stays where it is. Returns
    /// every peer whose position changed. For a live peer this may walk the
    /// free slots (skipping those in its own subtree): O(n) at worst, meant
    /// for rebalancing, not for every join.
    pub fn reassign(&mut self, id: &str) -> Result<Replan, MeshError> {
        self.reassign_with(id, true)
    }

    /// [`Planner::reassign`]; `split` allows placing a waiting subtree in parts.
    pub(super) fn reassign_with(&mut self, id: &str, split: bool) -> Result<Replan, MeshError> {
        let mut touched = Touched::default();
        self.reassign_noting(id, split, &mut touched)?;
        Ok(touched.replan(self))
    }

    /// [`Planner::reassign_with`], noting the peers it touches in `touched`.
    pub(super) fn reassign_noting(
        &mut self,
        id: &str,
        split: bool,
        touched: &mut Touched,
    ) -> Result<(), MeshError> {
        let i = self.require(id)?;
        match self.node(i).state {
            State::Root => {}
            State::Waiting if self.waiting.contains(&i) => {
                self.place(i, NONE, Prefer::Parent, split, touched)
            }
            // Inside a waiting subtree: it moves when its top is placed.
            State::Waiting => {}
            State::Attached => {
                let old_parent = self.node(i).parent;
                let (_, height) = self.subtree(i);
                let root_free = self.roots < self.config.root_peer_count && self.may_be_root(i);
                let elsewhere = root_free || {
                    // Its own subtree is still indexed; skip it while searching.
                    self.open.iter().any(|((d, _), p)| {
                        d + 1 + height <= self.config.max_depth
                            && p != old_parent
                            && !self.is_ancestor(i, p)
                    })
                };
                if elsewhere {
                    self.detach(i, touched);
                    self.place(i, old_parent, Prefer::Parent, split, touched);
                    if self.waiting.contains(&i) {
                        self.attach_waiting(i, old_parent, touched);
                    }
                }
            }
        }
        Ok(())
    }

    /// Tries to place the peers waiting without a parent; returns what changed.
    pub fn place_waiting(&mut self) -> Replan {
        let mut touched = Touched::default();
        self.place_all_waiting(&mut touched);
        touched.replan(self)
    }

    /// Replaces the peer's cumulative forwarded count. Returns false for an
    /// unknown id.
    pub fn record_forward_report(&mut self, id: &str, forwarded_frames: u64) -> bool {
        match self.slot_of(id) {
            Some(i) => {
                self.node_mut(i).forwarded_frames = forwarded_frames;
                true
            }
            None => false,
        }
    }
}
