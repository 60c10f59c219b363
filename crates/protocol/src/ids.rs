//! Validation of peer ids and track names.
//!
//! Tracks end up in URL paths and metric labels and peer ids in logs, so
//! both are restricted to a small, unambiguous alphabet.

use crate::error_code::{ErrorCode, Refusal};

/// Longest accepted peer id, in bytes.
pub const MAX_PEER_ID_LEN: usize = 64;
/// Longest accepted track name, in bytes.
pub const MAX_TRACK_LEN: usize = 128;

/// Checks a peer id: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_peer_id(id: &str) -> Result<(), Refusal> {
    let err = |why: &'static str| Err(Refusal::new(ErrorCode::InvalidPeerId, why));
    if id.is_empty() {
        return err("peer_id is empty");
    }
    if id.len() > MAX_PEER_ID_LEN {
        return err("peer_id is longer than 64 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return err("peer_id may contain only A-Z, a-z, 0-9, '_' and '-'");
    }
    Ok(())
}

/// Checks a track name: `[A-Za-z0-9._/-]{1,128}`, no `..`, no `//`, no
/// leading or trailing `/`.
pub fn validate_track(track: &str) -> Result<(), Refusal> {
    let err = |why: &'static str| Err(Refusal::new(ErrorCode::InvalidTrack, why));
    if track.is_empty() {
        return err("track is empty");
    }
    if track.len() > MAX_TRACK_LEN {
        return err("track is longer than 128 characters");
    }
    if !track
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        return err("track may contain only A-Z, a-z, 0-9, '.', '_', '/' and '-'");
    }
    if track.contains("..") {
        return err("track may not contain '..'");
    }
    if track.contains("//") {
        return err("track may not contain '//'");
    }
    if track.starts_with('/') || track.ends_with('/') {
        return err("track may not start or end with '/'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids() {
        for ok in ["a", "peer-1", "A_b-C", &"x".repeat(64)] {
            assert!(validate_peer_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "a.b", &"x".repeat(65)] {
            assert_eq!(
                validate_peer_id(bad).unwrap_err().code,
                ErrorCode::InvalidPeerId,
                "{bad}"
            );
        }
    }

    #[test]
    fn tracks() {
        for ok in ["live", "demo/live", "a.b_c-d/e", &"t".repeat(128)] {
            assert!(validate_track(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/live",
            "live/",
            "a//b",
            "a/../b",
            "..",
            "a b",
            "a?b",
            &"t".repeat(129),
        ] {
            assert_eq!(
                validate_track(bad).unwrap_err().code,
                ErrorCode::InvalidTrack,
                "{bad}"
            );
        }
    }
}
