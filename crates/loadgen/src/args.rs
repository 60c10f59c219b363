//! Command-line options of the load generator and their validation.

use std::time::Duration;

use anyhow::{ensure, Result};

use crate::target::Target;

/// Options of `meshrelay bench-signal` / `meshrelay-loadgen`.
///
/// Every phase is bounded in time; the whole run stops by itself after
/// `--time-limit-secs` at the latest.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// WebSocket URL of the server's `/signal` endpoint. Only loopback
    /// targets are accepted (127.0.0.0/8, [::1] or `localhost`), scheme `ws`.
    #[arg(long, default_value = "ws://127.0.0.1:8080/signal")]
    pub url: String,

    /// Number of concurrent clients (N). Limited by the open-file limit of
    /// this process (`ulimit -n`).
    #[arg(short = 'n', long = "clients", default_value_t = 2000)]
    pub clients: usize,

    /// Offered registration rate, new clients per second.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,

    /// Track every client registers on.
    #[arg(long, default_value = "live/bench")]
    pub track: String,

    /// Peer id prefix; client i registers as `<prefix><i>`. Default:
    /// `lg<pid>-`, unique per run so a previous run's leftovers never clash.
    #[arg(long)]
    pub peer_prefix: Option<String>,

    /// `capacity` sent in Register (omitted when not given).
    #[arg(long)]
    pub capacity: Option<u32>,

    /// Subscribe token, sent as `?token=<token>` (or as the subprotocol
    /// `lvqr.bearer.<token>` with `--token-in-subprotocol`).
    #[arg(long)]
    pub token: Option<String>,

    /// Send the token as WebSocket subprotocol instead of a query parameter.
    #[arg(long)]
    pub token_in_subprotocol: bool,

    /// Fraction of the registered clients to disconnect in the churn phase
    /// (half with a close frame, half abruptly). 0 skips the churn phase.
    #[arg(long, default_value_t = 0.10)]
    pub churn: f64,

    /// Abrupt disconnects reset the TCP connection (SO_LINGER 0, RST)
    /// instead of closing it (FIN); no close frame either way.
    #[arg(long)]
    pub abrupt_rst: bool,

    /// Seed of the choice of churned clients.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// PID of the server, to read its RSS (VmRSS in /proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// How long all clients are held connected after registration, before
    /// memory is read and churn starts.
    #[arg(long, default_value_t = 10.0)]
    pub hold_secs: f64,

    /// Interval between a client's Heartbeat messages.
    #[arg(long, default_value_t = 5.0)]
    pub heartbeat_secs: f64,

    /// A client not registered (TCP connect, upgrade and AssignParent) after
    /// this long counts as failed.
    #[arg(long, default_value_t = 30.0)]
    pub register_timeout_secs: f64,

    /// Longest wait for every orphan to be re-told after the churn.
    #[arg(long, default_value_t = 30.0)]
    pub settle_timeout_secs: f64,

    /// The churn has settled when no AssignParent or PeerLeft arrived for
    /// this long (and every orphan was re-told).
    #[arg(long, default_value_t = 1.0)]
    pub quiet_secs: f64,

    /// Hard limit of the whole run.
    #[arg(long, default_value_t = 600.0)]
    pub time_limit_secs: f64,

    /// Number of loopback source addresses (127.0.0.1, 127.0.0.2, ...) the
    /// clients' connections are spread over, round robin. Linux gives
    /// `connect()` about 14,000 cheap ephemeral ports per source address
    /// towards one server; past that each connect scans every used port
    /// (about 0.5 ms of CPU), which stalls the load generator itself.
    /// Default: one per 4,096 clients. 1 leaves the choice to the kernel.
    /// IPv4 targets only (`[::1]` has no other address).
    #[arg(long)]
    pub source_addrs: Option<usize>,

    /// Find the highest registration rate the server sustains instead of the
    /// single run: offer `--rate`, then multiply it by `--rate-step` each step,
    /// until p99 exceeds `--max-p99-ms`, achieved < 95% of offered, a client
    /// fails, or `--max-rate` is passed. Each step registers N fresh clients
    /// and closes them again.
    #[arg(long)]
    pub find_max_rate: bool,

    /// p99 bound of Register->AssignParent for `--find-max-rate`.
    #[arg(long, default_value_t = 10.0)]
    pub max_p99_ms: f64,

    /// Rate multiplier between steps of `--find-max-rate` (> 1).
    #[arg(long, default_value_t = 1.5)]
    pub rate_step: f64,

    /// Highest rate `--find-max-rate` offers.
    #[arg(long, default_value_t = 200_000.0)]
    pub max_rate: f64,

    /// Largest number of steps of `--find-max-rate`.
    #[arg(long, default_value_t = 12)]
    pub max_steps: u32,
}

