/**
 * The core's records of its links, one tagged kind each. Pure data.
 */
import type { ChunkAssembler } from "./framing.js";
import type { LinkId } from "./core-io.js";
import type { Negotiation } from "./negotiation.js";
import type { ClientMessage } from "./signal.js";

/** What a source of objects (a parent link or the origin reader) has delivered. */
interface SourceState {
  id: LinkId;
  startedAt: number;
  /** First id of the current contiguous run this source delivered. */
  firstId: bigint | null;
  lastId: bigint | null;
  /** Delivering possible (DataChannel or socket open). */
  open: boolean;
  closed: boolean;
  received: number;
}

/** A link to a parent (current or former): we offered, it answers and sends. */
export interface ParentLink extends SourceState {
  kind: "parent";
  peerId: string;
  assembler: ChunkAssembler;
  negotiation: Negotiation<ClientMessage>;
  /** An Answer was taken for this attempt. */
  answered: boolean;
}

/** A reader of the origin egress `/ws/{track}`. */
export interface OriginLink extends SourceState {
  kind: "origin";
  /** This reader filled a hole (counted once). */
  repairCounted: boolean;
}

/** A source of objects. */
export type SourceLink = ParentLink | OriginLink;

/** A link to a child: it offered, we answer and send. */
export interface ChildLink {
  kind: "child";
  id: LinkId;
  peerId: string;
  open: boolean;
  /** Its channel names DATACHANNEL_PROTOCOL: it reads chunked objects. */
  chunks: boolean;
  /** The connection's largest message, when the browser said. */
  maxMessageSize: number | null;
  /** When its Offer was taken. */
  startedAt: number;
  /** Its channel's bufferedAmount as last reported, plus what was sent since. */
  buffered: number;
  /** Since when its bufferedAmount has been above slowChildBytes, or null. */
  overSince: number | null;
  negotiation: Negotiation<ClientMessage>;
}

/** Any link of the core. */
export type Link = SourceLink | ChildLink;
