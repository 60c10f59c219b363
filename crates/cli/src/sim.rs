//! `meshrelay sim`: runs a scenario through the simulator and prints its
//! report, with a progress bar on a terminal.

use clap::Args;
use meshrelay_sim::{report, Scenario, ScenarioError};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `meshrelay sim`. Each scenario flag sets the scenario field
/// named in its help, over `--scenario FILE`.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Scenario file (TOML); the flags below override its fields.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// seed: seed of every random draw.
    #[arg(long)]
    seed: Option<String>,
    /// duration_s: simulated seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<String>,
    /// policy: capacity-first (the server's default), shallowest, stable-first or seed.
    #[arg(long)]
    policy: Option<String>,
    /// repair: read a feed gap from the origin's ring (true/false).
    #[arg(long, value_name = "BOOL")]
    repair: Option<String>,
    /// sample_every_s: interval of the time series, seconds.
    #[arg(long, value_name = "SECONDS")]
    sample_every: Option<String>,
    /// audience.initial: viewers at the start.
    #[arg(long, value_name = "N")]
    initial: Option<String>,
    /// audience.arrivals: `steady` or FROM_S:PER_S steps (0:100,1800:150).
    #[arg(long, value_name = "STEPS")]
    arrivals: Option<String>,
    /// audience.flash_crowds: AT_S:VIEWERS:OVER_S bursts (1800:20000:60).
    #[arg(long, value_name = "BURSTS")]
    flash: Option<String>,
    /// audience.session: exponential:MEAN_S, lognormal:MEAN_S:SIGMA or pareto:MEAN_S:ALPHA.
    #[arg(long, value_name = "DIST")]
    session: Option<String>,
    /// audience.capacity_mix: CAPACITY:WEIGHT pairs (0:20,1:30,3:50).
    #[arg(long, value_name = "MIX")]
    capacity_mix: Option<String>,
    /// audience.abrupt_fraction: share of leaves without a word, 0 to 1.
    #[arg(long, value_name = "SHARE")]
    abrupt_fraction: Option<String>,
    /// network.hop_delay_ms: one-way delay of a hop, ms.
    #[arg(long, value_name = "MS")]
    hop_delay_ms: Option<String>,
    /// network.setup_round_trips: round trips before a new link carries objects.
    #[arg(long, value_name = "N")]
    setup_round_trips: Option<String>,
    /// network.heartbeat_timeout_s: an abrupt leaver without children is noticed after this.
    #[arg(long, value_name = "SECONDS")]
    heartbeat_timeout: Option<String>,
    /// network.channel_close_s: an abrupt leaver with children is noticed after this (if sooner).
    #[arg(long, value_name = "SECONDS")]
    channel_close: Option<String>,
    /// stream.objects_per_s: objects published per second.
    #[arg(long, value_name = "RATE")]
    objects_per_s: Option<String>,
    /// stream.object_bytes: bytes per object.
    #[arg(long, value_name = "BYTES")]
    object_bytes: Option<String>,
    /// planner.max_children: most children per peer.
    #[arg(long, value_name = "N")]
    max_children: Option<String>,
    /// planner.root_count: most roots.
    #[arg(long, value_name = "N")]
    root_count: Option<String>,
    /// planner.max_depth: deepest depth.
    #[arg(long, value_name = "N")]
    max_depth: Option<String>,
    /// Run this many seeds (the scenario's, then the next ones) and report
    /// mean ± 95% confidence interval of the headline figures.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Write the chart over time to this SVG file (the first run's).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Add planner wall-clock time per operation (not deterministic).
    #[arg(long)]
    timing: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

impl SimArgs {
    fn overrides(&self) -> [(&'static str, &Option<String>); 20] {
        [
            ("seed", &self.seed),
            ("duration_s", &self.duration),
            ("policy", &self.policy),
            ("repair", &self.repair),
            ("sample_every_s", &self.sample_every),
            ("audience.initial", &self.initial),
            ("audience.arrivals", &self.arrivals),
            ("audience.flash_crowds", &self.flash),
            ("audience.session", &self.session),
            ("audience.capacity_mix", &self.capacity_mix),
            ("audience.abrupt_fraction", &self.abrupt_fraction),
            ("network.hop_delay_ms", &self.hop_delay_ms),
            ("network.setup_round_trips", &self.setup_round_trips),
            ("network.heartbeat_timeout_s", &self.heartbeat_timeout),
            ("network.channel_close_s", &self.channel_close),
            ("stream.objects_per_s", &self.objects_per_s),
            ("stream.object_bytes", &self.object_bytes),
            ("planner.max_children", &self.max_children),
            ("planner.root_count", &self.root_count),
            ("planner.max_depth", &self.max_depth),
        ]
    }

    /// The scenario: the file's fields (or the defaults), then the flags.
    pub(crate) fn scenario(&self) -> Result<Scenario, ScenarioError> {
        let mut sc = Scenario::default();
        if let Some(path) = &self.scenario {
            let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
                field: "scenario".into(),
                message: format!("cannot read {}: {e}", path.display()),
            })?;
            sc.apply_toml(&text)?;
        }
        for (field, value) in self.overrides() {
            if let Some(v) = value {
                sc.set(field, v)?;
            }
        }
        Ok(sc)
    }
}

/// Runs `meshrelay sim`: exit code 2 for a bad scenario, 1 when the chart
/// cannot be written.
pub(crate) fn run(args: SimArgs) -> ExitCode {
    let sc = match args.scenario() {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("error: scenario field {e}");
            return ExitCode::from(2);
        }
    };
    let show = !args.no_progress && std::io::stderr().is_terminal();
    let total = sc.duration_s * f64::from(args.runs);
    let bar = if show {
        let bar = indicatif::ProgressBar::new(total.ceil() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} simulated s, {elapsed} elapsed, ~{eta} left",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let results = meshrelay_sim::run_seeds(&sc, args.runs, &mut |t| bar.set_position(t as u64));
    bar.finish_and_clear();
    let out = match (args.runs, args.json) {
        (1, false) => report::text(&results[0], args.timing),
        (1, true) => report::json(&results[0], args.timing),
        (_, false) => report::multi_text(&results, args.timing),
        (_, true) => report::multi_json(&results, args.timing),
    };
    print!("{out}");
    if let Some(path) = &args.plot {
        if let Err(e) = meshrelay_sim::plot::write_svg(&results[0], path) {
            eprintln!("error: cannot write the chart {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
