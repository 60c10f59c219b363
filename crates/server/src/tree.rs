//! One track's relay tree with the sessions of its peers: the planner, each
//! peer's session handle, the drop history, and what every change owes
//! whom. Time is passed in, and what to tell whom comes back as [`Note`]s
//! for the track to render and queue (see [`crate::track`]); only relayed
//! frames, whose sender needs the recipient queue's answer, are queued here.

use crate::drop_history::DropHistory;
use crate::outbox::{Class, Outbox, PushError};
use crate::relay_budget::RelayBudget;
use crate::wire::IceServers;
use axum::extract::ws::Utf8Bytes;
use meshrelay_mesh::{
    MeshConfig, MeshError, PeerAssignment, PeerId, PeerSummary, PlacementPolicy, Planner, Replan,
};
use meshrelay_protocol::{ErrorCode, Features};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::oneshot;

pub(crate) use meshrelay_protocol::Refusal;

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

/// The tree's handle on one registration of a `/signal` session.
#[derive(Debug)]
pub struct SessionHandle {
    registration: u64,
    tx: Outbox,
    kill: Option<oneshot::Sender<ErrorCode>>,
    features: Features,
    /// The parent named in the last `AssignParent` owed to it: a client
    /// without [`Features::position_updates`] is told only when it changes.
    told_parent: Option<PeerId>,
}

impl SessionHandle {
    /// A handle for `registration` (unique per registration, so a session
    /// that was cut off, or left and registered again, can never act for a
    /// later holder of the same id), queueing towards the client on `tx`
    /// and told on `kill` with the error that cut it off.
    pub fn new(
        registration: u64,
        tx: Outbox,
        kill: oneshot::Sender<ErrorCode>,
        features: Features,
    ) -> Self {
        Self {
            registration,
            tx,
            kill: Some(kill),
            features,
            told_parent: None,
        }
    }
}

/// Why a peer left, as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What the tree owes one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// `PeerLeft` naming this peer: no longer its neighbour.
    PeerLeft(PeerId),
    /// `AssignParent` with its new place.
    Assign(PeerAssignment),
}

/// A notice for one registered peer, in the order it must be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// The peer to tell.
    pub to: PeerId,
    /// What to tell it.
    pub notice: Notice,
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

/// The tree of one track and the sessions in it; every peer in the planner
/// has exactly one session handle, and every handle one planner peer.
pub(crate) struct Tree {
    planner: Planner,
    sessions: HashMap<String, SessionHandle>,
    drops: DropHistory,
}

impl Tree {
    /// An empty tree with these limits, placing peers by `placement`.
    pub(crate) fn new(mesh: MeshConfig, placement: PlacementPolicy) -> Self {
        Self {
            planner: Planner::with_policy(mesh, placement),
            sessions: HashMap::new(),
            drops: DropHistory::default(),
        }
    }

    /// Whether `peer_id` is in the tree for this very registration.
    fn holds(&self, peer_id: &str, registration: u64) -> bool {
        self.sessions
            .get(peer_id)
            .is_some_and(|h| h.registration == registration)
    }

