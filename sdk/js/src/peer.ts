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
import {
  ChunkAssembler,
  DATACHANNEL_PROTOCOL,
  DEFAULT_MAX_OBJECT_BYTES,
  MAX_WHOLE_OBJECT_MESSAGE,
  chunkedMessages,
  decodeObject,
  encodeObject,
  fitsWhole,
} from "./framing.js";
import { StallClock, planUpstreams } from "./upstreams.js";
import { Sequencer, type Delivery, type Gap, type OfferResult } from "./sequencer.js";
import {
  type AssignParentMessage,
  type ClientMessage,
  type RTCIceServerLike,
  type Role,
  type ServerMessage,
  bearerProtocols,
  deriveOriginUrl,
  egressUrl,
  isValidPeerId,
  isValidTrack,
  nextObjectIdOf,
  epochOf,
  parseResumeGap,
  parseServerMessage,
  signalUrlWithToken,
} from "./signal.js";

/** Where the delivered copy of an object came from. */
export type ObjectSource = "parent" | "origin" | "pushed";

/** This peer's place in the tree, from the last AssignParent. */
export interface Assignment {
  peerId: string;
  role: Role;
  parentId: string | null;
  depth: number;
  iceServers: RTCIceServerLike[];
  /** The origin's next object id when the assignment was made (extension), or null. */
  nextObjectId: bigint | null;
  /** The track's id sequence (extension, see `onRestart`), or null when the server sends none. */
  epoch: string | null;
}

/** Counters since the MeshPeer was created (see `MeshPeer.stats`). */
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
  /** Objects from a parent refused for lying beyond the reorder window (`maxBufferedObjects` ids ahead). */
  tooFarAhead: number;
  /** Objects delivered to onFrame. */
  delivered: number;
  /** Object sends to children (one per object per child): reported as forwarded_frames. */
  forwarded: number;
  /**
   * Objects not sent to a child that reads no chunks (an LVQR client, see
   * `DATACHANNEL_PROTOCOL`) because, whole, they exceed its channel's largest
   * message (at most 256 KiB): such a child misses them.
   */
  tooLargeForChild: number;
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
  /** Times the track's ids started again under a new epoch (see `onRestart`). */
  restarts: number;
  /** Last delivered id, or null. */
  lastObjectId: bigint | null;
}

/**
 * Options of a MeshPeer; only `signalUrl` and `track` are required. A
 * callback that throws is logged and otherwise ignored: it never costs an
 * object or a state change.
 */
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
  /** Server's peer timeout; heartbeats go every third of it. Default 10,000 ms (the server default). */
  peerTimeoutMs?: number;
  /** Overrides peerTimeoutMs / 3. */
  heartbeatIntervalMs?: number;
  /** ForwardReport period (sent only when the count changed). Default 1,000 ms. */
  forwardReportIntervalMs?: number;
  /** How long a newly assigned parent may take to deliver before the origin is read. Default 1,500 ms. */
  parentGraceMs?: number;
  /**
   * A parent DataChannel not open after this long is given up and retried
   * with backoff (an Answer that never comes, e.g. the parent refused the
   * Offer). Default 15,000 ms.
   */
  parentConnectTimeoutMs?: number;
  /**
   * A child whose DataChannel is not open this long after its Offer is
   * closed (its RTCPeerConnection is not kept for ever). Default
   * parentConnectTimeoutMs.
   */
  childConnectTimeoutMs?: number;
  /** A child whose bufferedAmount stays above this for `slowChildMs` is dropped. Default 4 MiB. */
  slowChildBytes?: number;
  /** See `slowChildBytes`. Default 3,000 ms. */
  slowChildMs?: number;
  /**
   * Offers from a child dropped as slow are refused this long, so it does
   * not come straight back to the parent it could not keep up with.
   * Default 30,000 ms.
   */
  slowChildCooldownMs?: number;
  /** A child whose bufferedAmount exceeds this is dropped at once. Default 12 MiB. */
  maxChildBufferedBytes?: number;
  /**
   * Signal sockets in a row that may fail to open (an HTTP refusal of the
   * upgrade, such as 401 for a wrong token, reaches the page only as close
   * 1006) before it is reported through onError `signal_unreachable`.
   * Before the first registration that also rejects connect() and closes the
   * peer. Default 3.
   */
  connectAttempts?: number;
  /** First signal reconnect delay. Default 500 ms. */
  reconnectInitialMs?: number;
  /** Longest signal reconnect delay. Default 15,000 ms. */
  reconnectMaxMs?: number;
  /** `origin` (default): a root reads /ws/{track}. `external`: the integrator calls pushFrame(). */
  rootSource?: "origin" | "external";
  /**
   * Most objects the reorder buffer holds while waiting for a hole to be
   * filled, and the window for a parent's ids: one this far or further past
   * the next id is refused (`stats.tooFarAhead`), so a parent cannot make
   * the sequence jump ahead. Default 4,096.
   */
  maxBufferedObjects?: number;
  /**
   * Largest chunked object taken from a parent; a larger one is discarded
   * (and repaired from the origin). Match the server's `--max-object-bytes`.
   * Default 4 MiB, the server's default.
   */
  maxObjectBytes?: number;
  /** Most payload bytes the reorder buffer holds. Default 128 MiB. */
  maxBufferedBytes?: number;
}

type State = "idle" | "connecting" | "open" | "closed";

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

/** What the reorder buffer holds per object. */
interface Received {
  kind: ObjectSource;
  /**
   * The unchunked `[id][payload]` message the object arrived in, when it did:
   * forwarded to children as is instead of framing the payload again.
   */
  message: Uint8Array | null;
}

/** A source of objects: the parent's DataChannel or an origin egress reader. */
interface Upstream {
  kind: "parent" | "origin";
  /** The parent's peer id; null for the origin. */
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
  negotiation?: Negotiation;
  /** Parent: an Answer was taken for this attempt. */
  answered?: boolean;
  /** Origin: this reader filled a hole (counted once). */
  repairCounted?: boolean;
}

