//! Live tracks by name: created on first use, dropped when the last user
//! (peer session, publisher or subscriber) lets go.

use crate::track::Track;
use meshrelay_mesh::MeshConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

struct Entry {
    track: Arc<Track>,
    users: usize,
}

/// Every live track.
pub struct Registry {
    tracks: Mutex<HashMap<Arc<str>, Entry>>,
    mesh: MeshConfig,
    ring_objects: usize,
    ring_bytes: usize,
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
    /// No tracks yet; new ones get these limits.
    pub fn new(mesh: MeshConfig, ring_objects: usize, ring_bytes: usize) -> Self {
        Self {
            tracks: Mutex::new(HashMap::new()),
            mesh,
            ring_objects,
            ring_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        self.tracks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims a track (a validated name), creating it if needed.
    pub fn acquire(self: &Arc<Self>, name: &str) -> Lease {
        let mut tracks = self.lock();
        let entry = match tracks.get_mut(name) {
            Some(e) => e,
            None => {
                let name: Arc<str> = name.into();
                let track = Track::new(
                    name.clone(),
                    self.mesh.clone(),
                    self.ring_objects,
                    self.ring_bytes,
                );
                tracks.entry(name).or_insert(Entry {
                    track: Arc::new(track),
                    users: 0,
                })
            }
        };
        entry.users += 1;
        Lease {
            registry: Arc::clone(self),
            track: Arc::clone(&entry.track),
        }
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

    #[test]
    fn track_lives_while_leased() {
        let reg = Arc::new(Registry::new(MeshConfig::default(), 8, 1 << 20));
        let a = reg.acquire("t");
        let b = reg.acquire("t");
        assert!(Arc::ptr_eq(a.track(), b.track()));
        a.track().publish(b"x");
        drop(a);
        assert_eq!(reg.list().len(), 1);
        drop(b);
        assert!(reg.list().is_empty());
        // A new track starts over at object 0.
        assert_eq!(reg.acquire("t").track().next_object_id(), 0);
    }
}
