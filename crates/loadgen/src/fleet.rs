//! State shared between the client tasks and the coordinator: one small slot
//! of atomics per client (about 48 bytes), plus run-wide counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

use meshrelay_protocol::Role;

/// Lifecycle of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not started yet.
    Idle = 0,
    /// TCP connect and WebSocket upgrade under way.
    Connecting = 1,
    /// Register sent, no AssignParent yet.
    Registering = 2,
    /// Registered and connected.
    Registered = 3,
    /// Never registered: connect, upgrade, Error or timeout.
    Failed = 4,
    /// Closed by the load generator (churn or shutdown).
    ClosedByUs = 5,
    /// The server closed the connection or it broke after registration.
    Lost = 6,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Connecting,
            2 => Self::Registering,
            3 => Self::Registered,
            4 => Self::Failed,
            5 => Self::ClosedByUs,
            6 => Self::Lost,
            _ => Self::Idle,
        }
    }
}

/// What the coordinator asks a client to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// Keep going.
    None = 0,
    /// Send a close frame, wait briefly for the server's, drop.
    CloseClean = 1,
    /// Drop the socket without a close frame.
    CloseAbrupt = 2,
}

/// Parent code of a placement: no parent (root or waiting).
pub(crate) const PARENT_NONE: u32 = 0;
/// Parent code of a placement: a peer id that is not one of this fleet's.
pub(crate) const PARENT_FOREIGN: u32 = u32::MAX;

/// Last AssignParent a client was told, packed into one `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// `PARENT_NONE`, `PARENT_FOREIGN`, or client index + 1.
    pub parent: u32,
    /// Depth told (saturated at `u16::MAX`).
    pub depth: u16,
    /// Role told (`None`: one the bench did not understand).
    pub role: Option<Role>,
}

impl Placement {
    const VALID: u64 = 1 << 56;

    fn pack(self) -> u64 {
        Self::VALID
            | (u64::from(role_code(self.role)) << 48)
            | (u64::from(self.depth) << 32)
            | u64::from(self.parent)
    }

    fn unpack(v: u64) -> Option<Self> {
        (v & Self::VALID != 0).then(|| Self {
            parent: v as u32,
            depth: (v >> 32) as u16,
            role: role_of_code((v >> 48) as u8),
        })
    }

    /// Index of the parent client, if the parent is one of this fleet's.
    pub(crate) fn parent_index(self) -> Option<usize> {
        (self.parent != PARENT_NONE && self.parent != PARENT_FOREIGN)
            .then(|| self.parent as usize - 1)
    }
}

/// A role packed in a byte: 0 for none, else its place in [`Role::ALL`] plus one.
fn role_code(role: Option<Role>) -> u8 {
    role.and_then(|r| Role::ALL.iter().position(|&x| x == r))
        .map_or(0, |i| i as u8 + 1)
}

/// The inverse of [`role_code`].
fn role_of_code(code: u8) -> Option<Role> {
    code.checked_sub(1)
        .and_then(|i| Role::ALL.get(usize::from(i)).copied())
}

/// Per-client atomics.
#[derive(Default)]
pub(crate) struct Slot {
    state: AtomicU8,
    command: AtomicU8,
    placement: AtomicU64,
    /// Register -> first AssignParent, µs; 0 = none.
    reg_latency_us: AtomicU32,
    /// TCP connect + upgrade, µs; 0 = none.
    connect_us: AtomicU32,
    /// Receive time (µs since the fleet's epoch) of the last AssignParent.
    last_assign_us: AtomicU64,
    assign_count: AtomicU32,
    peer_left_count: AtomicU32,
}

/// Run-wide counters.
#[derive(Default)]
pub(crate) struct Counters {
    /// Earliest Register send time, µs since epoch (`u64::MAX` = none).
    pub first_register_us: AtomicU64,
    /// Latest first-AssignParent receive time, µs since epoch.
    pub last_registered_us: AtomicU64,
    /// Latest AssignParent or PeerLeft receive time, µs since epoch.
    pub last_event_us: AtomicU64,
    /// Clean closes whose close frame the server answered in time.
    pub clean_close_acked: AtomicU64,
    /// Clean closes the server did not answer in time.
    pub clean_close_unanswered: AtomicU64,
    /// Heartbeats sent.
    pub heartbeats: AtomicU64,
    /// Text frames that were not valid server messages.
    pub malformed: AtomicU64,
}

