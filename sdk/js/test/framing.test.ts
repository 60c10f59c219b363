import { describe, expect, it } from "vitest";
import {
  CHUNK_FLAG,
  ChunkAssembler,
  DEFAULT_MAX_OBJECT_BYTES,
  MAX_CHUNK_BYTES,
  MAX_DATACHANNEL_MESSAGE,
  MAX_UNCHUNKED_PAYLOAD,
  MAX_WHOLE_OBJECT_MESSAGE,
  chunkedMessages,
  decodeObject,
  encodeObject,
  fitsWhole,
  frameForDataChannel,
  parseDataChannelMessage,
  type AssemblyEvent,
} from "../src/framing.js";

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function objects(events: AssemblyEvent[]) {
  return events.filter((e) => e.type === "object") as Extract<AssemblyEvent, { type: "object" }>[];
}

describe("object framing", () => {
  it("is [u64 BE object_id][payload]", () => {
    const m = encodeObject(0x0102030405060708n, new Uint8Array([9, 10]));
    expect([...m]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const d = decodeObject(m);
    expect(d.objectId).toBe(0x0102030405060708n);
    expect([...d.payload]).toEqual([9, 10]);
  });

  it("accepts numbers and rejects ids outside [0, 2^63)", () => {
    expect(decodeObject(encodeObject(42, new Uint8Array())).objectId).toBe(42n);
    expect(() => encodeObject(-1, new Uint8Array())).toThrow();
    expect(() => encodeObject(CHUNK_FLAG, new Uint8Array())).toThrow();
    expect(() => decodeObject(new Uint8Array(7))).toThrow();
  });

  it("decodes views at an offset into a larger buffer", () => {
    const backing = new Uint8Array(20);
    backing.set(encodeObject(7n, new Uint8Array([1, 2, 3])), 5);
    const d = decodeObject(backing.subarray(5, 16));
    expect(d.objectId).toBe(7n);
    expect([...d.payload]).toEqual([1, 2, 3]);
  });
});

describe("DataChannel chunking", () => {
  it("does not chunk an object whose framed size is exactly 64 KiB", () => {
    const p = bytes(MAX_UNCHUNKED_PAYLOAD);
    const msgs = frameForDataChannel(5n, p);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]!.byteLength).toBe(MAX_DATACHANNEL_MESSAGE);
    expect(parseDataChannelMessage(msgs[0]!).kind).toBe("object");
  });

  it("chunks one byte more, with the documented 16-byte header", () => {
    const p = bytes(MAX_UNCHUNKED_PAYLOAD + 1);
    const msgs = frameForDataChannel(5n, p);
    expect(msgs).toHaveLength(2);
    const v = new DataView(msgs[0]!.buffer);
    expect(v.getBigUint64(0)).toBe(5n | CHUNK_FLAG);
    expect(v.getUint32(8)).toBe(p.byteLength);
    expect(v.getUint32(12)).toBe(0);
    expect(msgs[0]!.byteLength).toBe(MAX_DATACHANNEL_MESSAGE);
    const v1 = new DataView(msgs[1]!.buffer);
    expect(v1.getUint32(12)).toBe(MAX_CHUNK_BYTES);
    expect(msgs[1]!.byteLength).toBe(16 + p.byteLength - MAX_CHUNK_BYTES);
  });

  it("keeps every message at or under 64 KiB and round-trips byte for byte", () => {
    for (const size of [0, 1, 1000, 65_520, 65_528, 65_529, 131_040, 131_041, 300_000, 1_048_576]) {
      const p = bytes(size, size + 3);
      const msgs = frameForDataChannel(BigInt(size), p);
      for (const m of msgs) expect(m.byteLength).toBeLessThanOrEqual(MAX_DATACHANNEL_MESSAGE);
      const a = new ChunkAssembler();
      const out = msgs.flatMap((m) => a.push(m));
      expect(out).toHaveLength(1);
      const o = objects(out)[0]!;
      expect(o.objectId).toBe(BigInt(size));
      expect(Buffer.compare(Buffer.from(o.payload), Buffer.from(p))).toBe(0);
      expect(a.assembling).toBe(false);
    }
  });

  it("reassembles a stream of mixed objects in order", () => {
    const sizes = [10, 200_000, 5, 65_529, 70_000, 0];
    const a = new ChunkAssembler();
    const got: [bigint, number][] = [];
    sizes.forEach((s, i) => {
      for (const m of frameForDataChannel(BigInt(i), bytes(s, i))) {
        for (const o of objects(a.push(m))) got.push([o.objectId, o.payload.byteLength]);
      }
    });
    expect(got).toEqual(sizes.map((s, i) => [BigInt(i), s]));
  });

  it("discards a partial object when a chunk of another object arrives", () => {
    const a = new ChunkAssembler();
    const first = frameForDataChannel(1n, bytes(150_000));
    const second = frameForDataChannel(2n, bytes(100_000, 2));
    a.push(first[0]!);
    const ev = a.push(second[0]!);
    expect(ev[0]).toMatchObject({ type: "discarded", objectId: 1n, received: MAX_CHUNK_BYTES });
    const rest = second.slice(1).flatMap((m) => a.push(m));
    expect(objects(rest).map((o) => o.objectId)).toEqual([2n]);
  });

  it("discards on an offset that is not the bytes received so far", () => {
    const a = new ChunkAssembler();
    const msgs = frameForDataChannel(1n, bytes(200_000));
    a.push(msgs[0]!);
    const ev = a.push(msgs[2]!); // skipped msgs[1]
    expect(ev.map((e) => e.type)).toEqual(["discarded", "discarded"]);
    expect(a.assembling).toBe(false);
    // The rest of that run is ignored; the next object goes through.
    expect(a.push(msgs[3]!).every((e) => e.type === "discarded")).toBe(true);
    expect(objects(a.push(encodeObject(2n, bytes(3)))).map((o) => o.objectId)).toEqual([2n]);
  });

  it("discards a partial object interrupted by an unchunked one, then delivers that one", () => {
    const a = new ChunkAssembler();
    a.push(frameForDataChannel(1n, bytes(100_000))[0]!);
    const ev = a.push(encodeObject(2n, bytes(10)));
    expect(ev.map((e) => e.type)).toEqual(["discarded", "object"]);
  });

  it("refuses objects above its size bound and chunks that overrun the total", () => {
    const a = new ChunkAssembler(100_000);
    const ev = a.push(frameForDataChannel(1n, bytes(200_000))[0]!);
    expect(ev[0]).toMatchObject({ type: "discarded" });
    expect(a.assembling).toBe(false);
    const b = new ChunkAssembler();
    const m = frameForDataChannel(3n, bytes(70_000))[0]!;
    new DataView(m.buffer).setUint32(8, 100); // total smaller than the chunk
    expect(b.push(m)[0]).toMatchObject({ type: "discarded" });
  });

  it("assembles at most 4 MiB by default, and its bound is configurable", () => {
    expect(DEFAULT_MAX_OBJECT_BYTES).toBe(4 * 1024 * 1024);
    const a = new ChunkAssembler();
    const header = (total: number) => {
      const m = new Uint8Array(16 + 10);
      const v = new DataView(m.buffer);
      v.setBigUint64(0, 7n | CHUNK_FLAG);
      v.setUint32(8, total);
      return m;
    };
    expect(a.push(header(DEFAULT_MAX_OBJECT_BYTES + 1))).toEqual([
      { type: "discarded", objectId: 7n, received: 0, total: DEFAULT_MAX_OBJECT_BYTES + 1, reason: "object larger than 4194304 bytes" },
    ]);
    expect(a.push(header(0xffff_ffff))[0]).toMatchObject({ type: "discarded", total: 0xffff_ffff });
    expect(a.assembling).toBe(false);
    const whole = bytes(DEFAULT_MAX_OBJECT_BYTES, 3);
    const o = objects(frameForDataChannel(8n, whole).flatMap((m) => a.push(m)));
    expect(o.length).toBe(1);
    expect(Buffer.from(o[0]!.payload).equals(Buffer.from(whole))).toBe(true); // toEqual is slow on 4 MiB
    const big = new ChunkAssembler(16 * 1024 * 1024);
    expect(big.push(header(DEFAULT_MAX_OBJECT_BYTES + 1))).toEqual([]);
    expect(big.assembling).toBe(true);
  });

  it("allocates as bytes arrive, not as the header claims: at most twice what was received", () => {
    const a = new ChunkAssembler();
    const total = DEFAULT_MAX_OBJECT_BYTES;
    const headerOnly = (id: bigint) => {
      const m = new Uint8Array(16);
      const v = new DataView(m.buffer);
      v.setBigUint64(0, id | CHUNK_FLAG);
      v.setUint32(8, total);
      return m;
    };
    // Headers claiming 4 MiB, each discarding the one before: nothing held.
    for (let i = 0n; i < 100n; i++) a.push(headerOnly(i));
    expect(a.assembling).toBe(true);
    expect(a.allocatedBytes).toBe(0);
    const whole = bytes(total, 5);
    const msgs = frameForDataChannel(200n, whole);
    let received = 0;
    let o: Extract<AssemblyEvent, { type: "object" }>[] = [];
    for (const m of msgs) {
      o = objects(a.push(m));
      received += m.byteLength - 16;
      if (o.length === 0) expect(a.allocatedBytes).toBeLessThanOrEqual(2 * received);
    }
    expect(o.length).toBe(1);
    expect(o[0]!.payload.byteLength).toBe(total);
    expect(Buffer.from(o[0]!.payload).equals(Buffer.from(whole))).toBe(true);
    expect(a.allocatedBytes).toBe(0);
  });

  it("honours a smaller maximum message size", () => {
    const msgs = frameForDataChannel(9n, bytes(1000), 100);
    for (const m of msgs) expect(m.byteLength).toBeLessThanOrEqual(100);
    const a = new ChunkAssembler();
    const o = objects(msgs.flatMap((m) => a.push(m)));
    expect(o[0]!.payload).toEqual(bytes(1000));
  });
});

describe("messages for a child", () => {
  it("reuses the message an object arrived in only when it fits one DataChannel message", () => {
    const small = encodeObject(1n, bytes(100));
    expect(chunkedMessages(1n, small.subarray(8), small)).toEqual([small]);
    expect(chunkedMessages(1n, small.subarray(8), small)[0]).toBe(small);
    const big = encodeObject(2n, bytes(100_000));
    const chunks = chunkedMessages(2n, big.subarray(8), big);
    expect(chunks).toEqual(frameForDataChannel(2n, big.subarray(8)));
    expect(chunks.length).toBe(2);
  });

  it("sends whole only what fits the child's largest message", () => {
    expect(MAX_WHOLE_OBJECT_MESSAGE).toBe(262_144);
    expect(fitsWhole(bytes(MAX_WHOLE_OBJECT_MESSAGE - 8), MAX_WHOLE_OBJECT_MESSAGE)).toBe(true);
    expect(fitsWhole(bytes(MAX_WHOLE_OBJECT_MESSAGE - 7), MAX_WHOLE_OBJECT_MESSAGE)).toBe(false);
    expect(fitsWhole(bytes(0), 8)).toBe(true);
  });
});
