/**
 * MeshPeerCore: the whole protocol logic of a peer, sans IO. No DOM, no
 * WebRTC, no clock: inputs (`handle`, `handleTimeout`) carry the time they
 * happened, outputs (`poll`) say what to open, send and close and what to
 * tell the integrator, and `pollTimeout` says when the core next needs to
 * be woken. The browser shell (`MeshPeer`) and the tests drive it alike.
 */
import { Backoff } from "./backoff.js";
import type { CandidateInit, CoreInput, CoreOutput, LinkId, SocketId } from "./core-io.js";
import {
  ChunkAssembler,
  DATACHANNEL_PROTOCOL,
  MAX_WHOLE_OBJECT_MESSAGE,
  chunkedMessages,
  decodeObject,
  encodeObject,
  fitsWhole,
} from "./framing.js";
import {
  type ChildLink,
  type Link,
  type OriginLink,
  type ParentLink,
  type SourceLink,
} from "./links.js";
import type { PeerOptions } from "./options.js";
import { Negotiation } from "./negotiation.js";
import { OutputQueue } from "./output-queue.js";
import { Sequencer, type Delivery, type Gap, type OfferResult } from "./sequencer.js";
import {
  type AssignParentMessage,
  type ClientMessage,
  type RTCIceServerLike,
  type ServerMessage,
  bearerProtocols,
  egressUrl,
  epochOf,
  nextObjectIdOf,
  parseResumeGap,
  parseServerMessage,
  signalUrlWithToken,
} from "./signal.js";
import { Cooldown } from "./cooldown.js";
import { SignalSession } from "./signal-session.js";
import { resolveSettings, type Settings } from "./settings.js";
import { isSlow } from "./slow-child.js";
import { TimerTable } from "./timers.js";
import { type Assignment, type MeshPeerStats, type ObjectSource, zeroStats } from "./types.js";
import { StallClock, planUpstreams } from "./upstreams.js";

/** What the core needs: the peer's options, its id, and (for tests) the source of backoff jitter. */
export interface CoreConfig extends PeerOptions {
  peerId: string;
  /** Source of r in [0, 1) for backoff jitter. Default Math.random. */
  random?: () => number;
}

/** The core's life: before connect, signal socket coming up, open, closed for good. */
export type CoreState = "idle" | "connecting" | "open" | "closed";

/** Every timer of the core. */
type TimerName =
  | "heartbeat"
  | "forwardReport"
  | "signalReconnect"
  | "parentRetry"
  | "parentConnect"
  | "parentGrace"
  | "holeStall"
  | "originRetry"
  | "childConnect"
  | "slowChild"
  | "childPoll";

/** What the reorder buffer holds per object. */
interface Received {
  kind: ObjectSource;
  /**
   * The unchunked `[id][payload]` message the object arrived in, when it did:
   * forwarded to children as is instead of framing the payload again.
   */
  message: Uint8Array | null;
  /** The origin reader it came from, when it did. */
  origin: OriginLink | null;
}

/** A step of a release from the reorder buffer, run as the outputs are drained. */
type ReleaseStep = { deliver: Delivery<Received> } | { lose: Gap };

/**
 * How often open children are looked at while nothing else happens: the
 * shell reports their bufferedAmount (and a channel closed without an
 * event) at each wake-up.
 */
export const CHILD_POLL_MS = 250;

/** Most children remembered in the slow-child cooldown; past it the oldest is forgotten. */
const MAX_COOLDOWN_ENTRIES = 256;

/** Errors before registration that no retry can fix: connect() rejects and the peer closes. */
const FATAL_REGISTER_ERRORS = new Set(["invalid_peer_id", "invalid_track", "unauthorized"]);
/** Errors before registration that another Register, later, may get past. */
const RETRY_REGISTER_ERRORS = new Set(["duplicate_peer_id", "mesh_full"]);

/**
 * A peer's protocol state machine. Feed every event with `handle` (or
 * `handleTimeout` when `pollTimeout`'s deadline has come), then drain
 * `poll` until it returns null before the next input: outputs are in the
 * order they must be applied, and the core assumes each was applied (or
 * its failure reported as an input) before the next input's `now`.
 */
export class MeshPeerCore {
  /** This peer's id. */
  readonly peerId: string;
  private readonly cfg: Settings;
  private coreState: CoreState = "idle";
  private now = 0;
  private readonly out: OutputQueue<CoreOutput, ReleaseStep>;
  private readonly timers = new TimerTable<TimerName>();

  private readonly session = new SignalSession();
  private readonly signalBackoff: Backoff;
  /** The forwarded count last reported in this server session. */
  private lastReported = 0;

