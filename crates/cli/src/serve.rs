//! `meshrelay serve`: options and their mapping to [`ServerConfig`].

use crate::duration::parse_duration;
use clap::Args;
use meshrelay_server::{parse_cors_origins, parse_ice_servers, CorsOrigins, Server, ServerConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Options of `meshrelay serve`; each is also an environment variable.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MESHRELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Most children per peer; a peer's claimed capacity is clamped to it.
    #[arg(long, env = "MESHRELAY_MAX_PEERS", default_value_t = ServerConfig::default().max_children, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_peers: usize,
    /// Most root peers (fed by the origin) per track.
    #[arg(long, env = "MESHRELAY_MESH_ROOT_PEER_COUNT", default_value_t = ServerConfig::default().root_peer_count, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub mesh_root_peer_count: usize,
    /// Deepest tree depth (roots are depth 0).
    #[arg(long, env = "MESHRELAY_MESH_MAX_DEPTH", default_value_t = ServerConfig::default().max_depth, value_parser = clap::value_parser!(u32).range(1..))]
    pub mesh_max_depth: u32,
    /// A peer not heard from (message or pong) for this long is evicted: `10s`, `500ms`, `2.5`.
    #[arg(long, env = "MESHRELAY_HEARTBEAT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,
    /// A /signal connection that sends no Register this long after opening
    /// (or after a Leave) gets `expected_register` and is closed.
    #[arg(long, env = "MESHRELAY_REGISTER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub register_timeout: Duration,
    /// JSON array of RTCIceServer objects sent to peers in AssignParent
    /// (also read from LVQR_MESH_ICE_SERVERS).
    #[arg(long, env = "MESHRELAY_MESH_ICE_SERVERS", value_name = "JSON", value_parser = parse_ice_servers)]
    pub mesh_ice_servers: Option<serde_json::Value>,
    /// Token required on /signal and /ws/{track} (subprotocol lvqr.bearer.<token> or ?token=).
    #[arg(long, env = "MESHRELAY_SUBSCRIBE_TOKEN", hide_env_values = true)]
    pub subscribe_token: Option<String>,
    /// Token required on /ingest/{track}.
    #[arg(long, env = "MESHRELAY_PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,
    /// /signal needs no token even when --subscribe-token is set.
    #[arg(long, env = "MESHRELAY_NO_AUTH_SIGNAL")]
    pub no_auth_signal: bool,
    /// Token required on /api/v1/mesh and /metrics (Authorization: Bearer <token> or ?token=).
    #[arg(long, env = "MESHRELAY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Web origins whose pages may read /api/v1/mesh and /metrics (CORS):
    /// `*` (any, as LVQR), a comma-separated list of origins
    /// (`https://ops.example.org`), or `none`. The admin token is still required.
    #[arg(long, env = "MESHRELAY_CORS_ALLOW_ORIGIN", value_name = "ORIGINS", default_value = "*", value_parser = parse_cors_origins)]
    pub cors_allow_origin: CorsOrigins,
    /// How the planner places peers: `capacity-first` (relays toward the
    /// origin, peers that cannot relay at the edge), `shallowest` (the
    /// seed's rule) or `stable-first` (long-lived peers move up).
    #[arg(long, env = "MESHRELAY_PLACEMENT", value_name = "POLICY", default_value_t = ServerConfig::default().placement.as_str().to_string(), value_parser = clap::builder::PossibleValuesParser::new(["capacity-first", "shallowest", "stable-first"]))]
    pub(crate) placement: String,
    /// Objects kept per track for ?from= resume.
    #[arg(long, env = "MESHRELAY_RING_OBJECTS", default_value_t = ServerConfig::default().ring_objects as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub ring_objects: u64,
    /// Bytes kept per track for resume (oldest objects dropped past it).
    #[arg(long, env = "MESHRELAY_RING_BYTES", default_value_t = ServerConfig::default().ring_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub ring_bytes: usize,
    /// Bytes kept for resume over all tracks together: a track publishing
    /// past it drops its own oldest objects (keeping at least the newest).
    #[arg(long, env = "MESHRELAY_RING_BYTES_TOTAL", default_value_t = ServerConfig::default().ring_bytes_total, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub ring_bytes_total: usize,
    /// Largest /signal message in bytes; larger ones get `too_large` and a close.
    #[arg(long, env = "MESHRELAY_MAX_SIGNAL_BYTES", default_value_t = ServerConfig::default().max_signal_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_signal_bytes: usize,
    /// Largest ingested object in bytes.
    #[arg(long, env = "MESHRELAY_MAX_OBJECT_BYTES", default_value_t = ServerConfig::default().max_object_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_object_bytes: usize,
    /// Most peers per track (unlimited when unset).
    #[arg(long, env = "MESHRELAY_MAX_PEERS_PER_TRACK", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_peers_per_track: Option<usize>,
    /// Most peers over all tracks (unlimited when unset).
    #[arg(long, env = "MESHRELAY_MAX_PEERS_TOTAL", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_peers_total: Option<usize>,
    /// Most open WebSocket connections (/signal, /ws and /ingest together);
    /// an upgrade beyond it gets HTTP 503.
    #[arg(long, env = "MESHRELAY_MAX_CONNECTIONS", default_value_t = ServerConfig::default().max_connections as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Most live tracks at once; a new track beyond it is refused
    /// (`mesh_full` on /signal, HTTP 503 on /ingest and /ws).
    #[arg(long, env = "MESHRELAY_MAX_TRACKS", default_value_t = ServerConfig::default().max_tracks as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tracks: u64,
    /// Sustained /signal messages per second allowed per connection.
    #[arg(long, env = "MESHRELAY_MESSAGE_RATE", default_value_t = ServerConfig::default().message_rate, value_parser = positive)]
    pub message_rate: f64,
    /// Burst of /signal messages allowed above the sustained rate.
    #[arg(long, env = "MESHRELAY_MESSAGE_BURST", default_value_t = ServerConfig::default().message_burst, value_parser = positive)]
    pub message_burst: f64,
    /// Bytes per second a /signal peer may relay (SDP, ICE) to each of its
    /// neighbours, in bursts of four seconds' worth (or one largest
    /// message); beyond it the sender gets `rate_limited`.
    #[arg(long, env = "MESHRELAY_RELAY_BYTES_PER_SEC", default_value_t = ServerConfig::default().relay_bytes_rate, value_parser = positive)]
    pub relay_bytes_per_sec: f64,
    /// Messages queued towards one /signal client; a quarter is kept for
    /// AssignParent and PeerLeft, and a client whose queue overflows even
    /// for those is cut off (`slow_consumer`).
    #[arg(long, env = "MESHRELAY_SEND_QUEUE", default_value_t = ServerConfig::default().send_queue as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub send_queue: u64,
    /// Bytes of messages queued towards one /signal client; relayed SDP
    /// beyond three quarters of it is refused to its sender (`rate_limited`).
    #[arg(long, env = "MESHRELAY_SIGNAL_QUEUE_BYTES", default_value_t = ServerConfig::default().signal_queue_bytes, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub signal_queue_bytes: usize,
    /// Run the built-in demo publisher on track demo/live (the default);
    /// `--demo=false` turns it off like --no-demo. Off wins when the two
    /// disagree, so no mix of flags and variables is an error.
    #[arg(long, env = "MESHRELAY_DEMO", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: Option<bool>,
    /// Do not run the demo publisher.
    #[arg(long, env = "MESHRELAY_NO_DEMO")]
    pub no_demo: bool,
}

