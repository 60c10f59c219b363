//! Object framing (`[u64 BE object_id][payload]`), DataChannel chunking and
//! the egress text notices (`ResumeGap`, `Error`).

use crate::ErrorCode;
use serde::{Deserialize, Serialize};

/// Bytes of the object id prefix.
pub const OBJECT_HEADER_LEN: usize = 8;
/// Bytes of a chunk header: flagged id, total length, offset.
pub const CHUNK_HEADER_LEN: usize = 16;
/// Largest DataChannel message meshrelay sends.
pub const MAX_DATACHANNEL_MESSAGE: usize = 64 * 1024;
/// The bit that marks a chunk; object ids stay below it.
pub const CHUNK_FLAG: u64 = 1 << 63;

/// Frames one object as `[object_id BE][payload]`.
pub fn frame_object(object_id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OBJECT_HEADER_LEN + payload.len());
    out.extend_from_slice(&object_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a framed object into its id and payload; `None` if shorter than
/// the header or if it is a chunk (high bit set).
pub fn parse_object(message: &[u8]) -> Option<(u64, &[u8])> {
    let (head, payload) = message.split_at_checked(OBJECT_HEADER_LEN)?;
    let id = u64::from_be_bytes(head.try_into().ok()?);
    (id & CHUNK_FLAG == 0).then_some((id, payload))
}

/// The DataChannel messages for one object: one plain frame when it fits
/// in `MAX_DATACHANNEL_MESSAGE`, else a run of chunks. `None` when the
/// payload is too long for the chunk header's 32-bit length.
pub fn split_into_chunks(object_id: u64, payload: &[u8]) -> Option<Vec<Vec<u8>>> {
    if OBJECT_HEADER_LEN + payload.len() <= MAX_DATACHANNEL_MESSAGE {
        return Some(vec![frame_object(object_id, payload)]);
    }
    let total = u32::try_from(payload.len()).ok()?;
    let step = MAX_DATACHANNEL_MESSAGE - CHUNK_HEADER_LEN;
    let chunks = payload
        .chunks(step)
        .enumerate()
        .map(|(i, chunk)| {
            // Below `total`, so it fits in u32.
            let offset = (i * step) as u32;
            let mut msg = Vec::with_capacity(CHUNK_HEADER_LEN + chunk.len());
            msg.extend_from_slice(&(object_id | CHUNK_FLAG).to_be_bytes());
            msg.extend_from_slice(&total.to_be_bytes());
            msg.extend_from_slice(&offset.to_be_bytes());
            msg.extend_from_slice(chunk);
            msg
        })
        .collect();
    Some(chunks)
}

/// Largest object a [`Reassembler`] accepts by default: the server's
/// default `--max-object-bytes`.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 4 * 1024 * 1024;

/// Reassembles chunked objects from one ordered DataChannel.
///
/// Memory is bounded by `max_object_bytes`: the total length in a chunk
/// header is the sender's claim, so a larger claim is discarded rather than
/// allocated.
#[derive(Debug)]
pub struct Reassembler {
    max_object_bytes: usize,
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    id: u64,
    total: usize,
    bytes: Vec<u8>,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_OBJECT_BYTES)
    }
}

/// What one incoming DataChannel message produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// A whole object.
    Object(u64, Vec<u8>),
    /// A chunk was stored; the object is not complete yet.
    Pending,
    /// The message was malformed, out of sequence or announced an object
    /// over the limit; any partial object was discarded (repair it from
    /// the origin).
    Discarded,
}

impl Reassembler {
    /// A reassembler refusing objects longer than `max_object_bytes`.
    pub fn new(max_object_bytes: usize) -> Self {
        Self {
            max_object_bytes,
            partial: None,
        }
    }