  private current: Assignment | null = null;
  /** The epoch of the id sequence being delivered, once a server named one. */
  private epoch: string | null = null;
  private sequencer: Sequencer<Received>;
  private nextLinkId = 1;
  /** Every link not closed, by id. */
  private readonly links = new Map<LinkId, Link>();
  private parentLink: ParentLink | null = null;
  /** Previous parents kept delivering until the new path covers the stream. */
  private oldParents: ParentLink[] = [];
  private originReader: OriginLink | null = null;
  /** How long the reorder buffer has waited at its current hole (one no source is filling). */
  private readonly stall = new StallClock();
  private originRetryAt = 0;
  private readonly originBackoff: Backoff;
  private readonly parentBackoff: Backoff;
  /** The parent the armed `parentRetry` timer offers to again. */
  private parentRetryPeer: string | null = null;
  private readonly childMap = new Map<string, ChildLink>();
  /** Children dropped as slow: peer id -> until when their Offers are refused. */
  private readonly cooldown = new Cooldown(MAX_COOLDOWN_ENTRIES);
  /** ICE server lists (JSON) that the browser refused. */
  private readonly refusedIceServers = new Set<string>();
  private readonly counters: MeshPeerStats = zeroStats();

  constructor(config: CoreConfig) {
    this.peerId = config.peerId;
    this.cfg = resolveSettings(config);
    const random = config.random;
    this.signalBackoff = new Backoff({ initialMs: this.cfg.reconnectInitialMs, maxMs: this.cfg.reconnectMaxMs, random });
    this.originBackoff = new Backoff({ initialMs: 250, maxMs: 5_000, random });
    this.parentBackoff = new Backoff({ initialMs: 500, maxMs: 8_000, random });
    this.sequencer = this.newSequencer(null);
    this.out = new OutputQueue((step) => this.runStep(step));
  }

  // ---------------------------------------------------------------- driving

  /** Takes one input that happened at `now`. */
  handle(input: CoreInput, now: number): void {
    this.advance(now);
    if (this.coreState === "closed") return;
    this.dispatch(input);
    this.settle();
  }

  /** Runs every timer due at `now` (call when `pollTimeout()`'s deadline has come). */
  handleTimeout(now: number): void {
    this.advance(now);
    if (this.coreState === "closed") return;
    const t = this.timers;
    if (t.due("heartbeat", now)) {
      this.send({ type: "Heartbeat" });
      t.set("heartbeat", now + this.cfg.heartbeatMs);
    }
    if (t.due("forwardReport", now)) {
      this.reportForwarded();
      t.set("forwardReport", now + this.cfg.forwardReportMs);
    }
    if (t.due("signalReconnect", now)) {
      t.clear("signalReconnect");
      this.openSignal();
    }
    if (t.due("parentRetry", now)) {
      t.clear("parentRetry");
      const parentId = this.parentRetryPeer;
      this.parentRetryPeer = null;
      if (this.session.registered && parentId !== null && this.current?.parentId === parentId && !this.parentLink) {
        this.connectParent(parentId);
      }
    }
    this.maintain();
    this.settle();
  }

  /** The next deadline (same clock as `now`), or null when nothing is timed. */
  pollTimeout(): number | null {
    return this.coreState === "closed" ? null : this.timers.next();
  }

  /** The next output, or null when everything so far has been handed out. */
  poll(): CoreOutput | null {
    return this.out.next();
  }

  private advance(now: number): void {
    if (now > this.now) this.now = now;
  }

  /** After every input: the sources the state now needs, and the deadlines it now has. */
  private settle(): void {
    if (this.coreState === "closed") return;
    this.reconcile();
    this.armDeadlines();
  }

  private dispatch(i: CoreInput): void {
    switch (i.type) {
      case "connect":
        return this.connect();
      case "close":
        return this.close();
      case "push":
        return this.pushFrame(i.objectId, i.payload);
      case "signalOpened":
        return this.onSignalOpened(i.socket);
      case "signalClosed":
        return this.onSignalClosed(i.socket, i.code, i.error);
      case "signalMessage":
        return this.onSignalText(i.socket, i.text);
      case "originOpened":
        return this.onOriginOpened(i.link);
      case "originMessage":
        return this.onOriginMessage(i.link, i.data);
      case "originClosed":
        return this.onOriginClosed(i.link, i.code, i.error);
      case "iceServersRefused":
        return this.onIceServersRefused(i.iceServers, i.error);
      case "noPeerConnection":
        return this.onNoPeerConnection(i.link);
      case "linkDescribed":
        return this.onLinkDescribed(i.link, i.sdp);
      case "remoteApplied":
        return this.onRemoteApplied(i.link);
      case "linkFailed":
        return this.onLinkFailed(i.link, i.reason);
      case "channelOpen":
        return this.onChannelOpen(i.link, i.protocol ?? "", i.maxMessageSize ?? null);
      case "channelData":
        return this.onChannelData(i.link, i.data);
      case "localCandidate":
        return this.onLocalCandidate(i.link, i.candidate);
      case "bufferedAmount": {
        const c = this.links.get(i.link);
        if (c?.kind === "child") c.buffered = i.amount;
        return;
      }
    }
  }

  // ---------------------------------------------------------------- views

  /** Where the peer is in its life. */
  get state(): CoreState {
    return this.coreState;
  }

