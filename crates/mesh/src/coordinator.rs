//! Thread-safe facade with the `lvqr-mesh` API, over one [`Planner`].

pub use crate::config::MeshConfig;
use crate::error::MeshError;
use crate::planner::{PlacementPolicy, Planner};
use crate::tree::{PeerAssignment, PeerId, PeerInfo, PeerRole};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Manages the relay tree of one track.
///
/// Every method takes `&self` and runs under one lock, so concurrent callers
/// see each operation as atomic: no interleaving can exceed a cap.
#[derive(Debug)]
pub struct MeshCoordinator {
    config: MeshConfig,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    planner: Planner,
    tracks: Tracks,
}

/// The track each peer named at join (the planner itself is per track).
/// Callers name one track for almost every peer, so that name is held once
/// and only the peers naming another one cost an entry: adding or removing
/// a peer of the common track hashes and allocates nothing here.
#[derive(Debug, Default)]
struct Tracks {
    /// The track the first peer named.
    common: Option<String>,
    /// The peers that named a track other than `common`, with it.
    others: hashbrown::HashMap<PeerId, String>,
}

impl Tracks {
    /// Whether a peer naming `track` needs an entry in `others`.
    fn is_other(&self, track: &str) -> bool {
        self.common.as_deref().is_some_and(|common| common != track)
    }

    /// Records `track` for a peer just added, whose id is given when
    /// [`Tracks::is_other`] said the track needs it.
    fn add(&mut self, id: Option<PeerId>, track: String) {
        match id {
            Some(id) => {
                self.others.insert(id, track);
            }
            None if self.common.is_none() => self.common = Some(track),
            None => {}
        }
    }

    /// Forgets a removed peer's track.
    fn remove(&mut self, id: &str) {
        // A removal hashes even in an empty map; a lookup does not.
        if !self.others.is_empty() {
            self.others.remove(id);
        }
    }

    /// The track named by the peers absent from `others`.
    fn common(&self) -> &str {
        self.common.as_deref().unwrap_or_default()
    }

    /// The track a present peer named.
    fn of(&self, id: &str) -> &str {
        self.others.get(id).map_or(self.common(), String::as_str)
    }
}

impl MeshCoordinator {
    /// An empty mesh with these limits.
    pub fn new(config: MeshConfig) -> Self {
        Self {
            state: Mutex::new(State {
                // The seed's placement, as code written against it expects.
                planner: Planner::with_policy(config.clone(), PlacementPolicy::Shallowest),
                tracks: Tracks::default(),
            }),
            config,
        }
    }

    /// The limits this mesh was built with.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a planner call would be a bug; the tree it left is
        // still checked by its invariants, so keep serving rather than poison.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Places a new peer. `capacity` is clamped to `max_children`.
    /// An id already in the mesh is refused with [`MeshError::DuplicatePeer`].
    pub fn add_peer(
        &self,
        id: PeerId,
        track: String,
        capacity: Option<u32>,
    ) -> Result<PeerAssignment, MeshError> {
        let mut state = self.lock();
        // The id is needed again only for a peer of another track.
        let other = state.tracks.is_other(&track).then(|| id.clone());
        let assignment = state.planner.join_owned(id, capacity, Instant::now())?;
        state.tracks.add(other, track);
        Ok(assignment)
    }

    /// Removes a peer and returns its children, waiting (no parent) and
    /// keeping their subtrees, for the caller to [`reassign_peer`](Self::reassign_peer).
    /// An unknown id returns nothing. As in the seed, nothing else moves: a
    /// freed root slot is taken by the next join or by a reassigned orphan
    /// that finds no child slot. (The planner's own [`Planner::leave`]
    /// re-plans and refills in one step.)
    ///
    /// [`Planner::leave`]: crate::Planner::leave
    pub fn remove_peer(&self, id: &str) -> Vec<PeerId> {
        let mut state = self.lock();
        match state.planner.remove_without_replan(id) {
            Ok(orphans) => {
                state.tracks.remove(id);
                orphans
            }
            Err(_) => Vec::new(),
        }
    }

    /// Places a waiting peer with its whole subtree, or moves a live one
    /// to a different parent when one is eligible (never into its own
    /// subtree). Returns its new position. A waiting peer whose subtree
    /// fits nowhere stays waiting and gets `NoAvailableParent`; a live peer
    /// with nowhere better to go stays where it is.
    pub fn reassign_peer(&self, id: &str) -> Result<PeerAssignment, MeshError> {
        let mut state = self.lock();
        state.planner.reassign_whole_unreported(id)?;
        let assignment = state
            .planner
            .assignment(id)
            .ok_or_else(|| MeshError::PeerNotFound(id.to_string()))?;
        if assignment.parent.is_none() && assignment.role != PeerRole::Root {
            return Err(MeshError::NoAvailableParent);
        }
        Ok(assignment)
    }

    /// Records that the peer is alive now. Unknown ids are ignored.
    pub fn heartbeat(&self, id: &str) {
        self.lock().planner.heartbeat(id, Instant::now());
    }

    /// Replaces (never adds to) the peer's cumulative forwarded count.
    /// Unknown ids are ignored.
    pub fn record_forward_report(&self, id: &str, forwarded_frames: u64) {
        self.lock()
            .planner
            .record_forward_report(id, forwarded_frames);
    }

    /// Ids of peers not heard from within the heartbeat timeout.
    pub fn find_dead_peers(&self) -> Vec<PeerId> {
        self.lock().planner.dead_peers(Instant::now())
    }

    /// A copy of one peer.
    pub fn get_peer(&self, id: &str) -> Option<PeerInfo> {
        let state = self.lock();
        state.planner.peer(id, state.tracks.of(id))
    }

    /// Number of peers.
    pub fn peer_count(&self) -> usize {
        self.lock().planner.peer_count()
    }

    /// Number of roots.
    pub fn root_count(&self) -> usize {
        self.lock().planner.root_count()
    }

    /// Percentage of peers fed by another peer rather than by the origin.
    /// A peer waiting for [`reassign_peer`](Self::reassign_peer)
    /// counts as fed by the origin (that is where a client reads while it
    /// has no parent), so after `remove_peer` this is below the seed's
    /// `(n - roots) / n`.
    pub fn offload_percentage(&self) -> f64 {
        self.lock().planner.offload_percentage()
    }

    /// A copy of every peer.
    pub fn tree_snapshot(&self) -> Vec<PeerInfo> {
        let state = self.lock();
        let mut peers = state.planner.snapshot(state.tracks.common());
        for peer in &mut peers {
            if let Some(track) = state.tracks.others.get(&peer.id) {
                peer.track.clone_from(track);
            }
        }
        peers
    }

    /// Checks every tree invariant (see [`Planner::check_invariants`]).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.lock().planner.check_invariants()
    }
}

#[cfg(test)]
mod tests {
    // Code written inside the seed's `coordinator` module imports its
    // siblings this way; every name it uses must resolve.
    use super::*;

    #[test]
    fn the_seed_module_names_are_in_scope() {
        let c = MeshCoordinator::new(MeshConfig::default());
        let a: PeerAssignment = c.add_peer("p".into(), "t".into(), None).unwrap();
        assert_eq!(a.role, PeerRole::Root);
        let info: Option<PeerInfo> = c.get_peer("p");
        let id: Option<PeerId> = info.map(|i| i.id);
        assert_eq!(id.as_deref(), Some("p"));
        assert!(matches!(
            c.reassign_peer("q"),
            Err(MeshError::PeerNotFound(_))
        ));
    }
}
