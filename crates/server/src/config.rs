//! Server settings: every limit the operator can set.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything `meshrelay serve` can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Most children per peer; a peer's claimed capacity is clamped to it.
    pub max_children: usize,
    /// Most peers fed directly by the origin, per track.
    pub root_peer_count: usize,
    /// Deepest tree depth (roots are 0).
    pub max_depth: u32,
    /// A signaling session not heard from (message or pong) for this long is evicted.
    pub heartbeat_timeout: Duration,
    /// A `/signal` session that has not registered this long after it opened
    /// (or after its `Leave`) gets `expected_register` and is closed.
    pub register_timeout: Duration,
    /// The RTCIceServer array handed to every peer in `AssignParent`.
    pub ice_servers: serde_json::Value,
    /// Token required on `/signal` and `/ws/{track}`, if any.
    pub subscribe_token: Option<String>,
    /// Token required on `/ingest/{track}`, if any.
    pub publish_token: Option<String>,
    /// `/signal` needs no token even when a subscribe token is set.
    pub no_auth_signal: bool,
    /// Token required on `/api/v1/mesh` and `/metrics`, if any.
    pub admin_token: Option<String>,
    /// Web origins whose pages may read `/api/v1/mesh` and `/metrics`.
    pub cors_allow_origin: CorsOrigins,
    /// How the planner places peers (see `meshrelay_mesh::PlacementPolicy`).
    pub placement: meshrelay_mesh::PlacementPolicy,
    /// Objects kept per track for `?from=` resume.
    pub ring_objects: usize,
    /// Bytes kept per track for resume (the ring drops oldest objects past it).
    pub ring_bytes: usize,
    /// Bytes kept over all tracks' rings together (see [`crate::ring::RingBudget`]).
    pub ring_bytes_total: usize,
    /// Largest accepted `/signal` text frame.
    pub max_signal_bytes: usize,
    /// Largest accepted ingest object.
    pub max_object_bytes: usize,
    /// Most peers per track (`None`: unlimited).
    pub max_peers_per_track: Option<usize>,
    /// Most peers over all tracks (`None`: unlimited).
    pub max_peers_total: Option<usize>,
    /// Most open WebSocket connections (`/signal`, `/ws`, `/ingest`
    /// together); beyond it an upgrade is refused with HTTP 503.
    pub max_connections: usize,
    /// Most live tracks: any client can name a new one.
    pub max_tracks: usize,
    /// Sustained `/signal` messages per second per connection.
    pub message_rate: f64,
    /// Burst of `/signal` messages allowed above the sustained rate.
    pub message_burst: f64,
    /// Bytes per second one `/signal` session may relay to each of its
    /// neighbours (see [`crate::relay_budget`]), in bursts of four seconds'
    /// worth or one largest message, whichever is more.
    pub relay_bytes_rate: f64,
    /// Messages queued towards one signaling client (see [`crate::outbox`]).
    pub send_queue: usize,
    /// Bytes of text queued towards one signaling client (see [`crate::outbox`]).
    pub signal_queue_bytes: usize,
    /// Run the built-in demo publisher on `demo/live`.
    pub demo: bool,
    /// The `epoch` every track reports in `AssignParent`. `None` (the
    /// default, and what `meshrelay serve` uses) gives each track a random
    /// one when it is created; a fixed value is for tests that compare
    /// messages exactly.
    pub fixed_epoch: Option<String>,
}

impl ServerConfig {
    /// A fresh per-session relay budget under these settings.
    pub fn relay_budget(&self) -> crate::relay_budget::RelayBudget {
        let burst = (4.0 * self.relay_bytes_rate).max(self.max_signal_bytes as f64);
        let neighbours = self.max_children.saturating_add(1);
        crate::relay_budget::RelayBudget::new(self.relay_bytes_rate, burst, neighbours)
    }
}

