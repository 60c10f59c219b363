import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { encodeObject, frameForDataChannel } from "../src/framing.js";
import { MeshPeer, type MeshPeerConfig } from "../src/peer.js";
import { FakePeerConnection, FakeWebSocket, installFakes } from "./fakes.js";

const obj = (id: number, size = 10) => encodeObject(BigInt(id), new Uint8Array(size).fill(id & 0xff));
const flush = () => vi.advanceTimersByTimeAsync(0);

function make(extra: Partial<MeshPeerConfig> = {}) {
  const frames: [bigint, number][] = [];
  const events: string[] = [];
  const peer = new MeshPeer({
    signalUrl: "ws://h:1/signal",
    track: "live/t",
    peerId: "me",
    capacity: 2,
    heartbeatIntervalMs: 1000,
    onFrame: (id, b) => frames.push([id, b.byteLength]),
    onChildOpen: (id) => events.push(`open ${id}`),
    onChildClose: (id, r) => events.push(`close ${id} ${r}`),
    onLost: (first, n) => events.push(`lost ${first} ${n}`),
    ...extra,
  });
  return { peer, frames, events };
}

async function joined(peer: MeshPeer, assign: Record<string, unknown>) {
  const p = peer.connect();
  const sig = FakeWebSocket.all[0]!;
  sig.open();
  sig.serverText({ type: "AssignParent", peer_id: "me", ice_servers: [], ...assign });
  await p;
  await flush();
  return sig;
}

const ids = (frames: [bigint, number][]) => frames.map(([id]) => Number(id));
const originSockets = () => FakeWebSocket.all.filter((w) => w.url.includes("/ws/"));

