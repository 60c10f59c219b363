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
    pub fn parse(url: &str, token: Option<&str>, token_in_subprotocol: bool) -> Result<Self> {
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
    fn loopback_only() {
        assert!(Target::parse("ws://127.0.0.2:1/signal", None, false).is_ok());
        assert!(Target::parse("ws://[::1]:1/signal", None, false).is_ok());
        assert!(Target::parse("ws://0.0.0.0:1/signal", None, false).is_err());
        assert!(Target::parse("ws://172.16.0.1:1/signal", None, false).is_err());
        assert!(Target::parse("ws://localhost.example.com/signal", None, false).is_err());
        assert!(Target::parse("ws://[::ffff:10.0.0.1]/signal", None, false).is_err());
    }
}
