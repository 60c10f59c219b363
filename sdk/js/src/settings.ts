/**
 * A core's settings with every default applied, in one place: the values
 * documented on `PeerOptions`.
 */
import { DEFAULT_MAX_OBJECT_BYTES } from "./framing.js";
import type { PeerOptions } from "./options.js";
import { type RTCIceServerLike, deriveOriginUrl } from "./signal.js";

/** Every setting a core reads, resolved. */
export interface Settings {
  signalUrl: string;
  /** Base of `/ws/{track}`. */
  originBase: string;
  track: string;
  token: string | undefined;
  capacity: number | undefined;
  iceServers: RTCIceServerLike[];
  iceCandidateFilter: ((candidate: string) => boolean) | undefined;
  rootSource: "origin" | "external";
  heartbeatMs: number;
  forwardReportMs: number;
  parentGraceMs: number;
  parentConnectTimeoutMs: number;
  childConnectTimeoutMs: number;
  slowChildBytes: number;
  slowChildMs: number;
  slowChildCooldownMs: number;
  maxChildBufferedBytes: number;
  connectAttempts: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  maxBufferedObjects: number | undefined;
  maxBufferedBytes: number | undefined;
  maxObjectBytes: number;
}

/** `options` with the defaults of `PeerOptions` filled in. */
export function resolveSettings(o: PeerOptions): Settings {
  const parentConnectTimeoutMs = o.parentConnectTimeoutMs ?? 15_000;
  return {
    signalUrl: o.signalUrl,
    originBase: o.originUrl ?? deriveOriginUrl(o.signalUrl),
    track: o.track,
    token: o.token,
    capacity: o.capacity,
    iceServers: o.iceServers ?? [],
    iceCandidateFilter: o.iceCandidateFilter,
    rootSource: o.rootSource ?? "origin",
    heartbeatMs: o.heartbeatIntervalMs ?? Math.max(250, Math.floor((o.peerTimeoutMs ?? 10_000) / 3)),
    forwardReportMs: o.forwardReportIntervalMs ?? 1_000,
    parentGraceMs: o.parentGraceMs ?? 1_500,
    parentConnectTimeoutMs,
    childConnectTimeoutMs: o.childConnectTimeoutMs ?? parentConnectTimeoutMs,
    slowChildBytes: o.slowChildBytes ?? 4 * 1024 * 1024,
    slowChildMs: o.slowChildMs ?? 3_000,
    slowChildCooldownMs: o.slowChildCooldownMs ?? 30_000,
    maxChildBufferedBytes: o.maxChildBufferedBytes ?? 12 * 1024 * 1024,
    connectAttempts: o.connectAttempts ?? 3,
    reconnectInitialMs: o.reconnectInitialMs ?? 500,
    reconnectMaxMs: o.reconnectMaxMs ?? 15_000,
    maxBufferedObjects: o.maxBufferedObjects,
    maxBufferedBytes: o.maxBufferedBytes,
    maxObjectBytes: o.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES,
  };
}
