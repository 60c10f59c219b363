//! Placement policy: where a waiting subtree goes, who stands in for a
//! leaving peer, and who is promoted to a free root slot. Only a peer that
//! reads the origin on its own is made a root after its own join.

use super::{PlacementPolicy, Planner, State, Touched, NONE};
use std::cmp::Reverse;

/// Whether placing a waiting peer fills a free root slot before a parent slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prefer {
    Root,
    Parent,
}

impl Planner {
    /// Whether `i` may be made a root now: only a peer that reads the origin
    /// on its own notices that it must (a client that does not is fed by
    /// nobody as a promoted root).
    pub(super) fn may_be_root(&self, i: u32) -> bool {
        self.node(i).reads_origin
    }

    /// How many more children `i` may have.
    pub(super) fn free_slots(&self, i: u32) -> u32 {
        let n = self.node(i);
        n.capacity - n.child_count
    }

    /// Whether any peer could be placed at all: a free root slot, or a free
    /// child slot above the depth limit.
    fn has_room(&self) -> bool {
        !self.open.is_empty() || self.roots < self.config.root_peer_count
    }

    /// The shallowest free slot whose depth leaves room for a subtree of
    /// `height` below the placed peer, other than under `avoid`.
    fn best_slot(&self, height: u32, avoid: u32) -> Option<u32> {
        for ((depth, _), p) in self.open.iter() {
            if depth + 1 + height > self.config.max_depth {
                return None;
            }
            if p != avoid {
                return Some(p);
            }
        }
        None
    }

    /// Places the waiting subtree topped by `i`: as a root when a root slot
    /// is free (first choice with `Prefer::Root`, last with `Prefer::Parent`),
    /// else whole under the best slot its height fits, else, when `split`,
    /// split (`i` alone placed, its children made to wait and placed in turn).
    /// Whatever finds no slot stays waiting. `avoid` is never chosen as a parent.
    pub(super) fn place(
        &mut self,
        i: u32,
        avoid: u32,
        prefer: Prefer,
        split: bool,
        touched: &mut Touched,
    ) {
        let mut work = vec![i];
        while let Some(i) = work.pop() {
            let root_free = self.roots < self.config.root_peer_count;
            let (_, height) = self.subtree(i);
            let slot = self.best_slot(height, avoid);
            let root_free = root_free && self.may_be_root(i);
            if root_free && (prefer == Prefer::Root || slot.is_none()) {
                self.waiting.remove(&i);
                self.rebase_subtree(i, 0, State::Root, touched);
            } else if let Some(p) = slot {
                self.attach_waiting(i, p, touched);
            } else if split && height > 0 {
                if let Some(p) = self.best_slot(0, avoid) {
                    for c in self.children_of(i) {
                        self.detach(c, touched);
                        work.push(c);
                    }
                    self.attach_waiting(i, p, touched);
                }
            }
        }
    }

    /// Links the waiting subtree topped by `i` under `p`, rebasing its depths.
    pub(super) fn attach_waiting(&mut self, i: u32, p: u32, touched: &mut Touched) {
        self.waiting.remove(&i);
        let depth = self.node(p).depth + 1;
        self.rebase_subtree(i, depth, State::Attached, touched);
        self.link(p, i);
    }

    /// Places each waiting subtree, oldest slot first, while there is room.
    pub(super) fn place_all_waiting(&mut self, touched: &mut Touched) {
        if self.waiting.is_empty() || !self.has_room() {
            return;
        }
        let waiting: Vec<u32> = self.waiting.iter().copied().collect();
        for i in waiting {
            if !self.has_room() {
                break;
            }
            if self.waiting.contains(&i) {
                self.place(i, NONE, Prefer::Root, true, touched);
            }
        }
    }

    /// The peer that takes over a vacated place and hosts as many of the
    /// orphaned `children` as it can at their old depth. Candidates: a
    /// childless orphan (it moves up and hosts its siblings), the first entry
    /// of the leaf index (it hosts them all, one extra peer moves), an orphan
    /// with free slots (its subtree moves up a level). Fewest orphans left
    /// to re-home wins, then fewest peers moved (the order above). When no
    /// candidate can stand in usefully, the orphan with the largest subtree
    /// moves up, so the tallest part of the tree gets shorter.
    /// `avoid` (the vacated place's parent, possibly childless now) is never
    /// chosen: it would become its own child. A vacated root slot (`root`)
    /// is taken only by a peer that may be a root.
    pub(super) fn stand_in(&self, children: &[u32], avoid: u32, root: bool) -> Option<u32> {
        let k = children.len() as u32;
        let free = |c: u32| self.free_slots(c);
        let eligible = |c: u32| !root || self.may_be_root(c);
        // Stable-first: the oldest among equally useful children.
        let stable = self.policy == PlacementPolicy::StableFirst;
        let age = |c: u32| stable.then(|| Reverse(self.node(c).joined_at));
        let best_child = |leaf: bool| {
            children
                .iter()
                .copied()
                .filter(|&c| (self.node(c).child_count == 0) == leaf && eligible(c))
                .max_by_key(|&c| (free(c), age(c), Reverse(c)))
        };
        let own_leaf = best_child(true);
        let own_inner = best_child(false).filter(|&c| free(c) > 0);
        // Skips at most the orphans and `avoid`: the index groups by key.
        let other = self
            .leaves
            .iter_where(move |&(_, _, reads_origin)| !root || reads_origin)
            .find(|&i| i != avoid && !children.contains(&i))
            .filter(|&l| free(l) > 0);
        // An orphan standing in is itself re-homed; an outside leaf is not.
        let candidates = [
            own_leaf.map(|c| (k - 1 - free(c).min(k - 1), c)),
            other.map(|l| (k - free(l).min(k), l)),
            own_inner.map(|c| (k - 1 - free(c).min(k - 1), c)),
        ];
        // min_by_key keeps the first minimum: earlier candidates move fewer peers.
        let best = candidates
            .into_iter()
            .flatten()
            .min_by_key(|&(left, _)| left);
        best.map(|(_, s)| s).or_else(|| {
            children
                .iter()
                .copied()
                .filter(|&c| eligible(c))
                .max_by_key(|&c| (self.subtree(c).0.len(), age(c), Reverse(c)))
        })
    }

    /// Fills a free root slot by promoting the best childless relay that
    /// reads the origin on its own; without one the slot waits for the next
    /// newcomer.
    pub(super) fn fill_root_slot(&mut self, touched: &mut Touched) {
        if self.roots >= self.config.root_peer_count {
            return;
        }
        let best = self.leaves.iter_where(|k| k.2).next();
        if let Some(l) = best {
            touched.note(self, l);
            self.unlink(l);
            self.set_state(l, State::Root);
            self.update(l, |n| n.depth = 0);
        }
    }
}
