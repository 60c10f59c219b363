//! The decisions of one `/signal` session, sans-IO: whether it is
//! registered (and as whom), the message-rate bucket, which pongs are free,
//! the registration deadline and liveness. Inputs come in with the time
//! they happened; [`SessionCore::poll_output`] then yields what to do, in
//! order, and ends with [`Output::Timeout`]: when to feed
//! [`Input::Timeout`] next. The shell owns the socket, the queue and the
//! one timer, and asks the track what the core asks of it.

use crate::liveness::{Due, Liveness};
use crate::ratelimit::TokenBucket;
use crate::session::{step, Step};
use crate::tree::{LeaveReason, Refusal};
use crate::ws_util::{Farewell, Input as Reading, CLOSE_GOING_AWAY, CLOSE_POLICY};
use axum::extract::ws::Utf8Bytes;
use meshrelay_protocol::{ErrorCode, Features};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The shell's hold on a place in a track, kept by the core while the
/// session is registered; dropping it must plan the leave.
pub(crate) trait Membership {
    /// The registered peer id.
    fn peer_id(&self) -> &str;
}

/// The session's limits, from the server's settings.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Largest text or binary frame accepted (`too_large` beyond).
    pub max_message_bytes: usize,
    /// Messages per second the client may send on average.
    pub message_rate: f64,
    /// Messages the client may send at once.
    pub message_burst: f64,
    /// Time to send a valid `Register`, from the start and after a `Leave`.
    pub register_timeout: Duration,
    /// Time without a message or pong after which the client is gone.
    pub heartbeat_timeout: Duration,
}

/// Something that happened to the session.
#[derive(Debug)]
pub(crate) enum Input<'a, R> {
    /// A text frame from the client.
    Text(&'a str),
    /// A binary frame of this many bytes from the client.
    Binary(usize),
    /// A ping from the client.
    Ping,
    /// A pong from the client.
    Pong,
    /// The client closed, or the connection ended.
    Closed,
    /// Reading failed; `too_large` when a frame was over the socket's cap.
    ReadFailed {
        /// The frame's header was refused for its size.
        too_large: bool,
    },
    /// A send the core asked for, or of a queued frame, failed.
    SendFailed,
    /// The time of the last [`Output::Timeout`] came (early is harmless).
    Timeout,
    /// The track cut the session off with this error.
    Killed(ErrorCode),
    /// The server is stopping.
    Shutdown,
    /// The track's answer to [`Output::Register`]: the place and its
    /// `AssignParent` text, or a refusal.
    Registered(Result<(R, Utf8Bytes), Refusal>),
    /// The track refused an [`Output::Relay`] or [`Output::DropChild`];
    /// the session stays open whatever the code.
    Refused(Refusal),
}

/// What the shell must do, in order.
#[derive(Debug)]
pub(crate) enum Output<R> {
    /// Send this text frame.
    Text(Utf8Bytes),
    /// Send this `Error`; the session stays open.
    Error(Refusal),
    /// Send a ping.
    Ping,
    /// Ask the track for a place; answer with [`Input::Registered`].
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
    /// Ask the track to relay `text` to `to` for [`SessionCore::membership`];
    /// a refusal comes back as [`Input::Refused`].
    Relay {
        /// The recipient.
        to: String,
        /// The rebuilt message.
        text: String,
    },
    /// Ask the track to move the member's child; a refusal comes back as
    /// [`Input::Refused`].
    DropChild {
        /// The child.
        child: String,
    },
    /// Tell the track the member's forwarded count.
    ForwardReport(u64),
    /// Plan this place's leave (reason `leave`) and discard the frames
    /// queued for it: they concern the old place.
    Leave(R),
    /// The session is over; nothing else follows.
    End(End<R>),
    /// Nothing more until this time, a frame, or another input.
    Timeout(Instant),
}

/// How a session ended.
#[derive(Debug)]
pub(crate) struct End<R> {
    /// Why, for the leave and its metrics.
    pub reason: LeaveReason,
    /// How to say goodbye, if at all.
    pub farewell: Option<Farewell>,
    /// The place still held: its leave is to be planned with `reason`
    /// before the closing handshake, which may wait for the client.
    pub membership: Option<R>,
}

enum Place<R> {
    Unregistered { register_by: Instant },
    Registered(R),
    Ended,
}

