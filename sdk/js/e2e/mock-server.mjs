// A small in-process stand-in for `meshrelay serve`, speaking docs/protocol.md
// (signal, ingest, egress with ?from= and ResumeGap, /api/v1/mesh). It exists
// so the SDK's browser tests can run while the Rust server is not built
// (MESHRELAY_E2E_SERVER=mock); the real tests use the real binary.
import http from "node:http";
import { WebSocketServer } from "ws";

export async function startMockServer({ rootPeerCount = 30, maxChildren = 3, ringObjects = 1024 } = {}) {
  const tracks = new Map();
  const track = (name) => {
    if (!tracks.has(name)) tracks.set(name, { name, next: 0, ring: [], subs: new Set(), peers: new Map() });
    return tracks.get(name);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/healthz") return res.end("ok");
    if (url.pathname === "/api/v1/mesh") {
      const peers = [];
      for (const t of tracks.values())
        for (const p of t.peers.values())
          peers.push({
            peer_id: p.id,
            track: t.name,
            role: p.parent ? (p.children.size ? "Relay" : "Leaf") : "Root",
            parent: p.parent,
            depth: p.depth,
            intended_children: p.children.size,
            forwarded_frames: p.forwarded,
            capacity: p.cap,
          });
      res.setHeader("content-type", "application/json");
      return res.end(JSON.stringify({ enabled: true, peer_count: peers.length, offload_percentage: 0, peers }));
    }
    res.statusCode = 404;
    res.end();
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => onSocket(ws, new URL(req.url, "http://x")));
  });

  function send(p, msg) {
    if (p.ws.readyState === 1) p.ws.send(JSON.stringify(msg));
  }
  function assign(t, p) {
    send(p, {
      type: "AssignParent",
      peer_id: p.id,
      role: p.parent ? (p.children.size ? "Relay" : "Leaf") : "Root",
      parent_id: p.parent,
      depth: p.depth,
      ice_servers: [],
      next_object_id: t.next,
    });
  }
  function subtree(t, p, out = new Set()) {
    out.add(p.id);
    for (const c of p.children) subtree(t, t.peers.get(c), out);
    return out;
  }
  function place(t, p, exclude = new Set()) {
    const roots = [...t.peers.values()].filter((x) => x.placed && !x.parent).length;
    if (roots < rootPeerCount) {
      p.parent = null;
      p.depth = 0;
      return;
    }
    let best = null;
    for (const q of t.peers.values()) {
      if (!q.placed || q === p || exclude.has(q.id) || q.children.size >= Math.min(q.cap, maxChildren)) continue;
      if (!best || q.depth < best.depth || (q.depth === best.depth && q.children.size < best.children.size)) best = q;
    }
    if (!best) throw new Error("mesh_full");
    p.parent = best.id;
    p.depth = best.depth + 1;
    best.children.add(p.id);
  }
  function redepth(t, p, notify) {
    for (const c of p.children) {
      const q = t.peers.get(c);
      if (q.depth !== p.depth + 1) {
        q.depth = p.depth + 1;
        notify.add(q);
      }
      redepth(t, q, notify);
    }
  }
  function leave(t, p) {
    if (!t.peers.has(p.id)) return;
    t.peers.delete(p.id);
    const neighbours = [...p.children].map((c) => t.peers.get(c));
    if (p.parent) {
      const par = t.peers.get(p.parent);
      par.children.delete(p.id);
      neighbours.push(par);
    }
    for (const n of neighbours) send(n, { type: "PeerLeft", peer_id: p.id });
    const notify = new Set();
    for (const c of p.children) {
      const q = t.peers.get(c);
      q.parent = null;
      try {
        place(t, q, subtree(t, q));
      } catch {
        q.parent = null; // no room: unplaced, reads the origin
        q.depth = 0;
      }
      notify.add(q);
      redepth(t, q, notify);
    }
    for (const q of notify) assign(t, q);
  }

  function onSocket(ws, url) {
    const m = url.pathname.match(/^\/(ingest|ws)\/(.+)$/);
    if (m && m[1] === "ingest") {
      const t = track(m[2]);
      ws.on("message", (data, isBinary) => {
        if (!isBinary) return;
        const id = t.next++;
        const frame = Buffer.alloc(8 + data.length);
        frame.writeBigUInt64BE(BigInt(id));
        data.copy(frame, 8);
        t.ring.push([id, frame]);
        if (t.ring.length > ringObjects) t.ring.shift();
        for (const s of t.subs) s.send(frame);
      });
      return;
    }
    if (m && m[1] === "ws") {
      const t = track(m[2]);
      const from = url.searchParams.get("from");
      if (from !== null && t.ring.length) {
        const f = Number(from);
        const oldest = t.ring[0][0];
        if (f < oldest) ws.send(JSON.stringify({ type: "ResumeGap", requested: f, first: oldest }));
        for (const [id, frame] of t.ring) if (id >= f) ws.send(frame);
      }
      t.subs.add(ws);
      ws.on("close", () => t.subs.delete(ws));
      return;
    }
    if (url.pathname !== "/signal") return ws.close();
    let p = null;
    let t = null;
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const msg = JSON.parse(String(data));
      if (!p) {
        if (msg.type !== "Register") return;
        t = track(msg.track);
        p = { id: msg.peer_id, ws, parent: null, depth: 0, children: new Set(), cap: msg.capacity ?? maxChildren, forwarded: 0, placed: false };
        if (t.peers.has(p.id)) return ws.send(JSON.stringify({ type: "Error", code: "duplicate_peer_id", reason: "dup" }));
        t.peers.set(p.id, p);
        place(t, p);
        p.placed = true;
        if (p.parent) {
          const par = t.peers.get(p.parent);
          if (par.children.size === 1) assign(t, par); // role Leaf -> Relay
        }
        assign(t, p);
        return;
      }
      if (msg.type === "ForwardReport") p.forwarded = msg.forwarded_frames;
      else if (msg.type === "Leave") ws.close();
      else if (["Offer", "Answer", "IceCandidate"].includes(msg.type)) {
        const to = t.peers.get(msg.to);
        if (to) send(to, msg);
      }
    });
    ws.on("close", () => {
      if (p && t) leave(t, p);
    });
  }

  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    port,
    async stop() {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => server.close(r));
    },
    logs: () => "",
  };
}
