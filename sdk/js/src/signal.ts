/**
 * Signal messages (docs/protocol.md, "Signaling"). Pure types and a parser.
 */

export type Role = "Root" | "Relay" | "Leaf";

export interface AssignParentMessage {
  type: "AssignParent";
  peer_id: string;
  role: Role;
  parent_id: string | null;
  depth: number;
  ice_servers?: RTCIceServerLike[];
  /** Extension: next object id the origin will assign on the track. */
  next_object_id?: number | string | null;
}

export interface RTCIceServerLike {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export type ServerMessage =
  | AssignParentMessage
  | { type: "PeerLeft"; peer_id: string }
  | { type: "Offer"; from: string; to: string; sdp: string }
  | { type: "Answer"; from: string; to: string; sdp: string }
  | {
      type: "IceCandidate";
      from: string;
      to: string;
      candidate: string;
      sdp_mid?: string | null;
      sdp_mline_index?: number | null;
    }
  | { type: "Error"; code: string; reason: string };

export type ClientMessage =
  | { type: "Register"; peer_id: string; track: string; capacity?: number }
  | { type: "Offer"; from: string; to: string; sdp: string }
  | { type: "Answer"; from: string; to: string; sdp: string }
  | {
      type: "IceCandidate";
      from: string;
      to: string;
      candidate: string;
      sdp_mid?: string | null;
      sdp_mline_index?: number | null;
    }
  | { type: "ForwardReport"; forwarded_frames: number }
  | { type: "Heartbeat" }
  | { type: "Leave" };

const KNOWN = new Set(["AssignParent", "PeerLeft", "Offer", "Answer", "IceCandidate", "Error"]);

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
  if (typeof m.type !== "string" || !KNOWN.has(m.type)) return null;
  switch (m.type) {
    case "AssignParent":
      if (typeof m.peer_id !== "string" || typeof m.role !== "string") return null;
      if (!(m.parent_id === null || m.parent_id === undefined || typeof m.parent_id === "string")) return null;
      return {
        ...(m as object),
        parent_id: (m.parent_id as string | null | undefined) ?? null,
        depth: typeof m.depth === "number" ? m.depth : 0,
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

/** Random peer id: `p-` + 16 hex digits. */
export function randomPeerId(random: () => number = Math.random): string {
  let s = "p-";
  for (let i = 0; i < 16; i++) s += Math.floor(random() * 16).toString(16);
  return s;
}
