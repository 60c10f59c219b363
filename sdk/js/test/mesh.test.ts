// Scenarios of e2e/resilience.test.mjs without a browser: MeshPeerCores on a
// virtual clock with in-memory links (test/sim/mesh.ts), signalled by the
// real `meshrelay serve` over real WebSockets on 127.0.0.1.
import { afterEach, describe, expect, it } from "vitest";
import { Mesh, type SimPeer, deliveredExactly } from "./sim/mesh.js";
import { type Server, getMesh, payload, publish, serverBinary, startServer } from "./sim/server.js";

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function serverAndMesh(opts: { rootPeerCount: number; maxPeers: number }): Promise<{ server: Server; mesh: Mesh }> {
  const server = await startServer(opts);
  const mesh = new Mesh(`${server.ws}/signal`);
  cleanups.push(
    () => server.stop(),
    () => mesh.shutdown(),
  );
  return { server, mesh };
}

const registered = (peers: SimPeer[]) => () => peers.every((p) => p.core.connected);
const parentsOpen = (peers: SimPeer[]) => () =>
  peers.every((p) => p.core.assignment?.role === "Root" || p.core.parentConnected);
/** Adds peers one after another, each registered before the next: the planner sees them in this order. */
async function addInOrder(mesh: Mesh, track: string, ids: string[], extra = {}): Promise<SimPeer[]> {
  const peers: SimPeer[] = [];
  for (const id of ids) {
    const p = mesh.add(id, track, extra);
    await mesh.until(registered([p]), `${id} registered`);
    peers.push(p);
  }
  return peers;
}
const delivered = (peers: SimPeer[], n: number) => () => peers.every((p) => p.frames.length >= n);

/**
 * Publishes objects from `start` one at a time, each delivered everywhere
 * before the next, until no non-root peer reads the origin (a new parent
 * proves that it covers only by delivering); returns how many it sent.
 */
async function publishUntilParentsOnly(server: Server, mesh: Mesh, track: string, peers: SimPeer[], start: number): Promise<number> {
  const pending = () => peers.filter((p) => p.core.assignment?.role !== "Root" && (!p.core.parentConnected || p.core.readingOrigin));
  let sent = 0;
  while (pending().length > 0) {
    if (sent === 100) throw new Error(`still reading the origin after 100 objects:\n${mesh.describe()}`);
    await publish(server, track, 1, start + sent);
    sent++;
    await mesh.until(delivered(peers, start + sent), `object ${start + sent - 1} everywhere`);
  }
  return sent;
}

/** Publishes `count` objects from `start` and checks that every non-root peer got all of them from its parent. */
async function lastBatchFromParents(server: Server, mesh: Mesh, track: string, peers: SimPeer[], start: number, count: number) {
  const before = peers.map((p) => p.core.stats.fromParent);
  await publish(server, track, count, start);
  await mesh.until(delivered(peers, start + count), `objects up to ${start + count - 1} everywhere`);
  expectExact(peers, range(0, start + count));
  for (const [i, p] of peers.entries()) {
    if (p.core.assignment?.role !== "Root") expect(p.core.stats.fromParent - before[i]!, `${p.id} from its parent`).toBe(count);
  }
}

function expectExact(peers: SimPeer[], want: number[]): void {
  for (const p of peers) {
    expect(deliveredExactly(p, want, payload)).toBeNull();
    expect(p.lost).toEqual([]);
  }
}

