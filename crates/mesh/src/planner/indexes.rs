//! Upkeep of the indexes that replace scans: free child slots by (depth,
//! child count), childless relays by `LeafKey`, the roots that feed nobody,
//! and the counters of roots and of free slots at the depth limit. A node's
//! fields that a key depends on change only through `update` or `set_state`.

use super::{Node, PlacementPolicy, Planner, State};
use std::cmp::Reverse;

/// Order of the childless relays: most capacity, then deepest (with
/// `StableFirst` depth is left out: first come within a capacity, so the
/// longest a childless relay), then those that do not read the origin on
/// their own (the others are kept for root slots).
pub(super) type LeafKey = (Reverse<u32>, Reverse<u32>, bool);

impl Planner {
    /// The free-slot index key of `i`: a placed peer with a free child slot
    /// above the depth limit, by (depth, child count).
    pub(super) fn open_key(&self, i: u32) -> Option<(u32, u32)> {
        let n = self.node(i);
        let placed = matches!(n.state, State::Root | State::Attached);
        (placed && n.child_count < n.capacity && n.depth < self.config.max_depth)
            .then_some((n.depth, n.child_count))
    }

    /// The leaf index key of `i`: an attached peer without children.
    pub(super) fn leaf_key(&self, i: u32) -> Option<LeafKey> {
        let n = self.node(i);
        let depth = match self.policy {
            PlacementPolicy::StableFirst => 0,
            PlacementPolicy::Shallowest | PlacementPolicy::CapacityFirst => n.depth,
        };
        (n.state == State::Attached && n.child_count == 0).then_some((
            Reverse(n.capacity),
            Reverse(depth),
            n.reads_origin,
        ))
    }

    /// A placed peer with a free slot that the depth limit keeps empty.
    pub(super) fn is_deep_free(&self, i: u32) -> bool {
        let n = self.node(i);
        let placed = matches!(n.state, State::Root | State::Attached);
        placed && n.child_count < n.capacity && n.depth >= self.config.max_depth
    }

    /// Takes `i` out of every index and counter its current fields put it in.
    pub(super) fn unindex(&mut self, i: u32) {
        if let Some(k) = self.open_key(i) {
            self.open.remove(k, i);
        }
        if self.is_deep_free(i) {
            self.deep_free -= 1;
        }
        if let Some(k) = self.leaf_key(i) {
            self.leaves.remove(k, i);
        }
    }

    /// Puts `i` into every index and counter its current fields call for.
    fn index(&mut self, i: u32) {
        if let Some(k) = self.open_key(i) {
            self.open.insert(k, i);
        }
        if self.is_deep_free(i) {
            self.deep_free += 1;
        }
        if let Some(k) = self.leaf_key(i) {
            self.leaves.insert(k, i);
        }
    }

    /// Changes fields an index key depends on, keeping both indexes exact.
    /// With `StableFirst` a childless relay whose leaf key stays the same
    /// keeps its place in the leaf index (its depth is not in the key), so
    /// first come there stays the longest a childless relay.
    pub(super) fn update(&mut self, i: u32, f: impl FnOnce(&mut Node)) {
        let keep = self.policy == PlacementPolicy::StableFirst;
        let leaf = self.leaf_key(i).filter(|_| keep);
        if leaf.is_some() {
            // The same as `unindex`, except the leaf index.
            if let Some(k) = self.open_key(i) {
                self.open.remove(k, i);
            }
            if self.is_deep_free(i) {
                self.deep_free -= 1;
            }
        } else {
            self.unindex(i);
        }
        f(self.node_mut(i));
        match leaf {
            Some(k) if self.leaf_key(i) == Some(k) => {
                if let Some(k) = self.open_key(i) {
                    self.open.insert(k, i);
                }
                if self.is_deep_free(i) {
                    self.deep_free += 1;
                }
            }
            Some(k) => {
                self.leaves.remove(k, i);
                self.index(i);
            }
            None => self.index(i),
        }
    }

    /// Changes `i`'s state, keeping the root counter, the leaf roots and the
    /// indexes exact.
    pub(super) fn set_state(&mut self, i: u32, state: State) {
        let before = self.node(i).state;
        if before == state {
            return;
        }
        let leaf = self.node(i).capacity == 0;
        if before == State::Root {
            self.roots -= 1;
            if leaf {
                self.leaf_roots.remove(&i);
            }
        }
        if state == State::Root {
            self.roots += 1;
            if leaf {
                self.leaf_roots.insert(i);
            }
        }
        self.update(i, |n| n.state = state);
    }
}
