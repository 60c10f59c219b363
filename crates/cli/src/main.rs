//! `meshrelay`: the peer-assisted live relay's command line.
#![warn(missing_docs, unreachable_pub)]

mod duration;
mod publish;
mod serve;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// meshrelay: a live relay whose viewers relay the stream to each other.
#[derive(Debug, Parser)]
#[command(name = "meshrelay", version, about)]
struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, global = true, env = "MESHRELAY_LOG", default_value = "info")]
    log_level: tracing::Level,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the origin and signaling server (with a demo publisher by default).
    Serve(serve::ServeArgs),
    /// Publish a stream to a server's /ingest/{track} from stdin or a generator.
    Publish(publish::PublishArgs),
    /// Load-test a server's /signal endpoint (run it in its own process).
    BenchSignal(meshrelay_loadgen::Args),
    /// Simulate an event against the real planner: churn, origin egress,
    /// offload, depth, feed gaps (deterministic for a seed).
    Sim(sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator needs neither logging nor a runtime.
    let cli = match cli.command {
        Command::Sim(args) => return sim::run(args),
        _ => cli,
    };
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match &cli.command {
        Command::Serve(args) => match args.config() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(_) => serve::serve(config.expect("built above")).await,
            Command::Publish(args) => publish::publish(args).await,
            Command::BenchSignal(args) => meshrelay_loadgen::run(args).await,
            Command::Sim(_) => unreachable!("run before the runtime"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
