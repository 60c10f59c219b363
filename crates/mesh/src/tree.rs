//! Public value types describing peers and their place in the tree.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A peer's id as the client registered it.
pub type PeerId = String;

/// Where a peer gets the stream from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeerRole {
    /// Fed directly by the origin (depth 0).
    Root,
    /// Fed by a parent peer and able to relay to children.
    Relay,
    /// Fed by a parent peer, or by the origin while waiting for a place, and
    /// never a parent (capacity 0).
    Leaf,
}

/// A peer's position, as told to it in `AssignParent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAssignment {
    /// The peer this assignment is for.
    pub peer_id: PeerId,
    /// Its role.
    pub role: PeerRole,
    /// Its parent; `None` for a root and for a peer waiting for a place.
    pub parent: Option<PeerId>,
    /// Hops from the origin (roots are 0).
    pub depth: u32,
}

/// A peer's place in the tree, for listing many peers at once: what
/// [`PeerInfo`] says less the children's ids (their number instead) and the
/// track, so copying a large tree costs two strings a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// The peer's id.
    pub id: PeerId,
    /// Its role.
    pub role: PeerRole,
    /// Its parent; `None` for a root and for a peer waiting for a place.
    pub parent: Option<PeerId>,
    /// Hops from the origin (roots are 0).
    pub depth: u32,
    /// How many children it has.
    pub child_count: usize,
    /// The cumulative forwarded-object count the peer last reported.
    pub forwarded_frames: u64,
    /// The capacity the peer claimed at join, unclamped.
    pub capacity: Option<u32>,
    /// The children it may have now: its claim clamped to `max_children`,
    /// or less once it showed it cannot feed that many.
    pub effective_capacity: u32,
}

/// A copy of everything the planner knows about one peer.
///
/// Serialises like the seed's: the two instants are process-local and are
/// skipped (restored as "now" and "never" when read back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's id.
    pub id: PeerId,
    /// The track it watches.
    pub track: String,
    /// Its role.
    pub role: PeerRole,
    /// Its parent; `None` for a root and for a peer waiting for a place.
    pub parent: Option<PeerId>,
    /// Its children, in the order they were attached.
    pub children: Vec<PeerId>,
    /// Hops from the origin (roots are 0).
    pub depth: u32,
    /// Upload bandwidth the peer reported, in kbit/s (0 when unknown).
    pub upload_kbps: u32,
    /// The cumulative forwarded-object count the peer last reported.
    #[serde(default)]
    pub forwarded_frames: u64,
    /// The capacity the peer claimed at join, unclamped; `None` means "as many as allowed".
    pub capacity: Option<u32>,
    /// When it joined.
    #[serde(skip, default = "Instant::now")]
    pub joined_at: Instant,
    /// When it was last heard from.
    #[serde(skip)]
    pub last_heartbeat: Option<Instant>,
}

impl PeerInfo {
    /// A fresh, parentless peer stamped alive now.
    pub fn new(id: PeerId, track: String) -> Self {
        let now = Instant::now();
        Self {
            id,
            track,
            role: PeerRole::Relay,
            parent: None,
            children: Vec::new(),
            depth: 0,
            upload_kbps: 0,
            forwarded_frames: 0,
            capacity: None,
            joined_at: now,
            last_heartbeat: Some(now),
        }
    }

    /// Number of children it relays to.
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// Its claimed capacity clamped to `max_children`.
    pub fn effective_capacity(&self, max_children: usize) -> usize {
        self.capacity
            .map_or(max_children, |c| (c as usize).min(max_children))
    }

    /// Whether it has a free child slot under `max_children`.
    pub fn can_accept_child(&self, max_children: usize) -> bool {
        self.child_count() < self.effective_capacity(max_children)
    }
}