impl ServeArgs {
    /// The server settings; reads LVQR_MESH_ICE_SERVERS when the flag is unset.
    pub(crate) fn config(&self) -> Result<ServerConfig, String> {
        let ice_servers = match &self.mesh_ice_servers {
            Some(v) => v.clone(),
            None => match std::env::var("LVQR_MESH_ICE_SERVERS") {
                Ok(json) => parse_ice_servers(&json)
                    .map_err(|e| format!("invalid LVQR_MESH_ICE_SERVERS: {e}"))?,
                Err(_) => serde_json::Value::Array(Vec::new()),
            },
        };
        Ok(ServerConfig {
            listen: self.listen,
            max_children: self.max_peers,
            root_peer_count: self.mesh_root_peer_count,
            max_depth: self.mesh_max_depth,
            heartbeat_timeout: self.heartbeat_timeout,
            register_timeout: self.register_timeout,
            ice_servers,
            subscribe_token: self.subscribe_token.clone().filter(|t| !t.is_empty()),
            publish_token: self.publish_token.clone().filter(|t| !t.is_empty()),
            admin_token: self.admin_token.clone().filter(|t| !t.is_empty()),
            cors_allow_origin: self.cors_allow_origin.clone(),
            placement: self.placement.parse()?,
            no_auth_signal: self.no_auth_signal,
            ring_objects: usize::try_from(self.ring_objects).unwrap_or(usize::MAX),
            ring_bytes: self.ring_bytes,
            ring_bytes_total: self.ring_bytes_total,
            max_signal_bytes: self.max_signal_bytes,
            max_object_bytes: self.max_object_bytes,
            max_peers_per_track: self.max_peers_per_track,
            max_peers_total: self.max_peers_total,
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            max_tracks: usize::try_from(self.max_tracks).unwrap_or(usize::MAX),
            message_rate: self.message_rate,
            message_burst: self.message_burst,
            relay_bytes_rate: self.relay_bytes_per_sec,
            send_queue: usize::try_from(self.send_queue).unwrap_or(usize::MAX),
            signal_queue_bytes: self.signal_queue_bytes,
            demo: !self.no_demo && self.demo.unwrap_or(true),
            fixed_epoch: None,
        })
    }
}

