//! The per-track origin ring buffer, sans-IO: object ids, retention and
//! where a (re)subscribing reader starts.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One memory budget shared by every track's ring (`--ring-bytes-total`).
///
/// A ring that pushes past the budget evicts its own oldest objects until
/// the total is back under it or it holds only the object just pushed. So
/// the total exceeds the budget only while some ring holds nothing but its
/// newest object (other tracks hold the rest); a live object is never
/// refused, and the rings holding the budget shed history as they publish.
#[derive(Debug)]
pub struct RingBudget {
    max: usize,
    used: AtomicUsize,
}

impl RingBudget {
    /// A budget of `max` bytes, none used.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes held by all rings now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The budget.
    pub fn max(&self) -> usize {
        self.max
    }

    fn over(&self) -> bool {
        self.used() > self.max
    }

    fn take(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Newest objects of one track, each stored already framed
/// (`[u64 BE id][payload]`) so every subscriber sends the same bytes.
#[derive(Debug)]
pub(crate) struct Ring {
    objects: VecDeque<Bytes>,
    /// Id of the object at the front of `objects`.
    first_id: u64,
    bytes: usize,
    max_objects: usize,
    max_bytes: usize,
    budget: Arc<RingBudget>,
}

/// Where a subscriber starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// First object id it will get.
    pub cursor: u64,
    /// `Some(requested)` when `from` is older than anything kept.
    pub gap_from: Option<u64>,
}

/// What a reader at a cursor gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Objects from the cursor on (possibly none yet).
    Objects(Vec<Bytes>),
    /// The cursor fell out of the ring: the reader was too slow.
    Lagged,
}

impl Ring {
    /// An empty ring keeping at most `max_objects` objects (at least 1),
    /// about `max_bytes` bytes, and its share of `budget` (always at least
    /// the newest object).
    pub(crate) fn new(max_objects: usize, max_bytes: usize, budget: Arc<RingBudget>) -> Self {
        Self {
            objects: VecDeque::new(),
            first_id: 0,
            bytes: 0,
            max_objects: max_objects.max(1),
            max_bytes,
            budget,
        }
    }

    /// Framed bytes held now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The id the next pushed object gets.
    pub(crate) fn next_id(&self) -> u64 {
        self.first_id + self.objects.len() as u64
    }

    /// Oldest kept id (equals `next_id` when empty).
    #[cfg(test)]
    pub(crate) fn first_id(&self) -> u64 {
        self.first_id
    }

    /// Appends one payload, returns its id and the framed bytes.
    pub(crate) fn push(&mut self, payload: &[u8]) -> (u64, Bytes) {
        let id = self.next_id();
        let framed = Bytes::from(meshrelay_protocol::frame_object(id, payload));
        self.bytes += framed.len();
        self.budget.take(framed.len());
        self.objects.push_back(framed.clone());
        while self.objects.len() > self.max_objects
            || (self.objects.len() > 1 && (self.bytes > self.max_bytes || self.budget.over()))
        {
            if let Some(old) = self.objects.pop_front() {
                self.bytes -= old.len();
                self.budget.give_back(old.len());
                self.first_id += 1;
            }
        }
        (id, framed)
    }

    /// Where a subscriber asking for `from` starts (see docs/protocol.md).
    pub(crate) fn start(&self, from: Option<u64>) -> Start {
        let next = self.next_id();
        match from {
            None => Start {
                cursor: next,
                gap_from: None,
            },
            Some(f) if f >= next => Start {
                cursor: next,
                gap_from: None,
            },
            Some(f) if f < self.first_id => Start {
                cursor: self.first_id,
                gap_from: Some(f),
            },
            Some(f) => Start {
                cursor: f,
                gap_from: None,
            },
        }
    }

