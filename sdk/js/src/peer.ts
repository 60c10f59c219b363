/**
 * MeshPeer: a browser viewer in the meshrelay tree, the browser shell of
 * `MeshPeerCore`. Browser events (WebSocket, RTCPeerConnection,
 * RTCDataChannel) go into the core as inputs, the core's outputs are applied
 * to them, and one timer is kept armed at the core's next deadline. What the
 * peer does (registering, following AssignParent, reading the origin,
 * delivering every object once in id order, relaying to children) is the
 * core's; see its module.
 */
import type { CoreInput, CoreOutput, LinkId, SocketId } from "./core-io.js";
import { MeshPeerCore } from "./peer-core.js";
import type { PeerOptions } from "./options.js";
import { isValidPeerId, isValidTrack, type RTCIceServerLike, type Role } from "./signal.js";
import type { Assignment, MeshPeerStats } from "./types.js";

export type { Assignment, MeshPeerStats, ObjectSource } from "./types.js";

/**
 * Options of a MeshPeer: its protocol settings and its callbacks. A
 * callback that throws is logged and otherwise ignored: it never costs an
 * object or a state change.
 */
export interface MeshPeerConfig extends PeerOptions {
  /** Used when AssignParent carries no ice_servers (or an empty list). */
  iceServers?: RTCIceServer[];
  /** Every object, once, in id order. */
  onFrame?: (objectId: bigint, bytes: Uint8Array) => void;
  /** A child's DataChannel opened: objects are forwarded to it from now on. */
  onChildOpen?: (childId: string) => void;
  /** A child was dropped or closed its link. */
  onChildClose?: (childId: string, reason: string) => void;
  /** Every AssignParent (the first one also resolves connect()). */
  onAssign?: (assignment: Assignment) => void;
  /** The DataChannel to the parent opened. */
  onParentOpen?: (parentId: string) => void;
  /**
   * Every `Error` frame from the signal server (its code), and failures of
   * the SDK's own: `rtc_config` (the browser refused the ICE servers; the
   * next list is used: config iceServers, then none), `signal_unreachable`
   * (see `connectAttempts`), `origin_unreachable` (an origin egress socket
   * closed before opening; it is retried with backoff).
   */
  onError?: (code: string, reason: string) => void;
  /** Ids that could not be had from anywhere (origin no longer keeps them). */
  onLost?: (firstLost: bigint, count: number) => void;
  /**
   * The track's object ids started again: an AssignParent named another
   * epoch than the one before (the server restarted, or the track was
   * created anew). Ids from the old sequence are not comparable with the new
   * ones, so every link is dropped and delivery goes on from `nextObjectId`
   * of the new sequence; a player should reset its decoder here.
   */
  onRestart?: (nextObjectId: bigint | null, epoch: string) => void;
  /** Diagnostic log. */
  log?: (message: string) => void;
}

/** The integrator's notification callbacks: each is called through `MeshPeer.emit`. */
type CallbackName =
  | "onFrame"
  | "onChildOpen"
  | "onChildClose"
  | "onAssign"
  | "onParentOpen"
  | "onError"
  | "onLost"
  | "onRestart";

/** The browser objects of one RTC link. */
interface RtcLink {
  kind: "parent" | "child";
  peerId: string;
  pc: RTCPeerConnection;
  dc: RTCDataChannel | null;
}

