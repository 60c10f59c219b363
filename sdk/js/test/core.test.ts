// MeshPeerCore fed input by input at a virtual time; every output asserted.
import { describe, expect, it } from "vitest";
import { encodeObject, frameForDataChannel } from "../src/framing.js";
import { Driver, ROOT, UNDER_P, obj } from "./core-driver.js";

/** A root reading the origin from `next`; the origin socket is not open yet. */
function rootPeer(next: number, extra: ConstructorParameters<typeof Driver>[0] = {}) {
  const d = new Driver(extra).join({ ...ROOT, next_object_id: next });
  return { d, origin: d.originEnd() };
}

/** A relay under "P" from `next`, its channel to P open. */
function relayUnderP(next = 0, extra: ConstructorParameters<typeof Driver>[0] = {}) {
  const d = new Driver(extra);
  const p = d.relayUnderP(next);
  return { d, p };
}

describe("signalling", () => {
  it("registers, resolves connect() on AssignParent, heartbeats and reconnects with backoff", () => {
    const d = new Driver().join({ ...ROOT, next_object_id: 5 });
    expect(d.sent()[0]).toEqual({ type: "Register", peer_id: "me", track: "live/t", capacity: 2, features: ["origin", "updates"] });
    expect(d.last("connectResolved").assignment).toMatchObject({ role: "Root", nextObjectId: 5n });
    expect(d.core.nextObjectId).toBe(5n);
    d.advance(3100);
    expect(d.sentOf("Heartbeat").length).toBe(3);
    d.in({ type: "signalClosed", socket: d.sig(), code: 1006 });
    expect(d.signals().length).toBe(1);
    d.advance(600);
    expect(d.signals().length).toBe(2);
    d.in({ type: "signalOpened", socket: d.sig() });
    expect(d.all("sendSignal").at(-1)).toMatchObject({ socket: d.sig(), message: { type: "Register", peer_id: "me" } });
  });

  it("sends the token as the lvqr.bearer subprotocol", () => {
    const { d, origin } = rootPeer(0, { token: "s3cret" });
    expect(d.last("openSignal")).toMatchObject({ url: "ws://h:1/signal", protocols: ["lvqr.bearer.s3cret"] });
    expect(d.last("openOrigin").protocols).toEqual(["lvqr.bearer.s3cret"]);
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=0");
  });

  it("reports forwarded_frames every second only when the count changed, and Leave on close", () => {
    const { d, origin } = rootPeer(0);
    d.openChild("kid");
    origin.opened();
    origin.send(obj(0));
    origin.send(obj(1));
    d.advance(1000);
    d.advance(3000);
    expect(d.sentOf("ForwardReport").map((r) => r.forwarded_frames)).toEqual([2]);
    d.in({ type: "close" });
    expect(d.sent().at(-1)).toEqual({ type: "Leave" });
  });

  it("ignores every event of a signal socket it has replaced", () => {
    const d = new Driver().join({ ...ROOT, next_object_id: 0 });
    const old = d.sig();
    d.in({ type: "signalClosed", socket: old, code: 1006 });
    d.advance(1000);
    const before = d.outputs.length;
    d.in({ type: "signalMessage", socket: old, text: JSON.stringify({ type: "PeerLeft", peer_id: "x" }) });
    d.in({ type: "signalClosed", socket: old, code: 1006 });
    expect(d.outputs.length).toBe(before);
  });
});

describe("as a root", () => {
  it("reads the origin from next_object_id and delivers in order once", () => {
    const { d, origin } = rootPeer(7);
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=7");
    origin.opened();
    for (const i of [7, 8, 8, 9]) origin.send(obj(i));
    expect(d.ids()).toEqual([7, 8, 9]);
    expect(d.core.stats).toMatchObject({ fromOrigin: 3, duplicates: 1, fromParent: 0 });
  });

  it("skips ids the origin no longer keeps (ResumeGap) and reports them lost", () => {
    const { d, origin } = rootPeer(10);
    origin.opened();
    origin.text({ type: "ResumeGap", requested: 10, first: 15 });
    origin.send(obj(15));
    expect(d.ids()).toEqual([15]);
    expect(d.events).toContain("lost 10 5");
    expect(d.core.stats.lost).toBe(5);
  });

  it("reports each lost range in id order among the objects a ResumeGap releases", () => {
    const { d, p } = relayUnderP(0);
    p.send(obj(3)); // held: 0..2 missing, so the origin is read from 0
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=0");
    origin.opened();
    const out = origin.text({ type: "ResumeGap", requested: 0, first: 5 });
    const order = out.flatMap((o) =>
      o.type === "onLost" ? [`lost ${o.firstLost} ${o.count}`] : o.type === "onFrame" ? [`frame ${o.objectId}`] : [],
    );
    expect(order).toEqual(["lost 0 3", "frame 3", "lost 4 1"]);
  });

  it("forwards to children, chunked above 64 KiB, and drops a child that stays slow", () => {
    const { d, origin } = rootPeer(0, { slowChildBytes: 1000, slowChildMs: 2000 });
    const a = d.openChild("a");
    const b = d.openChild("b");
    expect(d.events).toEqual(["open a", "open b"]);
    expect(d.core.openChildren().map((c) => c.peerId)).toEqual(["a", "b"]);
    origin.opened();
    origin.send(obj(0, 100_000));
    expect(a.messages.map((m) => m.byteLength)).toEqual(frameForDataChannel(0n, new Uint8Array(100_000)).map((m) => m.byteLength));
    b.stall(5000); // b stops draining
    origin.send(obj(1));
    d.advance(1000);
    origin.send(obj(2));
    expect(d.core.openChildren().map((c) => c.peerId)).toEqual(["a", "b"]);
    d.advance(1500);
    expect(d.events.some((e) => e.startsWith("close b slow consumer"))).toBe(true);
    expect(b.closed).toBe(true);
    expect(d.core.openChildren().map((c) => c.peerId)).toEqual(["a"]);
    // The server is asked, once, to give b another parent.
    expect(d.sentOf("DropChild")).toEqual([{ type: "DropChild", peer_id: "b" }]);
    origin.send(obj(3));
    expect(a.messages.length).toBe(5); // 2 chunks + 1, 2, 3: a was never stalled
    expect(d.core.stats.childrenDropped).toBe(1);
  });
});

