//! Tests of the whole bench against a tiny in-process `/signal` server on
//! loopback: a naive planner (2 roots, 2 children each) that tells orphans
//! their new parent, or, when `retell` is off, does not (as LVQR's server),
//! which the bench must detect.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Plan;
use crate::bench;

const ROOTS: usize = 2;
const CAP: usize = 2;

struct Peer {
    tx: mpsc::UnboundedSender<String>,
    parent: Option<String>,
    children: Vec<String>,
    depth: u32,
}

#[derive(Default)]
struct Tree {
    peers: HashMap<String, Peer>,
    roots: HashSet<String>,
    retell: bool,
}

impl Tree {
    fn tell(&self, id: &str) {
        let p = &self.peers[id];
        let msg = serde_json::json!({
            "type": "AssignParent", "peer_id": id,
            "role": if p.parent.is_none() { "Root" } else { "Relay" },
            "parent_id": p.parent, "depth": p.depth, "ice_servers": [],
        });
        let _ = p.tx.send(msg.to_string());
    }

    fn subtree(&self, id: &str) -> HashSet<String> {
        let mut out = HashSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(x) = stack.pop() {
            stack.extend(self.peers[&x].children.iter().cloned());
            out.insert(x);
        }
        out
    }

    /// Shallowest peer with a free slot outside `exclude`.
    fn slot(&self, exclude: &HashSet<String>) -> Option<String> {
        self.peers
            .iter()
            .filter(|(id, p)| p.children.len() < CAP && !exclude.contains(*id))
            .min_by_key(|(id, p)| (p.depth, (*id).clone()))
            .map(|(id, _)| id.clone())
    }

    /// Places `id` (and moves its subtree), telling everyone whose depth changed.
    fn attach(&mut self, id: &str, exclude: &HashSet<String>) {
        let parent = if self.roots.len() < ROOTS {
            self.roots.insert(id.to_string());
            None
        } else {
            self.slot(exclude)
        };
        let depth = match &parent {
            Some(p) => {
                self.peers.get_mut(p).unwrap().children.push(id.to_string());
                self.peers[p].depth + 1
            }
            None => 0,
        };
        let me = self.peers.get_mut(id).unwrap();
        me.parent = parent;
        me.depth = depth;
        self.tell(id);
        let mut stack: Vec<(String, u32)> = self.peers[id]
            .children
            .iter()
            .map(|c| (c.clone(), depth + 1))
            .collect();
        while let Some((c, d)) = stack.pop() {
            let p = self.peers.get_mut(&c).unwrap();
            if p.depth != d {
                p.depth = d;
                self.tell(&c);
            }
            stack.extend(self.peers[&c].children.iter().map(|x| (x.clone(), d + 1)));
        }
    }

    fn join(&mut self, id: String, tx: mpsc::UnboundedSender<String>) {
        self.peers.insert(
            id.clone(),
            Peer {
                tx,
                parent: None,
                children: Vec::new(),
                depth: 0,
            },
        );
        self.attach(&id, &HashSet::from([id.clone()]));
    }

    fn leave(&mut self, id: &str) {
        let Some(gone) = self.peers.remove(id) else {
            return;
        };
        self.roots.remove(id);
        let left = serde_json::json!({"type": "PeerLeft", "peer_id": id}).to_string();
        if let Some(p) = &gone.parent {
            let parent = self.peers.get_mut(p).unwrap();
            parent.children.retain(|c| c != id);
            let _ = parent.tx.send(left.clone());
        }
        for c in &gone.children {
            let _ = self.peers[c].tx.send(left.clone());
            self.peers.get_mut(c).unwrap().parent = None;
        }
        for c in &gone.children {
            if self.retell {
                let exclude = self.subtree(c);
                self.attach(c, &exclude);
            }
        }
    }
}

