import { describe, expect, it } from "vitest";
import { Sequencer } from "../src/sequencer.js";

const p = (n: number) => new Uint8Array([n & 0xff]);
const ids = (r: { delivered: { objectId: bigint }[] }) => r.delivered.map((d) => d.objectId);

describe("Sequencer", () => {
  it("starts at the first object offered when no start is known", () => {
    const s = new Sequencer<string>();
    expect(ids(s.offer(7n, p(7), "a"))).toEqual([7n]);
    expect(s.next).toBe(8n);
  });

  it("holds objects until the start id arrives (next_object_id)", () => {
    const s = new Sequencer<string>(10n);
    expect(ids(s.offer(12n, p(12), "parent"))).toEqual([]);
    expect(ids(s.offer(11n, p(11), "parent"))).toEqual([]);
    expect(s.gap()).toEqual({ from: 10n, to: 11n });
    const r = s.offer(10n, p(10), "origin");
    expect(ids(r)).toEqual([10n, 11n, 12n]);
    expect(r.delivered.map((d) => d.source)).toEqual(["origin", "parent", "parent"]);
    expect(s.gap()).toBeNull();
  });

  it("drops ids below the start and duplicates, delivered or buffered", () => {
    const s = new Sequencer<string>(5n);
    expect(s.offer(4n, p(4), "x").duplicate).toBe(true);
    s.offer(5n, p(5), "x");
    expect(s.offer(5n, p(5), "y").duplicate).toBe(true);
    s.offer(7n, p(7), "x");
    expect(s.offer(7n, p(7), "y").duplicate).toBe(true);
    expect(s.bufferedCount).toBe(1);
  });

  it("merges two overlapping sources into one ordered stream, each id once", () => {
    const s = new Sequencer<string>(0n);
    const out: bigint[] = [];
    // parent delivers 20.. first (joined late), origin repairs 0..19 and runs on
    for (let i = 20n; i < 40n; i++) out.push(...ids(s.offer(i, p(Number(i)), "parent")));
    for (let i = 0n; i < 30n; i++) out.push(...ids(s.offer(i, p(Number(i)), "origin")));
    for (let i = 40n; i < 50n; i++) out.push(...ids(s.offer(i, p(Number(i)), "parent")));
    expect(out).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i)));
  });

  it("skipTo gives up on a hole but still delivers buffered objects in order", () => {
    const s = new Sequencer<string>(0n);
    s.offer(3n, p(3), "x");
    s.offer(8n, p(8), "x");
    s.offer(9n, p(9), "x");
    const r = s.skipTo(6n);
    expect(ids(r)).toEqual([3n]);
    expect(r.lost).toEqual([
      { from: 0n, to: 3n },
      { from: 4n, to: 6n },
    ]);
    expect(s.next).toBe(6n);
    expect(ids(s.offer(6n, p(6), "x"))).toEqual([6n]);
    expect(ids(s.offer(7n, p(7), "x"))).toEqual([7n, 8n, 9n]);
  });

  it("skipTo below next does nothing", () => {
    const s = new Sequencer<string>(10n);
    expect(s.skipTo(5n)).toEqual({ delivered: [], duplicate: false, lost: [], tooFarAhead: false });
    expect(s.next).toBe(10n);
  });

  it("takes only ids within the window: one source cannot make it jump ahead", () => {
    const s = new Sequencer<string>(0n, { maxBufferedObjects: 3 });
    expect(s.offer(2n, p(2), "x").tooFarAhead).toBe(false);
    const far = s.offer(3n, p(3), "x");
    expect(far).toEqual({ delivered: [], duplicate: false, lost: [], tooFarAhead: true });
    // A flood of ids far ahead neither buffers nor skips anything.
    for (let i = 0; i < 10_000; i++) expect(s.offer(2n ** 62n + BigInt(i), p(9), "evil").tooFarAhead).toBe(true);
    expect(s.bufferedCount).toBe(1);
    expect(s.next).toBe(0n);
    // The honest stream goes on, and the refused id is taken once in the window.
    expect(ids(s.offer(0n, p(0), "x"))).toEqual([0n]);
    expect(ids(s.offer(1n, p(1), "x"))).toEqual([1n, 2n]);
    expect(ids(s.offer(3n, p(3), "x"))).toEqual([3n]);
    expect(s.next).toBe(4n);
  });

  it("a trusted source may jump ahead: the buffer is bounded by count and jumps over the oldest hole", () => {
    const s = new Sequencer<string>(0n, { maxBufferedObjects: 3 });
    expect(s.offer(2n, p(2), "x", true).tooFarAhead).toBe(false);
    s.offer(3n, p(3), "x", true);
    s.offer(5n, p(5), "x", true);
    const r = s.offer(6n, p(6), "x", true);
    expect(r.lost).toEqual([{ from: 0n, to: 2n }]);
    expect(ids(r)).toEqual([2n, 3n]);
    expect(s.next).toBe(4n);
    expect(s.bufferedCount).toBe(2);
    // Far ahead, too: the integrator or the origin says where the stream is.
    expect(s.offer(10_000n, p(1), "x", true).tooFarAhead).toBe(false);
  });

  it("bounds the buffer by bytes", () => {
    const s = new Sequencer<string>(0n, { maxBufferedBytes: 10 });
    s.offer(1n, new Uint8Array(6), "x");
    const r = s.offer(2n, new Uint8Array(6), "x");
    expect(r.lost).toEqual([{ from: 0n, to: 1n }]);
    expect(ids(r)).toEqual([1n, 2n]);
    expect(s.bufferedByteCount).toBe(0);
  });

  it("start() is ignored once started", () => {
    const s = new Sequencer<string>();
    s.start(3n);
    s.start(9n);
    expect(s.next).toBe(3n);
  });

  it("random arrival order from two sources always yields 0..n-1 once, in order", () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 50; round++) {
      const n = 200;
      const s = new Sequencer<string>(0n);
      const arrivals: bigint[] = [];
      for (let i = 0; i < n; i++) arrivals.push(BigInt(i), BigInt(i));
      for (let i = arrivals.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [arrivals[i], arrivals[j]] = [arrivals[j]!, arrivals[i]!];
      }
      const out: bigint[] = [];
      for (const id of arrivals) out.push(...ids(s.offer(id, p(Number(id)), "x")));
      expect(out).toEqual(Array.from({ length: n }, (_, i) => BigInt(i)));
    }
  });

  it("gap() names the lowest buffered id after any mix of offers, skips and refusals beyond the window (checked by brute force)", () => {
    let seed = 777;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const s = new Sequencer<string>(0n, { maxBufferedObjects: 20 });
    const held = new Set<bigint>();
    for (let step = 0; step < 5000; step++) {
      const next = s.next!;
      if (rnd() < 0.03) {
        const r = s.skipTo(next + BigInt(Math.floor(rnd() * 30)));
        for (const d of r.delivered) held.delete(d.objectId);
      } else {
        const id = next + BigInt(Math.floor(rnd() * 40));
        const r = s.offer(id, p(1), "x");
        expect(r.tooFarAhead).toBe(id - next >= 20n);
        if (!r.duplicate && !r.tooFarAhead && id !== next) held.add(id);
        for (const d of r.delivered) held.delete(d.objectId);
      }
      const lowest = held.size === 0 ? null : [...held].reduce((a, b) => (b < a ? b : a));
      expect(s.bufferedCount).toBe(held.size);
      expect(s.gap()).toEqual(lowest === null ? null : { from: s.next, to: lowest });
    }
  });
});
