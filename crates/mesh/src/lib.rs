#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod coordinator;
pub mod error;
mod index;
pub mod planner;
pub mod tree;

pub use config::MeshConfig;
pub use coordinator::MeshCoordinator;
pub use error::MeshError;
pub use planner::{LeaveOutcome, PlacementPolicy, Planner, Replan};
pub use tree::{PeerAssignment, PeerId, PeerInfo, PeerRole, PeerSummary};
