//! The per-track origin ring buffer, sans-IO: object ids, retention and
//! where a (re)subscribing reader starts.

use bytes::Bytes;
use std::collections::VecDeque;

/// Newest objects of one track, each stored already framed
/// (`[u64 BE id][payload]`) so every subscriber sends the same bytes.
#[derive(Debug)]
pub struct Ring {
    objects: VecDeque<Bytes>,
    /// Id of the object at the front of `objects`.
    first_id: u64,
    bytes: usize,
    max_objects: usize,
    max_bytes: usize,
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
    /// An empty ring keeping at most `max_objects` objects (at least 1) and
    /// about `max_bytes` bytes (always at least the newest object).
    pub fn new(max_objects: usize, max_bytes: usize) -> Self {
        Self {
            objects: VecDeque::new(),
            first_id: 0,
            bytes: 0,
            max_objects: max_objects.max(1),
            max_bytes,
        }
    }

    /// The id the next pushed object gets.
    pub fn next_id(&self) -> u64 {
        self.first_id + self.objects.len() as u64
    }

    /// Oldest kept id (equals `next_id` when empty).
    pub fn first_id(&self) -> u64 {
        self.first_id
    }

    /// Appends one payload, returns its id and the framed bytes.
    pub fn push(&mut self, payload: &[u8]) -> (u64, Bytes) {
        let id = self.next_id();
        let framed = Bytes::from(meshrelay_protocol::frame_object(id, payload));
        self.bytes += framed.len();
        self.objects.push_back(framed.clone());
        while self.objects.len() > self.max_objects
            || (self.bytes > self.max_bytes && self.objects.len() > 1)
        {
            if let Some(old) = self.objects.pop_front() {
                self.bytes -= old.len();
                self.first_id += 1;
            }
        }
        (id, framed)
    }

    /// Where a subscriber asking for `from` starts (see docs/protocol.md).
    pub fn start(&self, from: Option<u64>) -> Start {
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
    pub fn read(&self, cursor: u64, max: usize) -> Read {
        if cursor < self.first_id {
            return Read::Lagged;
        }
        let skip = (cursor - self.first_id) as usize;
        Read::Objects(self.objects.iter().skip(skip).take(max).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_retention_and_start() {
        let mut r = Ring::new(3, usize::MAX);
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
        let mut r = Ring::new(100, 20);
        r.push(&[0; 10]);
        r.push(&[0; 10]);
        assert_eq!(r.first_id(), 1);
        r.push(&[0; 50]);
        assert_eq!((r.first_id(), r.next_id()), (2, 3));
    }
}
