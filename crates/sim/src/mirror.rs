//! The simulator's own copy of the tree, kept from the assignments the
//! policy reports: who feeds whom, depths, subtree walks, and which peers
//! have silently gone. The planner is never asked for a whole snapshot.

/// A peer slot in the mirror (also the number in its planner id).
pub type Slot = u32;

/// No slot.
pub const NONE: Slot = u32::MAX;

/// Where a mirrored peer gets the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Not in the tree (free slot, or refused at join).
    Out,
    /// A root, fed by the origin.
    Root,
    /// Under a parent.
    Attached,
    /// Its parent left and the policy has not said where it goes yet.
    Orphaned,
    /// Parentless, waiting for a place, fed by the origin meanwhile.
    Waiting,
}

#[derive(Debug, Clone)]
struct Node {
    parent: Slot,
    first_child: Slot,
    prev: Slot,
    next: Slot,
    depth: u32,
    place: Place,
    /// Went abruptly and the planner has not noticed yet: forwards nothing.
    gone: bool,
}

impl Node {
    fn out() -> Self {
        Self {
            parent: NONE,
            first_child: NONE,
            prev: NONE,
            next: NONE,
            depth: 0,
            place: Place::Out,
            gone: false,
        }
    }
}

/// The mirror of the tree, with a histogram of depths over placed peers.
#[derive(Debug, Default)]
pub struct Mirror {
    nodes: Vec<Node>,
    /// Peers at each depth (roots and waiting peers at 0).
    depth_counts: Vec<u64>,
    max_depth_seen: u32,
}

impl Mirror {
    fn ensure(&mut self, s: Slot) {
        if self.nodes.len() <= s as usize {
            self.nodes.resize(s as usize + 1, Node::out());
        }
    }

    fn n(&self, s: Slot) -> &Node {
        &self.nodes[s as usize]
    }

    fn n_mut(&mut self, s: Slot) -> &mut Node {
        &mut self.nodes[s as usize]
    }

    /// The peer's place.
    pub fn place(&self, s: Slot) -> Place {
        self.nodes.get(s as usize).map_or(Place::Out, |n| n.place)
    }

    /// Its parent, or [`NONE`].
    pub fn parent(&self, s: Slot) -> Slot {
        self.n(s).parent
    }

    /// Its depth as last computed from the parent links.
    pub fn depth(&self, s: Slot) -> u32 {
        self.n(s).depth
    }

    /// Whether it went abruptly and is still in the tree.
    pub fn is_gone(&self, s: Slot) -> bool {
        self.n(s).gone
    }

    /// Marks it gone: it forwards nothing from now on.
    pub fn set_gone(&mut self, s: Slot) {
        self.n_mut(s).gone = true;
    }

    /// Its children, in link order.
    pub fn children(&self, s: Slot) -> Vec<Slot> {
        let mut out = Vec::new();
        let mut c = self.n(s).first_child;
        while c != NONE {
            out.push(c);
            c = self.n(c).next;
        }
        out
    }

    /// Whether it has a child.
    pub fn has_children(&self, s: Slot) -> bool {
        self.n(s).first_child != NONE
    }

    /// Whether objects reach it: no gone peer on its path to the origin
    /// (itself included) and no parentless orphan at the top of it.
    pub fn path_alive(&self, s: Slot) -> bool {
        let mut p = s;
        loop {
            let n = self.n(p);
            if n.gone || n.place == Place::Orphaned {
                return false;
            }
            if n.parent == NONE {
                return true;
            }
            p = n.parent;
        }
    }

    /// The peers objects reach through `s` (itself first): its subtree
    /// without the parts below a gone peer.
    pub fn fed_subtree(&self, s: Slot) -> Vec<Slot> {
        let mut out = vec![s];
        let mut k = 0;
        while k < out.len() {
            let mut c = self.n(out[k]).first_child;
            while c != NONE {
                if !self.n(c).gone {
                    out.push(c);
                }
                c = self.n(c).next;
            }
            k += 1;
        }
        out
    }

