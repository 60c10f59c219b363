//! `/signal` JSON messages, tagged by `type`.

use crate::error_code::{ErrorCode, Refusal};
use serde::{Deserialize, Serialize};

/// The body of an `Offer` or `Answer`, the same in both directions (the
/// server relays it unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sdp {
    /// The sender's own id.
    pub from: String,
    /// The tree neighbour it is for.
    pub to: String,
    /// The SDP.
    pub sdp: String,
}

/// The body of an `IceCandidate`, the same in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The sender's own id.
    pub from: String,
    /// The tree neighbour it is for.
    pub to: String,
    /// The candidate line.
    pub candidate: String,
    /// Media stream id (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Media line index (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u32>,
}

/// A message a client sends on `/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientMessage {
    /// First message of a session.
    Register {
        /// The id the peer wants.
        peer_id: String,
        /// The track it watches.
        track: String,
        /// How many children it is willing to feed; clamped by the server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capacity: Option<u32>,
        /// What the client does beyond LVQR's protocol (extension): see
        /// [`Features`]. Unknown names are ignored.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
    },
    /// SDP offer for a tree neighbour.
    Offer(Sdp),
    /// SDP answer for a tree neighbour.
    Answer(Sdp),
    /// Trickled ICE candidate for a tree neighbour.
    IceCandidate(Candidate),
    /// Cumulative count of objects forwarded to children.
    ForwardReport {
        /// The count; replaces the previous report.
        forwarded_frames: u64,
    },
    /// Liveness.
    Heartbeat,
    /// Leave the tree now (extension).
    Leave,
    /// The sender stopped feeding its child `peer_id` (it could not keep
    /// up); the server moves that child elsewhere when it can (extension).
    DropChild {
        /// The child.
        peer_id: String,
    },
}

/// What a client stated in `Register.features`: behaviour beyond LVQR's
/// protocol that the server may rely on. A client that states nothing (an
/// LVQR client) is served as LVQR's server would serve it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `"origin"`: it reads the origin egress on its own whenever it is a
    /// root or has no parent, so it may be promoted to root after its join.
    pub reads_origin: bool,
    /// `"updates"`: an `AssignParent` that names its current parent again
    /// (a new depth or role) keeps its link; a client without it opens a
    /// new connection on every `AssignParent`, so it is sent one only when
    /// its parent changes.
    pub position_updates: bool,
}

impl Features {
    /// The wire name of [`Features::reads_origin`].
    pub const READS_ORIGIN: &'static str = "origin";
    /// The wire name of [`Features::position_updates`].
    pub const POSITION_UPDATES: &'static str = "updates";

    /// The features named in `names`; unknown names are ignored.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let has = |n: &str| names.iter().any(|x| x.as_ref() == n);
        Self {
            reads_origin: has(Self::READS_ORIGIN),
            position_updates: has(Self::POSITION_UPDATES),
        }
    }
}

/// A peer's role as told in `AssignParent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Reads the origin egress.
    Root,
    /// Fed by a parent, may feed children.
    Relay,
    /// Fed by a parent (or the origin while waiting for a place), never a parent.
    Leaf,
}

