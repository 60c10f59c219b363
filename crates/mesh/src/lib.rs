//! meshrelay's relay-tree topology planner.
//!
//! [`Planner`] is the pure core: one instance per track, synchronous, no I/O,
//! no clock of its own (every time-dependent call takes `now`). Every
//! operation keeps the tree invariants listed on [`Planner::check_invariants`].
//! Join, leave and heartbeat cost O(1) expected plus the size of what moves
//! (and, while peers wait for a place, a pass over the waiting ones when a
//! leave frees room); only queries that copy the tree (`snapshot`,
//! `summaries`), the liveness scans (`dead_peers`, `sweep`) and a live
//! `reassign` (which may walk the free slots to skip its own subtree) are
//! linear.
//!
//! [`MeshCoordinator`] is a thread-safe facade with the API of the `lvqr-mesh`
//! crate, built on one [`Planner`].

pub mod config;
pub mod coordinator;
pub mod error;
mod index;
pub mod planner;
pub mod tree;

pub use config::MeshConfig;
pub use coordinator::MeshCoordinator;
pub use error::MeshError;
pub use planner::{LeaveOutcome, Planner, Replan};
pub use tree::{PeerAssignment, PeerId, PeerInfo, PeerRole, PeerSummary};
