//! State shared by every handler.

use crate::config::ServerConfig;
use crate::connections::{Connection, Connections, TooManyConnections};
use crate::demo;
use crate::registry::Registry;
use crate::ring::RingBudget;
use crate::tree::MeshCtx;
use crate::wire::IceServers;
use meshrelay_mesh::MeshConfig;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The running server's shared state.
pub struct App {
    /// Settings.
    pub config: ServerConfig,
    /// Live tracks.
    pub registry: Arc<Registry>,
    /// Tree settings and server-wide peer count.
    pub ctx: MeshCtx,
    /// Cancelled when the server stops; every connection task watches it.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for their close frames.
    pub tracker: TaskTracker,
    /// Open WebSocket connections, capped by `--max-connections`.
    pub connections: Connections,
    next_registration: AtomicU64,
}

impl App {
    /// Builds the state from settings.
    pub fn new(config: ServerConfig) -> Arc<Self> {
        let mesh = MeshConfig {
            max_children: config.max_children,
            root_peer_count: config.root_peer_count,
            max_depth: config.max_depth,
            // Liveness is decided per connection by the server (sub-second
            // timeouts allowed); the planner's own sweep is not used.
            heartbeat_timeout_secs: config.heartbeat_timeout.as_secs_f64().ceil().max(1.0) as u64,
        };
        Arc::new(Self {
            registry: Arc::new({
                let registry = Registry::new(
                    config.max_tracks,
                    mesh.clone(),
                    config.ring_objects,
                    config.ring_bytes,
                    Arc::new(RingBudget::new(config.ring_bytes_total)),
                );
                let registry = registry.with_placement(config.placement);
                let registry = match &config.fixed_epoch {
                    Some(epoch) => registry.with_fixed_epoch(epoch),
                    None => registry,
                };
                if config.demo {
                    registry.with_track_shape(demo::DEMO_TRACK, demo::demo_mesh(&mesh))
                } else {
                    registry
                }
            }),
            ctx: MeshCtx {
                mesh,
                ice_servers: IceServers::new(&config.ice_servers),
                max_peers_per_track: config.max_peers_per_track,
                max_peers_total: config.max_peers_total,
                total_peers: AtomicUsize::new(0),
            },
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            connections: Connections::new(config.max_connections),
            next_registration: AtomicU64::new(1),
            config,
        })
    }

    /// Admits one more WebSocket connection (before its upgrade): the
    /// returned guard holds its permit and makes shutdown wait for it.
    pub fn connection(&self) -> Result<Connection, TooManyConnections> {
        self.connections.open(&self.tracker)
    }

    /// A fresh id for one registration of a `/signal` session.
    pub fn next_registration_id(&self) -> u64 {
        self.next_registration.fetch_add(1, Ordering::Relaxed)
    }
}
