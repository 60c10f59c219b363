//! The single run: register, hold, measure memory, churn, verify.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

use crate::args::Plan;
use crate::churn::{self, ChurnPlan};
use crate::client::ClientConfig;
use crate::fleet::{Command, Fleet, State};
use crate::memory::{kb_per, mb, RssProbe};
use crate::register::{self, Registration};
use crate::report::{self, Table};
use crate::{sys, verify};

/// How long the final shutdown waits for clients to close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Shared client settings of a plan.
pub(crate) fn client_config(plan: &Plan) -> Arc<ClientConfig> {
    Arc::new(ClientConfig {
        target: plan.target.clone(),
        track: plan.track.clone(),
        capacity: plan.capacity,
        heartbeat: plan.heartbeat,
        register_timeout: plan.register_timeout,
        abrupt_rst: plan.abrupt_rst,
        sources: plan.sources.clone(),
    })
}

/// Closes every client still open (close frame) and waits, bounded, for
/// all tasks; the rest are aborted when `tasks` is dropped.
pub(crate) async fn shutdown(fleet: &Fleet, tasks: &mut JoinSet<()>) {
    fleet.command(0..fleet.len(), Command::CloseClean);
    let _ = timeout(SHUTDOWN_WAIT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

/// CPU time of the server and of this process at one instant.
struct CpuMark {
    server: Option<f64>,
    own: Option<f64>,
    machine: Option<f64>,
    at: std::time::Instant,
}

impl CpuMark {
    fn now(server_pid: Option<u32>) -> Self {
        Self {
            server: server_pid.and_then(sys::cpu_secs),
            own: sys::cpu_secs(std::process::id()),
            machine: sys::machine_busy_secs(),
            at: std::time::Instant::now(),
        }
    }

    /// Adds the CPU used since `self` to the table.
    fn report(&self, t: &mut Table, phase: &str, server_pid: Option<u32>) {
        let end = Self::now(server_pid);
        let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        report::cpu(
            t,
            phase,
            diff(self.server, end.server),
            diff(self.own, end.own),
            diff(self.machine, end.machine),
            end.at.duration_since(self.at).as_secs_f64(),
        );
    }
}

/// Registration rows printed as they are known.
fn header(plan: &Plan) -> String {
    format!(
        "meshrelay bench-signal: {} track {:?}, N={}, offered {:.0}/s, capacity {}, peer ids {}0..{}",
        plan.target.request_url.split('?').next().unwrap_or(""),
        plan.track,
        plan.clients,
        plan.rate,
        plan.capacity
            .map_or("(not sent)".to_string(), |c| c.to_string()),
        plan.prefix,
        plan.clients - 1
    )
}

/// Figures of a single run (read by tests).
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Registration phase.
    pub registration: Registration,
    /// Tree check after the hold.
    pub tree_held: verify::TreeCheck,
    /// Churn phase and the tree check after it, when churn ran.
    pub churn: Option<(churn::Churn, verify::TreeCheck)>,
    /// Clean closes the server answered.
    pub clean_close_acked: u64,
    /// The printed table.
    pub table: String,
}

impl Outcome {
    /// What went wrong on the server's side, for the exit status.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.registration.registered == 0 {
            v.push("no client registered (see the errors in the table)".to_string());
        }
        if !self.tree_held.ok() {
            v.push("tree check after hold failed".to_string());
        }
        if let Some((ch, tree)) = &self.churn {
            if ch.orphans_retold < ch.orphans {
                v.push(format!(
                    "{} of {} orphans never re-told",
                    ch.orphans - ch.orphans_retold,
                    ch.orphans
                ));
            }
            if !tree.ok() {
                v.push("tree check after churn failed".to_string());
            }
            if self.clean_close_acked < ch.clean as u64 {
                v.push(format!(
                    "{} clean closes unanswered",
                    ch.clean as u64 - self.clean_close_acked
                ));
            }
        }
        v
    }
}

/// Runs the single bench, prints its figures, and fails when the server
/// misbehaved (nothing registered, orphans never re-told, tree violations).
pub(crate) async fn run(plan: &Plan) -> anyhow::Result<()> {
    let outcome = execute(plan).await;
    println!("{}", outcome.table);
    let problems = outcome.problems();
    if !problems.is_empty() {
        anyhow::bail!("the server misbehaved: {}", problems.join("; "));
    }
    Ok(())
}

