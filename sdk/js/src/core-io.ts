/**
 * What goes into and comes out of `MeshPeerCore`: plain data, no DOM types.
 * The shell turns browser events into inputs and applies the outputs.
 */
import type { ClientMessage, RTCIceServerLike } from "./signal.js";
import type { Assignment } from "./types.js";

/** Names one link of the core (a parent link, a child link or an origin reader); never reused. */
export type LinkId = number;

/** Names one signal socket of the core; never reused. */
export type SocketId = number;

/** The kinds of link: a parent link (we offer), a child link (we answer), an origin egress reader. */
export type LinkKind = "parent" | "child" | "origin";

/** An ICE candidate as signalled (RTCIceCandidateInit without the DOM type). */
export interface CandidateInit {
  candidate: string;
  sdpMid: string | null;
  sdpMLineIndex: number | null;
}

/** An event of the outside world, as the core sees it (handed in with the time it happened). */
export type CoreInput =
  /** Start: the first signal socket is opened. */
  | { type: "connect" }
  | { type: "signalOpened"; socket: SocketId }
  /**
   * The signal socket closed (`code`), or could not be created at all
   * (`error` says why; code is then 0).
   */
  | { type: "signalClosed"; socket: SocketId; code: number; error?: string }
  | { type: "signalMessage"; socket: SocketId; text: string }
  | { type: "originOpened"; link: LinkId }
  | { type: "originMessage"; link: LinkId; data: string | Uint8Array }
  /** The origin socket closed (`code`), or could not be created (`error`; code 0). */
  | { type: "originClosed"; link: LinkId; code: number; error?: string }
  /** The browser refused `iceServers` for this link's RTCPeerConnection (its constructor threw). */
  | { type: "iceServersRefused"; link: LinkId; iceServers: RTCIceServerLike[]; error: string }
  /** Every ICE server list was refused: the link has no RTCPeerConnection. */
  | { type: "noPeerConnection"; link: LinkId }
  /** Our Offer or Answer for this link was created and set as the local description. */
  | { type: "linkDescribed"; link: LinkId; sdp: string }
  /** The remote description the core asked for was applied. */
  | { type: "remoteApplied"; link: LinkId }
  /** The link failed: a negotiation step threw, the connection failed or closed, the channel closed or a send threw. */
  | { type: "linkFailed"; link: LinkId; reason: string }
  /**
   * The link's DataChannel is open. For a child link: the subprotocol its
   * channel names and the connection's largest message (null when unknown).
   */
  | { type: "channelOpen"; link: LinkId; protocol?: string; maxMessageSize?: number | null }
  | { type: "channelData"; link: LinkId; data: Uint8Array }
  /** A local ICE candidate gathered (null at the end of gathering). */
  | { type: "localCandidate"; link: LinkId; candidate: CandidateInit | null }
  /** A child channel's bufferedAmount now. */
  | { type: "bufferedAmount"; link: LinkId; amount: number }
  /** An object the integrator feeds (rootSource external). */
  | { type: "push"; objectId: bigint; payload: Uint8Array }
  | { type: "close" };

/** Something the core asks the shell to do, or tells the integrator. */
export type CoreOutput =
  | { type: "openSignal"; socket: SocketId; url: string; protocols: string[] | undefined }
  | { type: "sendSignal"; socket: SocketId; message: ClientMessage }
  | { type: "closeSignal"; socket: SocketId; code: number; reason: string }
  | { type: "openOrigin"; link: LinkId; url: string; protocols: string[] | undefined }
  /**
   * Create the RTCPeerConnection of a link with the first of `iceServerLists`
   * the browser takes (report each refusal, or that none was taken). A
   * parent link also creates its ordered DataChannel naming `protocol`.
   */
  | {
      type: "openPeerConnection";
      link: LinkId;
      kind: "parent" | "child";
      peerId: string;
      iceServerLists: RTCIceServerLike[][];
      protocol: string;
    }
  /** Create an Offer, set it as the local description, report `linkDescribed`. */
  | { type: "createOffer"; link: LinkId }
  /** Create an Answer, set it as the local description, report `linkDescribed`. */
  | { type: "createAnswer"; link: LinkId }
  /** Set the remote description, report `remoteApplied` (or `linkFailed`). */
  | { type: "applyRemoteDescription"; link: LinkId; description: { type: "offer" | "answer"; sdp: string } }
  /** Add a remote ICE candidate; a failure is of no consequence. */
  | { type: "addRemoteCandidate"; link: LinkId; candidate: CandidateInit }
  /** Send these messages, in order, on each of these links' DataChannels. */
  | { type: "send"; links: LinkId[]; messages: Uint8Array[] }
  /** Close a link of any kind; its later events are ignored by the core. */
  | { type: "closeLink"; link: LinkId; kind: LinkKind }
  /** connect() resolves (the first AssignParent of a session). */
  | { type: "connectResolved"; assignment: Assignment }
  /** connect() rejects. */
  | { type: "connectRejected"; error: string }
  | { type: "log"; message: string }
  | { type: "onFrame"; objectId: bigint; payload: Uint8Array }
  | { type: "onChildOpen"; childId: string }
  | { type: "onChildClose"; childId: string; reason: string }
  | { type: "onAssign"; assignment: Assignment }
  | { type: "onParentOpen"; parentId: string }
  | { type: "onError"; code: string; reason: string }
  | { type: "onLost"; firstLost: bigint; count: number }
  | { type: "onRestart"; nextObjectId: bigint | null; epoch: string };

/** The integrator's notifications among the outputs. */
export type CoreEvent = Extract<CoreOutput, { type: `on${string}` }>;
