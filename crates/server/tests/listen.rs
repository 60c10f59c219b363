//! The listening socket: a burst of connects larger than the usual 1024
//! backlog is queued by the kernel, not dropped.

use meshrelay_server::{Server, ServerConfig};
use std::time::Duration;
use tokio::net::TcpStream;

/// More connects than a 1024-entry accept queue holds.
const BURST: usize = 2_000;

#[tokio::test]
async fn accept_queue_holds_a_burst_beyond_1024_connects() {
    let server = Server::bind(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        demo: false,
        ..ServerConfig::default()
    })
    .await
    .expect("bind");
    let addr = server.local_addr().unwrap();
    assert_ne!(addr.port(), 0, "port 0 resolves to the bound port");
    // Nothing accepts: every handshake must complete into the kernel's
    // queue. A dropped SYN would be retried only after about a second.
    let mut held = Vec::with_capacity(BURST);
    for i in 0..BURST {
        let stream = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect {i} was not queued (accept queue overflowed)"))
            .expect("connect");
        held.push(stream);
    }
}
