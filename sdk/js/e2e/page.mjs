// Runs inside each test page: one MeshPeer whose every delivered object is
// checked byte for byte against the deterministic generator.
import { MeshPeer, loopbackOnly } from "/meshrelay.js";
import { checkPayload } from "/payload.mjs";

const rec = {
  ids: [],
  bad: [],
  outOfOrder: [],
  assigns: [],
  childOpen: [],
  childClose: [],
  lost: [],
  errors: [],
  restarts: [],
  /** Index in `ids` where the current id sequence (epoch) began. */
  sequenceStart: 0,
  logs: [],
};
window.rec = rec;

function str(v) {
  return typeof v === "bigint" ? v.toString() : v;
}

window.startPeer = async (cfg) => {
  const peer = new MeshPeer({
    ...cfg,
    iceCandidateFilter: loopbackOnly,
    onFrame(objectId, bytes) {
      const id = Number(objectId);
      const prev = rec.ids.length > rec.sequenceStart ? rec.ids[rec.ids.length - 1] : null;
      if (prev !== null && id !== prev + 1) rec.outOfOrder.push([prev, id]);
      rec.ids.push(id);
      if (!checkPayload(id, bytes)) rec.bad.push(id);
    },
    onAssign(a) {
      rec.assigns.push({ role: a.role, parentId: a.parentId, depth: a.depth, next: str(a.nextObjectId) });
    },
    onChildOpen(id) {
      rec.childOpen.push(id);
    },
    onChildClose(id, reason) {
      rec.childClose.push([id, reason]);
    },
    onLost(first, count) {
      rec.lost.push([str(first), count]);
    },
    onError(code, reason) {
      rec.errors.push([code, reason]);
    },
    onRestart(next, epoch) {
      rec.restarts.push([str(next), epoch]);
      rec.sequenceStart = rec.ids.length;
    },
    log(m) {
      rec.logs.push(`${(performance.now() / 1000).toFixed(3)} ${m}`);
      if (rec.logs.length > 3000) rec.logs.splice(0, 1000);
    },
  });
  window.peer = peer;
  const a = await peer.connect();
  return { peerId: peer.peerId, role: a.role, parentId: a.parentId, depth: a.depth, next: str(a.nextObjectId) };
};

window.snapshot = () => {
  const p = window.peer;
  const stats = Object.fromEntries(Object.entries(p.stats).map(([k, v]) => [k, str(v)]));
  return {
    peerId: p.peerId,
    count: rec.ids.length,
    first: rec.ids.length ? rec.ids[0] : null,
    last: rec.ids.length ? rec.ids[rec.ids.length - 1] : null,
    bad: rec.bad.slice(0, 20),
    badCount: rec.bad.length,
    outOfOrder: rec.outOfOrder.slice(0, 20),
    lost: rec.lost,
    errors: rec.errors,
    restarts: rec.restarts,
    role: p.role,
    parent: p.parent,
    depth: p.depth,
    children: p.children,
    parentConnected: p.parentConnected,
    readingOrigin: p.readingOrigin,
    childOpen: rec.childOpen,
    childClose: rec.childClose,
    assigns: rec.assigns,
    stats,
  };
};

// Test hook: close this peer's RTCPeerConnections to its children, as a
// crash of the link would, without any signal message (reaches into the
// SDK's private state on purpose).
window.dropChildLinks = () => {
  const n = window.peer.childMap.size;
  for (const c of window.peer.childMap.values()) c.pc.close();
  return n;
};

// Test hook: the local address of the selected ICE candidate pair of the
// parent link and of each child link (null before one is selected). The
// local side is what each end sends from; remote addresses of peer-reflexive
// candidates are hidden in stats, so each end reports its own. Reaches into
// the SDK's private state on purpose.
async function localAddress(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  return pair ? (stats.get(pair.localCandidateId)?.address ?? null) : null;
}

window.linkAddresses = async () => {
  const p = window.peer;
  const children = {};
  for (const c of p.childMap.values()) children[c.peerId] = await localAddress(c.pc);
  return { parent: p.parentLink?.pc ? await localAddress(p.parentLink.pc) : null, children };
};

// Test hook: flood the signal socket so the server cuts it off
// (rate_limited), to exercise the reconnect path.
window.floodSignal = (n) => {
  const s = window.peer.signal;
  for (let i = 0; i < n; i++) s.send('{"type":"Heartbeat"}');
  return n;
};

window.ready = true;
