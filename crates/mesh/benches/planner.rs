//! Planner benchmarks at 10k, 100k and 1M peers (max_children 3, 30 roots):
//! time to build the tree by joins, the cost of one leave with re-planning in
//! a full tree, and heap bytes per peer (measured by a counting allocator).
//! The same for the seed-compatible facade, driven as a seed caller drives
//! it: `add_peer` with owned `String`s, and a leave as `remove_peer` followed
//! by `reassign_peer` for each orphan.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use meshrelay_mesh::{MeshConfig, MeshCoordinator, Planner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes so memory per peer is measured, not estimated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

fn config() -> MeshConfig {
    MeshConfig {
        max_children: 3,
        root_peer_count: 30,
        // 30 roots of ternary subtrees hold 1M peers within depth 11.
        max_depth: 16,
        heartbeat_timeout_secs: 10,
    }
}

fn id(i: usize) -> String {
    format!("peer-{i:08}")
}

fn build(n: usize, now: Instant) -> Planner {
    let mut p = Planner::new(config());
    for i in 0..n {
        p.join(&id(i), None, now).expect("room for every peer");
    }
    p
}

fn joins(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_by_joins");
    group.sample_size(10);
    for n in SIZES {
        group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 20 } else { 5 }));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let ids: Vec<String> = (0..n).map(id).collect();
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let now = Instant::now();
                    let mut p = Planner::new(config());
                    let start = Instant::now();
                    for i in &ids {
                        p.join(i, None, now).expect("room for every peer");
                    }
                    total += start.elapsed();
                    drop(black_box(p));
                }
                total
            });
        });
    }
    group.finish();
}

/// A full tree kept full: each step removes a random peer (timed) and joins
/// a newcomer (untimed).
struct Churn {
    planner: Planner,
    live: Vec<String>,
    next: usize,
    rng: u64,
    now: Instant,
}

impl Churn {
    fn new(n: usize, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            planner: build(n, now),
            live: (0..n).map(id).collect(),
            next: n,
            rng: seed,
            now,
        }
    }

    /// One leave of a random peer, returning its duration, then one join.
    fn step(&mut self) -> Duration {
        // xorshift64: cheap, deterministic, good enough to pick victims.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let at = (self.rng % self.live.len() as u64) as usize;
        let victim = self.live.swap_remove(at);
        let start = Instant::now();
        let out = self.planner.leave(&victim).expect("victim is present");
        let took = start.elapsed();
        black_box(out);
        let newcomer = id(self.next);
        self.next += 1;
        self.planner.join(&newcomer, None, self.now).expect("room");
        self.live.push(newcomer);
        took
    }
}

fn leaves(c: &mut Criterion) {
    let mut group = c.benchmark_group("leave_in_full_tree");
    for n in SIZES {
        let mut churn = Churn::new(n, 0x2545_F491_4F6C_DD1D);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| (0..iters).map(|_| churn.step()).sum());
        });
        assert_eq!(
            churn.planner.waiting_count(),
            0,
            "churn left peers without a place"
        );
    }
    group.finish();
}

/// Criterion reports the mean; the target is on the median, so print the
/// distribution of single leaves measured one by one too.
fn leave_distribution(_: &mut Criterion) {
    for n in SIZES {
        if !wanted("leave_distribution") {
            break;
        }
        let mut churn = Churn::new(n, 0x9E37_79B9_7F4A_7C15);
        let mut times: Vec<Duration> = (0..20_000).map(|_| churn.step()).collect();
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        println!(
            "leave_distribution/{n}: median {:?}, p99 {:?}, max {:?} over {} leaves",
            at(0.5),
            at(0.99),
            times[times.len() - 1],
            times.len()
        );
    }
}

/// Whether a printed (not criterion-run) figure matches the filter given on
/// the command line, so a filtered run does not build every million-peer
/// tree first. Criterion reads the filter as a regex; alternatives (`a|b`)
/// of plain words are all these names need.
fn wanted(name: &str) -> bool {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    filter.is_none_or(|f| f.split('|').any(|part| name.contains(part)))
}

