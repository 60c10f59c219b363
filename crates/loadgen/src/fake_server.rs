//! The bench against a faulty `/signal` server on loopback, which it must
//! catch: a naive planner (2 roots, 2 children each) that, like LVQR's
//! server, never tells orphans their new parent. (The bench against the
//! real server is in `against_server`.)

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

    /// Shallowest peer with a free slot other than `id`.
    fn slot(&self, id: &str) -> Option<String> {
        self.peers
            .iter()
            .filter(|(x, p)| p.children.len() < CAP && x.as_str() != id)
            .min_by_key(|(id, p)| (p.depth, (*id).clone()))
            .map(|(id, _)| id.clone())
    }

    /// Places a new peer and tells it.
    fn attach(&mut self, id: &str) {
        let parent = if self.roots.len() < ROOTS {
            self.roots.insert(id.to_string());
            None
        } else {
            self.slot(id)
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
        self.attach(&id);
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
        // The orphans hear PeerLeft and nothing more.
        for c in &gone.children {
            let _ = self.peers[c].tx.send(left.clone());
            self.peers.get_mut(c).unwrap().parent = None;
        }
    }
}

/// Starts the fake server; returns its `ws://` URL.
async fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tree = Arc::new(Mutex::new(Tree::default()));
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
                                // Anything but a Register is ignored (the bench sends none).
                                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                                if let (Some("Register"), Some(id)) = (v["type"].as_str(), v["peer_id"].as_str()) {
                                    tree.lock().unwrap().join(id.to_string(), tx.clone());
                                    me = Some(id.to_string());
                                }
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

/// A small, quick bench of `n` clients against `url`.
pub(crate) fn plan(url: &str, n: usize, churn: f64) -> Plan {
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
async fn bench_detects_orphans_never_retold() {
    let url = start().await;
    let mut p = plan(&url, 40, 0.3);
    p.settle_timeout = std::time::Duration::from_millis(800);
    let out = bench::execute(&p).await;
    assert_eq!(out.registration.registered, 40);
    let (ch, tree) = out.churn.as_ref().expect("churn ran");
    assert!(ch.orphans > 0);
    assert!(ch.timed_out, "{}", out.table);
    assert_eq!(ch.orphans_retold, 0, "{}", out.table);
    // This server moves nobody, so the PeerLeft owed by the pre-churn tree
    // is exactly what it sends: the bench's accounting must match.
    assert!(ch.peer_left_expected_clients > 0, "{}", out.table);
    assert_eq!(
        ch.peer_left_satisfied_clients, ch.peer_left_expected_clients,
        "{}",
        out.table
    );
    assert!(!tree.ok());
    assert!(tree.parent_gone > 0, "{}", out.table);
    assert!(out.table.contains("never ("), "{}", out.table);
    assert!(out.problems().iter().any(|p| p.contains("never re-told")));
}
