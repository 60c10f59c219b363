/**
 * Signal messages (docs/protocol.md, "Signaling"). Pure types and a parser.
 */

/** A peer's place in the tree: `Root` reads the origin egress, `Leaf` has no room for children. */
export type Role = "Root" | "Relay" | "Leaf";

/** The server's placement of this peer; sent on registration and on every change. */
export interface AssignParentMessage {
  type: "AssignParent";
  peer_id: string;
  role: Role;
  parent_id: string | null;
  depth: number;
  ice_servers?: RTCIceServerLike[];
  /** Extension: next object id the origin will assign on the track. */
  next_object_id?: number | string | null;
  /**
   * Extension: names the track's object-id sequence. A different value than
   * before means the ids started again from 0 (a restarted server, or the
   * track created anew).
   */
  epoch?: string;
}

/** An RTCIceServer as the server sends it (`--mesh-ice-servers`), without the DOM type. */
export interface RTCIceServerLike {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** WebRTC negotiation between tree neighbours; the server relays these unchanged both ways. */
export type NegotiationMessage =
  | { type: "Offer"; from: string; to: string; sdp: string }
  | { type: "Answer"; from: string; to: string; sdp: string }
  | {
      type: "IceCandidate";
      from: string;
      to: string;
      candidate: string;
      sdp_mid?: string | null;
      sdp_mline_index?: number | null;
    };

/** A `/signal` text frame from the server. */
export type ServerMessage =
  | AssignParentMessage
  | { type: "PeerLeft"; peer_id: string }
  | NegotiationMessage
  | { type: "Error"; code: string; reason: string };

/** A `/signal` text frame to the server. */
export type ClientMessage =
  /** `features` (extension): what the client does beyond LVQR's protocol, see docs/protocol.md. */
  | { type: "Register"; peer_id: string; track: string; capacity?: number; features?: string[] }
  | NegotiationMessage
  | { type: "ForwardReport"; forwarded_frames: number }
  | { type: "Heartbeat" }
  | { type: "Leave" }
  /** Extension: this peer stopped feeding its child `peer_id`; the server places it elsewhere. */
  | { type: "DropChild"; peer_id: string };

const SERVER_MESSAGE_TYPES = new Set(["AssignParent", "PeerLeft", "Offer", "Answer", "IceCandidate", "Error"]);

/** Parses a server text frame; null for anything malformed or unknown. */
export function parseServerMessage(text: string): ServerMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const m = v as Record<string, unknown>;
  if (typeof m.type !== "string" || !SERVER_MESSAGE_TYPES.has(m.type)) return null;
  switch (m.type) {
    case "AssignParent":
      if (typeof m.peer_id !== "string" || typeof m.role !== "string") return null;
      if (!(m.parent_id === null || m.parent_id === undefined || typeof m.parent_id === "string")) return null;
      return {
        ...(m as object),
        parent_id: (m.parent_id as string | null | undefined) ?? null,
        depth: typeof m.depth === "number" ? m.depth : 0,
        next_object_id: exactId(m.next_object_id, text, "next_object_id"),
      } as AssignParentMessage;
    case "PeerLeft":
      return typeof m.peer_id === "string" ? (m as ServerMessage) : null;
    case "Offer":
    case "Answer":
      return typeof m.from === "string" && typeof m.sdp === "string" ? (m as ServerMessage) : null;
    case "IceCandidate":
      return typeof m.from === "string" && typeof m.candidate === "string" ? (m as ServerMessage) : null;
    case "Error":
      return { type: "Error", code: String(m.code ?? "unknown"), reason: String(m.reason ?? "") };
  }
  return null;
}

/**
 * A top-level id field as JSON.parse gave it, or, when the number is beyond
 * 2^53 (where JSON.parse rounds), its digits read from the text: the last
 * occurrence, as the server writes the field after the nested ice_servers.
 */
function exactId(parsed: unknown, text: string, field: string): unknown {
  if (typeof parsed !== "number" || Number.isSafeInteger(parsed)) return parsed;
  const found = [...text.matchAll(new RegExp(`"${field}"\\s*:\\s*(\\d+)`, "g"))].at(-1);
  return found ? found[1] : parsed;
}