/// All clients of one run (or one step of the rate search).
pub(crate) struct Fleet {
    prefix: String,
    epoch: Instant,
    slots: Box<[Slot]>,
    /// Run-wide counters.
    pub counters: Counters,
    /// Error codes and failure reasons, with counts (rare, so a mutex).
    errors: Mutex<BTreeMap<String, u64>>,
    /// Bumped whenever some slot's command changes.
    wake: watch::Sender<u64>,
}

impl Fleet {
    /// A fleet of `n` idle clients named `<prefix><index>`.
    pub(crate) fn new(prefix: String, n: usize) -> Self {
        let counters = Counters::default();
        counters.first_register_us.store(u64::MAX, Relaxed);
        Self {
            prefix,
            epoch: Instant::now(),
            slots: (0..n).map(|_| Slot::default()).collect(),
            counters,
            errors: Mutex::new(BTreeMap::new()),
            wake: watch::channel(0).0,
        }
    }

    /// Number of clients.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Peer id of client `i`.
    pub(crate) fn peer_id(&self, i: usize) -> String {
        format!("{}{}", self.prefix, i)
    }

    /// Parent code of a peer id told by the server.
    pub(crate) fn parent_code(&self, peer_id: Option<&str>) -> u32 {
        let Some(id) = peer_id else {
            return PARENT_NONE;
        };
        id.strip_prefix(self.prefix.as_str())
            .filter(|rest| !rest.starts_with('0') || rest.len() == 1)
            .and_then(|rest| rest.parse::<usize>().ok())
            .filter(|&i| i < self.slots.len())
            .map_or(PARENT_FOREIGN, |i| i as u32 + 1)
    }

    /// Microseconds since the fleet was created.
    pub(crate) fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// A receiver woken on every command change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Sets `cmd` for every client in `indices` and wakes the clients.
    pub(crate) fn command(&self, indices: impl IntoIterator<Item = usize>, cmd: Command) {
        for i in indices {
            self.slots[i].command.store(cmd as u8, Relaxed);
        }
        self.wake.send_modify(|v| *v += 1);
    }

    /// Command pending for client `i`.
    pub(crate) fn pending_command(&self, i: usize) -> Command {
        match self.slots[i].command.load(Relaxed) {
            1 => Command::CloseClean,
            2 => Command::CloseAbrupt,
            _ => Command::None,
        }
    }

    /// State of client `i`.
    pub(crate) fn state(&self, i: usize) -> State {
        State::from_u8(self.slots[i].state.load(Relaxed))
    }

    /// Sets the state of client `i`.
    pub(crate) fn set_state(&self, i: usize, s: State) {
        self.slots[i].state.store(s as u8, Relaxed);
    }

    /// Records the connect + upgrade time of client `i`.
    pub(crate) fn record_connect(&self, i: usize, us: u64) {
        self.slots[i].connect_us.store(clamp_u32(us), Relaxed);
    }

    /// Records that client `i` sent Register now.
    pub(crate) fn record_register_sent(&self) {
        self.counters
            .first_register_us
            .fetch_min(self.now_us(), Relaxed);
    }

    /// Records an AssignParent received by client `i`; `first` with its
    /// Register -> AssignParent latency.
    pub(crate) fn record_assign(
        &self,
        i: usize,
        placement: Placement,
        first_latency_us: Option<u64>,
    ) {
        let now = self.now_us();
        let slot = &self.slots[i];
        slot.placement.store(placement.pack(), Relaxed);
        slot.last_assign_us.store(now, Relaxed);
        slot.assign_count.fetch_add(1, Relaxed);
        if let Some(lat) = first_latency_us {
            slot.reg_latency_us.store(clamp_u32(lat).max(1), Relaxed);
            self.counters.last_registered_us.fetch_max(now, Relaxed);
        }
        self.counters.last_event_us.fetch_max(now, Relaxed);
    }

