import { describe, expect, it } from "vitest";
import { StallClock, covers, planUpstreams, type SourceView, type UpstreamState } from "../src/upstreams.js";

const GRACE = 1500;

/** A source opened at time 0 whose current run starts at `firstId` (null: nothing yet). */
function src(firstId: number | null, over: Partial<SourceView> = {}): SourceView {
  return { open: true, closed: false, firstId: firstId === null ? null : BigInt(firstId), startedAt: 0, ...over };
}

/** A registered relay under P at next id 10, at time 100, with nothing open. */
function relay(over: Partial<UpstreamState> = {}): UpstreamState {
  return {
    role: "Relay",
    parentId: "P",
    rootSource: "origin",
    pushed: 0,
    next: 10n,
    holeStalled: false,
    parent: null,
    oldParents: [],
    origin: null,
    registered: true,
    originRetryAt: 0,
    now: 100,
    parentGraceMs: GRACE,
    ...over,
  };
}

const NOTHING = { openOrigin: false, closeOrigin: false, closeOldParents: false };

describe("covers", () => {
  it("means open, not closed, and a run that starts at or before the next id", () => {
    expect(covers(src(10), 10n)).toBe(true);
    expect(covers(src(3), 10n)).toBe(true);
    expect(covers(src(11), 10n)).toBe(false);
    expect(covers(src(null), 10n)).toBe(false);
    expect(covers(src(3, { open: false }), 10n)).toBe(false);
    expect(covers(src(3, { closed: true }), 10n)).toBe(false);
    expect(covers(src(99), null)).toBe(true);
    expect(covers(null, 10n)).toBe(false);
  });
});

describe("planUpstreams", () => {
  it("a root reads the origin, and lets an old parent go once the origin covers", () => {
    const root = relay({ role: "Root", parentId: null });
    expect(planUpstreams(root)).toEqual({ ...NOTHING, openOrigin: true });
    const withOld = { ...root, oldParents: [src(5)] };
    expect(planUpstreams({ ...withOld, origin: src(12) })).toEqual(NOTHING);
    expect(planUpstreams({ ...withOld, origin: src(10) })).toEqual({ ...NOTHING, closeOldParents: true });
  });

  it("an external root never reads the origin, and keeps an old parent until something was pushed", () => {
    const ext = relay({ role: "Root", parentId: null, rootSource: "external", oldParents: [src(5)] });
    expect(planUpstreams(ext)).toEqual(NOTHING);
    expect(planUpstreams({ ...ext, origin: src(10) })).toEqual({ ...NOTHING, closeOrigin: true });
    expect(planUpstreams({ ...ext, pushed: 1 })).toEqual({ ...NOTHING, closeOldParents: true });
  });

  it("a waiting peer (no parent, not a root) reads the origin", () => {
    expect(planUpstreams(relay({ parentId: null }))).toEqual({ ...NOTHING, openOrigin: true });
  });

  it("a parent that covers is all that is needed", () => {
    const s = relay({ parent: src(10), origin: src(4), oldParents: [src(2)] });
    expect(planUpstreams(s)).toEqual({ openOrigin: false, closeOrigin: true, closeOldParents: true });
  });

  it("while an old parent covers, the new one may take its time; a repair reader stays", () => {
    const s = relay({ parent: src(null, { open: false, startedAt: -10_000 }), oldParents: [src(8)] });
    expect(planUpstreams(s)).toEqual(NOTHING);
    expect(planUpstreams({ ...s, origin: src(9) })).toEqual(NOTHING);
  });

  it("a new parent still connecting gets the grace period before the origin is read", () => {
    const connecting = src(null, { open: false, startedAt: 0 });
    expect(planUpstreams(relay({ parent: connecting, now: GRACE - 1 }))).toEqual(NOTHING);
    expect(planUpstreams(relay({ parent: connecting, now: GRACE }))).toEqual({ ...NOTHING, openOrigin: true });
  });

  it("an open parent with nothing yet: no new reader (an idle stream), and a reader already open is kept", () => {
    const idle = src(null, { startedAt: -100_000 });
    expect(planUpstreams(relay({ parent: idle }))).toEqual(NOTHING);
    expect(planUpstreams(relay({ parent: idle, origin: src(9) }))).toEqual(NOTHING);
  });

  it("a parent that starts past the next id, a dead link or no link: the origin is read", () => {
    expect(planUpstreams(relay({ parent: src(12) }))).toEqual({ ...NOTHING, openOrigin: true });
    expect(planUpstreams(relay({ parent: src(3, { closed: true }) }))).toEqual({ ...NOTHING, openOrigin: true });
    expect(planUpstreams(relay({ parent: null }))).toEqual({ ...NOTHING, openOrigin: true });
    // Already reading: keep it.
    expect(planUpstreams(relay({ parent: src(12), origin: src(10) }))).toEqual(NOTHING);
  });

  it("a stalled hole is read from the origin whatever claims to cover it", () => {
    const s = relay({ holeStalled: true, parent: src(10), oldParents: [src(2)] });
    expect(planUpstreams(s)).toEqual({ ...NOTHING, openOrigin: true });
    expect(planUpstreams({ ...s, origin: src(10) })).toEqual(NOTHING);
    // A root has no stall to act on: its own rule applies.
    expect(planUpstreams({ ...s, role: "Root", parentId: null, origin: src(10) })).toEqual({ ...NOTHING, closeOldParents: true });
  });

  it("opens no origin reader while unregistered or before the retry time", () => {
    const needs = relay({ parent: null });
    expect(planUpstreams({ ...needs, registered: false })).toEqual(NOTHING);
    expect(planUpstreams({ ...needs, originRetryAt: 101 })).toEqual(NOTHING);
    expect(planUpstreams({ ...needs, originRetryAt: 100 })).toEqual({ ...NOTHING, openOrigin: true });
    // A reader already open goes on while unregistered.
    expect(planUpstreams({ ...needs, registered: false, origin: src(10) })).toEqual(NOTHING);
  });
});

describe("StallClock", () => {
  it("a hole is stalled once its start has not moved for the grace period", () => {
    const c = new StallClock();
    expect(c.observe(null, 0, GRACE)).toBe(false);
    expect(c.observe(5n, 0, GRACE)).toBe(false);
    expect(c.observe(5n, GRACE - 1, GRACE)).toBe(false);
    expect(c.observe(5n, GRACE, GRACE)).toBe(true);
    // The hole moved on: its wait starts again.
    expect(c.observe(6n, GRACE + 10, GRACE)).toBe(false);
    expect(c.observe(6n, 2 * GRACE + 10, GRACE)).toBe(true);
    // Filled (nothing buffered), then a new hole at the same id starts afresh.
    expect(c.observe(null, 2 * GRACE + 20, GRACE)).toBe(false);
    expect(c.observe(6n, 2 * GRACE + 30, GRACE)).toBe(false);
    c.reset();
    expect(c.observe(6n, 10 * GRACE, GRACE)).toBe(false);
  });
});