/// Largest offered rate accepted, clients per second.
const MAX_RATE: f64 = 1_000_000.0;

/// Validated, ready-to-use form of [`Args`].
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub target: Target,
    pub clients: usize,
    pub rate: f64,
    pub track: String,
    pub prefix: String,
    pub capacity: Option<u32>,
    pub churn: f64,
    pub abrupt_rst: bool,
    pub seed: u64,
    pub server_pid: Option<u32>,
    pub hold: Duration,
    pub heartbeat: Duration,
    pub register_timeout: Duration,
    pub settle_timeout: Duration,
    pub quiet: Duration,
    pub time_limit: Duration,
    pub search: Option<Search>,
    /// Source addresses of the clients' connections (empty: the kernel's).
    pub sources: Vec<std::net::IpAddr>,
}

/// Options of the maximum-rate search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Search {
    pub max_p99_ms: f64,
    pub step: f64,
    pub max_rate: f64,
    pub max_steps: u32,
}

impl Args {
    /// Checks every option (but not the open-file limit, which depends on the
    /// process) and resolves defaults.
    pub(crate) fn plan(&self) -> Result<Plan> {
        let target = Target::parse(&self.url, self.token.as_deref(), self.token_in_subprotocol)?;
        ensure!(self.clients >= 1, "--clients must be at least 1");
        ensure!(
            self.rate.is_finite() && self.rate > 0.0 && self.rate <= MAX_RATE,
            "--rate must be in (0, {MAX_RATE}]"
        );
        ensure!(
            (0.0..=1.0).contains(&self.churn),
            "--churn must be a fraction in [0, 1]"
        );
        validate_track(&self.track)?;
        let prefix = match &self.peer_prefix {
            Some(p) => p.clone(),
            None => format!("lg{}-", std::process::id()),
        };
        validate_prefix(&prefix, self.clients)?;
        if let Some(c) = self.capacity {
            ensure!(c <= 1024, "--capacity must be at most 1024");
        }
        if let Some(k) = self.source_addrs {
            ensure!(
                (1..=crate::target::MAX_SOURCES).contains(&k),
                "--source-addrs must be in 1..={}",
                crate::target::MAX_SOURCES
            );
        }
        let sources = crate::target::source_addrs(&target.addr, self.clients, self.source_addrs);
        let search = if self.find_max_rate {
            ensure!(
                self.rate_step.is_finite() && self.rate_step > 1.0,
                "--rate-step must be > 1"
            );
            ensure!(self.max_p99_ms > 0.0, "--max-p99-ms must be > 0");
            ensure!(
                self.max_rate.is_finite()
                    && self.max_rate >= self.rate
                    && self.max_rate <= MAX_RATE,
                "--max-rate must be in [--rate, {MAX_RATE}]"
            );
            ensure!(
                (1..=50).contains(&self.max_steps),
                "--max-steps must be in 1..=50"
            );
            // Step prefixes add `s<k>-`.
            validate_prefix(&format!("{prefix}s{}-", self.max_steps), self.clients)?;
            Some(Search {
                max_p99_ms: self.max_p99_ms,
                step: self.rate_step,
                max_rate: self.max_rate,
                max_steps: self.max_steps,
            })
        } else {
            None
        };
        Ok(Plan {
            target,
            clients: self.clients,
            rate: self.rate,
            track: self.track.clone(),
            prefix,
            capacity: self.capacity,
            churn: self.churn,
            abrupt_rst: self.abrupt_rst,
            seed: self.seed,
            server_pid: self.server_pid,
            hold: secs("--hold-secs", self.hold_secs, 0.0, 3600.0)?,
            heartbeat: secs("--heartbeat-secs", self.heartbeat_secs, 0.05, 3600.0)?,
            register_timeout: secs(
                "--register-timeout-secs",
                self.register_timeout_secs,
                0.1,
                3600.0,
            )?,
            settle_timeout: secs(
                "--settle-timeout-secs",
                self.settle_timeout_secs,
                0.1,
                3600.0,
            )?,
            quiet: secs("--quiet-secs", self.quiet_secs, 0.01, 600.0)?,
            time_limit: secs("--time-limit-secs", self.time_limit_secs, 1.0, 86_400.0)?,
            search,
            sources,
        })
    }
}

