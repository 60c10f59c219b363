//! The simulation itself: viewers arrive, stay and leave; the policy
//! re-plans; every gap in a viewer's feed is accounted from the stream
//! rate and the gap's ends, never object by object.
//!
//! A feed gap starts when a peer's parent link stops carrying objects (its
//! parent left, went silently, or a re-plan ended the link) and ends when a
//! new link (or origin reader) is up: the re-plan's time plus the setup
//! delay. Everything below the peer misses the same objects; with repair
//! the peer reads them once from the origin's ring and forwards them, so
//! the origin pays them once and nobody loses them.

use crate::arrivals::RateCurve;
use crate::metrics::{quantiles, OpTimes, SamplePoint, Summary, TimingSummary, Totals};
use crate::mirror::{Mirror, Place, Slot, NONE};
use crate::policy::{new_policy, Policy};
use crate::queue::{nanos, seconds, EventQueue, Nanos, SECOND};
use crate::rng::Rng;
use crate::scenario::Scenario;
use meshrelay_mesh::{MeshConfig, PeerAssignment, PeerRole};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// No time (an episode not open).
const NEVER: Nanos = u64::MAX;

/// How often the policy's housekeeping runs, as the server's tick.
const TICK: Nanos = SECOND;

#[derive(Debug, Clone, Copy)]
enum Event {
    Arrival,
    /// A viewer given by [`Simulation::script`] arrives.
    Scripted(u32),
    /// A viewer's session ends.
    Depart(Slot),
    /// The planner notices a viewer that went abruptly.
    Detect(Slot),
    Tick,
    Sample,
}

#[derive(Debug, Clone, Copy)]
struct Viewer {
    capacity: u32,
    abrupt: bool,
    refused_once: bool,
    /// In a feed gap that started at `hole_from`.
    hole_open: bool,
    hole_from: Nanos,
    /// When its current feed started (or will) carrying objects.
    fed_at: Nanos,
    /// Lost its parent at this time and has none yet, or [`NEVER`].
    orphaned_at: Nanos,
}

impl Viewer {
    fn new(capacity: u32, abrupt: bool) -> Self {
        Self {
            capacity,
            abrupt,
            refused_once: false,
            hole_open: false,
            hole_from: 0,
            fed_at: 0,
            orphaned_at: NEVER,
        }
    }
}

/// The result of one run: deterministic summary and series, plus the
/// wall-clock timing that is not.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The scenario that ran.
    pub scenario: Scenario,
    /// Deterministic figures.
    pub summary: Summary,
    /// The time series, one point per sample interval.
    pub series: Vec<SamplePoint>,
    /// Wall-clock planner time. Differs between runs of the same seed.
    pub timing: TimingSummary,
}

/// One run of a scenario against the real planner.
pub struct Simulation<'a> {
    sc: &'a Scenario,
    policy: Box<dyn Policy>,
    mirror: Mirror,
    viewers: Vec<Viewer>,
    free: Vec<Slot>,
    queue: EventQueue<Event>,
    rates: RateCurve,
    arrivals_rng: Rng,
    viewer_rng: Rng,
    refused: BTreeSet<Slot>,
    base: Instant,
    setup: Nanos,
    end: Nanos,
    now: Nanos,
    last: Nanos,
    live: u64,
    totals: Totals,
    /// Times without a parent, nanoseconds.
    orphan_gaps: Vec<u64>,
    times: OpTimes,
    series: Vec<SamplePoint>,
    /// Totals at the previous sample, for interval rates.
    at_last_sample: Totals,
    last_sample_t: Nanos,
    id_buf: String,
    scripted: Vec<ScriptedViewer>,
    started: bool,
}

/// A viewer with a fixed arrival, departure and capacity, for runs whose
/// outcome is computed by hand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScriptedViewer {
    /// Arrival, seconds.
    pub join_s: f64,
    /// End of its session, seconds.
    pub leave_s: f64,
    /// Claimed capacity.
    pub capacity: u32,
    /// Leaves without a word (noticed after the detection delay).
    pub abrupt: bool,
}

fn id_of(buf: &mut String, s: Slot) -> &str {
    buf.clear();
    let _ = write!(buf, "v{s}");
    buf
}

fn slot_of(id: &str) -> Slot {
    id[1..].parse().expect("simulator ids are v<slot>")
}

