/**
 * MeshPeer: a browser viewer in the meshrelay tree.
 *
 * - registers on `/signal`, follows every AssignParent;
 * - a root reads the origin egress `/ws/{track}` itself;
 * - a relay or leaf opens an RTCPeerConnection to its parent (the child
 *   offers) with one ordered, reliable DataChannel carrying
 *   `[u64 BE object_id][payload]` messages (chunked above 64 KiB);
 * - every object is delivered to `onFrame` once, in object id order, and
 *   forwarded to every open child;
 * - on re-parenting the old path is kept until the new one delivers, and any
 *   hole in the ids is filled from the origin egress with `?from=`.
 */
import { Backoff } from "./backoff.js";
import { ChunkAssembler, decodeObject, frameForDataChannel } from "./framing.js";
import { Sequencer, type Delivery, type Gap } from "./sequencer.js";
import {
  type AssignParentMessage,
  type ClientMessage,
  type RTCIceServerLike,
  type Role,
  type ServerMessage,
  deriveOriginUrl,
  egressUrl,
  isSubprotocolSafe,
  isValidPeerId,
  isValidTrack,
  nextObjectIdOf,
  parseServerMessage,
} from "./signal.js";

export type ObjectSource = "parent" | "origin" | "pushed";

export interface Assignment {
  peerId: string;
  role: Role;
  parentId: string | null;
  depth: number;
  iceServers: RTCIceServerLike[];
  nextObjectId: bigint | null;
}

export interface MeshPeerStats {
  /** Objects delivered whose first copy came from a parent DataChannel. */
  fromParent: number;
  /** Objects delivered whose first copy came from the origin egress. */
  fromOrigin: number;
  /** Objects delivered that the integrator pushed with pushFrame(). */
  pushed: number;
  /** Objects delivered from the origin while not a root (repairs). */
  repairedFromOrigin: number;
  /** Holes in the id sequence that the origin egress filled. */
  gapsRepaired: number;
  /** Ids given up on (origin ResumeGap, reorder buffer overflow). */
  lost: number;
  /** Copies received that had already been delivered. */
  duplicates: number;
  /** Objects delivered to onFrame. */
  delivered: number;
  /** Object sends to children (one per object per child): reported as forwarded_frames. */
  forwarded: number;
  /** Payload bytes delivered. */
  bytesReceived: number;
  /** Payload bytes sent to children. */
  bytesForwarded: number;
  /** Children dropped because their DataChannel buffer stayed over the limit. */
  childrenDropped: number;
  /** Partial chunked objects discarded. */
  chunksDiscarded: number;
  /** Signal (re)connections made. */
  signalConnects: number;
  /** Last delivered id, or null. */
  lastObjectId: bigint | null;
}

export interface MeshPeerConfig {
  /** `ws(s)://host:port/signal`. */
  signalUrl: string;
  /** Track to join, e.g. `live/test`. */
  track: string;
  /** Generated when absent. `[A-Za-z0-9_-]{1,64}`. */
  peerId?: string;
  /** Used when AssignParent carries no ice_servers (or an empty list). */
  iceServers?: RTCIceServer[];
  /** Children this peer offers to feed (sent on Register). */
  capacity?: number;
  /** Bearer token: sent as subprotocol `lvqr.bearer.<token>` (or `?token=`). */
  token?: string;
  /** Base for `/ws/{track}`; derived from signalUrl by default. */
  originUrl?: string;
  /** Keeps a local or remote ICE candidate when it returns true (its `candidate:` line). */
  iceCandidateFilter?: (candidate: string) => boolean;
  /** Every object, once, in id order. */
  onFrame?: (objectId: bigint, bytes: Uint8Array) => void;
  onChildOpen?: (childId: string) => void;
  onChildClose?: (childId: string, reason: string) => void;
  onAssign?: (assignment: Assignment) => void;
  onParentOpen?: (parentId: string) => void;
  onError?: (code: string, reason: string) => void;
  /** Ids that could not be had from anywhere (origin no longer keeps them). */
  onLost?: (firstLost: bigint, count: number) => void;
  /** Diagnostic log. */
  log?: (message: string) => void;
  /** Server's peer timeout; heartbeats go every third of it. Default 10,000 ms (the server default). */
  peerTimeoutMs?: number;
  /** Overrides peerTimeoutMs / 3. */
  heartbeatIntervalMs?: number;
  /** ForwardReport period (sent only when the count changed). Default 1,000 ms. */
  forwardReportIntervalMs?: number;
  /** How long a newly assigned parent may take to deliver before the origin is read. Default 1,500 ms. */
  parentGraceMs?: number;
  /** A child whose bufferedAmount stays above this ... Default 4 MiB. */
  slowChildBytes?: number;
  /** ... for this long is dropped. Default 3,000 ms. */
  slowChildMs?: number;
  /** A child whose bufferedAmount exceeds this is dropped at once. Default 12 MiB. */
  maxChildBufferedBytes?: number;
  /** Signal reconnect backoff. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /** `origin` (default): a root reads /ws/{track}. `external`: the integrator calls pushFrame(). */
  rootSource?: "origin" | "external";
  /** Reorder buffer bounds. */
  maxBufferedObjects?: number;
  maxBufferedBytes?: number;
}

