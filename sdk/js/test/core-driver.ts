// Drives one MeshPeerCore by hand: feeds inputs at a virtual time, keeps
// every output, and plays the far side of the signal socket, the origin and
// the links in the steps the tests need. Nothing here stands in for a
// browser API: the core has none.
import { expect } from "vitest";
import type { CoreInput, CoreOutput, LinkId, SocketId } from "../src/core-io.js";
import { encodeObject } from "../src/framing.js";
import { type CoreConfig, MeshPeerCore } from "../src/peer-core.js";
import type { ClientMessage } from "../src/signal.js";

/** An output of one type. */
export type Out<T extends CoreOutput["type"]> = Extract<CoreOutput, { type: T }>;

/** `[id][payload]` with `size` bytes of `id & 0xff`. */
export const obj = (id: number | bigint, size = 10) => encodeObject(BigInt(id), new Uint8Array(size).fill(Number(BigInt(id) & 0xffn)));

export const ROOT = { role: "Root", parent_id: null, depth: 0 };
export const UNDER_P = { role: "Relay", parent_id: "P", depth: 1 };

/** A core, the outputs it gave so far and the integrator's view of its events. */
export class Driver {
  readonly core: MeshPeerCore;
  now = 0;
  readonly outputs: CoreOutput[] = [];
  /** onFrame ids in order. */
  readonly frames: bigint[] = [];
  /** onFrame payload sizes in order. */
  readonly sizes: number[] = [];
  /** onChildOpen / onChildClose / onLost, as `open id`, `close id reason`, `lost first n`. */
  readonly events: string[] = [];
  /** Called on every output as it is drained (an integrator reacting at once). */
  onOutput: ((o: CoreOutput) => void) | null = null;
  /** A child channel's bufferedAmount as the browser would report it (0 when absent). */
  readonly bufferedAmounts = new Map<LinkId, number>();
  /** Links whose Offer or Answer the driver has described. */
  private readonly described = new Set<LinkId>();

  constructor(extra: Partial<CoreConfig> = {}) {
    this.core = new MeshPeerCore({
      signalUrl: "ws://h:1/signal",
      track: "live/t",
      peerId: "me",
      capacity: 2,
      heartbeatIntervalMs: 1000,
      random: () => 0.5,
      ...extra,
    });
  }

  /** Feeds one input now; returns the outputs it caused. */
  in(input: CoreInput): CoreOutput[] {
    if (input.type === "linkDescribed") this.described.add(input.link);
    if (input.type === "channelData" || input.type === "originMessage" || input.type === "push") this.reportBuffers();
    this.core.handle(input, this.now);
    return this.collect();
  }

  /**
   * Each open child's bufferedAmount as `bufferedAmounts` says (0, drained,
   * unless set), reported before every input that may forward and every
   * timeout, as the browser shell does.
   */
  private reportBuffers(): void {
    for (const { link } of this.core.openChildren()) {
      this.core.handle({ type: "bufferedAmount", link, amount: this.bufferedAmounts.get(link) ?? 0 }, this.now);
    }
  }

  /** Lets `ms` of virtual time pass, running every deadline on the way. */
  advance(ms: number): CoreOutput[] {
    const end = this.now + ms;
    const out: CoreOutput[] = [];
    for (let at = this.core.pollTimeout(); at !== null && at <= end; at = this.core.pollTimeout()) {
      this.now = Math.max(this.now, at);
      this.reportBuffers();
      this.core.handleTimeout(this.now);
      out.push(...this.collect());
    }
    this.now = end;
    return out;
  }

  private collect(): CoreOutput[] {
    const got: CoreOutput[] = [];
    for (let o = this.core.poll(); o !== null; o = this.core.poll()) {
      got.push(o);
      this.outputs.push(o);
      if (o.type === "onFrame") {
        this.frames.push(o.objectId);
        this.sizes.push(o.payload.byteLength);
      } else if (o.type === "onChildOpen") this.events.push(`open ${o.childId}`);
      else if (o.type === "onChildClose") this.events.push(`close ${o.childId} ${o.reason}`);
      else if (o.type === "onLost") this.events.push(`lost ${o.firstLost} ${o.count}`);
      this.onOutput?.(o);
    }
    return got;
  }

  /** Every output of one type so far. */
  all<T extends CoreOutput["type"]>(type: T): Out<T>[] {
    return this.outputs.filter((o): o is Out<T> => o.type === type);
  }

  /** The last output of one type. */
  last<T extends CoreOutput["type"]>(type: T): Out<T> {
    const all = this.all(type);
    expect(all.length, `an output ${type}`).toBeGreaterThan(0);
    return all.at(-1)!;
  }

  /** Frame ids as numbers. */
  ids(): number[] {
    return this.frames.map(Number);
  }

  /** Signal messages sent so far (on any socket). */
  sent(): ClientMessage[] {
    return this.all("sendSignal").map((o) => o.message);
  }

  /** Signal messages of one type sent so far. */
  sentOf<T extends ClientMessage["type"]>(type: T): Extract<ClientMessage, { type: T }>[] {
    return this.sent().filter((m): m is Extract<ClientMessage, { type: T }> => m.type === type);
  }

  /** Ids of the signal sockets opened so far. */
  signals(): SocketId[] {
    return this.all("openSignal").map((o) => o.socket);
  }

  /** The current signal socket. */
  sig(): SocketId {
    return this.signals().at(-1)!;
  }

  /** A server message on the current signal socket. */
  server(msg: Record<string, unknown>): CoreOutput[] {
    return this.in({ type: "signalMessage", socket: this.sig(), text: JSON.stringify(msg) });
  }

