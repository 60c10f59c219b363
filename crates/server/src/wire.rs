//! The texts a track's tree sends its peers. The ICE server array is the
//! same in every `AssignParent`, so it is rendered once at startup and
//! spliced in as is, instead of being cloned and walked per message under
//! the track's lock; the bytes are those of [`ServerMessage::to_json`].
//!
//! [`ServerMessage::to_json`]: meshrelay_protocol::ServerMessage::to_json

use axum::extract::ws::Utf8Bytes;
use meshrelay_mesh::{PeerAssignment, PeerRole};
use meshrelay_protocol::{Role, ServerMessage};
use serde::Serialize;
use serde_json::value::RawValue;

/// The operator's RTCIceServer array as compact JSON text, rendered once.
#[derive(Debug, Clone)]
pub struct IceServers(Box<RawValue>);

impl IceServers {
    /// Renders `servers` as `serde_json` renders any `Value`, so splicing
    /// it yields the same bytes as serialising the value in place.
    pub fn new(servers: &serde_json::Value) -> Self {
        // Rendering a `Value` cannot fail: its keys are strings.
        Self(serde_json::value::to_raw_value(servers).unwrap_or_default())
    }
}

/// `ServerMessage::AssignParent`'s shape with borrowed fields and the ICE
/// array pre-rendered; the derive keeps its field order and tag.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Wire<'a> {
    AssignParent {
        peer_id: &'a str,
        role: Role,
        parent_id: Option<&'a str>,
        depth: u32,
        ice_servers: &'a RawValue,
        next_object_id: u64,
        epoch: &'a str,
    },
}

/// The protocol's spelling of a planner role.
pub(crate) fn role(r: PeerRole) -> Role {
    match r {
        PeerRole::Root => Role::Root,
        PeerRole::Relay => Role::Relay,
        PeerRole::Leaf => Role::Leaf,
    }
}

/// The `AssignParent` text for `a`, byte for byte what
/// `ServerMessage::AssignParent` with the same fields renders.
pub(crate) fn assign_parent(
    a: &PeerAssignment,
    ice: &IceServers,
    next_object_id: u64,
    epoch: &str,
) -> Utf8Bytes {
    let msg = Wire::AssignParent {
        peer_id: &a.peer_id,
        role: role(a.role),
        parent_id: a.parent.as_deref(),
        depth: a.depth,
        ice_servers: &ice.0,
        next_object_id,
        epoch,
    };
    // Plain strings, numbers and valid raw JSON: serialising cannot fail.
    serde_json::to_string(&msg).unwrap_or_default().into()
}

/// The `PeerLeft` text naming `peer_id`.
pub(crate) fn peer_left(peer_id: &str) -> Utf8Bytes {
    ServerMessage::PeerLeft {
        peer_id: peer_id.to_owned(),
    }
    .to_json()
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &PeerAssignment, ice: &serde_json::Value, next: u64, epoch: &str) -> String {
        ServerMessage::AssignParent {
            peer_id: a.peer_id.clone(),
            role: role(a.role),
            parent_id: a.parent.clone(),
            depth: a.depth,
            ice_servers: ice.clone(),
            next_object_id: next,
            epoch: epoch.into(),
        }
        .to_json()
    }

    #[test]
    fn spliced_ice_servers_render_the_same_bytes_as_the_value() {
        let ices = [
            serde_json::json!([]),
            serde_json::json!([{"urls": "stun:stun.example.org"}]),
            serde_json::json!([
                {"urls": ["turn:a.example:3478?transport=udp", "turns:b"], "username": "u\"ser",
                 "credential": "p\\w\u{e9}\n", "zeta": 1, "alpha": [1.5, null, true]},
                {"urls": "stun:x"}
            ]),
        ];
        let places = [
            PeerAssignment {
                peer_id: "abc".into(),
                role: PeerRole::Relay,
                parent: Some("def".into()),
                depth: 1,
            },
            PeerAssignment {
                peer_id: "r-1_2".into(),
                role: PeerRole::Root,
                parent: None,
                depth: 0,
            },
        ];
        for ice in &ices {
            let rendered = IceServers::new(ice);
            for a in &places {
                assert_eq!(
                    assign_parent(a, &rendered, 42, "5d0c9a7e21f3b846").as_str(),
                    reference(a, ice, 42, "5d0c9a7e21f3b846")
                );
            }
        }
    }
}