  /** The last AssignParent, or null before the first. */
  get assignment(): Assignment | null {
    return this.current;
  }

  /** Whether the signal socket is open and registered. */
  get connected(): boolean {
    return this.coreState === "open" && this.session.registered;
  }

  /** Registered on the current signal socket (an AssignParent came on it). */
  get isRegistered(): boolean {
    return this.session.registered;
  }

  /** The current signal socket, or null while there is none. */
  get signalSocket(): SocketId | null {
    return this.session.socket;
  }

  /** The link to the assigned parent, or null while there is none. */
  get parentLinkId(): LinkId | null {
    return this.parentLink?.id ?? null;
  }

  /** Open child links: their peer ids and link ids, in the order they offered. */
  openChildren(): { peerId: string; link: LinkId }[] {
    const out: { peerId: string; link: LinkId }[] = [];
    for (const c of this.childMap.values()) if (c.open) out.push({ peerId: c.peerId, link: c.id });
    return out;
  }

  /** Whether the DataChannel to the assigned parent is open now. */
  get parentConnected(): boolean {
    return this.parentLink !== null && this.parentLink.open;
  }

  /** Whether the origin egress is being read (or its socket is opening). */
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

  // ---------------------------------------------------------------- lifecycle

  private connect(): void {
    if (this.coreState !== "idle") return;
    this.coreState = "connecting";
    this.openSignal();
    this.timers.set("heartbeat", this.now + this.cfg.heartbeatMs);
    this.timers.set("forwardReport", this.now + this.cfg.forwardReportMs);
  }

  /**
   * Leaves: a last ForwardReport and Leave, then every socket and link
   * closed. Objects of a batch not yet delivered are not delivered.
   */
  private close(): void {
    if (this.coreState === "closed") return;
    this.reportForwarded();
    this.send({ type: "Leave" });
    this.coreState = "closed";
    this.timers.clearAll();
    this.dropSignal(1000, "leave");
    this.closeLinks("closed");
    this.out.push({ type: "connectRejected", error: "closed" });
  }

  private closeLinks(reason: string): void {
    if (this.parentLink) this.closeUpstream(this.parentLink, reason);
    this.parentLink = null;
    for (const u of this.oldParents) this.closeUpstream(u, reason);
    this.oldParents = [];
    if (this.originReader) this.closeUpstream(this.originReader, reason);
    this.originReader = null;
    for (const c of [...this.childMap.values()]) this.closeChild(c, reason, false);
  }

  private pushFrame(id: bigint, bytes: Uint8Array): void {
    this.accept(this.sequencer.offer(id, bytes, { kind: "pushed", message: null, origin: null }, true));
  }

  private newSequencer(start: bigint | null): Sequencer<Received> {
    return new Sequencer<Received>(start, {
      maxBufferedObjects: this.cfg.maxBufferedObjects,
      maxBufferedBytes: this.cfg.maxBufferedBytes,
    });
  }

  private log(message: string): void {
    this.out.push({ type: "log", message });
  }

  private onError(code: string, reason: string): void {
    this.out.push({ type: "onError", code, reason });
  }

  // ---------------------------------------------------------------- signal

  private send(message: ClientMessage): void {
    const socket = this.session.socket;
    if (socket !== null && this.session.mayCarry(message.type)) this.out.push({ type: "sendSignal", socket, message });
  }

  private openSignal(): void {
    if (this.coreState === "closed") return;
    const socket = this.session.begin();
    const token = this.cfg.token;
    this.out.push({ type: "openSignal", socket, url: signalUrlWithToken(this.cfg.signalUrl, token), protocols: bearerProtocols(token) });
  }

  private onSignalOpened(socket: SocketId): void {
    if (!this.session.opened(socket)) return;
    this.counters.signalConnects++;
    this.coreState = "open";
    this.sendRegister();
  }

  private onSignalClosed(socket: SocketId, code: number, error: string | undefined): void {
    const ended = this.session.end(socket);
    if (ended === null) return;
    if (error !== undefined) {
      this.log(`signal open failed: ${error}`);
      this.signalNotOpened(error);
    } else {
      // Every server close code (1001 shutdown, 1008 after rate_limited or
      // expected_register, 1009 too_large, 1013 slow_consumer) and a dropped
      // connection heal the same way: a new session after a backoff. The
      // server's rate bucket is per connection, so a new session starts
      // with a full burst.
      this.log(`signal closed (${code})`);
      if (!ended.hadOpened) this.signalNotOpened(`the signal socket closed before opening (code ${code})`);
    }
    if (this.coreState !== "closed") {
      this.coreState = "connecting";
      this.scheduleSignalReconnect();
    }
  }