fn memory(_: &mut Criterion) {
    for n in SIZES {
        if !wanted("memory") {
            break;
        }
        let now = Instant::now();
        let before = LIVE.load(Ordering::Relaxed);
        let planner = build(n, now);
        let after = LIVE.load(Ordering::Relaxed);
        println!(
            "memory/{n}: {:.0} bytes per peer ({} peers, {:.1} MiB)",
            (after - before) as f64 / n as f64,
            planner.peer_count(),
            (after - before) as f64 / (1024.0 * 1024.0)
        );
        drop(planner);
        let before = LIVE.load(Ordering::Relaxed);
        let coord = MeshCoordinator::new(config());
        for i in 0..n {
            coord.add_peer(id(i), "live/t".into(), None).expect("room");
        }
        let after = LIVE.load(Ordering::Relaxed);
        println!(
            "memory/facade/{n}: {:.0} bytes per peer ({} peers, {:.1} MiB)",
            (after - before) as f64 / n as f64,
            coord.peer_count(),
            (after - before) as f64 / (1024.0 * 1024.0)
        );
    }
}

/// Copying a whole tree for the admin API: the full snapshot (children's
/// ids included) against the summaries the server lists. Both run under a
/// track's lock.
fn listing(c: &mut Criterion) {
    let mut group = c.benchmark_group("listing");
    group.sample_size(20);
    for n in [15_000, 100_000] {
        let planner = build(n, Instant::now());
        group.bench_with_input(BenchmarkId::new("snapshot", n), &n, |b, _| {
            b.iter(|| black_box(planner.snapshot("t")))
        });
        group.bench_with_input(BenchmarkId::new("summaries", n), &n, |b, _| {
            b.iter(|| black_box(planner.summaries()))
        });
    }
    group.finish();
}

/// The facade built by `add_peer`, the caller's `String`s made beforehand
/// (a seed caller has them from the message that announced the peer).
fn facade_joins(c: &mut Criterion) {
    let mut group = c.benchmark_group("facade_build_by_add_peer");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for n in SIZES {
        group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 20 } else { 5 }));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let args: Vec<(String, String)> =
                        (0..n).map(|i| (id(i), "live/t".to_string())).collect();
                    let coord = MeshCoordinator::new(config());
                    let start = Instant::now();
                    for (peer, track) in args {
                        coord
                            .add_peer(peer, track, None)
                            .expect("room for every peer");
                    }
                    total += start.elapsed();
                    drop(black_box(coord));
                }
                total
            });
        });
    }
    group.finish();
}

/// A full facade kept full: each step removes a random peer and reassigns
/// its orphans (timed together, as a seed caller's leave), then adds a
/// newcomer (untimed).
struct FacadeChurn {
    coord: MeshCoordinator,
    live: Vec<String>,
    next: usize,
    rng: u64,
}

impl FacadeChurn {
    fn new(n: usize, seed: u64) -> Self {
        let coord = MeshCoordinator::new(config());
        for i in 0..n {
            coord.add_peer(id(i), "live/t".into(), None).expect("room");
        }
        Self {
            coord,
            live: (0..n).map(id).collect(),
            next: n,
            rng: seed,
        }
    }

    fn step(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let at = (self.rng % self.live.len() as u64) as usize;
        let victim = self.live.swap_remove(at);
        let start = Instant::now();
        for orphan in self.coord.remove_peer(&victim) {
            // An orphan whose subtree fits nowhere waits, as with the seed.
            let _ = black_box(self.coord.reassign_peer(&orphan));
        }
        let took = start.elapsed();
        let newcomer = id(self.next);
        self.next += 1;
        self.coord
            .add_peer(newcomer.clone(), "live/t".into(), None)
            .expect("room");
        self.live.push(newcomer);
        took
    }
}

fn facade_leaves(c: &mut Criterion) {
    let mut group = c.benchmark_group("facade_remove_and_reassign");
    for n in SIZES {
        let mut churn = FacadeChurn::new(n, 0x2545_F491_4F6C_DD1D);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| (0..iters).map(|_| churn.step()).sum());
        });
    }
    group.finish();
}

/// The median and p99 of single facade leaves, as for the planner's.
fn facade_leave_distribution(_: &mut Criterion) {
    for n in SIZES {
        if !wanted("facade_leave_distribution") {
            break;
        }
        let mut churn = FacadeChurn::new(n, 0x9E37_79B9_7F4A_7C15);
        let mut times: Vec<Duration> = (0..20_000).map(|_| churn.step()).collect();
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        println!(
            "facade_leave_distribution/{n}: median {:?}, p99 {:?}, max {:?} over {} leaves",
            at(0.5),
            at(0.99),
            times[times.len() - 1],
            times.len()
        );
    }
}

criterion_group!(
    benches,
    memory,
    leave_distribution,
    facade_leave_distribution,
    joins,
    facade_joins,
    leaves,
    facade_leaves,
    listing
);
criterion_main!(benches);