  /** The server sends AssignParent with `assign`. */
  assign(assign: Record<string, unknown>): CoreOutput[] {
    return this.server({ type: "AssignParent", peer_id: "me", ice_servers: [], ...assign });
  }

  /** Connects, opens the signal socket and answers the Register with `assign`. */
  join(assign: Record<string, unknown>): this {
    this.in({ type: "connect" });
    this.in({ type: "signalOpened", socket: this.sig() });
    this.assign(assign);
    return this;
  }

  /** Origin readers opened so far (url and link). */
  origins(): Out<"openOrigin">[] {
    return this.all("openOrigin");
  }

  /** Whether `link` was closed. */
  closed(link: LinkId): boolean {
    return this.all("closeLink").some((o) => o.link === link);
  }

  /** Links (origin readers) opened and not closed. */
  liveOrigins(): Out<"openOrigin">[] {
    return this.origins().filter((o) => !this.closed(o.link));
  }

  /** The last origin reader, opened by the far side. */
  openOrigin(): OriginEnd {
    const o = this.last("openOrigin");
    this.in({ type: "originOpened", link: o.link });
    return new OriginEnd(this, o.link, o.url);
  }

  /** The origin reader opened last, not yet opened by the far side. */
  originEnd(): OriginEnd {
    const o = this.last("openOrigin");
    return new OriginEnd(this, o.link, o.url);
  }

  /** Our link to `parent`: the Offer went out and the parent answered; returns its far end. */
  parentLink(parent: string, sdp = "v=0 answer"): LinkEnd {
    const pc = this.all("openPeerConnection").filter((o) => o.kind === "parent" && o.peerId === parent).at(-1)!;
    expect(pc, `a link to ${parent}`).toBeDefined();
    const link = pc.link;
    if (!this.described.has(link)) this.in({ type: "linkDescribed", link, sdp: "v=0 offer" });
    this.server({ type: "Answer", from: parent, to: "me", sdp });
    expect(this.last("applyRemoteDescription")).toMatchObject({ link, description: { type: "answer", sdp } });
    this.in({ type: "remoteApplied", link });
    return new LinkEnd(this, link);
  }

  /** `kid` offers; we answer. Returns its link (channel not open yet). */
  childJoins(kid: string): LinkEnd {
    this.server({ type: "Offer", from: kid, to: "me", sdp: "v=0 offer" });
    const pc = this.last("openPeerConnection");
    expect(pc).toMatchObject({ kind: "child", peerId: kid });
    expect(this.last("applyRemoteDescription")).toEqual({
      type: "applyRemoteDescription",
      link: pc.link,
      description: { type: "offer", sdp: "v=0 offer" },
    });
    this.in({ type: "remoteApplied", link: pc.link });
    expect(this.last("createAnswer").link).toBe(pc.link);
    this.in({ type: "linkDescribed", link: pc.link, sdp: "v=0 answer" });
    expect(this.sentOf("Answer").at(-1)).toEqual({ type: "Answer", from: "me", to: kid, sdp: "v=0 answer" });
    return new LinkEnd(this, pc.link);
  }

  /** `kid` joins as a child and its channel opens (naming `protocol`). */
  openChild(kid: string, protocol = "meshrelay/1", maxMessageSize: number | null = 262_144): LinkEnd {
    const c = this.childJoins(kid);
    this.in({ type: "channelOpen", link: c.link, protocol, maxMessageSize });
    return c;
  }

  /** A relay under parent "P" from `next`, its channel to P open. */
  relayUnderP(next = 0): LinkEnd {
    this.join({ ...UNDER_P, next_object_id: next });
    const p = this.parentLink("P");
    p.open();
    return p;
  }
}

/** The far side of an origin reader. */
export class OriginEnd {
  constructor(
    private readonly d: Driver,
    readonly link: LinkId,
    readonly url: string,
  ) {}
  opened(): void {
    this.d.in({ type: "originOpened", link: this.link });
  }
  send(bytes: Uint8Array): CoreOutput[] {
    return this.d.in({ type: "originMessage", link: this.link, data: bytes });
  }
  text(msg: unknown): CoreOutput[] {
    return this.d.in({ type: "originMessage", link: this.link, data: typeof msg === "string" ? msg : JSON.stringify(msg) });
  }
  closeByServer(code = 1006): CoreOutput[] {
    return this.d.in({ type: "originClosed", link: this.link, code });
  }
  get closed(): boolean {
    return this.d.closed(this.link);
  }
  /** The `from` query parameter of its URL. */
  get from(): string | null {
    return new URL(this.url).searchParams.get("from");
  }
}

/** The far side of a parent or child link. */
export class LinkEnd {
  constructor(
    private readonly d: Driver,
    readonly link: LinkId,
  ) {}
  open(): CoreOutput[] {
    return this.d.in({ type: "channelOpen", link: this.link });
  }
  send(bytes: Uint8Array): CoreOutput[] {
    return this.d.in({ type: "channelData", link: this.link, data: bytes });
  }
  fail(reason = "DataChannel closed"): CoreOutput[] {
    return this.d.in({ type: "linkFailed", link: this.link, reason });
  }
  /** From now on the channel's bufferedAmount stays at `amount` (it stopped draining). */
  stall(amount: number): void {
    this.d.bufferedAmounts.set(this.link, amount);
  }
  get closed(): boolean {
    return this.d.closed(this.link);
  }
  /** The message lists sent on this link, one per forwarded object. */
  get sends(): Uint8Array[][] {
    return this.d.all("send").filter((o) => o.links.includes(this.link)).map((o) => o.messages);
  }
  /** Every message sent on this link, flattened. */
  get messages(): Uint8Array[] {
    return this.sends.flat();
  }
}