/// What `meshrelay serve` runs with when given no flag: its clap defaults
/// are read from here, and the planner's limits from
/// [`meshrelay_mesh::MeshConfig::default`], so the three cannot disagree.
impl Default for ServerConfig {
    fn default() -> Self {
        let mesh = meshrelay_mesh::MeshConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_children: mesh.max_children,
            root_peer_count: mesh.root_peer_count,
            max_depth: mesh.max_depth,
            heartbeat_timeout: Duration::from_secs(mesh.heartbeat_timeout_secs),
            register_timeout: Duration::from_secs(10),
            ice_servers: serde_json::Value::Array(Vec::new()),
            subscribe_token: None,
            publish_token: None,
            no_auth_signal: false,
            admin_token: None,
            cors_allow_origin: CorsOrigins::Any,
            placement: meshrelay_mesh::PlacementPolicy::default(),
            ring_objects: 1024,
            ring_bytes: 64 * 1024 * 1024,
            ring_bytes_total: 512 * 1024 * 1024,
            max_signal_bytes: 64 * 1024,
            max_object_bytes: 4 * 1024 * 1024,
            max_peers_per_track: None,
            max_peers_total: None,
            max_connections: 16384,
            max_tracks: 1024,
            message_rate: 100.0,
            message_burst: 200.0,
            relay_bytes_rate: 64.0 * 1024.0,
            send_queue: 256,
            signal_queue_bytes: 256 * 1024,
            demo: true,
            fixed_epoch: None,
        }
    }
}

/// Which web origins may read the admin API from a page (CORS). The admin
/// token, when one is set, is required all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Any origin (`*`), as LVQR answers: its admin UI is served elsewhere.
    Any,
    /// Only these exact origins (`https://ops.example.org`).
    List(Vec<String>),
    /// No CORS headers: pages of other origins cannot read the API.
    Off,
}

/// Parses `--cors-allow-origin`: `*`, `none`, or a comma-separated list of
/// origins, each `scheme://host[:port]` with nothing after it.
pub fn parse_cors_origins(value: &str) -> Result<CorsOrigins, String> {
    match value.trim() {
        "*" => return Ok(CorsOrigins::Any),
        "none" => return Ok(CorsOrigins::Off),
        _ => {}
    }
    let mut origins = Vec::new();
    for origin in value.split(',').map(str::trim) {
        let rest = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .ok_or_else(|| {
                format!("{origin:?} is not an origin: it must start with http:// or https://")
            })?;
        let bad = |c: char| c.is_whitespace() || "/?#*".contains(c);
        if rest.is_empty() || rest.contains(bad) || !origin.is_ascii() {
            return Err(format!(
                "{origin:?} is not an origin: scheme://host[:port], with no path"
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(CorsOrigins::List(origins))
}

/// Checks an `--mesh-ice-servers` value: a JSON array of RTCIceServer
/// objects, each with `urls` (a string or a non-empty array of strings) and
/// optional string `username` / `credential`.
pub fn parse_ice_servers(json: &str) -> Result<serde_json::Value, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    let servers = value
        .as_array()
        .ok_or("must be a JSON array of RTCIceServer objects")?;
    for (i, server) in servers.iter().enumerate() {
        let obj = server
            .as_object()
            .ok_or_else(|| format!("entry {i} is not an object"))?;
        let urls_ok = match obj.get("urls") {
            Some(serde_json::Value::String(s)) => !s.is_empty(),
            Some(serde_json::Value::Array(a)) => {
                !a.is_empty() && a.iter().all(|u| u.as_str().is_some_and(|s| !s.is_empty()))
            }
            _ => false,
        };
        if !urls_ok {
            return Err(format!(
                "entry {i} needs \"urls\": a non-empty string or array of strings"
            ));
        }
        for key in ["username", "credential"] {
            if obj.get(key).is_some_and(|v| !v.is_string()) {
                return Err(format!("entry {i}: \"{key}\" must be a string"));
            }
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_parse() {
        assert_eq!(parse_cors_origins("*"), Ok(CorsOrigins::Any));
        assert_eq!(parse_cors_origins("none"), Ok(CorsOrigins::Off));
        assert_eq!(
            parse_cors_origins("https://a.example.org, http://127.0.0.1:3000"),
            Ok(CorsOrigins::List(vec![
                "https://a.example.org".into(),
                "http://127.0.0.1:3000".into()
            ]))
        );
        for bad in [
            "",
            "a.example.org",
            "https://",
            "https://a/b",
            "http://a,",
            "ftp://a",
            "https://*.a",
        ] {
            assert!(parse_cors_origins(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ice_servers_validation() {
        assert!(parse_ice_servers("[]").is_ok());
        assert!(parse_ice_servers(r#"[{"urls":"stun:stun.example.org"}]"#).is_ok());
        assert!(parse_ice_servers(
            r#"[{"urls":["turn:t.example.org"],"username":"u","credential":"c"}]"#
        )
        .is_ok());
        for bad in [
            "",
            "{",
            "{}",
            "[1]",
            "[{}]",
            r#"[{"urls":[]}]"#,
            r#"[{"urls":"x","username":1}]"#,
        ] {
            assert!(parse_ice_servers(bad).is_err(), "{bad}");
        }
    }
}
