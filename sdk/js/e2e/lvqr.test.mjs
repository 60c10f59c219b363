// End-to-end: clients written for LVQR's signal server (e2e/lvqr-peer.mjs,
// what LVQR's browser client does) in real Chromium against
// `meshrelay serve`, alone and mixed with the meshrelay SDK. An LVQR client
// closes no stale link of its own accord, ignores PeerLeft about its parent,
// forwards whatever any parent connection it still holds delivers, knows no
// chunks and has no repair; its integrator feeds the mesh only if its first
// AssignParent said Root. Whatever the tree does, every peer must get each
// object exactly once, byte-exact, and nothing may come back to its sender.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  expectExact,
  getMesh,
  log,
  openLvqrPeer,
  openPeer,
  publish,
  sharedBrowser,
  waitFor,
  withServer,
} from "./harness.mjs";
import { payloadSize } from "./payload.mjs";

const shared = sharedBrowser();

/** RTCSctpTransport.maxMessageSize between two Chromium pages: larger sends throw. */
const MAX_MESSAGE = 262_144;
/** The first id of payload.mjs's sequence too large for one DataChannel message. */
const FIRST_UNSENDABLE = 303;

/** Whether object `id` fits in one DataChannel message `[id][payload]`. */
function fitsOneMessage(id) {
  return 8 + payloadSize(id) <= MAX_MESSAGE;
}

const isLvqr = (p) => p.kind === "lvqr";
/** An LVQR peer whose integrator reads the origin (its first AssignParent said Root). */
const isIntegrator = (s) => s.integrator?.started === true;

/**
 * The ids of [start, end) that `snap`'s peer is owed: all of them for an
 * SDK peer (it repairs from the origin) and for an integrator; an LVQR peer
 * fed over a DataChannel only those that fit in one message.
 */
function owed(p, snap, start, end) {
  const ids = [];
  for (let id = start; id < end; id++) if (!isLvqr(p) || isIntegrator(snap) || fitsOneMessage(id)) ids.push(id);
  return ids;
}

/** Every way a peer's record shows a broken contract, whatever the tree is doing. */
function faults(peers, snaps) {
  const out = [];
  for (const [i, p] of peers.entries()) {
    const s = snaps[i];
    if (!isLvqr(p)) {
      if (s.badCount) out.push(`${p.peerId}: objects with wrong bytes ${JSON.stringify(s.bad)}`);
      if (s.outOfOrder.length) out.push(`${p.peerId}: out of order ${JSON.stringify(s.outOfOrder)}`);
      continue;
    }
    if (s.dupCount) out.push(`${p.peerId}: ${s.dupCount} objects delivered more than once, [id, times]: ${JSON.stringify(s.dups)}`);
    if (s.flaggedCount) {
      const first = s.flagged.slice(0, 5).join(", ");
      out.push(`${p.peerId}: ${s.flaggedCount} messages whose id has the high bit set (meshrelay chunks): ${first}`);
    }
    if (s.badCount) out.push(`${p.peerId}: objects with wrong bytes ${JSON.stringify(s.bad)}`);
    if (s.short) out.push(`${p.peerId}: ${s.short} messages shorter than an object header`);
    const onLinks = Object.entries(s.linkCounts).filter(([link]) => link !== "origin");
    if (isIntegrator(s) && onLinks.length) {
      out.push(`${p.peerId} reads the origin, yet received objects on links: ${JSON.stringify(Object.fromEntries(onLinks))}`);
    }
    if (!isIntegrator(s)) {
      const tooBig = s.ids.filter((id) => !fitsOneMessage(id));
      if (tooBig.length) out.push(`${p.peerId}: got objects that fit in no DataChannel message: ${tooBig}`);
    }
  }
  return out;
}

/**
 * A cycle in the DataChannels that are open (parent -> child, from what
 * each child holds), as "b -> c -> b", or null. An LVQR peer forwards what
 * any of them delivers, so a cycle loops objects for ever.
 */
