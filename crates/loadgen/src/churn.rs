//! Churn phase: disconnect a fraction of the clients (half with a close
//! frame, half abruptly) and time until every orphan was told its new parent
//! and every neighbour got its PeerLeft.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::time::sleep;

use crate::fleet::{Command, Fleet, Placement, State};
use crate::stats::Summary;

/// How often the coordinator looks at the clients.
const POLL: Duration = Duration::from_millis(10);
/// Quiet time that ends the phase once everything expected has arrived.
const SHORT_QUIET: Duration = Duration::from_millis(250);

/// Settings of the churn phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChurnPlan {
    /// Fraction of the registered clients to disconnect.
    pub fraction: f64,
    /// Seed of the choice.
    pub seed: u64,
    /// Longest wait for the orphans.
    pub settle_timeout: Duration,
    /// No AssignParent/PeerLeft for this long ends the wait once every
    /// orphan was re-told (even if some expected PeerLeft never came).
    pub quiet: Duration,
}

/// Figures of the churn phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Churn {
    /// Registered clients when the churn started.
    pub registered_before: usize,
    /// Clients closed with a close frame.
    pub clean: usize,
    /// Clients dropped without a close frame.
    pub abrupt: usize,
    /// Remaining clients whose parent was churned.
    pub orphans: usize,
    /// Orphans told a new parent that is not churned (or none).
    pub orphans_retold: usize,
    /// Time from churn start to each orphan's last AssignParent.
    pub retell: Summary,
    /// Remaining clients owed at least one PeerLeft (pre-churn neighbours).
    pub peer_left_expected_clients: usize,
    /// PeerLeft messages owed in total, from the pre-churn tree.
    pub peer_left_expected: u64,
    /// Of those clients, how many got at least as many as owed.
    pub peer_left_satisfied_clients: usize,
    /// Owed clients short of PeerLeft that were orphans (child of a churned
    /// peer); the others were only owed as the parent of a churned peer.
    pub peer_left_short_orphans: usize,
    /// PeerLeft messages received by remaining clients after churn start.
    pub peer_left_received: u64,
    /// AssignParent messages received by remaining clients after churn start.
    pub assigns_received: u64,
    /// Remaining clients that got at least one AssignParent after churn start.
    pub clients_reassigned: usize,
    /// Churn start to the last AssignParent or PeerLeft received, µs.
    pub last_message_us: Option<u64>,
    /// Whether the settle timeout ended the wait.
    pub timed_out: bool,
    /// Remaining clients the server disconnected during the phase.
    pub lost: usize,
}

