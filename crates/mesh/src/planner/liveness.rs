//! Liveness stamps: when each peer was last heard from, and removing the
//! silent ones.

use super::{LeaveOutcome, Planner};
use crate::tree::PeerId;
use std::cmp::Reverse;
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
    /// timeout, each as one [`Planner::leave`]. Costs O(log n) per peer whose
    /// stamp came due, not a scan.
    pub fn sweep(&mut self, now: Instant) -> Vec<LeaveOutcome> {
        let mut dead = Vec::new();
        while let Some(&Reverse((stamp, i, generation))) = self.liveness.peek() {
            if now.saturating_duration_since(stamp) <= self.timeout {
                break;
            }
            self.liveness.pop();
            if self.generations[i as usize] != generation {
                continue;
            }
            let last = self.node(i).last_heartbeat;
            if now.saturating_duration_since(last) <= self.timeout {
                self.liveness.push(Reverse((last, i, generation)));
            } else {
                dead.push(self.node(i).id.to_string());
            }
        }
        dead.iter().filter_map(|id| self.leave(id).ok()).collect()
    }

    pub(super) fn rebuild_liveness(&mut self) {
        let live = self.nodes.iter().enumerate().filter_map(|(i, n)| {
            let n = n.as_ref()?;
            Some(Reverse((n.last_heartbeat, i as u32, self.generations[i])))
        });
        self.liveness = live.collect();
    }
}