/// A finite number above 0: a NaN or negative rate would refuse every
/// message, an infinite one disable the limit unnoticed.
fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} must be a finite number above 0")),
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let demo = config.demo;
    let server = Server::bind(config).await?;
    // Before the line below: a signal sent once it is read must shut down.
    let stop = meshrelay_server::shutdown_signal();
    let addr = server.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("meshrelay listening on http://{addr}");
    tracing::info!(%addr, demo, "serving /signal, /ingest/{{track}}, /ws/{{track}}, /api/v1/mesh, /metrics");
    if demo {
        println!("demo: publishing on track demo/live; open http://{addr}/demo");
    }
    server.run(stop).await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `meshrelay serve` with no flag and no variable runs exactly
    /// `ServerConfig::default()` (whose planner limits are
    /// `MeshConfig::default()`'s): the defaults have one definition.
    #[test]
    fn no_flags_mean_the_server_defaults() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        use clap::{CommandFactory, FromArgMatches};
        // The environment of whoever runs the test must not count.
        let cmd = Cli::command().mut_args(|a| a.env(None::<&str>));
        let matches = cmd.try_get_matches_from(["serve"]).unwrap();
        let args = Cli::from_arg_matches(&matches).unwrap().serve;
        let config = args.config().unwrap();
        assert_eq!(config, ServerConfig::default());
        assert!(config.demo, "the demo runs unless turned off");
        let mesh = meshrelay_mesh::MeshConfig::default();
        assert_eq!(
            (
                config.max_children,
                config.root_peer_count,
                config.max_depth
            ),
            (mesh.max_children, mesh.root_peer_count, mesh.max_depth)
        );
        assert_eq!(
            config.heartbeat_timeout.as_secs(),
            mesh.heartbeat_timeout_secs
        );
    }

    #[test]
    fn rates_must_be_finite_and_positive() {
        assert_eq!(positive("100"), Ok(100.0));
        assert_eq!(positive("0.5"), Ok(0.5));
        for bad in ["0", "-1", "nan", "inf", "x", ""] {
            assert!(positive(bad).is_err(), "{bad}");
        }
    }
}
