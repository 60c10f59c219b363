import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { encodeObject, frameForDataChannel } from "../src/framing.js";
import { MeshPeer, type MeshPeerConfig } from "../src/peer.js";
import { FakePeerConnection, FakeWebSocket, installFakes } from "./fakes.js";

const obj = (id: number, size = 10) => encodeObject(BigInt(id), new Uint8Array(size).fill(id & 0xff));
const flush = () => vi.advanceTimersByTimeAsync(0);

function makePeer(extra: Partial<MeshPeerConfig> = {}) {
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

/** Connects `peer` and answers its Register with an AssignParent carrying `assign`. */
async function joined(peer: MeshPeer, assign: Record<string, unknown>) {
  const p = peer.connect();
  const sig = FakeWebSocket.all[0]!;
  sig.open();
  sig.serverText({ type: "AssignParent", peer_id: "me", ice_servers: [], ...assign });
  await p;
  await flush();
  return sig;
}

const ROOT = { role: "Root", parent_id: null, depth: 0 };
const UNDER_P = { role: "Relay", parent_id: "P", depth: 1 };

/** A root peer reading the origin from `next`. */
async function rootPeer(next: number, extra: Partial<MeshPeerConfig> = {}) {
  const made = makePeer(extra);
  const sig = await joined(made.peer, { ...ROOT, next_object_id: next });
  return { ...made, sig };
}

/** A relay under parent "P" from `next`, its DataChannel to P open. */
async function relayUnderP(next = 0, extra: Partial<MeshPeerConfig> = {}) {
  const made = makePeer(extra);
  const sig = await joined(made.peer, { ...UNDER_P, next_object_id: next });
  const p = await parentLink(sig, "P");
  p.dc.open();
  return { ...made, sig, p };
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
    const { peer, sig } = await rootPeer(5);
    expect(sig.json()[0]).toEqual({
      type: "Register",
      peer_id: "me",
      track: "live/t",
      capacity: 2,
      features: ["origin", "updates"],
    });
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
    const { peer } = await rootPeer(0, { token: "s3cret" });
    expect(FakeWebSocket.all[0]!.protocols).toEqual(["lvqr.bearer.s3cret"]);
    expect(originSockets()[0]!.protocols).toEqual(["lvqr.bearer.s3cret"]);
    peer.close();
  });

  it("reports forwarded_frames every second only when the count changed, and Leave on close", async () => {
    const { peer, sig } = await rootPeer(0);
    const dc = await openChild(sig, "kid");
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

/** `kid` offers to us; returns our RTCPeerConnection towards it once we answered. */
async function childJoins(sig: FakeWebSocket, kid: string): Promise<FakePeerConnection> {
  sig.serverText({ type: "Offer", from: kid, to: "me", sdp: "v=0 offer" });
  await flush();
  const pc = FakePeerConnection.all.at(-1)!;
  expect(sig.json().find((m) => m.type === "Answer" && m.to === kid)).toMatchObject({ from: "me", sdp: "v=0 answer" });
  return pc;
}

/** `kid` joins as a child and its DataChannel opens. */
async function openChild(sig: FakeWebSocket, kid: string) {
  const dc = (await childJoins(sig, kid)).remoteChannel();
  dc.open();
  return dc;
}

describe("MeshPeer as a root", () => {
  it("reads the origin from next_object_id and delivers in order once", async () => {
    const { peer, frames } = await rootPeer(7);
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=7");
    origin.open();
    for (const i of [7, 8, 8, 9]) origin.serverBinary(obj(i));
    expect(ids(frames)).toEqual([7, 8, 9]);
    expect(peer.stats).toMatchObject({ fromOrigin: 3, duplicates: 1, fromParent: 0 });
    peer.close();
  });

  it("skips ids the origin no longer keeps (ResumeGap) and reports them lost", async () => {
    const { peer, frames, events } = await rootPeer(10);
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverText({ type: "ResumeGap", requested: 10, first: 15 });
    origin.serverBinary(obj(15));
    expect(ids(frames)).toEqual([15]);
    expect(events).toContain("lost 10 5");
    expect(peer.stats.lost).toBe(5);
    peer.close();
  });

  it("reports each lost range in id order among the objects a ResumeGap releases", async () => {
    const order: string[] = [];
    const { peer, p } = await relayUnderP(0, {
      onFrame: (id) => order.push(`frame ${id}`),
      onLost: (first, n) => order.push(`lost ${first} ${n}`),
    });
    p.dc.recv(obj(3)); // held: 0..2 missing, so the origin is read from 0
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=0");
    origin.open();
    origin.serverText({ type: "ResumeGap", requested: 0, first: 5 });
    expect(order).toEqual(["lost 0 3", "frame 3", "lost 4 1"]);
    peer.close();
  });

  it("forwards to children, chunked above 64 KiB, and drops a child that stays slow", async () => {
    const { peer, events, sig } = await rootPeer(0, { slowChildBytes: 1000, slowChildMs: 2000 });
    const dcA = await openChild(sig, "a");
    const dcB = await openChild(sig, "b");
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
    // The server is asked, once, to give b another parent.
    expect(sig.json().filter((m) => m.type === "DropChild")).toEqual([{ type: "DropChild", peer_id: "b" }]);
    origin.serverBinary(obj(3));
    expect(dcA.sent.length).toBe(5); // 2 chunks + 1, 2, 3: a was never stalled
    expect(peer.stats.childrenDropped).toBe(1);
    peer.close();
  });
});

/** Our Offer to `parent` went out; the parent answers. */
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
    const { peer, frames } = makePeer({ iceCandidateFilter: (c) => c.includes(" 127.0.0.1 ") });
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
    const { peer } = makePeer();
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
    const { peer } = makePeer({ parentGraceMs: 1000 });
    await joined(peer, { role: "Relay", parent_id: "P", depth: 1, next_object_id: 3 });
    await vi.advanceTimersByTimeAsync(500);
    expect(originSockets().length).toBe(0);
    await vi.advanceTimersByTimeAsync(800);
    expect(originSockets()[0]!.url).toBe("ws://h:1/ws/live/t?from=3");
    peer.close();
  });

  it("reassembles chunked objects from the parent", async () => {
    const { peer, frames, p: { dc } } = await relayUnderP();
    for (const m of frameForDataChannel(0n, new Uint8Array(200_000).fill(7))) dc.recv(m);
    dc.recv(obj(1));
    expect(frames).toEqual([
      [0n, 200_000],
      [1n, 10],
    ]);
    peer.close();
  });

  it("repairs an object whose chunk run broke from the origin", async () => {
    const { peer, frames, p: { dc } } = await relayUnderP();
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

  it("repairs a discarded chunked object from the origin at once, even when nothing follows it", async () => {
    const { peer, frames, p: { dc } } = await relayUnderP();
    dc.recv(obj(0));
    const chunks = frameForDataChannel(1n, new Uint8Array(150_000).fill(1));
    dc.recv(chunks[0]!);
    dc.recv(chunks[2]!); // object 1 is discarded, and the stream goes quiet
    expect(originSockets().map((w) => w.url)).toEqual(["ws://h:1/ws/live/t?from=1"]);
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(encodeObject(1n, new Uint8Array(150_000).fill(1)));
    expect(frames).toEqual([
      [0n, 10],
      [1n, 150_000],
    ]);
    // The parent covers again from 2: the origin is let go.
    dc.recv(obj(2));
    expect(origin.readyState).toBe(FakeWebSocket.CLOSED);
    expect(ids(frames)).toEqual([0, 1, 2]);
    peer.close();
  });

  it("reads from the origin the objects above maxObjectBytes that a parent can only send in chunks", async () => {
    const { peer, frames, p: { dc } } = await relayUnderP(0, { maxObjectBytes: 100_000 });
    for (const m of frameForDataChannel(0n, new Uint8Array(150_000).fill(3))) dc.recv(m);
    expect(frames).toEqual([]);
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=0");
    origin.open();
    origin.serverBinary(encodeObject(0n, new Uint8Array(150_000).fill(3)));
    expect(frames).toEqual([[0n, 150_000]]);
    peer.close();
  });

  it("refuses ids a parent sends beyond the reorder window, and forwards none of them", async () => {
    const { peer, frames, sig, p: { dc } } = await relayUnderP(0, { maxBufferedObjects: 16 });
    const kid = await openChild(sig, "kid");
    dc.recv(obj(0));
    for (let i = 0; i < 5_000; i++) dc.recv(encodeObject(2n ** 62n + BigInt(i), new Uint8Array(8)));
    expect(peer.stats.tooFarAhead).toBe(5_000);
    expect(peer.stats.lost).toBe(0);
    expect(peer.nextObjectId).toBe(1n);
    dc.recv(obj(1));
    dc.recv(obj(2));
    expect(ids(frames)).toEqual([0, 1, 2]);
    expect(kid.sent.length).toBe(3);
    peer.close();
  });

  it("delivers nothing more once onFrame has called close(), mid-batch", async () => {
    let peer: MeshPeer | null = null;
    const seen: number[] = [];
    const made = await relayUnderP(0, {
      onFrame: (id) => {
        seen.push(Number(id));
        if (id === 1n) peer!.close();
      },
    });
    peer = made.peer;
    for (const i of [1, 2, 3]) made.p.dc.recv(obj(i));
    made.p.dc.recv(obj(0)); // releases 0..3 at once
    expect(seen).toEqual([0, 1]);
    expect(peer.stats.delivered).toBe(2);
  });

  it("re-parents without a gap: keeps the old parent until the new one covers the next id", async () => {
    const { peer, frames, sig, p } = await relayUnderP();
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
    const { peer, frames, sig, p } = await relayUnderP();
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
    const { peer, frames, sig, p } = await relayUnderP();
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
    const { peer, frames, sig, p } = await relayUnderP();
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
    const { peer, frames, sig, p } = await relayUnderP();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(originSockets().length).toBe(0);
    p.dc.recv(obj(0));
    expect(ids(frames)).toEqual([0]);
    peer.close();
  });

  it("an unplaced peer (parent_id null, not a root) reads the origin", async () => {
    const { peer } = makePeer();
    await joined(peer, { role: "Relay", parent_id: null, depth: 0, next_object_id: 4 });
    expect(originSockets()[0]!.url).toBe("ws://h:1/ws/live/t?from=4");
    peer.close();
  });
});

