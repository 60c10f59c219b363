//! `meshrelay-loadgen`: stand-alone entry point of the `/signal` load
//! generator (the same as `meshrelay bench-signal`).

use clap::Parser;

/// Load generator for meshrelay's `/signal` WebSocket (loopback only).
#[derive(Parser)]
#[command(name = "meshrelay-loadgen", version, about)]
struct Cli {
    #[command(flatten)]
    args: meshrelay_loadgen::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meshrelay_loadgen::run(Cli::parse().args).await
}