fn elapsed_ns(start: Instant) -> u32 {
    u32::try_from(start.elapsed().as_nanos()).unwrap_or(u32::MAX)
}

impl<'a> Simulation<'a> {
    /// A run of `sc`, nothing happened yet.
    pub fn new(sc: &'a Scenario) -> Self {
        let config = MeshConfig {
            max_children: sc.max_children,
            root_peer_count: sc.root_count,
            max_depth: sc.max_depth,
            ..MeshConfig::default()
        };
        Self {
            sc,
            policy: new_policy(sc.policy, config),
            mirror: Mirror::default(),
            viewers: Vec::new(),
            free: Vec::new(),
            queue: EventQueue::default(),
            rates: RateCurve::from_scenario(sc),
            arrivals_rng: Rng::fork(sc.seed, 1),
            viewer_rng: Rng::fork(sc.seed, 2),
            refused: BTreeSet::new(),
            base: Instant::now(),
            setup: nanos(sc.setup_delay_s()),
            end: nanos(sc.duration_s),
            now: 0,
            last: 0,
            live: 0,
            totals: Totals::default(),
            orphan_gaps: Vec::new(),
            times: OpTimes::default(),
            series: Vec::new(),
            at_last_sample: Totals::default(),
            last_sample_t: 0,
            id_buf: String::new(),
            scripted: Vec::new(),
            started: false,
        }
    }

    /// Adds viewers that arrive and leave exactly as given, besides the
    /// scenario's random audience. Call before running.
    pub fn script(&mut self, viewers: &[ScriptedViewer]) {
        for v in viewers {
            let k = self.scripted.len() as u32;
            self.scripted.push(*v);
            self.queue.push(nanos(v.join_s), Event::Scripted(k));
        }
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        for _ in 0..self.sc.initial_viewers {
            let left = self.sc.session.sample_residual(&mut self.viewer_rng);
            let capacity = self.sc.capacity_mix.sample(&mut self.viewer_rng);
            let abrupt = self.viewer_rng.unit() < self.sc.abrupt_fraction;
            self.arrive(left, capacity, abrupt);
        }
        self.schedule_next_arrival();
        self.queue.push(TICK, Event::Tick);
        self.queue
            .push(nanos(self.sc.sample_every_s).min(self.end), Event::Sample);
    }

    fn handle(&mut self, t: Nanos, event: Event, progress: &mut dyn FnMut(f64)) {
        self.advance(t);
        match event {
            Event::Arrival => {
                let session = self.sc.session.sample(&mut self.viewer_rng);
                let capacity = self.sc.capacity_mix.sample(&mut self.viewer_rng);
                let abrupt = self.viewer_rng.unit() < self.sc.abrupt_fraction;
                self.arrive(session, capacity, abrupt);
                self.schedule_next_arrival();
            }
            Event::Scripted(k) => {
                let v = self.scripted[k as usize];
                self.arrive(v.leave_s - v.join_s, v.capacity, v.abrupt);
            }
            Event::Depart(s) => self.depart(s),
            Event::Detect(s) => self.leave(s),
            Event::Tick => {
                self.tick();
                self.queue.push(t + TICK, Event::Tick);
            }
            Event::Sample => {
                self.sample();
                progress(seconds(t));
                if t < self.end {
                    let next = t + nanos(self.sc.sample_every_s);
                    self.queue.push(next.min(self.end), Event::Sample);
                }
            }
        }
    }

