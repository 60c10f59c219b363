//! A track's origin: its ring of recent objects, the watch on the id the
//! next object gets, its epoch and its counters. Publishing never takes the
//! tree's lock, and the tree never takes the ring's.

use crate::ring::{Read, Ring, RingBudget, Start};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Objects and bytes counters of one track's origin.
#[derive(Debug, Default)]
pub struct TrackStats {
    /// Objects accepted from publishers.
    pub objects_published: AtomicU64,
    /// Payload bytes accepted from publishers.
    pub bytes_published: AtomicU64,
    /// Objects written to egress subscribers.
    pub origin_objects_sent: AtomicU64,
    /// Bytes written to egress subscribers: framed objects and text notices.
    pub origin_bytes_sent: AtomicU64,
    /// Open egress subscribers.
    pub subscribers: AtomicUsize,
    /// Open publishers: 0 or 1, held by [`crate::track::PublisherClaim`].
    pub publishers: AtomicUsize,
}

/// The origin side of one track.
pub struct Origin {
    ring: Mutex<Ring>,
    next_id: watch::Sender<u64>,
    /// Names this track's id sequence (see `AssignParent`'s `epoch`): a
    /// track created anew restarts at 0 under a new epoch.
    pub epoch: Arc<str>,
    /// Origin counters.
    pub stats: TrackStats,
}

/// A fresh epoch: 64 random bits in hex. Uniqueness is all it needs, so
/// the standard library's randomly keyed hasher supplies them.
fn random_epoch() -> Arc<str> {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{bits:016x}").into()
}

fn lock(m: &Mutex<Ring>) -> MutexGuard<'_, Ring> {
    // A ring stays consistent across a panic elsewhere; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Origin {
    /// An empty ring under a random epoch, next id 0.
    pub fn new(ring_objects: usize, ring_bytes: usize, ring_budget: Arc<RingBudget>) -> Self {
        Self {
            ring: Mutex::new(Ring::new(ring_objects, ring_bytes, ring_budget)),
            next_id: watch::Sender::new(0),
            epoch: random_epoch(),
            stats: TrackStats::default(),
        }
    }

    /// Takes the only publisher slot; false while another publisher holds it.
    pub(crate) fn take_publisher_slot(&self) -> bool {
        self.stats
            .publishers
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Frees the publisher slot.
    pub(crate) fn free_publisher_slot(&self) {
        self.stats.publishers.store(0, Ordering::Release);
    }

    /// Appends a published object; returns its id.
    pub fn publish(&self, payload: &[u8]) -> u64 {
        let mut ring = lock(&self.ring);
        let (id, _) = ring.push(payload);
        // Sent under the ring lock so readers never see the notice before the object.
        self.next_id.send_replace(ring.next_id());
        self.stats.objects_published.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_published
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        id
    }

    /// The id the next published object gets.
    pub fn next_object_id(&self) -> u64 {
        *self.next_id.borrow()
    }

    /// Where a subscriber asking for `from` starts, and a receiver that
    /// changes whenever an object is published.
    pub fn subscribe(&self, from: Option<u64>) -> (Start, watch::Receiver<u64>) {
        let ring = lock(&self.ring);
        (ring.start(from), self.next_id.subscribe())
    }

    /// Up to `max` framed objects from `cursor` on.
    pub fn read(&self, cursor: u64, max: usize) -> Read {
        lock(&self.ring).read(cursor, max)
    }
}
