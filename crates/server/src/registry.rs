//! Live tracks by name: created on first use, dropped when the last user
//! (peer session, publisher or subscriber) lets go.

use crate::ring::RingBudget;
use crate::track::Track;
use meshrelay_mesh::{MeshConfig, PlacementPolicy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

struct Entry {
    track: Arc<Track>,
    users: usize,
}

/// Every live track.
pub struct Registry {
    tracks: Mutex<HashMap<Arc<str>, Entry>>,
    /// Clients name tracks freely, so their number is capped.
    max_tracks: usize,
    mesh: MeshConfig,
    /// Tracks planned with other limits than `mesh` (the demo track).
    shapes: HashMap<String, MeshConfig>,
    /// How every track's planner places peers.
    placement: PlacementPolicy,
    ring_objects: usize,
    ring_bytes: usize,
    ring_budget: Arc<RingBudget>,
    /// Every track's epoch, instead of a random one per track.
    fixed_epoch: Option<Arc<str>>,
}

/// A claim on a track that keeps it alive; dropping it may drop the track.
pub struct Lease {
    registry: Arc<Registry>,
    track: Arc<Track>,
}

impl Lease {
    /// The track.
    pub fn track(&self) -> &Arc<Track> {
        &self.track
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut tracks = self.registry.lock();
        if let Some(entry) = tracks.get_mut(&self.track.name) {
            entry.users -= 1;
            if entry.users == 0 {
                tracks.remove(&self.track.name);
            }
        }
    }
}

impl Registry {
    /// No tracks yet; at most `max_tracks` at once, each with these limits.
    pub fn new(
        max_tracks: usize,
        mesh: MeshConfig,
        ring_objects: usize,
        ring_bytes: usize,
        ring_budget: Arc<RingBudget>,
    ) -> Self {
        Self {
            tracks: Mutex::new(HashMap::new()),
            max_tracks,
            mesh,
            shapes: HashMap::new(),
            placement: PlacementPolicy::default(),
            ring_objects,
            ring_bytes,
            ring_budget,
            fixed_epoch: None,
        }
    }

    /// Gives every track this epoch instead of a random one (for tests).
    pub fn with_fixed_epoch(mut self, epoch: &str) -> Self {
        self.fixed_epoch = Some(epoch.into());
        self
    }

    /// Places every track's peers by `placement` (`PlacementPolicy::default()` otherwise).
    pub fn with_placement(mut self, placement: PlacementPolicy) -> Self {
        self.placement = placement;
        self
    }

    /// Plans the track `name` with `mesh` instead of the server's limits.
    pub fn with_track_shape(mut self, name: &str, mesh: MeshConfig) -> Self {
        self.shapes.insert(name.to_string(), mesh);
        self
    }

    /// The server-wide ring memory budget.
    pub fn ring_budget(&self) -> &Arc<RingBudget> {
        &self.ring_budget
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        self.tracks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims a track (a validated name), creating it if needed; `None`
    /// when it does not exist and the track limit is reached.
    pub fn acquire(self: &Arc<Self>, name: &str) -> Option<Lease> {
        let mut tracks = self.lock();
        let at_limit = tracks.len() >= self.max_tracks;
        let entry = match tracks.get_mut(name) {
            Some(e) => e,
            None if at_limit => return None,
            None => {
                let name: Arc<str> = name.into();
                let track = Track::new(
                    name.clone(),
                    self.shapes.get(&*name).unwrap_or(&self.mesh).clone(),
                    self.placement,
                    self.ring_objects,
                    self.ring_bytes,
                    Arc::clone(&self.ring_budget),
                );
                let track = match &self.fixed_epoch {
                    Some(epoch) => track.with_epoch(Arc::clone(epoch)),
                    None => track,
                };
                tracks.entry(name).or_insert(Entry {
                    track: Arc::new(track),
                    users: 0,
                })
            }
        };
        entry.users += 1;
        Some(Lease {
            registry: Arc::clone(self),
            track: Arc::clone(&entry.track),
        })
    }

    /// Every live track, sorted by name.
    pub fn list(&self) -> Vec<Arc<Track>> {
        let mut v: Vec<_> = self.lock().values().map(|e| Arc::clone(&e.track)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max_tracks: usize) -> Arc<Registry> {
        let budget = Arc::new(RingBudget::new(usize::MAX));
        Arc::new(Registry::new(
            max_tracks,
            MeshConfig::default(),
            8,
            1 << 20,
            budget,
        ))
    }

    #[test]
    fn track_lives_while_leased() {
        let reg = registry(8);
        let a = reg.acquire("t").unwrap();
        let b = reg.acquire("t").unwrap();
        assert!(Arc::ptr_eq(a.track(), b.track()));
        a.track().origin.publish(b"x");
        drop(a);
        assert_eq!(reg.list().len(), 1);
        drop(b);
        assert!(reg.list().is_empty());
        // A new track starts over at object 0.
        assert_eq!(reg.acquire("t").unwrap().track().origin.next_object_id(), 0);
    }

    #[test]
    fn track_count_is_capped_and_frees_up() {
        let reg = registry(2);
        let a = reg.acquire("a").unwrap();
        let _b = reg.acquire("b").unwrap();
        assert!(reg.acquire("c").is_none());
        // Existing tracks can still be joined at the limit.
        let a2 = reg.acquire("a").unwrap();
        drop(a);
        assert!(reg.acquire("c").is_none());
        drop(a2);
        assert!(reg.acquire("c").is_some());
    }

    #[test]
    fn concurrent_last_release_and_acquire_never_share_a_dropped_track() {
        // A lease taken while another is being released must find the track
        // in the registry; a track object that was removed is never handed out.
        let reg = registry(8);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2_000 {
                        let lease = reg.acquire("t").unwrap();
                        let listed = reg.list();
                        assert!(listed.iter().any(|t| Arc::ptr_eq(t, lease.track())));
                    }
                });
            }
        });
        assert!(reg.list().is_empty());
    }
}