/// Starts the fake server; returns its `ws://` URL.
async fn start(retell: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tree = Arc::new(Mutex::new(Tree {
        retell,
        ..Tree::default()
    }));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tree = tree.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (tx, mut rx) = mpsc::unbounded_channel();
                let mut me = None;
                loop {
                    tokio::select! {
                        msg = ws.next() => match msg {
                            Some(Ok(Message::Text(t))) if me.is_none() => {
                                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                                assert_eq!(v["type"], "Register");
                                let id = v["peer_id"].as_str().unwrap().to_string();
                                tree.lock().unwrap().join(id.clone(), tx.clone());
                                me = Some(id);
                            }
                            Some(Ok(_)) => {}
                            None | Some(Err(_)) => break,
                        },
                        Some(out) = rx.recv() => {
                            if ws.send(Message::text(out)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                if let Some(id) = me {
                    tree.lock().unwrap().leave(&id);
                }
            });
        }
    });
    format!("ws://{addr}/signal")
}

fn plan(url: &str, n: usize, churn: f64) -> Plan {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: crate::Args,
    }
    let n = n.to_string();
    let churn = churn.to_string();
    Cli::try_parse_from([
        "t",
        "--url",
        url,
        "-n",
        &n,
        "--rate",
        "5000",
        "--churn",
        &churn,
        "--hold-secs",
        "0.3",
        "--heartbeat-secs",
        "0.1",
        "--quiet-secs",
        "0.3",
        "--settle-timeout-secs",
        "3",
        "--register-timeout-secs",
        "5",
        "--peer-prefix",
        "t-",
    ])
    .unwrap()
    .args
    .plan()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_against_a_correct_server() {
    let url = start(true).await;
    let out = bench::execute(&plan(&url, 60, 0.25)).await;
    println!("{}", out.table);
    let r = &out.registration;
    assert_eq!(r.registered, 60, "{}", out.table);
    assert_eq!(r.latency.count, 60);
    assert!(out.tree_held.ok(), "{}", out.table);
    assert_eq!(out.tree_held.roots, ROOTS);
    assert_eq!(out.tree_held.checked, 60);
    let (ch, tree) = out.churn.as_ref().expect("churn ran");
    assert_eq!(ch.clean + ch.abrupt, 15);
    assert!(ch.orphans > 0, "{}", out.table);
    assert_eq!(ch.orphans_retold, ch.orphans, "{}", out.table);
    assert_eq!(
        ch.peer_left_satisfied_clients, ch.peer_left_expected_clients,
        "{}",
        out.table
    );
    assert!(!ch.timed_out, "{}", out.table);
    assert_eq!(ch.lost, 0);
    assert!(tree.ok(), "{}", out.table);
    assert_eq!(tree.checked, 45);
    assert_eq!(out.clean_close_acked, ch.clean as u64, "{}", out.table);
    assert!(out.table.contains("Register -> AssignParent"));
    assert!(out.problems().is_empty(), "{:?}", out.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_detects_orphans_never_retold() {
    let url = start(false).await;
    let mut p = plan(&url, 40, 0.3);
    p.settle_timeout = std::time::Duration::from_millis(800);
    let out = bench::execute(&p).await;
    assert_eq!(out.registration.registered, 40);
    let (ch, tree) = out.churn.as_ref().expect("churn ran");
    assert!(ch.orphans > 0);
    assert!(ch.timed_out, "{}", out.table);
    assert_eq!(ch.orphans_retold, 0, "{}", out.table);
    assert!(!tree.ok());
    assert!(tree.parent_gone > 0, "{}", out.table);
    assert!(out.table.contains("never ("), "{}", out.table);
    assert!(out.problems().iter().any(|p| p.contains("never re-told")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_search_runs_steps() {
    let url = start(true).await;
    let mut p = plan(&url, 30, 0.0);
    p.search = Some(crate::args::Search {
        max_p99_ms: 1000.0,
        step: 2.0,
        max_rate: 4000.0,
        max_steps: 3,
    });
    p.rate = 1000.0;
    crate::search::run(&p, p.search.unwrap()).await.unwrap();
}
