//! Liveness stamps: when each peer was last heard from, and removing the
//! silent ones. The server tracks liveness per connection and calls none of
//! this; the stamps cost one field per peer and the queries scan, so no
//! caller pays for bookkeeping it does not use.

use super::{LeaveOutcome, Planner};
use crate::tree::PeerId;
use std::time::Instant;

impl Planner {
    /// Records that the peer was heard from at `now`. Returns false for an
    /// unknown id.
    pub fn heartbeat(&mut self, id: &str, now: Instant) -> bool {
        match self.slot_of(id) {
            Some(i) => {
                let n = self.node_mut(i);
                n.last_heartbeat = n.last_heartbeat.max(now);
                true
            }
            None => false,
        }
    }

    /// Ids of peers not heard from for longer than the timeout, O(n).
    pub fn dead_peers(&self, now: Instant) -> Vec<PeerId> {
        self.nodes
            .iter()
            .flatten()
            .filter(|n| now.saturating_duration_since(n.last_heartbeat) > self.timeout)
            .map(|n| n.id.to_string())
            .collect()
    }

    /// Removes every peer not heard from for longer than the heartbeat
    /// timeout, longest silent first, each as one [`Planner::leave`].
    /// O(n) to find them, plus their leaves.
    pub fn sweep(&mut self, now: Instant) -> Vec<LeaveOutcome> {
        let mut dead: Vec<(Instant, u32)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.as_ref()?.last_heartbeat, i as u32)))
            .filter(|&(stamp, _)| now.saturating_duration_since(stamp) > self.timeout)
            .collect();
        dead.sort_unstable();
        let ids: Vec<PeerId> = dead
            .into_iter()
            .map(|(_, i)| self.node(i).id.to_string())
            .collect();
        ids.iter().filter_map(|id| self.leave(id).ok()).collect()
    }
}