/// Runs the single bench and returns its figures.
pub(crate) async fn execute(plan: &Plan) -> Outcome {
    eprintln!("{}", header(plan));
    let fleet = Arc::new(Fleet::new(plan.prefix.clone(), plan.clients));
    let cfg = client_config(plan);
    let probe = RssProbe::start(plan.server_pid);
    let rss_base = probe.now_kib();
    let self_base = sys::self_rss_kib();
    let mut tasks = JoinSet::new();
    let mut table = Table::default();

    eprintln!("registering {} clients...", plan.clients);
    let cpu_reg = CpuMark::now(plan.server_pid);
    let listen_before = sys::listen_overflows();
    let reg: Registration = register::register_all(&fleet, &cfg, plan.rate, &mut tasks).await;
    table.section(&format!(
        "Registration (N={}, offered {:.0}/s)",
        plan.clients, plan.rate
    ));
    report::registration(&mut table, &reg);
    table.row("client source addresses", report::sources(&plan.sources));
    cpu_reg.report(&mut table, "registration", plan.server_pid);
    if let (Some(a), Some(b)) = (listen_before, sys::listen_overflows()) {
        table.row(
            "TCP listen queue overflows",
            format!(
                "{} (drops {}) in this network namespace during registration{}",
                b.0 - a.0,
                b.1 - a.1,
                if b.0 > a.0 {
                    ": the server's accept backlog overflowed, clients retried SYNs after ~1 s"
                } else {
                    ""
                }
            ),
        );
    }

    eprintln!(
        "registered {} / {}; holding {:.1} s...",
        reg.registered,
        plan.clients,
        plan.hold.as_secs_f64()
    );
    let cpu_hold = CpuMark::now(plan.server_pid);
    sleep(plan.hold).await;
    let held = fleet.count_state(State::Registered);
    let rss_held = probe.now_kib();
    let self_held = sys::self_rss_kib();
    let tree_held = verify::check(&fleet);
    table.section(&format!("Hold ({:.1} s)", plan.hold.as_secs_f64()));
    table
        .row(
            "still connected after hold",
            format!(
                "{held} / {} registered ({} dropped by the server)",
                reg.registered,
                fleet.count_state(State::Lost)
            ),
        )
        .row(
            "heartbeats sent so far",
            fleet.counters.heartbeats.load(Relaxed),
        );
    report::tree(&mut table, "tree check after hold", &tree_held);
    cpu_hold.report(&mut table, "hold", plan.server_pid);

    table.section("Memory");
    match (rss_base, rss_held) {
        (Some(b), Some(h)) => {
            table.row("server RSS before", mb(b)).row(
                "server RSS holding clients",
                format!("{} ({} per connected peer)", mb(h), kb_per(b, h, held)),
            );
        }
        _ => {
            table.row(
                "server RSS",
                if plan.server_pid.is_some() {
                    "unreadable (is --server-pid right?)"
                } else {
                    "not measured (no --server-pid)"
                },
            );
        }
    }
    if let (Some(b), Some(h)) = (self_base, self_held) {
        table.row(
            "load generator RSS",
            format!("{} ({} per client)", mb(h), kb_per(b, h, held)),
        );
    }

    let mut churn_outcome = None;
    if plan.churn > 0.0 && held > 0 {
        eprintln!("churning {:.0}%...", plan.churn * 100.0);
        probe.reset_peak();
        let cpu_churn = CpuMark::now(plan.server_pid);
        let ch = churn::churn(
            &fleet,
            ChurnPlan {
                fraction: plan.churn,
                seed: plan.seed,
                settle_timeout: plan.settle_timeout,
                quiet: plan.quiet,
            },
        )
        .await;
        // Let clean closes finish (each waits at most 2 s for the server).
        let closes_done = || {
            fleet.counters.clean_close_acked.load(Relaxed)
                + fleet.counters.clean_close_unanswered.load(Relaxed)
        };
        let _ = timeout(Duration::from_secs(3), async {
            while closes_done() < ch.clean as u64 {
                sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let tree_after = verify::check(&fleet);
        table.section(&format!("Churn ({:.1}%)", plan.churn * 100.0));
        report::churn(&mut table, &ch);
        cpu_churn.report(&mut table, "churn until settled", plan.server_pid);
        table.row(
            "clean closes answered by server",
            format!(
                "{} / {} (unanswered after 2 s: {})",
                fleet.counters.clean_close_acked.load(Relaxed),
                ch.clean,
                fleet.counters.clean_close_unanswered.load(Relaxed)
            ),
        );
        report::tree(&mut table, "tree check after churn", &tree_after);
        if let (Some(h), Some(peak), Some(after)) = (rss_held, probe.peak_kib(), probe.now_kib()) {
            table.row(
                "server RSS during / after churn",
                format!(
                    "peak {}, now {} (before churn {})",
                    mb(peak),
                    mb(after),
                    mb(h)
                ),
            );
        }
        churn_outcome = Some((ch, tree_after));
    }

    table.section("Errors and failures");
    report::errors(&mut table, &fleet.errors());
    let malformed = fleet.counters.malformed.load(Relaxed);
    if malformed > 0 {
        table.row("malformed server frames", malformed);
    }

    eprintln!("closing clients...");
    let clean_close_acked = fleet.counters.clean_close_acked.load(Relaxed);
    shutdown(&fleet, &mut tasks).await;
    Outcome {
        registration: reg,
        tree_held,
        churn: churn_outcome,
        clean_close_acked,
        table: format!("{}{}", header(plan), table.finish()),
    }
}
