#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

#[cfg(test)]
mod against_server;
mod args;
mod bench;
mod churn;
mod client;
#[cfg(test)]
mod fake_server;
mod fleet;
mod memory;
mod register;
mod report;
mod search;
pub mod stats;
mod sys;
mod target;
mod verify;
mod wire;

pub use args::Args;

use anyhow::{bail, Context};

/// Runs the bench described by `args` and prints its figures to stdout
/// (progress goes to stderr). Fails on invalid options, on a non-loopback
/// target, or when N exceeds what the open-file limit allows; stops by itself
/// after `--time-limit-secs`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let limit = sys::raise_nofile_limit().context("reading the open-file limit")?;
    sys::check_fd_budget(plan.clients, limit, sys::open_fds())?;
    let work = async {
        match plan.search {
            Some(search) => search::run(&plan, search).await,
            None => bench::run(&plan).await,
        }
    };
    match tokio::time::timeout(plan.time_limit, work).await {
        Ok(r) => r,
        Err(_) => bail!(
            "time limit of {:.0} s reached; the run was stopped (raise --time-limit-secs)",
            plan.time_limit.as_secs_f64()
        ),
    }
}
