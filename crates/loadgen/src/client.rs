//! One `/signal` client: connect, Register, answer pings, heartbeat, record
//! every AssignParent and PeerLeft, close when told to.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{interval_at, sleep_until, timeout, timeout_at, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::fleet::{Command, Fleet, Placement, State};
use crate::target::Target;
use crate::wire::{self, Incoming};

/// Read buffer per connection: signal messages are a few hundred bytes.
const READ_BUFFER: usize = 4 * 1024;
/// Largest message accepted from the server (the protocol's default limit).
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a clean close waits for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What every client of a run shares.
#[derive(Debug)]
pub(crate) struct ClientConfig {
    /// Server to connect to.
    pub target: Target,
    /// Track to register on.
    pub track: String,
    /// Capacity to claim in Register.
    pub capacity: Option<u32>,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Deadline for connect + upgrade + first AssignParent.
    pub register_timeout: Duration,
    /// Abrupt closes send RST instead of FIN.
    pub abrupt_rst: bool,
    /// Source addresses, client `i` using `sources[i % len]` (empty: the
    /// kernel's choice). See [`crate::target::CLIENTS_PER_SOURCE`].
    pub sources: Vec<IpAddr>,
}

type Ws = WebSocketStream<TcpStream>;

/// WebSocket settings sized for many small messages.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Binds `socket` to `ip` without taking a port yet: with
/// `IP_BIND_ADDRESS_NO_PORT` the port is picked at `connect()` among those
/// free for this (source, destination) pair, not among all of `ip`'s.
fn bind_source(socket: &TcpSocket, ip: IpAddr) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid descriptor, and a c_int option value of the given size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    socket.bind(SocketAddr::new(ip, 0))
}

async fn connect(cfg: &ClientConfig, i: usize) -> anyhow::Result<Ws> {
    let addr = cfg.target.addr;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if !cfg.sources.is_empty() {
        bind_source(&socket, cfg.sources[i % cfg.sources.len()])?;
    }
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut req = cfg.target.request_url.as_str().into_client_request()?;
    if let Some(p) = &cfg.target.subprotocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse()?);
    }
    let (ws, _resp) =
        tokio_tungstenite::client_async_with_config(req, tcp, Some(ws_config())).await?;
    Ok(ws)
}

/// Spreads heartbeats of different clients over the period.
fn heartbeat_offset(i: usize, period: Duration) -> Duration {
    // Multiplicative hashing (golden ratio) gives an even spread.
    let frac = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    period.mul_f64(frac)
}

/// Short description of a connection error for the error table.
fn describe(e: &anyhow::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    s.chars().take(80).collect()
}

