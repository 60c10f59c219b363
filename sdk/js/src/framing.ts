/**
 * Object framing and DataChannel chunking (docs/protocol.md, "Object framing").
 *
 * Pure: no DOM, no WebRTC. Every function works on Uint8Array.
 *
 *   object message: [u64 BE object_id][payload]
 *   chunk message:  [u64 BE object_id | 2^63][u32 BE total length][u32 BE offset][bytes]
 */

/** Largest DataChannel message we ever send (64 KiB). */
export const MAX_DATACHANNEL_MESSAGE = 65_536;
/** Size of the object header: the big-endian object id. */
export const OBJECT_HEADER_BYTES = 8;
/** Size of a chunk header: id with the high bit set, total length, offset. */
export const CHUNK_HEADER_BYTES = 16;
/** Largest chunk body in one DataChannel message: 65,536 - 16. */
export const MAX_CHUNK_BYTES = MAX_DATACHANNEL_MESSAGE - CHUNK_HEADER_BYTES;
/** Largest payload that travels unchunked: 65,536 - 8. */
export const MAX_UNCHUNKED_PAYLOAD = MAX_DATACHANNEL_MESSAGE - OBJECT_HEADER_BYTES;
/** High bit of the id field marks a chunk. Object ids never reach 2^63. */
export const CHUNK_FLAG = 1n << 63n;
/** Object ids must stay below 2^63. */
export const MAX_OBJECT_ID = CHUNK_FLAG - 1n;
/**
 * Largest object a ChunkAssembler assembles by default: 4 MiB, the server's
 * default `--max-object-bytes`. The buffer is allocated from the sender's
 * chunk header, so the bound is what a parent can make us allocate.
 */
export const DEFAULT_MAX_OBJECT_BYTES = 4 * 1024 * 1024;

/** A message or object that cannot be framed or parsed. */
export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FramingError";
  }
}

function toBigId(objectId: bigint | number): bigint {
  const id = typeof objectId === "bigint" ? objectId : BigInt(objectId);
  if (id < 0n || id > MAX_OBJECT_ID) {
    throw new FramingError(`object id out of range: ${id}`);
  }
  return id;
}

/**
 * The DataChannel subprotocol a meshrelay child opens its parent link with:
 * it reads meshrelay's framing (objects chunked above 64 KiB). A parent
 * sends a child whose channel names another (an LVQR client names none)
 * one whole object per message, as LVQR does.
 */
export const DATACHANNEL_PROTOCOL = "meshrelay/1";

/**
 * The largest DataChannel message Chromium (and str0m) accept: a whole
 * object for a child that reads no chunks must fit in it.
 */
export const MAX_WHOLE_OBJECT_MESSAGE = 262_144;

/**
 * The messages that carry one object to a child that reads chunks: the
 * message it arrived in (`received`) when that fits one DataChannel
 * message, else the object framed anew (chunked above 64 KiB).
 */
export function chunkedMessages(objectId: bigint, payload: Uint8Array, received: Uint8Array | null): Uint8Array[] {
  return received !== null && received.byteLength <= MAX_DATACHANNEL_MESSAGE
    ? [received]
    : frameForDataChannel(objectId, payload);
}

/**
 * Whether an object can go whole, as one message of at most
 * `maxMessageBytes`, to a child that reads no chunks; if not, such a child
 * cannot be sent it.
 */
export function fitsWhole(payload: Uint8Array, maxMessageBytes: number): boolean {
  return OBJECT_HEADER_BYTES + payload.byteLength <= maxMessageBytes;
}

/** `[u64 BE object_id][payload]`, one message, whatever the size (origin egress style). */
export function encodeObject(objectId: bigint | number, payload: Uint8Array): Uint8Array {
  const id = toBigId(objectId);
  const out = new Uint8Array(OBJECT_HEADER_BYTES + payload.byteLength);
  new DataView(out.buffer).setBigUint64(0, id, false);
  out.set(payload, OBJECT_HEADER_BYTES);
  return out;
}

/** An object message taken apart; `payload` is a view into the message. */
export interface DecodedObject {
  objectId: bigint;
  payload: Uint8Array;
}

/** Parses an unchunked object message. The payload is a view into `message`. */
export function decodeObject(message: Uint8Array): DecodedObject {
  if (message.byteLength < OBJECT_HEADER_BYTES) {
    throw new FramingError(`object message too short: ${message.byteLength} bytes`);
  }
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const raw = view.getBigUint64(0, false);
  if ((raw & CHUNK_FLAG) !== 0n) {
    throw new FramingError("chunk message where an object message was expected");
  }
  return { objectId: raw, payload: message.subarray(OBJECT_HEADER_BYTES) };
}

/**
 * Frames one object for a DataChannel: a single message when `8 + payload`
 * fits in `maxMessage` bytes, else a run of chunk messages in offset order.
 */
export function frameForDataChannel(
  objectId: bigint | number,
  payload: Uint8Array,
  maxMessage: number = MAX_DATACHANNEL_MESSAGE,
): Uint8Array[] {
  const id = toBigId(objectId);
  if (maxMessage <= CHUNK_HEADER_BYTES) {
    throw new FramingError(`maxMessage too small: ${maxMessage}`);
  }
  if (OBJECT_HEADER_BYTES + payload.byteLength <= maxMessage) {
    return [encodeObject(id, payload)];
  }
  if (payload.byteLength > 0xffff_ffff) {
    throw new FramingError(`object too large to chunk: ${payload.byteLength} bytes`);
  }
  const body = maxMessage - CHUNK_HEADER_BYTES;
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < payload.byteLength; offset += body) {
    const len = Math.min(body, payload.byteLength - offset);
    const msg = new Uint8Array(CHUNK_HEADER_BYTES + len);
    const view = new DataView(msg.buffer);
    view.setBigUint64(0, id | CHUNK_FLAG, false);
    view.setUint32(8, payload.byteLength, false);
    view.setUint32(12, offset, false);
    msg.set(payload.subarray(offset, offset + len), CHUNK_HEADER_BYTES);
    out.push(msg);
  }
  return out;
}

