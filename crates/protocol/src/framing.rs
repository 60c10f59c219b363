//! Object framing (`[u64 BE object_id][payload]`), DataChannel chunking and
//! the egress `ResumeGap` notice.

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
/// in `MAX_DATACHANNEL_MESSAGE`, else a run of chunks.
pub fn split_into_chunks(object_id: u64, payload: &[u8]) -> Vec<Vec<u8>> {
    if OBJECT_HEADER_LEN + payload.len() <= MAX_DATACHANNEL_MESSAGE {
        return vec![frame_object(object_id, payload)];
    }
    let total = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    payload
        .chunks(MAX_DATACHANNEL_MESSAGE - CHUNK_HEADER_LEN)
        .scan(0u32, |offset, chunk| {
            let mut msg = Vec::with_capacity(CHUNK_HEADER_LEN + chunk.len());
            msg.extend_from_slice(&(object_id | CHUNK_FLAG).to_be_bytes());
            msg.extend_from_slice(&total.to_be_bytes());
            msg.extend_from_slice(&offset.to_be_bytes());
            msg.extend_from_slice(chunk);
            *offset += chunk.len() as u32;
            Some(msg)
        })
        .collect()
}

/// Reassembles chunked objects from one ordered DataChannel.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: Option<(u64, u32, Vec<u8>)>,
}

/// What one incoming DataChannel message produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// A whole object.
    Object(u64, Vec<u8>),
    /// A chunk was stored; the object is not complete yet.
    Pending,
    /// The message was malformed or out of sequence; any partial object was
    /// discarded (repair it from the origin).
    Discarded,
}

impl Reassembler {
    /// Feeds one DataChannel message.
    pub fn push(&mut self, message: &[u8]) -> Reassembled {
        if let Some((id, payload)) = parse_object(message) {
            self.partial = None;
            return Reassembled::Object(id, payload.to_vec());
        }
        let Some(header) = message.get(..CHUNK_HEADER_LEN) else {
            self.partial = None;
            return Reassembled::Discarded;
        };
        let be32 =
            |r: std::ops::Range<usize>| u32::from_be_bytes(header[r].try_into().unwrap_or([0; 4]));
        let id = u64::from_be_bytes(header[..8].try_into().unwrap_or([0; 8])) & !CHUNK_FLAG;
        let (total, offset) = (be32(8..12), be32(12..16));
        let chunk = &message[CHUNK_HEADER_LEN..];
        let mut partial = match self.partial.take() {
            Some(p) if p.0 == id && p.1 == total && p.2.len() == offset as usize => p,
            _ if offset == 0 => (id, total, Vec::with_capacity(total as usize)),
            _ => return Reassembled::Discarded,
        };
        if partial.2.len() + chunk.len() > total as usize {
            return Reassembled::Discarded;
        }
        partial.2.extend_from_slice(chunk);
        if partial.2.len() == total as usize {
            Reassembled::Object(id, partial.2)
        } else {
            self.partial = Some(partial);
            Reassembled::Pending
        }
    }
}

/// First text frame of an egress stream whose `from` fell out of the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EgressNotice {
    /// Objects `requested..first` are gone; the stream starts at `first`.
    ResumeGap {
        /// The `from` the subscriber asked for.
        requested: u64,
        /// The oldest object still kept, where the stream starts.
        first: u64,
    },
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
        let msgs = split_into_chunks(5, &payload);
        assert_eq!(msgs, vec![frame_object(5, &payload)]);
    }

    #[test]
    fn chunk_roundtrip_and_limits() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let msgs = split_into_chunks(9, &payload);
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
        let msgs = split_into_chunks(3, &payload);
        let mut r = Reassembler::default();
        assert_eq!(r.push(&msgs[0]), Reassembled::Pending);
        assert_eq!(r.push(&msgs[2]), Reassembled::Discarded);
        assert_eq!(r.push(&msgs[1]), Reassembled::Discarded);
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
    }
}