impl Role {
    /// Every role, in the order of the tree from the origin down.
    pub const ALL: [Role; 3] = [Role::Root, Role::Relay, Role::Leaf];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "Root",
            Role::Relay => "Relay",
            Role::Leaf => "Leaf",
        }
    }

    /// The role spelt `s` on the wire, if any.
    pub fn from_wire(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A message the server sends on `/signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    /// The peer's place in the tree.
    AssignParent {
        /// The peer this is for.
        peer_id: String,
        /// Its role.
        role: Role,
        /// Its parent; `null` for a root or a waiting peer.
        parent_id: Option<String>,
        /// Hops from the origin.
        depth: u32,
        /// The operator's RTCIceServer array.
        ice_servers: serde_json::Value,
        /// The next object id the origin will assign on the track (extension).
        #[serde(default)]
        next_object_id: u64,
        /// The identity of the track's object-id sequence (extension): a
        /// new value means the ids started again from 0 (a restarted
        /// server, or a track created anew), so ids seen before are not
        /// comparable with ids seen after.
        #[serde(default)]
        epoch: String,
    },
    /// A tree neighbour left.
    PeerLeft {
        /// Who left.
        peer_id: String,
    },
    /// Relayed offer.
    Offer(Sdp),
    /// Relayed answer.
    Answer(Sdp),
    /// Relayed ICE candidate.
    IceCandidate(Candidate),
    /// Something was refused.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// A sentence for humans.
        reason: String,
    },
}

impl ServerMessage {
    /// The `Error` message that carries `refusal`.
    pub fn refused(refusal: &Refusal) -> Self {
        Self::error(refusal.code, refusal.reason.as_ref())
    }

    /// An `Error` message.
    pub fn error(code: ErrorCode, reason: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            reason: reason.into(),
        }
    }

    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

const CLIENT_TYPES: [&str; 8] = [
    "Register",
    "Offer",
    "Answer",
    "IceCandidate",
    "ForwardReport",
    "Heartbeat",
    "Leave",
    "DropChild",
];

/// Parses one client text frame, telling malformed JSON (`invalid_json`)
/// apart from a well-formed message of an unknown `type` (`unknown_type`).
pub fn decode_client(text: &str) -> Result<ClientMessage, Refusal> {
    #[derive(Deserialize)]
    struct TypeOnly<'a> {
        #[serde(rename = "type", borrow)]
        ty: Option<std::borrow::Cow<'a, str>>,
    }
    let invalid = |reason: String| Refusal::new(ErrorCode::InvalidJson, reason);
    let head: TypeOnly<'_> = serde_json::from_str(text)
        .map_err(|e| invalid(format!("not a JSON object with a string \"type\": {e}")))?;
    let ty = head
        .ty
        .ok_or_else(|| invalid("missing \"type\" field".into()))?;
    if !CLIENT_TYPES.contains(&ty.as_ref()) {
        return Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("unknown message type {:?}", truncate(&ty, 64)),
        ));
    }
    serde_json::from_str(text).map_err(|e| invalid(format!("malformed {ty}: {e}")))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_their_wire_spelling() {
        for r in Role::ALL {
            assert_eq!(Role::from_wire(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert_eq!(Role::from_wire("root"), None);
    }

    #[test]
    fn features_are_read_by_name_and_unknown_ones_ignored() {
        assert_eq!(Features::from_names::<&str>(&[]), Features::default());
        assert_eq!(
            Features::from_names(&["updates", "later-feature", "origin"]),
            Features {
                reads_origin: true,
                position_updates: true
            }
        );
        assert_eq!(
            Features::from_names(&["origin"]),
            Features {
                reads_origin: true,
                position_updates: false
            }
        );
        let not_a_list =
            decode_client(r#"{"type":"Register","peer_id":"a","track":"t","features":"origin"}"#);
        assert_eq!(not_a_list.map_err(|e| e.code), Err(ErrorCode::InvalidJson));
    }

    #[test]
    fn decodes_every_client_type() {
        let cases = [
            (
                r#"{"type":"Register","peer_id":"a","track":"t","capacity":2}"#,
                ClientMessage::Register {
                    peer_id: "a".into(),
                    track: "t".into(),
                    capacity: Some(2),
                    features: vec![],
                },
            ),
            (
                r#"{"type":"Register","peer_id":"a","track":"t"}"#,
                ClientMessage::Register {
                    peer_id: "a".into(),
                    track: "t".into(),
                    capacity: None,
                    features: vec![],
                },
            ),
            (
                r#"{"type":"Register","peer_id":"a","track":"t","features":["origin","x"]}"#,
                ClientMessage::Register {
                    peer_id: "a".into(),
                    track: "t".into(),
                    capacity: None,
                    features: vec!["origin".into(), "x".into()],
                },
            ),
            (
                r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#,
                ClientMessage::Offer(Sdp {
                    from: "a".into(),
                    to: "b".into(),
                    sdp: "x".into(),
                }),
            ),
            (
                r#"{"type":"IceCandidate","from":"a","to":"b","candidate":"c","sdp_mid":"0","sdp_mline_index":0}"#,
                ClientMessage::IceCandidate(Candidate {
                    from: "a".into(),
                    to: "b".into(),
                    candidate: "c".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                }),
            ),
            (
                r#"{"type":"ForwardReport","forwarded_frames":1200}"#,
                ClientMessage::ForwardReport {
                    forwarded_frames: 1200,
                },
            ),
            (r#"{"type":"Heartbeat"}"#, ClientMessage::Heartbeat),
            (r#"{"type":"Leave","extra":1}"#, ClientMessage::Leave),
            (
                r#"{"type":"DropChild","peer_id":"b"}"#,
                ClientMessage::DropChild {
                    peer_id: "b".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(decode_client(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn tells_invalid_json_from_unknown_type() {
        for bad in [
            "",
            "nope",
            "[]",
            "{}",
            r#"{"type":3}"#,
            r#"{"type":"Offer"}"#,
        ] {
            assert_eq!(
                decode_client(bad).unwrap_err().code,
                ErrorCode::InvalidJson,
                "{bad}"
            );
        }
        assert_eq!(
            decode_client(r#"{"type":"Dance"}"#).unwrap_err().code,
            ErrorCode::UnknownType
        );
    }

    #[test]
    fn relayed_messages_keep_their_wire_shape() {
        for text in [
            r#"{"type":"Offer","from":"a","to":"b","sdp":"v=0"}"#,
            r#"{"type":"Answer","from":"b","to":"a","sdp":"v=0"}"#,
            r#"{"type":"IceCandidate","from":"a","to":"b","candidate":"c"}"#,
            r#"{"type":"IceCandidate","from":"a","to":"b","candidate":"c","sdp_mid":"0","sdp_mline_index":1}"#,
        ] {
            let server: ServerMessage = serde_json::from_str(text).unwrap();
            assert_eq!(server.to_json(), text);
            let client = decode_client(text).unwrap();
            assert_eq!(serde_json::to_string(&client).unwrap(), text);
        }
    }

    #[test]
    fn assign_parent_wire_shape() {
        let msg = ServerMessage::AssignParent {
            peer_id: "abc".into(),
            role: Role::Relay,
            parent_id: Some("def".into()),
            depth: 1,
            ice_servers: serde_json::json!([]),
            next_object_id: 42,
            epoch: "9f1c".into(),
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"AssignParent","peer_id":"abc","role":"Relay","parent_id":"def","depth":1,"ice_servers":[],"next_object_id":42,"epoch":"9f1c"}"#
        );
        let root = ServerMessage::AssignParent {
            peer_id: "r".into(),
            role: Role::Root,
            parent_id: None,
            depth: 0,
            ice_servers: serde_json::json!([]),
            next_object_id: 0,
            epoch: String::new(),
        };
        assert!(root.to_json().contains(r#""parent_id":null"#));
        assert_eq!(
            ServerMessage::error(ErrorCode::NotNeighbour, "x").to_json(),
            r#"{"type":"Error","code":"not_neighbour","reason":"x"}"#
        );
    }
}
