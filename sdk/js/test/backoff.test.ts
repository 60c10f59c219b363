import { describe, expect, it } from "vitest";
import { Backoff } from "../src/backoff.js";

describe("Backoff", () => {
  it("doubles up to the ceiling without jitter", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6].map(() => b.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(b.attempts).toBe(6);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it("applies jitter below the base delay", () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0.5 });
    expect(b.next()).toBe(750);
    const c = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0 });
    expect(c.next()).toBe(1000);
  });

  it("rejects nonsense", () => {
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow();
    expect(() => new Backoff({ factor: 0.5 })).toThrow();
  });
});