  /**
   * Counts a signal socket that never opened. At `connectAttempts` in a row
   * it is reported (once per run of failures); before the first
   * registration connect() then rejects and the peer closes, since nothing
   * tells a refused token (HTTP 401) from a server that is not there.
   */
  private signalNotOpened(why: string): void {
    const limit = this.cfg.connectAttempts;
    if (!this.session.notOpened(limit)) return;
    const msg =
      `${this.cfg.signalUrl}: ${limit} signal connections in a row failed to open (last: ${why}); ` +
      "the server refused the WebSocket upgrade (HTTP 401: missing or wrong token) or is unreachable";
    this.log(msg);
    this.onError("signal_unreachable", msg);
    if (!this.session.everRegistered) {
      this.out.push({ type: "connectRejected", error: `signal_unreachable: ${msg}` });
      this.close();
    }
  }

  /** Forgets the signal socket (its later events are ignored) and closes it. */
  private dropSignal(code: number, reason: string): void {
    const ended = this.session.end();
    if (ended !== null) this.out.push({ type: "closeSignal", socket: ended.id, code, reason });
  }

  /**
   * Registers, stating (extension `features`) that this peer applies an
   * AssignParent naming its current parent without reconnecting
   * (`updates`) and, when it reads the origin itself as a root or while
   * waiting for a place (`rootSource: "origin"`), that it may be promoted (`origin`).
   */
  private sendRegister(): void {
    const msg: ClientMessage = { type: "Register", peer_id: this.peerId, track: this.cfg.track };
    if (this.cfg.capacity !== undefined) msg.capacity = this.cfg.capacity;
    msg.features = this.cfg.rootSource === "origin" ? ["origin", "updates"] : ["updates"];
    this.send(msg);
  }

  private scheduleSignalReconnect(): void {
    if (this.coreState === "closed" || this.timers.get("signalReconnect") !== null) return;
    const delay = this.signalBackoff.next();
    this.log(`signal reconnect in ${delay} ms`);
    this.timers.set("signalReconnect", this.now + delay);
  }

  private onSignalText(socket: SocketId, text: string): void {
    if (!this.session.isCurrent(socket)) return;
    const m = parseServerMessage(text);
    if (m === null) {
      this.log(`ignored signal frame: ${text.slice(0, 200)}`);
      return;
    }
    this.onSignal(m);
  }

  private onSignal(m: ServerMessage): void {
    switch (m.type) {
      case "AssignParent":
        return this.onAssign(m);
      case "PeerLeft":
        return this.onPeerLeft(m.peer_id);
      case "Offer":
        return this.onChildOffer(m.from, m.sdp);
      case "Answer":
        return this.onParentAnswer(m.from, m.sdp);
      case "IceCandidate":
        return this.onRemoteCandidate(m.from, {
          candidate: m.candidate,
          sdpMid: m.sdp_mid ?? "0",
          sdpMLineIndex: m.sdp_mline_index ?? 0,
        });
      case "Error":
        return this.onSignalError(m.code, m.reason);
    }
  }

  private onSignalError(code: string, reason: string): void {
    this.log(`signal error ${code}: ${reason}`);
    this.onError(code, reason);
    if (this.session.registered) return;
    if (FATAL_REGISTER_ERRORS.has(code)) {
      this.out.push({ type: "connectRejected", error: `${code}: ${reason}` });
      this.close();
    } else if (RETRY_REGISTER_ERRORS.has(code)) {
      // The server may still hold our previous session, or have no room
      // yet: Register again later on a fresh socket (a fresh registration
      // deadline too).
      this.dropSignal(1000, "retry");
      this.coreState = "connecting";
      this.scheduleSignalReconnect();
    }
  }

  private reportForwarded(): void {
    if (this.counters.forwarded !== this.lastReported && this.session.registered) {
      this.send({ type: "ForwardReport", forwarded_frames: this.counters.forwarded });
      this.lastReported = this.counters.forwarded;
    }
  }

  // ---------------------------------------------------------------- assignment

  private onAssign(m: AssignParentMessage): void {
    const first = this.session.assigned();
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
    this.current = a;
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
    if (first) this.out.push({ type: "connectResolved", assignment: a });
    this.out.push({ type: "onAssign", assignment: a });
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
    this.out.push({ type: "onRestart", nextObjectId: next, epoch });
  }

  /**
   * A neighbour left, or (after a re-plan) is no longer our neighbour: the
   * link to it goes, whichever side it is on. Without a parent link the
   * origin is read until a new parent delivers.
   */
  private onPeerLeft(peerId: string): void {
    this.log(`PeerLeft ${peerId}`);
    const child = this.childMap.get(peerId);
    if (child) this.closeChild(child, "peer left", false);
    if (this.parentLink && this.parentLink.peerId === peerId) {
      this.closeUpstream(this.parentLink, "peer left");
      this.parentLink = null;
    }
    for (const u of this.oldParents) if (u.peerId === peerId) this.closeUpstream(u, "peer left");
    this.oldParents = this.oldParents.filter((u) => !u.closed);
  }

  /** Keeps the current parent path as an "old" source until the new path delivers. */
  private retireParent(u: ParentLink): void {
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
    this.timers.clear("parentRetry");
    this.parentRetryPeer = null;
  }

  // ---------------------------------------------------------------- negotiation (parent and children)