/** The AssignParent `epoch` extension, or null when absent or empty. */
export function epochOf(m: AssignParentMessage): string | null {
  return typeof m.epoch === "string" && m.epoch !== "" ? m.epoch : null;
}

/** The AssignParent `next_object_id` extension as a bigint, or null. */
export function nextObjectIdOf(m: AssignParentMessage): bigint | null {
  const v = m.next_object_id;
  if (v === undefined || v === null) return null;
  try {
    const id = BigInt(v);
    return id >= 0n ? id : null;
  } catch {
    return null;
  }
}

/** Valid peer id: `[A-Za-z0-9_-]{1,64}`. */
export function isValidPeerId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,64}$/.test(id);
}

/** Valid track: `[A-Za-z0-9._/-]{1,128}`, no `..`, `//`, leading or trailing `/`. */
export function isValidTrack(track: string): boolean {
  return (
    /^[A-Za-z0-9._/-]{1,128}$/.test(track) &&
    !track.includes("..") &&
    !track.includes("//") &&
    !track.startsWith("/") &&
    !track.endsWith("/")
  );
}

/**
 * Derives the origin base URL from the signal URL: same scheme, host and
 * port, the path up to (not including) the last `/signal` segment.
 * `ws://h:1/signal` -> `ws://h:1`; `wss://h/a/signal?x=1` -> `wss://h/a`.
 */
export function deriveOriginUrl(signalUrl: string): string {
  const u = new URL(signalUrl);
  let path = u.pathname.replace(/\/+$/, "");
  if (path.endsWith("/signal")) path = path.slice(0, -"/signal".length);
  return `${u.protocol}//${u.host}${path}`;
}

/** `{origin}/ws/{track}` with optional `?from=`. Track slashes are kept as path separators. */
export function egressUrl(originUrl: string, track: string, from: bigint | null, token?: string): string {
  const base = originUrl.replace(/\/+$/, "");
  const path = track
    .split("/")
    .map((s) => encodeURIComponent(s))
    .join("/");
  const params: string[] = [];
  if (from !== null) params.push(`from=${from.toString()}`);
  if (token !== undefined && !isSubprotocolSafe(token)) params.push(`token=${encodeURIComponent(token)}`);
  return `${base}/ws/${path}${params.length ? "?" + params.join("&") : ""}`;
}

/**
 * The WebSocket subprotocols that carry `token` (`lvqr.bearer.<token>`), or
 * undefined when there is no token or it cannot be a subprotocol (it then
 * travels as `?token=`, see egressUrl and signalUrlWithToken).
 */
export function bearerProtocols(token: string | undefined): string[] | undefined {
  return token !== undefined && isSubprotocolSafe(token) ? [`lvqr.bearer.${token}`] : undefined;
}

/** The signal URL, with `?token=` added when the token cannot travel as a subprotocol. */
export function signalUrlWithToken(signalUrl: string, token: string | undefined): string {
  if (token === undefined || isSubprotocolSafe(token)) return signalUrl;
  return signalUrl + (signalUrl.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

/** Whether `lvqr.bearer.<token>` is a valid WebSocket subprotocol token. */
export function isSubprotocolSafe(token: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token);
}

/** Keeps only ICE candidates whose connection address is 127.0.0.1 (tests). */
export function loopbackOnly(candidate: string): boolean {
  // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
  const parts = candidate.replace(/^a=/, "").split(/\s+/);
  return parts.length > 5 && parts[4] === "127.0.0.1";
}

/**
 * The `first` id of an origin egress `ResumeGap` text frame, or null for any
 * other frame. Read from the text rather than JSON.parse, which rounds ids
 * above 2^53.
 */
export function parseResumeGap(text: string): bigint | null {
  let m: { type?: unknown };
  try {
    m = JSON.parse(text) as typeof m;
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null || m.type !== "ResumeGap") return null;
  const digits = /"first"\s*:\s*"?(\d+)/.exec(text);
  return digits ? BigInt(digits[1]!) : null;
}