    /// Feeds one DataChannel message.
    pub fn push(&mut self, message: &[u8]) -> Reassembled {
        let partial = self.partial.take();
        if let Some((id, payload)) = parse_object(message) {
            return Reassembled::Object(id, payload.to_vec());
        }
        let Some((id, total, offset, chunk)) = parse_chunk(message) else {
            return Reassembled::Discarded;
        };
        if total > self.max_object_bytes {
            return Reassembled::Discarded;
        }
        let mut partial = match partial {
            Some(p) if p.id == id && p.total == total && p.bytes.len() == offset => p,
            _ if offset == 0 => Partial {
                id,
                total,
                bytes: Vec::with_capacity(total),
            },
            _ => return Reassembled::Discarded,
        };
        if partial.bytes.len() + chunk.len() > total {
            return Reassembled::Discarded;
        }
        partial.bytes.extend_from_slice(chunk);
        if partial.bytes.len() == total {
            Reassembled::Object(id, partial.bytes)
        } else {
            self.partial = Some(partial);
            Reassembled::Pending
        }
    }
}

/// Splits a chunk message into (object id, total length, offset, bytes).
fn parse_chunk(message: &[u8]) -> Option<(u64, usize, usize, &[u8])> {
    let (id, rest) = message.split_first_chunk::<8>()?;
    let (total, rest) = rest.split_first_chunk::<4>()?;
    let (offset, chunk) = rest.split_first_chunk::<4>()?;
    let id = u64::from_be_bytes(*id);
    (id & CHUNK_FLAG != 0).then(|| {
        (
            id & !CHUNK_FLAG,
            u32::from_be_bytes(*total) as usize,
            u32::from_be_bytes(*offset) as usize,
            chunk,
        )
    })
}

/// A text frame on the egress stream, between its binary objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EgressNotice {
    /// First frame of a stream whose `from` fell out of the ring: objects
    /// `requested..first` are gone; the stream starts at `first`.
    ResumeGap {
        /// The `from` the subscriber asked for.
        requested: u64,
        /// The oldest object still kept, where the stream starts.
        first: u64,
    },
    /// Last frame before the server closes the stream, in the shape of the
    /// `/signal` `Error` (`slow_consumer`: the subscriber's next object left
    /// the ring; the Close frame that follows has code 1013).
    Error {
        /// Machine-readable cause.
        code: ErrorCode,
        /// A sentence for humans.
        reason: String,
    },
}

impl EgressNotice {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip() {
        let framed = frame_object(0x0102_0304_0506_0708, b"hi");
        assert_eq!(framed, [1, 2, 3, 4, 5, 6, 7, 8, b'h', b'i']);
        assert_eq!(
            parse_object(&framed),
            Some((0x0102_0304_0506_0708, &b"hi"[..]))
        );
        assert_eq!(parse_object(&[0; 7]), None);
    }

    #[test]
    fn small_objects_are_never_chunked() {
        let payload = vec![7u8; MAX_DATACHANNEL_MESSAGE - OBJECT_HEADER_LEN];
        let msgs = split_into_chunks(5, &payload).unwrap();
        assert_eq!(msgs, vec![frame_object(5, &payload)]);
    }

