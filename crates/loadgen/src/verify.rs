//! Tree check: every connected client's last AssignParent must name a
//! parent that is still connected (or none for roots), one level up.

use crate::fleet::{Fleet, State, PARENT_FOREIGN, PARENT_NONE};
use meshrelay_protocol::Role;

/// Most examples of violations kept for the report.
const MAX_EXAMPLES: usize = 5;

/// Result of a tree check over the connected clients.
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeCheck {
    /// Clients checked (connected, registered).
    pub checked: usize,
    /// Told `Root` with no parent.
    pub roots: usize,
    /// Told no parent but not `Root` (waiting, reading the origin).
    pub waiting: usize,
    /// Parent is a connected client of this run.
    pub parent_connected: usize,
    /// Parent is a client that is no longer connected.
    pub parent_gone: usize,
    /// Parent is a peer id from outside this run.
    pub parent_foreign: usize,
    /// Depth is not the parent's depth + 1 (or not 0 for a root).
    pub depth_mismatch: usize,
    /// A few violations, spelled out.
    pub examples: Vec<String>,
}

impl TreeCheck {
    /// True when no violation was found.
    pub(crate) fn ok(&self) -> bool {
        self.parent_gone == 0 && self.depth_mismatch == 0
    }
}

/// Checks every client in state `Registered`.
pub(crate) fn check(fleet: &Fleet) -> TreeCheck {
    let mut c = TreeCheck::default();
    for i in 0..fleet.len() {
        if fleet.state(i) != State::Registered {
            continue;
        }
        let Some(p) = fleet.placement(i) else {
            continue;
        };
        c.checked += 1;
        match p.parent {
            PARENT_NONE if p.role == Some(Role::Root) => {
                c.roots += 1;
                if p.depth != 0 {
                    c.depth_mismatch += 1;
                    example(&mut c.examples, || {
                        format!("{} is Root at depth {}", fleet.peer_id(i), p.depth)
                    });
                }
            }
            PARENT_NONE => c.waiting += 1,
            PARENT_FOREIGN => c.parent_foreign += 1,
            _ => {
                let j = p.parent_index().expect("own parent code");
                if fleet.state(j) == State::Registered {
                    c.parent_connected += 1;
                    let pd = fleet.placement(j).map_or(u16::MAX, |q| q.depth);
                    if pd.checked_add(1) != Some(p.depth) {
                        c.depth_mismatch += 1;
                        example(&mut c.examples, || {
                            format!(
                                "{} at depth {} under {} at depth {}",
                                fleet.peer_id(i),
                                p.depth,
                                fleet.peer_id(j),
                                pd
                            )
                        });
                    }
                } else {
                    c.parent_gone += 1;
                    example(&mut c.examples, || {
                        format!(
                            "{} still told parent {} which is {:?}",
                            fleet.peer_id(i),
                            fleet.peer_id(j),
                            fleet.state(j)
                        )
                    });
                }
            }
        }
    }
    c
}

fn example(v: &mut Vec<String>, f: impl FnOnce() -> String) {
    if v.len() < MAX_EXAMPLES {
        v.push(f());
    }
}