    /// Records a PeerLeft received by client `i`.
    pub(crate) fn record_peer_left(&self, i: usize) {
        self.slots[i].peer_left_count.fetch_add(1, Relaxed);
        self.counters
            .last_event_us
            .fetch_max(self.now_us(), Relaxed);
    }

    /// Counts one error or failure reason.
    pub(crate) fn record_error(&self, what: String) {
        *self
            .errors
            .lock()
            .expect("not poisoned")
            .entry(what)
            .or_insert(0) += 1;
    }

    /// Errors and failure reasons seen so far, with counts.
    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("not poisoned").clone()
    }

    /// Last placement told to client `i`.
    pub(crate) fn placement(&self, i: usize) -> Option<Placement> {
        Placement::unpack(self.slots[i].placement.load(Relaxed))
    }

    /// Register -> AssignParent latency of client `i`, µs.
    pub(crate) fn reg_latency_us(&self, i: usize) -> Option<u64> {
        match self.slots[i].reg_latency_us.load(Relaxed) {
            0 => None,
            v => Some(u64::from(v)),
        }
    }

    /// Connect + upgrade time of client `i`, µs.
    pub(crate) fn connect_us(&self, i: usize) -> Option<u64> {
        match self.slots[i].connect_us.load(Relaxed) {
            0 => None,
            v => Some(u64::from(v)),
        }
    }

    /// Receive time of the last AssignParent of client `i`, µs since epoch.
    pub(crate) fn last_assign_us(&self, i: usize) -> u64 {
        self.slots[i].last_assign_us.load(Relaxed)
    }

    /// AssignParent messages received by client `i`.
    pub(crate) fn assign_count(&self, i: usize) -> u32 {
        self.slots[i].assign_count.load(Relaxed)
    }

    /// PeerLeft messages received by client `i`.
    pub(crate) fn peer_left_count(&self, i: usize) -> u32 {
        self.slots[i].peer_left_count.load(Relaxed)
    }

    /// Number of clients in state `s`.
    pub(crate) fn count_state(&self, s: State) -> usize {
        (0..self.len()).filter(|&i| self.state(i) == s).count()
    }
}

fn clamp_u32(v: u64) -> u32 {
    v.min(u64::from(u32::MAX - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_round_trip() {
        for p in [
            Placement {
                parent: PARENT_NONE,
                depth: 0,
                role: Some(Role::Root),
            },
            Placement {
                parent: 17,
                depth: 12,
                role: Some(Role::Leaf),
            },
            Placement {
                parent: PARENT_FOREIGN,
                depth: u16::MAX,
                role: Some(Role::Relay),
            },
            Placement {
                parent: 3,
                depth: 1,
                role: None,
            },
        ] {
            assert_eq!(Placement::unpack(p.pack()), Some(p));
        }
        assert_eq!(Placement::unpack(0), None);
    }

    #[test]
    fn parent_codes() {
        let f = Fleet::new("lg-".into(), 100);
        assert_eq!(f.peer_id(7), "lg-7");
        assert_eq!(f.parent_code(None), PARENT_NONE);
        assert_eq!(f.parent_code(Some("lg-7")), 8);
        assert_eq!(f.parent_code(Some("lg-0")), 1);
        assert_eq!(f.parent_code(Some("lg-07")), PARENT_FOREIGN);
        assert_eq!(f.parent_code(Some("lg-100")), PARENT_FOREIGN);
        assert_eq!(f.parent_code(Some("other")), PARENT_FOREIGN);
        let p = Placement {
            parent: f.parent_code(Some("lg-7")),
            depth: 1,
            role: Some(Role::Leaf),
        };
        assert_eq!(p.parent_index(), Some(7));
    }

    #[test]
    fn slot_is_small() {
        assert!(std::mem::size_of::<Slot>() <= 48);
    }
}