describe("MeshPeer with an external root source", () => {
  it("pushFrame delivers in order and forwards", async () => {
    const { peer, frames, sig } = await rootPeer(0, { rootSource: "external" });
    expect(originSockets().length).toBe(0);
    const dc = await openChild(sig, "k");
    peer.pushFrame(1, new Uint8Array(3));
    peer.pushFrame(0n, new Uint8Array(2));
    expect(ids(frames)).toEqual([0, 1]);
    expect(dc.sent.length).toBe(2);
    expect(peer.stats.pushed).toBe(2);
    peer.close();
  });
});

describe("MeshPeer with a child that reads no chunks (an LVQR client)", () => {
  it("sends it each object whole up to the channel's largest message, and nothing larger", async () => {
    const { peer, sig } = await rootPeer(0);
    const lvqr = (await childJoins(sig, "lvqr")).remoteChannel("");
    lvqr.open();
    const ours = await openChild(sig, "ours");
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(0, 100));
    origin.serverBinary(obj(1, 200_000));
    origin.serverBinary(obj(2, 300_000)); // over 256 KiB whole
    origin.serverBinary(obj(3, 10));
    expect(lvqr.sent).toEqual([obj(0, 100), obj(1, 200_000), obj(3, 10)]);
    expect(ours.sent.length).toBe(1 + 4 + 5 + 1); // chunked above 64 KiB
    expect(peer.stats).toMatchObject({ tooLargeForChild: 1, forwarded: 7, delivered: 4 });
    peer.close();
  });

  it("states the features it has at Register: no origin when the integrator feeds a root", async () => {
    const { peer, sig } = await rootPeer(0, { rootSource: "external" });
    expect(sig.json()[0]).toMatchObject({ type: "Register", features: ["updates"] });
    peer.close();
  });
});

