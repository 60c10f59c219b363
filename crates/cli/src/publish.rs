//! `meshrelay publish`: push objects to `/ingest/{track}` from stdin or a
//! generated stream.

use anyhow::{bail, Context};
use clap::Args;
use futures_util::SinkExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Options of `meshrelay publish`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PublishArgs {
    /// Server base URL.
    #[arg(long, env = "MESHRELAY_URL", default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// Track to publish on.
    #[arg(long, env = "MESHRELAY_TRACK", default_value = "live/test")]
    pub track: String,
    /// Publish token (sent as subprotocol lvqr.bearer.<token>).
    #[arg(long, env = "MESHRELAY_PUBLISH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read stdin: every read of up to --object-bytes bytes is one object.
    #[arg(long)]
    pub stdin: bool,
    /// Largest object read from stdin.
    #[arg(long, default_value_t = 64 * 1024)]
    pub object_bytes: usize,
    /// Generated stream: objects per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Generated stream: payload bytes per object (JSON header, padded).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Stop after this many objects (default: run until interrupted or EOF).
    #[arg(long)]
    pub count: Option<u64>,
}

/// Publishes until EOF, `--count` or Ctrl-C.
pub(crate) async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    meshrelay_protocol::validate_track(&args.track)
        .map_err(|r| anyhow::anyhow!("invalid --track: {}", r.reason))?;
    let period = period(args.rate)?;
    let url = format!("{}/ingest/{}", args.url.trim_end_matches('/'), args.track);
    let mut request = url.as_str().into_client_request().context("bad --url")?;
    if let Some(token) = &args.token {
        let proto =
            HeaderValue::from_str(&format!("lvqr.bearer.{token}")).context("bad --token")?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", proto);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    if args.stdin {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; args.object_bytes.max(1)];
        while sent < limit {
            let n = stdin.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            ws.send(Message::Binary(buf[..n].to_vec().into())).await?;
            sent += 1;
        }
    } else {
        let mut tick = tokio::time::interval(period);
        while sent < limit {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => {}
            }
            ws.send(Message::Binary(generated(sent, args.size).into()))
                .await?;
            sent += 1;
        }
    }
    ws.close(None).await.ok();
    eprintln!("published {sent} objects to {url}");
    Ok(())
}

/// Time between generated objects at `rate` per second.
fn period(rate: f64) -> anyhow::Result<Duration> {
    match Duration::try_from_secs_f64(1.0 / rate) {
        Ok(p) if rate > 0.0 && !p.is_zero() => Ok(p),
        _ => bail!("--rate must be above 0 and at most 1e9 (got {rate})"),
    }
}

/// A JSON object with a counter and a timestamp, padded to `size` bytes.
fn generated(seq: u64, size: usize) -> Vec<u8> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut out = format!(r#"{{"seq":{seq},"ts_ms":{ts},"pad":""#).into_bytes();
    out.extend(std::iter::repeat_n(
        b'x',
        size.saturating_sub(out.len() + 2),
    ));
    out.extend_from_slice(b"\"}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_gives_a_nonzero_period_or_an_error() {
        assert_eq!(period(10.0).unwrap(), Duration::from_millis(100));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e12] {
            assert!(period(bad).is_err(), "{bad}");
        }
    }
}
