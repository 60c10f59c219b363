// A deterministic multi-peer runner: several MeshPeerCores on one virtual
// clock, their WebRTC links in memory (an Offer's and an Answer's SDP name
// the link at each end, so the two ends pair up when the Answer is applied),
// and their signal and origin sockets real WebSockets to a real
// `meshrelay serve`. Inputs to the cores go through one queue, handled in
// order; virtual time moves only when the test says (`advance`).
import WebSocket from "ws";
import type { CoreInput, CoreOutput, LinkId, SocketId } from "../../src/core-io.js";
import { type CoreConfig, MeshPeerCore } from "../../src/peer-core.js";
import type { Assignment } from "../../src/types.js";

/** A small deterministic PRNG (mulberry32), for the cores' backoff jitter. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One end of an in-memory RTC link. */
interface SimLink {
  kind: "parent" | "child";
  /** The neighbour's peer id. */
  peerId: string;
  remote: { peer: SimPeer; link: LinkId } | null;
  open: boolean;
  closed: boolean;
  /** A stalled child end: what is sent is held, and counts as its bufferedAmount. */
  stalled: boolean;
  heldBytes: number;
}

/** One peer of the mesh: a core and what it delivered. */
export class SimPeer {
  readonly core: MeshPeerCore;
  /** Delivered objects in order. */
  readonly frames: { id: bigint; payload: Uint8Array }[] = [];
  readonly assigns: Assignment[] = [];
  readonly restarts: { next: bigint | null; epoch: string }[] = [];
  readonly childCloses: [string, string][] = [];
  readonly lost: [bigint, number][] = [];
  readonly logs: string[] = [];
  readonly sockets = new Map<SocketId, WebSocket>();
  readonly origins = new Map<LinkId, WebSocket>();
  readonly links = new Map<LinkId, SimLink>();

  constructor(
    private readonly mesh: Mesh,
    readonly id: string,
    config: CoreConfig,
  ) {
    this.core = new MeshPeerCore(config);
  }

  /** Delivered ids as numbers. */
  ids(): number[] {
    return this.frames.map((f) => Number(f.id));
  }

  /** Leaves the mesh (Leave, every link closed). */
  close(): void {
    this.mesh.input(this, { type: "close" });
  }

  /** Makes this peer's link to its child `childId` stop draining: sends to it are held. */
  stallChild(childId: string): void {
    for (const l of this.links.values()) if (l.kind === "child" && l.peerId === childId && !l.closed) l.stalled = true;
  }

  /** The open end of this peer's link to `peerId`, if any. */
  linkTo(peerId: string): SimLink | undefined {
    for (const l of this.links.values()) if (l.peerId === peerId && l.open && !l.closed) return l;
    return undefined;
  }
}

/** The runner. */
export class Mesh {
  /** Virtual time, ms. */
  now = 0;
  readonly peers: SimPeer[] = [];
  private readonly queue: { peer: SimPeer; input: CoreInput }[] = [];
  private pumping = false;
  private waiters: (() => void)[] = [];
  private seed = 1;

  constructor(
    private readonly signalUrl: string,
    private readonly debug = !!process.env.SIM_DEBUG,
  ) {}

  /** Adds a peer and connects it. */
  add(id: string, track: string, extra: Partial<CoreConfig> = {}): SimPeer {
    const p = new SimPeer(this, id, {
      signalUrl: this.signalUrl,
      track,
      peerId: id,
      capacity: 3,
      random: seeded(this.seed++),
      ...extra,
    });
    this.peers.push(p);
    this.input(p, { type: "connect" });
    return p;
  }

  /** Hands `input` to `peer`'s core (after whatever is queued) and runs the queue. */
  input(peer: SimPeer, input: CoreInput): void {
    this.queue.push({ peer, input });
    this.pump();
  }

