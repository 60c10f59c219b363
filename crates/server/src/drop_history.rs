//! Which children each parent dropped recently, to tell a parent that
//! cannot feed its children (its uplink) from a child that cannot keep up
//! (its downlink). Time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Two different children dropped by one parent within this window mean the
/// parent cannot feed its children.
pub(crate) const REPEAT_DROP_WINDOW: Duration = Duration::from_secs(10);

/// Drops remembered per parent: more than its children at once is never needed.
pub(crate) const MAX_DROPS_KEPT: usize = 8;

/// Recent drops by parent, at most [`MAX_DROPS_KEPT`] per parent.
#[derive(Debug, Default)]
pub(crate) struct DropHistory {
    by_parent: HashMap<String, Vec<(String, Instant)>>,
}

impl DropHistory {
    /// Records that `parent` dropped `child` at `now`; true when it dropped
    /// another child less than [`REPEAT_DROP_WINDOW`] before. The same
    /// child dropped again only renews its own entry.
    pub(crate) fn record(&mut self, parent: &str, child: &str, now: Instant) -> bool {
        let history = self.by_parent.entry(parent.to_owned()).or_default();
        history.retain(|(_, at)| now.saturating_duration_since(*at) < REPEAT_DROP_WINDOW);
        let repeated = history.iter().any(|(c, _)| c != child);
        history.retain(|(c, _)| c != child);
        if history.len() >= MAX_DROPS_KEPT {
            history.remove(0);
        }
        history.push((child.to_owned(), now));
        repeated
    }

    /// Forgets `parent`'s drops (it left the tree).
    pub(crate) fn forget(&mut self, parent: &str) {
        self.by_parent.remove(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_second_different_child_within_the_window_is_a_repeat() {
        let t0 = Instant::now();
        let mut h = DropHistory::default();
        assert!(!h.record("p", "a", t0), "a first drop is no repeat");
        assert!(h.record("p", "b", t0 + 9 * SEC));
        assert!(!h.record("q", "a", t0 + 9 * SEC), "parents are apart");
    }

    #[test]
    fn a_drop_the_window_ago_or_earlier_is_forgotten() {
        let t0 = Instant::now();
        let mut h = DropHistory::default();
        h.record("p", "a", t0);
        assert!(!h.record("p", "b", t0 + REPEAT_DROP_WINDOW));
        assert!(h.record("p", "c", t0 + REPEAT_DROP_WINDOW));
    }

    #[test]
    fn the_same_child_twice_is_no_repeat() {
        let t0 = Instant::now();
        let mut h = DropHistory::default();
        h.record("p", "a", t0);
        assert!(!h.record("p", "a", t0 + SEC));
        // Its renewed entry still counts against another child.
        assert!(h.record("p", "b", t0 + 10 * SEC));
    }

    #[test]
    fn each_parent_keeps_its_newest_drops_only() {
        let t0 = Instant::now();
        let mut h = DropHistory::default();
        for i in 0..20u32 {
            h.record("p", &format!("c{i}"), t0 + Duration::from_millis(i.into()));
            assert!(h.by_parent["p"].len() <= MAX_DROPS_KEPT);
        }
        let kept: Vec<&str> = h.by_parent["p"].iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            kept,
            ["c12", "c13", "c14", "c15", "c16", "c17", "c18", "c19"]
        );
        h.forget("p");
        assert!(h.by_parent.is_empty());
        assert!(
            !h.record("p", "c19", t0 + SEC),
            "forgotten drops are no repeat"
        );
    }
}