describe("MeshPeer hot path", () => {
  it("sends the same message buffers to every child: the received one when it fits, else chunks built once", async () => {
    const { peer, sig } = await rootPeer(0);
    const dcA = await openChild(sig, "a");
    const dcB = await openChild(sig, "b");
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(0, 100));
    origin.serverBinary(obj(1, 100_000));
    expect(dcA.sent.length).toBe(3);
    dcA.sent.forEach((m, i) => expect(m).toBe(dcB.sent[i]));
    expect(dcA.sent[0]).toEqual(obj(0, 100));
    peer.close();
  });

  it("bounds the ICE candidates held before the remote description is set", async () => {
    const { peer, sig } = await rootPeer(0);
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    // Candidates arriving before setRemoteDescription resolves are held.
    for (let i = 0; i < 1000; i++) {
      sig.serverText({ type: "IceCandidate", from: "kid", to: "me", candidate: `candidate:${i} 1 udp 1 127.0.0.1 ${i} typ host` });
    }
    await flush();
    expect(FakePeerConnection.all.at(-1)!.candidates.length).toBe(64);
    peer.close();
  });

  it("close() leaves no timer behind, also with a reconnect and a parent retry pending", async () => {
    const { peer, sig, p } = await relayUnderP();
    p.dc.close(); // parent retry scheduled
    sig.serverClose(1006); // signal reconnect scheduled
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    peer.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(originSockets().every((w) => w.readyState === 3)).toBe(true);
  });
});