  /**
   * Lets `ms` of virtual time pass: every core's deadlines in time order
   * (ties in peer order), with what they cause handled in between.
   */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: number | null = null;
      for (const p of this.peers) {
        const t = p.core.pollTimeout();
        if (t !== null && (next === null || t < next)) next = t;
      }
      if (next === null || next > end) break;
      this.now = Math.max(this.now, next);
      for (const p of this.peers) {
        const t = p.core.pollTimeout();
        if (t === null || t > this.now) continue;
        this.reportBuffers(p);
        p.core.handleTimeout(this.now);
        this.applyAll(p);
      }
      this.pump();
    }
    this.now = end;
    this.wake();
  }

  /** Resolves once `cond()` holds (checked after every input); rejects after `timeoutMs` of real time. */
  until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        fail(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.describe()}`));
      }, timeoutMs);
      const check = () => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        ok();
      };
      this.waiters.push(check);
    });
  }

  /**
   * Kills the link between `p` and its child `childId` without any signal
   * message, as a crash of the connection would: both ends fail.
   */
  cut(p: SimPeer, childId: string): number {
    let n = 0;
    for (const [link, l] of p.links) {
      if (l.kind !== "child" || l.peerId !== childId || l.closed) continue;
      l.closed = true;
      l.open = false;
      this.later(p, { type: "linkFailed", link, reason: "DataChannel closed" });
      const r = l.remote;
      const far = r?.peer.links.get(r.link);
      if (r && far && !far.closed) {
        far.closed = true;
        far.open = false;
        this.later(r.peer, { type: "linkFailed", link: r.link, reason: "DataChannel closed" });
      }
      n++;
    }
    this.pump();
    return n;
  }

  /** Closes every socket the peers still hold. */
  shutdown(): void {
    for (const p of this.peers) {
      if (p.core.state !== "closed") p.close();
      for (const ws of [...p.sockets.values(), ...p.origins.values()]) ws.terminate();
    }
  }

  /** Each peer's role, parent and delivered count, for failure messages. */
  describe(): string {
    return this.peers
      .map((p) => {
        const a = p.core.assignment;
        const s = p.core.stats;
        return `${p.id}: ${p.core.state} ${a?.role ?? "-"} parent=${a?.parentId ?? "-"} delivered=${s.delivered} next=${p.core.nextObjectId} origin=${p.core.readingOrigin} parentConnected=${p.core.parentConnected}`;
      })
      .join("\n");
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) {
        const { peer, input } = item;
        if (input.type === "channelData" || input.type === "originMessage" || input.type === "push") this.reportBuffers(peer);
        peer.core.handle(input, this.now);
        this.applyAll(peer);
      }
    } finally {
      this.pumping = false;
    }
    this.wake();
  }

  /** As the browser shell: each open child end's bufferedAmount before an input that may forward. */
  private reportBuffers(p: SimPeer): void {
    for (const { link } of p.core.openChildren()) {
      const l = p.links.get(link);
      p.core.handle({ type: "bufferedAmount", link, amount: l?.heldBytes ?? 0 }, this.now);
    }
  }

  private applyAll(p: SimPeer): void {
    for (let o = p.core.poll(); o !== null; o = p.core.poll()) this.apply(p, o);
  }

  private later(peer: SimPeer, input: CoreInput): void {
    this.queue.push({ peer, input });
  }

  private apply(p: SimPeer, o: CoreOutput): void {
    switch (o.type) {
      case "openSignal":
        return this.openSignal(p, o.socket, o.url, o.protocols);
      case "sendSignal": {
        const ws = p.sockets.get(o.socket);
        if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(o.message));
        return;
      }
      case "closeSignal": {
        const ws = p.sockets.get(o.socket);
        p.sockets.delete(o.socket);
        ws?.close(o.code, o.reason);
        return;
      }
      case "openOrigin":
        return this.openOrigin(p, o.link, o.url, o.protocols);
      case "openPeerConnection":
        p.links.set(o.link, { kind: o.kind, peerId: o.peerId, remote: null, open: false, closed: false, stalled: false, heldBytes: 0 });
        return;
      case "createOffer":
      case "createAnswer":
        // The SDP names this end, so the other end can find it.
        this.later(p, { type: "linkDescribed", link: o.link, sdp: `sim ${p.id} ${o.link}` });
        return;
      case "applyRemoteDescription":
        return this.applyRemote(p, o.link, o.description.sdp);
      case "addRemoteCandidate":
        return;
      case "send":
        return this.send(p, o.links, o.messages);
      case "closeLink":
        return this.closeLink(p, o.link);
      case "log":
        p.logs.push(o.message);
        if (this.debug) console.log(`[${this.now} ${p.id}] ${o.message}`);
        return;
      case "onFrame":
        p.frames.push({ id: o.objectId, payload: o.payload });
        return;
      case "onAssign":
        p.assigns.push(o.assignment);
        return;
      case "onRestart":
        p.restarts.push({ next: o.nextObjectId, epoch: o.epoch });
        return;
      case "onChildClose":
        p.childCloses.push([o.childId, o.reason]);
        return;
      case "onLost":
        p.lost.push([o.firstLost, o.count]);
        return;
      default:
        return;
    }
  }

  private openSignal(p: SimPeer, socket: SocketId, url: string, protocols: string[] | undefined): void {
    const ws = new WebSocket(url, protocols);
    p.sockets.set(socket, ws);
    ws.on("open", () => this.input(p, { type: "signalOpened", socket }));
    ws.on("message", (data, isBinary) => {
      if (!isBinary) this.input(p, { type: "signalMessage", socket, text: data.toString() });
    });
    ws.on("close", (code) => {
      p.sockets.delete(socket);
      this.input(p, { type: "signalClosed", socket, code });
    });
    ws.on("error", () => {
      /* close follows */
    });
  }

  private openOrigin(p: SimPeer, link: LinkId, url: string, protocols: string[] | undefined): void {
    const ws = new WebSocket(url, protocols);
    p.origins.set(link, ws);
    ws.on("open", () => this.input(p, { type: "originOpened", link }));
    ws.on("message", (data: Buffer, isBinary) => {
      const input: CoreInput = isBinary
        ? { type: "originMessage", link, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() }
        : { type: "originMessage", link, data: data.toString() };
      this.input(p, input);
    });
    ws.on("close", (code) => {
      if (p.origins.delete(link)) this.input(p, { type: "originClosed", link, code });
    });
    ws.on("error", () => {
      /* close follows */
    });
  }

  /**
   * A child end applies the Offer (which names the parent's end): remember
   * it. A parent end applies the Answer (which names the child's end): the
   * two ends pair up and both channels open, unless the child end is gone
   * or answered another Offer (a stale Answer: the connection fails).
   */
  private applyRemote(p: SimPeer, link: LinkId, sdp: string): void {
    const l = p.links.get(link);
    if (!l) return;
    const [, peerId, linkId] = sdp.split(" ");
    const other = this.peers.find((x) => x.id === peerId);
    const otherLink = Number(linkId);
    l.remote = other ? { peer: other, link: otherLink } : null;
    this.later(p, { type: "remoteApplied", link });
    if (l.kind === "child") return;
    const far = other?.links.get(otherLink);
    if (!other || !far || far.closed || far.remote?.peer !== p || far.remote.link !== link) {
      this.later(p, { type: "linkFailed", link, reason: "pc failed" });
      return;
    }
    l.open = far.open = true;
    this.later(p, { type: "channelOpen", link });
    this.later(other, { type: "channelOpen", link: otherLink, protocol: "meshrelay/1", maxMessageSize: 262_144 });
  }

  private send(p: SimPeer, links: LinkId[], messages: Uint8Array[]): void {
    for (const link of links) {
      const l = p.links.get(link);
      if (!l || !l.open || l.closed || !l.remote) continue;
      if (l.stalled) {
        for (const m of messages) l.heldBytes += m.byteLength;
        continue;
      }
      for (const m of messages) this.later(l.remote.peer, { type: "channelData", link: l.remote.link, data: m });
    }
  }

  private closeLink(p: SimPeer, link: LinkId): void {
    const ws = p.origins.get(link);
    if (ws) {
      p.origins.delete(link);
      ws.close();
    }
    const l = p.links.get(link);
    if (!l || l.closed) return;
    l.closed = true;
    l.open = false;
    const r = l.remote;
    const far = r?.peer.links.get(r.link);
    if (r && far && !far.closed && far.remote?.peer === p && far.remote.link === link) {
      far.closed = true;
      far.open = false;
      this.later(r.peer, { type: "linkFailed", link: r.link, reason: "DataChannel closed" });
    }
  }
}

/** Checks that `p` delivered exactly `want` (ids in order) with the payloads of `payload`. */
export function deliveredExactly(p: SimPeer, want: number[], payload: (id: number) => Uint8Array): string | null {
  const got = p.ids();
  if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
    return `${p.id} delivered ${got.length} ids, first difference at ${got.findIndex((id, i) => id !== want[i])}`;
  }
  for (const f of p.frames) {
    const w = payload(Number(f.id));
    if (f.payload.byteLength !== w.byteLength || f.payload.some((b, i) => b !== w[i])) return `${p.id}: object ${f.id} has wrong bytes`;
  }
  return null;
}