/// One session's state and decisions.
pub(crate) struct SessionCore<R> {
    limits: Limits,
    place: Place<R>,
    bucket: TokenBucket,
    liveness: Liveness,
    /// Pings sent and not yet answered: their pongs cost no rate budget.
    pings_owed: u32,
    out: VecDeque<Output<R>>,
}

impl<R: Membership> SessionCore<R> {
    /// A session that opened at `now`: unregistered, heard from now, with
    /// a full message bucket.
    pub(crate) fn new(limits: Limits, now: Instant) -> Self {
        Self {
            place: Place::Unregistered {
                register_by: now + limits.register_timeout,
            },
            bucket: TokenBucket::new(limits.message_rate, limits.message_burst, now),
            liveness: Liveness::new(limits.heartbeat_timeout, now),
            limits,
            pings_owed: 0,
            out: VecDeque::new(),
        }
    }

    /// The place held, while registered.
    pub(crate) fn membership(&self) -> Option<&R> {
        match &self.place {
            Place::Registered(r) => Some(r),
            _ => None,
        }
    }

    /// The place held, while registered (for the shell's kill signal).
    pub(crate) fn membership_mut(&mut self) -> Option<&mut R> {
        match &mut self.place {
            Place::Registered(r) => Some(r),
            _ => None,
        }
    }

    /// The next thing to do; [`Output::Timeout`] once there is nothing
    /// else. After [`Output::End`] the core takes no more input.
    pub(crate) fn poll_output(&mut self) -> Output<R> {
        if let Some(out) = self.out.pop_front() {
            return out;
        }
        let register_by = match &self.place {
            Place::Unregistered { register_by } => Some(*register_by),
            _ => None,
        };
        let due = self.liveness.deadline();
        Output::Timeout(register_by.map_or(due, |r| r.min(due)))
    }

    /// Feeds one input that happened at `now`.
    pub(crate) fn handle_input(&mut self, input: Input<'_, R>, now: Instant) {
        if matches!(self.place, Place::Ended) {
            return;
        }
        match input {
            Input::Text(text) => self.on_text(text, now),
            Input::Binary(len) => {
                self.liveness.seen(now);
                if self.admit(len, now) {
                    let why = "binary frames are not accepted on /signal";
                    let refusal = Refusal::new(ErrorCode::InvalidJson, why);
                    self.out.push_back(Output::Error(refusal));
                }
            }
            Input::Ping => {
                self.liveness.seen(now);
                self.admit(0, now);
            }
            // A pong answering one of our pings is free; any other pong is
            // a message the client chose to send.
            Input::Pong => {
                self.liveness.seen(now);
                if self.pings_owed > 0 {
                    self.pings_owed -= 1;
                } else {
                    self.admit(0, now);
                }
            }
            Input::Closed | Input::SendFailed => self.end(LeaveReason::Disconnect, None),
            Input::ReadFailed { too_large } => {
                // The frame's payload is still unread: only wait it out.
                let bye = too_large.then(|| {
                    let why = format!(
                        "message exceeds the limit of {} bytes",
                        self.limits.max_message_bytes
                    );
                    Farewell::error(ErrorCode::TooLarge, why, Reading::Desynced)
                });
                self.end(LeaveReason::Disconnect, bye);
            }
            Input::Timeout => self.on_timeout(now),
            Input::Killed(code) => {
                let why = "the server's queue towards this client overflowed";
                let bye = Farewell::error(code, why, Reading::InSync);
                self.end(LeaveReason::SlowConsumer, Some(bye));
            }
            Input::Shutdown => {
                let bye = Farewell::close(CLOSE_GOING_AWAY, "server shutting down");
                self.end(LeaveReason::Shutdown, Some(bye));
            }
            Input::Registered(Ok((membership, assign))) => {
                self.place = Place::Registered(membership);
                self.out.push_back(Output::Text(assign));
            }
            Input::Registered(Err(refusal)) => self.reply(refusal),
            Input::Refused(refusal) => self.out.push_back(Output::Error(refusal)),
        }
    }

