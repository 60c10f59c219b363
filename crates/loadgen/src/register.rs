//! Registration phase: launch clients at the offered rate, wait until each
//! one registered or failed, summarise latency and achieved rate.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until};

use crate::client::{self, ClientConfig};
use crate::fleet::{Fleet, State};
use crate::stats::Summary;

/// How often the coordinator looks at the clients' states.
const POLL: Duration = Duration::from_millis(20);

/// Figures of one registration phase.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    /// Clients launched.
    pub launched: usize,
    /// Offered rate, clients per second.
    pub offered_rate: f64,
    /// Clients that got their first AssignParent.
    pub registered: usize,
    /// Clients that failed (connect, upgrade, Error, timeout).
    pub failed: usize,
    /// Clients still neither registered nor failed at the deadline.
    pub pending: usize,
    /// Register -> first AssignParent.
    pub latency: Summary,
    /// TCP connect + WebSocket upgrade.
    pub connect: Summary,
    /// Register -> AssignParent per tenth of the clients in launch order
    /// (shows latency growing with the number of peers).
    pub by_decile: Vec<Summary>,
    /// Registrations per second between the first Register sent and the last
    /// first AssignParent received.
    pub achieved_rate: f64,
    /// Time taken to launch all clients.
    pub launch_secs: f64,
}

/// Launches `fleet.len()` clients at `rate` per second into `tasks` and
/// waits (bounded by `register_timeout` after the last launch) for them.
pub(crate) async fn register_all(
    fleet: &Arc<Fleet>,
    cfg: &Arc<ClientConfig>,
    rate: f64,
    tasks: &mut JoinSet<()>,
) -> Registration {
    let n = fleet.len();
    let start = Instant::now();
    let mut next = 0;
    while next < n {
        let due = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(n);
        while next < due {
            let wake = fleet.subscribe();
            tasks.spawn(client::run(fleet.clone(), cfg.clone(), next, wake));
            next += 1;
        }
        if next < n {
            let at = start + Duration::from_secs_f64(next as f64 / rate);
            sleep_until(at.into()).await;
        }
    }
    let launch_secs = start.elapsed().as_secs_f64();

    let deadline = Instant::now() + cfg.register_timeout + Duration::from_secs(1);
    loop {
        let unresolved = (0..n)
            .filter(|&i| {
                matches!(
                    fleet.state(i),
                    State::Idle | State::Connecting | State::Registering
                )
            })
            .count();
        if unresolved == 0 || Instant::now() >= deadline {
            break;
        }
        sleep(POLL).await;
    }
    summarise(fleet, rate, launch_secs)
}

fn summarise(fleet: &Fleet, rate: f64, launch_secs: f64) -> Registration {
    let n = fleet.len();
    let by_decile = (0..10)
        .map(|d| {
            let mut v: Vec<u64> = (d * n / 10..(d + 1) * n / 10)
                .filter_map(|i| fleet.reg_latency_us(i))
                .collect();
            Summary::from_samples(&mut v)
        })
        .collect();
    let mut latency: Vec<u64> = (0..n).filter_map(|i| fleet.reg_latency_us(i)).collect();
    let mut connect: Vec<u64> = (0..n).filter_map(|i| fleet.connect_us(i)).collect();
    let registered = latency.len();
    let failed = fleet.count_state(State::Failed);
    let pending = (0..n)
        .filter(|&i| {
            matches!(
                fleet.state(i),
                State::Idle | State::Connecting | State::Registering
            )
        })
        .count();
    let first = fleet.counters.first_register_us.load(Relaxed);
    let last = fleet.counters.last_registered_us.load(Relaxed);
    let achieved_rate = achieved_rate(registered, first, last);
    Registration {
        launched: n,
        offered_rate: rate,
        registered,
        failed,
        pending,
        latency: Summary::from_samples(&mut latency),
        connect: Summary::from_samples(&mut connect),
        by_decile,
        achieved_rate,
        launch_secs,
    }
}

/// Inter-arrival rate of `registered` registrations between `first_us`
/// (first Register sent) and `last_us` (last first AssignParent received).
pub(crate) fn achieved_rate(registered: usize, first_us: u64, last_us: u64) -> f64 {
    if registered < 2 || first_us == u64::MAX || last_us <= first_us {
        return 0.0;
    }
    (registered - 1) as f64 / ((last_us - first_us) as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn achieved_rate_is_inter_arrival() {
        // 2001 registrations over exactly one second: 2000/s.
        assert!((achieved_rate(2001, 0, 1_000_000) - 2000.0).abs() < 1e-9);
        assert_eq!(achieved_rate(1, 0, 10), 0.0);
        assert_eq!(achieved_rate(10, u64::MAX, 10), 0.0);
        assert_eq!(achieved_rate(10, 10, 10), 0.0);
    }
}
