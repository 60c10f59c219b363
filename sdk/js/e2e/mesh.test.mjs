// End-to-end: real Chromium pages running MeshPeer against `meshrelay serve`,
// a Node publisher on /ingest/{track}, every object checked byte for byte at
// every viewer. All traffic on 127.0.0.1.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  expectExact,
  getMesh,
  log,
  openPeer,
  publish,
  sharedBrowser,
  sdkRoot,
  waitAllDelivered,
  waitFor,
  publishUntilParentsOnly,
  waitParentsOpen,
  withServer,
} from "./harness.mjs";

const shared = sharedBrowser();

describe("meshrelay SDK in Chromium", () => {
  test("the server serves the committed bundle at /sdk/meshrelay.js", async () => {
    await withServer({}, async (server) => {
      const r = await fetch(`${server.base}/sdk/meshrelay.js`);
      assert.equal(r.status, 200, "GET /sdk/meshrelay.js");
      assert.match(r.headers.get("content-type") ?? "", /javascript/);
      const served = await r.text();
      const dist = readFileSync(join(sdkRoot, "dist", "meshrelay.js"), "utf8");
      assert.ok(served === dist, "served bundle differs from sdk/js/dist/meshrelay.js (rebuild the server)");
    });
  });

  test("two peers: root + relay, every object byte-exact at the relay", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const track = "e2e/two";
      const root = await openPeer(shared, server, { peerId: "root", track });
      peers.push(root);
      assert.equal(root.assignment.role, "Root");
      const relay = await openPeer(shared, server, { peerId: "relay", track });
      peers.push(relay);
      assert.equal(relay.assignment.parentId, "root");
      assert.equal(relay.assignment.next, "0");
      await waitParentsOpen(peers);
      // Both ends of the link send from 127.0.0.1: the DataChannel runs on loopback.
      const ends = await waitFor(
        async () => {
          const [r, c] = await Promise.all([root.linkAddresses(), relay.linkAddresses()]);
          return r.children.relay && c.parent ? [r.children.relay, c.parent] : false;
        },
        { message: "a selected candidate pair at both ends" },
      );
      assert.deepEqual(ends, ["127.0.0.1", "127.0.0.1"]);

      const N = 120;
      await publish(server, track, N, { intervalMs: 5 });
      await waitAllDelivered(peers, N);
      await expectExact(assert, root, N);
      const s = await expectExact(assert, relay, N);
      log(`relay: fromParent=${s.stats.fromParent} fromOrigin=${s.stats.fromOrigin}`);
      assert.equal(Number(s.stats.fromParent), N, "with its parent connected before publishing, the relay gets all from it");
      const r = await root.snapshot();
      assert.equal(Number(r.stats.fromOrigin), N);
      assert.equal(Number(r.stats.forwarded), N);
    });
  });

  test("three peers in a chain: forwarded_frames on /api/v1/mesh matches the middle peer", async () => {
    await withServer({ rootPeerCount: 1, maxPeers: 1 }, async (server, peers) => {
      const track = "e2e/chain";
      for (const id of ["a", "b", "c"]) peers.push(await openPeer(shared, server, { peerId: id, track }));
      const [a, b, c] = peers;
      assert.equal(a.assignment.role, "Root");
      assert.equal(b.assignment.parentId, "a");
      assert.equal(c.assignment.parentId, "b");
      assert.equal(c.assignment.depth, 2);
      await waitParentsOpen(peers);

      const N = 150;
      await publish(server, track, N, { intervalMs: 5 });
      await waitAllDelivered(peers, N);
      for (const p of peers) await expectExact(assert, p, N);
      const sb = await b.snapshot();
      assert.equal(Number(sb.stats.forwarded), N, "middle peer forwarded every object once to its one child");
      const mesh = await waitFor(
        async () => {
          const m = await getMesh(server);
          const pb = m.peers.find((p) => p.peer_id === "b");
          return pb && pb.forwarded_frames === N ? m : false;
        },
        { timeoutMs: 5_000, message: `/api/v1/mesh forwarded_frames of b to reach ${N}` },
      );
      const byId = Object.fromEntries(mesh.peers.map((p) => [p.peer_id, p]));
      assert.equal(byId.b.parent, "a");
      assert.equal(byId.c.parent, "b");
      assert.equal(byId.c.forwarded_frames ?? 0, 0);
    });
  });

  test("twelve peers in a tree; an inner peer leaves mid-stream; nothing is lost", async () => {
    await withServer({ rootPeerCount: 2, maxPeers: 2 }, async (server, peers) => {
      const track = "e2e/tree";
      for (let i = 0; i < 12; i++) {
        peers.push(await openPeer(shared, server, { peerId: `v${String(i).padStart(2, "0")}`, track }));
      }
      await waitParentsOpen(peers);
      const before = await getMesh(server);
      const inner = before.peers
        .filter((p) => p.depth === 1 && p.intended_children > 0)
        .sort((x, y) => y.intended_children - x.intended_children)[0];
      assert.ok(inner, `an inner peer at depth 1 with children: ${JSON.stringify(before.peers)}`);
      const orphans = before.peers.filter((p) => p.parent === inner.peer_id).map((p) => p.peer_id);
      assert.ok(orphans.length > 0, "the inner peer has children on /api/v1/mesh");
      log(`closing inner peer ${inner.peer_id} (children ${orphans.join(", ")}) mid-stream`);
      const victim = peers.find((p) => p.peerId === inner.peer_id);

      const N = 400;
      let closing = null;
      await publish(server, track, N, {
        intervalMs: 15,
        onSent: (i) => {
          if (i === 150) closing = victim.close();
        },
      });
      await closing;
      const remaining = peers.filter((p) => p !== victim);
      await waitAllDelivered(remaining, N, 60_000);
      let fromPeers = 0;
      let total = 0;
      let relayFromPeers = 0;
      let relayTotal = 0;
      for (const p of remaining) {
        const s = await expectExact(assert, p, N);
        fromPeers += Number(s.stats.fromParent);
        total += Number(s.stats.delivered);
        if (s.role !== "Root") {
          relayFromPeers += Number(s.stats.fromParent);
          relayTotal += Number(s.stats.delivered);
        }
        if (orphans.includes(p.peerId)) {
          log(`orphan ${p.peerId}: parent now ${s.parent}, fromParent=${s.stats.fromParent} fromOrigin=${s.stats.fromOrigin} gapsRepaired=${s.stats.gapsRepaired} assignments=${JSON.stringify(s.assigns.map((a) => a.parentId))}`);
          if (process.env.E2E_DEBUG) log((await p.logs()).join("\n"));
        }
      }
      const share = (100 * fromPeers) / total;
      const relayShare = (100 * relayFromPeers) / relayTotal;
      log(`objects delivered from peers rather than the origin: ${share.toFixed(1)}% of all deliveries (${fromPeers}/${total}); ${relayShare.toFixed(1)}% for non-root peers`);
      console.log(`# peer share: ${share.toFixed(1)}% overall, ${relayShare.toFixed(1)}% for non-roots`);
      // Only the orphans read the origin, and only for the hole between
      // their old parent leaving and the new one delivering (at most the
      // grace period, ~100 objects each at this rate, out of 10 x 400).
      const RELAY_SHARE_FLOOR = 90;
      assert.ok(relayShare > RELAY_SHARE_FLOOR, `non-root peer share ${relayShare.toFixed(1)}% above ${RELAY_SHARE_FLOOR}%`);

      // The tree on /api/v1/mesh is repaired: 11 peers, consistent links and depths.
      const mesh = await waitFor(
        async () => {
          const m = await getMesh(server);
          return m.peers.length === 11 ? m : false;
        },
        { timeoutMs: 15_000, message: "/api/v1/mesh to show 11 peers" },
      );
      const byId = Object.fromEntries(mesh.peers.map((p) => [p.peer_id, p]));
      assert.equal(byId[inner.peer_id], undefined, "the closed peer is gone");
      for (const p of mesh.peers) {
        if (p.parent === null || p.parent === undefined) {
          assert.equal(p.depth, 0, `${p.peer_id} root at depth 0`);
        } else {
          assert.ok(byId[p.parent], `${p.peer_id}'s parent ${p.parent} exists`);
          assert.equal(p.depth, byId[p.parent].depth + 1, `${p.peer_id} depth`);
        }
      }
      assert.ok(mesh.peers.filter((p) => p.parent == null).length <= 2, "at most 2 roots");
      for (const p of mesh.peers) {
        const kids = mesh.peers.filter((c) => c.parent === p.peer_id).length;
        assert.equal(p.intended_children, kids, `${p.peer_id} intended_children`);
        assert.ok(kids <= 2, `${p.peer_id} has ${kids} children, more than --max-peers 2`);
      }
      for (const id of orphans) assert.notEqual(byId[id].parent, inner.peer_id);
      // And the peers agree with the server about their parents.
      for (const p of remaining) {
        const s = await p.snapshot();
        assert.equal(s.parent ?? null, byId[p.peerId].parent ?? null, `${p.peerId} parent agrees with /api/v1/mesh`);
      }

      // The repaired tree carries the stream on its own: once every non-root
      // peer (the orphans included) receives from its new parent and has
      // stopped reading the origin, a second batch reaches each of them
      // entirely from its parent, and the roots entirely from the origin.
      // A new parent proves that it covers only by delivering, so objects
      // flow until then.
      const settling = await publishUntilParentsOnly(server, track, remaining, N);
      await waitAllDelivered(remaining, N + settling);
      const settled = await Promise.all(remaining.map((p) => p.snapshot()));
      const M = 100;
      await publish(server, track, M, { intervalMs: 10, start: N + settling });
      await waitAllDelivered(remaining, N + settling + M);
      for (const p of remaining) {
        const s = await expectExact(assert, p, N + settling + M);
        const s0 = settled.find((x) => x.peerId === p.peerId);
        const grew = (k) => Number(s.stats[k]) - Number(s0.stats[k]);
        assert.equal(grew("delivered"), M, `${p.peerId} delivered the second batch`);
        if (s.role === "Root") {
          assert.equal(grew("fromOrigin"), M, `root ${p.peerId}: second batch from the origin`);
        } else {
          assert.equal(s.parent, s0.parent, `${p.peerId} kept its parent during the second batch`);
          assert.equal(grew("fromParent"), M, `${p.peerId}: second batch from its parent ${s.parent}`);
          assert.equal(grew("fromOrigin"), 0, `${p.peerId}: nothing of the second batch from the origin`);
        }
      }
    });
  });
});