type State = "idle" | "connecting" | "open" | "closed";

interface Upstream {
  kind: "parent" | "origin";
  seq: number;
  peerId: string | null;
  startedAt: number;
  /** First id of the current contiguous run this source delivered. */
  firstId: bigint | null;
  lastId: bigint | null;
  /** Delivering possible (DataChannel or socket open). */
  open: boolean;
  closed: boolean;
  received: number;
  pc?: RTCPeerConnection;
  dc?: RTCDataChannel;
  ws?: WebSocket;
  assembler?: ChunkAssembler;
  pendingCandidates?: RTCIceCandidateInit[];
  remoteSet?: boolean;
  /** Local candidates wait here until our Offer has been sent. */
  localGate?: CandidateGate;
  /** Origin: id requested with ?from=. */
  requested?: bigint | null;
  /** Origin: this reader filled a hole (counted once). */
  repairCounted?: boolean;
}

interface Child {
  peerId: string;
  pc: RTCPeerConnection;
  dc: RTCDataChannel | null;
  open: boolean;
  overSince: number | null;
  pendingCandidates: RTCIceCandidateInit[];
  remoteSet: boolean;
  /** Local candidates wait here until our Answer has been sent. */
  localGate: CandidateGate;
}

/** Holds local ICE candidates until the description they belong to is sent. */
interface CandidateGate {
  open: boolean;
  queue: ClientMessage[];
}

