//! One `/signal` text frame in, one decision out: parsing, validation and
//! the `from` check. Tree questions (is `to` a neighbour?) are left to the
//! track, and the session's state to [`crate::session_core`].

use meshrelay_protocol::{
    decode_client, validate_peer_id, validate_track, ClientMessage, ErrorCode, Features, Refusal,
    ServerMessage,
};

/// What the shell must do with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Answer with this error; the session state is unchanged.
    Reply(Refusal),
    /// Try to join the tree.
    Register {
        /// Requested id (valid).
        peer_id: String,
        /// Requested track (valid).
        track: String,
        /// Claimed capacity.
        capacity: Option<u32>,
        /// What the client stated it does beyond LVQR's protocol.
        features: Features,
    },
    /// Relay `text` to `to`, if it is a tree neighbour.
    Relay {
        /// The recipient.
        to: String,
        /// The message rebuilt from its parsed fields, so fields the
        /// protocol does not define never reach another client.
        text: String,
    },
    /// Replace the peer's forwarded count.
    ForwardReport(u64),
    /// Liveness only.
    Heartbeat,
    /// Leave the tree; the session goes back to unregistered.
    Leave,
    /// Move the peer's child `child` (a valid id) to another parent.
    DropChild {
        /// The child.
        child: String,
    },
}

/// Decides what to do with one text frame from a session registered as
/// `own` (`None` while unregistered).
pub(crate) fn step(own: Option<&str>, text: &str) -> Step {
    let msg = match decode_client(text) {
        Ok(m) => m,
        Err(refusal) => return Step::Reply(refusal),
    };
    match (own, matches!(msg, ClientMessage::Register { .. })) {
        (None, false) => {
            return Step::Reply(Refusal::new(
                ErrorCode::ExpectedRegister,
                "the first message must be Register",
            ))
        }
        (Some(_), true) => {
            return Step::Reply(Refusal::new(
                ErrorCode::DuplicateRegister,
                "this session is already registered",
            ))
        }
        _ => {}
    }
    match msg {
        ClientMessage::Register {
            peer_id,
            track,
            capacity,
            features,
        } => {
            if let Err(refusal) = validate_peer_id(&peer_id).and(validate_track(&track)) {
                return Step::Reply(refusal);
            }
            Step::Register {
                peer_id,
                track,
                capacity,
                features: Features::from_names(&features),
            }
        }
        ClientMessage::Offer(m) => {
            relay(own, m.from.clone(), m.to.clone(), ServerMessage::Offer(m))
        }
        ClientMessage::Answer(m) => {
            relay(own, m.from.clone(), m.to.clone(), ServerMessage::Answer(m))
        }
        ClientMessage::IceCandidate(m) => relay(
            own,
            m.from.clone(),
            m.to.clone(),
            ServerMessage::IceCandidate(m),
        ),
        ClientMessage::ForwardReport { forwarded_frames } => Step::ForwardReport(forwarded_frames),
        ClientMessage::Heartbeat => Step::Heartbeat,
        ClientMessage::Leave => Step::Leave,
        ClientMessage::DropChild { peer_id } => match validate_peer_id(&peer_id) {
            Ok(()) => Step::DropChild { child: peer_id },
            Err(refusal) => Step::Reply(refusal),
        },
    }
}

/// A relay of `msg` from `from` to `to`, refused unless `from` is `own`.
fn relay(own: Option<&str>, from: String, to: String, msg: ServerMessage) -> Step {
    if Some(from.as_str()) != own {
        return Step::Reply(Refusal::new(
            ErrorCode::SpoofedFrom,
            "\"from\" must be this session's own peer id",
        ));
    }
    Step::Relay {
        to,
        text: msg.to_json(),
    }
}

impl Step {
    /// A metrics label for the step (a small fixed set).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Step::Reply(..) => "refused",
            Step::Register { .. } => "register",
            Step::Relay { .. } => "relay",
            Step::ForwardReport(_) => "forward_report",
            Step::Heartbeat => "heartbeat",
            Step::Leave => "leave",
            Step::DropChild { .. } => "drop_child",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Option<&'static str> {
        Some("a")
    }

    fn code(s: Step) -> ErrorCode {
        match s {
            Step::Reply(r) => r.code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn unregistered_accepts_only_register() {
        let s = None;
        assert_eq!(
            step(
                s,
                r#"{"type":"Register","peer_id":"a","track":"t","capacity":2,"features":["origin"]}"#
            ),
            Step::Register {
                peer_id: "a".into(),
                track: "t".into(),
                capacity: Some(2),
                features: Features {
                    reads_origin: true,
                    position_updates: false
                }
            }
        );
        assert_eq!(
            code(step(s, r#"{"type":"Heartbeat"}"#)),
            ErrorCode::ExpectedRegister
        );
        assert_eq!(
            code(step(
                s,
                r#"{"type":"Register","peer_id":"a b","track":"t"}"#
            )),
            ErrorCode::InvalidPeerId
        );
        assert_eq!(
            code(step(s, r#"{"type":"Register","peer_id":"a","track":"/t"}"#)),
            ErrorCode::InvalidTrack
        );
        assert_eq!(code(step(s, "{")), ErrorCode::InvalidJson);
        assert_eq!(code(step(s, r#"{"type":"Nope"}"#)), ErrorCode::UnknownType);
    }

    #[test]
    fn registered_checks_from() {
        let s = registered();
        assert_eq!(
            step(s, r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#),
            Step::Relay {
                to: "b".into(),
                text: r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#.into()
            }
        );
        // Unknown fields are not relayed; field order is the protocol's.
        assert_eq!(
            step(
                s,
                r#"{"sdp_mline_index":1,"x":{"big":[1]},"to":"b","type":"IceCandidate","from":"a","candidate":"c"}"#
            ),
            Step::Relay {
                to: "b".into(),
                text: r#"{"type":"IceCandidate","from":"a","to":"b","candidate":"c","sdp_mline_index":1}"#
                    .into()
            }
        );
        assert_eq!(
            code(step(
                s,
                r#"{"type":"Answer","from":"z","to":"b","sdp":"x"}"#
            )),
            ErrorCode::SpoofedFrom
        );
        assert_eq!(
            code(step(s, r#"{"type":"Register","peer_id":"a","track":"t"}"#)),
            ErrorCode::DuplicateRegister
        );
        assert_eq!(
            step(s, r#"{"type":"ForwardReport","forwarded_frames":7}"#),
            Step::ForwardReport(7)
        );
        assert_eq!(step(s, r#"{"type":"Leave"}"#), Step::Leave);
    }
}
