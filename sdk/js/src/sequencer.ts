/**
 * Reorder buffer and gap detection: turns objects arriving from several
 * sources (parent DataChannels, origin egress), possibly duplicated and out
 * of order, into one stream delivered exactly once, in object id order.
 *
 * Pure: no DOM, no WebRTC, no clock.
 */

/** One object released in order, with the source of the copy that was kept. */
export interface Delivery<S> {
  objectId: bigint;
  payload: Uint8Array;
  source: S;
}

/** What one offer() or skipTo() released and gave up. */
export interface OfferResult<S> {
  /** Objects now deliverable, in order (possibly empty). */
  delivered: Delivery<S>[];
  /** The offered object was already delivered or already buffered. */
  duplicate: boolean;
  /** Id ranges given up on (never delivered), [from, to). */
  lost: Gap[];
  /**
   * The object, offered as untrusted, lies beyond the window
   * (`maxBufferedObjects` ids from the next one) and was refused: a source
   * that covers the ids before it offers it again once the window gets there.
   */
  tooFarAhead: boolean;
}

/** Bounds of the reorder buffer. */
export interface SequencerOptions {
  /**
   * Most objects held while a gap waits to be filled; past it the oldest
   * hole is given up. It is also the window for untrusted offers: their ids
   * must be below next + this, so such a source cannot fill the buffer with
   * ids far ahead and make the sequence jump there.
   */
  maxBufferedObjects?: number;
  /** Most payload bytes held while waiting for a gap to be filled; past it the oldest hole is given up. */
  maxBufferedBytes?: number;
}

/** A range of ids [from, to). */
export interface Gap {
  /** First missing id (inclusive). */
  from: bigint;
  /** End of the range (exclusive): for gap(), the lowest buffered id. */
  to: bigint;
}

/**
 * The reorder buffer. `S` is whatever the caller keeps per object (e.g. its
 * source); the first copy offered of an id is the one delivered.
 */
export class Sequencer<S> {
  private nextId: bigint | null;
  private readonly buffered = new Map<bigint, { payload: Uint8Array; source: S }>();
  /** The ids in `buffered`, as a min-heap: the lowest is found in O(1). */
  private readonly heap = new MinHeap();
  private bufferedBytes = 0;
  private readonly maxObjects: number;
  private readonly window: bigint;
  private readonly maxBytes: number;

  constructor(start: bigint | null = null, options: SequencerOptions = {}) {
    this.nextId = start;
    this.maxObjects = Math.max(1, Math.floor(options.maxBufferedObjects ?? 4096));
    this.window = BigInt(this.maxObjects);
    this.maxBytes = options.maxBufferedBytes ?? 128 * 1024 * 1024;
  }

  /** The next id to deliver, or null before the start is known. */
  get next(): bigint | null {
    return this.nextId;
  }

  /** Whether the first id to deliver is known. */
  get started(): boolean {
    return this.nextId !== null;
  }

  /** Objects held waiting for a hole to be filled. */
  get bufferedCount(): number {
    return this.buffered.size;
  }

  /** Payload bytes held waiting for a hole to be filled. */
  get bufferedByteCount(): number {
    return this.bufferedBytes;
  }

  /** Sets the first id to deliver. Ignored once started. */
  start(id: bigint): void {
    if (this.nextId === null) this.nextId = id;
  }

  /**
   * Offers one object. Starts the sequence at `objectId` if not started.
   * `trusted` (the origin, the integrator) may offer any id; an untrusted
   * offer (a parent) beyond the window is refused.
   */
  offer(objectId: bigint, payload: Uint8Array, source: S, trusted = false): OfferResult<S> {
    const result: OfferResult<S> = { delivered: [], duplicate: false, lost: [], tooFarAhead: false };
    if (this.nextId === null) this.nextId = objectId;
    if (objectId < this.nextId || this.buffered.has(objectId)) {
      result.duplicate = true;
      return result;
    }
    if (!trusted && objectId - this.nextId >= this.window) {
      result.tooFarAhead = true;
      return result;
    }
    if (objectId === this.nextId) {
      result.delivered.push({ objectId, payload, source });
      this.nextId = objectId + 1n;
      this.drain(result.delivered);
      return result;
    }
    this.buffered.set(objectId, { payload, source });
    this.heap.push(objectId);
    this.bufferedBytes += payload.byteLength;
    while (this.buffered.size > this.maxObjects || (this.bufferedBytes > this.maxBytes && this.buffered.size > 0)) {
      // Give up on the oldest hole: jump to the lowest buffered id.
      const lowest = this.lowestBuffered()!;
      this.skipInto(lowest, result);
    }
    return result;
  }

  /**
   * The first hole: ids [from, to) are missing while `to` is buffered.
   * Null when nothing is buffered.
   */
  gap(): Gap | null {
    if (this.nextId === null || this.buffered.size === 0) return null;
    return { from: this.nextId, to: this.lowestBuffered()! };
  }

  /**
   * Gives up on every id below `id` that is not buffered (e.g. the origin
   * answered ResumeGap): buffered objects below `id` are still delivered, in
   * order, and so is everything contiguous from `id`. Returns what that
   * delivers and the ids lost.
   */
  skipTo(id: bigint): OfferResult<S> {
    const result: OfferResult<S> = { delivered: [], duplicate: false, lost: [], tooFarAhead: false };
    if (this.nextId === null) {
      this.nextId = id;
      return result;
    }
    while (this.nextId < id) {
      const lowest = this.lowestBuffered();
      const target = lowest !== null && lowest < id ? lowest : id;
      this.skipInto(target, result);
    }
    return result;
  }

  private skipInto(target: bigint, result: OfferResult<S>): void {
    const next = this.nextId!;
    if (target > next) result.lost.push({ from: next, to: target });
    this.nextId = target;
    this.drain(result.delivered);
  }

  private drain(out: Delivery<S>[]): void {
    for (;;) {
      const id = this.nextId!;
      const entry = this.buffered.get(id);
      if (entry === undefined) return;
      this.buffered.delete(id);
      // Every buffered id is >= nextId (offer() refuses lower ones and
      // skipInto() never jumps past a buffered one), so `id` is the minimum.
      this.heap.pop();
      this.bufferedBytes -= entry.payload.byteLength;
      out.push({ objectId: id, payload: entry.payload, source: entry.source });
      this.nextId = id + 1n;
    }
  }

  private lowestBuffered(): bigint | null {
    return this.heap.peek();
  }
}

/** A binary min-heap of bigints. */
class MinHeap {
  private readonly a: bigint[] = [];

  peek(): bigint | null {
    return this.a.length > 0 ? this.a[0]! : null;
  }

  push(v: bigint): void {
    const a = this.a;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= v) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = v;
  }

  pop(): bigint | null {
    const a = this.a;
    if (a.length === 0) return null;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && a[r]! < a[l]! ? r : l;
      if (a[c]! >= last) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}