/// A duration option in seconds, within `[min, max]`.
fn secs(name: &str, v: f64, min: f64, max: f64) -> Result<Duration> {
    ensure!(
        v.is_finite() && v >= min && v <= max,
        "{name} must be in [{min}, {max}] seconds, got {v}"
    );
    Ok(Duration::from_secs_f64(v))
}

/// The protocol's track rule (`meshrelay_protocol::validate_track`), as an
/// option error.
pub(crate) fn validate_track(track: &str) -> Result<()> {
    meshrelay_protocol::validate_track(track)
        .map_err(|r| anyhow::anyhow!("invalid --track {track:?}: {}", r.reason))
}

/// The prefix plus the largest client index must form a valid peer id
/// (`meshrelay_protocol::validate_peer_id`).
pub(crate) fn validate_prefix(prefix: &str, clients: usize) -> Result<()> {
    let longest = format!("{prefix}{}", clients.saturating_sub(1));
    meshrelay_protocol::validate_peer_id(&longest).map_err(|r| {
        anyhow::anyhow!(
            "invalid --peer-prefix {prefix:?}: the peer ids it makes, up to {longest:?}, break the protocol's rule: {}",
            r.reason
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Args {
        let mut argv = vec!["loadgen"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parse").args
    }

    #[test]
    fn defaults_are_valid() {
        let plan = parse(&[]).plan().expect("valid");
        assert_eq!(plan.clients, 2000);
        assert_eq!(plan.rate, 2000.0);
        assert!((plan.churn - 0.1).abs() < 1e-12);
        assert!(plan.prefix.starts_with("lg"));
        assert!(plan.search.is_none());
    }

    #[test]
    fn rejects_bad_numbers() {
        assert!(parse(&["-n", "0"]).plan().is_err());
        assert!(parse(&["--rate", "0"]).plan().is_err());
        assert!(parse(&["--rate=-5"]).plan().is_err());
        assert!(parse(&["--churn", "1.5"]).plan().is_err());
        assert!(parse(&["--hold-secs=-1"]).plan().is_err());
        assert!(parse(&["--time-limit-secs", "0"]).plan().is_err());
        assert!(parse(&["--find-max-rate", "--rate-step", "1"])
            .plan()
            .is_err());
        assert!(parse(&["--find-max-rate", "--rate", "100"]).plan().is_ok());
        assert!(parse(&["--source-addrs", "0"]).plan().is_err());
        assert!(parse(&["--source-addrs", "255"]).plan().is_err());
        assert!(parse(&["--source-addrs", "1", "-n", "15000"])
            .plan()
            .unwrap()
            .sources
            .is_empty());
    }

    #[test]
    fn rejects_non_loopback_urls() {
        for url in [
            "ws://10.0.0.1:8080/signal",
            "ws://192.168.1.2/signal",
            "ws://example.com/signal",
            "wss://127.0.0.1/signal",
            "http://127.0.0.1/signal",
        ] {
            assert!(parse(&["--url", url]).plan().is_err(), "{url}");
        }
        for url in [
            "ws://127.0.0.1:9/signal",
            "ws://localhost:9/signal",
            "ws://[::1]:9/signal",
        ] {
            assert!(parse(&["--url", url]).plan().is_ok(), "{url}");
        }
    }

    #[test]
    fn track_rules() {
        for ok in ["live/test", "a", "a.b_c-d/e"] {
            assert!(validate_track(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(129);
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a b", long.as_str()] {
            assert!(validate_track(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_rules() {
        assert!(validate_prefix("lg-", 19_000).is_ok());
        assert!(validate_prefix("", 10).is_ok());
        assert!(validate_prefix("a b", 10).is_err());
        assert!(validate_prefix(&"p".repeat(61), 10_000).is_err());
        assert!(validate_prefix(&"p".repeat(60), 10).is_ok());
    }
}
