/**
 * The public data types a peer reports (assignment, counters), shared by
 * the protocol core and the browser shell.
 */
import type { RTCIceServerLike, Role } from "./signal.js";

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

/** Counters all at zero, as a new peer starts. */
export function zeroStats(): MeshPeerStats {
  return {
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
}