/// Runs client `i` until it fails, is closed by the server, or is told to
/// close. `wake` must have been subscribed before the task was spawned.
pub(crate) async fn run(
    fleet: Arc<Fleet>,
    cfg: Arc<ClientConfig>,
    i: usize,
    mut wake: watch::Receiver<u64>,
) {
    fleet.set_state(i, State::Connecting);
    let started = Instant::now();
    let deadline = started + cfg.register_timeout;
    let mut ws = match timeout_at(deadline.into(), connect(&cfg, i)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            fleet.record_error(format!("connect: {}", describe(&e)));
            fleet.set_state(i, State::Failed);
            return;
        }
        Err(_) => {
            fleet.record_error("connect: timed out".into());
            fleet.set_state(i, State::Failed);
            return;
        }
    };
    fleet.record_connect(i, started.elapsed().as_micros() as u64);

    let register = wire::register_json(&fleet.peer_id(i), &cfg.track, cfg.capacity);
    if let Err(e) = ws.send(Message::text(register)).await {
        fleet.record_error(format!("send Register: {}", describe(&e.into())));
        fleet.set_state(i, State::Failed);
        return;
    }
    let register_sent = Instant::now();
    fleet.record_register_sent();
    fleet.set_state(i, State::Registering);

    let mut registered = false;
    let mut heartbeat = interval_at(
        (register_sent + heartbeat_offset(i, cfg.heartbeat)).into(),
        cfg.heartbeat,
    );
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let register_deadline = sleep_until(deadline.into());
    tokio::pin!(register_deadline);

    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => match wire::parse(text.as_str()) {
                    Incoming::AssignParent { parent_id, depth, role } => {
                        let placement = Placement {
                            parent: fleet.parent_code(parent_id.as_deref()),
                            depth: depth.min(u32::from(u16::MAX)) as u16,
                            role,
                        };
                        let latency = (!registered)
                            .then(|| register_sent.elapsed().as_micros() as u64);
                        fleet.record_assign(i, placement, latency);
                        if !registered {
                            registered = true;
                            fleet.set_state(i, State::Registered);
                        }
                    }
                    Incoming::PeerLeft => fleet.record_peer_left(i),
                    Incoming::Error { code } => {
                        let phase = if registered { "after register" } else { "register" };
                        fleet.record_error(format!("Error {code} ({phase})"));
                        if !registered {
                            // The bench does not retry: the client failed.
                            fleet.set_state(i, State::Failed);
                            let _ = timeout(CLOSE_WAIT, ws.close(None)).await;
                            return;
                        }
                    }
                    Incoming::Other => {}
                    Incoming::Malformed => {
                        fleet.counters.malformed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                },
                // Pings are answered by tungstenite itself on the next read.
                Some(Ok(Message::Close(_))) | None => {
                    let phase = if registered { "after register" } else { "before AssignParent" };
                    fleet.record_error(format!("server closed the connection {phase}"));
                    fleet.set_state(i, if registered { State::Lost } else { State::Failed });
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let phase = if registered { "after register" } else { "before AssignParent" };
                    fleet.record_error(format!("connection error {phase}: {}", describe(&e.into())));
                    fleet.set_state(i, if registered { State::Lost } else { State::Failed });
                    return;
                }
            },
            () = &mut register_deadline, if !registered => {
                fleet.record_error("no AssignParent before --register-timeout-secs".into());
                fleet.set_state(i, State::Failed);
                return;
            }
            _ = heartbeat.tick(), if registered => {
                if ws.send(Message::text(wire::HEARTBEAT_JSON)).await.is_err() {
                    fleet.record_error("send Heartbeat failed".into());
                    fleet.set_state(i, State::Lost);
                    return;
                }
                fleet.counters.heartbeats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            changed = wake.changed() => {
                let cmd = if changed.is_err() { Command::CloseClean } else { fleet.pending_command(i) };
                match cmd {
                    Command::None => {}
                    Command::CloseClean => {
                        fleet.set_state(i, State::ClosedByUs);
                        close_clean(&fleet, ws).await;
                        return;
                    }
                    Command::CloseAbrupt => {
                        fleet.set_state(i, State::ClosedByUs);
                        if cfg.abrupt_rst {
                            let _ = ws.get_ref().set_zero_linger();
                        }
                        drop(ws);
                        return;
                    }
                }
            }
        }
    }
}

/// Sends a close frame and waits (bounded) for the server to answer it or
/// end the connection.
async fn close_clean(fleet: &Fleet, mut ws: Ws) {
    use std::sync::atomic::Ordering::Relaxed;
    let answered = timeout(CLOSE_WAIT, async {
        if ws.close(None).await.is_err() {
            return true; // already closed by the server
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    let counter = if answered {
        &fleet.counters.clean_close_acked
    } else {
        &fleet.counters.clean_close_unanswered
    };
    counter.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn connections_use_the_given_source_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/signal", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let (tcp, peer) = listener.accept().await.unwrap();
                seen.push(peer.ip());
                let _ = tokio_tungstenite::accept_async(tcp).await.unwrap();
            }
            seen
        });
        let sources: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let cfg = ClientConfig {
            target: Target::parse(&url, None, false).unwrap(),
            track: "t".into(),
            capacity: None,
            heartbeat: Duration::from_secs(5),
            register_timeout: Duration::from_secs(5),
            abrupt_rst: false,
            sources: sources.clone(),
        };
        for (i, source) in sources.iter().enumerate() {
            let ws = connect(&cfg, i).await.expect("connected");
            assert_eq!(ws.get_ref().local_addr().unwrap().ip(), *source);
        }
        assert_eq!(server.await.unwrap(), sources);
    }

    #[test]
    fn heartbeat_offsets_spread_within_period() {
        let p = Duration::from_secs(5);
        let offs: Vec<_> = (0..1000).map(|i| heartbeat_offset(i, p)).collect();
        assert!(offs.iter().all(|o| *o < p));
        let first_half = offs.iter().filter(|o| **o < p / 2).count();
        assert!((400..600).contains(&first_half), "{first_half}");
    }
}
