//! The pure planner core: one track's relay tree.
//!
//! Peers live in a slab (`Vec<Option<Node>>`) addressed by `u32` slots; the
//! tree is intrusive (parent, first child, sibling links), so a peer costs no
//! heap allocation beyond its id. Two ordered indexes replace every scan:
//!
//! * `open`: peers with a free child slot, keyed `(depth, children, slot)`;
//!   its first entry is the parent the seed's rule picks (shallowest, ties to
//!   the fewest children).
//! * `leaves`: childless relays, keyed by most capacity then deepest; its
//!   first entry is the peer that can best stand in for one that leaves.
//!   Peers that cannot read the origin on their own come first among
//!   equals, so the ones that can are kept for root slots.
//!
//! A leaving peer's place is taken by a childless peer (one of its own
//! children when one can host the others, else the best leaf elsewhere), and
//! its children reattach under that stand-in at their old depth. So a leave
//! re-tells O(children) peers, touches O(children · log n) index entries, and
//! never deepens the tree. Children the stand-in cannot host are re-placed
//! whole elsewhere (their subtree depths updated), split if their subtree is
//! too tall for any free slot, or left waiting ("detached", fed by the
//! origin) when no slot exists at all.

use crate::config::MeshConfig;
use crate::error::MeshError;
use crate::index::FifoIndex;
use crate::tree::{PeerAssignment, PeerId, PeerInfo, PeerRole, PeerSummary};
use hashbrown::HashTable;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

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
    /// Peers that could not be placed for now (no free slot within the depth
    /// limit). They are also in `changed`, with no parent; they wait, fed by
    /// the origin, until [`Planner::place_detached`] finds them a place.
    pub unplaced: Vec<PeerId>,
}

const NONE: u32 = u32::MAX;

/// Stale liveness entries tolerated beyond twice the peer count before the
/// heap is rebuilt (amortised O(1) per removal).
const LIVENESS_SLACK: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Fed by the origin, counted against `root_peer_count`.
    Root,
    /// Below a root, through attached parents.
    Attached,
    /// In a subtree cut off from the roots, waiting for a place. The top of
    /// such a subtree has no parent and is fed by the origin meanwhile.
    Detached,
}

#[derive(Debug)]
struct Node {
    id: Box<str>,
    parent: u32,
    first_child: u32,
    last_child: u32,
    prev_sibling: u32,
    next_sibling: u32,
    child_count: u32,
    /// Claimed capacity clamped to `max_children`.
    capacity: u32,
    claimed: Option<u32>,
    /// Reads the origin on its own when it is a root or waiting; a peer
    /// that does not is made a root only at its own join.
    reads_origin: bool,
    depth: u32,
    state: State,
    forwarded_frames: u64,
    joined_at: Instant,
    last_heartbeat: Instant,
}

/// One track's relay tree.
#[derive(Debug)]
pub struct Planner {
    config: MeshConfig,
    max_children: u32,
    timeout: Duration,
    nodes: Vec<Option<Node>>,
    /// Generation of each slot, bumped when it is freed, so stale liveness
    /// entries are recognised.
    generations: Vec<u32>,
    free: Vec<u32>,
    ids: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    open: FifoIndex<(u32, u32)>,
    leaves: FifoIndex<LeafKey>,
    detached: BTreeSet<u32>,
    /// Roots that can feed nobody (capacity 0), lowest slot first: the root
    /// slots a relay-capable newcomer takes over in
    /// [`Planner::join_relaying`].
    leaf_roots: BTreeSet<u32>,
    /// Min-heap of (last heard, slot, generation); one live entry per peer,
    /// refreshed lazily when it reaches the top.
    liveness: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    roots: usize,
    /// Placed peers with a free child slot at the depth limit: when they are
    /// the only free slots, a join fails with `TreeDepthExceeded`.
    deep_free: usize,
    len: usize,
}