function now(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
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

export class MeshPeer {
  readonly peerId: string;
  private readonly cfg: MeshPeerConfig;
  private readonly originBase: string;
  private state: State = "idle";

  private signal: WebSocket | null = null;
  private readonly signalBackoff: Backoff;
  private signalTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private reportTimer: ReturnType<typeof setInterval> | null = null;
  private maintenanceTimer: ReturnType<typeof setInterval> | null = null;
  private lastReported = 0;
  private registered = false;

  private assignment: Assignment | null = null;
  private readonly seq: Sequencer<ObjectSource>;
  private parentUp: Upstream | null = null;
  private oldParents: Upstream[] = [];
  private origin: Upstream | null = null;
  private originRetryAt = 0;
  private readonly originBackoff = new Backoff({ initialMs: 250, maxMs: 5_000 });
  private readonly parentBackoff = new Backoff({ initialMs: 500, maxMs: 8_000 });
  private parentRetryTimer: ReturnType<typeof setTimeout> | null = null;
  private upstreamSeq = 0;
  private readonly childMap = new Map<string, Child>();
  private readonly st: MeshPeerStats = {
    fromParent: 0,
    fromOrigin: 0,
    pushed: 0,
    repairedFromOrigin: 0,
    gapsRepaired: 0,
    lost: 0,
    duplicates: 0,
    delivered: 0,
    forwarded: 0,
    bytesReceived: 0,
    bytesForwarded: 0,
    childrenDropped: 0,
    chunksDiscarded: 0,
    signalConnects: 0,
    lastObjectId: null,
  };
  private connectResolvers: { resolve: (a: Assignment) => void; reject: (e: Error) => void }[] = [];

  constructor(config: MeshPeerConfig) {
    if (!isValidTrack(config.track)) throw new Error(`invalid track: ${config.track}`);
    const id = config.peerId ?? generatePeerId();
    if (!isValidPeerId(id)) throw new Error(`invalid peer id: ${id}`);
    this.peerId = id;
    this.cfg = config;
    this.originBase = config.originUrl ?? deriveOriginUrl(config.signalUrl);
    this.signalBackoff = new Backoff({
      initialMs: config.reconnectInitialMs ?? 500,
      maxMs: config.reconnectMaxMs ?? 15_000,
    });
    this.seq = new Sequencer<ObjectSource>(null, {
      maxBufferedObjects: config.maxBufferedObjects,
      maxBufferedBytes: config.maxBufferedBytes,
    });
  }

  // ---------------------------------------------------------------- getters

  /** Role from the last AssignParent, or null before the first. */
  get role(): Role | null {
    return this.assignment?.role ?? null;
  }

  /** Assigned parent id (null for a root or an unplaced peer). */
  get parent(): string | null {
    return this.assignment?.parentId ?? null;
  }

  get depth(): number | null {
    return this.assignment?.depth ?? null;
  }

  /** Ids of children whose DataChannel is open. */
  get children(): string[] {
    return this.childIds();
  }

  /** Whether the last delivered object came through a parent DataChannel that is open now. */
  get parentConnected(): boolean {
    return this.parentUp !== null && this.parentUp.open;
  }

  /** Whether the origin egress is being read now. */
  get readingOrigin(): boolean {
    return this.origin !== null && !this.origin.closed;
  }

  /** The next object id expected (null before it is known). */
  get nextObjectId(): bigint | null {
    return this.seq.next;
  }

  get stats(): MeshPeerStats {
    return { ...this.st };
  }

  get connected(): boolean {
    return this.state === "open" && this.registered;
  }

  private childIds(): string[] {
    const out: string[] = [];
    for (const c of this.childMap.values()) if (c.open) out.push(c.peerId);
    return out;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Opens the signal socket and resolves on the first AssignParent. */
  connect(): Promise<Assignment> {
    if (this.state === "closed") return Promise.reject(new Error("MeshPeer is closed"));
    const p = new Promise<Assignment>((resolve, reject) => {
      if (this.assignment && this.registered) resolve(this.assignment);
      else this.connectResolvers.push({ resolve, reject });
    });
    if (this.state === "idle") {
      this.state = "connecting";
      this.openSignal();
      const hb = this.cfg.heartbeatIntervalMs ?? Math.max(250, Math.floor((this.cfg.peerTimeoutMs ?? 10_000) / 3));
      this.heartbeatTimer = setInterval(() => this.send({ type: "Heartbeat" }), hb);
      this.reportTimer = setInterval(() => this.reportForwarded(), this.cfg.forwardReportIntervalMs ?? 1_000);
      this.maintenanceTimer = setInterval(() => this.maintain(), 250);
    }
    return p;
  }

  /** Leaves the tree and closes every connection. */
  close(): void {
    if (this.state === "closed") return;
    this.reportForwarded();
    this.send({ type: "Leave" });
    this.state = "closed";
    for (const t of [this.heartbeatTimer, this.reportTimer, this.maintenanceTimer]) if (t) clearInterval(t);
    if (this.signalTimer) clearTimeout(this.signalTimer);
    if (this.parentRetryTimer) clearTimeout(this.parentRetryTimer);
    if (this.signal) {
      const s = this.signal;
      this.signal = null;
      try {
        s.close(1000, "leave");
      } catch {
        /* ignore */
      }
    }
    if (this.parentUp) this.closeUpstream(this.parentUp, "closed");
    for (const u of this.oldParents) this.closeUpstream(u, "closed");
    this.oldParents = [];
    if (this.origin) this.closeUpstream(this.origin, "closed");
    for (const c of [...this.childMap.values()]) this.closeChild(c, "closed", false);
    for (const r of this.connectResolvers) r.reject(new Error("closed"));
    this.connectResolvers = [];
  }

  /**
   * Feeds one object into the peer (a root fed by the integrator, with
   * `rootSource: "external"`). It is delivered in order and forwarded.
   */
  pushFrame(objectId: bigint | number, bytes: Uint8Array): void {
    if (this.state === "closed") return;
    const id = typeof objectId === "bigint" ? objectId : BigInt(objectId);
    const r = this.seq.offer(id, bytes, "pushed");
    if (r.duplicate) this.st.duplicates++;
    this.handleLost(r.lost);
    for (const d of r.delivered) this.deliver(d);
    this.reconcile();
  }

  // ---------------------------------------------------------------- signal

  private log(msg: string): void {
    this.cfg.log?.(`[${this.peerId}] ${msg}`);
  }

  private send(msg: ClientMessage): void {
    const s = this.signal;
    if (s && s.readyState === WebSocket.OPEN && (this.registered || msg.type === "Register")) {
      s.send(JSON.stringify(msg));
    }
  }

  private openSignal(): void {
    if (this.state === "closed") return;
    const token = this.cfg.token;
    let url = this.cfg.signalUrl;
    let protocols: string[] | undefined;
    if (token !== undefined) {
      if (isSubprotocolSafe(token)) protocols = [`lvqr.bearer.${token}`];
      else url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch (e) {
      this.log(`signal open failed: ${String(e)}`);
      this.scheduleSignalReconnect();
      return;
    }
    this.signal = ws;
    this.registered = false;
    ws.onopen = () => {
      if (this.signal !== ws) return;
      this.st.signalConnects++;
      this.state = "open";
      this.sendRegister();
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.signal !== ws || typeof ev.data !== "string") return;
      const m = parseServerMessage(ev.data);
      if (m === null) {
        this.log(`ignored signal frame: ${ev.data.slice(0, 200)}`);
        return;
      }
      this.onSignal(m);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.signal !== ws) return;
      this.signal = null;
      this.registered = false;
      this.log(`signal closed (${ev.code})`);
      if (this.state !== "closed") {
        this.state = "connecting";
        this.scheduleSignalReconnect();
      }
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private sendRegister(): void {
    const s = this.signal;
    if (!s || s.readyState !== WebSocket.OPEN) return;
    const msg: ClientMessage = { type: "Register", peer_id: this.peerId, track: this.cfg.track };
    if (this.cfg.capacity !== undefined) msg.capacity = this.cfg.capacity;
    s.send(JSON.stringify(msg));
  }

  private scheduleSignalReconnect(): void {
    if (this.state === "closed" || this.signalTimer) return;
    const delay = this.signalBackoff.next();
    this.log(`signal reconnect in ${delay} ms`);
    this.signalTimer = setTimeout(() => {
      this.signalTimer = null;
      this.openSignal();
    }, delay);
  }

  private onSignal(m: ServerMessage): void {
    switch (m.type) {
      case "AssignParent":
        this.onAssign(m);
        break;
      case "PeerLeft":
        this.onPeerLeft(m.peer_id);
        break;
      case "Offer":
        void this.onChildOffer(m.from, m.sdp);
        break;
      case "Answer":
        void this.onParentAnswer(m.from, m.sdp);
        break;
      case "IceCandidate":
        this.onRemoteCandidate(m.from, {
          candidate: m.candidate,
          sdpMid: m.sdp_mid ?? "0",
          sdpMLineIndex: m.sdp_mline_index ?? 0,
        });
        break;
      case "Error":
        this.onSignalError(m.code, m.reason);
        break;
    }
  }

  private onSignalError(code: string, reason: string): void {
    this.log(`signal error ${code}: ${reason}`);
    this.cfg.onError?.(code, reason);
    if (!this.registered) {
      if (code === "invalid_peer_id" || code === "invalid_track" || code === "unauthorized") {
        const err = new Error(`${code}: ${reason}`);
        for (const r of this.connectResolvers) r.reject(err);
        this.connectResolvers = [];
        if (code !== "unauthorized") {
          this.close();
          return;
        }
      }
      if (code === "duplicate_peer_id" || code === "mesh_full") {
        // The server may still hold our previous session, or have no room
        // yet: retry the Register later on a fresh socket.
        const s = this.signal;
        this.signal = null;
        try {
          s?.close(1000, "retry");
        } catch {
          /* ignore */
        }
        this.state = "connecting";
        this.scheduleSignalReconnect();
      }
    }
  }

  private reportForwarded(): void {
    if (this.st.forwarded !== this.lastReported && this.registered) {
      this.send({ type: "ForwardReport", forwarded_frames: this.st.forwarded });
      this.lastReported = this.st.forwarded;
    }
  }

  // ---------------------------------------------------------------- assignment

  private onAssign(m: AssignParentMessage): void {
    const first = !this.registered;
    this.registered = true;
    this.signalBackoff.reset();
    if (first) this.lastReported = 0; // a new server session starts at 0
    const a: Assignment = {
      peerId: m.peer_id,
      role: m.role,
      parentId: m.parent_id ?? null,
      depth: m.depth,
      iceServers: Array.isArray(m.ice_servers) ? m.ice_servers : [],
      nextObjectId: nextObjectIdOf(m),
    };
    this.assignment = a;
    if (a.nextObjectId !== null) this.seq.start(a.nextObjectId);
    this.log(`assigned role=${a.role} parent=${a.parentId} depth=${a.depth} next=${a.nextObjectId}`);

    const cur = this.parentUp;
    if (a.parentId === null) {
      if (cur) this.retireParent(cur);
    } else if (!(cur && cur.peerId === a.parentId && !cur.closed)) {
      if (cur) this.retireParent(cur);
      // Back to a parent whose channel is still open: reuse it.
      const again = this.oldParents.find((u) => u.peerId === a.parentId && !u.closed);
      if (again) {
        this.oldParents = this.oldParents.filter((u) => u !== again);
        this.parentUp = again;
      } else {
        this.parentBackoff.reset();
        this.connectParent(a.parentId);
      }
    }
    if (first) {
      for (const r of this.connectResolvers) r.resolve(a);
      this.connectResolvers = [];
    }
    this.cfg.onAssign?.(a);
    this.reconcile();
    if (first) this.reportForwarded();
  }

  private onPeerLeft(peerId: string): void {
    this.log(`PeerLeft ${peerId}`);
    const child = this.childMap.get(peerId);
    if (child) this.closeChild(child, "peer left", false);
    if (this.parentUp && this.parentUp.peerId === peerId) {
      // The parent is gone: read the origin until the server names a new one.
      this.closeUpstream(this.parentUp, "peer left");
      this.parentUp = null;
    }
    for (const u of this.oldParents) if (u.peerId === peerId) this.closeUpstream(u, "peer left");
    this.oldParents = this.oldParents.filter((u) => !u.closed);
    this.reconcile();
  }

  /** Keeps the current parent path as an "old" source until the new path delivers. */
  private retireParent(u: Upstream): void {
    if (this.parentRetryTimer) {
      clearTimeout(this.parentRetryTimer);
      this.parentRetryTimer = null;
    }
    this.parentUp = null;
    if (u.closed) return;
    if (!u.open) {
      this.closeUpstream(u, "re-parented before open");
      return;
    }
    this.oldParents.push(u);
    while (this.oldParents.length > 2) this.closeUpstream(this.oldParents.shift()!, "too many old parents");
  }

  // ---------------------------------------------------------------- upstream: parent

  private rtcConfig(): RTCConfiguration {
    const fromAssign = this.assignment?.iceServers ?? [];
    const iceServers = (fromAssign.length > 0 ? fromAssign : (this.cfg.iceServers ?? [])) as RTCIceServer[];
    return { iceServers };
  }

  private candidateAllowed(candidate: string): boolean {
    if (candidate === "") return true;
    const f = this.cfg.iceCandidateFilter;
    return f ? f(candidate) : true;
  }

  /** Sends (or holds until the gate opens) one filtered local candidate. */
  private localCandidate(gate: CandidateGate, to: string, cand: RTCIceCandidate | null): void {
    if (!cand || !cand.candidate || !this.candidateAllowed(cand.candidate)) return;
    const msg: ClientMessage = {
      type: "IceCandidate",
      from: this.peerId,
      to,
      candidate: cand.candidate,
      sdp_mid: cand.sdpMid,
      sdp_mline_index: cand.sdpMLineIndex,
    };
    if (gate.open) this.send(msg);
    else gate.queue.push(msg);
  }

  private openGate(gate: CandidateGate): void {
    gate.open = true;
    for (const m of gate.queue) this.send(m);
    gate.queue = [];
  }

  private connectParent(parentId: string): void {
    const u: Upstream = {
      kind: "parent",
      seq: ++this.upstreamSeq,
      peerId: parentId,
      startedAt: now(),
      firstId: null,
      lastId: null,
      open: false,
      closed: false,
      received: 0,
      assembler: new ChunkAssembler(),
      pendingCandidates: [],
      remoteSet: false,
      localGate: { open: false, queue: [] },
    };
    this.parentUp = u;
    const pc = new RTCPeerConnection(this.rtcConfig());
    u.pc = pc;
    const dc = pc.createDataChannel("meshrelay", { ordered: true });
    dc.binaryType = "arraybuffer";
    u.dc = dc;
    pc.onicecandidate = (ev) => {
      if (u.closed) return;
      this.localCandidate(u.localGate!, parentId, ev.candidate);
    };
    pc.onconnectionstatechange = () => {
      if (u.closed) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this.upstreamFailed(u, `pc ${pc.connectionState}`);
    };
    dc.onopen = () => {
      if (u.closed) return;
      u.open = true;
      this.log(`parent ${parentId} DataChannel open`);
      this.cfg.onParentOpen?.(parentId);
      this.reconcile();
    };
    dc.onclose = () => {
      if (!u.closed) this.upstreamFailed(u, "DataChannel closed");
    };
    dc.onmessage = (ev: MessageEvent) => {
      if (u.closed || !(ev.data instanceof ArrayBuffer)) return;
      let events;
      try {
        events = u.assembler!.push(new Uint8Array(ev.data));
      } catch (e) {
        this.log(`bad message from parent ${parentId}: ${String(e)}`);
        return;
      }
      for (const e of events) {
        if (e.type === "object") this.onUpstreamObject(u, e.objectId, e.payload);
        else {
          this.st.chunksDiscarded++;
          this.log(`discarded partial object ${e.objectId} (${e.reason})`);
        }
      }
      this.reconcile();
    };
    void (async () => {
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        if (u.closed) return;
        this.send({ type: "Offer", from: this.peerId, to: parentId, sdp: offer.sdp ?? "" });
        this.openGate(u.localGate!);
      } catch (e) {
        this.upstreamFailed(u, `offer failed: ${String(e)}`);
      }
    })();
    this.log(`connecting to parent ${parentId}`);
  }

  private async onParentAnswer(from: string, sdp: string): Promise<void> {
    const u = this.parentUp && this.parentUp.peerId === from && !this.parentUp.remoteSet ? this.parentUp : null;
    if (!u || !u.pc) {
      this.log(`unexpected Answer from ${from}`);
      return;
    }
    try {
      await u.pc.setRemoteDescription({ type: "answer", sdp });
      u.remoteSet = true;
      for (const c of u.pendingCandidates ?? []) await u.pc.addIceCandidate(c).catch(() => undefined);
      u.pendingCandidates = [];
    } catch (e) {
      this.upstreamFailed(u, `answer failed: ${String(e)}`);
    }
  }

  private onRemoteCandidate(from: string, c: RTCIceCandidateInit): void {
    if (!this.candidateAllowed(c.candidate ?? "")) return;
    const u = this.parentUp;
    if (u && u.peerId === from && u.pc && !u.closed) {
      if (u.remoteSet) void u.pc.addIceCandidate(c).catch(() => undefined);
      else u.pendingCandidates!.push(c);
    }
    const child = this.childMap.get(from);
    if (child) {
      if (child.remoteSet) void child.pc.addIceCandidate(c).catch(() => undefined);
      else child.pendingCandidates.push(c);
    }
  }

  private upstreamFailed(u: Upstream, reason: string): void {
    if (u.closed) return;
    this.log(`${u.kind} ${u.peerId ?? ""} failed: ${reason}`);
    this.closeUpstream(u, reason);
    if (u === this.parentUp) {
      this.parentUp = null;
      // Still our assigned parent: retry it after a backoff; the origin
      // covers meanwhile (reconcile).
      const parentId = u.peerId!;
      if (this.parentRetryTimer) clearTimeout(this.parentRetryTimer);
      const delay = this.parentBackoff.next();
      this.parentRetryTimer = setTimeout(() => {
        this.parentRetryTimer = null;
        if (this.state === "closed") return;
        if (this.registered && this.assignment?.parentId === parentId && !this.parentUp) this.connectParent(parentId);
      }, delay);
    }
    if (u === this.origin) {
      this.origin = null;
      this.originRetryAt = now() + (u.received > 0 ? 0 : this.originBackoff.next());
    }
    this.oldParents = this.oldParents.filter((x) => !x.closed);
    this.reconcile();
  }

  private closeUpstream(u: Upstream, reason: string): void {
    if (u.closed) return;
    u.closed = true;
    u.open = false;
    this.log(`closing ${u.kind} ${u.peerId ?? ""} (${reason})`);
    try {
      u.dc?.close();
    } catch {
      /* ignore */
    }
    try {
      u.pc?.close();
    } catch {
      /* ignore */
    }
    if (u.ws) {
      const ws = u.ws;
      ws.onmessage = null;
      ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        /* ignore */
      }
    }
    if (u.assembler) {
      for (const e of u.assembler.reset()) if (e.type === "discarded") this.st.chunksDiscarded++;
    }
  }

  // ---------------------------------------------------------------- upstream: origin

  private openOrigin(): void {
    const from = this.seq.next;
    const url = egressUrl(this.originBase, this.cfg.track, from, this.cfg.token);
    const token = this.cfg.token;
    const protocols = token !== undefined && isSubprotocolSafe(token) ? [`lvqr.bearer.${token}`] : undefined;
    const u: Upstream = {
      kind: "origin",
      seq: ++this.upstreamSeq,
      peerId: null,
      startedAt: now(),
      firstId: null,
      lastId: null,
      open: false,
      closed: false,
      received: 0,
      requested: from,
    };
    this.origin = u;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch (e) {
      this.upstreamFailed(u, String(e));
      return;
    }
    u.ws = ws;
    ws.binaryType = "arraybuffer";
    this.log(`reading origin ${url}`);
    ws.onopen = () => {
      if (u.closed) return;
      u.open = true;
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (u.closed) return;
      if (typeof ev.data === "string") {
        this.onOriginText(u, ev.data);
        return;
      }
      let obj;
      try {
        obj = decodeObject(new Uint8Array(ev.data as ArrayBuffer));
      } catch (e) {
        this.log(`bad origin message: ${String(e)}`);
        return;
      }
      this.originBackoff.reset();
      this.onUpstreamObject(u, obj.objectId, obj.payload);
      this.reconcile();
    };
    ws.onclose = (ev: CloseEvent) => {
      if (!u.closed) this.upstreamFailed(u, `origin socket closed (${ev.code})`);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private onOriginText(_u: Upstream, text: string): void {
    let m: { type?: string; requested?: unknown; first?: unknown };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return;
    }
    if (m.type === "ResumeGap" && (typeof m.first === "number" || typeof m.first === "string")) {
      let first: bigint;
      try {
        first = BigInt(m.first);
      } catch {
        return;
      }
      this.log(`origin ResumeGap requested=${String(m.requested)} first=${first}`);
      const r = this.seq.skipTo(first);
      this.handleLost(r.lost);
      for (const d of r.delivered) this.deliver(d);
      this.reconcile();
    } else if (m.type === "Error") {
      this.log(`origin error: ${text}`);
    }
  }

  // ---------------------------------------------------------------- data path

  private onUpstreamObject(u: Upstream, id: bigint, payload: Uint8Array): void {
    u.received++;
    if (u.lastId === null || id !== u.lastId + 1n) u.firstId = id; // a new contiguous run
    u.lastId = id;
    const source: ObjectSource = u.kind === "parent" ? "parent" : "origin";
    const r = this.seq.offer(id, payload, source);
    if (r.duplicate) this.st.duplicates++;
    this.handleLost(r.lost);
    for (const d of r.delivered) this.deliver(d);
  }

  private handleLost(lost: Gap[]): void {
    for (const g of lost) {
      const count = Number(g.to - g.from);
      this.st.lost += count;
      this.log(`lost objects [${g.from}, ${g.to})`);
      this.cfg.onLost?.(g.from, count);
    }
  }

  private deliver(d: Delivery<ObjectSource>): void {
    this.st.delivered++;
    this.st.bytesReceived += d.payload.byteLength;
    this.st.lastObjectId = d.objectId;
    if (d.source === "parent") this.st.fromParent++;
    else if (d.source === "pushed") this.st.pushed++;
    else {
      this.st.fromOrigin++;
      if (!this.isRootLike()) {
        this.st.repairedFromOrigin++;
        const o = this.origin;
        if (o && !o.repairCounted) {
          o.repairCounted = true;
          this.st.gapsRepaired++;
        }
      }
    }
    this.forward(d.objectId, d.payload);
    try {
      this.cfg.onFrame?.(d.objectId, d.payload);
    } catch (e) {
      this.log(`onFrame threw: ${String(e)}`);
    }
  }

  private isRootLike(): boolean {
    return this.assignment === null || this.assignment.role === "Root";
  }

  private forward(id: bigint, payload: Uint8Array): void {
    if (this.childMap.size === 0) return;
    let messages: Uint8Array[] | null = null;
    const t = now();
    const slowBytes = this.cfg.slowChildBytes ?? 4 * 1024 * 1024;
    const slowMs = this.cfg.slowChildMs ?? 3_000;
    const hardBytes = this.cfg.maxChildBufferedBytes ?? 12 * 1024 * 1024;
    for (const c of [...this.childMap.values()]) {
      if (!c.open || !c.dc || c.dc.readyState !== "open") continue;
      const buffered = c.dc.bufferedAmount;
      if (buffered > slowBytes) {
        c.overSince ??= t;
        if (t - c.overSince >= slowMs || buffered + payload.byteLength > hardBytes) {
          this.dropSlowChild(c, buffered);
          continue;
        }
      } else {
        c.overSince = null;
      }
      messages ??= frameForDataChannel(id, payload);
      try {
        for (const m of messages) c.dc.send(m as Uint8Array<ArrayBuffer>);
      } catch (e) {
        this.log(`send to child ${c.peerId} failed: ${String(e)}`);
        this.closeChild(c, "send failed", true);
        continue;
      }
      this.st.forwarded++;
      this.st.bytesForwarded += payload.byteLength;
    }
  }

  private dropSlowChild(c: Child, buffered: number): void {
    this.st.childrenDropped++;
    this.log(`dropping slow child ${c.peerId} (bufferedAmount ${buffered})`);
    this.closeChild(c, `slow consumer: bufferedAmount ${buffered}`, true);
  }

  /** Periodic: slow-child check when no objects flow, grace-timer expiry. */
  private maintain(): void {
    if (this.state === "closed") return;
    const t = now();
    const slowBytes = this.cfg.slowChildBytes ?? 4 * 1024 * 1024;
    const slowMs = this.cfg.slowChildMs ?? 3_000;
    for (const c of [...this.childMap.values()]) {
      if (!c.open || !c.dc) continue;
      const buffered = c.dc.bufferedAmount;
      if (buffered > slowBytes) {
        c.overSince ??= t;
        if (t - c.overSince >= slowMs) this.dropSlowChild(c, buffered);
      } else c.overSince = null;
    }
    this.reconcile();
  }

  /**
   * Decides which upstream sources are needed now, from the state of the
   * sources and the next id to deliver. A source "covers" the stream when it
   * is open and its current contiguous run started at or before the next id
   * (so everything from there on comes through it, in order).
   * - a root (or a peer the planner could not place) reads the origin; an
   *   old parent is kept until the origin covers;
   * - a peer whose parent covers needs nothing else: old parents and a
   *   repair reader are closed;
   * - while an old parent covers, the new parent may take its time;
   * - a new parent that is still connecting gets `parentGraceMs` before the
   *   origin is read; once its DataChannel is open, the origin is read only
   *   when it delivers with a hole (its first id is past the next id);
   * - otherwise (parent gone, link dead, hole) the origin is read from the
   *   next id, and kept until a parent covers: a repair reader is never
   *   closed just because a new parent is coming up.
   */
  private reconcile(): void {
    if (this.state === "closed" || this.assignment === null) return;
    const next = this.seq.next;
    const covers = (u: Upstream | null): boolean =>
      u !== null && u.open && !u.closed && u.firstId !== null && (next === null || u.firstId <= next);
    const a = this.assignment;
    const rootLike = a.role === "Root" || a.parentId === null;
    const parent = this.parentUp;
    let open: boolean; // start reading the origin if not reading it
    let keep: boolean; // keep reading it if reading it
    if (rootLike) {
      open = keep = a.role !== "Root" || (this.cfg.rootSource ?? "origin") === "origin";
      // Keep an old parent until the root's own source delivers.
      if (open ? covers(this.origin) : this.st.pushed > 0) this.closeOldParents();
    } else if (covers(parent)) {
      open = keep = false;
      this.closeOldParents();
    } else if (this.oldParents.some(covers)) {
      open = keep = false;
    } else if (parent !== null && !parent.closed && parent.firstId === null) {
      open = !parent.open && now() - parent.startedAt >= (this.cfg.parentGraceMs ?? 1_500);
      keep = true;
    } else {
      open = keep = true;
    }
    if (open && this.origin === null && now() >= this.originRetryAt) {
      this.openOrigin();
    } else if (!keep && this.origin !== null) {
      this.closeUpstream(this.origin, "a parent path covers the stream");
      this.origin = null;
      this.originBackoff.reset();
    }
  }

  private closeOldParents(): void {
    if (this.oldParents.length === 0) return;
    for (const u of this.oldParents) this.closeUpstream(u, "new path delivers");
    this.oldParents = [];
  }

  // ---------------------------------------------------------------- children

  private async onChildOffer(from: string, sdp: string): Promise<void> {
    const old = this.childMap.get(from);
    if (old) this.closeChild(old, "renegotiated", false);
    const pc = new RTCPeerConnection(this.rtcConfig());
    const c: Child = {
      peerId: from,
      pc,
      dc: null,
      open: false,
      overSince: null,
      pendingCandidates: [],
      remoteSet: false,
      localGate: { open: false, queue: [] },
    };
    this.childMap.set(from, c);
    pc.onicecandidate = (ev) => {
      if (this.childMap.get(from) !== c) return;
      this.localCandidate(c.localGate, from, ev.candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this.closeChild(c, `pc ${pc.connectionState}`, true);
    };
    pc.ondatachannel = (ev) => {
      const dc = ev.channel;
      dc.binaryType = "arraybuffer";
      c.dc = dc;
      const opened = () => {
        if (this.childMap.get(from) !== c || c.open) return;
        c.open = true;
        this.log(`child ${from} DataChannel open`);
        this.cfg.onChildOpen?.(from);
      };
      dc.onopen = opened;
      dc.onclose = () => this.closeChild(c, "DataChannel closed", true);
      if (dc.readyState === "open") opened();
    };
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      c.remoteSet = true;
      for (const cand of c.pendingCandidates) await pc.addIceCandidate(cand).catch(() => undefined);
      c.pendingCandidates = [];
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (this.childMap.get(from) !== c) return;
      this.send({ type: "Answer", from: this.peerId, to: from, sdp: answer.sdp ?? "" });
      this.openGate(c.localGate);
    } catch (e) {
      this.closeChild(c, `answer failed: ${String(e)}`, true);
    }
  }

  private closeChild(c: Child, reason: string, notify: boolean): void {
    if (this.childMap.get(c.peerId) !== c) return;
    this.childMap.delete(c.peerId);
    const wasOpen = c.open;
    c.open = false;
    try {
      c.dc?.close();
    } catch {
      /* ignore */
    }
    try {
      c.pc.close();
    } catch {
      /* ignore */
    }
    this.log(`child ${c.peerId} closed (${reason})`);
    if (wasOpen || notify) this.cfg.onChildClose?.(c.peerId, reason);
  }
}
