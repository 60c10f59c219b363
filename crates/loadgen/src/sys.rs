//! Process facts from the OS: open-file limit, open descriptors, RSS.

use anyhow::{bail, Result};

/// Descriptors kept free beyond the clients: runtime, stdio, /proc reads.
pub(crate) const FD_RESERVE: u64 = 64;

/// Raises the soft open-file limit to the hard one where allowed and returns
/// the soft limit in force.
pub(crate) fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// Number of descriptors this process has open now (0 when unknown).
pub(crate) fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// Refuses `clients` when they cannot all hold a socket within `limit`
/// descriptors, `open` being already used.
pub(crate) fn check_fd_budget(clients: usize, limit: u64, open: u64) -> Result<()> {
    let budget = limit.saturating_sub(open).saturating_sub(FD_RESERVE);
    if clients as u64 > budget {
        bail!(
            "{clients} clients need {clients} sockets, but the open-file limit of this process \
             (ulimit -n) is {limit} with {open} already open and {FD_RESERVE} kept in reserve: \
             use --clients {budget} or fewer, or run several load generator processes"
        );
    }
    Ok(())
}

/// VmRSS of `pid` in KiB, from /proc/PID/status; `None` if unreadable.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

/// VmRSS of this process in KiB.
pub(crate) fn self_rss_kib() -> Option<u64> {
    rss_kib(std::process::id())
}

/// CPU time (user + system) used by `pid` so far, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_cpu_ticks(&stat).map(|t| t as f64 / ticks.max(1) as f64)
}

/// Busy CPU time of the whole machine so far (all cores), in seconds.
pub(crate) fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_machine_busy(&stat).map(|t| t as f64 / ticks.max(1) as f64)
}

/// Non-idle ticks of the `cpu` line of /proc/stat (idle and iowait excluded,
/// guest time already counted in user).
pub(crate) fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.len() == 8).then(|| v.iter().sum::<u64>() - v[3] - v[4])
}

/// Counters of the `TcpExt` lines of /proc/net/netstat (this network
/// namespace, since boot): `(ListenOverflows, ListenDrops)`.
pub(crate) fn listen_overflows() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    Some((
        parse_tcp_ext(&text, "ListenOverflows")?,
        parse_tcp_ext(&text, "ListenDrops")?,
    ))
}

/// One named counter of the `TcpExt:` header/value line pair.
pub(crate) fn parse_tcp_ext(text: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let pos = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(pos)?.parse().ok()
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line, in ticks.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may contain spaces: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:` line of a /proc status text, in KiB.
pub(crate) fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_budget() {
        assert!(check_fd_budget(19_000, 20_000, 10).is_ok());
        assert!(check_fd_budget(19_926, 20_000, 10).is_ok());
        let err = check_fd_budget(19_927, 20_000, 10).unwrap_err().to_string();
        assert!(err.contains("--clients 19926 or fewer"), "{err}");
        assert!(check_fd_budget(1, 10, 10).is_err());
    }

    #[test]
    fn vmrss() {
        let s = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\nThreads: 1\n";
        assert_eq!(parse_vmrss(s), Some(2048));
        assert_eq!(parse_vmrss("Name: x\n"), None);
        assert!(self_rss_kib().unwrap() > 0);
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 6 7";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert!(cpu_secs(std::process::id()).is_some());
        let ps = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_machine_busy(ps), Some(161));
        assert!(machine_busy_secs().is_some());
        let ns = "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 3 17\nIpExt: A\nIpExt: 1\n";
        assert_eq!(parse_tcp_ext(ns, "ListenOverflows"), Some(17));
        assert_eq!(parse_tcp_ext(ns, "Nope"), None);
        assert!(open_fds() > 0);
        assert!(raise_nofile_limit().unwrap() > 0);
    }
}
