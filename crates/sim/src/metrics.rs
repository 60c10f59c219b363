//! What a run measures: running totals, the time series and the summary.

use serde::Serialize;

/// Counters and integrals a run keeps while it goes.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Viewers admitted to the tree.
    pub joins: u64,
    /// Join attempts the policy refused (each retry counts).
    pub refused_joins: u64,
    /// Viewers refused at least once.
    pub refused_viewers: u64,
    /// Departures noticed by the planner (graceful ones at once, abrupt ones
    /// after the detection delay).
    pub departures: u64,
    /// Departures that were abrupt.
    pub abrupt_departures: u64,
    /// `AssignParent` sent by leave re-plans.
    pub assign_parent_leaves: u64,
    /// `AssignParent` sent by other re-plans (moved at a join, placed by a tick).
    pub assign_parent_other: u64,
    /// `PeerLeft` sent by leaves.
    pub peer_lefts: u64,
    /// Objects that would be lost without repair (each object each viewer misses).
    pub lost_objects: u64,
    /// Objects a peer that lost its feed would read from the origin's ring.
    pub repair_objects: u64,
    /// Viewer-nanoseconds of live viewers in the tree.
    pub viewer_ns: u128,
    /// Root-nanoseconds (each root fed by the origin).
    pub root_ns: u128,
    /// Waiting-nanoseconds (each waiting peer fed by the origin).
    pub waiting_ns: u128,
    /// Refused-nanoseconds (viewers waiting to be admitted, fed by nobody).
    pub refused_ns: u128,
    /// Peak live viewers.
    pub peak_viewers: u64,
    /// Peak waiting peers.
    pub peak_waiting: u64,
}

/// One point of the time series: the interval ending at `t_s`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SamplePoint {
    /// End of the interval, seconds.
    pub t_s: f64,
    /// Live viewers in the tree.
    pub peers: u64,
    /// Roots.
    pub roots: u64,
    /// Peers waiting for a place.
    pub waiting: u64,
    /// Viewers refused and retrying.
    pub refused: u64,
    /// Deepest placed peer.
    pub max_depth: u32,
    /// Origin egress over the interval (roots, waiting peers and repair), bits/s.
    pub origin_bps: f64,
    /// Of which repair, bits/s.
    pub repair_bps: f64,
    /// Stream delivered to viewers over the interval, bits/s.
    pub delivered_bps: f64,
    /// 1 - origin / delivered over the interval.
    pub byte_offload: f64,
}

/// Wall-clock time of planner calls. Not deterministic.
#[derive(Debug, Default, Clone)]
pub struct OpTimes {
    /// Nanoseconds per join.
    pub join: Vec<u32>,
    /// Nanoseconds per leave (with its re-plan).
    pub leave: Vec<u32>,
    /// Nanoseconds per tick (`place_waiting`, or the seed's retries).
    pub tick: Vec<u32>,
}

/// Quantiles of a set of durations, in milliseconds or microseconds as named.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Quantiles {
    /// How many.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Nearest-rank quantiles of `values`, each read as `value(v)` (sorts `values`).
