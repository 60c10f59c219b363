//! meshrelay's wire protocol, shared by the server, native tools and tests.
//!
//! Everything here is pure: no I/O, no async. The normative description is
//! `docs/protocol.md`; this crate is its executable form.

pub mod error_code;
pub mod framing;
pub mod ids;
pub mod signal;

pub use error_code::ErrorCode;
pub use framing::{
    frame_object, parse_object, split_into_chunks, EgressNotice, Reassembled, Reassembler,
};
pub use ids::{validate_peer_id, validate_track};
pub use signal::{
    decode_client, Candidate, ClientMessage, DecodeError, Features, Role, Sdp, ServerMessage,
};