function linkCycle(peers, snaps) {
  const feeds = new Map();
  for (const [i, p] of peers.entries()) {
    const s = snaps[i];
    const parents = isLvqr(p) ? s.openParents : s.parentConnected ? [s.parent] : [];
    for (const parent of parents) {
      if (!feeds.has(parent)) feeds.set(parent, []);
      feeds.get(parent).push(p.peerId);
    }
  }
  const state = new Map();
  const path = [];
  const visit = (id) => {
    state.set(id, "open");
    path.push(id);
    for (const next of feeds.get(id) ?? []) {
      if (state.get(next) === "open") return [...path.slice(path.indexOf(next)), next].join(" -> ");
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    path.pop();
    state.set(id, "done");
    return null;
  };
  for (const id of feeds.keys()) {
    if (!state.has(id)) {
      const found = visit(id);
      if (found) return found;
    }
  }
  return null;
}

/** Why `p` is not fed right now, or null when it is. */
function unfed(p, s, byId) {
  if (isLvqr(p)) {
    if (isIntegrator(s)) return s.integrator.open ? null : "its integrator's origin socket is not open";
    if (!s.parent) return `no parent (role ${s.role})`;
    if (!s.currentParentOpen) return `its link to ${s.parent} is not open`;
  } else {
    if (s.role === "Root") return null;
    if (!s.parent) return `no parent (role ${s.role})`;
    if (!s.parentConnected) return `its link to ${s.parent} is not open`;
  }
  const ps = byId.get(s.parent);
  if (!ps) return `its parent ${s.parent} is not one of the test's peers`;
  const open = ps.p.kind === "lvqr" ? ps.s.openChildren : ps.s.children;
  return open.includes(p.peerId) ? null : `its parent ${s.parent} does not forward to it yet`;
}

async function snapshots(peers) {
  return Promise.all(peers.map((p) => p.snapshot()));
}

async function dumpPeers(peers) {
  for (const p of peers) {
    const s = await p.snapshot().catch((e) => String(e));
    const brief = isLvqr(p) && typeof s === "object" ? { ...s, ids: `${s.ids.length} ids, last ${s.ids.at(-1)}` } : s;
    log(`${p.peerId}: ${JSON.stringify(brief)}`);
  }
}

/**
 * Waits until every peer is fed (an integrator reading the origin, or an
 * open link to a parent that forwards to it) and the pages agree with
 * /api/v1/mesh on every parent. Fails at once on any fault or on a cycle of
 * open links, as a loop does not end by waiting.
 */
async function waitFed(server, peers, { timeoutMs = 60_000 } = {}) {
  let why = [];
  const got = await waitFor(
    async () => {
      const snaps = await snapshots(peers);
      const bad = faults(peers, snaps);
      const cycle = linkCycle(peers, snaps);
      if (cycle) bad.push(`open DataChannels form a cycle: ${cycle}`);
      if (bad.length) return { fault: bad.join("; ") };
      const byId = new Map(peers.map((p, i) => [p.peerId, { p, s: snaps[i] }]));
      why = peers.map((p, i) => [p.peerId, unfed(p, snaps[i], byId)]).filter(([, w]) => w);
      if (why.length) return false;
      const mesh = await getMesh(server);
      for (const [i, p] of peers.entries()) {
        const m = mesh.peers.find((x) => x.peer_id === p.peerId);
        if ((m?.parent ?? null) !== (snaps[i].parent ?? null)) {
          why = [[p.peerId, `page says parent ${snaps[i].parent}, /api/v1/mesh says ${m?.parent}`]];
          return false;
        }
      }
      return { snaps };
    },
    { timeoutMs, intervalMs: 200, message: `${peers.map((p) => p.peerId).join(", ")} to be fed` },
  ).catch(async (e) => {
    await dumpPeers(peers);
    throw new Error(`${e.message.split("; last:")[0]}; not fed: ${why.map(([id, w]) => `${id}: ${w}`).join("; ")}`);
  });
  if (got.fault) {
    await dumpPeers(peers);
    assert.fail(got.fault);
  }
  return got.snaps;
}

/**
 * Waits until every peer has every object of [start, end) it is owed,
 * failing at once on any fault, then asserts that each came exactly once
 * (an SDK peer: every id from the one it joined at, in order) and, for an LVQR peer
 * fed by links, that it got none of the range it cannot be sent.
 */
async function expectOnce(peers, start, end, { timeoutMs = 60_000 } = {}) {
  let missing = [];
  const got = await waitFor(
    async () => {
      const snaps = await snapshots(peers);
      const bad = faults(peers, snaps);
      if (bad.length) return { fault: bad.join("; ") };
      missing = [];
      for (const [i, p] of peers.entries()) {
        const s = snaps[i];
        let lacking;
        if (isLvqr(p)) {
          const have = new Set(s.ids);
          lacking = owed(p, s, start, end).filter((id) => !have.has(id));
        } else {
          lacking = s.last === null || s.last < end - 1 ? [`every id after ${s.last}`] : [];
        }
        if (lacking.length) missing.push(`${p.peerId} lacks ${lacking.length > 12 ? `${lacking.slice(0, 12)}...` : lacking}`);
      }
      return missing.length ? false : { snaps };
    },
    { timeoutMs, intervalMs: 250, message: `every peer to have objects ${start}..${end - 1}` },
  ).catch(async (e) => {
    await dumpPeers(peers);
    throw new Error(`${e.message.split("; last:")[0]}: ${missing.join("; ")}`);
  });
  if (got.fault) {
    await dumpPeers(peers);
    assert.fail(got.fault);
  }
  for (const [i, p] of peers.entries()) {
    if (!isLvqr(p)) {
      await expectExact(assert, p, end, Number(p.assignment.next));
      continue;
    }
    const s = got.snaps[i];
    const want = owed(p, s, start, end);
    const inRange = s.ids.filter((id) => id >= start && id < end);
    assert.deepEqual(inRange, want, `${p.peerId}: the objects of ${start}..${end - 1} it got`);
  }
  return got.snaps;
}

/** Publishes `count` more objects on `state.track` and advances `state.published`. */
async function publishMore(server, state, count, intervalMs = 10) {
  const start = state.published;
  state.published += await publish(server, state.track, count, { intervalMs, start });
  return [start, state.published];
}

/** Waits until /api/v1/mesh no longer lists `peerId` (its leave is planned) and `told` pages saw PeerLeft of it. */
async function waitGone(server, peerId, told = []) {
  await waitFor(async () => !(await getMesh(server)).peers.some((p) => p.peer_id === peerId), {
    message: `${peerId} to leave the tree`,
  });
  await waitFor(async () => (await snapshots(told)).every((s) => s.peerLefts.includes(peerId)), {
    message: `${told.map((p) => p.peerId).join(", ")} to be told PeerLeft ${peerId}`,
  });
}

/** Opens LVQR peers one after the other (each placed before the next joins), recorded in `peers`. */
async function lvqrPeers(server, peers, track, ids) {
  const out = [];
  for (const id of ids) {
    const p = await openLvqrPeer(shared, server, { peerId: id, track });
    peers.push(p);
    out.push(p);
  }
  return out;
}

/** An inner peer of a chain leaves; each later object reaches every other peer once. */
async function innerLeaves(server, peers, chain, leaving, state) {
  await waitFed(server, chain);
  const [s1, e1] = await publishMore(server, state, 40);
  await expectOnce(chain, s1, e1);
  const inner = chain.find((p) => p.peerId === leaving);
  const i = chain.indexOf(inner);
  await inner.close();
  const rest = chain.filter((p) => p !== inner);
  // Its neighbours hear of it; an SDK peer's record has no PeerLeft list.
  await waitGone(server, leaving, [chain[i - 1], chain[i + 1]].filter((p) => p && isLvqr(p)));
  await waitFed(server, rest);
  const [s2, e2] = await publishMore(server, state, 60);
  const snaps = await expectOnce(rest, s2, e2);
  log(`after ${leaving} left: ${rest.map((p, k) => `${p.peerId} under ${snaps[k].parent}`).join(", ")}`);
}

describe("LVQR clients in Chromium against meshrelay", () => {
  test("chain a <- b <- c; the root leaves; a newcomer becomes the root; every later object once everywhere, no loop", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const state = { track: "e2e/lvqr-chain", published: 0 };
      const [a, b, c] = await lvqrPeers(server, peers, state.track, ["a", "b", "c"]);
      assert.equal(a.assignment.role, "Root");
      assert.equal(b.assignment.parentId, "a");
      assert.equal(c.assignment.parentId, "b");
      await waitFed(server, [a, b, c]);
      const [s1, e1] = await publishMore(server, state, 40);
      await expectOnce([a, b, c], s1, e1);

      await a.close();
      await waitGone(server, "a", [b]);
      // No LVQR peer can take over the origin (its integrator would not
      // notice), so a newcomer must: its first AssignParent makes it root.
      const [d] = await lvqrPeers(server, peers, state.track, ["d"]);
      const rest = [b, c, d];
      await waitFed(server, rest);
      assert.equal(d.assignment.role, "Root", "the newcomer took the free root slot");
      const [s2, e2] = await publishMore(server, state, 60);
      const snaps = await expectOnce(rest, s2, e2);
      log(`after a left and d joined: ${rest.map((p, k) => `${p.peerId} under ${snaps[k].parent}`).join(", ")}`);
    });
  });

  test("LVQR chain of four; an inner peer leaves; every later object once everywhere", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const state = { track: "e2e/lvqr-inner", published: 0 };
      const chain = await lvqrPeers(server, peers, state.track, ["a", "b", "c", "e"]);
      assert.deepEqual(chain.map((p) => p.assignment.parentId), [null, "a", "b", "c"]);
      await innerLeaves(server, peers, chain, "b", state);
    });
  });

  test("SDK root with an LVQR chain below; an inner LVQR peer leaves; every later object once everywhere", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const state = { track: "e2e/lvqr-sdkroot", published: 0 };
      const r = await openPeer(shared, server, { peerId: "r", track: state.track });
      peers.push(r);
      assert.equal(r.assignment.role, "Root");
      const chain = [r, ...(await lvqrPeers(server, peers, state.track, ["b", "c", "e"]))];
      assert.deepEqual(chain.map((p) => p.assignment.parentId), [null, "r", "b", "c"]);
      await innerLeaves(server, peers, chain, "b", state);
    });
  });

  test("a re-plan that only changes an LVQR peer's depth tells it nothing: its one link stays and every object arrives once", async () => {
    // The seed's placement rule, whose shape this spells out: a peer of
    // capacity 0 takes the shallowest free slot.
    await withServer({ rootPeerCount: 1, maxPeers: 2, extraArgs: ["--placement", "shallowest"] }, async (server, peers) => {
      const state = { track: "e2e/lvqr-depth", published: 0 };
      // a (2 slots) <- b (1), x (0); b <- c (1); c <- e (0).
      const open = async (peerId, capacity) => {
        const p = await openLvqrPeer(shared, server, { peerId, track: state.track, capacity });
        peers.push(p);
        return p;
      };
      const a = await open("a", 2);
      const b = await open("b", 1);
      const x = await open("x", 0);
      const c = await open("c", 1);
      const e = await open("e", 0);
      assert.deepEqual([a, b, x, c, e].map((p) => p.assignment.parentId), [null, "a", "a", "b", "c"]);
      await waitFed(server, [a, b, x, c, e]);
      const [s1, e1] = await publishMore(server, state, 40);
      await expectOnce([a, b, x, c, e], s1, e1);

      // b leaves: c takes its place under a, and e moves up with c, under
      // the same parent. LVQR's client would open a new connection on any
      // AssignParent, so e must hear nothing.
      await b.close();
      const rest = [a, x, c, e];
      await waitGone(server, "b", [a, c]);
      await waitFed(server, rest);
      const placed = await getMesh(server);
      const place = (id) => placed.peers.find((m) => m.peer_id === id);
      assert.deepEqual([place("c").parent, place("c").depth], ["a", 1]);
      assert.deepEqual([place("e").parent, place("e").depth], ["c", 2]);
      const [s2, e2] = await publishMore(server, state, 60);
      const snaps = await expectOnce(rest, s2, e2);
      const se = snaps[3];
      assert.equal(se.assigns.length, 1, `e was sent only its first AssignParent: ${JSON.stringify(se.assigns)}`);
      assert.equal(se.links.parents.length, 1, "e opened one parent connection in all");
    });
  });

  test("the LVQR root leaves: no LVQR peer is promoted; a newcomer becomes the root and feeds them once each", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 2 }, async (server, peers) => {
      const state = { track: "e2e/lvqr-noroot", published: 0 };
      const [a, b, c] = await lvqrPeers(server, peers, state.track, ["a", "b", "c"]);
      assert.deepEqual([a, b, c].map((p) => p.assignment.parentId), [null, "a", "a"]);
      await waitFed(server, [a, b, c]);
      const [s1, e1] = await publishMore(server, state, 40);
      await expectOnce([a, b, c], s1, e1);

      await a.close();
      await waitGone(server, "a", [b, c]);
      // The leave is planned in one step and both pages have heard of it:
      // any promotion would show now.
      const mesh = await getMesh(server);
      for (const p of [b, c]) {
        const m = mesh.peers.find((x) => x.peer_id === p.peerId);
        assert.notEqual(m.role, "Root", `/api/v1/mesh: LVQR peer ${p.peerId} was promoted to Root, which its integrator never notices`);
        assert.notEqual((await p.snapshot()).role, "Root", `${p.peerId} was told it is Root`);
      }
      const waiting = mesh.peers.filter((m) => m.parent === null).map((m) => m.peer_id);
      assert.ok(waiting.length > 0, "with the root gone and nobody promoted, someone waits for a parent");

      const [d] = await lvqrPeers(server, peers, state.track, ["d"]);
      assert.equal(d.assignment.role, "Root", "the newcomer took the free root slot");
      const rest = [b, c, d];
      await waitFed(server, rest);
      const placed = await getMesh(server);
      for (const id of waiting) assert.equal(placed.peers.find((m) => m.peer_id === id).parent, "d", `waiting ${id} placed under the newcomer`);
      const [s2, e2] = await publishMore(server, state, 60);
      await expectOnce(rest, s2, e2);
    });
  });

  test("an SDK parent drops a slow LVQR child: it moves to another parent and gets every later object once from it only", async () => {
    await withServer({ rootPeerCount: 2, maxPeers: 1 }, async (server, peers) => {
      const state = { track: "e2e/lvqr-drop", published: 0 };
      // Any bytes still buffered towards the child when the next object is
      // forwarded make it "slow" at once: a burst is bound to.
      const a = await openPeer(shared, server, { peerId: "a", track: state.track, slowChildBytes: 0, slowChildMs: 0, maxChildBufferedBytes: 0 });
      peers.push(a);
      const x = await openPeer(shared, server, { peerId: "x", track: state.track });
      peers.push(x);
      const [b] = await lvqrPeers(server, peers, state.track, ["b"]);
      assert.equal(b.assignment.parentId, "a", "ties go to the root that has waited longest");
      await waitFed(server, [a, x, b]);

      await publishMore(server, state, 100, 0);
      const moved = await waitFor(
        async () => {
          const s = await b.snapshot();
          return s.parent === "x" ? s : false;
        },
        { message: "b to be told its new parent x" },
      ).catch(async (e) => {
        await dumpPeers([a, x, b]);
        throw e;
      });
      const sa = await a.snapshot();
      assert.ok(
        sa.childClose.some(([id, reason]) => id === "b" && reason.startsWith("slow consumer")),
        `a dropped b as slow: ${JSON.stringify(sa.childClose)}`,
      );
      const movedAt = moved.assigns.findIndex((v) => v.parentId === "x") + 1;
      await waitFed(server, [a, x, b]);

      const [s2, e2] = await publishMore(server, state, 60, 20);
      await expectOnce([a, x, b], s2, e2);
      const deliveries = await b.deliveries();
      const late = deliveries.filter(([, link, seen]) => link === "a" && seen >= movedAt);
      assert.deepEqual(late, [], "nothing from the old parent a after b was moved");
      const later = deliveries.filter(([id]) => id >= s2);
      assert.ok(later.every(([, link]) => link === "x"), `the later objects all came from x: ${JSON.stringify(later.filter(([, l]) => l !== "x"))}`);
    });
  });

  test("an SDK root sends an LVQR child each object as one message, up to 256 KiB, and nothing larger", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const state = { track: "e2e/lvqr-large", published: 0 };
      const r = await openPeer(shared, server, { peerId: "r", track: state.track });
      peers.push(r);
      const [b] = await lvqrPeers(server, peers, state.track, ["b"]);
      assert.equal(b.assignment.parentId, "r");
      const [sb] = (await waitFed(server, [r, b])).slice(1);
      assert.equal(sb.links.parents[0].maxMessageSize, MAX_MESSAGE, "the channel's max message size");

      // Ids 0..339 hold small objects, ones just under and over 64 KiB (5, 6),
      // 100-250 KiB ones, and id 303 of 269,457 bytes: no DataChannel carries it.
      const [s, e] = await publishMore(server, state, FIRST_UNSENDABLE + 37, 5);
      assert.ok(!fitsOneMessage(FIRST_UNSENDABLE) && fitsOneMessage(FIRST_UNSENDABLE - 1));
      const [, snap] = await expectOnce([r, b], s, e);
      assert.ok(!snap.ids.includes(FIRST_UNSENDABLE), `b got object ${FIRST_UNSENDABLE} although no message can hold it`);
      // Each object a message of its own: every message was an object, byte-exact, and
      // sizes from either side of 64 KiB up to nearly 256 KiB came through.
      const sizes = (await b.deliveries()).map(([, , , n]) => n);
      assert.equal(sizes.length, e - s - 1, "one message per object");
      for (const edge of [65_536, 65_537, 100 * 1024, 200 * 1024, 240 * 1024]) {
        assert.ok(sizes.some((n) => n >= edge), `a message of at least ${edge} bytes came through`);
      }
    });
  });

  test("mixed chain LVQR root <- LVQR <- SDK <- LVQR: every object once, in order at the SDK peer", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const state = { track: "e2e/lvqr-mixed", published: 0 };
      const [a, b] = await lvqrPeers(server, peers, state.track, ["a", "b"]);
      const s = await openPeer(shared, server, { peerId: "s", track: state.track });
      peers.push(s);
      const [c] = await lvqrPeers(server, peers, state.track, ["c"]);
      const chain = [a, b, s, c];
      assert.deepEqual(chain.map((p) => p.assignment.parentId), [null, "a", "b", "s"]);
      await waitFed(server, chain);
      // Past id 303, which b cannot pass on: s repairs it from the origin, c never gets it.
      const [s1, e1] = await publishMore(server, state, FIRST_UNSENDABLE + 37, 5);
      await expectOnce(chain, s1, e1);
      const ss = await s.snapshot();
      log(`s: fromParent=${ss.stats.fromParent} fromOrigin=${ss.stats.fromOrigin} chunksDiscarded=${ss.stats.chunksDiscarded}`);
      assert.equal(Number(ss.stats.chunksDiscarded), 0);
      assert.ok(Number(ss.stats.fromParent) >= FIRST_UNSENDABLE, `s read its LVQR parent's one-message objects: ${ss.stats.fromParent} from it`);
      assert.ok(Number(ss.stats.fromOrigin) >= 1, `s repaired object ${FIRST_UNSENDABLE} from the origin`);
    });
  });
});