    fn on_text(&mut self, text: &str, now: Instant) {
        self.liveness.seen(now);
        if !self.admit(text.len(), now) {
            return;
        }
        let s = step(self.membership().map(Membership::peer_id), text);
        metrics::counter!(crate::metrics::SIGNAL_MESSAGES, "kind" => s.label()).increment(1);
        let out = match s {
            Step::Reply(refusal) => return self.reply(refusal),
            Step::Register {
                peer_id,
                track,
                capacity,
                features,
            } => Output::Register {
                peer_id,
                track,
                capacity,
                features,
            },
            Step::Relay { to, text } => Output::Relay { to, text },
            Step::DropChild { child } => Output::DropChild { child },
            Step::ForwardReport(n) => Output::ForwardReport(n),
            Step::Heartbeat => return,
            Step::Leave => {
                let register_by = now + self.limits.register_timeout;
                match std::mem::replace(&mut self.place, Place::Unregistered { register_by }) {
                    Place::Registered(r) => Output::Leave(r),
                    // `step` yields `Leave` to registered sessions only.
                    other => {
                        self.place = other;
                        return;
                    }
                }
            }
        };
        self.out.push_back(out);
    }

    /// Decides the deadlines due at `now`; the registration deadline first,
    /// so liveness never hides it.
    fn on_timeout(&mut self, now: Instant) {
        if let Place::Unregistered { register_by } = self.place {
            if now >= register_by {
                let why = format!("no Register within {:?}", self.limits.register_timeout);
                let mut bye = Farewell::error(ErrorCode::ExpectedRegister, why, Reading::InSync);
                bye.close_code = CLOSE_POLICY;
                return self.end(LeaveReason::Timeout, Some(bye));
            }
        }
        if !self.liveness.check_due(now) {
            return;
        }
        match self.liveness.on_due(now) {
            Due::Gone => {
                tracing::debug!(
                    peer_id = self.membership().map(Membership::peer_id),
                    "heartbeat timeout"
                );
                // Best effort: a peer that is merely stalled learns why it
                // was dropped; a vanished one costs the send limit.
                let bye = Farewell::close(CLOSE_GOING_AWAY, "heartbeat timeout");
                self.end(LeaveReason::Timeout, Some(bye));
            }
            Due::Ping => {
                self.pings_owed = self.pings_owed.saturating_add(1);
                self.out.push_back(Output::Ping);
            }
            Due::Quiet => {}
        }
    }

    /// Applies the size limit (`len` bytes) and the message rate to one
    /// message; false when it ended the session.
    fn admit(&mut self, len: usize, now: Instant) -> bool {
        let max = self.limits.max_message_bytes;
        if len > max {
            let why = format!("message of {len} bytes exceeds the limit of {max}");
            let bye = Farewell::error(ErrorCode::TooLarge, why, Reading::InSync);
            self.end(LeaveReason::Disconnect, Some(bye));
            return false;
        }
        if !self.bucket.allow(now) {
            let why = "too many messages; slow down";
            let bye = Farewell::error(ErrorCode::RateLimited, why, Reading::InSync);
            self.end(LeaveReason::Disconnect, Some(bye));
            return false;
        }
        true
    }

    /// Answers with an error, ending the session when the code says so.
    fn reply(&mut self, refusal: Refusal) {
        if refusal.code.closes_session() {
            let bye = Farewell::refused(refusal, Reading::InSync);
            return self.end(LeaveReason::Disconnect, Some(bye));
        }
        self.out.push_back(Output::Error(refusal));
    }

