//! One track: its relay tree (with the sessions of its peers) and its
//! origin, each with its own owner. The track renders what the tree owes
//! its peers and queues it, and cuts off the sessions whose queue has no
//! room for it. The tree's lock is never held across an `.await` (all
//! sends are `try_send`).

use crate::origin::Origin;
use crate::outbox::{Class, PushError};
use crate::relay_budget::RelayBudget;
use crate::ring::RingBudget;
use crate::tree::{MeshCtx, Note, Notice, Refusal, SessionHandle, Tree, TreeSnapshot};
use crate::wire;
use axum::extract::ws::Utf8Bytes;
use meshrelay_mesh::{MeshConfig, PlacementPolicy};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub(crate) use crate::tree::LeaveReason;

/// The right to publish on a track, held by at most one publisher at a
/// time so two publishers never interleave their objects; dropping it lets
/// the next one in.
pub struct PublisherClaim {
    track: Arc<Track>,
}

impl Drop for PublisherClaim {
    fn drop(&mut self) {
        self.track.origin.free_publisher_slot();
    }
}

/// One live track.
pub struct Track {
    /// Its name.
    pub name: Arc<str>,
    /// Its origin: ring, next id, epoch, counters.
    pub origin: Origin,
    tree: Mutex<Tree>,
}

