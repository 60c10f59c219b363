// End-to-end resilience: a late joiner starts at AssignParent.next_object_id;
// a parent link that dies without any signal message is bridged from the
// origin egress (?from=) and re-established; a root that leaves mid-stream is
// replaced by a promoted peer; a relay joining takes a leaf's root slot; a
// parent drops a slow child; the server restarts. Every object still reaches
// every viewer once, in order, byte-exact.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import WebSocket from "ws";
import {
  expectExact,
  getMesh,
  log,
  openPage,
  openPeer,
  publish,
  sharedBrowser,
  startServer,
  waitAllDelivered,
  waitFor,
  publishUntilParentsOnly,
  waitParentsOpen,
  withServer,
} from "./harness.mjs";

const shared = sharedBrowser();

/**
 * Publishes from `start` until `peer` is fed by its parent only (a new
 * parent proves that it covers only by delivering, and the stream may have
 * gone quiet before the link came up), then one more batch, and asserts
 * that every peer has every object once and that `peer` got the whole batch
 * from its parent.
 */
async function lastBatchFromParent(server, track, peers, peer, start) {
  const settling = await publishUntilParentsOnly(server, track, [peer], start);
  await waitAllDelivered(peers, start + settling);
  const before = Number((await peer.snapshot()).stats.fromParent);
  const M = 50;
  await publish(server, track, M, { intervalMs: 10, start: start + settling });
  await waitAllDelivered(peers, start + settling + M);
  const after = await expectExact(assert, peer, start + settling + M);
  assert.equal(Number(after.stats.fromParent) - before, M, `${peer.peerId}: the last batch came from its parent ${after.parent}`);
}