    /// Runs to the end; `progress` is called with the simulated seconds
    /// done at each sample.
    pub fn run(mut self, progress: &mut dyn FnMut(f64)) -> RunResult {
        let wall = Instant::now();
        self.start();
        while let Some((t, event)) = self.queue.pop() {
            if t > self.end {
                break;
            }
            self.handle(t, event, progress);
        }
        self.advance(self.end);
        if self.last_sample_t < self.end {
            self.sample();
        }
        self.finish(wall)
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    /// Integrates the counts over the time since the last event.
    fn advance(&mut self, t: Nanos) {
        let dt = u128::from(t - self.last);
        self.totals.viewer_ns += u128::from(self.live) * dt;
        self.totals.root_ns += self.policy.root_count() as u128 * dt;
        self.totals.waiting_ns += self.policy.waiting_count() as u128 * dt;
        self.totals.refused_ns += self.refused.len() as u128 * dt;
        self.last = t;
        self.now = t;
    }

    fn schedule_next_arrival(&mut self) {
        let draw = self.arrivals_rng.exp1();
        if let Some(t) = self.rates.next_after(seconds(self.now), draw) {
            let t = nanos(t).max(self.now);
            if t <= self.end {
                self.queue.push(t, Event::Arrival);
            }
        }
    }

    /// Objects published in `(from, to]`.
    fn objects(&self, from: Nanos, to: Nanos) -> u64 {
        if to <= from {
            return 0;
        }
        let k = |t: Nanos| (t as f64 * self.sc.objects_per_s / SECOND as f64).floor() as u64;
        k(to) - k(from)
    }

    fn arrive(&mut self, session_s: f64, capacity: u32, abrupt: bool) {
        let s = match self.free.pop() {
            Some(s) => s,
            None => {
                self.viewers.push(Viewer::new(0, false));
                (self.viewers.len() - 1) as Slot
            }
        };
        self.viewers[s as usize] = Viewer::new(capacity, abrupt);
        self.queue
            .push(self.now.saturating_add(nanos(session_s)), Event::Depart(s));
        self.join(s);
    }

    /// Offers a viewer to the policy; a refused one retries each tick.
    fn join(&mut self, s: Slot) -> bool {
        let capacity = self.viewers[s as usize].capacity;
        let now = self.instant();
        let start = Instant::now();
        let placed = {
            let id = id_of(&mut self.id_buf, s);
            self.policy.join(id, capacity, now)
        };
        self.times.join.push(elapsed_ns(start));
        let Some(mut moved) = placed else {
            self.totals.refused_joins += 1;
            let v = &mut self.viewers[s as usize];
            if !v.refused_once {
                v.refused_once = true;
                self.totals.refused_viewers += 1;
            }
            self.refused.insert(s);
            return false;
        };
        self.refused.remove(&s);
        let me = moved.remove(0);
        let (place, parent) = self.place_of(&me);
        self.mirror.insert(s, place, parent);
        self.live += 1;
        self.totals.joins += 1;
        self.totals.peak_viewers = self.totals.peak_viewers.max(self.live);
        self.viewers[s as usize].fed_at = self.now + self.setup;
        if !self.mirror.path_alive(s) {
            self.lose_feed(s, self.now);
        }
        self.totals.assign_parent_other += moved.len() as u64;
        self.apply(&moved);
        true
    }

    fn place_of(&self, a: &PeerAssignment) -> (Place, Slot) {
        match (&a.parent, a.role) {
            (_, PeerRole::Root) => (Place::Root, NONE),
            (Some(p), _) => (Place::Attached, slot_of(p)),
            (None, _) => (Place::Waiting, NONE),
        }
    }

    fn depart(&mut self, s: Slot) {
        if self.refused.remove(&s) {
            self.free.push(s);
            return;
        }
        if !self.viewers[s as usize].abrupt {
            self.leave(s);
            return;
        }
        // It stops forwarding now; the planner hears of it only later.
        self.close_gap_at_leave(s);
        for c in self.mirror.children(s) {
            self.lose_feed(c, self.now);
        }
        let delay = self.sc.detection_delay_s(self.mirror.has_children(s));
        self.mirror.set_gone(s);
        self.live -= 1;
        self.queue.push(self.now + nanos(delay), Event::Detect(s));
    }

    /// The planner removes a peer and re-plans.
    fn leave(&mut self, s: Slot) {
        let abrupt = self.mirror.is_gone(s);
        if !abrupt {
            self.close_gap_at_leave(s);
            self.live -= 1;
        }
        let orphans = self.mirror.remove(s);
        for &c in &orphans {
            self.lose_feed(c, self.now);
        }
        let start = Instant::now();
        let departure = {
            let id = id_of(&mut self.id_buf, s);
            self.policy.leave(id)
        };
        self.times.leave.push(elapsed_ns(start));
        self.totals.departures += 1;
        self.totals.abrupt_departures += u64::from(abrupt);
        self.totals.assign_parent_leaves += departure.changed.len() as u64;
        self.totals.peer_lefts += departure.peer_lefts as u64;
        self.apply(&departure.changed);
        // An orphan the policy did not mention: ask where it is.
        let missed: Vec<PeerAssignment> = orphans
            .iter()
            .filter(|&&c| self.mirror.place(c) == Place::Orphaned)
            .filter_map(|&c| {
                let id = id_of(&mut self.id_buf, c).to_string();
                self.policy.assignment(&id)
            })
            .collect();
        self.apply(&missed);
        self.free.push(s);
    }

    fn tick(&mut self) {
        let start = Instant::now();
        let moved = self.policy.tick();
        self.times.tick.push(elapsed_ns(start));
        self.totals.assign_parent_other += moved.len() as u64;
        self.apply(&moved);
        let refused: Vec<Slot> = self.refused.iter().copied().collect();
        // Each is retried: a relay may find a slot a leaf cannot (a leaf
        // holding a root slot makes room only for a relay).
        for s in refused {
            self.join(s);
        }
    }

    /// Applies a re-plan's new positions to the mirror and accounts every
    /// feed it ended or restored.
    fn apply(&mut self, changed: &[PeerAssignment]) {
        let mut moves = Vec::new();
        for a in changed {
            let s = slot_of(&a.peer_id);
            let (place, parent) = self.place_of(a);
            let before = self.mirror.place(s);
            if before == Place::Out {
                continue;
            }
            let same_parent = place != Place::Attached || self.mirror.parent(s) == parent;
            if before == place && same_parent {
                continue;
            }
            self.mirror.relocate(s, place, parent);
            moves.push((s, before, place));
        }
        for &(s, ..) in &moves {
            self.mirror.rebase(s);
        }
        let t = self.now;
        for &(s, before, _) in &moves {
            // The old link ended with a live (or silently gone) parent.
            if before == Place::Attached {
                self.lose_feed(s, t);
            }
        }
        let up = t + self.setup;
        for &(s, _, after) in &moves {
            if self.mirror.is_gone(s) {
                continue;
            }
            let open = self.viewers[s as usize].hole_open;
            match after {
                Place::Attached if open && self.mirror.path_alive(s) => self.restore(s, up, true),
                Place::Root if open => self.restore(s, up, true),
                Place::Waiting if open => self.restore(s, up, false),
                Place::Attached | Place::Root => self.end_orphan_gap(s, up),
                _ => {}
            }
        }
        self.totals.peak_waiting = self
            .totals
            .peak_waiting
            .max(self.policy.waiting_count() as u64);
    }

    /// `s` stops receiving at `t` (a no-op while it already is).
    fn lose_feed(&mut self, s: Slot, t: Nanos) {
        let v = &mut self.viewers[s as usize];
        if v.hole_open {
            return;
        }
        v.hole_open = true;
        // A feed not up yet was already counted as missing up to `fed_at`.
        v.hole_from = t.max(v.fed_at);
        if v.orphaned_at == NEVER {
            v.orphaned_at = v.hole_from;
        }
    }

    fn end_orphan_gap(&mut self, s: Slot, up: Nanos) {
        let v = &mut self.viewers[s as usize];
        if v.orphaned_at != NEVER {
            self.orphan_gaps.push(up.saturating_sub(v.orphaned_at));
            v.orphaned_at = NEVER;
        }
    }

    /// Counts a gap of `objects` over `peers` viewers.
    fn count_gap(&mut self, objects: u64, peers: u64) {
        self.totals.lost_objects += objects * peers;
        self.totals.repair_objects += objects;
    }

    /// `top`'s feed carries objects again from `up`: its gap ends, and so
    /// does that of every peer fed through it; `parented` ends its time
    /// without a parent too.
    fn restore(&mut self, top: Slot, up: Nanos, parented: bool) {
        let fed = self.mirror.fed_subtree(top);
        let from = self.viewers[top as usize].hole_from;
        let objects = self.objects(from, up);
        self.count_gap(objects, fed.len() as u64);
        for &y in &fed[1..] {
            let v = self.viewers[y as usize];
            if !v.hole_open {
                continue;
            }
            // The part of its own gap before `top`'s is not counted yet.
            let extra = self.objects(v.hole_from, from.min(up));
            if extra > 0 {
                let below = self.mirror.fed_subtree(y).len() as u64;
                self.count_gap(extra, below);
            }
            let v = &mut self.viewers[y as usize];
            v.hole_open = false;
            v.fed_at = up;
            self.end_orphan_gap(y, up);
        }
        let v = &mut self.viewers[top as usize];
        v.hole_open = false;
        v.fed_at = up;
        if parented {
            self.end_orphan_gap(top, up);
        }
    }

    /// A leaving peer's own open gap, counted up to now over what it fed.
    fn close_gap_at_leave(&mut self, s: Slot) {
        let v = self.viewers[s as usize];
        if v.hole_open {
            let objects = self.objects(v.hole_from, self.now);
            let fed = self.mirror.fed_subtree(s).len() as u64;
            self.count_gap(objects, fed);
        }
        let v = &mut self.viewers[s as usize];
        v.hole_open = false;
        v.orphaned_at = NEVER;
    }

    fn sample(&mut self) {
        let t = self.now;
        let dt_s = seconds(t - self.last_sample_t);
        let prev = &self.at_last_sample;
        let cur = &self.totals;
        let byte_rate = self.sc.stream_bytes_per_s();
        let fed_ns = (cur.root_ns - prev.root_ns) + (cur.waiting_ns - prev.waiting_ns);
        let repair_bytes = if self.sc.repair {
            (cur.repair_objects - prev.repair_objects) as f64 * self.sc.object_bytes as f64
        } else {
            0.0
        };
        let fed_bytes = fed_ns as f64 / SECOND as f64 * byte_rate;
        let delivered = (cur.viewer_ns - prev.viewer_ns) as f64 / SECOND as f64 * byte_rate;
        let origin = fed_bytes + repair_bytes;
        let per_s = |bytes: f64| {
            if dt_s > 0.0 {
                bytes * 8.0 / dt_s
            } else {
                0.0
            }
        };
        self.series.push(SamplePoint {
            t_s: seconds(t),
            peers: self.live,
            roots: self.policy.root_count() as u64,
            waiting: self.policy.waiting_count() as u64,
            refused: self.refused.len() as u64,
            max_depth: self.mirror.max_depth(),
            origin_bps: per_s(origin),
            repair_bps: per_s(repair_bytes),
            delivered_bps: per_s(delivered),
            byte_offload: if delivered > 0.0 {
                1.0 - origin / delivered
            } else {
                0.0
            },
        });
        self.at_last_sample = self.totals.clone();
        self.last_sample_t = t;
    }

    fn finish(mut self, wall: Instant) -> RunResult {
        // Gaps still open at the end are cut there.
        let end = self.end;
        for s in 0..self.viewers.len() as Slot {
            let place = self.mirror.place(s);
            if place == Place::Out || self.mirror.is_gone(s) {
                continue;
            }
            let v = self.viewers[s as usize];
            if v.hole_open {
                let objects = self.objects(v.hole_from, end);
                let fed = self.mirror.fed_subtree(s).len() as u64;
                self.count_gap(objects, fed);
            }
            if v.orphaned_at != NEVER {
                self.orphan_gaps.push(end.saturating_sub(v.orphaned_at));
            }
        }
        let sc = self.sc;
        let t = &self.totals;
        let byte_rate = sc.stream_bytes_per_s();
        let ns_to_bytes = |ns: u128| ns as f64 / SECOND as f64 * byte_rate;
        let root_bytes = ns_to_bytes(t.root_ns);
        let waiting_bytes = ns_to_bytes(t.waiting_ns);
        let repair_all = t.repair_objects as f64 * sc.object_bytes as f64;
        let repair_bytes = if sc.repair { repair_all } else { 0.0 };
        let origin = root_bytes + waiting_bytes + repair_bytes;
        let delivered = ns_to_bytes(t.viewer_ns);
        let viewer_hours = t.viewer_ns as f64 / SECOND as f64 / 3600.0;
        let per_vh = |x: f64| {
            if viewer_hours > 0.0 {
                x / viewer_hours
            } else {
                0.0
            }
        };
        let per_departure = |x: u64| {
            if t.departures > 0 {
                x as f64 / t.departures as f64
            } else {
                0.0
            }
        };
        let duration = seconds(end);
        let mut gaps = std::mem::take(&mut self.orphan_gaps);
        let summary = Summary {
            policy: sc.policy.name().to_string(),
            seed: sc.seed,
            repair: sc.repair,
            duration_s: duration,
            joins: t.joins,
            refused_joins: t.refused_joins,
            refused_viewers: t.refused_viewers,
            refused_viewer_s: t.refused_ns as f64 / SECOND as f64,
            departures: t.departures,
            abrupt_departures: t.abrupt_departures,
            mean_viewers: t.viewer_ns as f64 / SECOND as f64 / duration,
            peak_viewers: t.peak_viewers,
            mean_roots: t.root_ns as f64 / SECOND as f64 / duration,
            peak_waiting: t.peak_waiting,
            waiting_peer_s: t.waiting_ns as f64 / SECOND as f64,
            origin_bytes: origin,
            origin_root_bytes: root_bytes,
            origin_waiting_bytes: waiting_bytes,
            repair_bytes,
            mean_origin_bps: origin * 8.0 / duration,
            peak_origin_bps: self.series.iter().map(|p| p.origin_bps).fold(0.0, f64::max),
            delivered_bytes: delivered,
            byte_offload: if delivered > 0.0 {
                1.0 - origin / delivered
            } else {
                0.0
            },
            lost_objects: if sc.repair { 0 } else { t.lost_objects },
            lost_objects_without_repair: t.lost_objects,
            lost_per_viewer_hour_without_repair: per_vh(t.lost_objects as f64),
            repair_bytes_per_viewer_hour: per_vh(repair_all),
            depth_histogram: self.mirror.depth_counts().to_vec(),
            max_depth_end: self.mirror.max_depth(),
            max_depth_seen: self.mirror.max_depth_seen(),
            assign_parent_per_departure: per_departure(t.assign_parent_leaves),
            peer_left_per_departure: per_departure(t.peer_lefts),
            other_assign_parent_per_departure: per_departure(t.assign_parent_other),
            time_without_parent_s_per_viewer_hour: per_vh(
                gaps.iter().map(|&ns| ns as f64).sum::<f64>() / SECOND as f64,
            ),
            time_without_parent_ms: quantiles(&mut gaps, |ns| ns as f64 / 1e6),
        };
        let us = |ns: u32| f64::from(ns) / 1e3;
        let timing = TimingSummary {
            join_us: quantiles(&mut self.times.join, us),
            leave_us: quantiles(&mut self.times.leave, us),
            tick_us: quantiles(&mut self.times.tick, us),
            run_s: wall.elapsed().as_secs_f64(),
        };
        RunResult {
            scenario: sc.clone(),
            summary,
            series: self.series,
            timing,
        }
    }

    /// Checks the mirror against the policy's own view of every peer: the
    /// same parent and depth for each. For tests.
    pub fn check_mirror(&self) -> Result<(), String> {
        let mut seen = 0u64;
        for (id, parent, depth, role) in self.policy.positions() {
            let s = slot_of(&id);
            seen += 1;
            let mine = self.mirror.place(s);
            let expected = match (&parent, role) {
                (_, PeerRole::Root) => Place::Root,
                (Some(_), _) => Place::Attached,
                (None, _) => Place::Waiting,
            };
            if mine != expected {
                return Err(format!("{id}: mirror {mine:?}, policy {expected:?}"));
            }
            let p = parent.as_deref().map_or(NONE, slot_of);
            if mine == Place::Attached && self.mirror.parent(s) != p {
                return Err(format!("{id}: mirror parent differs from {parent:?}"));
            }
            if self.mirror.depth(s) != depth {
                return Err(format!(
                    "{id}: mirror depth {}, policy {depth}",
                    self.mirror.depth(s)
                ));
            }
        }
        let in_tree = (0..self.viewers.len() as Slot)
            .filter(|&s| self.mirror.place(s) != Place::Out)
            .count() as u64;
        if in_tree != seen {
            return Err(format!("mirror holds {in_tree} peers, policy {seen}"));
        }
        Ok(())
    }

    /// Processes events up to and including time `t_s`, for tests that
    /// inspect the state part-way.
    pub fn step_until(&mut self, t_s: f64) {
        let limit = nanos(t_s).min(self.end);
        self.start();
        while self.queue.peek_at().is_some_and(|t| t <= limit) {
            let (t, event) = self.queue.pop().expect("peeked");
            self.handle(t, event, &mut |_| {});
        }
    }
}
