/**
 * Which upstream sources a peer needs: the pure decision behind MeshPeer's
 * reconcile(), from the state of its sources, the next id to deliver and
 * the time (passed in). No DOM, no WebRTC, no clock.
 */

/** What the decision needs to know of one source (a parent link or the origin reader). */
export interface SourceView {
  /** Delivering possible (DataChannel or socket open). */
  open: boolean;
  closed: boolean;
  /** First id of the current contiguous run it delivered, or null before any. */
  firstId: bigint | null;
  /** When it was started (same clock as `now`). */
  startedAt: number;
}

/** Everything the decision reads. */
export interface UpstreamState {
  role: "Root" | "Relay" | "Leaf";
  parentId: string | null;
  /** `origin`: a root reads the origin egress; `external`: the integrator pushes. */
  rootSource: "origin" | "external";
  /** Objects the integrator has pushed so far. */
  pushed: number;
  /** The next id to deliver (null before the sequence starts). */
  next: bigint | null;
  /** A hole has waited, with later ids buffered, for the grace period. */
  holeStalled: boolean;
  /** The link to the current parent, if any. */
  parent: SourceView | null;
  /** Links to former parents kept until a new path covers. */
  oldParents: SourceView[];
  /** The origin egress reader, if one is open or opening. */
  origin: SourceView | null;
  /** Registered on the signal socket (so its epoch is known). */
  registered: boolean;
  /** No new origin reader before this time (backoff). */
  originRetryAt: number;
  now: number;
  parentGraceMs: number;
}

/** What to do now; everything false means leave the sources as they are. */
export interface UpstreamPlan {
  openOrigin: boolean;
  closeOrigin: boolean;
  closeOldParents: boolean;
}

/**
 * Whether `u` delivers everything from `next` on, in order: it is open and
 * its current contiguous run started at or before the next id.
 */
export function covers(u: SourceView | null, next: bigint | null): boolean {
  if (u === null || !u.open || u.closed || u.firstId === null) return false;
  return next === null || u.firstId <= next;
}

/**
 * Decides which sources are needed:
 * - a root (or a peer the planner could not place) reads the origin; an old
 *   parent is kept until the origin covers (or, for an external root, until
 *   the integrator has pushed);
 * - a peer whose parent covers needs nothing else: old parents and a repair
 *   reader are closed;
 * - while an old parent covers, the new parent may take its time (and a
 *   repair reader already open is kept);
 * - a new parent that is still connecting gets `parentGraceMs` before the
 *   origin is read; once its DataChannel is open, the origin is read only
 *   when it delivers with a hole (its first id is past the next id);
 * - otherwise (parent gone, link dead, hole) the origin is read from the
 *   next id, and kept until a parent covers: a repair reader is never
 *   closed just because a new parent is coming up;
 * - whatever the sources claim, a hole that has not moved for
 *   `parentGraceMs` is read from the origin: a source that covers on paper
 *   may be open but silent (a stalled old parent);
 * - no new origin reader while unregistered: a server that restarted
 *   meanwhile numbers a new sequence, which only its AssignParent's epoch
 *   can tell; nor before `originRetryAt`.
 */
export function planUpstreams(s: UpstreamState): UpstreamPlan {
  const rootLike = s.role === "Root" || s.parentId === null;
  const parent = s.parent;
  let open: boolean; // start reading the origin if not reading it
  let keep: boolean; // keep reading it if reading it
  let closeOldParents = false;
  if (!rootLike && s.holeStalled) {
    open = keep = true;
  } else if (rootLike) {
    open = keep = s.role !== "Root" || s.rootSource === "origin";
    closeOldParents = open ? covers(s.origin, s.next) : s.pushed > 0;
  } else if (covers(parent, s.next)) {
    open = keep = false;
    closeOldParents = true;
  } else if (s.oldParents.some((u) => covers(u, s.next))) {
    // A repair reader open here was opened for a stalled hole: it stays
    // until the current parent covers.
    open = false;
    keep = true;
  } else if (parent !== null && !parent.closed && parent.firstId === null) {
    open = !parent.open && s.now - parent.startedAt >= s.parentGraceMs;
    keep = true;
  } else {
    open = keep = true;
  }
  const openOrigin = open && s.origin === null && s.registered && s.now >= s.originRetryAt;
  const closeOrigin = !openOrigin && !keep && s.origin !== null;
  return { openOrigin, closeOrigin, closeOldParents };
}

/**
 * How long the reorder buffer has waited at one hole: a hole whose start
 * has not moved while later ids are buffered is stalled once it has waited
 * `graceMs`, whatever source claims to cover it.
 */
export class StallClock {
  private hole: { from: bigint; since: number } | null = null;

  /**
   * Records the current hole (its first missing id, or null when nothing
   * is buffered) at `now`; true when that hole has waited `graceMs`.
   */
  observe(holeFrom: bigint | null, now: number, graceMs: number): boolean {
    if (holeFrom === null) {
      this.hole = null;
      return false;
    }
    if (this.hole === null || this.hole.from !== holeFrom) this.hole = { from: holeFrom, since: now };
    return now - this.hole.since >= graceMs;
  }

  /** Since when the current hole has waited, or null when there is none. */
  since(): number | null {
    return this.hole?.since ?? null;
  }

  /** Forgets the hole (the sequence started again). */
  reset(): void {
    this.hole = null;
  }
}
