//! The exhaustive invariant check, for tests.

use super::{Planner, State, NONE};

impl Planner {
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
        let mut waiting = 0;
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
                State::Attached | State::Waiting if n.parent == NONE => {
                    if n.state == State::Attached {
                        return Err(format!("{name}: attached without a parent"));
                    }
                    waiting += 1;
                    if n.depth != 0 || !self.waiting.contains(&i) {
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
                    let expected = if p.state == State::Waiting {
                        State::Waiting
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
            if n.state != State::Waiting && n.depth > self.config.max_depth {
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
        if count != self.ids.len() {
            return Err(format!("{count} peers, ids {}", self.ids.len()));
        }
        if roots != self.roots || roots > self.config.root_peer_count {
            return Err(format!(
                "{roots} roots, counter {}, cap {}",
                self.roots, self.config.root_peer_count
            ));
        }
        if open != self.open.len()
            || leaves != self.leaves.len()
            || waiting != self.waiting.len()
            || deep_free != self.deep_free
        {
            return Err("an index holds stale entries".to_string());
        }
        Ok(())
    }
}