describe("as a relay", () => {
  it("offers to its parent, filters ICE candidates, fills a join gap from the origin, then stops reading it", () => {
    const d = new Driver({ iceCandidateFilter: (c) => c.includes(" 127.0.0.1 ") });
    d.join({ role: "Relay", parent_id: "P", depth: 1, next_object_id: 10 });
    const p = d.parentLink("P");
    d.server({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host" });
    d.server({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:2 1 udp 1 192.0.2.1 5000 typ host" });
    expect(d.all("addRemoteCandidate").map((o) => o.candidate.candidate)).toEqual(["candidate:1 1 udp 1 127.0.0.1 5000 typ host"]);
    for (const c of ["candidate:3 1 udp 1 192.0.2.9 1 typ host", "candidate:4 1 udp 1 127.0.0.1 1 typ host"]) {
      d.in({ type: "localCandidate", link: p.link, candidate: { candidate: c, sdpMid: "0", sdpMLineIndex: 0 } });
    }
    expect(d.sentOf("IceCandidate").map((m) => m.candidate)).toEqual(["candidate:4 1 udp 1 127.0.0.1 1 typ host"]);
    expect(d.origins().length).toBe(0); // grace period: the parent is coming up
    p.open();
    p.send(obj(13));
    p.send(obj(14));
    expect(d.frames).toEqual([]);
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=10");
    origin.opened();
    for (const i of [10, 11, 12]) origin.send(obj(i));
    expect(d.ids()).toEqual([10, 11, 12, 13, 14]);
    expect(origin.closed).toBe(true); // the parent covers from 13 on
    expect(d.core.readingOrigin).toBe(false);
    p.send(obj(15));
    expect(d.ids()).toEqual([10, 11, 12, 13, 14, 15]);
    expect(d.core.stats).toMatchObject({ fromParent: 3, fromOrigin: 3, repairedFromOrigin: 3, gapsRepaired: 1 });
  });

  it("holds local ICE candidates until its Offer has gone out", () => {
    const d = new Driver().join({ ...UNDER_P, next_object_id: 0 });
    const link = d.last("openPeerConnection").link;
    expect(d.last("openPeerConnection")).toMatchObject({ kind: "parent", peerId: "P", protocol: "meshrelay/1" });
    expect(d.last("createOffer").link).toBe(link);
    const cand = { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0 };
    d.in({ type: "localCandidate", link, candidate: cand });
    expect(d.sent().map((m) => m.type)).toEqual(["Register"]);
    d.in({ type: "linkDescribed", link, sdp: "v=0 offer" });
    expect(d.sent().map((m) => m.type)).toEqual(["Register", "Offer", "IceCandidate"]);
    expect(d.sentOf("Offer")[0]).toEqual({ type: "Offer", from: "me", to: "P", sdp: "v=0 offer" });
  });

  it("reads the origin when the parent does not come up within the grace period", () => {
    const d = new Driver({ parentGraceMs: 1000 }).join({ ...UNDER_P, next_object_id: 3 });
    d.advance(500);
    expect(d.origins().length).toBe(0);
    d.advance(800);
    expect(d.originEnd().url).toBe("ws://h:1/ws/live/t?from=3");
  });

  it("reassembles chunked objects from the parent", () => {
    const { d, p } = relayUnderP();
    for (const m of frameForDataChannel(0n, new Uint8Array(200_000).fill(7))) p.send(m);
    p.send(obj(1));
    expect(d.frames).toEqual([0n, 1n]);
    expect(d.sizes).toEqual([200_000, 10]);
  });

  it("repairs an object whose chunk run broke from the origin", () => {
    const { d, p } = relayUnderP();
    p.send(obj(0));
    const chunks = frameForDataChannel(1n, new Uint8Array(150_000).fill(1));
    p.send(chunks[0]!);
    p.send(chunks[2]!); // chunks[1] missing: object 1 is discarded
    p.send(obj(2));
    expect(d.ids()).toEqual([0]);
    expect(d.core.stats.chunksDiscarded).toBeGreaterThan(0);
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=1");
    origin.opened();
    origin.send(encodeObject(1n, new Uint8Array(150_000).fill(1)));
    expect(d.ids()).toEqual([0, 1, 2]);
    expect(d.sizes).toEqual([10, 150_000, 10]);
    expect(origin.closed).toBe(true);
  });

  it("repairs a discarded chunked object from the origin at once, even when nothing follows it", () => {
    const { d, p } = relayUnderP();
    p.send(obj(0));
    const chunks = frameForDataChannel(1n, new Uint8Array(150_000).fill(1));
    p.send(chunks[0]!);
    p.send(chunks[2]!); // object 1 is discarded, and the stream goes quiet
    expect(d.origins().map((o) => o.url)).toEqual(["ws://h:1/ws/live/t?from=1"]);
    const origin = d.originEnd();
    origin.opened();
    origin.send(encodeObject(1n, new Uint8Array(150_000).fill(1)));
    expect(d.sizes).toEqual([10, 150_000]);
    // The parent covers again from 2: the origin is let go.
    p.send(obj(2));
    expect(origin.closed).toBe(true);
    expect(d.ids()).toEqual([0, 1, 2]);
  });

  it("reads from the origin the objects above maxObjectBytes that a parent can only send in chunks", () => {
    const { d, p } = relayUnderP(0, { maxObjectBytes: 100_000 });
    for (const m of frameForDataChannel(0n, new Uint8Array(150_000).fill(3))) p.send(m);
    expect(d.frames).toEqual([]);
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=0");
    origin.opened();
    origin.send(encodeObject(0n, new Uint8Array(150_000).fill(3)));
    expect(d.frames).toEqual([0n]);
    expect(d.sizes).toEqual([150_000]);
  });

  it("refuses ids a parent sends beyond the reorder window, and forwards none of them", () => {
    const { d, p } = relayUnderP(0, { maxBufferedObjects: 16 });
    const kid = d.openChild("kid");
    p.send(obj(0));
    for (let i = 0; i < 5_000; i++) p.send(encodeObject(2n ** 62n + BigInt(i), new Uint8Array(8)));
    expect(d.core.stats.tooFarAhead).toBe(5_000);
    expect(d.core.stats.lost).toBe(0);
    expect(d.core.nextObjectId).toBe(1n);
    p.send(obj(1));
    p.send(obj(2));
    expect(d.ids()).toEqual([0, 1, 2]);
    expect(kid.sends.length).toBe(3);
  });

  it("delivers nothing more once the integrator closes it from onFrame, mid-batch", () => {
    const { d, p } = relayUnderP();
    d.onOutput = (o) => {
      if (o.type === "onFrame" && o.objectId === 1n) d.in({ type: "close" });
    };
    for (const i of [1, 2, 3]) p.send(obj(i));
    p.send(obj(0)); // releases 0..3 at once
    expect(d.ids()).toEqual([0, 1]);
    expect(d.core.stats.delivered).toBe(2);
    expect(d.sent().at(-1)).toEqual({ type: "Leave" });
  });

  it("re-parents without a gap: keeps the old parent until the new one covers the next id", () => {
    const { d, p } = relayUnderP();
    for (const i of [0, 1, 2]) p.send(obj(i));
    d.assign({ role: "Relay", parent_id: "Q", depth: 2 });
    expect(d.core.assignment?.parentId).toBe("Q");
    const q = d.parentLink("Q");
    p.send(obj(3)); // the old path still delivers
    q.open();
    q.send(obj(6)); // the new path starts ahead: the old one bridges 4, 5
    expect(p.closed).toBe(false);
    p.send(obj(4));
    p.send(obj(5));
    expect(p.closed).toBe(true); // Q covers from 6 = next
    q.send(obj(7));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(d.origins().length).toBe(0);
    expect(d.core.stats.fromParent).toBe(8);
  });

  it("bridges a dead parent link from the origin and reconnects to the same parent", () => {
    const { d, p } = relayUnderP();
    p.send(obj(0));
    p.send(obj(1));
    p.fail("DataChannel closed"); // no PeerLeft, no new assignment
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=2");
    origin.opened();
    origin.send(obj(2));
    origin.send(obj(3));
    const before = d.all("openPeerConnection").length;
    d.advance(600);
    expect(d.all("openPeerConnection").length).toBe(before + 1); // retried P
    const p2 = d.parentLink("P");
    p2.open();
    p2.send(obj(3));
    expect(origin.closed).toBe(true);
    p2.send(obj(4));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4]);
    expect(d.core.stats).toMatchObject({ fromParent: 3, fromOrigin: 2, duplicates: 1 });
  });

  it("reads the origin at once when its parent leaves, and a promoted peer keeps it", () => {
    const { d, p } = relayUnderP();
    p.send(obj(0));
    d.server({ type: "PeerLeft", peer_id: "P" });
    expect(p.closed).toBe(true);
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=1");
    d.assign({ role: "Root", parent_id: null, depth: 0 });
    origin.opened();
    origin.send(obj(1));
    expect(d.core.assignment?.role).toBe("Root");
    expect(d.origins().length).toBe(1);
    expect(origin.closed).toBe(false);
    expect(d.ids()).toEqual([0, 1]);
  });

  it("keeps a repair reader open while the new parent comes up, then hands over without a gap", () => {
    const { d, p } = relayUnderP();
    p.send(obj(0));
    d.server({ type: "PeerLeft", peer_id: "P" });
    const origin = d.originEnd();
    origin.opened();
    origin.send(obj(1));
    d.assign({ role: "Relay", parent_id: "Q", depth: 1 });
    expect(origin.closed).toBe(false); // still repairing while Q connects
    d.advance(5000);
    expect(origin.closed).toBe(false);
    origin.send(obj(2));
    const q = d.parentLink("Q");
    q.open();
    q.send(obj(4)); // Q starts past the next id (3): the origin stays
    expect(origin.closed).toBe(false);
    origin.send(obj(3));
    expect(origin.closed).toBe(true); // Q covers from 4 = next
    q.send(obj(5));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(d.origins().length).toBe(1);
    expect(d.core.stats.gapsRepaired).toBe(1);
  });

  it("does not read the origin while an open parent has nothing to deliver yet (idle stream)", () => {
    const { d, p } = relayUnderP();
    d.advance(10_000);
    expect(d.origins().length).toBe(0);
    p.send(obj(0));
    expect(d.ids()).toEqual([0]);
  });

  it("a waiting peer (parent_id null, not a root) reads the origin", () => {
    const d = new Driver().join({ role: "Relay", parent_id: null, depth: 0, next_object_id: 4 });
    expect(d.originEnd().url).toBe("ws://h:1/ws/live/t?from=4");
  });
});

describe("with an external root source", () => {
  it("push delivers in order and forwards", () => {
    const d = new Driver({ rootSource: "external" }).join({ ...ROOT, next_object_id: 0 });
    expect(d.origins().length).toBe(0);
    const k = d.openChild("k");
    d.in({ type: "push", objectId: 1n, payload: new Uint8Array(3) });
    d.in({ type: "push", objectId: 0n, payload: new Uint8Array(2) });
    expect(d.ids()).toEqual([0, 1]);
    expect(k.sends.length).toBe(2);
    expect(d.core.stats.pushed).toBe(2);
  });
});

describe("with a child that reads no chunks (an LVQR client)", () => {
  it("sends it each object whole up to the channel's largest message, and nothing larger", () => {
    const { d, origin } = rootPeer(0);
    const lvqr = d.openChild("lvqr", "");
    const ours = d.openChild("ours");
    origin.opened();
    origin.send(obj(0, 100));
    origin.send(obj(1, 200_000));
    origin.send(obj(2, 300_000)); // over 256 KiB whole
    origin.send(obj(3, 10));
    expect(lvqr.messages).toEqual([obj(0, 100), obj(1, 200_000), obj(3, 10)]);
    expect(ours.messages.length).toBe(1 + 4 + 5 + 1); // chunked above 64 KiB
    expect(d.core.stats).toMatchObject({ tooLargeForChild: 1, forwarded: 7, delivered: 4 });
  });

  it("keeps to a smaller largest message that its connection negotiated", () => {
    const { d, origin } = rootPeer(0);
    const lvqr = d.openChild("lvqr", "", 65_536);
    origin.opened();
    origin.send(obj(0, 65_528)); // 65,536 bytes framed: fits
    origin.send(obj(1, 65_529));
    expect(lvqr.messages.map((m) => m.byteLength)).toEqual([65_536]);
    expect(d.core.stats.tooLargeForChild).toBe(1);
  });

  it("states the features it has at Register: no origin when the integrator feeds a root", () => {
    const d = new Driver({ rootSource: "external" }).join({ ...ROOT, next_object_id: 0 });
    expect(d.sent()[0]).toMatchObject({ type: "Register", features: ["updates"] });
  });
});

describe("hot path", () => {
  it("sends the same message buffers to every child: the received one when it fits, else chunks built once", () => {
    const { d, origin } = rootPeer(0);
    const a = d.openChild("a");
    const b = d.openChild("b");
    origin.opened();
    const small = obj(0, 100);
    origin.send(small);
    origin.send(obj(1, 100_000));
    expect(a.messages.length).toBe(3);
    a.messages.forEach((m, i) => expect(m).toBe(b.messages[i]));
    expect(a.messages[0]).toBe(small);
    expect(d.all("send").length).toBe(2); // one output per object for both children
  });

  it("bounds the ICE candidates held before the remote description is set", () => {
    const { d } = rootPeer(0);
    d.server({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    const link = d.last("openPeerConnection").link;
    for (let i = 0; i < 1000; i++) {
      d.server({ type: "IceCandidate", from: "kid", to: "me", candidate: `candidate:${i} 1 udp 1 127.0.0.1 ${i} typ host` });
    }
    expect(d.all("addRemoteCandidate").length).toBe(0);
    d.in({ type: "remoteApplied", link });
    expect(d.all("addRemoteCandidate").length).toBe(64);
  });

  it("close leaves no deadline behind, also with a reconnect and a parent retry pending", () => {
    const { d, p } = relayUnderP();
    p.fail(); // parent retry scheduled
    d.in({ type: "signalClosed", socket: d.sig(), code: 1006 }); // signal reconnect scheduled
    expect(d.core.pollTimeout()).not.toBeNull();
    d.in({ type: "close" });
    expect(d.core.pollTimeout()).toBeNull();
    expect(d.liveOrigins()).toEqual([]);
    expect(d.core.state).toBe("closed");
  });
});

describe("children", () => {
  it("refuses an Offer from its own parent, and as a leaf", () => {
    const { d } = relayUnderP();
    const pcs = d.all("openPeerConnection").length;
    d.server({ type: "Offer", from: "P", to: "me", sdp: "v=0 offer" });
    expect(d.all("openPeerConnection").length).toBe(pcs);
    d.assign({ role: "Leaf", parent_id: "P", depth: 1 });
    d.server({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    expect(d.all("openPeerConnection").length).toBe(pcs);
    expect(d.sentOf("Answer")).toEqual([]);
  });

  it("closes the link to a child that the planner makes its parent", () => {
    const { d } = rootPeer(0);
    const kid = d.openChild("kid");
    d.assign({ role: "Relay", parent_id: "kid", depth: 1 });
    expect(d.events).toContain("close kid became our parent");
    expect(kid.closed).toBe(true);
    expect(d.core.openChildren()).toEqual([]);
  });

  it("a PeerLeft naming a child that is still alive closes that link (no longer our neighbour)", () => {
    const { d, origin } = rootPeer(0);
    const kid = d.openChild("kid");
    d.server({ type: "PeerLeft", peer_id: "kid" });
    expect(kid.closed).toBe(true);
    expect(d.events).toEqual(["open kid", "close kid peer left"]);
    origin.opened();
    origin.send(obj(0));
    expect(kid.sends.length).toBe(0);
  });
});

describe("parent link", () => {
  it("gives up a parent whose DataChannel does not open in time and offers again", () => {
    const d = new Driver({ parentConnectTimeoutMs: 5_000 }).join({ ...UNDER_P, next_object_id: 0 });
    const first = d.last("openPeerConnection").link;
    d.in({ type: "linkDescribed", link: first, sdp: "v=0 offer" });
    expect(d.sentOf("Offer").length).toBe(1);
    d.advance(5_300);
    expect(d.closed(first)).toBe(true);
    d.advance(1_000);
    const second = d.last("openPeerConnection");
    expect(second).toMatchObject({ kind: "parent", peerId: "P" });
    d.in({ type: "linkDescribed", link: second.link, sdp: "v=0 offer" });
    expect(d.sentOf("Offer").length).toBe(2);
  });

  it("takes ResumeGap ids exactly, past 2^53", () => {
    const { d, origin } = rootPeer(0);
    const d2 = new Driver().join({ ...ROOT, next_object_id: "9007199254740993" });
    const o2 = d2.originEnd();
    o2.opened();
    o2.text('{"type":"ResumeGap","requested":9007199254740993,"first":9007199254740995}');
    o2.send(encodeObject(9007199254740995n, new Uint8Array(1)));
    expect(d2.frames).toEqual([9007199254740995n]);
    expect(d2.events).toContain("lost 9007199254740993 2");
    expect(origin.closed).toBe(false);
    expect(d.frames).toEqual([]);
  });
});

describe("signal errors", () => {
  it.each([
    ["invalid_peer_id", "fatal"],
    ["invalid_track", "fatal"],
    ["unauthorized", "fatal"],
    ["duplicate_peer_id", "retry"],
    ["mesh_full", "retry"],
    ["rate_limited", "ignored"],
    ["something_new", "ignored"],
  ])("before registration, %s is %s", (code, kind) => {
    const d = new Driver();
    d.in({ type: "connect" });
    d.in({ type: "signalOpened", socket: d.sig() });
    d.server({ type: "Error", code, reason: "r" });
    expect(d.last("onError")).toEqual({ type: "onError", code, reason: "r" });
    const rejected = d.all("connectRejected").map((o) => o.error);
    if (kind === "fatal") {
      expect(rejected[0]).toBe(`${code}: r`);
      expect(d.core.state).toBe("closed");
      expect(d.core.pollTimeout()).toBeNull();
    } else if (kind === "retry") {
      expect(rejected).toEqual([]);
      expect(d.last("closeSignal")).toMatchObject({ socket: 1, code: 1000, reason: "retry" });
      d.advance(1000);
      expect(d.signals()).toEqual([1, 2]);
    } else {
      expect(rejected).toEqual([]);
      expect(d.all("closeSignal")).toEqual([]);
    }
  });

  it("invalid_track before registration rejects connect() and closes for good", () => {
    const d = new Driver();
    d.in({ type: "connect" });
    d.in({ type: "signalOpened", socket: d.sig() });
    d.server({ type: "Error", code: "invalid_track", reason: "no" });
    expect(d.all("connectRejected")[0]!.error).toContain("invalid_track");
    d.advance(60_000);
    expect(d.signals().length).toBe(1);
    expect(d.core.pollTimeout()).toBeNull();
  });

  it("mesh_full and duplicate_peer_id: Register again on a fresh socket, with growing delays", () => {
    const d = new Driver({ reconnectInitialMs: 1000 });
    d.in({ type: "connect" });
    for (const [i, code] of ["mesh_full", "duplicate_peer_id"].entries()) {
      d.in({ type: "signalOpened", socket: d.sig() });
      d.server({ type: "Error", code, reason: "" });
      expect(d.last("closeSignal").socket).toBe(d.signals()[i]);
      d.advance(500 * 2 ** i);
      expect(d.signals().length).toBe(i + 1);
      d.advance(500 * 2 ** i + 10);
      expect(d.signals().length).toBe(i + 2);
    }
    d.in({ type: "signalOpened", socket: d.sig() });
    d.assign(ROOT);
    expect(d.last("connectResolved").assignment.role).toBe("Root");
  });

  it("rate_limited and its close 1008: a new session after the reconnect backoff", () => {
    const { d } = rootPeer(0);
    d.server({ type: "Error", code: "rate_limited", reason: "slow down" });
    d.in({ type: "signalClosed", socket: d.sig(), code: 1008 });
    expect(d.core.connected).toBe(false);
    d.advance(510);
    expect(d.signals().length).toBe(2);
    d.in({ type: "signalOpened", socket: d.sig() });
    expect(d.sent().at(-1)).toMatchObject({ type: "Register", peer_id: "me" });
  });
});

describe("integrator notifications are outputs: the core's work never waits on them", () => {
  it("onAssign, then the origin reader; onLost and onFrame in id order", () => {
    const { d, origin } = rootPeer(10);
    const kinds = d.outputs.map((o) => o.type).filter((t) => t === "onAssign" || t === "openOrigin");
    expect(kinds).toEqual(["onAssign", "openOrigin"]);
    origin.opened();
    origin.send(obj(12));
    origin.send(obj(13));
    const out = origin.text({ type: "ResumeGap", requested: 10, first: 12 });
    origin.send(obj(14));
    expect(out.filter((o) => o.type === "onLost" || o.type === "onFrame").map((o) => o.type)).toEqual(["onLost", "onFrame", "onFrame"]);
    expect(d.events).toEqual(["lost 10 2"]);
    expect(d.ids()).toEqual([12, 13, 14]);
    expect(d.core.stats).toMatchObject({ delivered: 3, lost: 2 });
  });

  it("a slow child dropped mid-release: its close comes first, the rest is delivered and forwarded", () => {
    const { d, origin } = rootPeer(0, { slowChildBytes: 1000, maxChildBufferedBytes: 2000 });
    const slow = d.openChild("slow");
    const fast = d.openChild("fast");
    slow.stall(1995); // the next object takes it past maxChildBufferedBytes
    origin.opened();
    origin.send(obj(2));
    origin.send(obj(1));
    const out = origin.send(obj(0)); // releases 0, 1, 2 at once; forwarding 0 drops `slow`
    const seen = out.flatMap((o) => (o.type === "onChildClose" ? [`close ${o.childId}`] : o.type === "onFrame" ? [`frame ${o.objectId}`] : []));
    expect(seen).toEqual(["close slow", "frame 0", "frame 1", "frame 2"]);
    expect(fast.sends.length).toBe(3);
    expect(d.core.openChildren().map((c) => c.peerId)).toEqual(["fast"]);
    expect(d.core.stats).toMatchObject({ delivered: 3, forwarded: 3, childrenDropped: 1 });
  });

  it("a fatal error is reported, then connect() rejects; onParentOpen comes with the repair reader still stopped on cover", () => {
    const d = new Driver();
    d.in({ type: "connect" });
    d.in({ type: "signalOpened", socket: d.sig() });
    const out = d.server({ type: "Error", code: "unauthorized", reason: "bad token" });
    expect(out.filter((o) => o.type === "onError" || o.type === "connectRejected").map((o) => o.type)).toEqual([
      "onError",
      "connectRejected",
      "connectRejected",
    ]);
    expect(d.last("connectRejected").error).toBe("closed");
    expect(d.all("connectRejected")[0]!.error).toBe("unauthorized: bad token");

    const r = new Driver({ parentGraceMs: 100 }).join({ ...UNDER_P, next_object_id: 0 });
    const link = r.parentLink("P");
    r.advance(400); // grace over: repair from the origin
    const origin = r.openOrigin();
    origin.send(obj(0));
    expect(link.open().map((o) => o.type)).toContain("onParentOpen");
    link.send(obj(1));
    expect(origin.closed).toBe(true);
    expect(r.core.stats).toMatchObject({ delivered: 2, fromOrigin: 1, fromParent: 1 });
  });
});

describe("stalled sources", () => {
  it("reads the origin when a hole stays open past the grace period although a silent old parent covers", () => {
    const { d, p } = relayUnderP(0, { parentGraceMs: 1000 });
    p.send(obj(0));
    p.send(obj(1));
    d.assign({ role: "Relay", parent_id: "Q", depth: 2 });
    const q = d.parentLink("Q");
    q.open();
    q.send(obj(4)); // Q starts ahead; P is still open but sends nothing more
    q.send(obj(5));
    d.advance(900);
    expect(d.origins().length).toBe(0); // the old parent may still bridge 2, 3
    d.advance(400);
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=2");
    origin.opened();
    origin.send(obj(2));
    origin.send(obj(3));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(origin.closed).toBe(true); // Q covers from 6 = next
    expect(p.closed).toBe(true);
    q.send(obj(6));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(d.core.stats).toMatchObject({ lost: 0, fromOrigin: 2, fromParent: 5 });
  });

  it("does not read the origin while a slow old parent keeps moving the hole forward", () => {
    const { d, p } = relayUnderP(0, { parentGraceMs: 1000 });
    p.send(obj(0));
    d.assign({ role: "Relay", parent_id: "Q", depth: 2 });
    const q = d.parentLink("Q");
    q.open();
    q.send(obj(6));
    for (const i of [1, 2, 3, 4, 5]) {
      d.advance(700);
      p.send(obj(i));
    }
    expect(d.origins().length).toBe(0);
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

describe("when the browser refuses the ICE servers", () => {
  const STUN = [{ urls: "stun:127.0.0.1:3478" }];

  it("uses AssignParent's ice_servers over the config's, for the parent link and for children", () => {
    const TURN = [{ urls: ["turn:127.0.0.1:3478"], username: "u", credential: "c" }];
    const d = new Driver({ iceServers: STUN }).join({ ...UNDER_P, ice_servers: TURN, next_object_id: 0 });
    expect(d.last("openPeerConnection").iceServerLists).toEqual([TURN, STUN, []]);
    d.server({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    expect(d.last("openPeerConnection")).toMatchObject({ kind: "child", iceServerLists: [TURN, STUN, []] });
  });

  it("leaves out a list once refused, reports rtc_config once, and connect() resolves", () => {
    const bad = [{ urls: "not-a-url", username: "u", credential: "turn-secret" }];
    const d = new Driver({ iceServers: STUN }).join({ ...UNDER_P, ice_servers: bad, next_object_id: 0 });
    expect(d.last("connectResolved").assignment.role).toBe("Relay");
    const link = d.last("openPeerConnection").link;
    expect(d.last("openPeerConnection").iceServerLists).toEqual([bad, STUN, []]);
    d.in({ type: "iceServersRefused", link, iceServers: bad, error: "SyntaxError: bad ICE server URL" });
    d.in({ type: "linkDescribed", link, sdp: "v=0 offer" });
    expect(d.sentOf("Offer").length).toBe(1);
    d.server({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    expect(d.last("openPeerConnection").iceServerLists).toEqual([STUN, []]);
    const errors = d.all("onError");
    expect(errors.length).toBe(1);
    expect(errors[0]!.code).toBe("rtc_config");
    expect(errors[0]!.reason).toMatch(/^RTCPeerConnection refused iceServers \["not-a-url"\]: SyntaxError/);
    expect(errors[0]!.reason).not.toContain("turn-secret");
  });

  it("with no RTCPeerConnection at all: the origin is read, an Offer is refused", () => {
    const d = new Driver().join({ ...UNDER_P, next_object_id: 3 });
    expect(d.last("connectResolved").assignment.role).toBe("Relay");
    const link = d.last("openPeerConnection").link;
    d.in({ type: "iceServersRefused", link, iceServers: [], error: "NotSupportedError" });
    d.in({ type: "noPeerConnection", link });
    expect(d.all("onError").map((o) => o.code)).toEqual(["rtc_config"]);
    const origin = d.originEnd();
    expect(origin.url).toBe("ws://h:1/ws/live/t?from=3");
    origin.opened();
    origin.send(obj(3));
    expect(d.ids()).toEqual([3]);
    d.server({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    const child = d.last("openPeerConnection");
    expect(child.iceServerLists).toEqual([]);
    d.in({ type: "noPeerConnection", link: child.link });
    expect(d.closed(child.link)).toBe(true);
    expect(d.sentOf("Answer")).toEqual([]);
    expect(d.events).toEqual([]);
  });
});

describe("child links", () => {
  it("closes a child whose DataChannel never opens within childConnectTimeoutMs", () => {
    const { d } = rootPeer(0, { childConnectTimeoutMs: 4000 });
    const kid = d.childJoins("kid");
    d.advance(3500);
    expect(kid.closed).toBe(false);
    d.advance(800);
    expect(kid.closed).toBe(true);
    expect(d.events).toEqual(["close kid DataChannel not open after 4000 ms"]);
    // A later Offer from the same child is a fresh attempt.
    d.openChild("kid");
    expect(d.core.openChildren().map((c) => c.peerId)).toEqual(["kid"]);
  });

  it("a child channel found closed (no close event) is closed and reported; nothing more is sent to it", () => {
    const { d, origin } = rootPeer(0);
    const kid = d.openChild("kid");
    kid.fail("DataChannel closed"); // what the shell reports on finding the channel closed
    expect(d.core.openChildren()).toEqual([]);
    origin.opened();
    origin.send(obj(0));
    expect(d.core.stats.forwarded).toBe(0);
    expect(d.events).toEqual(["open kid", "close kid DataChannel closed"]);
  });

  it("polls open children every 250 ms while nothing else happens", () => {
    const { d } = rootPeer(0);
    expect(d.core.pollTimeout()).toBe(1000); // the heartbeat
    d.openChild("kid");
    expect(d.core.pollTimeout()).toBe(250);
  });
});

describe("when sockets never open", () => {
  it("three signal sockets refused before registration (HTTP 401 shows as 1006): connect() rejects, onError, no more retries", () => {
    const d = new Driver({ reconnectInitialMs: 100 });
    d.in({ type: "connect" });
    for (let i = 0; i < 3; i++) {
      d.advance(i === 0 ? 0 : 1000);
      expect(d.signals().length).toBe(i + 1);
      d.in({ type: "signalClosed", socket: d.sig(), code: 1006 });
    }
    expect(d.all("connectRejected")[0]!.error).toMatch(/signal_unreachable: .*3 signal connections in a row failed to open.*HTTP 401/);
    expect(d.all("onError").map((o) => o.code)).toEqual(["signal_unreachable"]);
    d.advance(60_000);
    expect(d.signals().length).toBe(3);
    expect(d.core.pollTimeout()).toBeNull();
  });

  it("a socket that could not even be created counts as one that never opened", () => {
    const d = new Driver({ reconnectInitialMs: 100, connectAttempts: 1 });
    d.in({ type: "connect" });
    d.in({ type: "signalClosed", socket: d.sig(), code: 0, error: "new WebSocket failed: SyntaxError" });
    expect(d.last("onError").reason).toContain("(last: new WebSocket failed: SyntaxError)");
    expect(d.core.state).toBe("closed");
  });

  it("a socket that opens resets the count; after registration failures are reported and retried for ever", () => {
    const d = new Driver({ reconnectInitialMs: 100, reconnectMaxMs: 100 });
    d.in({ type: "connect" });
    d.in({ type: "signalClosed", socket: d.sig(), code: 1006 });
    d.advance(200);
    d.in({ type: "signalClosed", socket: d.sig(), code: 1006 });
    d.advance(200);
    d.in({ type: "signalOpened", socket: d.sig() }); // opened: the run of failures ends
    d.assign(ROOT);
    expect(d.all("connectResolved").length).toBe(1);
    d.in({ type: "signalClosed", socket: d.sig(), code: 1006 });
    for (let i = 3; i < 9; i++) {
      d.advance(200);
      d.in({ type: "signalClosed", socket: d.sig(), code: 1006 });
      if (i === 4) expect(d.all("onError")).toEqual([]); // two in a row since the one that opened
    }
    expect(d.all("onError").map((o) => o.code)).toEqual(["signal_unreachable"]); // once per run of failures, at the 3rd
    d.advance(200);
    expect(d.signals().length).toBe(10);
    expect(d.core.connected).toBe(false);
    expect(d.all("connectRejected")).toEqual([]);
  });

  it("an origin socket closed before opening is reported as origin_unreachable and retried", () => {
    const { d, origin } = rootPeer(4);
    origin.closeByServer(1006);
    expect(d.all("onError").map((o) => [o.code, o.reason])).toEqual([
      ["origin_unreachable", "origin egress ws://h:1/ws/live/t: closed before opening (code 1006)"],
    ]);
    d.advance(1000);
    expect(d.origins().length).toBe(2);
    const second = d.openOrigin();
    second.closeByServer(1001); // opened first: a normal resume, not reported
    expect(d.all("onError").length).toBe(1);
  });
});

describe("slow-child cooldown", () => {
  it("refuses Offers from a child dropped as slow until slowChildCooldownMs has passed", () => {
    const { d, origin } = rootPeer(0, { slowChildBytes: 1000, maxChildBufferedBytes: 2000, slowChildCooldownMs: 10_000 });
    const kid = d.openChild("kid");
    kid.stall(5000);
    origin.opened();
    origin.send(obj(0));
    expect(d.events.at(-1)).toMatch(/^close kid slow consumer/);
    const pcs = d.all("openPeerConnection").length;
    const answers = () => d.sentOf("Answer").filter((m) => m.to === "kid").length;
    expect(answers()).toBe(1);
    d.server({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    expect(d.all("openPeerConnection").length).toBe(pcs);
    d.advance(9_000);
    d.server({ type: "Offer", from: "kid", to: "me", sdp: "v=0 offer" });
    expect(d.all("openPeerConnection").length).toBe(pcs);
    d.advance(1_100);
    d.childJoins("kid");
    expect(answers()).toBe(2);
    expect(d.all("openPeerConnection").length).toBe(pcs + 1);
    // Other children are not affected by kid's cooldown.
    d.openChild("other");
    expect(d.core.openChildren().map((c) => c.peerId)).toEqual(["other"]);
  });
});

describe("Answers of a superseded attempt", () => {
  /** A relay whose first Offer to P got no Answer in time; its second attempt's Offer is not out yet. */
  function retrying() {
    const d = new Driver({ parentConnectTimeoutMs: 2_000 }).join({ ...UNDER_P, next_object_id: 0 });
    const first = d.last("openPeerConnection").link;
    d.in({ type: "linkDescribed", link: first, sdp: "v=0 offer" });
    d.advance(2_300); // attempt 1 given up
    expect(d.closed(first)).toBe(true);
    d.advance(600); // the retry timer fires; its Offer is not out yet
    const second = d.last("openPeerConnection").link;
    expect(second).not.toBe(first);
    return { d, second };
  }

  it("drops an Answer and candidates that arrive before the current Offer went out; the real Answer lands", () => {
    const { d, second } = retrying();
    expect(d.sentOf("Offer").length).toBe(1);
    d.server({ type: "Answer", from: "P", to: "me", sdp: "v=0 stale" });
    d.server({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:1 1 udp 1 127.0.0.1 1 typ host" });
    d.in({ type: "linkDescribed", link: second, sdp: "v=0 offer" });
    expect(d.sentOf("Offer").length).toBe(2);
    expect(d.closed(second)).toBe(false);
    expect(d.all("applyRemoteDescription")).toEqual([]);
    d.server({ type: "Answer", from: "P", to: "me", sdp: "v=0 real" });
    expect(d.last("applyRemoteDescription")).toMatchObject({ link: second, description: { type: "answer", sdp: "v=0 real" } });
    d.in({ type: "remoteApplied", link: second });
    d.server({ type: "IceCandidate", from: "P", to: "me", candidate: "candidate:2 1 udp 1 127.0.0.1 2 typ host" });
    expect(d.all("addRemoteCandidate").map((o) => o.candidate.candidate)).toEqual(["candidate:2 1 udp 1 127.0.0.1 2 typ host"]);
    d.in({ type: "channelOpen", link: second });
    d.in({ type: "channelData", link: second, data: obj(0) });
    expect(d.ids()).toEqual([0]);
  });

  it("a second Answer for one attempt (the first was stale, crossing our Offer) starts the attempt over", () => {
    const { d, second } = retrying();
    d.in({ type: "linkDescribed", link: second, sdp: "v=0 offer" });
    expect(d.sentOf("Offer").length).toBe(2);
    d.server({ type: "Answer", from: "P", to: "me", sdp: "v=0 stale" }); // crossed Offer 2 in flight
    expect(d.last("applyRemoteDescription").description.sdp).toBe("v=0 stale");
    d.in({ type: "remoteApplied", link: second });
    d.server({ type: "Answer", from: "P", to: "me", sdp: "v=0 real" });
    expect(d.closed(second)).toBe(true);
    d.advance(1_100); // the second retry's backoff: at most 1 s
    const third = d.parentLink("P", "v=0 third");
    expect(d.sentOf("Offer").length).toBe(3);
    expect(third.link).not.toBe(second);
    third.open();
    third.send(obj(0));
    expect(d.ids()).toEqual([0]);
    expect(d.core.parentConnected).toBe(true);
  });
});

describe("former parent as a child", () => {
  it("closes the old-parent link when its former parent offers as a child", () => {
    const { d, p } = relayUnderP();
    p.send(obj(0));
    d.assign({ role: "Relay", parent_id: "Q", depth: 1 });
    d.parentLink("Q");
    expect(p.closed).toBe(false); // kept as the old path while Q comes up
    const kid = d.childJoins("P");
    expect(p.closed).toBe(true);
    d.in({ type: "channelOpen", link: kid.link, protocol: "meshrelay/1" });
    expect(d.core.openChildren().map((c) => c.peerId)).toEqual(["P"]);
    expect(d.events).toEqual(["open P"]);
    p.send(obj(1)); // the closed old link delivers nothing any more
    expect(d.core.stats.delivered).toBe(1);
  });
});

describe("object size bound", () => {
  it("discards a chunked object above maxObjectBytes from the parent and repairs it from the origin", () => {
    const { d, p } = relayUnderP(0, { maxObjectBytes: 100_000 });
    p.send(obj(0));
    for (const m of frameForDataChannel(1n, new Uint8Array(150_000))) p.send(m);
    p.send(obj(2));
    expect(d.ids()).toEqual([0]);
    expect(d.core.stats.chunksDiscarded).toBe(3); // refused at its first chunk, the other two stray
    expect(d.originEnd().url).toBe("ws://h:1/ws/live/t?from=1");
  });
});

describe("across a new epoch (the ids started again)", () => {
  /** Drops the signal socket and answers the next Register with `assign`. */
  function reRegister(d: Driver, assign: Record<string, unknown>) {
    d.in({ type: "signalClosed", socket: d.sig(), code: 1006 });
    d.advance(20_000);
    d.in({ type: "signalOpened", socket: d.sig() });
    expect(d.sent().at(-1)).toMatchObject({ type: "Register", peer_id: "me" });
    d.assign(assign);
  }
  const restarts = (d: Driver) => d.all("onRestart").map((o) => `${o.nextObjectId} ${o.epoch}`);

  /** A root on epoch A that delivered objects 0..4 from its origin reader. */
  function rootOnEpochA() {
    const d = new Driver().join({ ...ROOT, next_object_id: 0, epoch: "A" });
    const first = d.openOrigin();
    for (let i = 0; i < 5; i++) first.send(obj(i));
    return { d, first };
  }

  it("a root restarts its sequence at the new next_object_id and reads the new origin from there", () => {
    const { d, first } = rootOnEpochA();
    first.closeByServer(1006);
    // The server restarted: its ids begin again at 0 under epoch B.
    reRegister(d, { ...ROOT, next_object_id: 0, epoch: "B" });
    expect(restarts(d)).toEqual(["0 B"]);
    expect(d.core.stats.restarts).toBe(1);
    expect(d.core.nextObjectId).toBe(0n);
    // Readers opened before the restart (from=5) are closed; one reads from 0.
    const live = d.liveOrigins();
    expect(live.map((o) => new URL(o.url).searchParams.get("from"))).toEqual(["0"]);
    const o = d.openOrigin();
    for (let i = 0; i < 3; i++) o.send(obj(i));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 0, 1, 2]);
  });

  it("a relay drops its old parent and children, and offers to its new parent", () => {
    const { d, p } = relayUnderP(0);
    // relayUnderP's AssignParent carried no epoch; the next one names A.
    d.assign({ ...UNDER_P, next_object_id: 0, epoch: "A" });
    const kid = d.openChild("kid");
    p.send(obj(0));
    p.send(obj(1));
    expect(d.ids()).toEqual([0, 1]);
    reRegister(d, { role: "Relay", parent_id: "Q", depth: 1, next_object_id: 7, epoch: "B" });
    expect(restarts(d)).toEqual(["7 B"]);
    expect(p.closed).toBe(true);
    expect(kid.closed).toBe(true);
    expect(d.events).toContain("close kid new epoch");
    expect(d.core.openChildren()).toEqual([]);
    const q = d.parentLink("Q");
    q.open();
    // Ids below the new next are not delivered; the new sequence runs from 7.
    q.send(obj(6));
    q.send(obj(7));
    q.send(obj(8));
    expect(d.ids()).toEqual([0, 1, 7, 8]);
  });

  it("opens no origin reader while unregistered: only the next AssignParent's epoch says which sequence it serves", () => {
    const { d, first } = rootOnEpochA();
    // Server restart: both sockets go; the origin could be reached again
    // before the signal is.
    const closed = d.sig();
    d.in({ type: "signalClosed", socket: closed, code: 1001 });
    first.closeByServer(1001);
    d.advance(20_000);
    expect(d.origins().length).toBe(1);
    expect(d.sig()).not.toBe(closed);
    d.in({ type: "signalOpened", socket: d.sig() });
    d.assign({ ...ROOT, next_object_id: 0, epoch: "B" });
    expect(restarts(d)).toEqual(["0 B"]);
    expect(d.liveOrigins().map((o) => new URL(o.url).searchParams.get("from"))).toEqual(["0"]);
    d.openOrigin().send(obj(0));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 0]);
  });

  it("the same epoch, or none (an LVQR server), keeps the sequence", () => {
    const { d, first } = rootOnEpochA();
    reRegister(d, { ...ROOT, next_object_id: 5, epoch: "A" });
    reRegister(d, { ...ROOT, next_object_id: 5 });
    expect(restarts(d)).toEqual([]);
    expect(d.core.stats.restarts).toBe(0);
    expect(d.core.nextObjectId).toBe(5n);
    // The first reader was never dropped: it goes on from 5.
    first.send(obj(4));
    first.send(obj(5));
    expect(d.ids()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