describe("meshrelay SDK resilience in Chromium", () => {
  test("late joiner starts at next_object_id; a dead parent link is bridged from the origin", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const track = "e2e/late";
      const a = await openPeer(shared, server, { peerId: "a", track });
      peers.push(a);
      const N = 300;
      let b = null;
      let c = null;
      let joinedAt = null;
      let dropped = 0;
      await publish(server, track, N, {
        intervalMs: 10,
        onSent: async (i) => {
          if (i === 60) {
            b = await openPeer(shared, server, { peerId: "b", track });
            peers.push(b);
            c = await openPeer(shared, server, { peerId: "c", track });
            peers.push(c);
            joinedAt = Number(b.assignment.next);
            log(`b joined at next_object_id ${b.assignment.next}, c at ${c.assignment.next}`);
          }
          if (i === 160) {
            // b's link to c dies with no PeerLeft and no new assignment.
            dropped = await b.dropChildLinks();
          }
        },
      });
      assert.equal(dropped, 1, "b had one child link to kill");
      // The publisher waited after sending ids 0..60 while b and c joined:
      // they are told the id the stream is at, not 0 (60 only if the origin
      // had not yet read the last one).
      for (const p of [b, c]) {
        const next = Number(p.assignment.next);
        assert.ok(next === 60 || next === 61, `${p.peerId} joined at next_object_id ${next}, want 61`);
      }
      await waitAllDelivered(peers, N);
      await expectExact(assert, a, N);
      const sb = await expectExact(assert, b, N, joinedAt);
      const sc = await expectExact(assert, c, N, Number(c.assignment.next));
      log(`b: fromParent=${sb.stats.fromParent} fromOrigin=${sb.stats.fromOrigin}; c: fromParent=${sc.stats.fromParent} fromOrigin=${sc.stats.fromOrigin} gapsRepaired=${sc.stats.gapsRepaired}`);
      assert.ok(Number(sc.stats.fromOrigin) > 0, "c bridged the dead link from the origin");
      assert.ok(Number(sc.stats.gapsRepaired) >= 1);
      // Its parent link back, c stops reading the origin once the parent
      // delivers again: publish more so that it does, however late the link
      // came back.
      await waitParentsOpen([c]);
      const M = 50;
      await publish(server, track, M, { intervalMs: 10, start: N });
      await waitAllDelivered(peers, N + M);
      await waitFor(async () => !(await c.snapshot()).readingOrigin, {
        message: "c to stop reading the origin once its parent delivers again",
      });
      await expectExact(assert, a, N + M);
      await expectExact(assert, b, N + M, joinedAt);
      await expectExact(assert, c, N + M, Number(c.assignment.next));
    });
  });

  test("with subscribe and publish tokens: the SDK authenticates on /signal and /ws", async () => {
    const extraArgs = ["--subscribe-token", "sub-tok", "--publish-token", "pub-tok"];
    await withServer({ rootPeerCount: 1, maxPeers: 1, extraArgs }, async (server, peers) => {
      const track = "e2e/auth";
      const status = await new Promise((resolve) => {
        const ws = new WebSocket(`${server.ws}/signal`);
        ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
        ws.on("open", () => {
          ws.close();
          resolve("open");
        });
        ws.on("error", () => {});
      });
      assert.equal(status, 401, "no token: 401 before the upgrade");
      // The page sees a refused upgrade only as close 1006: after
      // connectAttempts of them connect() rejects and onError says so.
      const { context, page } = await openPage(shared, "intruder");
      try {
        const cfg = { signalUrl: `${server.ws}/signal`, track, peerId: "intruder", token: "wrong", reconnectInitialMs: 100 };
        const outcome = await page.evaluate((c) => window.startPeer(c).then(() => "resolved", (e) => String(e)), cfg);
        assert.match(outcome, /signal_unreachable: .*3 signal connections in a row failed to open.*HTTP 401/);
        const errors = await page.evaluate(() => window.rec.errors);
        assert.deepEqual(errors.map(([code]) => code), ["signal_unreachable"]);
      } finally {
        await context.close();
      }
      for (const id of ["a", "b"]) peers.push(await openPeer(shared, server, { peerId: id, track, token: "sub-tok" }));
      await waitParentsOpen([peers[1]]);
      const N = 40;
      await publish(server, track, N, { intervalMs: 5, token: "pub-tok" });
      await waitAllDelivered(peers, N);
      for (const p of peers) await expectExact(assert, p, N);
    });
  });

  test("a middle peer's signal socket is cut (rate_limited): it reconnects, re-registers, and nobody loses an object", async () => {
    const extraArgs = ["--message-rate", "20", "--message-burst", "40"];
    await withServer({ rootPeerCount: 1, maxPeers: 1, extraArgs }, async (server, peers) => {
      const track = "e2e/reconnect";
      for (const id of ["a", "b", "c"]) peers.push(await openPeer(shared, server, { peerId: id, track }));
      const [, b, c] = peers;
      await waitParentsOpen([b]);
      await waitParentsOpen([c]);
      const N = 300;
      await publish(server, track, N, {
        intervalMs: 10,
        onSent: async (i) => {
          if (i === 100) await b.floodSignal(200);
        },
      });
      await waitAllDelivered(peers, N);
      for (const p of peers) await expectExact(assert, p, N);
      const sb = await b.snapshot();
      log(`b: signalConnects=${sb.stats.signalConnects} assignments=${JSON.stringify(sb.assigns)} fromParent=${sb.stats.fromParent} fromOrigin=${sb.stats.fromOrigin}`);
      assert.ok(Number(sb.stats.signalConnects) >= 2, "b reconnected its signal socket");
      assert.ok(sb.errors.some(([code]) => code === "rate_limited"), `b was told rate_limited: ${JSON.stringify(sb.errors)}`);
      const mesh = await waitFor(
        async () => {
          const m = await getMesh(server);
          return m.peers.length === 3 ? m : false;
        },
        { message: "b back in /api/v1/mesh" },
      );
      for (const p of peers) {
        const s = await p.snapshot();
        const m = mesh.peers.find((x) => x.peer_id === p.peerId);
        assert.equal(s.parent ?? null, m.parent ?? null, `${p.peerId} parent agrees with /api/v1/mesh`);
      }
    });
  });

  test("the root leaves mid-stream: its child is promoted, nothing is lost downstream", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const track = "e2e/rootleave";
      for (const id of ["a", "b", "c", "d"]) peers.push(await openPeer(shared, server, { peerId: id, track }));
      const [a, b, c, d] = peers;
      await waitParentsOpen([b, c, d]);
      assert.equal(a.assignment.role, "Root");
      const N = 300;
      let closing = null;
      await publish(server, track, N, {
        intervalMs: 10,
        onSent: (i) => {
          if (i === 100) closing = a.close();
        },
      });
      await closing;
      const rest = [b, c, d];
      await waitAllDelivered(rest, N);
      for (const p of rest) {
        const s = await expectExact(assert, p, N);
        log(`${p.peerId}: role=${s.role} parent=${s.parent} fromParent=${s.stats.fromParent} fromOrigin=${s.stats.fromOrigin}`);
      }
      // Which peer is promoted is the planner's choice; exactly one is root now,
      // and the others still get most objects from peers.
      const snaps = await Promise.all(rest.map((p) => p.snapshot()));
      const roots = snaps.filter((s) => s.role === "Root");
      assert.equal(roots.length, 1, `one promoted root: ${snaps.map((s) => `${s.peerId}=${s.role}`).join(" ")}`);
      const mesh = await getMesh(server);
      for (const s of snaps) {
        const m = mesh.peers.find((p) => p.peer_id === s.peerId);
        assert.equal(s.parent ?? null, m?.parent ?? null, `${s.peerId} parent agrees with /api/v1/mesh`);
      }
      const nonRoot = snaps.filter((s) => s.role !== "Root");
      const fromPeers = nonRoot.reduce((n, s) => n + Number(s.stats.fromParent), 0);
      assert.ok(fromPeers > nonRoot.length * (N / 2), "non-root peers got most objects from peers");
    });
  });

  test("a relay joining takes the root slot of a leaf mid-stream: the leaf moves under it without losing an object", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 2 }, async (server, peers) => {
      const track = "e2e/leafroot";
      const leaf = await openPeer(shared, server, { peerId: "leaf", track, capacity: 0 });
      peers.push(leaf);
      assert.equal(leaf.assignment.role, "Root");
      const N = 300;
      let relay = null;
      await publish(server, track, N, {
        intervalMs: 10,
        onSent: async (i) => {
          if (i === 80) {
            relay = await openPeer(shared, server, { peerId: "relay", track });
            peers.push(relay);
          }
        },
      });
      assert.equal(relay.assignment.role, "Root", "the relay took the leaf's root slot");
      await waitAllDelivered(peers, N);
      await expectExact(assert, leaf, N);
      const start = Number(relay.assignment.next);
      await expectExact(assert, relay, N, start);
      const sl = await leaf.snapshot();
      log(`leaf: role=${sl.role} parent=${sl.parent} fromParent=${sl.stats.fromParent} fromOrigin=${sl.stats.fromOrigin}`);
      assert.deepEqual(sl.assigns.map((a) => [a.role, a.parentId]), [["Root", null], ["Leaf", "relay"]]);
      const mesh = await getMesh(server);
      assert.equal(mesh.peers.find((p) => p.peer_id === "leaf").parent, "relay");
      // Once its link is up the leaf is fed by the relay, not the origin.
      await lastBatchFromParent(server, track, peers, leaf, N);
    });
  });

  test("a parent drops a slow child: the drop is reported, the server moves the child to another parent, nothing is lost", async () => {
    await withServer({ rootPeerCount: 2, maxPeers: 1 }, async (server, peers) => {
      const track = "e2e/slowchild";
      // Any bytes still buffered towards the child when the next object is
      // forwarded make it "slow" at once: a burst is bound to.
      const a = await openPeer(shared, server, { peerId: "a", track, slowChildBytes: 0, slowChildMs: 0, maxChildBufferedBytes: 0 });
      peers.push(a);
      const x = await openPeer(shared, server, { peerId: "x", track });
      peers.push(x);
      const b = await openPeer(shared, server, { peerId: "b", track });
      peers.push(b);
      assert.equal(b.assignment.parentId, "a", "ties go to the root that has waited longest");
      await waitParentsOpen([b]);
      const N = 300;
      await publish(server, track, N, { intervalMs: 0 });
      await waitAllDelivered(peers, N);
      for (const p of peers) await expectExact(assert, p, N);
      const sa = await a.snapshot();
      log(`a: childrenDropped=${sa.stats.childrenDropped} childClose=${JSON.stringify(sa.childClose)}`);
      assert.ok(Number(sa.stats.childrenDropped) >= 1, "a dropped its slow child");
      assert.ok(
        sa.childClose.some(([id, reason]) => id === "b" && reason.startsWith("slow consumer")),
        `a reported dropping b as slow: ${JSON.stringify(sa.childClose)}`,
      );
      // a's DropChild moved b under the other root, and b follows.
      await waitFor(
        async () => (await getMesh(server)).peers.find((p) => p.peer_id === "b").parent === "x",
        { message: "/api/v1/mesh to show b under x" },
      );
      const sb = await waitFor(
        async () => {
          const s = await b.snapshot();
          return s.parent === "x" ? s : false;
        },
        { message: "b to be told its new parent x" },
      );
      assert.deepEqual(sb.assigns.map((v) => v.parentId), ["a", "x"]);
      assert.equal(Number(sb.stats.fromParent) + Number(sb.stats.fromOrigin), N, "each object delivered once, from one source");

      // Its new parent carries the stream on its own.
      await lastBatchFromParent(server, track, peers, b, N);
    });
  });

  test("the server restarts: every peer re-registers under a new epoch and delivers the new ids from 0", async () => {
    const opts = { rootPeerCount: 1, maxPeers: 1 };
    await withServer(opts, async (first, peers) => {
      const track = "e2e/restart";
      const quickReconnect = { reconnectInitialMs: 100, reconnectMaxMs: 1000 };
      for (const id of ["a", "b", "c"]) peers.push(await openPeer(shared, first, { peerId: id, track, ...quickReconnect }));
      await waitParentsOpen(peers);
      const N1 = 150;
      await publish(first, track, N1, { intervalMs: 5 });
      await waitAllDelivered(peers, N1);
      for (const p of peers) await expectExact(assert, p, N1);
      const oldEpoch = (await getMesh(first)).tracks[0].epoch;

      // The same address, a new process: the track's ids begin again at 0.
      await first.stop();
      const second = await startServer({ ...opts, port: first.port });
      try {
        const mesh = await waitFor(
          async () => {
            const m = await getMesh(second);
            return m.peer_count === 3 ? m : false;
          },
          { message: "all three peers registered on the new server" },
        );
        const epoch = mesh.tracks[0].epoch;
        assert.notEqual(epoch, oldEpoch);
        // Registered on the server is not yet told in the page: await that.
        const before = await waitFor(
          async () => {
            const snaps = await Promise.all(peers.map((p) => p.snapshot()));
            return snaps.every((s) => s.restarts.length > 0) ? snaps : false;
          },
          { message: "every page to see the new epoch" },
        );
        for (const s of before) assert.deepEqual(s.restarts, [["0", epoch]], `${s.peerId} restarted once, at 0`);
        // Once each one's new links are up (a new parent that is slow to
        // connect is covered by the origin, which a flowing stream lets it
        // close again), a non-root peer gets the rest from its new parent.
        const everyCount = (n) =>
          waitFor(
            async () => {
              const snaps = await Promise.all(peers.map((p) => p.snapshot()));
              return snaps.every((s) => s.count === n) ? snaps : false;
            },
            { message: `every peer to deliver ${n} objects` },
          );
        const settling = await publishUntilParentsOnly(second, track, peers, 0, { intervalMs: 5 });
        const settled = await everyCount(N1 + settling);
        const N2 = 150;
        await publish(second, track, N2, { intervalMs: 5, start: settling });
        await everyCount(N1 + settling + N2);
        const want = [...Array(N1).keys(), ...Array(settling + N2).keys()];
        for (const [i, p] of peers.entries()) {
          const s = await p.snapshot();
          assert.equal(s.badCount, 0, `${p.peerId}: objects with wrong bytes`);
          assert.deepEqual(s.outOfOrder, [], `${p.peerId}: out-of-order deliveries`);
          assert.deepEqual(s.lost, [], `${p.peerId}: lost objects`);
          assert.deepEqual(await p.ids(), want, `${p.peerId}: the first stream, then the second from 0`);
          const m = mesh.peers.find((x) => x.peer_id === p.peerId);
          if (m.role !== "Root") {
            const gained = Number(s.stats.fromParent) - Number(settled[i].stats.fromParent);
            assert.equal(gained, N2, `${p.peerId} got the second stream from its new parent`);
          }
        }
      } finally {
        await second.stop();
      }
    });
  });
});
