// The DataChannel framing against the golden vectors in
// docs/vectors/chunking.json, which the Rust protocol crate's tests read
// too: both implementations frame every case byte for byte as the file
// says, and reassemble it.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ChunkAssembler, frameForDataChannel } from "../src/framing.js";

interface Case {
  name: string;
  object_id: string;
  payload_len: number;
  messages: { header: string; payload_offset: number; payload_len: number }[];
}

const vectors: { cases: Case[] } = JSON.parse(
  readFileSync(new URL("../../../docs/vectors/chunking.json", import.meta.url), "utf8"),
);

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function payload(len: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (31 * i + 7) % 256);
}

describe("golden framing vectors", () => {
  it("has the cases", () => {
    expect(vectors.cases.length).toBeGreaterThanOrEqual(5);
  });

  for (const c of vectors.cases) {
    it(c.name, () => {
      const id = BigInt(c.object_id);
      const body = payload(c.payload_len);
      const want = c.messages.map((m) => {
        const head = hex(m.header);
        const msg = new Uint8Array(head.byteLength + m.payload_len);
        msg.set(head);
        msg.set(body.subarray(m.payload_offset, m.payload_offset + m.payload_len), head.byteLength);
        return msg;
      });
      const got = frameForDataChannel(id, body);
      // Compared as hex: vitest's deep equality is slow on large byte arrays.
      const text = (ms: Uint8Array[]) => ms.map((m) => Buffer.from(m).toString("hex"));
      expect(text(got)).toEqual(text(want));
      const asm = new ChunkAssembler(Math.max(1, body.byteLength));
      const events = got.flatMap((m) => asm.push(m));
      expect(events.map((e) => [e.type, e.objectId])).toEqual([["object", id]]);
      const e = events[0]!;
      expect(e.type === "object" && Buffer.from(e.payload).equals(Buffer.from(body))).toBe(true);
    });
  }
});