    /// Up to `max` objects from `cursor` on.
    pub(crate) fn read(&self, cursor: u64, max: usize) -> Read {
        if cursor < self.first_id {
            return Read::Lagged;
        }
        let skip = (cursor - self.first_id) as usize;
        Read::Objects(self.objects.iter().skip(skip).take(max).cloned().collect())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlimited() -> Arc<RingBudget> {
        Arc::new(RingBudget::new(usize::MAX))
    }

    #[test]
    fn ids_retention_and_start() {
        let mut r = Ring::new(3, usize::MAX, unlimited());
        for i in 0..5u8 {
            assert_eq!(r.push(&[i]).0, i as u64);
        }
        assert_eq!((r.first_id(), r.next_id()), (2, 5));
        assert_eq!(
            r.start(None),
            Start {
                cursor: 5,
                gap_from: None
            }
        );
        assert_eq!(
            r.start(Some(3)),
            Start {
                cursor: 3,
                gap_from: None
            }
        );
        assert_eq!(
            r.start(Some(0)),
            Start {
                cursor: 2,
                gap_from: Some(0)
            }
        );
        assert_eq!(
            r.start(Some(99)),
            Start {
                cursor: 5,
                gap_from: None
            }
        );
        let Read::Objects(objs) = r.read(3, 10) else {
            panic!()
        };
        assert_eq!(
            objs,
            vec![
                Bytes::from(vec![0, 0, 0, 0, 0, 0, 0, 3, 3]),
                Bytes::from(vec![0, 0, 0, 0, 0, 0, 0, 4, 4])
            ]
        );
        assert_eq!(r.read(1, 10), Read::Lagged);
        assert_eq!(r.read(5, 10), Read::Objects(vec![]));
    }

    #[test]
    fn byte_bound_keeps_newest() {
        let mut r = Ring::new(100, 20, unlimited());
        r.push(&[0; 10]);
        r.push(&[0; 10]);
        assert_eq!(r.first_id(), 1);
        r.push(&[0; 50]);
        assert_eq!((r.first_id(), r.next_id()), (2, 3));
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    /// Framed size of a payload of `n` bytes.
    const fn framed(n: usize) -> usize {
        8 + n
    }

    #[test]
    fn rings_share_one_budget_and_evict_their_own_oldest() {
        let budget = Arc::new(RingBudget::new(framed(10) * 5));
        let mut a = Ring::new(100, usize::MAX, Arc::clone(&budget));
        let mut b = Ring::new(100, usize::MAX, Arc::clone(&budget));
        for _ in 0..3 {
            a.push(&[1; 10]);
        }
        b.push(&[2; 10]);
        b.push(&[2; 10]);
        assert_eq!(budget.used(), framed(10) * 5);
        assert_eq!(budget.used(), a.bytes() + b.bytes());
        // Full: b's next object evicts b's own oldest, never a's.
        b.push(&[2; 10]);
        assert_eq!((b.first_id(), b.next_id()), (1, 3));
        assert_eq!((a.first_id(), a.next_id()), (0, 3));
        assert_eq!(budget.used(), framed(10) * 5);
        // A larger object evicts as many of b's own as it takes.
        b.push(&[2; 25]);
        assert_eq!((b.first_id(), b.next_id()), (3, 4));
        assert_eq!(budget.used(), framed(10) * 3 + framed(25));
        assert!(budget.used() <= budget.max());
        assert_eq!(budget.used(), a.bytes() + b.bytes());
    }

    #[test]
    fn a_ring_keeps_its_newest_object_even_when_others_hold_the_budget() {
        let budget = Arc::new(RingBudget::new(framed(10) * 2));
        let mut a = Ring::new(100, usize::MAX, Arc::clone(&budget));
        let mut b = Ring::new(100, usize::MAX, Arc::clone(&budget));
        a.push(&[1; 10]);
        a.push(&[1; 10]);
        // b holds nothing beyond its new object, so it keeps it (live
        // delivery goes on) and the total is over by that object alone.
        b.push(&[2; 10]);
        assert_eq!((b.first_id(), b.next_id()), (0, 1));
        assert_eq!(budget.used(), framed(10) * 3);
        // Its next object replaces it; it does not accumulate.
        b.push(&[2; 10]);
        assert_eq!((b.first_id(), b.next_id()), (1, 2));
        assert_eq!(budget.used(), framed(10) * 3);
        // a, publishing again, sheds its own history back under the budget.
        a.push(&[1; 10]);
        assert_eq!((a.first_id(), a.next_id()), (2, 3));
        assert_eq!(budget.used(), framed(10) * 2);
    }

    #[test]
    fn per_track_bound_still_applies_and_drop_gives_the_bytes_back() {
        let budget = Arc::new(RingBudget::new(usize::MAX));
        let mut a = Ring::new(100, framed(10) * 2, Arc::clone(&budget));
        for _ in 0..5 {
            a.push(&[1; 10]);
        }
        assert_eq!(a.bytes(), framed(10) * 2);
        assert_eq!(budget.used(), framed(10) * 2);
        let mut b = Ring::new(2, usize::MAX, Arc::clone(&budget));
        for _ in 0..5 {
            b.push(&[2; 1]);
        }
        assert_eq!(budget.used(), framed(10) * 2 + framed(1) * 2);
        drop(a);
        assert_eq!(budget.used(), framed(1) * 2);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