pub fn quantiles<T: Copy + Ord>(values: &mut [T], value: impl Fn(T) -> f64) -> Quantiles {
    values.sort_unstable();
    let at = |q: f64| -> f64 {
        if values.is_empty() {
            return 0.0;
        }
        let k = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
        value(values[k])
    };
    Quantiles {
        count: values.len() as u64,
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Wall-clock planner time per operation, microseconds. Not deterministic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimingSummary {
    /// Per join.
    pub join_us: Quantiles,
    /// Per leave.
    pub leave_us: Quantiles,
    /// Per tick.
    pub tick_us: Quantiles,
    /// Whole run, seconds.
    pub run_s: f64,
}

/// The deterministic result of one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Policy name.
    pub policy: String,
    /// Seed.
    pub seed: u64,
    /// Whether repair was on.
    pub repair: bool,
    /// Simulated seconds.
    pub duration_s: f64,
    /// Viewers admitted.
    pub joins: u64,
    /// Join attempts refused (retries included).
    pub refused_joins: u64,
    /// Viewers refused at least once.
    pub refused_viewers: u64,
    /// Viewer-seconds spent refused (fed by nobody).
    pub refused_viewer_s: f64,
    /// Departures the planner handled.
    pub departures: u64,
    /// Of which abrupt.
    pub abrupt_departures: u64,
    /// Time-averaged live viewers.
    pub mean_viewers: f64,
    /// Most live viewers at once.
    pub peak_viewers: u64,
    /// Time-averaged roots.
    pub mean_roots: f64,
    /// Most peers waiting for a place at once.
    pub peak_waiting: u64,
    /// Waiting peer-seconds (fed by the origin).
    pub waiting_peer_s: f64,
    /// Origin bytes: roots + waiting peers + repair (when on).
    pub origin_bytes: f64,
    /// Of which to roots.
    pub origin_root_bytes: f64,
    /// Of which to waiting peers.
    pub origin_waiting_bytes: f64,
    /// Of which repair (0 with repair off).
    pub repair_bytes: f64,
    /// Mean origin egress, bits/s.
    pub mean_origin_bps: f64,
    /// Highest origin egress of a sample interval, bits/s.
    pub peak_origin_bps: f64,
    /// Viewers × stream rate, bytes.
    pub delivered_bytes: f64,
    /// 1 - origin / delivered.
    pub byte_offload: f64,
    /// Objects lost for lack of repair (0 with repair on).
    pub lost_objects: u64,
    /// Objects that would be lost without repair (each object each viewer misses).
    pub lost_objects_without_repair: u64,
    /// Objects that would be lost without repair, per viewer-hour.
    pub lost_per_viewer_hour_without_repair: f64,
    /// Repair bytes per viewer-hour, whether or not repair is on.
    pub repair_bytes_per_viewer_hour: f64,
    /// Peers at each depth at the end (index = depth).
    pub depth_histogram: Vec<u64>,
    /// Deepest peer at the end.
    pub max_depth_end: u32,
    /// Deepest any peer was.
    pub max_depth_seen: u32,
    /// `AssignParent` from leave re-plans, per departure.
    pub assign_parent_per_departure: f64,
    /// `PeerLeft` per departure.
    pub peer_left_per_departure: f64,
    /// `AssignParent` from other re-plans (joins, ticks), per departure.
    pub other_assign_parent_per_departure: f64,
    /// Time from losing the parent to a new parent (or root feed) carrying
    /// objects, milliseconds; runs still open at the end are cut there.
    pub time_without_parent_ms: Quantiles,
    /// Those times summed, seconds per viewer-hour.
    pub time_without_parent_s_per_viewer_hour: f64,
}

impl Summary {
    /// The headline figures, by name, for comparing runs.
    pub fn headline(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("byte offload %", self.byte_offload * 100.0),
            ("mean origin egress Mbit/s", self.mean_origin_bps / 1e6),
            ("peak origin egress Mbit/s", self.peak_origin_bps / 1e6),
            ("mean viewers", self.mean_viewers),
            ("max depth seen", self.max_depth_seen as f64),
            (
                "lost objects / viewer-hour without repair",
                self.lost_per_viewer_hour_without_repair,
            ),
            (
                "repair MB / viewer-hour",
                self.repair_bytes_per_viewer_hour / 1e6,
            ),
            ("AssignParent / departure", self.assign_parent_per_departure),
            ("PeerLeft / departure", self.peer_left_per_departure),
            (
                "time without parent p50 ms",
                self.time_without_parent_ms.p50,
            ),
            (
                "time without parent p99 ms",
                self.time_without_parent_ms.p99,
            ),
            (
                "time without parent max ms",
                self.time_without_parent_ms.max,
            ),
            (
                "time without parent s / viewer-hour",
                self.time_without_parent_s_per_viewer_hour,
            ),
            ("waiting peer-s (fed by the origin)", self.waiting_peer_s),
            ("refused joins", self.refused_joins as f64),
        ]
    }
}
