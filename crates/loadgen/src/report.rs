//! Plain-text figures table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::churn::Churn;
use crate::register::Registration;
use crate::stats::ms;
use crate::verify::TreeCheck;

/// Builds a two-column table, grouped in sections.
#[derive(Default)]
pub(crate) struct Table {
    out: String,
}

impl Table {
    /// Starts a section.
    pub(crate) fn section(&mut self, title: &str) -> &mut Self {
        let _ = writeln!(self.out, "\n{title}");
        self
    }

    /// Adds one row.
    pub(crate) fn row(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = writeln!(self.out, "  {name:<34} {value}");
        self
    }

    /// The table text.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Rows of a registration phase.
/// The clients' source addresses, as a table cell.
pub(crate) fn sources(sources: &[std::net::IpAddr]) -> String {
    match sources {
        [] => "the kernel's choice (one address)".to_string(),
        [one] => one.to_string(),
        [first, .., last] => format!("{} ({first} - {last}, round robin)", sources.len()),
    }
}

pub(crate) fn registration(t: &mut Table, r: &Registration) {
    t.row(
        "registered",
        format!(
            "{} / {} (failed {}, still pending {})",
            r.registered, r.launched, r.failed, r.pending
        ),
    )
    .row(
        "achieved registration rate",
        format!(
            "{:.0} /s (offered {:.0} /s, {:.1}%; launch took {:.2} s)",
            r.achieved_rate,
            r.offered_rate,
            100.0 * r.achieved_rate / r.offered_rate,
            r.launch_secs
        ),
    )
    .row("Register -> AssignParent", r.latency)
    .row("TCP connect + upgrade", r.connect);
    let n = r.launched;
    for (d, s) in r.by_decile.iter().enumerate() {
        t.row(
            &format!(
                "  clients {}..{}",
                d * n / 10,
                ((d + 1) * n / 10).saturating_sub(1)
            ),
            format!(
                "p50 {} / p99 {} / max {} ms",
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            ),
        );
    }
}

/// CPU seconds used by the server and the load generator during a phase.
/// `machine` is the busy time of all cores; what neither process used was
/// used by other processes (a loaded machine skews every figure).
pub(crate) fn cpu(
    t: &mut Table,
    phase: &str,
    server: Option<f64>,
    own: Option<f64>,
    machine: Option<f64>,
    wall: f64,
) {
    let f = |v: Option<f64>| {
        v.map_or("n/a".to_string(), |s| {
            format!("{s:.2} s ({:.0}% of one core)", 100.0 * s / wall.max(1e-9))
        })
    };
    t.row(
        &format!("CPU during {phase}"),
        format!(
            "server {}, load generator {}, other processes {} over {wall:.2} s",
            f(server),
            f(own),
            f(machine.map(|m| (m - server.unwrap_or(0.0) - own.unwrap_or(0.0)).max(0.0)))
        ),
    );
}

/// Rows of a tree check.
pub(crate) fn tree(t: &mut Table, name: &str, c: &TreeCheck) {
    t.row(
        name,
        format!(
            "{}: {} clients, {} roots, {} under a connected parent, {} waiting, \
             {} parent gone, {} depth mismatch, {} foreign parent",
            if c.ok() { "OK" } else { "VIOLATIONS" },
            c.checked,
            c.roots,
            c.parent_connected,
            c.waiting,
            c.parent_gone,
            c.depth_mismatch,
            c.parent_foreign
        ),
    );
    for e in &c.examples {
        t.row("  e.g.", e);
    }
}

/// Rows of the churn phase.
pub(crate) fn churn(t: &mut Table, c: &Churn) {
    t.row(
        "churned",
        format!(
            "{} of {} ({} close frame, {} abrupt)",
            c.clean + c.abrupt,
            c.registered_before,
            c.clean,
            c.abrupt
        ),
    )
    .row(
        "orphans re-told a live parent",
        format!(
            "{} / {}{}",
            c.orphans_retold,
            c.orphans,
            if c.timed_out {
                "  (SETTLE TIMEOUT reached)"
            } else {
                ""
            }
        ),
    )
    .row(
        "all orphans re-told after",
        if c.orphans == 0 {
            "n/a (no orphans)".to_string()
        } else if c.orphans_retold == c.orphans {
            format!("{} ms", ms(c.retell.max))
        } else {
            format!(
                "never ({} orphans not re-told)",
                c.orphans - c.orphans_retold
            )
        },
    )
    .row("per-orphan re-tell time", c.retell)
    .row(
        "PeerLeft delivered",
        format!(
            "{} / {} owed neighbours got theirs ({} owed, {} received; short: {} as child, {} as parent)",
            c.peer_left_satisfied_clients,
            c.peer_left_expected_clients,
            c.peer_left_expected,
            c.peer_left_received,
            c.peer_left_short_orphans,
            c.peer_left_expected_clients - c.peer_left_satisfied_clients - c.peer_left_short_orphans
        ),
    )
    .row(
        "AssignParent after churn",
        format!(
            "{} messages to {} clients",
            c.assigns_received, c.clients_reassigned
        ),
    )
    .row(
        "last AssignParent/PeerLeft after",
        c.last_message_us
            .map_or("none received".to_string(), |us| format!("{} ms", ms(us))),
    )
    .row("remaining clients dropped by server", c.lost)
    .row(
        "  (PeerLeft owed",
        "from the pre-churn tree; the server may legitimately move a peer between two leaves)",
    );
}

/// Rows of the error counts.
pub(crate) fn errors(t: &mut Table, errors: &BTreeMap<String, u64>) {
    if errors.is_empty() {
        t.row("errors", "none");
    }
    for (what, n) in errors {
        t.row(&format!("{n} x"), what);
    }
}
