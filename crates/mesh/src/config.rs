//! Planner configuration.

use serde::{Deserialize, Serialize};

/// Shape limits of one track's relay tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshConfig {
    /// Most children any peer relays to; a peer's own claimed capacity is clamped to it.
    pub max_children: usize,
    /// Most peers fed directly by the origin (depth 0). With 0 every join
    /// is refused: the tree needs at least one root.
    pub root_peer_count: usize,
    /// Deepest depth a peer may sit at (roots are depth 0).
    pub max_depth: u32,
    /// A peer not heard from for longer than this many seconds is dead.
    pub heartbeat_timeout_secs: u64,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            max_children: 3,
            root_peer_count: 30,
            max_depth: 6,
            heartbeat_timeout_secs: 10,
        }
    }
}

impl MeshConfig {
    /// `max_children` as the planner stores it (saturating at `u32::MAX`).
    pub(crate) fn max_children_u32(&self) -> u32 {
        u32::try_from(self.max_children).unwrap_or(u32::MAX)
    }

    /// A claimed capacity clamped to `[0, max_children]`; `None` means `max_children`.
    pub fn effective_capacity(&self, claimed: Option<u32>) -> u32 {
        let max = self.max_children_u32();
        claimed.map_or(max, |c| c.min(max))
    }
}
