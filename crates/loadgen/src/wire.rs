//! The few `/signal` messages the load generator sends and reads.

use std::borrow::Cow;

use meshrelay_protocol::Role;
use serde::{Deserialize, Serialize};

/// `{"type":"Register",...}`, the first message of a session.
#[derive(Serialize)]
struct Register<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    peer_id: &'a str,
    track: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<u32>,
    features: [&'static str; 2],
}

/// What the generator's clients state at `Register`: what the meshrelay SDK
/// states, so the server serves them as it serves the SDK (promotions, and
/// every change of depth told).
const FEATURES: [&str; 2] = ["origin", "updates"];

/// JSON text of a Register message.
pub(crate) fn register_json(peer_id: &str, track: &str, capacity: Option<u32>) -> String {
    serde_json::to_string(&Register {
        ty: "Register",
        peer_id,
        track,
        capacity,
        features: FEATURES,
    })
    .expect("plain struct serialises")
}

/// JSON text of a Heartbeat message.
pub(crate) const HEARTBEAT_JSON: &str = r#"{"type":"Heartbeat"}"#;

/// A server-to-client message, reduced to what the bench needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// AssignParent: `parent_id` `None` for a root or a waiting peer.
    AssignParent {
        parent_id: Option<Cow<'a, str>>,
        depth: u32,
        /// `None` when the server sent none this bench understands.
        role: Option<Role>,
    },
    /// PeerLeft of a tree neighbour.
    PeerLeft,
    /// Error with its code.
    Error { code: Cow<'a, str> },
    /// Anything else (relayed Offer/Answer/IceCandidate, unknown types).
    Other,
    /// Not a JSON object with a string `type`.
    Malformed,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(default)]
    depth: Option<u32>,
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

/// Parses one text frame.
pub(crate) fn parse(text: &str) -> Incoming<'_> {
    let Ok(raw) = serde_json::from_str::<Raw<'_>>(text) else {
        return Incoming::Malformed;
    };
    match raw.ty.as_ref() {
        "AssignParent" => Incoming::AssignParent {
            parent_id: raw.parent_id,
            depth: raw.depth.unwrap_or(0),
            role: raw.role.as_deref().and_then(Role::from_wire),
        },
        "PeerLeft" => Incoming::PeerLeft,
        "Error" => Incoming::Error {
            code: raw.code.unwrap_or(Cow::Borrowed("")),
        },
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_shape() {
        assert_eq!(
            register_json("a1", "live/x", Some(3)),
            r#"{"type":"Register","peer_id":"a1","track":"live/x","capacity":3,"features":["origin","updates"]}"#
        );
        assert_eq!(
            register_json("a1", "live/x", None),
            r#"{"type":"Register","peer_id":"a1","track":"live/x","features":["origin","updates"]}"#
        );
    }

    #[test]
    fn parses_server_messages() {
        let m = parse(
            r#"{"type":"AssignParent","peer_id":"abc","role":"Relay","parent_id":"def","depth":1,"ice_servers":[{"urls":["stun:x"]}],"next_object_id":42,"epoch":"5d0c9a7e21f3b846"}"#,
        );
        assert_eq!(
            m,
            Incoming::AssignParent {
                parent_id: Some("def".into()),
                depth: 1,
                role: Some(Role::Relay)
            }
        );
        let m = parse(
            r#"{"type":"AssignParent","peer_id":"abc","role":"Root","parent_id":null,"depth":0,"ice_servers":[]}"#,
        );
        assert_eq!(
            m,
            Incoming::AssignParent {
                parent_id: None,
                depth: 0,
                role: Some(Role::Root)
            }
        );
        assert_eq!(
            parse(r#"{"type":"PeerLeft","peer_id":"x"}"#),
            Incoming::PeerLeft
        );
        assert_eq!(
            parse(r#"{"type":"Error","code":"mesh_full","reason":"no"}"#),
            Incoming::Error {
                code: "mesh_full".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#),
            Incoming::Other
        );
        assert_eq!(parse("nope"), Incoming::Malformed);
        assert_eq!(parse(r#"{"no_type":1}"#), Incoming::Malformed);
        // Escaped strings are owned, not borrowed, and still parse.
        assert_eq!(
            parse(r#"{"type":"AssignParent","parent_id":"d\u0065f","depth":2,"role":"Leaf"}"#),
            Incoming::AssignParent {
                parent_id: Some("def".into()),
                depth: 2,
                role: Some(Role::Leaf)
            }
        );
    }
}
