//! Server RSS probe: point readings and a background peak sampler.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::sys;

/// Interval of the background peak sampler.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Reads the RSS of an optional server process and tracks its peak.
pub(crate) struct RssProbe {
    pid: Option<u32>,
    peak_kib: Arc<AtomicU64>,
    sampler: Option<JoinHandle<()>>,
}

impl RssProbe {
    /// Starts sampling `pid` (nothing when `None`).
    pub(crate) fn start(pid: Option<u32>) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let sampler = pid.map(|pid| {
            let peak = peak_kib.clone();
            tokio::spawn(async move {
                loop {
                    if let Some(kib) = sys::rss_kib(pid) {
                        peak.fetch_max(kib, Relaxed);
                    }
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
            })
        });
        Self {
            pid,
            peak_kib,
            sampler,
        }
    }

    /// Current RSS of the server in KiB.
    pub(crate) fn now_kib(&self) -> Option<u64> {
        let kib = sys::rss_kib(self.pid?)?;
        self.peak_kib.fetch_max(kib, Relaxed);
        Some(kib)
    }

    /// Highest RSS seen so far (sampled every 200 ms) in KiB.
    pub(crate) fn peak_kib(&self) -> Option<u64> {
        self.pid?;
        Some(self.peak_kib.load(Relaxed))
    }

    /// Resets the peak to the current reading.
    pub(crate) fn reset_peak(&self) {
        self.peak_kib.store(self.now_kib().unwrap_or(0), Relaxed);
    }
}

impl Drop for RssProbe {
    fn drop(&mut self) {
        if let Some(s) = self.sampler.take() {
            s.abort();
        }
    }
}

/// KiB as a human figure in MB (10^6 bytes).
pub(crate) fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

/// Bytes per item of the RSS difference `after - before` over `n` items, in kB.
pub(crate) fn kb_per(before_kib: u64, after_kib: u64, n: usize) -> String {
    if n == 0 {
        return "n/a".into();
    }
    let diff = after_kib as f64 - before_kib as f64;
    format!("{:.1} kB", diff * 1024.0 / 1e3 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(mb(1_000_000), "1024.0 MB");
        assert_eq!(kb_per(1000, 2000, 0), "n/a");
        // 1000 KiB over 8 items = 125 KiB = 128.0 kB each.
        assert_eq!(kb_per(1000, 2000, 8), "128.0 kB");
    }
}
