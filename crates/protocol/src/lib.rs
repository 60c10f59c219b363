#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

pub mod error_code;
pub mod framing;
pub mod ids;
pub mod signal;

pub use error_code::{ErrorCode, Refusal};
pub use framing::{
    frame_object, parse_object, split_into_chunks, EgressNotice, Reassembled, Reassembler,
};
pub use ids::{validate_peer_id, validate_track};
pub use signal::{decode_client, Candidate, ClientMessage, Features, Role, Sdp, ServerMessage};