describe("scenarios against the real server", { timeout: 30_000 }, () => {
  it("finds the server binary (MESHRELAY_BIN, default ../../target/debug/meshrelay)", () => {
    expect(serverBinary()).toMatch(/meshrelay/);
  });

  it("a late joiner starts at next_object_id; a dead parent link is bridged from the origin and comes back", async () => {
    const { server, mesh } = await serverAndMesh({ rootPeerCount: 1, maxPeers: 1 });
    const track = "sim/late";
    const [a] = await addInOrder(mesh, track, ["a"]);
    await publish(server, track, 60);
    await mesh.until(delivered([a!], 60), "60 objects at a");
    const [b, c] = (await addInOrder(mesh, track, ["b", "c"])) as [SimPeer, SimPeer];
    for (const p of [b, c]) expect(p.core.assignment?.nextObjectId).toBe(60n);
    await mesh.until(parentsOpen([b, c]), "a <- b <- c");
    const N = 300;
    const publishing = publish(server, track, N - 60, 60);
    await mesh.until(() => c.frames.length >= 40, "c to have 40 objects");
    expect(mesh.cut(b, "c")).toBe(1); // b's link to c dies: no PeerLeft, no new assignment
    await publishing;
    const peers = [a!, b, c];
    await mesh.until(() => a!.frames.length >= N && b.frames.length >= N - 60 && c.frames.length >= N - 60, "every object");
    expectExact([a!], range(0, N));
    expectExact([b, c], range(60, N));
    expect(c.core.stats.fromOrigin).toBeGreaterThan(0);
    expect(c.core.stats.gapsRepaired).toBeGreaterThanOrEqual(1);
    mesh.advance(1_000); // c's retry of its parent
    await mesh.until(parentsOpen([c]), "c's link to b back");
    // Once its parent delivers again, c stops reading the origin.
    const before = peers.map((p) => p.frames.length);
    await publish(server, track, 50, N);
    await mesh.until(() => peers.every((p, i) => p.frames.length === before[i]! + 50), "the next 50 objects");
    await mesh.until(() => !c.core.readingOrigin, "c to let the origin go");
    expectExact([a!], range(0, N + 50));
    expectExact([b, c], range(60, N + 50));
  });

  it("a parent leaves mid-stream: its child is re-parented, every object arrives once, in order", async () => {
    const { server, mesh } = await serverAndMesh({ rootPeerCount: 1, maxPeers: 1 });
    const track = "sim/parentleave";
    const peers = await addInOrder(mesh, track, ["a", "b", "c", "d"]);
    await mesh.until(parentsOpen(peers), "a chain a <- b <- c <- d");
    const [a, b, c, d] = peers as [SimPeer, SimPeer, SimPeer, SimPeer];
    expect([b, c, d].map((p) => p.core.assignment?.parentId)).toEqual(["a", "b", "c"]);
    const N = 300;
    const publishing = publish(server, track, N);
    await mesh.until(() => c.frames.length >= 100, "c to have 100 objects");
    b.close(); // c's parent
    await publishing;
    const rest = [a, c, d];
    await mesh.until(delivered(rest, N), `${N} objects at a, c and d`);
    expectExact(rest, range(0, N));
    expect(c.core.assignment?.parentId).not.toBe("b");
    const tree = await getMesh(server);
    for (const p of rest) {
      expect(tree.peers.find((x) => x.peer_id === p.id)?.parent ?? null).toBe(p.core.assignment?.parentId ?? null);
    }
    // The stream goes on from the new parents alone.
    const settling = await publishUntilParentsOnly(server, mesh, track, rest, N);
    await lastBatchFromParents(server, mesh, track, rest, N + settling, 50);
  });

  it("the root leaves mid-stream: one peer is promoted, nothing is lost downstream", async () => {
    const { server, mesh } = await serverAndMesh({ rootPeerCount: 1, maxPeers: 1 });
    const track = "sim/rootleave";
    const peers = await addInOrder(mesh, track, ["a", "b", "c", "d"]);
    await mesh.until(parentsOpen(peers), "every parent link open");
    const [a, ...rest] = peers as [SimPeer, ...SimPeer[]];
    const N = 300;
    const publishing = publish(server, track, N);
    await mesh.until(() => rest.every((p) => p.frames.length >= 100), "100 objects downstream");
    a.close();
    await publishing;
    await mesh.until(delivered(rest, N), `${N} objects downstream`);
    expectExact(rest, range(0, N));
    await mesh.until(() => rest.filter((p) => p.core.assignment?.role === "Root").length === 1, "one promoted root");
  });

  it("a parent drops a slow child: the server moves it to the other root, nothing is lost", async () => {
    const { server, mesh } = await serverAndMesh({ rootPeerCount: 2, maxPeers: 1 });
    const track = "sim/slowchild";
    // Any bytes still buffered towards the child when the next object is forwarded make it slow at once.
    const a = mesh.add("a", track, { slowChildBytes: 0, slowChildMs: 0, maxChildBufferedBytes: 0 });
    await mesh.until(registered([a]), "a registered");
    const x = mesh.add("x", track);
    await mesh.until(registered([x]), "x registered");
    const b = mesh.add("b", track);
    await mesh.until(registered([b]), "b registered");
    expect(b.core.assignment?.parentId).toBe("a"); // ties go to the root that has waited longest
    await mesh.until(parentsOpen([b]), "b's link to a open");
    a.stallChild("b"); // b stops draining
    const N = 200;
    await publish(server, track, N);
    const peers = [a, x, b];
    await mesh.until(delivered(peers, N), `${N} objects everywhere`);
    expectExact(peers, range(0, N));
    expect(a.core.stats.childrenDropped).toBe(1);
    expect(a.childCloses.map(([id, why]) => [id, why.startsWith("slow consumer")])).toEqual([["b", true]]);
    await mesh.until(() => b.core.assignment?.parentId === "x" && b.core.parentConnected, "b under x");
    expect(b.assigns.map((v) => v.parentId)).toEqual(["a", "x"]);
    expect(b.core.stats.fromParent + b.core.stats.fromOrigin).toBe(N);
    // Its new parent carries the stream on its own.
    const settling = await publishUntilParentsOnly(server, mesh, track, peers, N);
    await lastBatchFromParents(server, mesh, track, peers, N + settling, 50);
  });

  it("the server restarts: every peer re-registers under a new epoch and delivers the new ids from 0", async () => {
    const opts = { rootPeerCount: 1, maxPeers: 1 };
    const { server: first, mesh } = await serverAndMesh(opts);
    const track = "sim/restart";
    const quick = { reconnectInitialMs: 100, reconnectMaxMs: 1000 };
    const peers = await addInOrder(mesh, track, ["a", "b", "c"], quick);
    await mesh.until(parentsOpen(peers), "every parent link open");
    const N1 = 150;
    await publish(first, track, N1);
    await mesh.until(delivered(peers, N1), `${N1} objects everywhere`);
    expectExact(peers, range(0, N1));
    const oldEpoch = (await getMesh(first)).tracks[0]?.epoch;

    await first.stop();
    await mesh.until(() => peers.every((p) => !p.core.connected && p.sockets.size === 0), "every signal socket closed");
    const second = await startServer({ ...opts, port: first.port });
    cleanups.push(() => second.stop());
    mesh.advance(1_000); // every reconnect backoff has run out
    await mesh.until(() => peers.every((p) => p.restarts.length === 1), "every peer to see the new epoch");
    const epoch = (await getMesh(second)).tracks[0]?.epoch;
    expect(epoch).toBeDefined();
    expect(epoch).not.toBe(oldEpoch);
    for (const p of peers) expect(p.restarts).toEqual([{ next: 0n, epoch }]);
    await mesh.until(parentsOpen(peers), "every new parent link open");
    const fromParent = peers.map((p) => p.core.stats.fromParent);
    const N2 = 150;
    await publish(second, track, N2);
    await mesh.until(delivered(peers, N1 + N2), `${N1 + N2} objects everywhere`);
    expectExact(peers, [...range(0, N1), ...range(0, N2)]);
    // A non-root peer gets the whole second stream from its new parent.
    for (const [i, p] of peers.entries()) {
      if (p.core.assignment?.role !== "Root") expect(p.core.stats.fromParent - fromParent[i]!).toBe(N2);
    }
  });
});