  /**
   * The ICE server lists to try, in order: the last AssignParent's, the
   * config's, none; lists the browser refused before are left out.
   */
  private iceServerLists(): RTCIceServerLike[][] {
    const fromAssign = this.current?.iceServers ?? [];
    const lists = [fromAssign, this.cfg.iceServers, []].filter((l, i) => i === 2 || l.length > 0);
    return lists.filter((l) => !this.refusedIceServers.has(JSON.stringify(l)));
  }

  private onIceServersRefused(iceServers: RTCIceServerLike[], error: string): void {
    // Bounded: a handful of distinct lists come from the server at most.
    if (this.refusedIceServers.size < 16) this.refusedIceServers.add(JSON.stringify(iceServers));
    // URLs only: the list may carry TURN credentials.
    const msg = `RTCPeerConnection refused iceServers ${JSON.stringify(iceServers.map((x) => x.urls))}: ${error}`;
    this.log(msg);
    this.onError("rtc_config", msg);
  }

  private onNoPeerConnection(id: LinkId): void {
    const l = this.links.get(id);
    if (l === undefined) return;
    if (l.kind === "child") {
      this.log(`refused Offer from ${l.peerId}: no RTCPeerConnection`);
      this.childMap.delete(l.peerId);
      this.links.delete(id);
      this.out.push({ type: "closeLink", link: id, kind: "child" });
    } else if (l.kind === "parent") {
      this.upstreamFailed(l, "no RTCPeerConnection");
    }
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
  private onLocalCandidate(id: LinkId, cand: CandidateInit | null): void {
    const l = this.links.get(id);
    if (l === undefined || l.kind === "origin") return;
    if (!cand || !cand.candidate || !this.candidateAllowed(cand.candidate)) return;
    const msg: ClientMessage = {
      type: "IceCandidate",
      from: this.peerId,
      to: l.peerId,
      candidate: cand.candidate,
      sdp_mid: cand.sdpMid,
      sdp_mline_index: cand.sdpMLineIndex,
    };
    const now = l.negotiation.local(msg);
    if (now !== null) this.send(now);
  }

  /** Sends our Offer or Answer, then the local candidates that waited for it. */
  private onLinkDescribed(id: LinkId, sdp: string): void {
    const l = this.links.get(id);
    if (l === undefined || l.kind === "origin") return;
    this.send({ type: l.kind === "parent" ? "Offer" : "Answer", from: this.peerId, to: l.peerId, sdp });
    for (const m of l.negotiation.described()) this.send(m);
  }

  /** The remote description is set: the remote candidates that waited for it go in, and a child is answered. */
  private onRemoteApplied(id: LinkId): void {
    const l = this.links.get(id);
    if (l === undefined || l.kind === "origin") return;
    for (const candidate of l.negotiation.remoteApplied()) this.out.push({ type: "addRemoteCandidate", link: id, candidate });
    if (l.kind === "child") this.out.push({ type: "createAnswer", link: id });
  }

  private addRemoteCandidate(l: ParentLink | ChildLink, candidate: CandidateInit): void {
    const now = l.negotiation.remote(candidate);
    if (now !== null) this.out.push({ type: "addRemoteCandidate", link: l.id, candidate: now });
  }

  private onRemoteCandidate(from: string, c: CandidateInit): void {
    if (!this.candidateAllowed(c.candidate)) return;
    const u = this.parentLink;
    if (u && u.peerId === from && !u.closed) {
      // The parent gathers candidates only once it has our Offer: earlier
      // ones belong to a superseded attempt.
      if (u.negotiation.localSent) this.addRemoteCandidate(u, c);
      return;
    }
    const child = this.childMap.get(from);
    if (child) this.addRemoteCandidate(child, c);
  }

  private onLinkFailed(id: LinkId, reason: string): void {
    const l = this.links.get(id);
    if (l === undefined) return;
    if (l.kind === "child") this.closeChild(l, reason, true);
    else this.upstreamFailed(l, reason);
  }

  private onChannelOpen(id: LinkId, protocol: string, maxMessageSize: number | null): void {
    const l = this.links.get(id);
    if (l === undefined || l.open) return;
    if (l.kind === "child") {
      l.open = true;
      l.chunks = protocol === DATACHANNEL_PROTOCOL;
      l.maxMessageSize = maxMessageSize;
      this.log(`child ${l.peerId} DataChannel open`);
      this.out.push({ type: "onChildOpen", childId: l.peerId });
    } else if (l.kind === "parent") {
      l.open = true;
      this.log(`parent ${l.peerId} DataChannel open`);
      this.out.push({ type: "onParentOpen", parentId: l.peerId });
    }
  }

  // ---------------------------------------------------------------- upstream: parent

  private connectParent(parentId: string): void {
    this.cancelParentRetry();
    const u: ParentLink = {
      kind: "parent",
      id: this.nextLinkId++,
      peerId: parentId,
      startedAt: this.now,
      firstId: null,
      lastId: null,
      open: false,
      closed: false,
      received: 0,
      assembler: new ChunkAssembler(this.cfg.maxObjectBytes),
      negotiation: new Negotiation<ClientMessage>(),
      answered: false,
    };
    this.links.set(u.id, u);
    this.parentLink = u;
    this.log(`connecting to parent ${parentId}`);
    // The subprotocol tells the parent that we read chunked objects.
    this.out.push({
      type: "openPeerConnection",
      link: u.id,
      kind: "parent",
      peerId: parentId,
      iceServerLists: this.iceServerLists(),
      protocol: DATACHANNEL_PROTOCOL,
    });
    this.out.push({ type: "createOffer", link: u.id });
  }

  /**
   * Applies the parent's Answer to the current attempt. Messages carry no
   * attempt id, so after a retry to the same parent an Answer to an earlier
   * Offer may still arrive: one that comes before our current Offer went out
   * cannot be for it and is dropped; when a second Answer comes for one
   * attempt, the first was stale (each Offer is answered at most once), so
   * an attempt whose DataChannel is not open is started over.
   */
  private onParentAnswer(from: string, sdp: string): void {
    const u = this.parentLink;
    if (!u || u.closed || u.peerId !== from) {
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
    this.out.push({ type: "applyRemoteDescription", link: u.id, description: { type: "answer", sdp } });
  }

  private onChannelData(id: LinkId, message: Uint8Array): void {
    const u = this.links.get(id);
    if (u === undefined || u.kind !== "parent") return;
    let events;
    try {
      events = u.assembler.push(message);
    } catch (e) {
      this.log(`bad message from parent ${u.peerId}: ${String(e)}`);
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
  }

  private upstreamFailed(u: SourceLink, reason: string): void {
    if (u.closed) return;
    this.log(`${u.kind} ${u.kind === "parent" ? u.peerId : ""} failed: ${reason}`);
    this.closeUpstream(u, reason);
    if (u === this.parentLink) {
      this.parentLink = null;
      // Still our assigned parent: retry it after a backoff; the origin
      // covers meanwhile (reconcile).
      this.cancelParentRetry();
      this.parentRetryPeer = u.peerId;
      this.timers.set("parentRetry", this.now + this.parentBackoff.next());
    }
    if (u === this.originReader) {
      this.originReader = null;
      this.originRetryAt = this.now + (u.received > 0 ? 0 : this.originBackoff.next());
    }
    this.oldParents = this.oldParents.filter((x) => !x.closed);
  }

  private closeUpstream(u: SourceLink, reason: string): void {
    if (u.closed) return;
    u.closed = true;
    u.open = false;
    this.links.delete(u.id);
    this.log(`closing ${u.kind} ${u.kind === "parent" ? u.peerId : ""} (${reason})`);
    this.out.push({ type: "closeLink", link: u.id, kind: u.kind });
    if (u.kind === "parent") {
      for (const e of u.assembler.reset()) if (e.type === "discarded") this.counters.chunksDiscarded++;
    }
  }

  // ---------------------------------------------------------------- upstream: origin

  private openOrigin(): void {
    const from = this.sequencer.next;
    const u: OriginLink = {
      kind: "origin",
      id: this.nextLinkId++,
      startedAt: this.now,
      firstId: null,
      lastId: null,
      open: false,
      closed: false,
      received: 0,
      repairCounted: false,
    };
    this.links.set(u.id, u);
    this.originReader = u;
    // Without the token: logs are the integrator's, and may leave the page.
    this.log(`reading origin ${egressUrl(this.cfg.originBase, this.cfg.track, from)}`);
    this.out.push({
      type: "openOrigin",
      link: u.id,
      url: egressUrl(this.cfg.originBase, this.cfg.track, from, this.cfg.token),
      protocols: bearerProtocols(this.cfg.token),
    });
  }

  private onOriginOpened(id: LinkId): void {
    const u = this.links.get(id);
    if (u?.kind === "origin") u.open = true;
  }

  private onOriginMessage(id: LinkId, data: string | Uint8Array): void {
    const u = this.links.get(id);
    if (u?.kind !== "origin") return;
    if (typeof data === "string") {
      this.onOriginText(data);
      return;
    }
    let obj;
    try {
      obj = decodeObject(data);
    } catch (e) {
      this.log(`bad origin message: ${String(e)}`);
      return;
    }
    this.originBackoff.reset();
    this.onUpstreamObject(u, obj.objectId, obj.payload, data);
  }

  private onOriginClosed(id: LinkId, code: number, error: string | undefined): void {
    const u = this.links.get(id);
    if (u?.kind !== "origin") return;
    // 1013 slow_consumer and 1001 shutdown alike: resume with ?from=<next id>.
    if (error !== undefined) {
      this.originNotOpened(error);
      this.upstreamFailed(u, error);
      return;
    }
    if (!u.open) this.originNotOpened(`closed before opening (code ${code})`);
    this.upstreamFailed(u, `origin socket closed (${code})`);
  }

  /**
   * Reports an origin egress socket that never opened (HTTP 401 for a
   * wrong token, 503 at the track limit, server gone): the reader is retried
   * with backoff, and each failure goes to onError `origin_unreachable`.
   */
  private originNotOpened(why: string): void {
    const msg = `origin egress ${this.cfg.originBase}/ws/${this.cfg.track}: ${why}`;
    this.log(msg);
    this.onError("origin_unreachable", msg);
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
  }

  // ---------------------------------------------------------------- data path

  private onUpstreamObject(u: SourceLink, id: bigint, payload: Uint8Array, message: Uint8Array | null): void {
    u.received++;
    if (u.lastId === null || id !== u.lastId + 1n) u.firstId = id; // a new contiguous run
    u.lastId = id;
    const fromOrigin = u.kind === "origin";
    const source: Received = { kind: fromOrigin ? "origin" : "parent", message, origin: fromOrigin ? u : null };
    // A parent is not trusted to say where the stream is; the origin is.
    this.accept(this.sequencer.offer(id, payload, source, fromOrigin));
  }

  /**
   * Counts what one offer or skip released and queues its delivery, in id
   * order: each lost range just before the first object after it, so onLost
   * and onFrame see the sequence as it is.
   */
  private accept(r: OfferResult<Received>): void {
    if (r.duplicate) this.counters.duplicates++;
    if (r.tooFarAhead) this.counters.tooFarAhead++;
    let g = 0;
    for (const d of r.delivered) {
      while (g < r.lost.length && r.lost[g]!.from < d.objectId) this.out.defer({ lose: r.lost[g++]! });
      this.out.defer({ deliver: d });
    }
    while (g < r.lost.length) this.out.defer({ lose: r.lost[g++]! });
  }

  private runStep(step: ReleaseStep): void {
    if (this.coreState === "closed") return;
    if ("deliver" in step) this.deliver(step.deliver);
    else this.reportLost(step.lose);
  }

  private reportLost(gap: Gap): void {
    const count = Number(gap.to - gap.from);
    this.counters.lost += count;
    this.log(`lost objects [${gap.from}, ${gap.to})`);
    this.out.push({ type: "onLost", firstLost: gap.from, count });
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
        const o = d.source.origin;
        if (o && !o.repairCounted) {
          o.repairCounted = true;
          st.gapsRepaired++;
        }
      }
    }
    this.forward(d.objectId, d.payload, d.source.message);
    this.out.push({ type: "onFrame", objectId: d.objectId, payload: d.payload });
  }

  private isRootLike(): boolean {
    return this.current === null || this.current.role === "Root";
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
    const toChunked: ChildLink[] = [];
    const toWhole: ChildLink[] = [];
    for (const c of [...this.childMap.values()]) {
      if (!c.open) continue;
      if (this.dropIfSlow(c, payload.byteLength)) continue;
      if (c.chunks) {
        chunked ??= chunkedMessages(id, payload, received);
        toChunked.push(c);
      } else {
        // The negotiated limit, never above what Chromium sends at all.
        const limit = Math.min(c.maxMessageSize ?? MAX_WHOLE_OBJECT_MESSAGE, MAX_WHOLE_OBJECT_MESSAGE);
        if (!fitsWhole(payload, limit)) {
          this.counters.tooLargeForChild++;
          this.log(`object ${id} (${payload.byteLength} bytes) is too large for child ${c.peerId}, which reads no chunks`);
          continue;
        }
        whole ??= [received ?? encodeObject(id, payload)];
        toWhole.push(c);
      }
    }
    if (chunked !== null && toChunked.length > 0) this.sendTo(toChunked, chunked, payload.byteLength);
    if (whole !== null && toWhole.length > 0) this.sendTo(toWhole, whole, payload.byteLength);
  }

  private sendTo(children: ChildLink[], messages: Uint8Array[], payloadBytes: number): void {
    let bytes = 0;
    for (const m of messages) bytes += m.byteLength;
    for (const c of children) c.buffered += bytes;
    this.counters.forwarded += children.length;
    this.counters.bytesForwarded += payloadBytes * children.length;
    this.out.push({ type: "send", links: children.map((c) => c.id), messages });
  }

  /**
   * Drops a child that `isSlow` with `adding` more bytes, refuses its
   * Offers for a while and asks the server to move it. True when it was
   * dropped.
   */
  private dropIfSlow(c: ChildLink, adding: number): boolean {
    if (!isSlow(c, adding, this.now, this.cfg)) return false;
    this.counters.childrenDropped++;
    this.log(`dropping slow child ${c.peerId} (bufferedAmount ${c.buffered})`);
    this.cooldown.add(c.peerId, this.now + this.cfg.slowChildCooldownMs);
    this.closeChild(c, `slow consumer: bufferedAmount ${c.buffered}`, true);
    // Ask for it to be fed by another parent; until then it reads the origin.
    this.send({ type: "DropChild", peer_id: c.peerId });
    return true;
  }

  /**
   * On every timeout: children slow while no objects flow, children whose
   * DataChannel never opened, the parent connect timeout, the cooldown.
   */
  private maintain(): void {
    const t = this.now;
    for (const c of [...this.childMap.values()]) {
      if (c.open) this.dropIfSlow(c, 0);
      else if (t - c.startedAt >= this.cfg.childConnectTimeoutMs) {
        this.closeChild(c, `DataChannel not open after ${this.cfg.childConnectTimeoutMs} ms`, true);
      }
    }
    this.cooldown.prune(t);
    const p = this.parentLink;
    if (p && !p.open && !p.closed && t - p.startedAt >= this.cfg.parentConnectTimeoutMs) {
      this.upstreamFailed(p, `DataChannel not open after ${this.cfg.parentConnectTimeoutMs} ms`);
    }
  }

  /**
   * Opens or closes the origin reader and old parent links as
   * `planUpstreams` decides from the state of the sources.
   */
  private reconcile(): void {
    if (this.coreState === "closed" || this.current === null) return;
    const a = this.current;
    // Only a placed non-root waits on a parent, so only its holes can stall.
    const rootLike = a.role === "Root" || a.parentId === null;
    const hole = rootLike ? null : (this.sequencer.gap()?.from ?? null);
    const t = this.now;
    const plan = planUpstreams({
      role: a.role,
      parentId: a.parentId,
      rootSource: this.cfg.rootSource,
      pushed: this.counters.pushed,
      next: this.sequencer.next,
      holeStalled: this.stall.observe(hole, t, this.cfg.parentGraceMs),
      parent: this.parentLink,
      oldParents: this.oldParents,
      origin: this.originReader,
      registered: this.session.registered,
      originRetryAt: this.originRetryAt,
      now: t,
      parentGraceMs: this.cfg.parentGraceMs,
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

  /**
   * Arms the deadlines the state implies: when a connecting parent or child
   * times out, when a grace period or a stalled hole ends, when the origin
   * may be read again, when a slow child is due to be dropped, and the poll
   * of open children. Only deadlines still ahead are armed.
   */
  private armDeadlines(): void {
    const t = this.timers;
    const ahead = (name: TimerName, at: number | null): void => {
      if (at !== null && at > this.now) t.set(name, at);
      else t.clear(name);
    };
    const p = this.parentLink;
    const connecting = p !== null && !p.open && !p.closed;
    ahead("parentConnect", connecting ? p.startedAt + this.cfg.parentConnectTimeoutMs : null);
    ahead("parentGrace", connecting && p.firstId === null ? p.startedAt + this.cfg.parentGraceMs : null);
    const since = this.stall.since();
    ahead("holeStall", since === null ? null : since + this.cfg.parentGraceMs);
    ahead("originRetry", this.originReader === null ? this.originRetryAt : null);
    let childConnect: number | null = null;
    let slow: number | null = null;
    let anyOpen = false;
    for (const c of this.childMap.values()) {
      if (!c.open) {
        const at = c.startedAt + this.cfg.childConnectTimeoutMs;
        if (childConnect === null || at < childConnect) childConnect = at;
      } else {
        anyOpen = true;
        if (c.overSince !== null) {
          const at = c.overSince + this.cfg.slowChildMs;
          if (slow === null || at < slow) slow = at;
        }
      }
    }
    ahead("childConnect", childConnect);
    ahead("slowChild", slow);
    if (!anyOpen) t.clear("childPoll");
    else if ((t.get("childPoll") ?? 0) <= this.now) t.set("childPoll", this.now + CHILD_POLL_MS);
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
    const a = this.current;
    if (!this.session.registered || a === null) return "not registered";
    if (from === this.peerId) return "from ourselves";
    if (from === a.parentId) return "from our parent";
    if (a.role === "Leaf") return "we are a leaf";
    if (this.cooldown.blocks(from, this.now)) return "dropped as slow a short while ago";
    return null;
  }

  private onChildOffer(from: string, sdp: string): void {
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
    const c: ChildLink = {
      kind: "child",
      id: this.nextLinkId++,
      peerId: from,
      open: false,
      chunks: false,
      maxMessageSize: null,
      startedAt: this.now,
      buffered: 0,
      overSince: null,
      negotiation: new Negotiation<ClientMessage>(),
    };
    this.childMap.set(from, c);
    this.links.set(c.id, c);
    this.out.push({
      type: "openPeerConnection",
      link: c.id,
      kind: "child",
      peerId: from,
      iceServerLists: this.iceServerLists(),
      protocol: DATACHANNEL_PROTOCOL,
    });
    this.out.push({ type: "applyRemoteDescription", link: c.id, description: { type: "offer", sdp } });
  }

  private closeChild(c: ChildLink, reason: string, notify: boolean): void {
    if (this.childMap.get(c.peerId) !== c) return;
    this.childMap.delete(c.peerId);
    this.links.delete(c.id);
    const wasOpen = c.open;
    c.open = false;
    this.out.push({ type: "closeLink", link: c.id, kind: "child" });
    this.log(`child ${c.peerId} closed (${reason})`);
    if (wasOpen || notify) this.out.push({ type: "onChildClose", childId: c.peerId, reason });
  }
}
