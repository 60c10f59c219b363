//! One track: its relay tree with the sessions of its peers, and its origin
//! ring. Every tree operation runs under the track's lock, which is never
//! held across an `.await` (all sends are `try_send`).

use crate::outbox::{Class, Outbox, PushError};
use crate::relay_budget::RelayBudget;
use crate::ring::{Read, Ring, RingBudget, Start};
use crate::wire::{self, peer_left, IceServers};
use axum::extract::ws::Utf8Bytes;
use meshrelay_mesh::{
    MeshConfig, MeshError, PeerAssignment, PeerId, PeerRole, PeerSummary, Planner, Replan,
};
use meshrelay_protocol::{ErrorCode, Features, Role};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// Settings and counters shared by every track's tree.
#[derive(Debug)]
pub struct MeshCtx {
    /// Planner limits for new tracks.
    pub mesh: MeshConfig,
    /// The RTCIceServer array sent in every `AssignParent`.
    pub ice_servers: IceServers,
    /// Most peers per track.
    pub max_peers_per_track: Option<usize>,
    /// Most peers over all tracks.
    pub max_peers_total: Option<usize>,
    /// Peers over all tracks right now.
    pub total_peers: AtomicUsize,
}

impl MeshCtx {
    /// Reserves one server-wide peer slot; false when the server is full.
    fn reserve_peer(&self) -> bool {
        let limit = self.max_peers_total.unwrap_or(usize::MAX);
        self.total_peers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn release_peer(&self) {
        self.total_peers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The track's handle on one registration of a `/signal` session.
#[derive(Debug)]
pub struct SessionHandle {
    /// Unique per registration, so a session that was cut off (or left and
    /// registered again) can never act for a later holder of the same id.
    pub registration: u64,
    /// Bounded queue of text frames towards the client.
    pub tx: Outbox,
    /// Tells the session task to close with this error.
    pub kill: Option<oneshot::Sender<ErrorCode>>,
    /// What the client stated at `Register`.
    pub features: Features,
    /// The parent named in the last `AssignParent` queued for it: a client
    /// without [`Features::position_updates`] is told only when it changes.
    pub told_parent: Option<PeerId>,
}

/// Why a peer left, as a metrics label.
#[derive(Debug, Clone, Copy)]
pub enum LeaveReason {
    /// The client sent `Leave`.
    Leave,
    /// The socket closed or failed.
    Disconnect,
    /// No message or pong within the heartbeat timeout.
    Timeout,
    /// Its outbound queue overflowed.
    SlowConsumer,
    /// The server is stopping.
    Shutdown,
}

impl LeaveReason {
    fn label(self) -> &'static str {
        match self {
            LeaveReason::Leave => "leave",
            LeaveReason::Disconnect => "disconnect",
            LeaveReason::Timeout => "timeout",
            LeaveReason::SlowConsumer => "slow_consumer",
            LeaveReason::Shutdown => "shutdown",
        }
    }
}

/// Objects and bytes counters of one track's origin.
#[derive(Debug, Default)]
pub struct TrackStats {
    /// Objects accepted from publishers.
    pub objects_published: AtomicU64,
    /// Objects written to egress subscribers.
    pub origin_objects_sent: AtomicU64,
    /// Bytes written to egress subscribers: framed objects and text notices.
    pub origin_bytes_sent: AtomicU64,
    /// Open egress subscribers.
    pub subscribers: AtomicUsize,
    /// Open publishers: 0 or 1, held by [`PublisherClaim`].
    pub publishers: AtomicUsize,
}

/// The right to publish on a track, held by at most one publisher at a
/// time so two publishers never interleave their objects; dropping it lets
/// the next one in.
pub struct PublisherClaim {
    track: Arc<Track>,
}

impl Drop for PublisherClaim {
    fn drop(&mut self) {
        self.track.stats.publishers.store(0, Ordering::Release);
    }
}

struct MeshState {
    planner: Planner,
    sessions: HashMap<String, SessionHandle>,
    /// The children each parent dropped recently (see [`Track::drop_child`]).
    drops: HashMap<String, Vec<(String, Instant)>>,
}

/// Two different children dropped by one parent within this window mean the
/// parent cannot feed its children (its uplink), not that one child cannot
/// keep up (its downlink).
const REPEAT_DROP_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Drops remembered per parent: more than its children at once is never needed.
const MAX_DROPS_KEPT: usize = 8;

impl MeshState {
    /// Whether `peer_id` is in the tree for this very registration.
    fn holds(&self, peer_id: &str, registration: u64) -> bool {
        self.sessions
            .get(peer_id)
            .is_some_and(|h| h.registration == registration)
    }
}

/// A copy of a track's tree for the admin API.
#[derive(Debug)]
pub struct TreeSnapshot {
    /// Peers.
    pub peer_count: usize,
    /// Roots.
    pub root_count: usize,
    /// Percentage of peers fed by a peer.
    pub offload_percentage: f64,
    /// Every peer (empty unless asked for).
    pub peers: Vec<PeerSummary>,
}

/// One live track.
pub struct Track {
    /// Its name.
    pub name: Arc<str>,
    mesh: Mutex<MeshState>,
    ring: Mutex<Ring>,
    next_id: watch::Sender<u64>,
    /// Names this track's id sequence (see `AssignParent`'s `epoch`): a
    /// track created anew restarts at 0 under a new epoch.
    pub epoch: Arc<str>,
    /// Origin counters.
    pub stats: TrackStats,
}

/// A fresh epoch: 64 random bits in hex. Uniqueness is all it needs, so
/// the standard library's randomly keyed hasher supplies them.
fn random_epoch() -> Arc<str> {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{bits:016x}").into()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent across a panic in a send (there is
    // none by design), so keep serving rather than poison every session.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn role(r: PeerRole) -> Role {
    match r {
        PeerRole::Root => Role::Root,
        PeerRole::Relay => Role::Relay,
        PeerRole::Leaf => Role::Leaf,
    }
}

impl Track {
    /// An empty track.
    pub fn new(
        name: Arc<str>,
        mesh: MeshConfig,
        ring_objects: usize,
        ring_bytes: usize,
        ring_budget: Arc<RingBudget>,
    ) -> Self {
        Self {
            name,
            mesh: Mutex::new(MeshState {
                planner: Planner::new(mesh),
                sessions: HashMap::new(),
                drops: HashMap::new(),
            }),
            ring: Mutex::new(Ring::new(ring_objects, ring_bytes, ring_budget)),
            next_id: watch::Sender::new(0),
            epoch: random_epoch(),
            stats: TrackStats::default(),
        }
    }

    /// The same track under a chosen epoch.
    pub fn with_epoch(mut self, epoch: Arc<str>) -> Self {
        self.epoch = epoch;
        self
    }

    /// The `AssignParent` text for a position.
    fn assign_text(&self, ctx: &MeshCtx, a: &PeerAssignment) -> Utf8Bytes {
        let place = wire::Place {
            peer_id: &a.peer_id,
            role: role(a.role),
            parent_id: a.parent.as_deref(),
            depth: a.depth,
        };
        wire::assign_parent(place, &ctx.ice_servers, *self.next_id.borrow(), &self.epoch)
    }

    /// Places a new peer and records its session (a relay-capable one may
    /// take a root slot from a leaf, which is told its new place; peers
    /// waiting for a place are placed in the room it brings). Returns the
    /// `AssignParent` text to send it, which must go out before anything
    /// queued on the handle.
    pub fn register(
        &self,
        ctx: &MeshCtx,
        peer_id: &str,
        capacity: Option<u32>,
        mut handle: SessionHandle,
    ) -> Result<Utf8Bytes, (ErrorCode, String)> {
        let mut st = lock(&self.mesh);
        if st.sessions.contains_key(peer_id) {
            return Err((
                ErrorCode::DuplicatePeerId,
                format!("peer id {peer_id} is already registered on this track"),
            ));
        }
        if ctx
            .max_peers_per_track
            .is_some_and(|max| st.planner.peer_count() >= max)
        {
            return Err((
                ErrorCode::MeshFull,
                "this track has reached its peer limit".into(),
            ));
        }
        if !ctx.reserve_peer() {
            return Err((
                ErrorCode::MeshFull,
                "the server has reached its peer limit".into(),
            ));
        }
        let reads_origin = handle.features.reads_origin;
        match st
            .planner
            .join_relaying(peer_id, capacity, reads_origin, Instant::now())
        {
            Ok((a, displaced)) => {
                handle.told_parent = a.parent.clone();
                st.sessions.insert(peer_id.to_owned(), handle);
                metrics::counter!(crate::metrics::JOINS).increment(1);
                // A leaf that held a root slot now hangs under the newcomer.
                let mut moved = Replan {
                    changed: displaced.into_iter().collect(),
                    unlinked: Vec::new(),
                };
                if st.planner.waiting_count() > 0 {
                    let placed = st.planner.place_detached();
                    moved.changed.extend(placed.changed);
                    moved.unlinked = placed.unlinked;
                }
                self.tell_replan(&mut st, ctx, &moved);
                Ok(self.assign_text(ctx, &a))
            }
            Err(e) => {
                ctx.release_peer();
                Err(match e {
                    MeshError::DuplicatePeer(_) => (
                        ErrorCode::DuplicatePeerId,
                        format!("peer id {peer_id} is already in the tree"),
                    ),
                    other => (ErrorCode::MeshFull, other.to_string()),
                })
            }
        }
    }

    /// Relays a frame from `from`, held by `registration`, to its tree
    /// neighbour `to`, charged to the sender's `budget` for `to`. A
    /// recipient whose queue has no room for relayed frames, or that the
    /// sender has sent its budget's worth already, is left alone: the frame
    /// is dropped and the sender refused with `rate_limited`, so no client
    /// can get another cut off.
    pub fn relay(
        &self,
        from: &str,
        registration: u64,
        to: &str,
        text: Utf8Bytes,
        budget: &mut RelayBudget,
    ) -> Result<(), (ErrorCode, String)> {
        let st = lock(&self.mesh);
        // Checked under the same lock as the neighbour test: the session may
        // have been cut off, and the id taken by another, since it read this frame.
        if !st.holds(from, registration) {
            return Err((
                ErrorCode::SpoofedFrom,
                format!("this session no longer holds peer id {from}"),
            ));
        }
        if !st.planner.are_neighbours(from, to) {
            return Err((
                ErrorCode::NotNeighbour,
                format!("{to} is not this peer's parent or child"),
            ));
        }
        let Some(h) = st.sessions.get(to) else {
            return Ok(());
        };
        let bytes = text.len();
        if !budget.allow(to, bytes, Instant::now()) {
            return Err((
                ErrorCode::RateLimited,
                format!("relaying to {to} faster than its budget allows; this message was dropped"),
            ));
        }
        let pushed = h.tx.push(text, Class::Relay);
        if pushed.is_err() {
            budget.refund(to, bytes);
        }
        match pushed {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err((
                ErrorCode::RateLimited,
                format!("{to} is not reading fast enough; this message was dropped"),
            )),
            // The recipient's session is ending; its leave tells the sender.
            Err(PushError::Closed) => Ok(()),
        }
    }

    /// `parent`, held by `registration`, stopped feeding its child `child`:
    /// moves the child, with its subtree, to the best other place and tells
    /// every peer that moved. A child with nowhere else to go stays. When
    /// the parent drops a second, different child within
    /// [`REPEAT_DROP_WINDOW`], the parent is the one that cannot keep up:
    /// its capacity falls to the children it has left, so the slots they
    /// freed are not refilled (told when it becomes a leaf).
    pub fn drop_child(
        &self,
        ctx: &MeshCtx,
        parent: &str,
        registration: u64,
        child: &str,
    ) -> Result<(), (ErrorCode, String)> {
        let mut st = lock(&self.mesh);
        if !st.holds(parent, registration) {
            return Err((
                ErrorCode::SpoofedFrom,
                format!("this session no longer holds peer id {parent}"),
            ));
        }
        let is_child = st
            .planner
            .assignment(child)
            .is_some_and(|a| a.parent.as_deref() == Some(parent));
        if !is_child {
            return Err((
                ErrorCode::NotNeighbour,
                format!("{child} is not this peer's child"),
            ));
        }
        if let Ok(replan) = st.planner.reassign(child) {
            self.tell_replan(&mut st, ctx, &replan);
        }
        let now = Instant::now();
        let history = st.drops.entry(parent.to_owned()).or_default();
        history.retain(|(_, at)| now.duration_since(*at) < REPEAT_DROP_WINDOW);
        let repeated = history.iter().any(|(c, _)| c != child);
        history.retain(|(c, _)| c != child);
        if history.len() >= MAX_DROPS_KEPT {
            history.remove(0);
        }
        history.push((child.to_owned(), now));
        if repeated {
            metrics::counter!(crate::metrics::REPEATED_DROPS).increment(1);
            if let Ok(Some(role_changed)) = st.planner.lower_capacity(parent) {
                let replan = Replan {
                    changed: vec![role_changed],
                    unlinked: Vec::new(),
                };
                self.tell_replan(&mut st, ctx, &replan);
            }
        }
        Ok(())
    }

    /// Replaces the forwarded-object count of `peer_id`, if `registration`
    /// still holds it.
    pub fn forward_report(&self, peer_id: &str, registration: u64, forwarded: u64) {
        let mut st = lock(&self.mesh);
        if st.holds(peer_id, registration) {
            st.planner.record_forward_report(peer_id, forwarded);
        }
    }

    /// Plans the leave of `peer_id` held by `registration`; a no-op if that
    /// registration no longer holds the id (it was already cut off), so
    /// each registration is planned out exactly once.
    pub fn leave(&self, ctx: &MeshCtx, peer_id: &str, registration: u64, reason: LeaveReason) {
        let mut st = lock(&self.mesh);
        if !st.holds(peer_id, registration) {
            return;
        }
        st.sessions.remove(peer_id);
        let mut doomed = Vec::new();
        self.plan_leave(&mut st, ctx, peer_id, reason, &mut doomed);
        self.drain_doomed(&mut st, ctx, doomed);
    }

    /// Gives waiting peers a place if one freed up, and tells them.
    pub fn place_detached(&self, ctx: &MeshCtx) {
        let mut st = lock(&self.mesh);
        let replan = st.planner.place_detached();
        self.tell_replan(&mut st, ctx, &replan);
    }

    /// Tells the peers a re-plan touched, then cuts off those whose queue
    /// overflowed.
    fn tell_replan(&self, st: &mut MeshState, ctx: &MeshCtx, replan: &Replan) {
        if replan.changed.is_empty() && replan.unlinked.is_empty() {
            return;
        }
        let mut doomed = Vec::new();
        self.queue_replan(st, ctx, &replan.unlinked, &replan.changed, &mut doomed);
        self.drain_doomed(st, ctx, doomed);
    }

    /// Queues what a re-plan owes its peers, in the order they must act on
    /// it: first a `PeerLeft` to both ends of every link it ended (each end
    /// names the other, which is alive: "no longer your neighbour"; an LVQR
    /// client closes a link only on a `PeerLeft` naming its child, so
    /// without it the old link would stay open beside the new one and
    /// objects could circle), then the new `AssignParent`s. A client that
    /// did not state [`Features::position_updates`] is sent one only when
    /// its parent changed, as it reconnects on every `AssignParent`.
    fn queue_replan(
        &self,
        st: &mut MeshState,
        ctx: &MeshCtx,
        unlinked: &[(PeerId, PeerId)],
        changed: &[PeerAssignment],
        doomed: &mut Vec<String>,
    ) {
        for (parent, child) in unlinked {
            deliver(st, parent, peer_left(child), doomed);
            deliver(st, child, peer_left(parent), doomed);
        }
        for a in changed {
            let Some(h) = st.sessions.get_mut(&a.peer_id) else {
                continue;
            };
            if !h.features.position_updates && h.told_parent == a.parent {
                continue;
            }
            h.told_parent = a.parent.clone();
            let text = self.assign_text(ctx, a);
            deliver(st, &a.peer_id, text, doomed);
        }
        metrics::counter!(crate::metrics::REASSIGNMENTS).increment(changed.len() as u64);
    }

    fn plan_leave(
        &self,
        st: &mut MeshState,
        ctx: &MeshCtx,
        peer_id: &str,
        reason: LeaveReason,
        doomed: &mut Vec<String>,
    ) {
        let Ok(outcome) = st.planner.leave(peer_id) else {
            return;
        };
        st.drops.remove(peer_id);
        ctx.release_peer();
        metrics::counter!(crate::metrics::LEAVES, "reason" => reason.label()).increment(1);
        let left = peer_left(peer_id);
        for n in &outcome.neighbours {
            deliver(st, n, left.clone(), doomed);
        }
        self.queue_replan(st, ctx, &outcome.unlinked, &outcome.changed, doomed);
    }

    /// Cuts off every session whose queue overflowed, planning each leave;
    /// those leaves may doom further sessions, hence the work list.
    fn drain_doomed(&self, st: &mut MeshState, ctx: &MeshCtx, mut doomed: Vec<String>) {
        while let Some(id) = doomed.pop() {
            let Some(mut handle) = st.sessions.remove(&id) else {
                continue;
            };
            if let Some(kill) = handle.kill.take() {
                let _ = kill.send(ErrorCode::SlowConsumer);
            }
            self.plan_leave(st, ctx, &id, LeaveReason::SlowConsumer, &mut doomed);
        }
    }

    /// Counts and a copy of the tree; `with_peers` adds every peer (O(n)).
    pub fn tree_snapshot(&self, with_peers: bool) -> TreeSnapshot {
        let st = lock(&self.mesh);
        TreeSnapshot {
            peer_count: st.planner.peer_count(),
            root_count: st.planner.root_count(),
            offload_percentage: st.planner.offload_percentage(),
            // Two strings a peer: this runs under the track's lock.
            peers: if with_peers {
                st.planner.summaries()
            } else {
                Vec::new()
            },
        }
    }

    /// Peers in the tree now.
    pub fn peer_count(&self) -> usize {
        lock(&self.mesh).planner.peer_count()
    }

    /// Claims the track's only publisher slot; `None` while another
    /// publisher holds it.
    pub fn claim_publisher(self: &Arc<Self>) -> Option<PublisherClaim> {
        self.stats
            .publishers
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| PublisherClaim {
                track: Arc::clone(self),
            })
    }

    /// Appends a published object; returns its id.
    pub fn publish(&self, payload: &[u8]) -> u64 {
        let mut ring = lock(&self.ring);
        let (id, _) = ring.push(payload);
        // Sent under the ring lock so readers never see the notice before the object.
        self.next_id.send_replace(ring.next_id());
        self.stats.objects_published.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// The id the next published object gets.
    pub fn next_object_id(&self) -> u64 {
        *self.next_id.borrow()
    }

    /// Where a subscriber asking for `from` starts, and a receiver that
    /// changes whenever an object is published.
    pub fn subscribe(&self, from: Option<u64>) -> (Start, watch::Receiver<u64>) {
        let ring = lock(&self.ring);
        (ring.start(from), self.next_id.subscribe())
    }

    /// Up to `max` framed objects from `cursor` on.
    pub fn read(&self, cursor: u64, max: usize) -> Read {
        lock(&self.ring).read(cursor, max)
    }
}

/// Queues a planner message for a peer; a queue too full even for those
/// dooms the peer. A closed queue is skipped: its session task is ending
/// and plans its own leave.
fn deliver(st: &mut MeshState, to: &str, text: Utf8Bytes, doomed: &mut Vec<String>) {
    let Some(h) = st.sessions.get(to) else {
        return;
    };
    if h.tx.push(text, Class::Control) == Err(PushError::Full) {
        doomed.push(to.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn unlimited() -> RelayBudget {
        RelayBudget::new(1e15, 1e15, 4)
    }

    fn ctx(root_peer_count: usize) -> MeshCtx {
        MeshCtx {
            mesh: MeshConfig {
                root_peer_count,
                ..MeshConfig::default()
            },
            ice_servers: IceServers::new(&serde_json::json!([])),
            max_peers_per_track: None,
            max_peers_total: None,
            total_peers: AtomicUsize::new(0),
        }
    }

    struct Client {
        rx: crate::outbox::Inbox,
        _kill: oneshot::Receiver<ErrorCode>,
    }

    impl Client {
        /// Every frame queued so far, in order.
        fn queued(&mut self) -> Vec<serde_json::Value> {
            let rx = &mut self.rx;
            std::iter::from_fn(|| rx.recv().now_or_never().flatten())
                .map(|t| serde_json::from_str(t.as_str()).unwrap())
                .collect()
        }
    }

    fn join(track: &Track, ctx: &MeshCtx, id: &str, registration: u64) -> Client {
        join_with_queue(track, ctx, id, registration, 8)
    }

    fn join_with_queue(
        track: &Track,
        ctx: &MeshCtx,
        id: &str,
        registration: u64,
        frames: usize,
    ) -> Client {
        let (tx, rx) = crate::outbox::channel(frames, 1 << 20);
        let (kill, kill_rx) = oneshot::channel();
        let handle = SessionHandle {
            registration,
            tx,
            kill: Some(kill),
            features: Features {
                reads_origin: true,
                position_updates: true,
            },
            told_parent: None,
        };
        track.register(ctx, id, None, handle).expect("registered");
        Client { rx, _kill: kill_rx }
    }

    fn assign(peer: &str, role: &str, parent: Option<&str>, depth: u32) -> serde_json::Value {
        serde_json::json!({
            "type": "AssignParent", "peer_id": peer, "role": role, "parent_id": parent,
            "depth": depth, "ice_servers": [], "next_object_id": 0, "epoch": "e"
        })
    }

    fn left(peer: &str) -> serde_json::Value {
        serde_json::json!({"type": "PeerLeft", "peer_id": peer})
    }

    const NOTHING: [serde_json::Value; 0] = [];

    #[test]
    fn a_former_holder_of_an_id_cannot_act_for_its_new_holder() {
        let ctx = ctx(1);
        let track = Track::new(
            "t".into(),
            ctx.mesh.clone(),
            8,
            1 << 20,
            Arc::new(RingBudget::new(usize::MAX)),
        )
        .with_epoch("e".into());
        let _old_a = join(&track, &ctx, "a", 1);
        let mut b = join(&track, &ctx, "b", 2);
        track.leave(&ctx, "a", 1, LeaveReason::Leave);
        assert_eq!(b.queued(), [left("a"), assign("b", "Root", None, 0)]);
        // Another registration takes "a"; it lands under b.
        let _new_a = join(&track, &ctx, "a", 3);
        let offer = r#"{"type":"Offer","from":"a","to":"b","sdp":"x"}"#;

        // The old registration (its session not yet closed) is refused.
        let refused = track.relay("a", 1, "b", offer.into(), &mut unlimited());
        assert_eq!(refused.map_err(|e| e.0), Err(ErrorCode::SpoofedFrom));
        track.forward_report("a", 1, 99);
        track.leave(&ctx, "a", 1, LeaveReason::Disconnect);
        assert_eq!(b.queued(), NOTHING);
        let snap = track.tree_snapshot(true);
        assert_eq!(snap.peer_count, 2);
        let a = snap.peers.iter().find(|p| p.id == "a").unwrap();
        assert_eq!((a.parent.as_deref(), a.forwarded_frames), (Some("b"), 0));

        // The current holder is served.
        track
            .relay("a", 3, "b", offer.into(), &mut unlimited())
            .unwrap();
        track.forward_report("a", 3, 7);
        assert_eq!(
            b.queued(),
            [serde_json::from_str::<serde_json::Value>(offer).unwrap()]
        );
        let snap = track.tree_snapshot(true);
        let a = snap.peers.iter().find(|p| p.id == "a").unwrap();
        assert_eq!(a.forwarded_frames, 7);
    }

    /// The `AssignParent` matching the peer's place in the tree now.
    fn current_assign(track: &Track, id: &str) -> serde_json::Value {
        let snap = track.tree_snapshot(true);
        let p = snap.peers.iter().find(|p| p.id == id).unwrap();
        assign(id, role(p.role).as_str(), p.parent.as_deref(), p.depth)
    }

    #[test]
    fn a_leave_tells_exactly_its_neighbours_and_the_moved_peers() {
        let ctx = ctx(2);
        let track = Track::new(
            "t".into(),
            ctx.mesh.clone(),
            8,
            1 << 20,
            Arc::new(RingBudget::new(usize::MAX)),
        )
        .with_epoch("e".into());
        // Roots a and z, b under a, c under z (ties go to the fewest children).
        let mut a = join(&track, &ctx, "a", 1);
        let mut z = join(&track, &ctx, "z", 2);
        let mut b = join(&track, &ctx, "b", 3);
        let mut c = join(&track, &ctx, "c", 4);
        assert_eq!(
            current_assign(&track, "b"),
            assign("b", "Relay", Some("a"), 1)
        );
        assert_eq!(
            current_assign(&track, "c"),
            assign("c", "Relay", Some("z"), 1)
        );
        for client in [&mut a, &mut z, &mut b, &mut c] {
            assert_eq!(client.queued(), NOTHING);
        }
        track.leave(&ctx, "a", 1, LeaveReason::Disconnect);
        assert_eq!(ctx.total_peers.load(Ordering::Relaxed), 3);
        // b, a's only neighbour, hears PeerLeft and its new place: a lone
        // childless orphan takes the freed root slot itself.
        assert_eq!(b.queued(), [left("a"), assign("b", "Root", None, 0)]);
        // Nobody else hears anything.
        assert_eq!(c.queued(), NOTHING);
        assert_eq!(z.queued(), NOTHING);
        assert_eq!(a.queued(), NOTHING);
        // A second leave of the same registration plans nothing.
        track.leave(&ctx, "a", 1, LeaveReason::Disconnect);
        assert_eq!(track.peer_count(), 3);
        assert_eq!(ctx.total_peers.load(Ordering::Relaxed), 3);
        for client in [&mut a, &mut z, &mut b, &mut c] {
            assert_eq!(client.queued(), NOTHING);
        }
    }

    #[test]
    fn a_full_queue_refuses_the_relay_and_keeps_the_recipient() {
        let ctx = ctx(1);
        let track = Track::new(
            "t".into(),
            ctx.mesh.clone(),
            8,
            1 << 20,
            Arc::new(RingBudget::new(usize::MAX)),
        )
        .with_epoch("e".into());
        // a (4 slots: 3 for relays) <- b, c.
        let mut a = join_with_queue(&track, &ctx, "a", 1, 4);
        let mut b = join(&track, &ctx, "b", 2);
        let _c = join(&track, &ctx, "c", 3);
        let offer = r#"{"type":"Offer","from":"b","to":"a","sdp":"x"}"#;
        for _ in 0..3 {
            track
                .relay("b", 2, "a", offer.into(), &mut unlimited())
                .unwrap();
        }
        let refused = track.relay("b", 2, "a", offer.into(), &mut unlimited());
        assert_eq!(refused.map_err(|e| e.0), Err(ErrorCode::RateLimited));
        assert_eq!(track.peer_count(), 3);
        // The planner's message still fits, and a stays in the tree.
        track.leave(&ctx, "c", 3, LeaveReason::Leave);
        let o: serde_json::Value = serde_json::from_str(offer).unwrap();
        assert_eq!(a.queued(), [o.clone(), o.clone(), o, left("c")]);
        assert_eq!(b.queued(), NOTHING);
        assert_eq!(track.peer_count(), 2);
        track
            .relay("b", 2, "a", offer.into(), &mut unlimited())
            .unwrap();
    }
}
