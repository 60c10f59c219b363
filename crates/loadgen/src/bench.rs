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

/// Runs the single bench and prints its figures.
pub(crate) async fn run(plan: &Plan) -> anyhow::Result<()> {
    eprintln!("{}", header(plan));
    let fleet = Arc::new(Fleet::new(plan.prefix.clone(), plan.clients));
    let cfg = client_config(plan);
    let probe = RssProbe::start(plan.server_pid);
    let rss_base = probe.now_kib();
    let self_base = sys::self_rss_kib();
    let mut tasks = JoinSet::new();
    let mut table = Table::default();

    eprintln!("registering {} clients...", plan.clients);
    let reg: Registration = register::register_all(&fleet, &cfg, plan.rate, &mut tasks).await;
    table.section(&format!(
        "Registration (N={}, offered {:.0}/s)",
        plan.clients, plan.rate
    ));
    report::registration(&mut table, &reg);

    eprintln!(
        "registered {} / {}; holding {:.1} s...",
        reg.registered,
        plan.clients,
        plan.hold.as_secs_f64()
    );
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

    if plan.churn > 0.0 && held > 0 {
        eprintln!("churning {:.0}%...", plan.churn * 100.0);
        probe.reset_peak();
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
        // Let clean closes finish before counting their answers.
        sleep(Duration::from_millis(100)).await;
        let tree_after = verify::check(&fleet);
        table.section(&format!("Churn ({:.1}%)", plan.churn * 100.0));
        report::churn(&mut table, &ch);
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
    }

    table.section("Errors and failures");
    report::errors(&mut table, &fleet.errors());
    let malformed = fleet.counters.malformed.load(Relaxed);
    if malformed > 0 {
        table.row("malformed server frames", malformed);
    }

    eprintln!("closing clients...");
    shutdown(&fleet, &mut tasks).await;
    println!("{}{}", header(plan), table.finish());
    Ok(())
}