/// Order of the childless relays: most capacity, then deepest, then those
/// that do not read the origin on their own (the others are kept for root
/// slots).
type LeafKey = (Reverse<u32>, Reverse<u32>, bool);

/// Whether placing a waiting peer fills a free root slot before a parent slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefer {
    Root,
    Parent,
}

/// Records the old position of peers an operation touches, so the operation
/// can report exactly those whose position changed.
#[derive(Default)]
struct Touched(Vec<(u32, u32, u32, PeerRole)>);

impl Planner {
    /// An empty tree with these limits.
    pub fn new(config: MeshConfig) -> Self {
        Self {
            max_children: config.max_children_u32(),
            timeout: Duration::from_secs(config.heartbeat_timeout_secs),
            config,
            nodes: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            ids: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            open: FifoIndex::new(),
            leaves: FifoIndex::new(),
            detached: BTreeSet::new(),
            leaf_roots: BTreeSet::new(),
            liveness: BinaryHeap::new(),
            roots: 0,
            deep_free: 0,
            len: 0,
        }
    }

    /// The limits this tree was built with.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    // ----- lookups -------------------------------------------------------

    fn node(&self, i: u32) -> &Node {
        self.nodes[i as usize].as_ref().expect("live slot")
    }

    fn node_mut(&mut self, i: u32) -> &mut Node {
        self.nodes[i as usize].as_mut().expect("live slot")
    }

    fn slot_of(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.ids.find(hash, |&i| &*self.node(i).id == id).copied()
    }

    fn require(&self, id: &str) -> Result<u32, MeshError> {
        self.slot_of(id)
            .ok_or_else(|| MeshError::PeerNotFound(id.to_string()))
    }

    fn role(&self, i: u32) -> PeerRole {
        let n = self.node(i);
        match n.state {
            State::Root => PeerRole::Root,
            _ if n.capacity == 0 => PeerRole::Leaf,
            _ => PeerRole::Relay,
        }
    }

    fn assignment_of(&self, i: u32) -> PeerAssignment {
        let n = self.node(i);
        PeerAssignment {
            peer_id: n.id.to_string(),
            role: self.role(i),
            parent: (n.parent != NONE).then(|| self.node(n.parent).id.to_string()),
            depth: n.depth,
        }
    }

