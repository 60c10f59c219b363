/**
 * A peer's protocol settings (every option but the integrator's callbacks),
 * shared by the protocol core and the browser shell.
 */
import type { RTCIceServerLike } from "./signal.js";

/** A peer's protocol settings; every one but `signalUrl` and `track` has a default. */
export interface PeerOptions {
  /** `ws(s)://host:port/signal`. */
  signalUrl: string;
  /** Track to join, e.g. `live/test`. */
  track: string;
  /** Generated when absent. `[A-Za-z0-9_-]{1,64}`. */
  peerId?: string;
  /** Used when AssignParent carries no ice_servers (or an empty list). */
  iceServers?: RTCIceServerLike[];
  /** Children this peer offers to feed (sent on Register). */
  capacity?: number;
  /** Bearer token: sent as subprotocol `lvqr.bearer.<token>` (or `?token=`). */
  token?: string;
  /** Base for `/ws/{track}`; derived from signalUrl by default. */
  originUrl?: string;
  /** Keeps a local or remote ICE candidate when it returns true (its `candidate:` line). */
  iceCandidateFilter?: (candidate: string) => boolean;
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