beforeEach(() => {
  installFakes();
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance", "Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("MeshPeer signalling", () => {
  it("registers, resolves connect() on AssignParent, heartbeats and reconnects with backoff", async () => {
    const { peer } = make();
    const sig = await joined(peer, { role: "Root", parent_id: null, depth: 0, next_object_id: 5 });
    expect(sig.json()[0]).toEqual({ type: "Register", peer_id: "me", track: "live/t", capacity: 2 });
    expect(peer.role).toBe("Root");
    expect(peer.nextObjectId).toBe(5n);
    await vi.advanceTimersByTimeAsync(3100);
    expect(sig.json().filter((m) => m.type === "Heartbeat").length).toBe(3);
    sig.serverClose(1006);
    expect(FakeWebSocket.all.filter((w) => w.url.endsWith("/signal")).length).toBe(1);
    await vi.advanceTimersByTimeAsync(600);
    const again = FakeWebSocket.all.filter((w) => w.url.endsWith("/signal"));
    expect(again.length).toBe(2);
    again[1]!.open();
    expect(again[1]!.json()[0]).toMatchObject({ type: "Register", peer_id: "me" });
    peer.close();
  });

  it("sends the token as the lvqr.bearer subprotocol", async () => {
    const { peer } = make({ token: "s3cret" });
    await joined(peer, { role: "Root", parent_id: null, depth: 0, next_object_id: 0 });
    expect(FakeWebSocket.all[0]!.protocols).toEqual(["lvqr.bearer.s3cret"]);
    expect(originSockets()[0]!.protocols).toEqual(["lvqr.bearer.s3cret"]);
    peer.close();
  });

  it("reports forwarded_frames every second only when the count changed, and Leave on close", async () => {
    const { peer } = make();
    const sig = await joined(peer, { role: "Root", parent_id: null, depth: 0, next_object_id: 0 });
    const pc = await childJoins(sig, "kid");
    const dc = pc.remoteChannel();
    dc.open();
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(0));
    origin.serverBinary(obj(1));
    await vi.advanceTimersByTimeAsync(1000);
    await vi.advanceTimersByTimeAsync(3000);
    const reports = sig.json().filter((m) => m.type === "ForwardReport");
    expect(reports.map((r) => r.forwarded_frames)).toEqual([2]);
    peer.close();
    expect(sig.json().at(-1)).toEqual({ type: "Leave" });
  });
});

async function childJoins(sig: FakeWebSocket, kid: string): Promise<FakePeerConnection> {
  sig.serverText({ type: "Offer", from: kid, to: "me", sdp: "v=0 offer" });
  await flush();
  const pc = FakePeerConnection.all.at(-1)!;
  expect(sig.json().find((m) => m.type === "Answer" && m.to === kid)).toMatchObject({ from: "me", sdp: "v=0 answer" });
  return pc;
}

describe("MeshPeer as a root", () => {
  it("reads the origin from next_object_id and delivers in order once", async () => {
    const { peer, frames } = make();
    await joined(peer, { role: "Root", parent_id: null, depth: 0, next_object_id: 7 });
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=7");
    origin.open();
    for (const i of [7, 8, 8, 9]) origin.serverBinary(obj(i));
    expect(ids(frames)).toEqual([7, 8, 9]);
    expect(peer.stats).toMatchObject({ fromOrigin: 3, duplicates: 1, fromParent: 0 });
    peer.close();
  });

  it("skips ids the origin no longer keeps (ResumeGap) and reports them lost", async () => {
    const { peer, frames, events } = make();
    await joined(peer, { role: "Root", parent_id: null, depth: 0, next_object_id: 10 });
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverText({ type: "ResumeGap", requested: 10, first: 15 });
    origin.serverBinary(obj(15));
    expect(ids(frames)).toEqual([15]);
    expect(events).toContain("lost 10 5");
    expect(peer.stats.lost).toBe(5);
    peer.close();
  });

  it("forwards to children, chunked above 64 KiB, and drops a child that stays slow", async () => {
    const { peer, events } = make({ slowChildBytes: 1000, slowChildMs: 2000 });
    const sig = await joined(peer, { role: "Root", parent_id: null, depth: 0, next_object_id: 0 });
    const pcA = await childJoins(sig, "a");
    const dcA = pcA.remoteChannel();
    dcA.open();
    const pcB = await childJoins(sig, "b");
    const dcB = pcB.remoteChannel();
    dcB.open();
    expect(events).toEqual(["open a", "open b"]);
    expect(peer.children.sort()).toEqual(["a", "b"]);
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(0, 100_000));
    expect(dcA.sent.length).toBe(2);
    expect(dcA.sent.map((m) => m.byteLength)).toEqual(frameForDataChannel(0n, new Uint8Array(100_000)).map((m) => m.byteLength));
    dcB.bufferedAmount = 5000; // b stops draining
    origin.serverBinary(obj(1));
    await vi.advanceTimersByTimeAsync(1000);
    origin.serverBinary(obj(2));
    expect(peer.children.sort()).toEqual(["a", "b"]);
    await vi.advanceTimersByTimeAsync(1500);
    expect(events.some((e) => e.startsWith("close b slow consumer"))).toBe(true);
    expect(peer.children).toEqual(["a"]);
    origin.serverBinary(obj(3));
    expect(dcA.sent.length).toBe(5); // 2 chunks + 1, 2, 3: a was never stalled
    expect(peer.stats.childrenDropped).toBe(1);
    peer.close();
  });
});

async function parentLink(sig: FakeWebSocket, parent: string) {
  const pc = FakePeerConnection.all.at(-1)!;
  expect(sig.json().filter((m) => m.type === "Offer" && m.to === parent).length).toBeGreaterThan(0);
  sig.serverText({ type: "Answer", from: parent, to: "me", sdp: "v=0 answer" });
  await flush();
  expect(pc.remote).toEqual({ type: "answer", sdp: "v=0 answer" });
  return { pc, dc: pc.channels[0]! };
}