    #[test]
    fn chunk_roundtrip_and_limits() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let msgs = split_into_chunks(9, &payload).unwrap();
        assert_eq!(
            msgs.len(),
            200_000usize.div_ceil(MAX_DATACHANNEL_MESSAGE - CHUNK_HEADER_LEN)
        );
        assert!(msgs.iter().all(|m| m.len() <= MAX_DATACHANNEL_MESSAGE));
        let mut r = Reassembler::default();
        let (last, init) = msgs.split_last().unwrap();
        for m in init {
            assert_eq!(r.push(m), Reassembled::Pending);
        }
        assert_eq!(r.push(last), Reassembled::Object(9, payload));
    }

    #[test]
    fn out_of_sequence_chunk_discards() {
        let payload = vec![1u8; 150_000];
        let msgs = split_into_chunks(3, &payload).unwrap();
        let mut r = Reassembler::default();
        assert_eq!(r.push(&msgs[0]), Reassembled::Pending);
        assert_eq!(r.push(&msgs[2]), Reassembled::Discarded);
        assert_eq!(r.push(&msgs[1]), Reassembled::Discarded);
    }

    #[test]
    fn chunk_header_layout() {
        let payload = vec![5u8; MAX_DATACHANNEL_MESSAGE];
        let msgs = split_into_chunks(2, &payload).unwrap();
        assert_eq!(msgs.len(), 2);
        let step = (MAX_DATACHANNEL_MESSAGE - CHUNK_HEADER_LEN) as u32;
        for (msg, offset) in msgs.iter().zip([0, step]) {
            assert_eq!(msg[..8], (2 | CHUNK_FLAG).to_be_bytes());
            assert_eq!(msg[8..12], (payload.len() as u32).to_be_bytes());
            assert_eq!(msg[12..16], offset.to_be_bytes());
        }
        assert_eq!(msgs[1].len(), CHUNK_HEADER_LEN + 16);
    }

    /// A chunk message announcing `total` payload bytes.
    fn chunk(id: u64, total: u32, offset: u32, bytes: &[u8]) -> Vec<u8> {
        let mut m = (id | CHUNK_FLAG).to_be_bytes().to_vec();
        m.extend_from_slice(&total.to_be_bytes());
        m.extend_from_slice(&offset.to_be_bytes());
        m.extend_from_slice(bytes);
        m
    }

    #[test]
    fn announced_length_over_the_limit_is_never_allocated() {
        let mut r = Reassembler::new(100);
        assert_eq!(r.push(&chunk(1, u32::MAX, 0, b"x")), Reassembled::Discarded);
        assert_eq!(r.push(&chunk(1, 101, 0, b"x")), Reassembled::Discarded);
        assert_eq!(r.push(&chunk(1, 100, 0, &[1; 60])), Reassembled::Pending);
        assert_eq!(
            r.push(&chunk(1, 100, 60, &[2; 40])),
            Reassembled::Object(1, [[1u8; 60].as_slice(), &[2; 40]].concat())
        );
        // The default limit is the server's default object limit.
        let mut r = Reassembler::default();
        let big = DEFAULT_MAX_OBJECT_BYTES as u32 + 1;
        assert_eq!(r.push(&chunk(1, big, 0, b"x")), Reassembled::Discarded);
    }

    #[test]
    fn malformed_chunks_discard_the_partial_object() {
        let mut r = Reassembler::new(1000);
        assert_eq!(r.push(&chunk(4, 10, 0, &[0; 4])), Reassembled::Pending);
        // Overrunning the announced length.
        assert_eq!(r.push(&chunk(4, 10, 4, &[0; 7])), Reassembled::Discarded);
        assert_eq!(r.push(&chunk(4, 10, 4, &[0; 6])), Reassembled::Discarded);
        // Shorter than a chunk header, and a plain object mid-way.
        assert_eq!(r.push(&chunk(4, 10, 0, &[0; 4])), Reassembled::Pending);
        assert_eq!(r.push(&[0x80, 0, 0]), Reassembled::Discarded);
        assert_eq!(r.push(&chunk(4, 10, 4, &[0; 6])), Reassembled::Discarded);
        assert_eq!(r.push(&chunk(4, 10, 0, &[0; 4])), Reassembled::Pending);
        assert_eq!(
            r.push(&frame_object(5, b"hi")),
            Reassembled::Object(5, b"hi".to_vec())
        );
        assert_eq!(r.push(&chunk(4, 10, 4, &[0; 6])), Reassembled::Discarded);
    }

    #[test]
    fn resume_gap_wire_shape() {
        let n = EgressNotice::ResumeGap {
            requested: 1,
            first: 5,
        };
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"type":"ResumeGap","requested":1,"first":5}"#
        );
        assert_eq!(
            n.to_json(),
            r#"{"type":"ResumeGap","requested":1,"first":5}"#
        );
    }

    #[test]
    fn egress_error_has_the_signal_error_shape() {
        let n = EgressNotice::Error {
            code: ErrorCode::SlowConsumer,
            reason: "behind".into(),
        };
        assert_eq!(
            n.to_json(),
            r#"{"type":"Error","code":"slow_consumer","reason":"behind"}"#
        );
        assert_eq!(
            n.to_json(),
            crate::ServerMessage::error(ErrorCode::SlowConsumer, "behind").to_json()
        );
        let back: EgressNotice = serde_json::from_str(&n.to_json()).unwrap();
        assert_eq!(back, n);
    }
}