function now(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

/** Closes a connection object, ignoring the errors of one already closed. */
function closeQuietly(target: { close(): void } | null | undefined): void {
  try {
    target?.close();
  } catch {
    /* already closed */
  }
}

function generatePeerId(): string {
  const bytes = new Uint8Array(8);
  if (typeof crypto !== "undefined" && typeof crypto.getRandomValues === "function") {
    crypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return "p-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A viewer in the meshrelay tree: registers on `/signal`, receives the
 * track from its parent (or the origin egress), delivers every object once
 * in id order to `onFrame`, and relays it to its children.
 */
export class MeshPeer {
  /** This peer's id (from the config or generated). */
  readonly peerId: string;
  private readonly cfg: MeshPeerConfig;
  private readonly core: MeshPeerCore;
  private readonly sockets = new Map<SocketId, WebSocket>();
  private readonly origins = new Map<LinkId, WebSocket>();
  private readonly rtc = new Map<LinkId, RtcLink>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt: number | null = null;
  private draining = false;
  private connectResolvers: { resolve: (a: Assignment) => void; reject: (e: Error) => void }[] = [];

  constructor(config: MeshPeerConfig) {
    if (!isValidTrack(config.track)) throw new Error(`invalid track: ${config.track}`);
    const id = config.peerId ?? generatePeerId();
    if (!isValidPeerId(id)) throw new Error(`invalid peer id: ${id}`);
    this.peerId = id;
    this.cfg = config;
    const options: PeerOptions = config;
    this.core = new MeshPeerCore({ ...options, peerId: id });
  }

  // ---------------------------------------------------------------- getters

  /** Role from the last AssignParent, or null before the first. */
  get role(): Role | null {
    return this.core.assignment?.role ?? null;
  }

  /** Assigned parent id (null for a root or a waiting peer). */
  get parent(): string | null {
    return this.core.assignment?.parentId ?? null;
  }

  /** Depth in the tree from the last AssignParent (0 for a root), or null before the first. */
  get depth(): number | null {
    return this.core.assignment?.depth ?? null;
  }

  /**
   * Ids of children whose DataChannel is open. The channel's state is read
   * too: a connection closed locally fires no close event in Chromium.
   */
  get children(): string[] {
    return this.core
      .openChildren()
      .filter((c) => this.rtc.get(c.link)?.dc?.readyState === "open")
      .map((c) => c.peerId);
  }

  /** Whether the DataChannel to the assigned parent is open now. */
  get parentConnected(): boolean {
    return this.core.parentConnected;
  }

  /** Whether the origin egress is being read now. */
  get readingOrigin(): boolean {
    return this.core.readingOrigin;
  }

  /** The next object id expected (null before it is known). */
  get nextObjectId(): bigint | null {
    return this.core.nextObjectId;
  }

  /** A copy of the counters. */
  get stats(): MeshPeerStats {
    return this.core.stats;
  }

  /** Whether the signal socket is open and registered. */
  get connected(): boolean {
    return this.core.connected;
  }

  // ---------------------------------------------------------------- e2e test hooks
  // e2e/page.mjs reaches into these to cut links and sockets the way a
  // crash or a misbehaving peer would; nothing else uses them.

  /** Child links' browser objects by child id. */
  private get childMap(): Map<string, RtcLink> {
    const m = new Map<string, RtcLink>();
    for (const l of this.rtc.values()) if (l.kind === "child") m.set(l.peerId, l);
    return m;
  }

  /** The assigned parent's link, or null. */
  private get parentLink(): RtcLink | null {
    const id = this.core.parentLinkId;
    return id === null ? null : (this.rtc.get(id) ?? null);
  }

  /** The current signal socket, or null. */
  private get signal(): WebSocket | null {
    const id = this.core.signalSocket;
    return id === null ? null : (this.sockets.get(id) ?? null);
  }

  // ---------------------------------------------------------------- lifecycle

  /** Opens the signal socket and resolves on the first AssignParent. */
  connect(): Promise<Assignment> {
    if (this.core.state === "closed") return Promise.reject(new Error("MeshPeer is closed"));
    const p = new Promise<Assignment>((resolve, reject) => {
      const a = this.core.assignment;
      if (a && this.core.isRegistered) resolve(a);
      else this.connectResolvers.push({ resolve, reject });
    });
    if (this.core.state === "idle") this.feed({ type: "connect" });
    return p;
  }

  /** Leaves the tree and closes every connection and timer. */
  close(): void {
    this.feed({ type: "close" });
  }

  /**
   * Feeds one object into the peer (a root fed by the integrator, with
   * `rootSource: "external"`). It is delivered in order and forwarded.
   */
  pushFrame(objectId: bigint | number, bytes: Uint8Array): void {
    const id = typeof objectId === "bigint" ? objectId : BigInt(objectId);
    this.feedData({ type: "push", objectId: id, payload: bytes });
  }

  // ---------------------------------------------------------------- driving the core

  /** Hands one input to the core and applies what it asks for. */
  private feed(input: CoreInput): void {
    this.core.handle(input, now());
    this.drain();
  }

  /**
   * An input that may forward objects: the core first learns how full each
   * child's channel is now, and which channels closed without an event.
   */
  private feedData(input: CoreInput): void {
    this.reportChannels();
    this.feed(input);
  }

  private reportChannels(): void {
    for (const { link } of this.core.openChildren()) {
      const l = this.rtc.get(link);
      const dc = l?.dc;
      if (!l || !dc) continue;
      if (dc.readyState !== "open") {
        this.feed({ type: "linkFailed", link, reason: `DataChannel ${dc.readyState}` });
      } else {
        this.feed({ type: "bufferedAmount", link, amount: dc.bufferedAmount });
      }
    }
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = null;
    this.reportChannels();
    this.core.handleTimeout(now());
    this.drain();
  }

  /** Applies every output; inputs that applying them causes are handled on the way. */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let o = this.core.poll(); o !== null; o = this.core.poll()) this.apply(o);
    } finally {
      this.draining = false;
    }
    this.armTimer();
  }

  private armTimer(): void {
    const at = this.core.pollTimeout();
    if (at === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at !== null) this.timer = setTimeout(() => this.onTimer(), Math.max(0, at - now()));
  }

  private apply(o: CoreOutput): void {
    switch (o.type) {
      case "openSignal":
        return this.openSignal(o.socket, o.url, o.protocols);
      case "sendSignal": {
        const ws = this.sockets.get(o.socket);
        if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(o.message));
        return;
      }
      case "closeSignal": {
        const ws = this.sockets.get(o.socket);
        this.sockets.delete(o.socket);
        try {
          ws?.close(o.code, o.reason);
        } catch {
          /* already closed */
        }
        return;
      }
      case "openOrigin":
        return this.openOrigin(o.link, o.url, o.protocols);
      case "openPeerConnection":
        return this.openPeerConnection(o.link, o.kind, o.peerId, o.iceServerLists, o.protocol);
      case "createOffer":
        return this.describe(o.link, "offer");
      case "createAnswer":
        return this.describe(o.link, "answer");
      case "applyRemoteDescription": {
        const l = this.rtc.get(o.link);
        if (!l) return;
        l.pc.setRemoteDescription(o.description).then(
          () => this.feed({ type: "remoteApplied", link: o.link }),
          (e) => this.feed({ type: "linkFailed", link: o.link, reason: `answer failed: ${String(e)}` }),
        );
        return;
      }
      case "addRemoteCandidate":
        void this.rtc.get(o.link)?.pc.addIceCandidate(o.candidate).catch(() => undefined);
        return;
      case "send":
        return this.send(o.links, o.messages);
      case "closeLink":
        return this.closeLink(o.link);
      case "connectResolved":
        for (const r of this.connectResolvers) r.resolve(o.assignment);
        this.connectResolvers = [];
        return;
      case "connectRejected":
        for (const r of this.connectResolvers) r.reject(new Error(o.error));
        this.connectResolvers = [];
        return;
      case "log":
        return this.log(o.message);
      case "onFrame":
        return this.emit("onFrame", o.objectId, o.payload);
      case "onChildOpen":
        return this.emit("onChildOpen", o.childId);
      case "onChildClose":
        return this.emit("onChildClose", o.childId, o.reason);
      case "onAssign":
        return this.emit("onAssign", o.assignment);
      case "onParentOpen":
        return this.emit("onParentOpen", o.parentId);
      case "onError":
        return this.emit("onError", o.code, o.reason);
      case "onLost":
        return this.emit("onLost", o.firstLost, o.count);
      case "onRestart":
        return this.emit("onRestart", o.nextObjectId, o.epoch);
    }
  }

  private log(msg: string): void {
    try {
      this.cfg.log?.(`[${this.peerId}] ${msg}`);
    } catch {
      /* a diagnostic sink that throws has nowhere to report to */
    }
  }

  /**
   * Calls an integrator callback. Whatever it throws is logged and
   * swallowed: callbacks run in the middle of delivery, forwarding and
   * negotiation, and an exception escaping there would leave the outputs
   * after it unapplied.
   */
  private emit<K extends CallbackName>(name: K, ...args: Parameters<NonNullable<MeshPeerConfig[K]>>): void {
    const f = this.cfg[name] as ((...a: typeof args) => void) | undefined;
    if (f === undefined) return;
    try {
      f(...args);
    } catch (e) {
      this.log(`${name} threw: ${String(e)}`);
    }
  }

  // ---------------------------------------------------------------- sockets

  private openSignal(socket: SocketId, url: string, protocols: string[] | undefined): void {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch (e) {
      this.feed({ type: "signalClosed", socket, code: 0, error: `new WebSocket failed: ${String(e)}` });
      return;
    }
    this.sockets.set(socket, ws);
    ws.onopen = () => this.feed({ type: "signalOpened", socket });
    ws.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data === "string") this.feed({ type: "signalMessage", socket, text: ev.data });
    };
    ws.onclose = (ev: CloseEvent) => {
      this.sockets.delete(socket);
      this.feed({ type: "signalClosed", socket, code: ev.code });
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private openOrigin(link: LinkId, url: string, protocols: string[] | undefined): void {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch (e) {
      this.feed({ type: "originClosed", link, code: 0, error: `new WebSocket failed: ${String(e)}` });
      return;
    }
    this.origins.set(link, ws);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.feed({ type: "originOpened", link });
    ws.onmessage = (ev: MessageEvent) => {
      const data = typeof ev.data === "string" ? ev.data : new Uint8Array(ev.data as ArrayBuffer);
      this.feedData({ type: "originMessage", link, data });
    };
    ws.onclose = (ev: CloseEvent) => {
      this.origins.delete(link);
      this.feed({ type: "originClosed", link, code: ev.code });
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  // ---------------------------------------------------------------- WebRTC

  /**
   * Creates the link's RTCPeerConnection with the first ICE server list the
   * browser takes; each refusal (the constructor throws, e.g. a malformed
   * URL) is reported, and so is refusing them all.
   */
  private openPeerConnection(
    link: LinkId,
    kind: "parent" | "child",
    peerId: string,
    lists: RTCIceServerLike[][],
    protocol: string,
  ): void {
    let pc: RTCPeerConnection | null = null;
    for (const iceServers of lists) {
      try {
        pc = new RTCPeerConnection({ iceServers: iceServers as RTCIceServer[] });
        break;
      } catch (e) {
        this.feed({ type: "iceServersRefused", link, iceServers, error: String(e) });
      }
    }
    if (pc === null) {
      this.feed({ type: "noPeerConnection", link });
      return;
    }
    const l: RtcLink = { kind, peerId, pc, dc: null };
    this.rtc.set(link, l);
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      this.feed({
        type: "localCandidate",
        link,
        candidate: c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } : null,
      });
    };
    const conn = pc;
    pc.onconnectionstatechange = () => {
      const s = conn.connectionState;
      if (s === "failed" || s === "closed") this.feed({ type: "linkFailed", link, reason: `pc ${s}` });
    };
    if (kind === "parent") {
      const dc = pc.createDataChannel("meshrelay", { ordered: true, protocol });
      this.watchChannel(link, l, dc);
    } else {
      pc.ondatachannel = (ev) => this.watchChannel(link, l, ev.channel);
    }
  }

  private watchChannel(link: LinkId, l: RtcLink, dc: RTCDataChannel): void {
    dc.binaryType = "arraybuffer";
    l.dc = dc;
    const opened = () =>
      this.feed({ type: "channelOpen", link, protocol: dc.protocol, maxMessageSize: l.pc.sctp?.maxMessageSize ?? null });
    dc.onopen = opened;
    dc.onclose = () => this.feed({ type: "linkFailed", link, reason: "DataChannel closed" });
    if (l.kind === "parent") {
      dc.onmessage = (ev: MessageEvent) => {
        if (ev.data instanceof ArrayBuffer) this.feedData({ type: "channelData", link, data: new Uint8Array(ev.data) });
      };
    }
    if (dc.readyState === "open") opened();
  }

  /** Creates our Offer or Answer and sets it as the local description. */
  private describe(link: LinkId, what: "offer" | "answer"): void {
    const l = this.rtc.get(link);
    if (!l) return;
    const pc = l.pc;
    void (async () => {
      try {
        const desc = what === "offer" ? await pc.createOffer() : await pc.createAnswer();
        await pc.setLocalDescription(desc);
        this.feed({ type: "linkDescribed", link, sdp: desc.sdp ?? "" });
      } catch (e) {
        this.feed({ type: "linkFailed", link, reason: `${what} failed: ${String(e)}` });
      }
    })();
  }

  private send(links: LinkId[], messages: Uint8Array[]): void {
    for (const link of links) {
      const l = this.rtc.get(link);
      const dc = l?.dc;
      if (!l || !dc) continue;
      try {
        for (const m of messages) dc.send(m as Uint8Array<ArrayBuffer>);
      } catch (e) {
        this.log(`send to child ${l.peerId} failed: ${String(e)}`);
        this.feed({ type: "linkFailed", link, reason: "send failed" });
      }
    }
  }

  private closeLink(link: LinkId): void {
    const ws = this.origins.get(link);
    if (ws) {
      this.origins.delete(link);
      ws.onmessage = null;
      ws.onclose = null;
      closeQuietly(ws);
    }
    const l = this.rtc.get(link);
    if (l) {
      this.rtc.delete(link);
      closeQuietly(l.dc);
      closeQuietly(l.pc);
    }
  }
}
