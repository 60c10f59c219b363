//! Planner benchmarks at 10k, 100k and 1M peers (max_children 3, 30 roots):
//! time to build the tree by joins, the cost of one leave with re-planning in
//! a full tree, and heap bytes per peer (measured by a counting allocator).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use meshrelay_mesh::{MeshConfig, Planner};
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

fn leaves(c: &mut Criterion) {
    let mut group = c.benchmark_group("leave_in_full_tree");
    for n in SIZES {
        let now = Instant::now();
        let mut planner = build(n, now);
        let mut live: Vec<String> = (0..n).map(id).collect();
        let mut next = n;
        let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let victim = live.swap_remove((rng % live.len() as u64) as usize);
                    let start = Instant::now();
                    let out = planner.leave(&victim).expect("victim is present");
                    total += start.elapsed();
                    black_box(out);
                    // Keep the tree full: one newcomer per leave, untimed.
                    let newcomer = id(next);
                    next += 1;
                    planner.join(&newcomer, None, now).expect("room");
                    live.push(newcomer);
                }
                total
            });
        });
        assert_eq!(
            planner.waiting_count(),
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
        let now = Instant::now();
        let mut planner = build(n, now);
        let mut live: Vec<String> = (0..n).map(id).collect();
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut times = Vec::with_capacity(20_000);
        for k in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let victim = live.swap_remove((rng % live.len() as u64) as usize);
            let start = Instant::now();
            let out = planner.leave(&victim).expect("victim is present");
            times.push(start.elapsed());
            black_box(out);
            let newcomer = id(n + k);
            planner.join(&newcomer, None, now).expect("room");
            live.push(newcomer);
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        println!(
            "leave/{n}: median {:?}, p99 {:?}, max {:?} over {} leaves",
            at(0.5),
            at(0.99),
            times[times.len() - 1],
            times.len()
        );
    }
}

fn memory(_: &mut Criterion) {
    for n in SIZES {
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
    }
}

criterion_group!(benches, memory, leave_distribution, joins, leaves);
criterion_main!(benches);