    fn children_of(&self, i: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.node(i).child_count as usize);
        let mut c = self.node(i).first_child;
        while c != NONE {
            out.push(c);
            c = self.node(c).next_sibling;
        }
        out
    }

    /// The subtree of `i` (itself first), and its height.
    fn subtree(&self, i: u32) -> (Vec<u32>, u32) {
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

    // ----- indexes -------------------------------------------------------

    fn open_key(&self, i: u32) -> Option<(u32, u32)> {
        let n = self.node(i);
        let placed = matches!(n.state, State::Root | State::Attached);
        (placed && n.child_count < n.capacity && n.depth < self.config.max_depth)
            .then_some((n.depth, n.child_count))
    }

    fn leaf_key(&self, i: u32) -> Option<LeafKey> {
        let n = self.node(i);
        (n.state == State::Attached && n.child_count == 0).then_some((
            Reverse(n.capacity),
            Reverse(n.depth),
            n.reads_origin,
        ))
    }

    /// Whether `i` may be made a root now: only a peer that reads the origin
    /// on its own notices that it must (a client that does not is fed by
    /// nobody as a promoted root).
    fn may_be_root(&self, i: u32) -> bool {
        self.node(i).reads_origin
    }

    /// A placed peer with a free slot that the depth limit keeps empty.
    fn is_deep_free(&self, i: u32) -> bool {
        let n = self.node(i);
        let placed = matches!(n.state, State::Root | State::Attached);
        placed && n.child_count < n.capacity && n.depth >= self.config.max_depth
    }

    fn unindex(&mut self, i: u32) {
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
    fn update(&mut self, i: u32, f: impl FnOnce(&mut Node)) {
        self.unindex(i);
        f(self.node_mut(i));
        self.index(i);
    }

    fn set_state(&mut self, i: u32, state: State) {
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

    // ----- links ---------------------------------------------------------

    /// Appends `c` (parentless) to `p`'s children.
    fn link(&mut self, p: u32, c: u32) {
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
    fn unlink(&mut self, c: u32) {
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
    fn rebase_subtree(&mut self, i: u32, depth: u32, state: State, touched: &mut Touched) {
        let (nodes, _) = self.subtree(i);
        let old_base = self.node(i).depth;
        for n in nodes {
            touched.note(self, n);
            let d = depth + (self.node(n).depth - old_base);
            let s = if n == i {
                state
            } else if state == State::Detached {
                State::Detached
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
    fn detach(&mut self, i: u32, touched: &mut Touched) {
        touched.note(self, i);
        self.unlink(i);
        self.rebase_subtree(i, 0, State::Detached, touched);
        self.detached.insert(i);
    }

    // ----- placement -----------------------------------------------------

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

    /// Places the detached subtree topped by `i`: as a root when a root slot
    /// is free (first choice with `Prefer::Root`, last with `Prefer::Parent`),
    /// else whole under the best slot its height fits, else, when `split`,
    /// split (`i` alone placed, its children detached and placed in turn).
    /// Whatever finds no slot stays detached. `avoid` is never chosen as a parent.
    fn place(&mut self, i: u32, avoid: u32, prefer: Prefer, split: bool, touched: &mut Touched) {
        let mut work = vec![i];
        while let Some(i) = work.pop() {
            let root_free = self.roots < self.config.root_peer_count;
            let (_, height) = self.subtree(i);
            let slot = self.best_slot(height, avoid);
            let root_free = root_free && self.may_be_root(i);
            if root_free && (prefer == Prefer::Root || slot.is_none()) {
                self.detached.remove(&i);
                self.rebase_subtree(i, 0, State::Root, touched);
            } else if let Some(p) = slot {
                self.attach_detached(i, p, touched);
            } else if split && height > 0 {
                if let Some(p) = self.best_slot(0, avoid) {
                    for c in self.children_of(i) {
                        self.detach(c, touched);
                        work.push(c);
                    }
                    self.attach_detached(i, p, touched);
                }
            }
        }
    }

    fn attach_detached(&mut self, i: u32, p: u32, touched: &mut Touched) {
        self.detached.remove(&i);
        let depth = self.node(p).depth + 1;
        self.rebase_subtree(i, depth, State::Attached, touched);
        self.link(p, i);
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
    fn stand_in(&self, children: &[u32], avoid: u32, root: bool) -> Option<u32> {
        let k = children.len() as u32;
        let free = |c: u32| self.free_slots(c);
        let eligible = |c: u32| !root || self.may_be_root(c);
        let best_child = |leaf: bool| {
            children
                .iter()
                .copied()
                .filter(|&c| (self.node(c).child_count == 0) == leaf && eligible(c))
                .max_by_key(|&c| (free(c), Reverse(c)))
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
                .max_by_key(|&c| (self.subtree(c).0.len(), Reverse(c)))
        })
    }

    /// Whether any peer could be placed at all: a free root slot, or a free
    /// child slot above the depth limit.
    fn has_room(&self) -> bool {
        !self.open.is_empty() || self.roots < self.config.root_peer_count
    }

    fn free_slots(&self, i: u32) -> u32 {
        let n = self.node(i);
        n.capacity - n.child_count
    }

    /// Fills a free root slot by promoting the best childless relay that
    /// reads the origin on its own; without one the slot waits for the next
    /// newcomer.
    fn fill_root_slot(&mut self, touched: &mut Touched) {
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

    fn place_all_detached(&mut self, touched: &mut Touched) {
        if self.detached.is_empty() || !self.has_room() {
            return;
        }
        let waiting: Vec<u32> = self.detached.iter().copied().collect();
        for i in waiting {
            if !self.has_room() {
                break;
            }
            if self.detached.contains(&i) {
                self.place(i, NONE, Prefer::Root, true, touched);
            }
        }
    }

    // ----- operations ----------------------------------------------------

    /// Places a new peer: a root while root slots are free, else under the
    /// shallowest peer with a free slot (ties to the fewest children).
    /// `capacity` is clamped to `max_children`; 0 means never a parent.
    /// An id already in the tree is refused, never overwritten. The peer is
    /// taken to read the origin on its own, so it may be promoted later.
    pub fn join(
        &mut self,
        id: &str,
        capacity: Option<u32>,
        now: Instant,
    ) -> Result<PeerAssignment, MeshError> {
        self.join_with(id, capacity, true, now)
    }

    fn join_with(
        &mut self,
        id: &str,
        capacity: Option<u32>,
        reads_origin: bool,
        now: Instant,
    ) -> Result<PeerAssignment, MeshError> {
        if self.slot_of(id).is_some() {
            return Err(MeshError::DuplicatePeer(id.to_string()));
        }
        let parent = if self.roots < self.config.root_peer_count {
            NONE
        } else {
            match self.open.first() {
                Some(p) => p,
                None if self.deep_free > 0 || self.config.max_depth == 0 => {
                    return Err(MeshError::TreeDepthExceeded {
                        max: self.config.max_depth as usize,
                    })
                }
                None => return Err(MeshError::NoAvailableParent),
            }
        };
        let i = self.insert(id, capacity, reads_origin, now);
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

    /// Adds a new, unlinked peer (detached, depth 0, not yet tracked as
    /// waiting) and returns its slot; the caller places it.
    fn insert(&mut self, id: &str, capacity: Option<u32>, reads_origin: bool, now: Instant) -> u32 {
        let node = Node {
            id: id.into(),
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
            state: State::Detached,
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
                self.generations.push(0);
                (self.nodes.len() - 1) as u32
            }
        };
        let hash = self.hasher.hash_one(id);
        let nodes = &self.nodes;
        let hasher = &self.hasher;
        self.ids.insert_unique(hash, i, |&j| {
            hasher.hash_one(&*nodes[j as usize].as_ref().expect("live slot").id)
        });
        self.len += 1;
        self.liveness
            .push(Reverse((now, i, self.generations[i as usize])));
        i
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
        let leaf = match self.leaf_roots.first() {
            Some(&l) if relays && full && self.slot_of(id).is_none() => l,
            _ => {
                return self
                    .join_with(id, capacity, reads_origin, now)
                    .map(|a| (a, None))
            }
        };
        // The newcomer takes the leaf's root slot; the leaf goes under it.
        let me = self.insert(id, capacity, reads_origin, now);
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

        if state == State::Detached {
            for &c in &children {
                self.detach(c, &mut touched);
            }
        } else if !children.is_empty() {
            self.replace(parent, depth, state, &children, &mut touched);
        }
        self.place_all_detached(&mut touched);
        self.fill_root_slot(&mut touched);

        let Replan { changed, unlinked } = touched.replan(self);
        let unplaced = changed
            .iter()
            .filter(|a| a.parent.is_none() && a.role != PeerRole::Root)
            .map(|a| a.peer_id.clone())
            .collect();
        Ok(LeaveOutcome {
            peer_id: id.to_string(),
            neighbours,
            changed,
            unlinked,
            unplaced,
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

    fn remove_slot(&mut self, i: u32) {
        self.unindex(i);
        if self.node(i).state == State::Root {
            self.roots -= 1;
        }
        self.leaf_roots.remove(&i);
        self.detached.remove(&i);
        let hash = self.hasher.hash_one(&*self.node(i).id);
        if let Ok(entry) = self.ids.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.nodes[i as usize] = None;
        self.generations[i as usize] = self.generations[i as usize].wrapping_add(1);
        self.free.push(i);
        self.len -= 1;
        // Stale stamps of removed peers leave the heap only when they come
        // due in a sweep; a caller that never sweeps (the server tracks
        // liveness per connection) would let them pile up under churn.
        if self.liveness.len() > 2 * self.len + LIVENESS_SLACK {
            self.rebuild_liveness();
        }
    }

    fn rebuild_liveness(&mut self) {
        let live = self.nodes.iter().enumerate().filter_map(|(i, n)| {
            let n = n.as_ref()?;
            Some(Reverse((n.last_heartbeat, i as u32, self.generations[i])))
        });
        self.liveness = live.collect();
    }

    /// Removes a peer and detaches its children without re-planning them
    /// (each keeps its subtree and waits, parentless, for
    /// [`Planner::reassign`] or [`Planner::place_detached`]). Returns them.
    pub fn remove_detaching(&mut self, id: &str) -> Result<Vec<PeerId>, MeshError> {
        let gone = self.require(id)?;
        let mut touched = Touched::default();
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

    /// Moves a peer (with its subtree) to the best place outside its own
    /// subtree and other than its current parent; a waiting peer is placed.
    /// A root, or a peer with nowhere else to go, stays where it is. Returns
    /// every peer whose position changed. For a live peer this may walk the
    /// free slots (skipping those in its own subtree): O(n) at worst, meant
    /// for rebalancing, not for every join.
    pub fn reassign(&mut self, id: &str) -> Result<Replan, MeshError> {
        self.reassign_with(id, true)
    }

    /// As [`Planner::reassign`], but a waiting peer is placed with its whole
    /// subtree or not at all (never split), so the only peers that move are
    /// the peer and its descendants, whose parents stay the same.
    pub fn reassign_whole(&mut self, id: &str) -> Result<Replan, MeshError> {
        self.reassign_with(id, false)
    }

    fn reassign_with(&mut self, id: &str, split: bool) -> Result<Replan, MeshError> {
        let i = self.require(id)?;
        let mut touched = Touched::default();
        match self.node(i).state {
            State::Root => {}
            State::Detached if self.detached.contains(&i) => {
                self.place(i, NONE, Prefer::Parent, split, &mut touched)
            }
            // Inside a waiting subtree: it moves when its top is placed.
            State::Detached => {}
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
                    self.detach(i, &mut touched);
                    self.place(i, old_parent, Prefer::Parent, split, &mut touched);
                    if self.detached.contains(&i) {
                        self.attach_detached(i, old_parent, &mut touched);
                    }
                }
            }
        }
        Ok(touched.replan(self))
    }

    fn is_ancestor(&self, a: u32, mut n: u32) -> bool {
        let stop = self.node(a).depth;
        while n != NONE && self.node(n).depth >= stop {
            if n == a {
                return true;
            }
            n = self.node(n).parent;
        }
        false
    }

    /// Tries to place the peers waiting without a parent; returns what changed.
    pub fn place_detached(&mut self) -> Replan {
        let mut touched = Touched::default();
        self.place_all_detached(&mut touched);
        touched.replan(self)
    }

    /// Records that the peer was heard from at `now`. Returns false for an
    /// unknown id.
    pub fn heartbeat(&mut self, id: &str, now: Instant) -> bool {
        match self.slot_of(id) {
            Some(i) => {
                let n = self.node_mut(i);
                n.last_heartbeat = n.last_heartbeat.max(now);
                true
            }
            None => false,
        }
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

    /// Removes every peer not heard from for longer than the heartbeat
    /// timeout, each as one [`Planner::leave`]. Costs O(log n) per peer whose
    /// stamp came due, not a scan.
    pub fn sweep(&mut self, now: Instant) -> Vec<LeaveOutcome> {
        let mut dead = Vec::new();
        while let Some(&Reverse((stamp, i, generation))) = self.liveness.peek() {
            if now.saturating_duration_since(stamp) <= self.timeout {
                break;
            }
            self.liveness.pop();
            if self.generations[i as usize] != generation {
                continue;
            }
            let last = self.node(i).last_heartbeat;
            if now.saturating_duration_since(last) <= self.timeout {
                self.liveness.push(Reverse((last, i, generation)));
            } else {
                dead.push(self.node(i).id.to_string());
            }
        }
        dead.iter().filter_map(|id| self.leave(id).ok()).collect()
    }

    /// Ids of peers not heard from for longer than the timeout, O(n).
    pub fn dead_peers(&self, now: Instant) -> Vec<PeerId> {
        self.nodes
            .iter()
            .flatten()
            .filter(|n| now.saturating_duration_since(n.last_heartbeat) > self.timeout)
            .map(|n| n.id.to_string())
            .collect()
    }

    /// Whether `a` and `b` are parent and child (either way round).
    pub fn are_neighbours(&self, a: &str, b: &str) -> bool {
        match (self.slot_of(a), self.slot_of(b)) {
            (Some(a), Some(b)) => self.node(a).parent == b || self.node(b).parent == a,
            _ => false,
        }
    }

    /// The peer's current position.
    pub fn assignment(&self, id: &str) -> Option<PeerAssignment> {
        self.slot_of(id).map(|i| self.assignment_of(i))
    }

    /// A copy of one peer, labelled with `track`.
    pub fn peer(&self, id: &str, track: &str) -> Option<PeerInfo> {
        self.slot_of(id).map(|i| self.info(i, track))
    }

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

    /// Number of peers.
    pub fn peer_count(&self) -> usize {
        self.len
    }

    /// Number of roots.
    pub fn root_count(&self) -> usize {
        self.roots
    }

    /// Number of peers waiting for a place (each fed by the origin meanwhile).
    pub fn waiting_count(&self) -> usize {
        self.detached.len()
    }

    /// Percentage of peers fed by another peer rather than by the origin
    /// (roots and waiting peers are fed by the origin). O(1).
    pub fn offload_percentage(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let from_origin = self.roots + self.detached.len();
        (self.len - from_origin) as f64 / self.len as f64 * 100.0
    }

    /// A copy of every peer, labelled with `track`, O(n).
    pub fn snapshot(&self, track: &str) -> Vec<PeerInfo> {
        (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].is_some())
            .map(|i| self.info(i, track))
            .collect()
    }

    /// Every peer's place, in slot order: [`Planner::snapshot`] without the
    /// children's ids, for listing a large tree cheaply.
    pub fn summaries(&self) -> Vec<PeerSummary> {
        let mut out = Vec::with_capacity(self.len);
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

    /// Checks every invariant, for tests: O(n · b), where b is the largest
    /// index bucket (up to n, so quadratic at worst):
    /// parent links form a forest (no cycles); each peer's depth is its
    /// parent's + 1 (roots and waiting peers 0); children <= effective
    /// capacity; roots <= `root_peer_count`; placed depth <= `max_depth`;
    /// every parent/child reference names an existing peer, both ways; ids
    /// unique; both indexes, the waiting set and the counters exact.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut count = 0;
        let mut roots = 0;
        let mut open = 0;
        let mut leaves = 0;
        let mut deep_free = 0;
        let mut detached = 0;
        for (i, slot) in self.nodes.iter().enumerate() {
            let Some(n) = slot else { continue };
            let i = i as u32;
            count += 1;
            let name = &n.id;
            if self.slot_of(name) != Some(i) {
                return Err(format!("{name}: id table does not lead to its slot"));
            }
            match n.state {
                State::Root => {
                    roots += 1;
                    if n.parent != NONE || n.depth != 0 {
                        return Err(format!("{name}: root with a parent or depth {}", n.depth));
                    }
                }
                State::Attached | State::Detached if n.parent == NONE => {
                    if n.state == State::Attached {
                        return Err(format!("{name}: attached without a parent"));
                    }
                    detached += 1;
                    if n.depth != 0 || !self.detached.contains(&i) {
                        return Err(format!("{name}: waiting peer not tracked or not at 0"));
                    }
                }
                _ => {
                    let p = self
                        .nodes
                        .get(n.parent as usize)
                        .and_then(Option::as_ref)
                        .ok_or_else(|| format!("{name}: parent slot is empty"))?;
                    if n.depth != p.depth + 1 {
                        return Err(format!(
                            "{name}: depth {} under {} at depth {}",
                            n.depth, p.id, p.depth
                        ));
                    }
                    let expected = if p.state == State::Detached {
                        State::Detached
                    } else {
                        State::Attached
                    };
                    if n.state != expected {
                        return Err(format!("{name}: state {:?} under {:?}", n.state, p.state));
                    }
                    if !self.children_of(n.parent).contains(&i) {
                        return Err(format!("{name}: missing from {}'s children", p.id));
                    }
                }
            }
            if n.state != State::Detached && n.depth > self.config.max_depth {
                return Err(format!("{name}: depth {} over the limit", n.depth));
            }
            let kids = self.children_of(i);
            if kids.len() as u32 != n.child_count || n.child_count > n.capacity {
                return Err(format!(
                    "{name}: {} children, count {}, capacity {}",
                    kids.len(),
                    n.child_count,
                    n.capacity
                ));
            }
            if n.capacity > self.max_children {
                return Err(format!("{name}: capacity over max_children"));
            }
            for c in kids {
                if self.node(c).parent != i {
                    return Err(format!(
                        "{name}: child {} names another parent",
                        self.node(c).id
                    ));
                }
            }
            if let Some(k) = self.open_key(i) {
                open += 1;
                if !self.open.contains(k, i) {
                    return Err(format!("{name}: missing from the open-slot index"));
                }
            }
            if self.is_deep_free(i) {
                deep_free += 1;
            }
            if (n.state == State::Root && n.capacity == 0) != self.leaf_roots.contains(&i) {
                return Err(format!("{name}: leaf-root index disagrees"));
            }
            if let Some(k) = self.leaf_key(i) {
                leaves += 1;
                if !self.leaves.contains(k, i) {
                    return Err(format!("{name}: missing from the leaf index"));
                }
            }
        }
        if count != self.len || self.ids.len() != self.len {
            return Err(format!(
                "{count} peers, len {}, ids {}",
                self.len,
                self.ids.len()
            ));
        }
        if roots != self.roots || roots > self.config.root_peer_count {
            return Err(format!(
                "{roots} roots, counter {}, cap {}",
                self.roots, self.config.root_peer_count
            ));
        }
        if self.liveness.len() > 2 * self.len + LIVENESS_SLACK {
            return Err(format!(
                "{} liveness entries for {} peers",
                self.liveness.len(),
                self.len
            ));
        }
        if open != self.open.len()
            || leaves != self.leaves.len()
            || detached != self.detached.len()
            || deep_free != self.deep_free
        {
            return Err("an index holds stale entries".to_string());
        }
        Ok(())
    }
}

impl Touched {
    /// Remembers `i`'s position before the operation first touches it.
    fn note(&mut self, planner: &Planner, i: u32) {
        let n = planner.node(i);
        self.0.push((i, n.parent, n.depth, planner.role(i)));
    }

    /// The final position of every touched peer that still exists and
    /// moved, and the links to old parents that still exist. Operations
    /// insert no peer, so a slot live now held the same peer before.
    fn replan(mut self, planner: &Planner) -> Replan {
        // Keep each peer's first (oldest) record.
        self.0.sort_by_key(|&(i, ..)| i);
        self.0.dedup_by_key(|&mut (i, ..)| i);
        let live = |i: u32| i != NONE && planner.nodes[i as usize].is_some();
        let mut out = Replan::default();
        for (i, parent, depth, role) in self.0 {
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
