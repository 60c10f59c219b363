//! An ordered index of slots grouped by a small key.
//!
//! The planner's keys take few distinct values (depth x child count, or
//! capacity x depth), so slots sharing a key sit in one intrusive FIFO list
//! and only the non-empty keys are kept ordered. Insert and remove are O(1)
//! plus a lookup in the small key map, with no allocation per slot; ties
//! within a key go to the slot that entered first.

use std::collections::BTreeMap;

const NONE: u32 = u32::MAX;

/// Slots ordered by key, then by time of insertion.
#[derive(Debug)]
pub(crate) struct FifoIndex<K> {
    /// First and last slot of each non-empty key.
    lists: BTreeMap<K, (u32, u32)>,
    /// Previous and next slot in the same key, per slot.
    links: Vec<(u32, u32)>,
    len: usize,
}

impl<K: Ord + Copy> FifoIndex<K> {
    pub(crate) fn new() -> Self {
        Self {
            lists: BTreeMap::new(),
            links: Vec::new(),
            len: 0,
        }
    }

    fn ensure(&mut self, slot: u32) {
        if self.links.len() <= slot as usize {
            self.links.resize(slot as usize + 1, (NONE, NONE));
        }
    }

    /// Adds `slot` under `key`, last among its equals. The slot must not be in the index.
    pub(crate) fn insert(&mut self, key: K, slot: u32) {
        self.ensure(slot);
        match self.lists.get_mut(&key) {
            Some((_, tail)) => {
                let old = *tail;
                *tail = slot;
                self.links[old as usize].1 = slot;
                self.links[slot as usize] = (old, NONE);
            }
            None => {
                self.lists.insert(key, (slot, slot));
                self.links[slot as usize] = (NONE, NONE);
            }
        }
        self.len += 1;
    }

    /// Removes `slot`, which must be in the index under `key`.
    pub(crate) fn remove(&mut self, key: K, slot: u32) {
        let (prev, next) = self.links[slot as usize];
        if prev != NONE {
            self.links[prev as usize].1 = next;
        }
        if next != NONE {
            self.links[next as usize].0 = prev;
        }
        if let Some(ends) = self.lists.get_mut(&key) {
            if ends.0 == slot {
                ends.0 = next;
            }
            if ends.1 == slot {
                ends.1 = prev;
            }
            if ends.0 == NONE {
                self.lists.remove(&key);
            }
        }
        self.links[slot as usize] = (NONE, NONE);
        self.len -= 1;
    }

    /// Whether `slot` is listed under `key`. O(slots under that key); for checks.
    pub(crate) fn contains(&self, key: K, slot: u32) -> bool {
        self.iter_key(key).any(|s| s == slot)
    }

    fn iter_key(&self, key: K) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.lists.get(&key).map_or(NONE, |&(head, _)| head);
        std::iter::from_fn(move || {
            (at != NONE).then(|| {
                let s = at;
                at = self.links[s as usize].1;
                s
            })
        })
    }

    /// Every slot with its key, smallest key first, FIFO within a key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, u32)> + '_ {
        self.lists
            .keys()
            .flat_map(move |&k| self.iter_key(k).map(move |s| (k, s)))
    }

    /// The slots of the keys `keep` accepts, in order; keys it refuses cost
    /// one call each, their slots nothing.
    pub(crate) fn iter_where<'a>(
        &'a self,
        mut keep: impl FnMut(&K) -> bool + 'a,
    ) -> impl Iterator<Item = u32> + 'a {
        self.lists
            .keys()
            .filter(move |k| keep(k))
            .flat_map(move |&k| self.iter_key(k))
    }

    /// The first slot in order.
    pub(crate) fn first(&self) -> Option<u32> {
        self.lists.values().next().map(|&(head, _)| head)
    }

    /// The first slot from `key` on.
    pub(crate) fn first_from(&self, key: K) -> Option<u32> {
        self.lists.range(key..).next().map(|(_, &(head, _))| head)
    }

    /// The last key.
    pub(crate) fn last_key(&self) -> Option<K> {
        self.lists.keys().next_back().copied()
    }

    /// Number of slots in the index.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the index is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}