interface Child {
  peerId: string;
  pc: RTCPeerConnection;
  dc: RTCDataChannel | null;
  open: boolean;
  /** Its channel names DATACHANNEL_PROTOCOL: it reads chunked objects. */
  chunks: boolean;
  /** When its Offer was taken (now()). */
  startedAt: number;
  /** Since when its bufferedAmount has been above slowChildBytes, or null. */
  overSince: number | null;
  negotiation: Negotiation;
}

/**
 * ICE candidates of one RTCPeerConnection that must wait: remote ones until
 * the remote description is set, local ones until our Offer or Answer has
 * gone out (the peer cannot use them before it).
 */
interface Negotiation {
  remoteSet: boolean;
  pendingRemote: RTCIceCandidateInit[];
  localSent: boolean;
  pendingLocal: ClientMessage[];
}

/**
 * Most candidates held per connection while waiting. A description takes a
 * handful; past this the peer is misbehaving and the rest are dropped.
 */
const MAX_PENDING_CANDIDATES = 64;

/** Most children remembered in the slow-child cooldown; past it the oldest is forgotten. */
const MAX_COOLDOWN_ENTRIES = 256;

/** Errors before registration that no retry can fix: connect() rejects and the peer closes. */
const FATAL_REGISTER_ERRORS = new Set(["invalid_peer_id", "invalid_track", "unauthorized"]);
/** Errors before registration that another Register, later, may get past. */
const RETRY_REGISTER_ERRORS = new Set(["duplicate_peer_id", "mesh_full"]);

function now(): number {
  return typeof performance !== "undefined" ? performance.now() : Date.now();
}

function newNegotiation(): Negotiation {
  return { remoteSet: false, pendingRemote: [], localSent: false, pendingLocal: [] };
}

function pushBounded<T>(queue: T[], item: T): void {
  if (queue.length < MAX_PENDING_CANDIDATES) queue.push(item);
}

/** Closes a connection object, ignoring the errors of one already closed. */
function closeQuietly(target: { close(): void } | null | undefined): void {
  try {
    target?.close();
  } catch {
    /* already closed */
  }
}

/**
 * Whether objects can be sent to `c`. The DataChannel's state is read too: a
 * connection closed locally fires no close event in Chromium.
 */