fn lock(m: &Mutex<Tree>) -> MutexGuard<'_, Tree> {
    // The tree stays consistent across a panic in a send (there is none by
    // design), so keep serving rather than poison every session.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Track {
    /// An empty track, its tree shaped by `mesh` and placed by `placement`.
    pub fn new(
        name: Arc<str>,
        mesh: MeshConfig,
        placement: PlacementPolicy,
        ring_objects: usize,
        ring_bytes: usize,
        ring_budget: Arc<RingBudget>,
    ) -> Self {
        Self {
            name,
            origin: Origin::new(ring_objects, ring_bytes, ring_budget),
            tree: Mutex::new(Tree::new(mesh, placement)),
        }
    }

    /// The same track under a chosen epoch.
    pub fn with_epoch(mut self, epoch: Arc<str>) -> Self {
        self.origin.epoch = epoch;
        self
    }

    /// The text of one notice, stamped with the origin's next id now.
    fn render(&self, ctx: &MeshCtx, notice: &Notice) -> Utf8Bytes {
        match notice {
            Notice::PeerLeft(gone) => wire::peer_left(gone),
            Notice::Assign(a) => wire::assign_parent(
                a,
                &ctx.ice_servers,
                self.origin.next_object_id(),
                &self.origin.epoch,
            ),
        }
    }

    /// Queues `notes` in order; a queue too full even for those dooms its
    /// session, whose leave is planned and owes notes in turn, hence the
    /// work list. A closed queue is skipped: its session task is ending and
    /// plans its own leave.
    ///
    /// `leave_planned` is when the leave these notes come from was planned,
    /// if they come from one: each `AssignParent` queued is then timed from
    /// it (`meshrelay_replan_duration_seconds`).
    fn deliver(
        &self,
        tree: &mut Tree,
        ctx: &MeshCtx,
        notes: Vec<Note>,
        leave_planned: Option<Instant>,
    ) {
        let mut doomed = Vec::new();
        self.queue(tree, ctx, notes, leave_planned, &mut doomed);
        while let Some(id) = doomed.pop() {
            let planned = Instant::now();
            let notes = tree.cut_off(ctx, &id);
            self.queue(tree, ctx, notes, Some(planned), &mut doomed);
        }
    }

    fn queue(
        &self,
        tree: &Tree,
        ctx: &MeshCtx,
        notes: Vec<Note>,
        leave_planned: Option<Instant>,
        doomed: &mut Vec<String>,
    ) {
        for note in notes {
            let Some(tx) = tree.outbox(&note.to) else {
                continue;
            };
            match tx.push(self.render(ctx, &note.notice), Class::Control) {
                Ok(()) => {
                    if let (Some(planned), Notice::Assign(_)) = (leave_planned, &note.notice) {
                        metrics::histogram!(crate::metrics::REPLAN_DURATION)
                            .record(planned.elapsed().as_secs_f64());
                    }
                }
                Err(PushError::Full) => doomed.push(note.to),
                Err(PushError::Closed) => {}
            }
        }
    }

    /// Places a new peer and records its session (see [`Tree::register`]).
    /// Returns the `AssignParent` text to send it, which must go out before
    /// anything queued on the handle.
    pub fn register(
        &self,
        ctx: &MeshCtx,
        peer_id: &str,
        capacity: Option<u32>,
        handle: SessionHandle,
    ) -> Result<Utf8Bytes, Refusal> {
        let mut tree = lock(&self.tree);
        let (a, notes) = tree.register(ctx, peer_id, capacity, handle, Instant::now())?;
        self.deliver(&mut tree, ctx, notes, None);
        Ok(self.render(ctx, &Notice::Assign(a)))
    }

    /// Relays a frame from `from`, held by `registration`, to its tree
    /// neighbour `to`, charged to the sender's `budget` (see [`Tree::relay`]).
    pub fn relay(
        &self,
        from: &str,
        registration: u64,
        to: &str,
        text: Utf8Bytes,
        budget: &mut RelayBudget,
    ) -> Result<(), Refusal> {
        lock(&self.tree).relay(from, registration, to, text, budget, Instant::now())
    }

    /// `parent`, held by `registration`, stopped feeding its child `child`:
    /// moves the child and tells every peer that moved, then applies the
    /// repeated-drop rule (see [`Tree::drop_child`], [`Tree::record_drop`]).
    pub fn drop_child(
        &self,
        ctx: &MeshCtx,
        parent: &str,
        registration: u64,
        child: &str,
    ) -> Result<(), Refusal> {
        let mut tree = lock(&self.tree);
        let moved = tree.drop_child(parent, registration, child)?;
        self.deliver(&mut tree, ctx, moved, None);
        let lowered = tree.record_drop(parent, child, Instant::now());
        self.deliver(&mut tree, ctx, lowered, None);
        Ok(())
    }

    /// Replaces the forwarded-object count of `peer_id`, if `registration`
    /// still holds it.
    pub fn forward_report(&self, peer_id: &str, registration: u64, forwarded: u64) {
        lock(&self.tree).forward_report(peer_id, registration, forwarded);
    }

    /// Plans the leave of `peer_id` held by `registration` and tells the
    /// peers it concerns; a no-op if that registration no longer holds the
    /// id, so each registration is planned out exactly once.
    pub fn leave(&self, ctx: &MeshCtx, peer_id: &str, registration: u64, reason: LeaveReason) {
        // Timed from before the lock: waiting for it is part of a re-plan.
        let planned = Instant::now();
        let mut tree = lock(&self.tree);
        let notes = tree.leave(ctx, peer_id, registration, reason);
        self.deliver(&mut tree, ctx, notes, Some(planned));
    }

    /// Gives waiting peers a place if one freed up, and tells them.
    pub fn place_waiting(&self, ctx: &MeshCtx) {
        let mut tree = lock(&self.tree);
        let notes = tree.place_waiting();
        self.deliver(&mut tree, ctx, notes, None);
    }

    /// Counts and a copy of the tree; `with_peers` adds every peer (O(n)).
    pub fn tree_snapshot(&self, with_peers: bool) -> TreeSnapshot {
        lock(&self.tree).snapshot(with_peers)
    }

    /// Peers in the tree now.
    pub fn peer_count(&self) -> usize {
        lock(&self.tree).peer_count()
    }

    /// Claims the track's only publisher slot; `None` while another
    /// publisher holds it.
    pub fn claim_publisher(self: &Arc<Self>) -> Option<PublisherClaim> {
        self.origin.take_publisher_slot().then(|| PublisherClaim {
            track: Arc::clone(self),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::ctx;
    use crate::wire::role;
    use futures_util::FutureExt;
    use meshrelay_protocol::{ErrorCode, Features};
    use std::sync::atomic::Ordering;
    use tokio::sync::oneshot;

    fn unlimited() -> RelayBudget {
        RelayBudget::new(1e15, 1e15, 4)
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
        let features = Features {
            reads_origin: true,
            position_updates: true,
        };
        let handle = SessionHandle::new(registration, tx, kill, features);
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
            PlacementPolicy::Shallowest,
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
        assert_eq!(refused.map_err(|e| e.code), Err(ErrorCode::SpoofedFrom));
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
            PlacementPolicy::Shallowest,
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
            PlacementPolicy::Shallowest,
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
        assert_eq!(refused.map_err(|e| e.code), Err(ErrorCode::RateLimited));
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
