//! The pure planner core: one track's relay tree.
//!
//! Peers live in a slab (`Vec<Option<Node>>`) addressed by `u32` slots; the
//! tree is intrusive (parent, first child, sibling links), so a peer costs no
//! heap allocation beyond its id. Two ordered indexes replace every scan:
//!
//! * `open`: peers with a free child slot, keyed `(depth, children)`, first
//!   come first within a key; its first entry is the parent the seed's rule
//!   picks (shallowest, ties to the fewest children).
//! * `leaves`: childless relays, keyed by most capacity then deepest (with
//!   `PlacementPolicy::StableFirst`, first come within a capacity); its
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
//! too tall for any free slot, or left waiting (fed by the
//! origin) when no slot exists at all.
//!
//! One job per module: `links` (the slab, intrusive links, subtree walks and
//! rebases), `ids` (id to slot), `indexes` (keeping the indexes exact),
//! `placement` (where a subtree goes, who stands in, who is promoted),
//! `operations` (join, leave, reassign, lower capacity), `seed` (what the
//! seed-compatible facade needs besides), `liveness`, `queries`, `report`
//! (what an operation changed) and `invariants`.

mod ids;
mod indexes;
mod invariants;
mod links;
mod liveness;
mod operations;
mod placement;
mod queries;
mod report;
mod seed;

pub use report::{LeaveOutcome, Replan};

/// How the planner ranks places and stand-ins. Every policy keeps the same
/// invariants and costs the same per operation: it changes index keys,
/// tie-breaks and which end of an index a join takes, never adds a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PlacementPolicy {
    /// The seed's placement: first come are roots, a join takes the
    /// shallowest free slot; stand-ins by capacity, then depth. What the
    /// `MeshCoordinator` facade uses.
    Shallowest,
    /// Relays toward the origin, peers that cannot relay at the edge: a
    /// joiner of capacity 0 takes no root slot while a relay has a free
    /// slot, and goes under the deepest free slot, the least loaded parent
    /// there first (the shallow ones are kept for relays); relays join as
    /// in `Shallowest`. Stand-ins and promotions are the most capacious (as
    /// in `Shallowest`). The default: in the simulator's reference event it
    /// serves the most bytes from peers, leaves viewers the least time
    /// without a parent and sends the fewest messages per departure
    /// (docs/simulation.md).
    #[default]
    CapacityFirst,
    /// Long-lived peers drift toward the origin (mTreebone: a small stable
    /// core carries the stream): among stand-ins and promoted peers of equal
    /// capacity the one longest a childless relay is preferred over the
    /// deepest one, and among a leaving peer's own children the oldest.
    StableFirst,
}

impl PlacementPolicy {
    /// Every policy, the default first.
    pub const ALL: [PlacementPolicy; 3] = [
        PlacementPolicy::CapacityFirst,
        PlacementPolicy::Shallowest,
        PlacementPolicy::StableFirst,
    ];

    /// Its name on command lines and in files: `capacity-first`,
    /// `shallowest`, `stable-first`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementPolicy::Shallowest => "shallowest",
            PlacementPolicy::CapacityFirst => "capacity-first",
            PlacementPolicy::StableFirst => "stable-first",
        }
    }
}

impl std::str::FromStr for PlacementPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        PlacementPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = PlacementPolicy::ALL.iter().map(|p| p.as_str()).collect();
                format!("{s:?} is not a placement policy: {}", names.join(", "))
            })
    }
}

use crate::config::MeshConfig;
use crate::index::FifoIndex;
use ids::IdTable;
use indexes::LeafKey;
use report::Touched;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The slot links' "no peer" value.
const NONE: u32 = u32::MAX;

/// Where a peer stands relative to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Fed by the origin, counted against `root_peer_count`.
    Root,
    /// Below a root, through attached parents.
    Attached,
    /// In a subtree cut off from the roots, waiting for a place. The top of
    /// such a subtree has no parent and is fed by the origin meanwhile.
    Waiting,
}

/// One peer: its links into the tree and what the planner knows of it.
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
    policy: PlacementPolicy,
    max_children: u32,
    timeout: Duration,
    /// The slab of peers; `None` is a free slot.
    nodes: Vec<Option<Node>>,
    /// Free slots, the last freed reused first.
    free: Vec<u32>,
    /// Id to slot, for every peer.
    ids: IdTable,
    /// Placed peers with a free child slot above the depth limit, by
    /// (depth, child count): the first is where a join goes.
    open: FifoIndex<(u32, u32)>,
    /// Attached childless peers, by [`LeafKey`]: the first is the best
    /// stand-in from outside a leaving peer's children.
    leaves: FifoIndex<LeafKey>,
    /// Tops of the waiting subtrees, lowest slot first.
    waiting: BTreeSet<u32>,
    /// Roots that can feed nobody (capacity 0), lowest slot first: the root
    /// slots a relay-capable newcomer takes over in
    /// [`Planner::join_relaying`].
    leaf_roots: BTreeSet<u32>,
    /// Peers in state `Root`.
    roots: usize,
    /// Placed peers with a free child slot at the depth limit: when they are
    /// the only free slots, a join fails with `TreeDepthExceeded`.
    deep_free: usize,
}

impl Planner {
    /// An empty tree with these limits and the default placement policy.
    pub fn new(config: MeshConfig) -> Self {
        Self::with_policy(config, PlacementPolicy::default())
    }

    /// An empty tree with these limits, placing peers by `policy`.
    pub fn with_policy(config: MeshConfig, policy: PlacementPolicy) -> Self {
        Self {
            policy,
            max_children: config.max_children_u32(),
            timeout: Duration::from_secs(config.heartbeat_timeout_secs),
            config,
            nodes: Vec::new(),
            free: Vec::new(),
            ids: IdTable::default(),
            open: FifoIndex::new(),
            leaves: FifoIndex::new(),
            waiting: BTreeSet::new(),
            leaf_roots: BTreeSet::new(),
            roots: 0,
            deep_free: 0,
        }
    }

    /// The limits this tree was built with.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// The placement policy this tree was built with.
    pub fn policy(&self) -> PlacementPolicy {
        self.policy
    }
}