/// SplitMix64, enough to pick clients reproducibly.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Picks `round(fraction * len)` distinct elements of `pool` (partial
/// Fisher-Yates, reproducible for a seed).
pub(crate) fn pick(mut pool: Vec<usize>, fraction: f64, seed: u64) -> Vec<usize> {
    let k = ((pool.len() as f64) * fraction).round() as usize;
    let k = k.min(pool.len());
    let mut rng = SplitMix(seed);
    for i in 0..k {
        let j = i + (rng.next() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

/// Runs the churn phase.
pub(crate) async fn churn(fleet: &Fleet, plan: ChurnPlan) -> Churn {
    let n = fleet.len();
    let registered: Vec<usize> = (0..n)
        .filter(|&i| fleet.state(i) == State::Registered)
        .collect();
    let registered_before = registered.len();
    let chosen = pick(registered, plan.fraction, plan.seed);
    let mut churned = vec![false; n];
    for &c in &chosen {
        churned[c] = true;
    }
    // Snapshot of the tree before churn.
    let snapshot: Vec<Option<Placement>> = (0..n).map(|i| fleet.placement(i)).collect();
    let assigns_before: Vec<u32> = (0..n).map(|i| fleet.assign_count(i)).collect();
    let left_before: Vec<u32> = (0..n).map(|i| fleet.peer_left_count(i)).collect();
    let remaining: Vec<usize> = (0..n)
        .filter(|&i| !churned[i] && fleet.state(i) == State::Registered)
        .collect();

    let parent_of = |i: usize| snapshot[i].and_then(|p| p.parent_index());
    let orphans: Vec<usize> = remaining
        .iter()
        .copied()
        .filter(|&i| parent_of(i).is_some_and(|p| churned[p]))
        .collect();
    let mut owed = vec![0u32; n];
    for &i in &orphans {
        owed[i] += 1; // PeerLeft of its parent
    }
    for &c in &chosen {
        if let Some(p) = parent_of(c) {
            if !churned[p] && fleet.state(p) == State::Registered {
                owed[p] += 1; // PeerLeft of its child
            }
        }
    }
    let owed_clients: Vec<usize> = remaining.iter().copied().filter(|&i| owed[i] > 0).collect();

    // Alternate: even positions close cleanly, odd ones abruptly.
    let clean: Vec<usize> = chosen.iter().copied().step_by(2).collect();
    let abrupt: Vec<usize> = chosen.iter().copied().skip(1).step_by(2).collect();

    let t0 = fleet.now_us();
    let started = Instant::now();
    fleet.command(abrupt.iter().copied(), Command::CloseAbrupt);
    fleet.command(clean.iter().copied(), Command::CloseClean);

    let retold = |i: usize| {
        fleet.last_assign_us(i) >= t0
            && fleet
                .placement(i)
                .is_some_and(|p| p.parent_index().is_none_or(|q| !churned[q]))
    };
    let mut timed_out = false;
    loop {
        let all_orphans = orphans
            .iter()
            .all(|&i| retold(i) || fleet.state(i) != State::Registered);
        let all_left = owed_clients
            .iter()
            .all(|&i| fleet.peer_left_count(i) - left_before[i] >= owed[i]);
        let last = fleet.counters.last_event_us.load(Relaxed).max(t0);
        let quiet = Duration::from_micros(fleet.now_us().saturating_sub(last));
        if all_orphans && quiet >= if all_left { SHORT_QUIET } else { plan.quiet } {
            break;
        }
        if started.elapsed() >= plan.settle_timeout {
            timed_out = true;
            break;
        }
        sleep(POLL).await;
    }

    let mut retell: Vec<u64> = orphans
        .iter()
        .filter(|&&i| retold(i))
        .map(|&i| fleet.last_assign_us(i) - t0)
        .collect();
    let last = fleet.counters.last_event_us.load(Relaxed);
    Churn {
        registered_before,
        clean: clean.len(),
        abrupt: abrupt.len(),
        orphans: orphans.len(),
        orphans_retold: retell.len(),
        retell: Summary::from_samples(&mut retell),
        peer_left_expected_clients: owed_clients.len(),
        peer_left_expected: owed_clients.iter().map(|&i| u64::from(owed[i])).sum(),
        peer_left_satisfied_clients: owed_clients
            .iter()
            .filter(|&&i| fleet.peer_left_count(i) - left_before[i] >= owed[i])
            .count(),
        peer_left_short_orphans: owed_clients
            .iter()
            .filter(|&&i| fleet.peer_left_count(i) - left_before[i] < owed[i])
            .filter(|&&i| parent_of(i).is_some_and(|p| churned[p]))
            .count(),
        peer_left_received: remaining
            .iter()
            .map(|&i| u64::from(fleet.peer_left_count(i) - left_before[i]))
            .sum(),
        assigns_received: remaining
            .iter()
            .map(|&i| u64::from(fleet.assign_count(i) - assigns_before[i]))
            .sum(),
        clients_reassigned: remaining
            .iter()
            .filter(|&&i| fleet.assign_count(i) > assigns_before[i])
            .count(),
        last_message_us: (last > t0).then(|| last - t0),
        timed_out,
        lost: remaining
            .iter()
            .filter(|&&i| fleet.state(i) == State::Lost)
            .count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_is_distinct_sized_and_reproducible() {
        let pool: Vec<usize> = (0..1000).collect();
        let a = pick(pool.clone(), 0.1, 7);
        assert_eq!(a.len(), 100);
        let mut s = a.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 100);
        assert_eq!(a, pick(pool.clone(), 0.1, 7));
        assert_ne!(a, pick(pool.clone(), 0.1, 8));
        assert!(pick(pool.clone(), 0.0, 1).is_empty());
        assert_eq!(pick(pool, 1.0, 1).len(), 1000);
        assert!(pick(Vec::new(), 0.5, 1).is_empty());
    }
}
