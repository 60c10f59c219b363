// Deterministic test objects, shared by the Node publisher and the pages
// (served to them as /payload.mjs): object i of a fresh track gets object id i,
// so a viewer can check every object byte for byte on its own.

/** Payload size for object `id`: a mix of small objects, exact 64 KiB edges and chunked ones. */
export function payloadSize(id) {
  if (id === 5) return 65_528; // framed size exactly 65,536: one DataChannel message
  if (id === 6) return 65_529; // one byte more: two chunks
  if (id % 10 === 3) return 70_000 + ((id * 7919) % 200_000); // > 64 KiB: chunked
  return 100 + ((id * 131) % 4000);
}

/** The payload of object `id`: its id (u32 BE) then an xorshift32 stream seeded by it. */
export function payload(id) {
  const n = payloadSize(id);
  const b = new Uint8Array(n);
  let x = (Math.imul(id + 1, 2654435761) >>> 0) || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  if (n >= 4) new DataView(b.buffer).setUint32(0, id >>> 0);
  return b;
}

/** True when `bytes` is exactly payload(id). */
export function checkPayload(id, bytes) {
  const want = payload(id);
  if (bytes.byteLength !== want.byteLength) return false;
  for (let i = 0; i < want.byteLength; i++) if (bytes[i] !== want[i]) return false;
  return true;
}