function childOpen(c: Child): c is Child & { dc: RTCDataChannel } {
  return c.open && c.dc !== null && c.dc.readyState === "open";
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
  private readonly originBase: string;
  private readonly slowChildBytes: number;
  private readonly slowChildMs: number;
  private readonly maxChildBufferedBytes: number;
  private readonly parentGraceMs: number;
  private readonly parentConnectTimeoutMs: number;
  private readonly childConnectTimeoutMs: number;
  private state: State = "idle";

  private signal: WebSocket | null = null;
  private readonly signalBackoff: Backoff;
  private signalReconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private reportTimer: ReturnType<typeof setInterval> | null = null;
  private maintenanceTimer: ReturnType<typeof setInterval> | null = null;
  private lastReported = 0;
  private registered = false;
  /** Registered at least once (then signal failures are retried for ever). */
  private everRegistered = false;
  /** Signal sockets in a row that closed without opening. */
  private signalFailures = 0;

  private assignment: Assignment | null = null;
  /** The epoch of the id sequence being delivered, once a server named one. */
  private epoch: string | null = null;
  private sequencer: Sequencer<Received>;
  private parentLink: Upstream | null = null;
  /** Previous parents kept delivering until the new path covers the stream. */
  private oldParents: Upstream[] = [];
  private originReader: Upstream | null = null;
  /** How long the reorder buffer has waited at its current hole (one no source is filling). */
  private readonly stall = new StallClock();
  private originRetryAt = 0;
  private readonly originBackoff = new Backoff({ initialMs: 250, maxMs: 5_000 });
  private readonly parentBackoff = new Backoff({ initialMs: 500, maxMs: 8_000 });
  private parentRetryTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly childMap = new Map<string, Child>();
  /** Children dropped as slow: peer id -> until when (now()) their Offers are refused. */
  private readonly cooldown = new Map<string, number>();
  /** ICE server lists (JSON) whose RTCPeerConnection constructor threw. */
  private readonly refusedIceServers = new Set<string>();
  private readonly counters: MeshPeerStats = {
    fromParent: 0,
    fromOrigin: 0,
    pushed: 0,
    repairedFromOrigin: 0,
    gapsRepaired: 0,
    lost: 0,
    duplicates: 0,
    tooFarAhead: 0,
    delivered: 0,
    forwarded: 0,
    tooLargeForChild: 0,
    bytesReceived: 0,
    bytesForwarded: 0,
    childrenDropped: 0,
    chunksDiscarded: 0,
    signalConnects: 0,
    restarts: 0,
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
    this.slowChildBytes = config.slowChildBytes ?? 4 * 1024 * 1024;
    this.slowChildMs = config.slowChildMs ?? 3_000;
    this.maxChildBufferedBytes = config.maxChildBufferedBytes ?? 12 * 1024 * 1024;
    this.parentGraceMs = config.parentGraceMs ?? 1_500;
    this.parentConnectTimeoutMs = config.parentConnectTimeoutMs ?? 15_000;
    this.childConnectTimeoutMs = config.childConnectTimeoutMs ?? this.parentConnectTimeoutMs;
    this.signalBackoff = new Backoff({
      initialMs: config.reconnectInitialMs ?? 500,
      maxMs: config.reconnectMaxMs ?? 15_000,
    });
    this.sequencer = this.newSequencer(null);
  }

  private newSequencer(start: bigint | null): Sequencer<Received> {
    return new Sequencer<Received>(start, {
      maxBufferedObjects: this.cfg.maxBufferedObjects,
      maxBufferedBytes: this.cfg.maxBufferedBytes,
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

  /** Depth in the tree from the last AssignParent (0 for a root), or null before the first. */
  get depth(): number | null {
    return this.assignment?.depth ?? null;
  }

  /** Ids of children whose DataChannel is open. */
  get children(): string[] {
    const out: string[] = [];
    for (const c of this.childMap.values()) if (childOpen(c)) out.push(c.peerId);
    return out;
  }

  /** Whether the DataChannel to the assigned parent is open now. */
  get parentConnected(): boolean {
    return this.parentLink !== null && this.parentLink.open;
  }

  /** Whether the origin egress is being read now. */
  get readingOrigin(): boolean {
    return this.originReader !== null && !this.originReader.closed;
  }

  /** The next object id expected (null before it is known). */
  get nextObjectId(): bigint | null {
    return this.sequencer.next;
  }

  /** A copy of the counters. */
  get stats(): MeshPeerStats {
    return { ...this.counters };
  }

  /** Whether the signal socket is open and registered. */
  get connected(): boolean {
    return this.state === "open" && this.registered;
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

  /** Leaves the tree and closes every connection and timer. */
  close(): void {
    if (this.state === "closed") return;
    this.reportForwarded();
    this.send({ type: "Leave" });
    this.state = "closed";
    for (const t of [this.heartbeatTimer, this.reportTimer, this.maintenanceTimer]) if (t) clearInterval(t);
    for (const t of [this.signalReconnectTimer, this.parentRetryTimer]) if (t) clearTimeout(t);
    this.heartbeatTimer = this.reportTimer = this.maintenanceTimer = null;
    this.signalReconnectTimer = this.parentRetryTimer = null;
    this.dropSignal(1000, "leave");
    this.closeLinks("closed");
    this.rejectConnect(new Error("closed"));
  }

  /** Closes every parent, origin and child link. */
  private closeLinks(reason: string): void {
    if (this.parentLink) this.closeUpstream(this.parentLink, reason);
    this.parentLink = null;
    for (const u of this.oldParents) this.closeUpstream(u, reason);
    this.oldParents = [];
    if (this.originReader) this.closeUpstream(this.originReader, reason);
    this.originReader = null;
    for (const c of [...this.childMap.values()]) this.closeChild(c, reason, false);
  }

  /**
   * Feeds one object into the peer (a root fed by the integrator, with
   * `rootSource: "external"`). It is delivered in order and forwarded.
   */
  pushFrame(objectId: bigint | number, bytes: Uint8Array): void {
    if (this.state === "closed") return;
    const id = typeof objectId === "bigint" ? objectId : BigInt(objectId);
    this.accept(this.sequencer.offer(id, bytes, { kind: "pushed", message: null }, true));
    this.reconcile();
  }

  // ---------------------------------------------------------------- signal

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
   * negotiation, and an exception escaping there would leave the peer
   * half-updated (e.g. objects taken out of the reorder buffer but never
   * delivered).
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

  private send(msg: ClientMessage): void {
    const s = this.signal;
    if (s && s.readyState === WebSocket.OPEN && (this.registered || msg.type === "Register")) {
      s.send(JSON.stringify(msg));
    }
  }

  private rejectConnect(err: Error): void {
    for (const r of this.connectResolvers) r.reject(err);
    this.connectResolvers = [];
  }

  private openSignal(): void {
    if (this.state === "closed") return;
    const token = this.cfg.token;
    let ws: WebSocket;
    try {
      ws = new WebSocket(signalUrlWithToken(this.cfg.signalUrl, token), bearerProtocols(token));
    } catch (e) {
      this.log(`signal open failed: ${String(e)}`);
      this.signalNotOpened(`new WebSocket failed: ${String(e)}`);
      this.scheduleSignalReconnect();
      return;
    }
    this.signal = ws;
    this.registered = false;
    let opened = false;
    ws.onopen = () => {
      if (this.signal !== ws) return;
      opened = true;
      this.signalFailures = 0;
      this.counters.signalConnects++;
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
      // Every server close code (1001 shutdown, 1008 after rate_limited or
      // expected_register, 1009 too_large, 1013 slow_consumer) and a dropped
      // connection heal the same way: a new session after a backoff. No
      // longer wait after rate_limited: the server's bucket is per
      // connection, so a new session starts with a full burst.
      this.log(`signal closed (${ev.code})`);
      if (!opened) this.signalNotOpened(`the signal socket closed before opening (code ${ev.code})`);
      if (this.state !== "closed") {
        this.state = "connecting";
        this.scheduleSignalReconnect();
      }
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /**
   * Counts a signal socket that never opened. At `connectAttempts` in a row
   * it is reported (once per run of failures); before the first
   * registration connect() then rejects and the peer closes, since nothing
   * tells a refused token (HTTP 401) from a server that is not there.
   */
  private signalNotOpened(why: string): void {
    this.signalFailures++;
    const limit = this.cfg.connectAttempts ?? 3;
    if (this.signalFailures !== limit) return;
    const msg =
      `${this.cfg.signalUrl}: ${limit} signal connections in a row failed to open (last: ${why}); ` +
      "the server refused the WebSocket upgrade (HTTP 401: missing or wrong token) or is unreachable";
    this.log(msg);
    this.emit("onError", "signal_unreachable", msg);
    if (!this.everRegistered) {
      this.rejectConnect(new Error(`signal_unreachable: ${msg}`));
      this.close();
    }
  }

  /** Forgets the signal socket (its onclose is then ignored) and closes it. */
  private dropSignal(code: number, reason: string): void {
    const s = this.signal;
    this.signal = null;
    this.registered = false;
    try {
      s?.close(code, reason);
    } catch {
      /* already closed */
    }
  }

  /**
   * Registers, stating (extension `features`) that this peer applies an
   * AssignParent naming its current parent without reconnecting
   * (`updates`) and, when it reads the origin itself as a root or while
   * unplaced (`rootSource: "origin"`), that it may be promoted (`origin`).
   */
  private sendRegister(): void {
    const msg: ClientMessage = { type: "Register", peer_id: this.peerId, track: this.cfg.track };
    if (this.cfg.capacity !== undefined) msg.capacity = this.cfg.capacity;
    msg.features = (this.cfg.rootSource ?? "origin") === "origin" ? ["origin", "updates"] : ["updates"];
    this.send(msg);
  }

  private scheduleSignalReconnect(): void {
    if (this.state === "closed" || this.signalReconnectTimer) return;
    const delay = this.signalBackoff.next();
    this.log(`signal reconnect in ${delay} ms`);
    this.signalReconnectTimer = setTimeout(() => {
      this.signalReconnectTimer = null;
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
    this.emit("onError", code, reason);
    if (this.registered) return;
    if (FATAL_REGISTER_ERRORS.has(code)) {
      this.rejectConnect(new Error(`${code}: ${reason}`));
      this.close();
    } else if (RETRY_REGISTER_ERRORS.has(code)) {
      // The server may still hold our previous session, or have no room
      // yet: Register again later on a fresh socket (a fresh registration
      // deadline too).
      this.dropSignal(1000, "retry");
      this.state = "connecting";
      this.scheduleSignalReconnect();
    }
  }

  private reportForwarded(): void {
    if (this.counters.forwarded !== this.lastReported && this.registered) {
      this.send({ type: "ForwardReport", forwarded_frames: this.counters.forwarded });
      this.lastReported = this.counters.forwarded;
    }
  }

  // ---------------------------------------------------------------- assignment

  private onAssign(m: AssignParentMessage): void {
    const first = !this.registered;
    this.registered = true;
    this.everRegistered = true;
    this.signalBackoff.reset();
    if (first) this.lastReported = 0; // a new server session starts at 0
    const a: Assignment = {
      peerId: m.peer_id,
      role: m.role,
      parentId: m.parent_id ?? null,
      depth: m.depth,
      iceServers: Array.isArray(m.ice_servers) ? m.ice_servers : [],
      nextObjectId: nextObjectIdOf(m),
      epoch: epochOf(m),
    };
    if (a.epoch !== null) {
      if (this.epoch !== null && a.epoch !== this.epoch) this.restartSequence(a.nextObjectId, a.epoch);
      this.epoch = a.epoch;
    }
    this.assignment = a;
    if (a.nextObjectId !== null) this.sequencer.start(a.nextObjectId);
    this.log(`assigned role=${a.role} parent=${a.parentId} depth=${a.depth} next=${a.nextObjectId}`);

    if (a.parentId !== null) {
      // Our new parent is no longer our child (the tree has no cycles).
      const formerChild = this.childMap.get(a.parentId);
      if (formerChild) this.closeChild(formerChild, "became our parent", true);
    }
    const cur = this.parentLink;
    if (a.parentId === null) {
      if (cur) this.retireParent(cur);
    } else if (!(cur && cur.peerId === a.parentId && !cur.closed)) {
      if (cur) this.retireParent(cur);
      // Back to a parent whose channel is still open: reuse it.
      const again = this.oldParents.find((u) => u.peerId === a.parentId && !u.closed);
      if (again) {
        this.oldParents = this.oldParents.filter((u) => u !== again);
        this.parentLink = again;
      } else {
        this.parentBackoff.reset();
        this.connectParent(a.parentId);
      }
    }
    if (first) {
      for (const r of this.connectResolvers) r.resolve(a);
      this.connectResolvers = [];
    }
    this.emit("onAssign", a);
    this.reconcile();
    if (first) this.reportForwarded();
  }

  /**
   * The ids start again under a new epoch: every link carries the old
   * sequence (a parent or child still on it would be read as holding ids it
   * does not have), so all are closed, and the reorder buffer starts anew.
   */
  private restartSequence(next: bigint | null, epoch: string): void {
    this.log(`epoch ${this.epoch} -> ${epoch}: ids start again at ${next}`);
    this.counters.restarts++;
    this.cancelParentRetry();
    this.closeLinks("new epoch");
    this.sequencer = this.newSequencer(next);
    this.stall.reset();
    this.counters.lastObjectId = null;
    // The server that named the new epoch is up: read its egress at once.
    this.originRetryAt = 0;
    this.originBackoff.reset();
    this.emit("onRestart", next, epoch);
  }

  private onPeerLeft(peerId: string): void {
    this.log(`PeerLeft ${peerId}`);
    const child = this.childMap.get(peerId);
    if (child) this.closeChild(child, "peer left", false);
    if (this.parentLink && this.parentLink.peerId === peerId) {
      // The parent is gone: read the origin until the server names a new one.
      this.closeUpstream(this.parentLink, "peer left");
      this.parentLink = null;
    }
    for (const u of this.oldParents) if (u.peerId === peerId) this.closeUpstream(u, "peer left");
    this.oldParents = this.oldParents.filter((u) => !u.closed);
    this.reconcile();
  }

  /** Keeps the current parent path as an "old" source until the new path delivers. */
  private retireParent(u: Upstream): void {
    this.cancelParentRetry();
    this.parentLink = null;
    if (u.closed) return;
    if (!u.open) {
      this.closeUpstream(u, "re-parented before open");
      return;
    }
    this.oldParents.push(u);
    while (this.oldParents.length > 2) this.closeUpstream(this.oldParents.shift()!, "too many old parents");
  }

  private cancelParentRetry(): void {
    if (this.parentRetryTimer) clearTimeout(this.parentRetryTimer);
    this.parentRetryTimer = null;
  }

  // ---------------------------------------------------------------- negotiation (parent and children)

  /**
   * A new RTCPeerConnection with the ICE servers of the last AssignParent,
   * else the config's, else none. A list the browser refuses (its
   * constructor throws, e.g. a malformed URL) is reported through onError
   * (`rtc_config`), remembered, and the next list is tried. Null when even
   * an empty list is refused.
   */
  private newPeerConnection(): RTCPeerConnection | null {
    const fromAssign = (this.assignment?.iceServers ?? []) as RTCIceServer[];
    const lists = [fromAssign, this.cfg.iceServers ?? [], []].filter((l, i) => i === 2 || l.length > 0);
    for (const iceServers of lists) {
      const key = JSON.stringify(iceServers);
      if (this.refusedIceServers.has(key)) continue;
      try {
        return new RTCPeerConnection({ iceServers });
      } catch (e) {
        // Bounded: a handful of distinct lists come from the server at most.
        if (this.refusedIceServers.size < 16) this.refusedIceServers.add(key);
        // URLs only: the list may carry TURN credentials.
        const msg = `RTCPeerConnection refused iceServers ${JSON.stringify(iceServers.map((x) => x.urls))}: ${String(e)}`;
        this.log(msg);
        this.emit("onError", "rtc_config", msg);
      }
    }
    return null;
  }

  private candidateAllowed(candidate: string): boolean {
    if (candidate === "") return true;
    const f = this.cfg.iceCandidateFilter;
    if (!f) return true;
    try {
      return f(candidate);
    } catch (e) {
      this.log(`iceCandidateFilter threw (candidate dropped): ${String(e)}`);
      return false;
    }
  }

  /** Sends (or holds until our description has gone out) one filtered local candidate. */
  private onLocalCandidate(n: Negotiation, to: string, cand: RTCIceCandidate | null): void {
    if (!cand || !cand.candidate || !this.candidateAllowed(cand.candidate)) return;
    const msg: ClientMessage = {
      type: "IceCandidate",
      from: this.peerId,
      to,
      candidate: cand.candidate,
      sdp_mid: cand.sdpMid,
      sdp_mline_index: cand.sdpMLineIndex,
    };
    if (n.localSent) this.send(msg);
    else pushBounded(n.pendingLocal, msg);
  }

  /** Sends our Offer or Answer, then the local candidates that waited for it. */
  private sendDescription(n: Negotiation, msg: ClientMessage): void {
    this.send(msg);
    n.localSent = true;
    for (const m of n.pendingLocal) this.send(m);
    n.pendingLocal = [];
  }

  /** Sets the remote description, then adds the remote candidates that waited for it. */
  private async setRemote(pc: RTCPeerConnection, n: Negotiation, desc: RTCSessionDescriptionInit): Promise<void> {
    await pc.setRemoteDescription(desc);
    n.remoteSet = true;
    for (const c of n.pendingRemote) await pc.addIceCandidate(c).catch(() => undefined);
    n.pendingRemote = [];
  }

  private addRemoteCandidate(pc: RTCPeerConnection, n: Negotiation, c: RTCIceCandidateInit): void {
    if (n.remoteSet) void pc.addIceCandidate(c).catch(() => undefined);
    else pushBounded(n.pendingRemote, c);
  }

  private onRemoteCandidate(from: string, c: RTCIceCandidateInit): void {
    if (!this.candidateAllowed(c.candidate ?? "")) return;
    const u = this.parentLink;
    if (u && u.peerId === from && u.pc && u.negotiation && !u.closed) {
      // The parent gathers candidates only once it has our Offer: earlier
      // ones belong to a superseded attempt.
      if (u.negotiation.localSent) this.addRemoteCandidate(u.pc, u.negotiation, c);
      return;
    }
    const child = this.childMap.get(from);
    if (child) this.addRemoteCandidate(child.pc, child.negotiation, c);
  }

  // ---------------------------------------------------------------- upstream: parent

  private newUpstream(kind: Upstream["kind"], peerId: string | null): Upstream {
    return { kind, peerId, startedAt: now(), firstId: null, lastId: null, open: false, closed: false, received: 0 };
  }

  private connectParent(parentId: string): void {
    this.cancelParentRetry();
    const u = this.newUpstream("parent", parentId);
    const negotiation = newNegotiation();
    const assembler = new ChunkAssembler(this.cfg.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES);
    u.negotiation = negotiation;
    u.assembler = assembler;
    this.parentLink = u;
    const pc = this.newPeerConnection();
    if (pc === null) {
      this.upstreamFailed(u, "no RTCPeerConnection");
      return;
    }
    u.pc = pc;
    // The subprotocol tells the parent that we read chunked objects.
    const dc = pc.createDataChannel("meshrelay", { ordered: true, protocol: DATACHANNEL_PROTOCOL });
    dc.binaryType = "arraybuffer";
    u.dc = dc;
    pc.onicecandidate = (ev) => {
      if (!u.closed) this.onLocalCandidate(negotiation, parentId, ev.candidate);
    };
    pc.onconnectionstatechange = () => {
      if (u.closed) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this.upstreamFailed(u, `pc ${pc.connectionState}`);
    };
    dc.onopen = () => {
      if (u.closed) return;
      u.open = true;
      this.log(`parent ${parentId} DataChannel open`);
      this.emit("onParentOpen", parentId);
      this.reconcile();
    };
    dc.onclose = () => {
      if (!u.closed) this.upstreamFailed(u, "DataChannel closed");
    };
    dc.onmessage = (ev: MessageEvent) => {
      if (u.closed || !(ev.data instanceof ArrayBuffer)) return;
      const message = new Uint8Array(ev.data);
      let events;
      try {
        events = assembler.push(message);
      } catch (e) {
        this.log(`bad message from parent ${parentId}: ${String(e)}`);
        return;
      }
      for (const e of events) {
        if (e.type === "object") {
          // An object that came whole is exactly `message`; an assembled one is not.
          const whole = e.payload.buffer === message.buffer ? message : null;
          this.onUpstreamObject(u, e.objectId, e.payload, whole);
        } else {
          this.counters.chunksDiscarded++;
          this.log(`discarded partial object ${e.objectId} (${e.reason})`);
          // The run from this parent breaks at the lost object: unless we
          // have it already, the parent no longer covers, and the origin is
          // read from it (even if nothing more comes from the parent).
          u.lastId = e.objectId;
          u.firstId = e.objectId + 1n;
        }
      }
      this.reconcile();
    };
    void (async () => {
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        if (u.closed) return;
        this.sendDescription(negotiation, { type: "Offer", from: this.peerId, to: parentId, sdp: offer.sdp ?? "" });
      } catch (e) {
        this.upstreamFailed(u, `offer failed: ${String(e)}`);
      }
    })();
    this.log(`connecting to parent ${parentId}`);
  }

  /**
   * Applies the parent's Answer to the current attempt. Messages carry no
   * attempt id, so after a retry to the same parent an Answer to an earlier
   * Offer may still arrive: one that comes before our current Offer went out
   * cannot be for it and is dropped; when a second Answer comes for one
   * attempt, the first was stale (each Offer is answered at most once), so
   * an attempt whose DataChannel is not open is started over.
   */
  private async onParentAnswer(from: string, sdp: string): Promise<void> {
    const u = this.parentLink;
    if (!u || u.closed || u.peerId !== from || !u.pc || !u.negotiation) {
      this.log(`unexpected Answer from ${from}`);
      return;
    }
    if (!u.negotiation.localSent) {
      this.log(`Answer from ${from} before our Offer went out: for a superseded attempt, ignored`);
      return;
    }
    if (u.answered) {
      if (u.open) this.log(`second Answer from ${from} on an open link, ignored`);
      else this.upstreamFailed(u, "a second Answer: the one applied was for a superseded Offer");
      return;
    }
    u.answered = true;
    try {
      await this.setRemote(u.pc, u.negotiation, { type: "answer", sdp });
    } catch (e) {
      this.upstreamFailed(u, `answer failed: ${String(e)}`);
    }
  }

  private upstreamFailed(u: Upstream, reason: string): void {
    if (u.closed) return;
    this.log(`${u.kind} ${u.peerId ?? ""} failed: ${reason}`);
    this.closeUpstream(u, reason);
    if (u === this.parentLink) {
      this.parentLink = null;
      // Still our assigned parent: retry it after a backoff; the origin
      // covers meanwhile (reconcile).
      const parentId = u.peerId!;
      this.cancelParentRetry();
      this.parentRetryTimer = setTimeout(() => {
        this.parentRetryTimer = null;
        if (this.state === "closed") return;
        if (this.registered && this.assignment?.parentId === parentId && !this.parentLink) this.connectParent(parentId);
      }, this.parentBackoff.next());
    }
    if (u === this.originReader) {
      this.originReader = null;
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
    closeQuietly(u.dc);
    closeQuietly(u.pc);
    if (u.ws) {
      u.ws.onmessage = null;
      u.ws.onclose = null;
      closeQuietly(u.ws);
    }
    if (u.assembler) {
      for (const e of u.assembler.reset()) if (e.type === "discarded") this.counters.chunksDiscarded++;
    }
  }

  // ---------------------------------------------------------------- upstream: origin

  private openOrigin(): void {
    const from = this.sequencer.next;
    const url = egressUrl(this.originBase, this.cfg.track, from, this.cfg.token);
    const u = this.newUpstream("origin", null);
    this.originReader = u;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, bearerProtocols(this.cfg.token));
    } catch (e) {
      this.originNotOpened(`new WebSocket failed: ${String(e)}`);
      this.upstreamFailed(u, String(e));
      return;
    }
    u.ws = ws;
    ws.binaryType = "arraybuffer";
    // Without the token: logs are the integrator's, and may leave the page.
    this.log(`reading origin ${egressUrl(this.originBase, this.cfg.track, from)}`);
    ws.onopen = () => {
      if (!u.closed) u.open = true;
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (u.closed) return;
      if (typeof ev.data === "string") {
        this.onOriginText(ev.data);
        return;
      }
      const message = new Uint8Array(ev.data as ArrayBuffer);
      let obj;
      try {
        obj = decodeObject(message);
      } catch (e) {
        this.log(`bad origin message: ${String(e)}`);
        return;
      }
      this.originBackoff.reset();
      this.onUpstreamObject(u, obj.objectId, obj.payload, message);
      this.reconcile();
    };
    ws.onclose = (ev: CloseEvent) => {
      // 1013 slow_consumer and 1001 shutdown alike: resume with ?from=<next id>.
      if (u.closed) return;
      if (!u.open) this.originNotOpened(`closed before opening (code ${ev.code})`);
      this.upstreamFailed(u, `origin socket closed (${ev.code})`);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /**
   * Reports an origin egress socket that never opened (HTTP 401 for a
   * wrong token, 503 at the track limit, server gone): the reader is retried
   * with backoff, and each failure goes to onError `origin_unreachable`.
   */
  private originNotOpened(why: string): void {
    const msg = `origin egress ${this.originBase}/ws/${this.cfg.track}: ${why}`;
    this.log(msg);
    this.emit("onError", "origin_unreachable", msg);
  }

  /**
   * The origin no longer keeps the ids below `first`: no source will
   * deliver them (a repair reader is only open when no parent covers them),
   * so they are given up and delivery goes on from `first`.
   */
  private onOriginText(text: string): void {
    const first = parseResumeGap(text);
    if (first === null) {
      this.log(`origin text frame: ${text.slice(0, 200)}`);
      return;
    }
    this.log(`origin ResumeGap first=${first}`);
    this.accept(this.sequencer.skipTo(first));
    this.reconcile();
  }

  // ---------------------------------------------------------------- data path

  private onUpstreamObject(u: Upstream, id: bigint, payload: Uint8Array, message: Uint8Array | null): void {
    u.received++;
    if (u.lastId === null || id !== u.lastId + 1n) u.firstId = id; // a new contiguous run
    u.lastId = id;
    const kind: ObjectSource = u.kind === "parent" ? "parent" : "origin";
    // A parent is not trusted to say where the stream is; the origin is.
    this.accept(this.sequencer.offer(id, payload, { kind, message }, kind === "origin"));
  }

  /** Counts and delivers what one offer or skip to the reorder buffer released. */
  private accept(r: OfferResult<Received>): void {
    if (r.duplicate) this.counters.duplicates++;
    if (r.tooFarAhead) this.counters.tooFarAhead++;
    // In id order: each lost range is reported just before the first object
    // after it, so onLost and onFrame see the sequence as it is.
    let g = 0;
    for (const d of r.delivered) {
      while (g < r.lost.length && r.lost[g]!.from < d.objectId) this.reportLost(r.lost[g++]!);
      // onFrame may have closed the peer: nothing is delivered after close().
      if (this.state === "closed") return;
      this.deliver(d);
    }
    while (g < r.lost.length) this.reportLost(r.lost[g++]!);
  }

  private reportLost(gap: Gap): void {
    const count = Number(gap.to - gap.from);
    this.counters.lost += count;
    this.log(`lost objects [${gap.from}, ${gap.to})`);
    this.emit("onLost", gap.from, count);
  }

  private deliver(d: Delivery<Received>): void {
    const st = this.counters;
    st.delivered++;
    st.bytesReceived += d.payload.byteLength;
    st.lastObjectId = d.objectId;
    const kind = d.source.kind;
    if (kind === "parent") st.fromParent++;
    else if (kind === "pushed") st.pushed++;
    else {
      st.fromOrigin++;
      if (!this.isRootLike()) {
        st.repairedFromOrigin++;
        const o = this.originReader;
        if (o && !o.repairCounted) {
          o.repairCounted = true;
          st.gapsRepaired++;
        }
      }
    }
    this.forward(d.objectId, d.payload, d.source.message);
    this.emit("onFrame", d.objectId, d.payload);
  }

  private isRootLike(): boolean {
    return this.assignment === null || this.assignment.role === "Root";
  }

  /**
   * Sends one object to every open child. The DataChannel messages are built
   * once per object and framing (chunked for children that read chunks,
   * whole for the others, or the message it arrived in reused) and the same
   * buffers go to every child.
   */
  private forward(id: bigint, payload: Uint8Array, received: Uint8Array | null): void {
    if (this.childMap.size === 0) return;
    let chunked: Uint8Array[] | null = null;
    let whole: Uint8Array[] | null = null;
    const t = now();
    // Deleting the current entry while iterating a Map is safe.
    for (const c of this.childMap.values()) {
      if (!childOpen(c)) continue;
      if (this.dropIfSlow(c, t, payload.byteLength)) continue;
      let messages: Uint8Array[];
      if (c.chunks) {
        messages = chunked ??= chunkedMessages(id, payload, received);
      } else {
        // The negotiated limit, never above what Chromium sends at all.
        const limit = Math.min(c.pc.sctp?.maxMessageSize ?? MAX_WHOLE_OBJECT_MESSAGE, MAX_WHOLE_OBJECT_MESSAGE);
        if (!fitsWhole(payload, limit)) {
          this.counters.tooLargeForChild++;
          this.log(`object ${id} (${payload.byteLength} bytes) is too large for child ${c.peerId}, which reads no chunks`);
          continue;
        }
        messages = whole ??= [received ?? encodeObject(id, payload)];
      }
      try {
        for (const m of messages) c.dc.send(m as Uint8Array<ArrayBuffer>);
      } catch (e) {
        this.log(`send to child ${c.peerId} failed: ${String(e)}`);
        this.closeChild(c, "send failed", true);
        continue;
      }
      this.counters.forwarded++;
      this.counters.bytesForwarded += payload.byteLength;
    }
  }

  /**
   * Drops a child whose DataChannel buffer has stayed above slowChildBytes
   * for slowChildMs, or, while above it, would pass maxChildBufferedBytes
   * with `adding` more bytes. True when it was dropped.
   */
  private dropIfSlow(c: Child, t: number, adding: number): boolean {
    const buffered = c.dc!.bufferedAmount;
    if (buffered <= this.slowChildBytes) {
      c.overSince = null;
      return false;
    }
    c.overSince ??= t;
    if (t - c.overSince < this.slowChildMs && buffered + adding <= this.maxChildBufferedBytes) return false;
    this.counters.childrenDropped++;
    this.log(`dropping slow child ${c.peerId} (bufferedAmount ${buffered})`);
    this.cooldown.delete(c.peerId); // re-inserted last: the Map stays in expiry order
    this.cooldown.set(c.peerId, t + (this.cfg.slowChildCooldownMs ?? 30_000));
    if (this.cooldown.size > MAX_COOLDOWN_ENTRIES) this.cooldown.delete(this.cooldown.keys().next().value!);
    this.closeChild(c, `slow consumer: bufferedAmount ${buffered}`, true);
    // Ask for it to be fed by another parent; until then it reads the origin.
    this.send({ type: "DropChild", peer_id: c.peerId });
    return true;
  }

  /**
   * Periodic: children whose DataChannel closed without an event or never
   * opened, slow children while no objects flow, parent connect timeout,
   * grace-period expiry.
   */
  private maintain(): void {
    if (this.state === "closed") return;
    const t = now();
    for (const c of this.childMap.values()) {
      if (c.open) {
        if (childOpen(c)) this.dropIfSlow(c, t, 0);
        else this.closeChild(c, `DataChannel ${c.dc?.readyState ?? "gone"}`, true);
      } else if (t - c.startedAt >= this.childConnectTimeoutMs) {
        this.closeChild(c, `DataChannel not open after ${this.childConnectTimeoutMs} ms`, true);
      }
    }
    for (const [id, until] of this.cooldown) {
      if (until > t) break; // in expiry order
      this.cooldown.delete(id);
    }
    const p = this.parentLink;
    if (p && !p.open && !p.closed && t - p.startedAt >= this.parentConnectTimeoutMs) {
      this.upstreamFailed(p, `DataChannel not open after ${this.parentConnectTimeoutMs} ms`);
    }
    this.reconcile();
  }

  /**
   * Opens or closes the origin reader and old parent links as
   * `planUpstreams` decides from the state of the sources.
   */
  private reconcile(): void {
    if (this.state === "closed" || this.assignment === null) return;
    const a = this.assignment;
    // Only a placed non-root waits on a parent, so only its holes can stall.
    const rootLike = a.role === "Root" || a.parentId === null;
    const hole = rootLike ? null : (this.sequencer.gap()?.from ?? null);
    const t = now();
    const plan = planUpstreams({
      role: a.role,
      parentId: a.parentId,
      rootSource: this.cfg.rootSource ?? "origin",
      pushed: this.counters.pushed,
      next: this.sequencer.next,
      holeStalled: this.stall.observe(hole, t, this.parentGraceMs),
      parent: this.parentLink,
      oldParents: this.oldParents,
      origin: this.originReader,
      registered: this.registered,
      originRetryAt: this.originRetryAt,
      now: t,
      parentGraceMs: this.parentGraceMs,
    });
    if (plan.closeOldParents) this.closeOldParents();
    if (plan.openOrigin) {
      this.openOrigin();
    } else if (plan.closeOrigin && this.originReader !== null) {
      this.closeUpstream(this.originReader, "a parent path covers the stream");
      this.originReader = null;
      this.originBackoff.reset();
    }
  }

  private closeOldParents(): void {
    if (this.oldParents.length === 0) return;
    for (const u of this.oldParents) this.closeUpstream(u, "new path delivers");
    this.oldParents = [];
  }

  // ---------------------------------------------------------------- children

  /**
   * Why an Offer from `from` is not from a child of ours, or null when it may
   * be. The server relays Offers between tree neighbours only, so the one
   * neighbour to refuse is our parent (per the last AssignParent): children
   * offer, parents answer. A Leaf has no room for children at all. A child
   * dropped as slow is refused for `slowChildCooldownMs`.
   */
  private offerRefusal(from: string): string | null {
    const a = this.assignment;
    if (!this.registered || a === null) return "not registered";
    if (from === this.peerId) return "from ourselves";
    if (from === a.parentId) return "from our parent";
    if (a.role === "Leaf") return "we are a leaf";
    const until = this.cooldown.get(from);
    if (until !== undefined) {
      if (now() < until) return "dropped as slow a short while ago";
      this.cooldown.delete(from);
    }
    return null;
  }

  private async onChildOffer(from: string, sdp: string): Promise<void> {
    const refusal = this.offerRefusal(from);
    if (refusal !== null) {
      this.log(`refused Offer from ${from}: ${refusal}`);
      return;
    }
    const old = this.childMap.get(from);
    if (old) this.closeChild(old, "renegotiated", false);
    // A former parent is now our child: the tree has no cycles, so the link
    // we still receive on from it goes (a hole it leaves is repaired).
    const formerParent = this.oldParents.find((u) => u.peerId === from);
    if (formerParent) {
      this.closeUpstream(formerParent, "it is now our child");
      this.oldParents = this.oldParents.filter((u) => u !== formerParent);
      this.reconcile();
    }
    const pc = this.newPeerConnection();
    if (pc === null) {
      this.log(`refused Offer from ${from}: no RTCPeerConnection`);
      return;
    }
    const c: Child = {
      peerId: from,
      pc,
      dc: null,
      open: false,
      chunks: false,
      startedAt: now(),
      overSince: null,
      negotiation: newNegotiation(),
    };
    this.childMap.set(from, c);
    const current = () => this.childMap.get(from) === c;
    pc.onicecandidate = (ev) => {
      if (current()) this.onLocalCandidate(c.negotiation, from, ev.candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this.closeChild(c, `pc ${pc.connectionState}`, true);
    };
    pc.ondatachannel = (ev) => {
      const dc = ev.channel;
      dc.binaryType = "arraybuffer";
      c.dc = dc;
      c.chunks = dc.protocol === DATACHANNEL_PROTOCOL;
      const opened = () => {
        if (!current() || c.open) return;
        c.open = true;
        this.log(`child ${from} DataChannel open`);
        this.emit("onChildOpen", from);
      };
      dc.onopen = opened;
      dc.onclose = () => this.closeChild(c, "DataChannel closed", true);
      if (dc.readyState === "open") opened();
    };
    try {
      await this.setRemote(pc, c.negotiation, { type: "offer", sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (!current()) return;
      this.sendDescription(c.negotiation, { type: "Answer", from: this.peerId, to: from, sdp: answer.sdp ?? "" });
    } catch (e) {
      this.closeChild(c, `answer failed: ${String(e)}`, true);
    }
  }

  private closeChild(c: Child, reason: string, notify: boolean): void {
    if (this.childMap.get(c.peerId) !== c) return;
    this.childMap.delete(c.peerId);
    const wasOpen = c.open;
    c.open = false;
    closeQuietly(c.dc);
    closeQuietly(c.pc);
    this.log(`child ${c.peerId} closed (${reason})`);
    if (wasOpen || notify) this.emit("onChildClose", c.peerId, reason);
  }
}
