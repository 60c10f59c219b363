//! The id table: from a peer's id to its slot.
//!
//! Each entry keeps 32 bits of its id's hash beside the slot, so growing the
//! table rehashes from the entries alone instead of reading every peer's id
//! (two cache misses a peer at a million peers), and a probe reads a peer
//! only when its stored hash matches.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// Ids to slots; the ids themselves live in the peers.
#[derive(Debug, Default)]
pub(super) struct IdTable {
    table: HashTable<Entry>,
    hasher: DefaultHashBuilder,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: u32,
    hash: u32,
}

/// An id's hash as the table keeps it, computed once per operation.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdHash(u32);

/// The table's 64-bit hash of a stored 32-bit one: hashbrown takes the
/// bucket from the low bits and the probe tag from the top ones, so both
/// halves carry all 32 bits.
fn spread(hash: u32) -> u64 {
    let h = u64::from(hash);
    (h << 32) | h
}

impl IdTable {
    /// The hash of `id` for [`IdTable::find`], [`IdTable::insert`] and
    /// [`IdTable::remove`].
    pub(super) fn hash(&self, id: &str) -> IdHash {
        IdHash((self.hasher.hash_one(id) >> 32) as u32)
    }

    /// The slot with this hash for which `is` says its id is the one sought.
    pub(super) fn find(&self, hash: IdHash, is: impl Fn(u32) -> bool) -> Option<u32> {
        self.table
            .find(spread(hash.0), |e| e.hash == hash.0 && is(e.slot))
            .map(|e| e.slot)
    }

    /// Adds `slot` under `hash`; its id must not be in the table yet.
    pub(super) fn insert(&mut self, hash: IdHash, slot: u32) {
        self.table
            .insert_unique(spread(hash.0), Entry { slot, hash: hash.0 }, |e| {
                spread(e.hash)
            });
    }

    /// Removes `slot`, which is in the table under `hash`.
    pub(super) fn remove(&mut self, hash: IdHash, slot: u32) {
        if let Ok(entry) = self.table.find_entry(spread(hash.0), |e| e.slot == slot) {
            entry.remove();
        }
    }

    /// How many ids the table holds.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}
