//! Errors returned by the planner and the coordinator facade.

use thiserror::Error;

/// Why a planner operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MeshError {
    /// No peer with this id is in the tree.
    #[error("peer not found: {0}")]
    PeerNotFound(String),
    /// A peer with this id is already in the tree; the existing peer is untouched.
    #[error("peer id already in the tree: {0}")]
    DuplicatePeer(String),
    /// The mesh holds as many peers as it may. Part of the seed's API; the
    /// planner itself never returns it (peer limits are the server's).
    #[error("mesh is full (max peers: {max})")]
    MeshFull {
        /// The peer limit.
        max: usize,
    },
    /// Every root slot is taken and no peer within the depth limit has a free child slot.
    #[error("no peer has a free child slot within the depth limit")]
    NoAvailableParent,
    /// The only free child slots are at the depth limit.
    #[error("tree depth limit of {max} reached")]
    TreeDepthExceeded {
        /// The configured `max_depth`.
        max: usize,
    },
}