describe("MeshPeer children", () => {
  it("refuses an Offer from its own parent, and as a leaf", async () => {
    const { peer, sig } = await relayUnderP();
    const pcs = FakePeerConnection.all.length;
    sig.serverText({ type: "Offer", from: "P", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(FakePeerConnection.all.length).toBe(pcs);
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Leaf", parent_id: "P", depth: 1, ice_servers: [] });
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(FakePeerConnection.all.length).toBe(pcs);
    expect(sig.json().filter((m) => m.type === "Answer")).toEqual([]);
    peer.close();
  });

  it("closes the link to a child that the planner makes its parent", async () => {
    const { peer, sig, events } = await rootPeer(0);
    await openChild(sig, "kid");
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Relay", parent_id: "kid", depth: 1, ice_servers: [] });
    expect(events).toContain("close kid became our parent");
    expect(peer.children).toEqual([]);
    peer.close();
  });
});

describe("MeshPeer parent link", () => {
  it("gives up a parent whose DataChannel does not open in time and offers again", async () => {
    const { peer } = makePeer({ parentConnectTimeoutMs: 5_000 });
    const sig = await joined(peer, { ...UNDER_P, next_object_id: 0 });
    const offers = () => sig.json().filter((m) => m.type === "Offer" && m.to === "P").length;
    expect(offers()).toBe(1);
    await vi.advanceTimersByTimeAsync(5_300);
    expect(FakePeerConnection.all[0]!.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(offers()).toBe(2);
    peer.close();
  });

  it("takes ResumeGap ids exactly, past 2^53", async () => {
    const { peer, frames, events } = makePeer();
    await joined(peer, { ...ROOT, next_object_id: "9007199254740993" });
    const origin = originSockets()[0]!;
    origin.open();
    origin.onmessage?.({ data: '{"type":"ResumeGap","requested":9007199254740993,"first":9007199254740995}' });
    origin.serverBinary(encodeObject(9007199254740995n, new Uint8Array(1)));
    expect(frames.map(([id]) => id)).toEqual([9007199254740995n]);
    expect(events).toContain("lost 9007199254740993 2");
    peer.close();
  });
});

describe("MeshPeer signal errors", () => {
  const signals = () => FakeWebSocket.all.filter((w) => w.url.endsWith("/signal"));

  it("invalid_track before registration rejects connect() and closes", async () => {
    const { peer } = makePeer();
    const p = peer.connect();
    signals()[0]!.open();
    signals()[0]!.serverText({ type: "Error", code: "invalid_track", reason: "no" });
    await expect(p).rejects.toThrow("invalid_track");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(signals().length).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("mesh_full and duplicate_peer_id: Register again on a fresh socket, with growing delays", async () => {
    const { peer } = makePeer({ reconnectInitialMs: 1000 });
    const p = peer.connect();
    for (const [i, code] of ["mesh_full", "duplicate_peer_id"].entries()) {
      signals()[i]!.open();
      signals()[i]!.serverText({ type: "Error", code, reason: "" });
      expect(signals()[i]!.readyState).toBe(3);
      await vi.advanceTimersByTimeAsync(500 * 2 ** i);
      expect(signals().length).toBe(i + 1);
      await vi.advanceTimersByTimeAsync(500 * 2 ** i + 10);
      expect(signals().length).toBe(i + 2);
    }
    signals()[2]!.open();
    signals()[2]!.serverText({ type: "AssignParent", peer_id: "me", ...ROOT, ice_servers: [] });
    await expect(p).resolves.toMatchObject({ role: "Root" });
    peer.close();
  });

  it("rate_limited and its close 1008: a new session after the reconnect backoff", async () => {
    const { peer, sig } = await rootPeer(0);
    sig.serverText({ type: "Error", code: "rate_limited", reason: "slow down" });
    sig.serverClose(1008);
    expect(peer.connected).toBe(false);
    await vi.advanceTimersByTimeAsync(510);
    expect(signals().length).toBe(2);
    signals()[1]!.open();
    expect(signals()[1]!.json()[0]).toMatchObject({ type: "Register", peer_id: "me" });
    peer.close();
  });
});

describe("MeshPeer integrator callbacks", () => {
  /** Callbacks that record what they are told and then throw. */
  function throwing() {
    const seen: string[] = [];
    const boom = (what: string) => {
      seen.push(what);
      throw new Error(`integrator bug in ${what}`);
    };
    const cfg: Partial<MeshPeerConfig> = {
      onFrame: (id) => boom(`frame ${id}`),
      onChildOpen: (id) => boom(`open ${id}`),
      onChildClose: (id) => boom(`close ${id}`),
      onAssign: (a) => boom(`assign ${a.role}`),
      onParentOpen: (id) => boom(`parent ${id}`),
      onError: (code) => boom(`error ${code}`),
      onLost: (first, n) => boom(`lost ${first} ${n}`),
      log: () => {
        throw new Error("log sink bug");
      },
    };
    return { seen, cfg };
  }
  const frameIds = (seen: string[]) => seen.filter((e) => e.startsWith("frame ")).map((e) => Number(e.slice(6)));

  it("a throwing onLost, onFrame or onAssign loses no object and skips no step", async () => {
    const { seen, cfg } = throwing();
    const { peer } = await rootPeer(10, cfg);
    expect(seen).toEqual(["assign Root"]);
    const origin = originSockets()[0]!; // reconcile ran after onAssign threw
    origin.open();
    origin.serverBinary(obj(12));
    origin.serverBinary(obj(13));
    origin.serverText({ type: "ResumeGap", requested: 10, first: 12 });
    origin.serverBinary(obj(14));
    expect(seen.slice(1)).toEqual(["lost 10 2", "frame 12", "frame 13", "frame 14"]);
    expect(peer.stats).toMatchObject({ delivered: 3, lost: 2 });
    peer.close();
  });

  it("a throwing onChildClose while a slow child is dropped mid-release still delivers and forwards the rest", async () => {
    const { seen, cfg } = throwing();
    const { peer, sig } = await rootPeer(0, { ...cfg, slowChildBytes: 1000, maxChildBufferedBytes: 2000 });
    const slow = await openChild(sig, "slow");
    const fast = await openChild(sig, "fast");
    expect(seen).toEqual(["assign Root", "open slow", "open fast"]);
    slow.bufferedAmount = 1995; // the next object takes it past maxChildBufferedBytes
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(2));
    origin.serverBinary(obj(1));
    origin.serverBinary(obj(0)); // releases 0, 1, 2 at once; forwarding 0 drops `slow`
    expect(seen.slice(3)).toEqual(["close slow", "frame 0", "frame 1", "frame 2"]);
    expect(fast.sent.length).toBe(3);
    expect(peer.children).toEqual(["fast"]);
    expect(peer.stats).toMatchObject({ delivered: 3, forwarded: 3, childrenDropped: 1 });
    peer.close();
  });

  it("a throwing onError still rejects connect() on a fatal error; a throwing onParentOpen still stops the repair reader", async () => {
    const { seen, cfg } = throwing();
    const { peer } = makePeer(cfg);
    const p = peer.connect();
    const sig = FakeWebSocket.all[0]!;
    sig.open();
    sig.serverText({ type: "Error", code: "unauthorized", reason: "bad token" });
    await expect(p).rejects.toThrow("unauthorized");
    expect(seen).toEqual(["error unauthorized"]);

    installFakes();
    const r = makePeer({ ...throwing().cfg, parentGraceMs: 100 });
    const sig2 = await joined(r.peer, { ...UNDER_P, next_object_id: 0 });
    const link = await parentLink(sig2, "P");
    await vi.advanceTimersByTimeAsync(400); // grace over: repair from the origin
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(0));
    link.dc.open();
    link.dc.recv(obj(1));
    expect(origin.readyState).toBe(3);
    expect(r.peer.stats).toMatchObject({ delivered: 2, fromOrigin: 1, fromParent: 1 });
    r.peer.close();
  });
});

describe("MeshPeer stalled sources", () => {
  it("reads the origin when a hole stays open past the grace period although a silent old parent covers", async () => {
    const { peer, frames, sig, p } = await relayUnderP(0, { parentGraceMs: 1000 });
    p.dc.recv(obj(0));
    p.dc.recv(obj(1));
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Relay", parent_id: "Q", depth: 2, ice_servers: [] });
    await flush();
    const q = await parentLink(sig, "Q");
    q.dc.open();
    q.dc.recv(obj(4)); // Q starts ahead; P is still open but sends nothing more
    q.dc.recv(obj(5));
    await vi.advanceTimersByTimeAsync(900);
    expect(originSockets().length).toBe(0); // the old parent may still bridge 2, 3
    await vi.advanceTimersByTimeAsync(400);
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=2");
    origin.open();
    origin.serverBinary(obj(2));
    origin.serverBinary(obj(3));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(origin.readyState).toBe(3); // Q covers from 6 = next
    expect(p.pc.closed).toBe(true);
    q.dc.recv(obj(6));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(peer.stats).toMatchObject({ lost: 0, fromOrigin: 2, fromParent: 5 });
    peer.close();
  });

  it("does not read the origin while a slow old parent keeps moving the hole forward", async () => {
    const { peer, frames, sig, p } = await relayUnderP(0, { parentGraceMs: 1000 });
    p.dc.recv(obj(0));
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Relay", parent_id: "Q", depth: 2, ice_servers: [] });
    await flush();
    const q = await parentLink(sig, "Q");
    q.dc.open();
    q.dc.recv(obj(6));
    for (const i of [1, 2, 3, 4, 5]) {
      await vi.advanceTimersByTimeAsync(700);
      p.dc.recv(obj(i));
    }
    expect(originSockets().length).toBe(0);
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    peer.close();
  });
});

describe("MeshPeer when the browser refuses the ICE servers", () => {
  const STUN = [{ urls: "stun:127.0.0.1:3478" }];

  it("uses AssignParent's ice_servers over the config's, for the parent link and for children", async () => {
    const TURN = [{ urls: ["turn:127.0.0.1:3478"], username: "u", credential: "c" }];
    const made = makePeer({ iceServers: STUN });
    const sig = await joined(made.peer, { ...UNDER_P, ice_servers: TURN, next_object_id: 0 });
    expect(FakePeerConnection.all[0]!.config).toEqual({ iceServers: TURN });
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(FakePeerConnection.all[1]!.config).toEqual({ iceServers: TURN });
    made.peer.close();
  });

  it("falls back to the config's iceServers, reports rtc_config once, and connect() resolves", async () => {
    const errors: string[] = [];
    const made = makePeer({ iceServers: STUN, onError: (code, reason) => errors.push(`${code} ${reason}`) });
    const bad = [{ urls: "not-a-url", username: "u", credential: "turn-secret" }];
    const sig = await joined(made.peer, { ...UNDER_P, ice_servers: bad, next_object_id: 0 });
    expect(made.peer.role).toBe("Relay");
    expect(FakePeerConnection.all.length).toBe(1);
    expect(FakePeerConnection.all[0]!.config).toEqual({ iceServers: STUN });
    expect(sig.json().filter((m) => m.type === "Offer" && m.to === "P").length).toBe(1);
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(FakePeerConnection.all.length).toBe(2);
    expect(FakePeerConnection.all[1]!.config).toEqual({ iceServers: STUN });
    expect(errors.length).toBe(1);
    expect(errors[0]).toMatch(/^rtc_config RTCPeerConnection refused iceServers \["not-a-url"\]: SyntaxError/);
    expect(errors[0]).not.toContain("turn-secret");
    made.peer.close();
  });

  it("with no RTCPeerConnection at all: connect() resolves, the origin is read, an Offer is refused without an unhandled rejection", async () => {
    FakePeerConnection.refuseAll = true;
    const errors: string[] = [];
    const { peer, frames } = makePeer({ onError: (code) => errors.push(code) });
    const sig = await joined(peer, { ...UNDER_P, next_object_id: 3 });
    expect(errors).toEqual(["rtc_config"]);
    const origin = originSockets()[0]!;
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=3");
    origin.open();
    origin.serverBinary(obj(3));
    expect(ids(frames)).toEqual([3]);
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(sig.json().filter((m) => m.type === "Answer")).toEqual([]);
    peer.close();
  });
});

describe("MeshPeer child links", () => {
  it("closes a child whose DataChannel never opens within childConnectTimeoutMs", async () => {
    const { peer, events, sig } = await rootPeer(0, { childConnectTimeoutMs: 4000 });
    const pc = await childJoins(sig, "kid");
    await vi.advanceTimersByTimeAsync(3500);
    expect(pc.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(800);
    expect(pc.closed).toBe(true);
    expect(events).toEqual(["close kid DataChannel not open after 4000 ms"]);
    // A later Offer from the same child is a fresh attempt.
    const again = await childJoins(sig, "kid");
    again.remoteChannel().open();
    expect(peer.children).toEqual(["kid"]);
    peer.close();
  });

  it("a child link closed locally (no close event) leaves children at once and is reported by maintain()", async () => {
    const { peer, events, sig } = await rootPeer(0);
    const dc = await openChild(sig, "kid");
    const pc = FakePeerConnection.all.at(-1)!;
    pc.close(); // as window.dropChildLinks() in the e2e page
    expect(dc.readyState).toBe("closed");
    expect(peer.children).toEqual([]);
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(0)); // not sent on the closed channel (it would throw)
    expect(peer.stats.forwarded).toBe(0);
    await vi.advanceTimersByTimeAsync(300);
    expect(events).toEqual(["open kid", "close kid DataChannel closed"]);
    peer.close();
  });
});

describe("MeshPeer when sockets never open", () => {
  const signals = () => FakeWebSocket.all.filter((w) => w.url.endsWith("/signal"));

  it("three signal sockets refused before registration (HTTP 401 shows as 1006): connect() rejects, onError, no more retries", async () => {
    const errors: [string, string][] = [];
    const { peer } = makePeer({ reconnectInitialMs: 100, onError: (c, r) => errors.push([c, r]) });
    const p = peer.connect();
    const rejected = expect(p).rejects.toThrow(/signal_unreachable: .*3 signal connections in a row failed to open.*HTTP 401/);
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(i === 0 ? 0 : 1000);
      expect(signals().length).toBe(i + 1);
      signals()[i]!.serverClose(1006);
    }
    await rejected;
    expect(errors.map(([c]) => c)).toEqual(["signal_unreachable"]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(signals().length).toBe(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a socket that opens resets the count; after registration failures are reported and retried for ever", async () => {
    const errors: string[] = [];
    const { peer } = makePeer({ reconnectInitialMs: 100, reconnectMaxMs: 100, onError: (c) => errors.push(c) });
    const p = peer.connect();
    signals()[0]!.serverClose(1006);
    await vi.advanceTimersByTimeAsync(200);
    signals()[1]!.serverClose(1006);
    await vi.advanceTimersByTimeAsync(200);
    signals()[2]!.open(); // opened: the run of failures ends
    signals()[2]!.serverText({ type: "AssignParent", peer_id: "me", ...ROOT, ice_servers: [] });
    await p;
    signals()[2]!.serverClose(1006);
    for (let i = 3; i < 9; i++) {
      await vi.advanceTimersByTimeAsync(200);
      signals()[i]!.serverClose(1006);
      if (i === 4) expect(errors).toEqual([]); // two in a row since the one that opened
    }
    expect(errors).toEqual(["signal_unreachable"]); // once per run of failures, at the 3rd
    await vi.advanceTimersByTimeAsync(200);
    expect(signals().length).toBe(10);
    expect(peer.connected).toBe(false);
    peer.close();
  });

  it("an origin socket closed before opening is reported as origin_unreachable and retried", async () => {
    const errors: [string, string][] = [];
    const { peer } = await rootPeer(4, { onError: (c, r) => errors.push([c, r]) });
    originSockets()[0]!.serverClose(1006);
    expect(errors).toEqual([["origin_unreachable", "origin egress ws://h:1/ws/live/t: closed before opening (code 1006)"]]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(originSockets().length).toBe(2);
    originSockets()[1]!.open();
    originSockets()[1]!.serverClose(1001); // opened first: a normal resume, not reported
    expect(errors.length).toBe(1);
    peer.close();
  });
});

describe("MeshPeer slow-child cooldown", () => {
  it("refuses Offers from a child dropped as slow until slowChildCooldownMs has passed", async () => {
    const { peer, sig, events } = await rootPeer(0, { slowChildBytes: 1000, maxChildBufferedBytes: 2000, slowChildCooldownMs: 10_000 });
    const dc = await openChild(sig, "kid");
    dc.bufferedAmount = 5000;
    const origin = originSockets()[0]!;
    origin.open();
    origin.serverBinary(obj(0));
    expect(events.at(-1)).toMatch(/^close kid slow consumer/);
    const pcs = FakePeerConnection.all.length;
    const answers = () => sig.json().filter((m) => m.type === "Answer" && m.to === "kid").length;
    expect(answers()).toBe(1);
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(FakePeerConnection.all.length).toBe(pcs);
    expect(answers()).toBe(1);
    await vi.advanceTimersByTimeAsync(9_000);
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(answers()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_100);
    sig.serverText({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    await flush();
    expect(answers()).toBe(2);
    expect(FakePeerConnection.all.length).toBe(pcs + 1);
    // Other children are not affected by kid's cooldown.
    await openChild(sig, "other");
    expect(peer.children.sort()).toEqual(["other"]);
    peer.close();
  });
});

describe("MeshPeer Answers of a superseded attempt", () => {
  /** A relay whose first Offer to P got no Answer in time; P's second attempt is under way. */
  async function retrying() {
    const made = makePeer({ parentConnectTimeoutMs: 2_000 });
    const sig = await joined(made.peer, { ...UNDER_P, next_object_id: 0 });
    await vi.advanceTimersByTimeAsync(2_300); // attempt 1 given up
    expect(FakePeerConnection.all[0]!.closed).toBe(true);
    vi.advanceTimersByTime(600); // the retry timer fires; its Offer is not out yet
    expect(FakePeerConnection.all.length).toBe(2);
    return { ...made, sig, pc2: FakePeerConnection.all[1]! };
  }
  const offers = (sig: FakeWebSocket) => sig.json().filter((m) => m.type === "Offer" && m.to === "P").length;

  it("drops an Answer and candidates that arrive before the current Offer went out; the real Answer lands", async () => {
    const { peer, frames, sig, pc2 } = await retrying();
    expect(offers(sig)).toBe(1);
    sig.serverText({ type: "Answer", from: "P", to: "me", sdp: "v=0 stale" });
    sig.serverText({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:1 1 udp 1 127.0.0.1 1 typ host" });
    await flush();
    expect(offers(sig)).toBe(2);
    expect(pc2.closed).toBe(false);
    sig.serverText({ type: "Answer", from: "P", to: "me", sdp: "v=0 real" });
    sig.serverText({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:2 1 udp 1 127.0.0.1 2 typ host" });
    await flush();
    expect(pc2.remote).toEqual({ type: "answer", sdp: "v=0 real" });
    expect(pc2.candidates.map((c) => (c as RTCIceCandidateInit).candidate)).toEqual(["candidate:2 1 udp 1 127.0.0.1 2 typ host"]);
    pc2.channels[0]!.open();
    pc2.channels[0]!.recv(obj(0));
    expect(ids(frames)).toEqual([0]);
    peer.close();
  });

  it("a second Answer for one attempt (the first was stale, crossing our Offer) starts the attempt over", async () => {
    const { peer, frames, sig, pc2 } = await retrying();
    await flush();
    expect(offers(sig)).toBe(2);
    sig.serverText({ type: "Answer", from: "P", to: "me", sdp: "v=0 stale" }); // crossed Offer 2 in flight
    await flush();
    expect(pc2.remote?.sdp).toBe("v=0 stale");
    sig.serverText({ type: "Answer", from: "P", to: "me", sdp: "v=0 real" });
    await flush();
    expect(pc2.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1_100); // the second retry's backoff: at most 1 s
    expect(offers(sig)).toBe(3);
    const pc3 = FakePeerConnection.all[2]!;
    sig.serverText({ type: "Answer", from: "P", to: "me", sdp: "v=0 third" });
    await flush();
    expect(pc3.remote?.sdp).toBe("v=0 third");
    pc3.channels[0]!.open();
    pc3.channels[0]!.recv(obj(0));
    expect(ids(frames)).toEqual([0]);
    expect(peer.parentConnected).toBe(true);
    peer.close();
  });
});

describe("MeshPeer former parent as a child", () => {
  it("closes the old-parent link when its former parent offers as a child", async () => {
    const { peer, sig, p, events } = await relayUnderP();
    p.dc.recv(obj(0));
    sig.serverText({ type: "AssignParent", peer_id: "me", role: "Relay", parent_id: "Q", depth: 1, ice_servers: [] });
    await flush();
    await parentLink(sig, "Q");
    expect(p.pc.closed).toBe(false); // kept as the old path while Q comes up
    const kid = await childJoins(sig, "P");
    expect(p.pc.closed).toBe(true);
    kid.remoteChannel().open();
    expect(peer.children).toEqual(["P"]);
    expect(events).toEqual(["open P"]);
    p.dc.recv(obj(1)); // the closed old link delivers nothing any more
    expect(peer.stats.delivered).toBe(1);
    peer.close();
  });
});

describe("MeshPeer object size bound", () => {
  it("discards a chunked object above maxObjectBytes from the parent and repairs it from the origin", async () => {
    const { peer, frames, p } = await relayUnderP(0, { maxObjectBytes: 100_000 });
    p.dc.recv(obj(0));
    for (const m of frameForDataChannel(1n, new Uint8Array(150_000))) p.dc.recv(m);
    p.dc.recv(obj(2));
    expect(ids(frames)).toEqual([0]);
    expect(peer.stats.chunksDiscarded).toBe(3); // refused at its first chunk, the other two stray
    expect(originSockets()[0]!.url).toBe("ws://h:1/ws/live/t?from=1");
    peer.close();
  });
});

describe("MeshPeer across a new epoch (the ids started again)", () => {
  const signals = () => FakeWebSocket.all.filter((w) => w.url.endsWith("/signal"));

  /** Drops the signal socket and answers the next Register with `assign`. */
  async function reRegister(assign: Record<string, unknown>) {
    signals().at(-1)!.serverClose(1006);
    await vi.advanceTimersByTimeAsync(20_000);
    const sig = signals().at(-1)!;
    sig.open();
    expect(sig.json()[0]).toMatchObject({ type: "Register", peer_id: "me" });
    sig.serverText({ type: "AssignParent", peer_id: "me", ice_servers: [], ...assign });
    await flush();
    return sig;
  }

  /** A root on epoch A that delivered objects 0..4 from its origin reader. */
  async function rootOnEpochA() {
    const restarts: string[] = [];
    const made = makePeer({ onRestart: (next, epoch) => restarts.push(`${next} ${epoch}`) });
    await joined(made.peer, { ...ROOT, next_object_id: 0, epoch: "A" });
    const first = originSockets()[0]!;
    first.open();
    for (let i = 0; i < 5; i++) first.serverBinary(obj(i));
    return { ...made, restarts, first };
  }

  it("a root restarts its sequence at the new next_object_id and reads the new origin from there", async () => {
    const { peer, frames, restarts, first } = await rootOnEpochA();
    first.serverClose(1006);
    // The server restarted: its ids begin again at 0 under epoch B.
    await reRegister({ ...ROOT, next_object_id: 0, epoch: "B" });
    expect(restarts).toEqual(["0 B"]);
    expect(peer.stats.restarts).toBe(1);
    expect(peer.nextObjectId).toBe(0n);
    // Readers opened before the restart (from=5) are closed; one reads from 0.
    const live = originSockets().filter((w) => w.readyState !== FakeWebSocket.CLOSED);
    expect(live.map((w) => new URL(w.url).searchParams.get("from"))).toEqual(["0"]);
    live[0]!.open();
    for (let i = 0; i < 3; i++) live[0]!.serverBinary(obj(i));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 0, 1, 2]);
    peer.close();
  });

  it("a relay drops its old parent and children, and offers to its new parent", async () => {
    const restarts: string[] = [];
    const { peer, frames, events, p } = await relayUnderP(0, {
      onRestart: (next, epoch) => restarts.push(`${next} ${epoch}`),
    });
    // relayUnderP's AssignParent carried no epoch; the next one names A.
    const sig0 = signals().at(-1)!;
    sig0.serverText({ type: "AssignParent", peer_id: "me", ice_servers: [], ...UNDER_P, next_object_id: 0, epoch: "A" });
    await flush();
    await openChild(sig0, "kid");
    p.dc.recv(obj(0));
    p.dc.recv(obj(1));
    expect(ids(frames)).toEqual([0, 1]);
    const sig = await reRegister({ role: "Relay", parent_id: "Q", depth: 1, next_object_id: 7, epoch: "B" });
    expect(restarts).toEqual(["7 B"]);
    expect(p.pc.closed).toBe(true);
    expect(events).toContain("close kid new epoch");
    expect(peer.children).toEqual([]);
    const q = await parentLink(sig, "Q");
    q.dc.open();
    // Ids below the new next are not delivered; the new sequence runs from 7.
    q.dc.recv(obj(6));
    q.dc.recv(obj(7));
    q.dc.recv(obj(8));
    expect(ids(frames)).toEqual([0, 1, 7, 8]);
    peer.close();
  });

  it("opens no origin reader while unregistered: only the next AssignParent's epoch says which sequence it serves", async () => {
    const { peer, frames, restarts, first } = await rootOnEpochA();
    // Server restart: both sockets go (an origin socket that went first
    // would find the server down on its immediate retry); the origin could
    // be reached again before the signal is.
    signals().at(-1)!.serverClose(1001);
    first.serverClose(1001);
    const closed = signals().at(-1)!;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(originSockets().filter((w) => w !== first)).toEqual([]);
    const sig = signals().at(-1)!;
    expect(sig).not.toBe(closed);
    sig.open();
    sig.serverText({ type: "AssignParent", peer_id: "me", ice_servers: [], ...ROOT, next_object_id: 0, epoch: "B" });
    await flush();
    expect(restarts).toEqual(["0 B"]);
    const live = originSockets().filter((w) => w !== first);
    expect(live.map((w) => new URL(w.url).searchParams.get("from"))).toEqual(["0"]);
    live[0]!.open();
    live[0]!.serverBinary(obj(0));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 0]);
    peer.close();
  });

  it("the same epoch, or none (an LVQR server), keeps the sequence", async () => {
    const { peer, frames, restarts, first } = await rootOnEpochA();
    await reRegister({ ...ROOT, next_object_id: 5, epoch: "A" });
    await reRegister({ ...ROOT, next_object_id: 5 });
    expect(restarts).toEqual([]);
    expect(peer.stats.restarts).toBe(0);
    expect(peer.nextObjectId).toBe(5n);
    // The first reader was never dropped: it goes on from 5.
    first.serverBinary(obj(4));
    first.serverBinary(obj(5));
    expect(ids(frames)).toEqual([0, 1, 2, 3, 4, 5]);
    peer.close();
  });
});