    /// Ends the session: what was still to do is dropped, and the place
    /// goes with the end so its leave is planned with `reason`.
    fn end(&mut self, reason: LeaveReason, farewell: Option<Farewell>) {
        // Each input yields at most one output, drained before the next
        // input, so nothing that holds the place is dropped here.
        self.out.clear();
        let membership = match std::mem::replace(&mut self.place, Place::Ended) {
            Place::Registered(r) => Some(r),
            _ => None,
        };
        self.out.push_back(Output::End(End {
            reason,
            farewell,
            membership,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws_util::{CLOSE_TOO_BIG, CLOSE_TRY_AGAIN};

    const SEC: Duration = Duration::from_secs(1);

    #[derive(Debug, PartialEq)]
    struct Reg(&'static str);

    impl Membership for Reg {
        fn peer_id(&self) -> &str {
            self.0
        }
    }

    fn limits() -> Limits {
        Limits {
            max_message_bytes: 100,
            message_rate: 1.0,
            message_burst: 3.0,
            register_timeout: 10 * SEC,
            heartbeat_timeout: 6 * SEC,
        }
    }

    const REGISTER: &str = r#"{"type":"Register","peer_id":"a","track":"t"}"#;

    /// Every output up to the timeout, and the timeout.
    fn drain(core: &mut SessionCore<Reg>) -> (Vec<Output<Reg>>, Option<Instant>) {
        let mut outs = Vec::new();
        loop {
            match core.poll_output() {
                Output::Timeout(at) => return (outs, Some(at)),
                end @ Output::End(_) => {
                    outs.push(end);
                    return (outs, None);
                }
                out => outs.push(out),
            }
        }
    }

    fn feed(core: &mut SessionCore<Reg>, input: Input<'_, Reg>, now: Instant) -> Vec<Output<Reg>> {
        core.handle_input(input, now);
        drain(core).0
    }

    /// Registers as "a" at `now`.
    fn registered(now: Instant) -> SessionCore<Reg> {
        let mut core = SessionCore::new(limits(), now);
        let outs = feed(&mut core, Input::Text(REGISTER), now);
        assert!(matches!(&outs[..], [Output::Register { peer_id, .. }] if peer_id == "a"));
        let answer = Input::Registered(Ok((Reg("a"), "assign".into())));
        let outs = feed(&mut core, answer, now);
        assert!(matches!(&outs[..], [Output::Text(t)] if t.as_str() == "assign"));
        core
    }

    /// The end's reason, error code and close code.
    fn ended(outs: &[Output<Reg>]) -> (LeaveReason, Option<ErrorCode>, u16, bool) {
        match outs {
            [Output::End(End {
                reason,
                farewell: Some(f),
                membership,
            })] => (
                *reason,
                f.error.as_ref().map(|e| e.code),
                f.close_code,
                membership.is_some(),
            ),
            other => panic!("expected an end with a farewell, got {other:?}"),
        }
    }

    #[test]
    fn an_unregistered_session_is_closed_at_its_deadline() {
        let t0 = Instant::now();
        let mut core = SessionCore::<Reg>::new(limits(), t0);
        // Liveness checks every second; the deadline is among the timeouts.
        assert_eq!(drain(&mut core).1, Some(t0 + SEC));
        feed(&mut core, Input::Pong, t0 + 9 * SEC);
        let outs = feed(&mut core, Input::Timeout, t0 + 9 * SEC);
        assert!(
            matches!(&outs[..], [Output::Ping]),
            "alive, and not yet due"
        );
        let outs = feed(&mut core, Input::Timeout, t0 + 10 * SEC);
        let expired = (
            LeaveReason::Timeout,
            Some(ErrorCode::ExpectedRegister),
            CLOSE_POLICY,
            false,
        );
        assert_eq!(ended(&outs), expired);
        assert!(
            matches!(core.poll_output(), Output::Timeout(_)),
            "nothing after the end"
        );
    }

    #[test]
    fn a_leave_gives_the_place_back_and_restarts_the_deadline() {
        let t0 = Instant::now();
        let mut core = registered(t0);
        feed(
            &mut core,
            Input::Text(r#"{"type":"Heartbeat"}"#),
            t0 + 5 * SEC,
        );
        feed(&mut core, Input::Timeout, t0 + 10 * SEC);
        assert!(core.membership().is_some(), "no deadline while registered");
        let outs = feed(&mut core, Input::Text(r#"{"type":"Leave"}"#), t0 + 10 * SEC);
        assert!(matches!(&outs[..], [Output::Leave(Reg("a"))]));
        assert!(core.membership().is_none());
        feed(&mut core, Input::Pong, t0 + 15 * SEC);
        let outs = feed(&mut core, Input::Timeout, t0 + 19 * SEC);
        assert!(!outs.iter().any(|o| matches!(o, Output::End(_))));
        let outs = feed(&mut core, Input::Timeout, t0 + 20 * SEC);
        assert_eq!(ended(&outs).1, Some(ErrorCode::ExpectedRegister));
    }

    #[test]
    fn frames_ask_the_track_for_the_member_and_refusals_keep_it_open() {
        let t0 = Instant::now();
        let mut core = registered(t0);
        let offer = r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#;
        let outs = feed(&mut core, Input::Text(offer), t0);
        assert!(matches!(&outs[..], [Output::Relay { to, text }] if to == "b" && text == offer));
        let full = Refusal::new(ErrorCode::RateLimited, "full".to_owned());
        let outs = feed(&mut core, Input::Refused(full), t0);
        assert!(matches!(
            &outs[..],
            [Output::Error(Refusal {
                code: ErrorCode::RateLimited,
                ..
            })]
        ));
        let spoofed = r#"{"type":"Offer","from":"z","to":"b","sdp":"x"}"#;
        let outs = feed(&mut core, Input::Text(spoofed), t0);
        assert!(matches!(
            &outs[..],
            [Output::Error(Refusal {
                code: ErrorCode::SpoofedFrom,
                ..
            })]
        ));
        assert!(core.membership().is_some());
    }

    #[test]
    fn a_refused_register_leaves_the_session_unregistered_and_open() {
        let t0 = Instant::now();
        let mut core = SessionCore::<Reg>::new(limits(), t0);
        feed(&mut core, Input::Text(REGISTER), t0);
        let full = Refusal::new(ErrorCode::MeshFull, "full".to_owned());
        let outs = feed(&mut core, Input::Registered(Err(full)), t0);
        assert!(matches!(
            &outs[..],
            [Output::Error(Refusal {
                code: ErrorCode::MeshFull,
                ..
            })]
        ));
        let outs = feed(&mut core, Input::Text(r#"{"type":"Heartbeat"}"#), t0);
        assert!(matches!(
            &outs[..],
            [Output::Error(Refusal {
                code: ErrorCode::ExpectedRegister,
                ..
            })]
        ));
    }

    #[test]
    fn every_message_and_ping_costs_a_token_but_owed_pongs_are_free() {
        let t0 = Instant::now();
        let heartbeat = r#"{"type":"Heartbeat"}"#;
        // The Register took one token of the burst of three; two are left.
        let mut core = registered(t0);
        for _ in 0..2 {
            assert_eq!(feed(&mut core, Input::Text(heartbeat), t0).len(), 0);
        }
        // Two seconds refill two tokens, and the first ping is due.
        let now = t0 + 2 * SEC;
        let outs = feed(&mut core, Input::Timeout, now);
        assert!(matches!(&outs[..], [Output::Ping]));
        assert_eq!(feed(&mut core, Input::Ping, now).len(), 0);
        assert_eq!(feed(&mut core, Input::Text(heartbeat), now).len(), 0);
        // The pong answering the server's ping costs nothing; another does.
        assert_eq!(feed(&mut core, Input::Pong, now).len(), 0);
        let outs = feed(&mut core, Input::Pong, now);
        let limited = (
            LeaveReason::Disconnect,
            Some(ErrorCode::RateLimited),
            CLOSE_POLICY,
            true,
        );
        assert_eq!(ended(&outs), limited);
    }

    #[test]
    fn a_silent_client_is_pinged_then_gone_within_a_second_of_the_timeout() {
        let t0 = Instant::now();
        let mut core = registered(t0);
        let mut pings = 0;
        let mut now = t0;
        loop {
            let (outs, next) = drain(&mut core);
            pings += outs.iter().filter(|o| matches!(o, Output::Ping)).count();
            if let [Output::End(end)] = &outs[..] {
                assert_eq!(end.reason, LeaveReason::Timeout);
                let bye = end.farewell.as_ref().unwrap();
                assert_eq!(
                    (bye.error.is_none(), bye.close_code),
                    (true, CLOSE_GOING_AWAY)
                );
                break;
            }
            now = next.unwrap();
            core.handle_input(Input::Timeout, now);
        }
        assert_eq!((now - t0, pings), (7 * SEC, 3));
    }

    #[test]
    fn frames_over_the_limit_end_the_session() {
        let t0 = Instant::now();
        let mut core = registered(t0);
        let outs = feed(&mut core, Input::Binary(101), t0);
        let too_large = (
            LeaveReason::Disconnect,
            Some(ErrorCode::TooLarge),
            CLOSE_TOO_BIG,
            true,
        );
        assert_eq!(ended(&outs), too_large);
        let mut core = registered(t0);
        let outs = feed(&mut core, Input::ReadFailed { too_large: true }, t0);
        assert!(
            matches!(&outs[..], [Output::End(End { farewell: Some(f), .. })] if f.input == Reading::Desynced)
        );
        let mut core = registered(t0);
        let outs = feed(&mut core, Input::Killed(ErrorCode::SlowConsumer), t0);
        assert_eq!(ended(&outs).2, CLOSE_TRY_AGAIN);
    }
}