    fn require(&self, peer_id: &str, registration: u64) -> Result<(), Refusal> {
        if self.holds(peer_id, registration) {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::SpoofedFrom,
            format!("this session no longer holds peer id {peer_id}"),
        ))
    }

    /// Places a new peer at `now` and records its session (a relay-capable
    /// one may take a root slot from a leaf, which is told its new place;
    /// peers waiting for a place are placed in the room it brings). Returns
    /// the newcomer's place, whose `AssignParent` must be sent before
    /// anything queued on its handle, and what the others are owed.
    pub(crate) fn register(
        &mut self,
        ctx: &MeshCtx,
        peer_id: &str,
        capacity: Option<u32>,
        mut handle: SessionHandle,
        now: Instant,
    ) -> Result<(PeerAssignment, Vec<Note>), Refusal> {
        if self.sessions.contains_key(peer_id) {
            return Err(Refusal::new(
                ErrorCode::DuplicatePeerId,
                format!("peer id {peer_id} is already registered on this track"),
            ));
        }
        if ctx
            .max_peers_per_track
            .is_some_and(|max| self.planner.peer_count() >= max)
        {
            return Err(Refusal::new(
                ErrorCode::MeshFull,
                "this track has reached its peer limit",
            ));
        }
        if !ctx.reserve_peer() {
            return Err(Refusal::new(
                ErrorCode::MeshFull,
                "the server has reached its peer limit",
            ));
        }
        let reads_origin = handle.features.reads_origin;
        let (a, displaced) = match self
            .planner
            .join_relaying(peer_id, capacity, reads_origin, now)
        {
            Ok(joined) => joined,
            Err(e) => {
                ctx.release_peer();
                return Err(match e {
                    MeshError::DuplicatePeer(_) => Refusal::new(
                        ErrorCode::DuplicatePeerId,
                        format!("peer id {peer_id} is already in the tree"),
                    ),
                    other => Refusal::new(ErrorCode::MeshFull, other.to_string()),
                });
            }
        };
        handle.told_parent = a.parent.clone();
        self.sessions.insert(peer_id.to_owned(), handle);
        metrics::counter!(crate::metrics::JOINS).increment(1);
        // A leaf that held a root slot now hangs under the newcomer.
        let mut moved = Replan {
            changed: displaced.into_iter().collect(),
            unlinked: Vec::new(),
        };
        if self.planner.waiting_count() > 0 {
            let placed = self.planner.place_waiting();
            moved.changed.extend(placed.changed);
            moved.unlinked = placed.unlinked;
        }
        Ok((a, self.notes_for(&moved)))
    }

    /// Queues a frame from `from`, held by `registration`, for its tree
    /// neighbour `to`, charged at `now` to the sender's `budget` for `to`.
    /// A recipient whose queue has no room for relayed frames, or that the
    /// sender has sent its budget's worth already, is left alone: the frame
    /// is dropped and the sender refused with `rate_limited`, so no client
    /// can get another cut off.
    pub(crate) fn relay(
        &self,
        from: &str,
        registration: u64,
        to: &str,
        text: Utf8Bytes,
        budget: &mut RelayBudget,
        now: Instant,
    ) -> Result<(), Refusal> {
        // The session may have been cut off, and the id taken by another,
        // since it read this frame.
        self.require(from, registration)?;
        if !self.planner.are_neighbours(from, to) {
            return Err(Refusal::new(
                ErrorCode::NotNeighbour,
                format!("{to} is not this peer's parent or child"),
            ));
        }
        let Some(h) = self.sessions.get(to) else {
            return Ok(());
        };
        let bytes = text.len();
        if !budget.allow(to, bytes, now) {
            return Err(Refusal::new(
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
            Err(PushError::Full) => Err(Refusal::new(
                ErrorCode::RateLimited,
                format!("{to} is not reading fast enough; this message was dropped"),
            )),
            // The recipient's session is ending; its leave tells the sender.
            Err(PushError::Closed) => Ok(()),
        }
    }

    /// `parent`, held by `registration`, stopped feeding its child `child`:
    /// moves the child, with its subtree, to the best other place, and
    /// returns what every peer that moved is owed. A child with nowhere else
    /// to go stays. Follow it with [`Tree::record_drop`] once these notes
    /// are queued.
    pub(crate) fn drop_child(
        &mut self,
        parent: &str,
        registration: u64,
        child: &str,
    ) -> Result<Vec<Note>, Refusal> {
        self.require(parent, registration)?;
        let is_child = self
            .planner
            .assignment(child)
            .is_some_and(|a| a.parent.as_deref() == Some(parent));
        if !is_child {
            return Err(Refusal::new(
                ErrorCode::NotNeighbour,
                format!("{child} is not this peer's child"),
            ));
        }
        Ok(match self.planner.reassign(child) {
            Ok(replan) => self.notes_for(&replan),
            Err(_) => Vec::new(),
        })
    }

    /// Remembers that `parent` dropped `child` at `now`. When it dropped
    /// another child within [`crate::drop_history::REPEAT_DROP_WINDOW`], the
    /// parent is the one that cannot keep up: its capacity falls to the
    /// children it has left, so the slots they freed are not refilled;
    /// returns its new place when that makes it a leaf.
    pub(crate) fn record_drop(&mut self, parent: &str, child: &str, now: Instant) -> Vec<Note> {
        // A parent cut off meanwhile (its queue overflowed with this very
        // drop's notes) has left: a later holder of its id must not
        // inherit the drop.
        if !self.sessions.contains_key(parent) {
            return Vec::new();
        }
        if !self.drops.record(parent, child, now) {
            return Vec::new();
        }
        metrics::counter!(crate::metrics::REPEATED_DROPS).increment(1);
        match self.planner.lower_capacity(parent) {
            Ok(Some(role_changed)) => self.notes_for(&Replan {
                changed: vec![role_changed],
                unlinked: Vec::new(),
            }),
            _ => Vec::new(),
        }
    }

    /// Replaces the forwarded-object count of `peer_id`, if `registration`
    /// still holds it.
    pub(crate) fn forward_report(&mut self, peer_id: &str, registration: u64, forwarded: u64) {
        if self.holds(peer_id, registration) {
            self.planner.record_forward_report(peer_id, forwarded);
        }
    }

    /// Plans the leave of `peer_id` held by `registration` and returns what
    /// its neighbours and the peers that moved are owed; nothing if that
    /// registration no longer holds the id (it was already cut off), so
    /// each registration is planned out exactly once.
    pub(crate) fn leave(
        &mut self,
        ctx: &MeshCtx,
        peer_id: &str,
        registration: u64,
        reason: LeaveReason,
    ) -> Vec<Note> {
        if !self.holds(peer_id, registration) {
            return Vec::new();
        }
        self.sessions.remove(peer_id);
        self.plan_leave(ctx, peer_id, reason)
    }

    /// Cuts off the session of `peer_id`, whose queue has no room even for
    /// the tree's own messages: tells it to close with `slow_consumer` and
    /// plans its leave. Nothing for a peer already gone.
    pub(crate) fn cut_off(&mut self, ctx: &MeshCtx, peer_id: &str) -> Vec<Note> {
        let Some(mut handle) = self.sessions.remove(peer_id) else {
            return Vec::new();
        };
        if let Some(kill) = handle.kill.take() {
            let _ = kill.send(ErrorCode::SlowConsumer);
        }
        self.plan_leave(ctx, peer_id, LeaveReason::SlowConsumer)
    }

    /// Gives waiting peers a place if one freed up; returns what they are owed.
    pub(crate) fn place_waiting(&mut self) -> Vec<Note> {
        let replan = self.planner.place_waiting();
        self.notes_for(&replan)
    }

    /// The queue towards `peer_id`'s client, while it is registered.
    pub(crate) fn outbox(&self, peer_id: &str) -> Option<&Outbox> {
        self.sessions.get(peer_id).map(|h| &h.tx)
    }

    fn plan_leave(&mut self, ctx: &MeshCtx, peer_id: &str, reason: LeaveReason) -> Vec<Note> {
        let Ok(outcome) = self.planner.leave(peer_id) else {
            return Vec::new();
        };
        self.drops.forget(peer_id);
        ctx.release_peer();
        metrics::counter!(crate::metrics::LEAVES, "reason" => reason.label()).increment(1);
        let mut notes: Vec<Note> = outcome
            .neighbours
            .iter()
            .map(|n| Note {
                to: n.clone(),
                notice: Notice::PeerLeft(peer_id.to_owned()),
            })
            .collect();
        self.push_replan(&outcome.unlinked, &outcome.changed, &mut notes);
        notes
    }

    fn notes_for(&mut self, replan: &Replan) -> Vec<Note> {
        let mut notes = Vec::new();
        if !replan.changed.is_empty() || !replan.unlinked.is_empty() {
            self.push_replan(&replan.unlinked, &replan.changed, &mut notes);
        }
        notes
    }

    /// What a re-plan owes its peers, in the order they must act on it:
    /// first a `PeerLeft` to both ends of every link it ended (each end
    /// names the other, which is alive: "no longer your neighbour"; an LVQR
    /// client closes a link only on a `PeerLeft` naming its child, so
    /// without it the old link would stay open beside the new one and
    /// objects could circle), then the new `AssignParent`s. A client that
    /// did not state [`Features::position_updates`] is sent one only when
    /// its parent changed, as it reconnects on every `AssignParent`.
    fn push_replan(
        &mut self,
        unlinked: &[(PeerId, PeerId)],
        changed: &[PeerAssignment],
        notes: &mut Vec<Note>,
    ) {
        for (parent, child) in unlinked {
            for (to, gone) in [(parent, child), (child, parent)] {
                if self.sessions.contains_key(to) {
                    notes.push(Note {
                        to: to.clone(),
                        notice: Notice::PeerLeft(gone.clone()),
                    });
                }
            }
        }
        for a in changed {
            let Some(h) = self.sessions.get_mut(&a.peer_id) else {
                continue;
            };
            if !h.features.position_updates && h.told_parent == a.parent {
                continue;
            }
            h.told_parent = a.parent.clone();
            notes.push(Note {
                to: a.peer_id.clone(),
                notice: Notice::Assign(a.clone()),
            });
        }
        metrics::counter!(crate::metrics::REASSIGNMENTS).increment(changed.len() as u64);
    }

    /// Counts and a copy of the tree; `with_peers` adds every peer (O(n)).
    pub(crate) fn snapshot(&self, with_peers: bool) -> TreeSnapshot {
        TreeSnapshot {
            peer_count: self.planner.peer_count(),
            root_count: self.planner.root_count(),
            offload_percentage: self.planner.offload_percentage(),
            // Two strings a peer: this runs under the track's lock.
            peers: if with_peers {
                self.planner.summaries()
            } else {
                Vec::new()
            },
        }
    }

    /// Peers in the tree now.
    pub(crate) fn peer_count(&self) -> usize {
        self.planner.peer_count()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: Duration = Duration::from_secs(1);

    /// Default limits but `root_peer_count`, no ICE servers, no peer caps:
    /// the context of the tree's and the track's unit tests.
    pub(crate) fn ctx(root_peer_count: usize) -> MeshCtx {
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

    /// One root and one child a peer: every tree is a chain.
    fn chain_ctx() -> MeshCtx {
        let mut ctx = ctx(1);
        ctx.mesh.max_children = 1;
        ctx
    }

    const SDK: Features = Features {
        reads_origin: true,
        position_updates: true,
    };

    /// What an LVQR client states: nothing.
    const LVQR: Features = Features {
        reads_origin: false,
        position_updates: false,
    };

    /// Joins `ids` in order, each as registration `i + 1`; returns the tree
    /// and the queues' other ends, which keep the sessions open.
    fn tree(ctx: &MeshCtx, ids: &[&str], t0: Instant) -> (Tree, Vec<crate::outbox::Inbox>) {
        tree_of(ctx, ids, SDK, t0)
    }

    fn tree_of(
        ctx: &MeshCtx,
        ids: &[&str],
        features: Features,
        t0: Instant,
    ) -> (Tree, Vec<crate::outbox::Inbox>) {
        let mut tree = Tree::new(ctx.mesh.clone(), PlacementPolicy::Shallowest);
        let mut inboxes = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let (tx, rx) = crate::outbox::channel(8, 1 << 20);
            let handle = SessionHandle::new(i as u64 + 1, tx, oneshot::channel().0, features);
            tree.register(ctx, id, None, handle, t0)
                .expect("registered");
            inboxes.push(rx);
        }
        (tree, inboxes)
    }

    fn capacity(tree: &Tree, id: &str) -> u32 {
        let snap = tree.snapshot(true);
        snap.peers
            .iter()
            .find(|p| p.id == id)
            .unwrap()
            .effective_capacity
    }

    fn parent(tree: &Tree, id: &str) -> Option<String> {
        tree.planner.assignment(id).unwrap().parent
    }

    /// `a` drops its child `child` at `now`, as a session does.
    fn drop_child(tree: &mut Tree, child: &str, now: Instant) -> Vec<Note> {
        let mut notes = tree.drop_child("a", 1, child).expect("a's child");
        notes.extend(tree.record_drop("a", child, now));
        notes
    }

    /// Root a with children b, c, d; e under b.
    const FAMILY: [&str; 5] = ["a", "b", "c", "d", "e"];

    #[test]
    fn a_second_different_child_dropped_within_the_window_lowers_capacity() {
        let (ctx, t0) = (ctx(1), Instant::now());
        let (mut tree, _inboxes) = tree(&ctx, &FAMILY, t0);
        assert_eq!(parent(&tree, "e").as_deref(), Some("b"));
        drop_child(&mut tree, "b", t0);
        assert_ne!(parent(&tree, "b").as_deref(), Some("a"), "b moved");
        assert_eq!(capacity(&tree, "a"), 3, "a single drop changes nothing");
        drop_child(&mut tree, "c", t0 + 9 * SEC);
        assert_eq!(capacity(&tree, "a"), 1, "only d is left");
    }

    #[test]
    fn a_drop_after_the_window_does_not_lower_capacity() {
        let (ctx, t0) = (ctx(1), Instant::now());
        let (mut tree, _inboxes) = tree(&ctx, &FAMILY, t0);
        drop_child(&mut tree, "b", t0);
        drop_child(&mut tree, "c", t0 + 10 * SEC);
        assert_eq!(capacity(&tree, "a"), 3);
    }

    #[test]
    fn a_drop_by_a_parent_cut_off_meanwhile_is_not_remembered() {
        let (ctx, t0) = (ctx(1), Instant::now());
        let (mut tree, _inboxes) = tree(&ctx, &FAMILY, t0);
        tree.drop_child("a", 1, "b").expect("a's child");
        tree.cut_off(&ctx, "a");
        assert_eq!(tree.record_drop("a", "b", t0), []);
        assert!(
            !tree.drops.record("a", "c", t0 + SEC),
            "a later holder of the id would inherit the gone parent's drop"
        );
    }

    #[test]
    fn the_same_child_dropped_twice_does_not_lower_capacity() {
        let (ctx, t0) = (ctx(1), Instant::now());
        // b has nowhere else to go, so it stays a's child.
        let (mut tree, _inboxes) = tree(&ctx, &["a", "b"], t0);
        assert_eq!(drop_child(&mut tree, "b", t0), []);
        assert_eq!(drop_child(&mut tree, "b", t0 + SEC), []);
        assert_eq!(parent(&tree, "b").as_deref(), Some("a"));
        assert_eq!(capacity(&tree, "a"), 3);
    }

    #[test]
    fn a_leave_owes_peer_left_to_its_neighbours_before_the_new_places() {
        let (ctx, t0) = (ctx(1), Instant::now());
        let (mut tree, _inboxes) = tree(&ctx, &["a", "b"], t0);
        let notes = tree.leave(&ctx, "a", 1, LeaveReason::Leave);
        let root = PeerAssignment {
            peer_id: "b".into(),
            role: meshrelay_mesh::PeerRole::Root,
            parent: None,
            depth: 0,
        };
        let to_b = |notice| Note {
            to: "b".into(),
            notice,
        };
        assert_eq!(
            notes,
            [
                to_b(Notice::PeerLeft("a".into())),
                to_b(Notice::Assign(root))
            ]
        );
        assert_eq!(tree.leave(&ctx, "a", 1, LeaveReason::Leave), []);
        assert_eq!(ctx.total_peers.load(Ordering::Relaxed), 1);
    }

    /// The notices for `to`, in order.
    fn told(notes: &[Note], to: &str) -> Vec<Notice> {
        notes
            .iter()
            .filter(|n| n.to == to)
            .map(|n| n.notice.clone())
            .collect()
    }

    fn assigned(
        peer: &str,
        role: meshrelay_mesh::PeerRole,
        parent: Option<&str>,
        depth: u32,
    ) -> Notice {
        Notice::Assign(PeerAssignment {
            peer_id: peer.into(),
            role,
            parent: parent.map(str::to_owned),
            depth,
        })
    }

    #[test]
    fn both_ends_of_an_ended_link_hear_peer_left_before_their_new_places() {
        use meshrelay_mesh::PeerRole::Relay;
        let (ctx, t0) = (chain_ctx(), Instant::now());
        // a <- b <- c <- d. When b leaves, the childless d stands in under a
        // and hosts c, so the link c -> d ends with both alive.
        let (mut tree, _inboxes) = tree(&ctx, &["a", "b", "c", "d"], t0);
        let notes = tree.leave(&ctx, "b", 2, LeaveReason::Disconnect);
        let left = |p: &str| Notice::PeerLeft(p.into());
        assert_eq!(told(&notes, "a"), [left("b")]);
        assert_eq!(
            told(&notes, "c"),
            [left("b"), left("d"), assigned("c", Relay, Some("d"), 2)]
        );
        assert_eq!(
            told(&notes, "d"),
            [left("c"), assigned("d", Relay, Some("a"), 1)]
        );
        assert_eq!(told(&notes, "b"), []);
    }

    #[test]
    fn a_client_without_updates_is_told_only_when_its_parent_changes() {
        use meshrelay_mesh::PeerRole::Relay;
        let (ctx, t0) = (chain_ctx(), Instant::now());
        // a <- b <- c. When a leaves nobody may take the root slot (none
        // reads the origin on its own): b waits with c under it, and c,
        // whose depth changed but not its parent, hears nothing.
        let (mut tree, _inboxes) = tree_of(&ctx, &["a", "b", "c"], LVQR, t0);
        let notes = tree.leave(&ctx, "a", 1, LeaveReason::Disconnect);
        assert_eq!(
            told(&notes, "b"),
            [Notice::PeerLeft("a".into()), assigned("b", Relay, None, 0)]
        );
        assert_eq!(told(&notes, "c"), []);
    }
}
