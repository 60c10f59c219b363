// Runs inside an LVQR test page: one LvqrPeer, recording every message it
// delivers with the link it came on, and an integrator as LVQR's specs and a
// real LVQR application have one: when the peer's first AssignParent says
// Root, it reads the origin egress and pushes every object into the mesh.
// A later promotion to Root goes unnoticed, as it would by such an
// integrator. No ICE candidate filter: the tests run where loopback is the
// only interface.
import { LvqrPeer } from "/lvqr-peer.mjs";
import { checkPayload } from "/payload.mjs";

const CHUNK_FLAG = 1n << 63n;
const MAX_DELIVERIES = 50_000;

const rec = {
  /** object id -> how many times it was delivered (origin or any link). */
  counts: new Map(),
  /** [object id, link (parent peer id or "origin"), AssignParents seen so far, byte length]. */
  deliveries: [],
  /** Messages whose id has the high bit set (a meshrelay chunk taken for an object). */
  flagged: [],
  flaggedCount: 0,
  bad: [],
  badCount: 0,
  short: 0,
  linkCounts: {},
  assigns: [],
  peerLefts: [],
  errors: [],
  integrator: { started: false, open: false, closed: false },
};
window.rec = rec;

function record(bytes, link) {
  rec.linkCounts[link] = (rec.linkCounts[link] ?? 0) + 1;
  if (bytes.byteLength < 8) {
    rec.short++;
    return;
  }
  const raw = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, false);
  if ((raw & CHUNK_FLAG) !== 0n) {
    rec.flaggedCount++;
    if (rec.flagged.length < 50) rec.flagged.push(`0x${raw.toString(16)} (${bytes.byteLength} bytes on ${link})`);
    return;
  }
  const id = Number(raw);
  rec.counts.set(id, (rec.counts.get(id) ?? 0) + 1);
  // A loop repeats objects without end: keep counting, stop listing.
  if (rec.deliveries.length < MAX_DELIVERIES) rec.deliveries.push([id, link, rec.assigns.length, bytes.byteLength]);
  if (!checkPayload(id, bytes.subarray(8))) {
    rec.badCount++;
    if (rec.bad.length < 50) rec.bad.push(id);
  }
}

function originUrl(signalUrl, track) {
  const u = new URL(signalUrl);
  const base = u.pathname.replace(/\/signal\/?$/, "");
  return `${u.protocol}//${u.host}${base}/ws/${track.split("/").map(encodeURIComponent).join("/")}`;
}

/** Reads the origin egress and pushes each object into the mesh; resolves once the socket is open. */
function startIntegrator(peer, cfg) {
  rec.integrator.started = true;
  return new Promise((resolve) => {
    const ws = new WebSocket(originUrl(cfg.signalUrl, cfg.track));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      rec.integrator.open = true;
      resolve();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") return; // ResumeGap or Error: not objects
      const bytes = new Uint8Array(ev.data);
      record(bytes, "origin");
      peer.pushFrame(bytes);
    };
    ws.onclose = () => {
      rec.integrator.open = false;
      rec.integrator.closed = true;
      resolve();
    };
  });
}

/**
 * Starts the peer (`cfg`: signalUrl, peerId, track, capacity?) and resolves
 * with its first AssignParent once it is acted on: for a root, once the
 * integrator's origin socket is open.
 */
window.startLvqrPeer = (cfg) =>
  new Promise((resolve, reject) => {
    let first = null;
    const peer = new LvqrPeer({
      ...cfg,
      // As LVQR's own specs do: no STUN lookup, host candidates are enough.
      iceServers: [],
      onFrame: (bytes, parentId) => record(bytes, parentId),
      onSignal(msg) {
        if (msg.type === "AssignParent") {
          rec.assigns.push({ role: msg.role, parentId: msg.parent_id ?? null, depth: msg.depth });
          if (first === null) {
            first = { role: msg.role, parentId: msg.parent_id ?? null, depth: msg.depth, next: String(msg.next_object_id) };
            if (msg.role === "Root") startIntegrator(peer, cfg).then(() => resolve(first));
            else resolve(first);
          }
        } else if (msg.type === "PeerLeft") {
          rec.peerLefts.push(msg.peer_id);
        } else if (msg.type === "Error") {
          rec.errors.push(["signal", `${msg.code}: ${msg.reason}`]);
        }
      },
      onError(where, e) {
        rec.errors.push([where, String(e)]);
      },
    });
    window.peer = peer;
    peer.connect().catch(reject);
  });

window.lvqrSnapshot = () => {
  const p = window.peer;
  const links = p.links();
  const dups = [];
  for (const [id, n] of rec.counts) if (n > 1) dups.push([id, n]);
  return {
    peerId: p.cfg.peerId,
    role: p.peerRole,
    parent: p.parentPeerId,
    childCount: p.childCount,
    /** Children in the child map whose channel is open: the ones it forwards to. */
    openChildren: links.children.filter((c) => c.current && c.state === "open").map((c) => c.peerId),
    /** Parents of every connection whose channel is open: every link it receives and forwards from. */
    openParents: links.parents.filter((c) => c.state === "open").map((c) => c.peerId),
    currentParentOpen: links.parents.some((c) => c.current && c.state === "open"),
    links,
    integrator: rec.integrator,
    forwarded: p.forwardedFrameCount,
    ids: [...rec.counts.keys()].sort((a, b) => a - b),
    dups: dups.slice(0, 20),
    dupCount: dups.length,
    flagged: rec.flagged,
    flaggedCount: rec.flaggedCount,
    bad: rec.bad,
    badCount: rec.badCount,
    short: rec.short,
    linkCounts: rec.linkCounts,
    assigns: rec.assigns,
    peerLefts: rec.peerLefts,
    errors: rec.errors,
  };
};

window.lvqrDeliveries = () => rec.deliveries;

window.ready = true;
