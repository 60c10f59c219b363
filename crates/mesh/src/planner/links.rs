//! Peer storage and tree links: the slab of nodes, the id table, the
//! intrusive parent/child/sibling links, subtree walks, and moving a subtree
//! to a new depth and state. Every change to a link or a depth goes through
//! the index upkeep in `indexes`, so the indexes never go stale.

use super::ids::IdHash;
use super::{Node, Planner, State, Touched, NONE};
use crate::error::MeshError;
use std::borrow::Cow;
use std::time::Instant;

impl Planner {
    /// The slot holding the peer with this id.
    pub(super) fn slot_of(&self, id: &str) -> Option<u32> {
        self.find_slot(id, self.ids.hash(id))
    }

    /// [`Planner::slot_of`], with the id's hash already known.
    pub(super) fn find_slot(&self, id: &str, hash: IdHash) -> Option<u32> {
        self.ids.find(hash, |i| &*self.node(i).id == id)
    }

    /// The slot holding the peer with this id, or `PeerNotFound`.
    pub(super) fn require(&self, id: &str) -> Result<u32, MeshError> {
        self.slot_of(id)
            .ok_or_else(|| MeshError::PeerNotFound(id.to_string()))
    }

    /// The live peer in slot `i`; an empty slot is a bug.
    pub(super) fn node(&self, i: u32) -> &Node {
        self.nodes[i as usize].as_ref().expect("live slot")
    }

    /// The live peer in slot `i`, for changes that no index key depends on.
    pub(super) fn node_mut(&mut self, i: u32) -> &mut Node {
        self.nodes[i as usize].as_mut().expect("live slot")
    }

    /// Adds a new, unlinked peer (waiting, depth 0, not yet tracked as
    /// waiting) and returns its slot; the caller places it. An owned id is
    /// kept, not copied.
    pub(super) fn insert(
        &mut self,
        id: Cow<'_, str>,
        hash: IdHash,
        capacity: Option<u32>,
        reads_origin: bool,
        now: Instant,
    ) -> u32 {
        let node = Node {
            id: id.into_owned().into_boxed_str(),
            parent: NONE,
            first_child: NONE,
            last_child: NONE,
            prev_sibling: NONE,
            next_sibling: NONE,
            child_count: 0,
            capacity: self.config.effective_capacity(capacity),
            claimed: capacity,
            reads_origin,
            depth: 0,
            state: State::Waiting,
            forwarded_frames: 0,
            joined_at: now,
            last_heartbeat: now,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                (self.nodes.len() - 1) as u32
            }
        };
        self.ids.insert(hash, i);
        i
    }

    /// Frees slot `i` (already unlinked from its parent) and forgets its id.
    pub(super) fn remove_slot(&mut self, i: u32) {
        self.unindex(i);
        if self.node(i).state == State::Root {
            self.roots -= 1;
        }
        self.leaf_roots.remove(&i);
        self.waiting.remove(&i);
        let hash = self.ids.hash(&self.node(i).id);
        self.ids.remove(hash, i);
        self.nodes[i as usize] = None;
        self.free.push(i);
    }

    /// The children of `i`, in the order they were attached.
    pub(super) fn children_of(&self, i: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.node(i).child_count as usize);
        let mut c = self.node(i).first_child;
        while c != NONE {
            out.push(c);
            c = self.node(c).next_sibling;
        }
        out
    }

    /// The subtree of `i` (itself first), and its height.
    pub(super) fn subtree(&self, i: u32) -> (Vec<u32>, u32) {
        let base = self.node(i).depth;
        let mut out = vec![i];
        let mut height = 0;
        let mut k = 0;
        while k < out.len() {
            let n = out[k];
            height = height.max(self.node(n).depth - base);
            let mut c = self.node(n).first_child;
            while c != NONE {
                out.push(c);
                c = self.node(c).next_sibling;
            }
            k += 1;
        }
        (out, height)
    }

    /// Whether `a` is `n` or one of its ancestors. Walks up from `n` only
    /// while the depth allows `a` to be above.
    pub(super) fn is_ancestor(&self, a: u32, mut n: u32) -> bool {
        let stop = self.node(a).depth;
        while n != NONE && self.node(n).depth >= stop {
            if n == a {
                return true;
            }
            n = self.node(n).parent;
        }
        false
    }

    /// Appends `c` (parentless) to `p`'s children.
    pub(super) fn link(&mut self, p: u32, c: u32) {
        let last = self.node(p).last_child;
        {
            let n = self.node_mut(c);
            n.parent = p;
            n.prev_sibling = last;
            n.next_sibling = NONE;
        }
        if last == NONE {
            self.update(p, |n| {
                n.first_child = c;
                n.last_child = c;
                n.child_count += 1;
            });
        } else {
            self.node_mut(last).next_sibling = c;
            self.update(p, |n| {
                n.last_child = c;
                n.child_count += 1;
            });
        }
    }

    /// Detaches `c` from its parent, if it has one.
    pub(super) fn unlink(&mut self, c: u32) {
        let (p, prev, next) = {
            let n = self.node(c);
            (n.parent, n.prev_sibling, n.next_sibling)
        };
        if p == NONE {
            return;
        }
        if prev != NONE {
            self.node_mut(prev).next_sibling = next;
        }
        if next != NONE {
            self.node_mut(next).prev_sibling = prev;
        }
        self.update(p, |n| {
            if n.first_child == c {
                n.first_child = next;
            }
            if n.last_child == c {
                n.last_child = prev;
            }
            n.child_count -= 1;
        });
        let n = self.node_mut(c);
        n.parent = NONE;
        n.prev_sibling = NONE;
        n.next_sibling = NONE;
    }

    /// Gives every node of `i`'s subtree the state of `i` and depths counted
    /// from `i`'s depth, keeping the indexes exact. O(subtree · log n).
    pub(super) fn rebase_subtree(
        &mut self,
        i: u32,
        depth: u32,
        state: State,
        touched: &mut Touched,
    ) {
        let (nodes, _) = self.subtree(i);
        let old_base = self.node(i).depth;
        for n in nodes {
            touched.note(self, n);
            let d = depth + (self.node(n).depth - old_base);
            let s = if n == i {
                state
            } else if state == State::Waiting {
                State::Waiting
            } else {
                State::Attached
            };
            if s == State::Root || self.node(n).state == State::Root {
                self.set_state(n, s);
                self.update(n, |node| node.depth = d);
            } else {
                self.update(n, |node| {
                    node.depth = d;
                    node.state = s;
                });
            }
        }
    }

    /// Cuts `i` (with its subtree) out of the tree and leaves it waiting.
    pub(super) fn detach(&mut self, i: u32, touched: &mut Touched) {
        touched.note(self, i);
        self.unlink(i);
        self.rebase_subtree(i, 0, State::Waiting, touched);
        self.waiting.insert(i);
    }
}
