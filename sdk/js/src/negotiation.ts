/**
 * The ICE candidates of one connection that must wait, bounded. Pure.
 */
import type { CandidateInit } from "./core-io.js";

/**
 * Most candidates held per connection while waiting. A description takes a
 * handful; past this the peer is misbehaving and the rest are dropped.
 */
export const MAX_PENDING_CANDIDATES = 64;

/**
 * One connection's candidate holding: remote candidates wait until the
 * remote description is set, local ones (`L`, the messages carrying them)
 * until our Offer or Answer has gone out, since the peer cannot use them
 * before it. At most `MAX_PENDING_CANDIDATES` of each are held.
 */
export class Negotiation<L> {
  private sent = false;
  private remoteSet = false;
  private heldLocal: L[] = [];
  private heldRemote: CandidateInit[] = [];

  /** Our Offer or Answer has gone out. */
  get localSent(): boolean {
    return this.sent;
  }

  /** A local candidate: returned to send now, or held (null). */
  local(candidate: L): L | null {
    if (this.sent) return candidate;
    if (this.heldLocal.length < MAX_PENDING_CANDIDATES) this.heldLocal.push(candidate);
    return null;
  }

  /** Our description went out: the local candidates held for it, to send after it. */
  described(): L[] {
    this.sent = true;
    const held = this.heldLocal;
    this.heldLocal = [];
    return held;
  }

  /** A remote candidate: returned to add now, or held (null). */
  remote(candidate: CandidateInit): CandidateInit | null {
    if (this.remoteSet) return candidate;
    if (this.heldRemote.length < MAX_PENDING_CANDIDATES) this.heldRemote.push(candidate);
    return null;
  }

  /** The remote description is set: the remote candidates held for it, to add now. */
  remoteApplied(): CandidateInit[] {
    this.remoteSet = true;
    const held = this.heldRemote;
    this.heldRemote = [];
    return held;
  }
}