/** One DataChannel message: a whole object or one chunk of a larger one. */
export type DataChannelMessage =
  | { kind: "object"; objectId: bigint; payload: Uint8Array }
  | { kind: "chunk"; objectId: bigint; total: number; offset: number; bytes: Uint8Array };

/** Parses one DataChannel message (object or chunk). Views into `message`. */
export function parseDataChannelMessage(message: Uint8Array): DataChannelMessage {
  if (message.byteLength < OBJECT_HEADER_BYTES) {
    throw new FramingError(`message too short: ${message.byteLength} bytes`);
  }
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const raw = view.getBigUint64(0, false);
  if ((raw & CHUNK_FLAG) === 0n) {
    return { kind: "object", objectId: raw, payload: message.subarray(OBJECT_HEADER_BYTES) };
  }
  if (message.byteLength < CHUNK_HEADER_BYTES) {
    throw new FramingError(`chunk message too short: ${message.byteLength} bytes`);
  }
  return {
    kind: "chunk",
    objectId: raw & ~CHUNK_FLAG,
    total: view.getUint32(8, false),
    offset: view.getUint32(12, false),
    bytes: message.subarray(CHUNK_HEADER_BYTES),
  };
}

/** What a ChunkAssembler reports: a complete object, or a partial one it gave up. */
export type AssemblyEvent =
  | { type: "object"; objectId: bigint; payload: Uint8Array }
  | { type: "discarded"; objectId: bigint; received: number; total: number; reason: string };

/**
 * Reassembles chunked objects from one ordered DataChannel.
 *
 * `push` returns the events one message causes, in order: possibly the
 * discard of a partial object (offset mismatch, different object id, an
 * unchunked object arriving mid-assembly, oversize), then possibly a
 * complete object.
 */
export class ChunkAssembler {
  private current: { objectId: bigint; total: number; buf: Uint8Array; received: number } | null =
    null;

  /**
   * `maxObjectBytes`: chunked objects whose total length is above it are
   * discarded before any allocation. A partial object holds at most twice
   * the bytes received so far (and never more than its total).
   */
  constructor(private readonly maxObjectBytes: number = DEFAULT_MAX_OBJECT_BYTES) {}

  /** True while a partial object is being assembled. */
  get assembling(): boolean {
    return this.current !== null;
  }

  /** Bytes allocated for the partial object: at most twice what it has received. */
  get allocatedBytes(): number {
    return this.current?.buf.byteLength ?? 0;
  }

  /** Takes the next message of the channel; throws FramingError for one too short to parse. */
  push(message: Uint8Array): AssemblyEvent[] {
    const events: AssemblyEvent[] = [];
    const msg = parseDataChannelMessage(message);
    if (msg.kind === "object") {
      this.discard(events, "unchunked object interrupted a chunked one");
      events.push({ type: "object", objectId: msg.objectId, payload: msg.payload });
      return events;
    }
    const cur = this.current;
    if (cur !== null && (cur.objectId !== msg.objectId || cur.received !== msg.offset || cur.total !== msg.total)) {
      this.discard(
        events,
        cur.objectId !== msg.objectId ? "chunk of another object" : "chunk offset or length mismatch",
      );
    }
    if (this.current === null) {
      if (msg.offset !== 0) {
        // A run that did not start at offset 0: nothing to append to.
        events.push({
          type: "discarded",
          objectId: msg.objectId,
          received: 0,
          total: msg.total,
          reason: "chunk run did not start at offset 0",
        });
        return events;
      }
      if (msg.total > this.maxObjectBytes) {
        events.push({
          type: "discarded",
          objectId: msg.objectId,
          received: 0,
          total: msg.total,
          reason: `object larger than ${this.maxObjectBytes} bytes`,
        });
        return events;
      }
      // The buffer grows with what arrives: a header alone claiming a large
      // total costs no more than its own bytes.
      this.current = { objectId: msg.objectId, total: msg.total, buf: new Uint8Array(0), received: 0 };
    }
    const c = this.current!;
    const end = c.received + msg.bytes.byteLength;
    if (end > c.total) {
      this.discard(events, "chunk overruns the total length");
      return events;
    }
    if (end > c.buf.byteLength) {
      const grown = new Uint8Array(Math.min(c.total, Math.max(end, 2 * c.buf.byteLength)));
      grown.set(c.buf.subarray(0, c.received));
      c.buf = grown;
    }
    c.buf.set(msg.bytes, c.received);
    c.received += msg.bytes.byteLength;
    if (c.received === c.total) {
      this.current = null;
      events.push({ type: "object", objectId: c.objectId, payload: c.buf });
    }
    return events;
  }

  /** Drops a partial object, if any (e.g. when the channel closes). */
  reset(): AssemblyEvent[] {
    const events: AssemblyEvent[] = [];
    this.discard(events, "reset");
    return events;
  }

  private discard(events: AssemblyEvent[], reason: string): void {
    const c = this.current;
    if (c === null) return;
    this.current = null;
    events.push({ type: "discarded", objectId: c.objectId, received: c.received, total: c.total, reason });
  }
}