describe("MeshPeer as a relay", () => {
  it("offers to its parent, filters ICE candidates, fills a join gap from the origin, then stops reading it", async () => {
    const { peer, frames } = make({ iceCandidateFilter: (c) => c.includes(" 127.0.0.1 ") });
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 10 });
    const { pc, dc } = await parentLink(sig, "P");
    sig.serverText({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host" });
    sig.serverText({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:2 1 udp 1 192.0.2.1 5000 typ host" });
    await flush();
    expect(pc.candidates.length).toBe(1);
    pc.onicecandidate?.({ candidate: { candidate: "candidate:3 1 udp 1 192.0.2.9 1 typ host", sdpMid: "0", sdpMLineIndex: 0 } });
    pc.onicecandidate?.({ candidate: { candidate: "candidate:4 1 udp 1 127.0.0.1 1 typ host", sdpMid: "0", sdpMLineIndex: 0 } });
    expect(sig.json().filter((m) => m.type === "IceCandidate").map((m) => m.candidate)).toEqual([
      "candidate:4 1 udp 1 127.0.0.1 1 typ host",
    ]);
    expect(originSockets().length).toBe(0); // grace period: the parent is coming up
    dc.open();
    dc.recv(obj(13));
    dc.recv(obj(14));
    expect(frames).toEqual([]);
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=10");
    origin.open();
    for (const i of [10, 11, 12]) origin.serverBinary(obj(i));
    expect(ids(frames)).toEqual([10, 11, 12, 13, 14]);
    expect(origin.readyState).toBe(3); // closed: the parent covers from 13 on
    expect(peer.readingOrigin).toBe(false);
    dc.recv(obj(15));
    expect(ids(frames)).toEqual([10, 11, 12, 13, 14, 15]);
    expect(peer.stats).toMatchObject({ fromParent: 3, fromOrigin: 3, repairedFromOrigin: 3, gapsRepaired: 1 });
    peer.close();
  });

  it("holds local ICE candidates until its Offer has gone out", async () => {
    const { peer } = make();
    const p = peer.connect();
    const sig = FakeWebSocket.all[0]!;
    sig.open();
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Relay", parent_id: "P", depth: 1, ice_servers: [], next_object_id: 0 });
    const pc = FakePeerConnection.all.at(-1)!;
    pc.onicecandidate?.({ candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0 } });
    expect(sig.json().map((m) => m.type)).toEqual(["Register"]);
    await p;
    await flush();
    expect(sig.json().map((m) => m.type)).toEqual(["Register", "Offer", "IceCandidate"]);
    peer.close();
  });

  it("reads the origin when the parent does not come up within the grace period", async () => {
    const { peer } = make({ parentGraceMs: 1000 });
    await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 3 });
    await vi.advanceTimersByTimeAsync(500);
    expect(originSockets().length).toBe(0);
    await vi.advanceTimersByTimeAsync(800);
    expect(originSockets()[0]!.url).toBe("ws://h:1/ws/live/t?from=3");
    peer.close();
  });

  it("reassembles chunked objects from the parent", async () => {
    const { peer, frames } = make();
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 0 });
    const { dc } = await parentLink(sig, "P");
    dc.open();
    for (const m of frameForDataChannel(0n, new Uint8Array(200_000).fill(7))) dc.recv(m);
    dc.recv(obj(1));
    expect(frames).toEqual([
      [0n, 200_000],
      [1n, 10],
    ]);
    peer.close();
  });

  it("repairs an object whose chunk run broke from the origin", async () => {
    const { peer, frames } = make();
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 0 });
    const { dc } = await parentLink(sig, "P");
    dc.open();
    dc.recv(obj(0));
    const chunks = frameForDataChannel(1n, new Uint8Array(150_000).fill(1));
    dc.recv(chunks[0]!);
    dc.recv(chunks[2]!); // chunks[1] missing: object 1 is discarded
    dc.recv(obj(2));
    expect(ids(frames)).toEqual([0]);
    expect(peer.stats.chunksDiscarded).toBeGreaterThan(0);
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=1");
    origin.open();
    origin.serverBinary(encodeObject(1n, new Uint8Array(150_000).fill(1)));
    expect(frames).toEqual([
      [0n, 10],
      [1n, 150_000],
      [2n, 10],
    ]);
    expect(origin.readyState).toBe(3);
    peer.close();
  });

  it("re-parents without a gap: keeps the old parent until the new one covers the next id", async () => {
    const { peer, frames } = make();
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 0 });
    const p = await parentLink(sig, "P");
    p.dc.open();
    for (const i of [0, 1, 2]) p.dc.recv(obj(i));
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Relay", parent_id: "Q", depth: 2, ice_servers: [] });
    await flush();
    expect(peer.parent).toBe("Q");
    const q = await parentLink(sig, "Q");
    p.dc.recv(obj(3)); // the old path still delivers
    q.dc.open();
    q.dc.recv(obj(6)); // the new path starts ahead: the old one bridges 4, 5
    expect(p.pc.closed).toBe(false);
    p.dc.recv(obj(4));
    p.dc.recv(obj(5));
    expect(p.pc.closed).toBe(true); // Q covers from 6 = next
    q.dc.recv(obj(7));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(originSockets().length).toBe(0);
    expect(peer.stats.fromParent).toBe(8);
    peer.close();
  });

  it("bridges a dead parent link from the origin and reconnects to the same parent", async () => {
    const { peer, frames } = make();
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 0 });
    const p = await parentLink(sig, "P");
    p.dc.open();
    p.dc.recv(obj(0));
    p.dc.recv(obj(1));
    p.dc.close(); // no PeerLeft, no new assignment
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=2");
    origin.open();
    origin.serverBinary(obj(2));
    origin.serverBinary(obj(3));
    const before = FakePeerConnection.all.length;
    await vi.advanceTimersByTimeAsync(600);
    expect(FakePeerConnection.all.length).toBe(before + 1); // retried P
    const p2 = await parentLink(sig, "P");
    p2.dc.open();
    p2.dc.recv(obj(3));
    expect(origin.readyState).toBe(3);
    p2.dc.recv(obj(4));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4]);
    expect(peer.stats).toMatchObject({ fromParent: 3, fromOrigin: 2, duplicates: 1 });
    peer.close();
  });

  it("reads the origin at once when its parent leaves, and a promoted peer keeps it", async () => {
    const { peer, frames } = make();
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 0 });
    const p = await parentLink(sig, "P");
    p.dc.open();
    p.dc.recv(obj(0));
    sig.serverText({ type: "PeerLeft", peer_id: "P" });
    expect(p.pc.closed).toBe(true);
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=1");
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Root", parent_id: null, depth: 0, ice_servers: [] });
    origin.open();
    origin.serverBinary(obj(1));
    expect(peer.role).toBe("Root");
    expect(originSockets().length).toBe(1);
    expect(origin.readyState).toBe(1);
    expect(ids(frames)).toEqual([0, 1]);
    peer.close();
  });

  it("keeps a repair reader open while the new parent comes up, then hands over without a gap", async () => {
    const { peer, frames } = make();
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 0 });
    const p = await parentLink(sig, "P");
    p.dc.open();
    p.dc.recv(obj(0));
    sig.serverText({ type: "PeerLeft", peer_id: "P" });
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(1));
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Relay", parent_id: "Q", depth: 1, ice_servers: [] });
    await flush();
    expect(origin.readyState).toBe(1); // still repairing while Q connects
    await vi.advanceTimersByTimeAsync(5000);
    expect(origin.readyState).toBe(1);
    origin.serverBinary(obj(2));
    const q = await parentLink(sig, "Q");
    q.dc.open();
    q.dc.recv(obj(4)); // Q starts past the next id (3): the origin stays
    expect(origin.readyState).toBe(1);
    origin.serverBinary(obj(3));
    expect(origin.readyState).toBe(3); // Q covers from 4 = next
    q.dc.recv(obj(5));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(originSockets().length).toBe(1);
    expect(peer.stats.gapsRepaired).toBe(1);
    peer.close();
  });

  it("does not read the origin while an open parent has nothing to deliver yet (idle stream)", async () => {
    const { peer, frames } = make();
    const sig = await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 0 });
    const p = await parentLink(sig, "P");
    p.dc.open();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(originSockets().length).toBe(0);
    p.dc.recv(obj(0));
    expect(ids(frames)).toEqual([0]);
    peer.close();
  });

  it("an unplaced peer (parent_id null, not a root) reads the origin", async () => {
    const { peer } = make();
    await joined(peer, { role: "Relay", parent_id: null, depth: 0, next_object_id: 4 });
    expect(originSockets()[0]!.url).toBe("ws://h:1/ws/live/t?from=4");
    peer.close();
  });
});

describe("MeshPeer with an external root source", () => {
  it("pushFrame delivers in order and forwards", async () => {
    const { peer, frames } = make({ rootSource: "external" });
    const sig = await joined(peer, { role: "Root", parent_id: null, depth: 0, next_object_id: 0 });
    expect(originSockets().length).toBe(0);
    const pc = await childJoins(sig, "k");
    const dc = pc.remoteChannel();
    dc.open();
    peer.pushFrame(1, new Uint8Array(3));
    peer.pushFrame(0n, new Uint8Array(2));
    expect(ids(frames)).toEqual([0, 1]);
    expect(dc.sent.length).toBe(2);
    expect(peer.stats.pushed).toBe(2);
    peer.close();
  });
});
