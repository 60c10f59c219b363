#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

mod admin;
mod app;
mod auth;
mod config;
mod connections;
mod demo;
mod drop_history;
mod liveness;
mod metrics;
mod origin;
mod origin_ws;
mod outbox;
mod ratelimit;
mod registry;
mod relay_budget;
mod ring;
mod session;
mod session_core;
mod signal_ws;
mod track;
mod tree;
mod wire;
mod ws_util;

pub use app::App;
pub use config::{parse_cors_origins, parse_ice_servers, CorsOrigins, ServerConfig};

use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for connections to send their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accept queue length asked of the kernel (which caps it at
/// `net.core.somaxconn`). The usual 1024 overflowed under a burst of 15,000
/// connects: dropped SYNs cost each late client a ~1 s retransmit.
pub const LISTEN_BACKLOG: u32 = 8192;

/// A bound, not yet running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Binds the listen address with a deep accept queue
    /// ([`LISTEN_BACKLOG`]) and `SO_REUSEADDR`, so a restart is not refused
    /// while old connections sit in TIME_WAIT.
    pub async fn bind(config: ServerConfig) -> std::io::Result<Self> {
        let listener = listen(config.listen)?;
        Ok(Self {
            listener,
            app: App::new(config),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for embedding and tests).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves until `shutdown` resolves, then closes every WebSocket with a
    /// close frame and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self.app;
        crate::metrics::handle();
        let stop = app.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
        app.tracker.spawn(tick(Arc::clone(&app)));
        if app.config.demo {
            app.tracker.spawn(demo::run(Arc::clone(&app)));
        }
        let listener = self.listener.tap_io(|tcp| {
            // Signaling is latency-bound small messages.
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router(Arc::clone(&app)))
            .with_graceful_shutdown(app.shutdown.clone().cancelled_owned())
            .await?;
        app.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, app.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within {SHUTDOWN_GRACE:?}");
        }
        Ok(())
    }
}

/// A listening socket on `addr` (port 0 picks a free port).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The HTTP routes.
pub fn router(app: Arc<App>) -> Router {
    let mut admin = Router::new()
        .route("/api/v1/mesh", get(admin::mesh))
        .route("/metrics", get(admin::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            admin::require_admin_token,
        ));
    // Outside the token check: a preflight carries no token, and a 401
    // must be readable by the page too.
    if let Some(cors) = admin::cors_layer(&app.config.cors_allow_origin) {
        admin = admin.layer(cors);
    }
    Router::new()
        .route("/signal", get(signal_ws::handler))
        .route("/ingest/{*track}", get(origin_ws::ingest))
        .route("/ws/{*track}", get(origin_ws::egress))
        .merge(admin)
        .route("/healthz", get(admin::healthz))
        .route("/sdk/meshrelay.js", get(admin::sdk))
        .route("/", get(admin::demo_page))
        .route("/demo", get(admin::demo_page))
        .with_state(app)
}

/// Once a second: give waiting peers a place and tell them.
async fn tick(app: Arc<App>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        for track in app.registry.list() {
            track.place_waiting(&app.ctx);
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call,
/// not when the future is first polled, so a signal that arrives once it has
/// returned is never taken by the default action (which would kill the
/// process without any close frame). Call it inside the Tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn next(s: std::io::Result<Signal>) {
        match s {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch a shutdown signal: {e}");
                std::future::pending::<()>().await
            }
        }
    }
    let int = next(signal(SignalKind::interrupt()));
    let term = next(signal(SignalKind::terminate()));
    async move {
        tokio::select! {
            _ = int => {}
            _ = term => {}
        }
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
