//! Machine-readable error codes carried by `Error` messages.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Something refused: the machine-readable code and the sentence for
/// humans that an `Error` message carries. The one shape of "an error code
/// and a reason" everywhere in meshrelay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused, for machines.
    pub code: ErrorCode,
    /// Why, for humans.
    pub reason: Cow<'static, str>,
}

impl Refusal {
    /// A refusal with this code and reason.
    pub fn new(code: ErrorCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl std::error::Error for Refusal {}

/// The `code` of an `Error` message (see docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, not an object, lacks a field, or is binary.
    InvalidJson,
    /// The `type` is not one the server knows.
    UnknownType,
    /// A message other than `Register` arrived before registration.
    ExpectedRegister,
    /// The peer id breaks the id rules.
    InvalidPeerId,
    /// The track name breaks the track rules.
    InvalidTrack,
    /// A second `Register` on an already registered session.
    DuplicateRegister,
    /// Another session already holds this peer id on this track.
    DuplicatePeerId,
    /// `from` is not the sender's own peer id.
    SpoofedFrom,
    /// `to` is neither the sender's parent nor one of its children.
    NotNeighbour,
    /// Missing or wrong token.
    Unauthorized,
    /// The message exceeds the size limit.
    TooLarge,
    /// The client sends faster than the per-connection limit.
    RateLimited,
    /// No place in the tree, or a peer limit reached.
    MeshFull,
    /// The server's queue towards this client overflowed.
    SlowConsumer,
    /// A server-side fault.
    Internal,
}

impl ErrorCode {
    /// Every code, for exhaustive metrics and tests.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidJson,
        ErrorCode::UnknownType,
        ErrorCode::ExpectedRegister,
        ErrorCode::InvalidPeerId,
        ErrorCode::InvalidTrack,
        ErrorCode::DuplicateRegister,
        ErrorCode::DuplicatePeerId,
        ErrorCode::SpoofedFrom,
        ErrorCode::NotNeighbour,
        ErrorCode::Unauthorized,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::MeshFull,
        ErrorCode::SlowConsumer,
        ErrorCode::Internal,
    ];

    /// The wire spelling, e.g. `"invalid_json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::ExpectedRegister => "expected_register",
            ErrorCode::InvalidPeerId => "invalid_peer_id",
            ErrorCode::InvalidTrack => "invalid_track",
            ErrorCode::DuplicateRegister => "duplicate_register",
            ErrorCode::DuplicatePeerId => "duplicate_peer_id",
            ErrorCode::SpoofedFrom => "spoofed_from",
            ErrorCode::NotNeighbour => "not_neighbour",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::MeshFull => "mesh_full",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the server closes the session after sending this error.
    ///
    /// Registration refusals leave the socket open so the client can retry
    /// with another id; abuse and overload close it.
    pub fn closes_session(self) -> bool {
        matches!(
            self,
            ErrorCode::TooLarge
                | ErrorCode::RateLimited
                | ErrorCode::SlowConsumer
                | ErrorCode::Unauthorized
                | ErrorCode::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_spelling_matches_as_str() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn closing_codes_follow_the_protocol_document() {
        let closing: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.closes_session())
            .collect();
        assert_eq!(
            closing,
            [
                ErrorCode::Unauthorized,
                ErrorCode::TooLarge,
                ErrorCode::RateLimited,
                ErrorCode::SlowConsumer,
                ErrorCode::Internal
            ]
        );
    }
}