    /// Peers at each depth now (index = depth).
    pub fn depth_counts(&self) -> &[u64] {
        &self.depth_counts
    }

    /// Deepest placed peer now.
    pub fn max_depth(&self) -> u32 {
        self.depth_counts.iter().rposition(|&c| c > 0).unwrap_or(0) as u32
    }

    /// Deepest any peer has been.
    pub fn max_depth_seen(&self) -> u32 {
        self.max_depth_seen
    }

    fn count_depth(&mut self, depth: u32, delta: i64) {
        let d = depth as usize;
        if self.depth_counts.len() <= d {
            self.depth_counts.resize(d + 1, 0);
        }
        self.depth_counts[d] = self.depth_counts[d].wrapping_add_signed(delta);
        if delta > 0 {
            self.max_depth_seen = self.max_depth_seen.max(depth);
        }
    }

    fn unlink(&mut self, s: Slot) {
        let (p, prev, next) = {
            let n = self.n(s);
            (n.parent, n.prev, n.next)
        };
        if p == NONE {
            return;
        }
        if prev != NONE {
            self.n_mut(prev).next = next;
        } else {
            self.n_mut(p).first_child = next;
        }
        if next != NONE {
            self.n_mut(next).prev = prev;
        }
        let n = self.n_mut(s);
        n.parent = NONE;
        n.prev = NONE;
        n.next = NONE;
    }

    fn link(&mut self, p: Slot, s: Slot) {
        let first = self.n(p).first_child;
        if first != NONE {
            self.n_mut(first).prev = s;
        }
        let n = self.n_mut(s);
        n.parent = p;
        n.prev = NONE;
        n.next = first;
        self.n_mut(p).first_child = s;
    }

    /// Adds a peer at `place` (`Root`, or `Attached` under `parent`).
    pub fn insert(&mut self, s: Slot, place: Place, parent: Slot) {
        self.ensure(s);
        self.nodes[s as usize] = Node::out();
        self.n_mut(s).place = place;
        if place == Place::Attached {
            self.link(parent, s);
            let d = self.n(parent).depth + 1;
            self.n_mut(s).depth = d;
        }
        let d = self.n(s).depth;
        self.count_depth(d, 1);
    }

    /// Removes a peer; its children become [`Place::Orphaned`] until the
    /// policy places them. Returns them.
    pub fn remove(&mut self, s: Slot) -> Vec<Slot> {
        let children = self.children(s);
        for &c in &children {
            self.unlink(c);
            self.n_mut(c).place = Place::Orphaned;
        }
        self.unlink(s);
        let d = self.n(s).depth;
        self.count_depth(d, -1);
        self.nodes[s as usize] = Node::out();
        children
    }

    /// Moves a peer (with its subtree) to `place` under `parent` (ignored
    /// unless `Attached`). Depths are not updated: call [`Mirror::rebase`]
    /// once every move of a re-plan is applied.
    pub fn relocate(&mut self, s: Slot, place: Place, parent: Slot) {
        self.unlink(s);
        self.n_mut(s).place = place;
        if place == Place::Attached {
            self.link(parent, s);
        }
    }

    /// Recomputes the depths of `s`'s subtree from the parent links.
    pub fn rebase(&mut self, s: Slot) {
        let mut d = 0;
        let mut p = self.n(s).parent;
        while p != NONE {
            d += 1;
            p = self.n(p).parent;
        }
        let mut work = vec![(s, d)];
        while let Some((x, depth)) = work.pop() {
            let old = self.n(x).depth;
            if old != depth {
                self.count_depth(old, -1);
                self.count_depth(depth, 1);
                self.n_mut(x).depth = depth;
            }
            let mut c = self.n(x).first_child;
            while c != NONE {
                work.push((c, depth + 1));
                c = self.n(c).next;
            }
        }
    }
}
