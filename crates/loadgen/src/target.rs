//! The server the load generator talks to: loopback only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context, Result};
use tokio_tungstenite::tungstenite::http::Uri;

/// A validated loopback WebSocket target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Address every TCP connection goes to (never resolved through DNS).
    pub addr: SocketAddr,
    /// URL of the upgrade request, token query included when configured.
    pub request_url: String,
    /// `Sec-WebSocket-Protocol` value to offer, when the token goes there.
    pub subprotocol: Option<String>,
}

impl Target {
    /// Parses `ws://HOST[:PORT]/path[?query]`; refuses any host that is not
    /// loopback (127.0.0.0/8, ::1, `localhost`) and any scheme but `ws`.
    pub(crate) fn parse(
        url: &str,
        token: Option<&str>,
        token_in_subprotocol: bool,
    ) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid --url {url:?}"))?;
        match uri.scheme_str() {
            Some("ws") => {}
            other => bail!(
                "--url must use the ws:// scheme (loopback, no TLS), got {:?}",
                other.unwrap_or("")
            ),
        }
        let host = uri.host().context("--url has no host")?;
        let ip = loopback_ip(host)?;
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let path = if path.is_empty() { "/" } else { path };
        let mut request_url = format!("ws://{}{}", uri.authority().expect("host checked"), path);
        let mut subprotocol = None;
        if let Some(token) = token {
            if token_in_subprotocol {
                let ok = !token.is_empty()
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !ok {
                    bail!("--token cannot be sent as a subprotocol: it must be a non-empty HTTP token");
                }
                subprotocol = Some(format!("lvqr.bearer.{token}"));
            } else {
                let sep = if path.contains('?') { '&' } else { '?' };
                request_url.push(sep);
                request_url.push_str("token=");
                request_url.push_str(&percent_encode(token));
            }
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            request_url,
            subprotocol,
        })
    }
}

/// The loopback address of `host`, or an error for any other host.
fn loopback_ip(host: &str) -> Result<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => bail!(
            "refusing target host {host:?}: the load generator only connects to loopback \
             (127.0.0.1, localhost, [::1])"
        ),
    }
}

/// Clients per loopback source address by default. Linux's `connect()`
/// hands out ports of one parity first (the other half is kept for `bind()`),
/// about 14,100 of the default 32768-60999 range per (source, destination)
/// pair. Once those are taken, every `connect()` scans all of them (about
/// 0.5 ms of kernel time each at 14,000 connections) before trying the other
/// half: at 2,000 connects/s that is a core, the loadgen's own worker
/// threads stall, and its registration latencies jump by tens of ms. Keeping
/// each source address well below that limit keeps the scan short.
pub(crate) const CLIENTS_PER_SOURCE: usize = 4096;

/// Most source addresses (127.0.0.1 ..= 127.0.0.254).
pub(crate) const MAX_SOURCES: usize = 254;

/// The loopback source addresses the clients' connections are spread over,
/// round robin: `count` (default: one per [`CLIENTS_PER_SOURCE`] clients) of
/// 127.0.0.1, 127.0.0.2, ... Empty (the kernel's choice, a single source
/// address) for one address, for an IPv6 target (`::1` is the only IPv6
/// loopback address) and off Linux.
pub(crate) fn source_addrs(
    target: &SocketAddr,
    clients: usize,
    count: Option<usize>,
) -> Vec<IpAddr> {
    let count = count
        .unwrap_or_else(|| clients.div_ceil(CLIENTS_PER_SOURCE))
        .min(MAX_SOURCES);
    if count <= 1 || !target.is_ipv4() || !cfg!(target_os = "linux") {
        return Vec::new();
    }
    (1..=count as u8)
        .map(|d| IpAddr::V4(Ipv4Addr::new(127, 0, 0, d)))
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_goes_into_query() {
        let t = Target::parse("ws://127.0.0.1:7000/signal", Some("a b&c"), false).unwrap();
        assert_eq!(t.request_url, "ws://127.0.0.1:7000/signal?token=a%20b%26c");
        assert_eq!(t.addr, "127.0.0.1:7000".parse().unwrap());
        assert!(t.subprotocol.is_none());
        let t = Target::parse("ws://localhost:7000/signal?x=1", Some("t"), false).unwrap();
        assert_eq!(t.request_url, "ws://localhost:7000/signal?x=1&token=t");
        assert_eq!(t.addr, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn token_as_subprotocol() {
        let t = Target::parse("ws://127.0.0.1:7000/signal", Some("abc"), true).unwrap();
        assert_eq!(t.request_url, "ws://127.0.0.1:7000/signal");
        assert_eq!(t.subprotocol.as_deref(), Some("lvqr.bearer.abc"));
        assert!(Target::parse("ws://127.0.0.1:7000/signal", Some("a b"), true).is_err());
    }

    #[test]
    fn sources_spread_per_4096_clients() {
        let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert!(source_addrs(&v4, 4096, None).is_empty());
        assert!(source_addrs(&v4, 15_000, Some(1)).is_empty());
        assert!(source_addrs(&v6, 15_000, None).is_empty());
        if cfg!(target_os = "linux") {
            let s = source_addrs(&v4, 15_000, None);
            assert_eq!(s.len(), 4);
            assert_eq!(s[0], "127.0.0.1".parse::<IpAddr>().unwrap());
            assert_eq!(s[3], "127.0.0.4".parse::<IpAddr>().unwrap());
            assert!(s.iter().all(IpAddr::is_loopback));
            assert_eq!(source_addrs(&v4, 10, Some(3)).len(), 3);
            assert_eq!(source_addrs(&v4, 10, Some(1000)).len(), MAX_SOURCES);
        }
    }

    #[test]
    fn loopback_only() {
        assert!(Target::parse("ws://127.0.0.2:1/signal", None, false).is_ok());
        assert!(Target::parse("ws://[::1]:1/signal", None, false).is_ok());
        assert!(Target::parse("ws://0.0.0.0:1/signal", None, false).is_err());
        assert!(Target::parse("ws://172.16.0.1:1/signal", None, false).is_err());
        assert!(Target::parse("ws://localhost.example.com/signal", None, false).is_err());
        assert!(Target::parse("ws://[::ffff:10.0.0.1]/signal", None, false).is_err());
    }
}
