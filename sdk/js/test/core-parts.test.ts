// The small pure pieces of the core: its timer table, output queue, signal
// session and cooldown.
import { describe, expect, it } from "vitest";
import { Cooldown } from "../src/cooldown.js";
import { MAX_PENDING_CANDIDATES, Negotiation } from "../src/negotiation.js";
import { OutputQueue } from "../src/output-queue.js";
import { resolveSettings } from "../src/settings.js";
import { SignalSession } from "../src/signal-session.js";
import { isSlow } from "../src/slow-child.js";
import { TimerTable } from "../src/timers.js";

const range = (n: number) => [...Array(n).keys()];

describe("TimerTable", () => {
  it("gives the earliest armed deadline and which are due", () => {
    const t = new TimerTable<"a" | "b" | "c">();
    expect(t.next()).toBeNull();
    t.set("a", 30);
    t.set("b", 10);
    t.set("c", 20);
    expect(t.next()).toBe(10);
    t.set("b", 40); // re-armed later
    expect(t.next()).toBe(20);
    expect([t.due("a", 25), t.due("b", 25), t.due("c", 25)]).toEqual([false, false, true]);
    t.clear("c");
    expect(t.get("c")).toBeNull();
    expect(t.next()).toBe(30);
    t.clearAll();
    expect(t.next()).toBeNull();
  });
});

describe("OutputQueue", () => {
  it("runs a deferred step when the drain reaches it; what it emits comes before what was queued after it", () => {
    const q: OutputQueue<string, string> = new OutputQueue((step) => {
      q.push(`${step}.1`);
      q.push(`${step}.2`);
    });
    q.push("a");
    q.defer("s");
    q.push("b");
    q.defer("t");
    const got: string[] = [];
    for (let o = q.next(); o !== null; o = q.next()) {
      got.push(o);
      if (o === "s.1") q.push("late"); // pushed while draining, outside a step: goes last
    }
    expect(got).toEqual(["a", "s.1", "s.2", "b", "t.1", "t.2", "late"]);
  });

  it("does not run a step before the drain reaches it", () => {
    const ran: string[] = [];
    const q = new OutputQueue<string, string>((s) => ran.push(s));
    q.push("x");
    q.defer("s");
    expect(q.next()).toBe("x");
    expect(ran).toEqual([]);
    expect(q.next()).toBeNull();
    expect(ran).toEqual(["s"]);
  });
});

describe("SignalSession", () => {
  it.each([
    // [steps, open, registered, everRegistered]
    [[], false, false, false],
    [["begin"], false, false, false],
    [["begin", "opened"], true, false, false],
    [["begin", "opened", "assigned"], true, true, true],
    [["begin", "opened", "assigned", "end"], false, false, true],
    [["begin", "opened", "assigned", "begin"], false, false, true],
  ] as [string[], boolean, boolean, boolean][])("after %j: open %s, registered %s, ever %s", (steps, open, registered, ever) => {
    const s = new SignalSession();
    for (const step of steps) {
      if (step === "begin") s.begin();
      else if (step === "opened") s.opened(s.socket!);
      else if (step === "assigned") s.assigned();
      else s.end();
    }
    expect([s.open, s.registered, s.everRegistered]).toEqual([open, registered, ever]);
  });

  it("ignores a replaced socket, says whether a socket opened, and counts failures in a row", () => {
    const s = new SignalSession();
    const first = s.begin();
    const second = s.begin();
    expect(s.opened(first)).toBe(false);
    expect(s.end(first)).toBeNull();
    expect(s.end(second)).toEqual({ id: second, hadOpened: false });
    expect([s.notOpened(3), s.notOpened(3), s.notOpened(3), s.notOpened(3)]).toEqual([false, false, true, false]);
    const third = s.begin();
    expect(s.opened(third)).toBe(true); // the run ends
    expect(s.assigned()).toBe(true);
    expect(s.assigned()).toBe(false); // not the first AssignParent on this socket
    expect(s.end()).toEqual({ id: third, hadOpened: true });
    expect([s.notOpened(2), s.notOpened(2)]).toEqual([false, true]);
  });

  it("carries only Register before registration, and nothing on a socket not open", () => {
    const s = new SignalSession();
    s.begin();
    expect(s.mayCarry("Register")).toBe(false);
    s.opened(s.socket!);
    expect([s.mayCarry("Register"), s.mayCarry("Heartbeat")]).toEqual([true, false]);
    s.assigned();
    expect(s.mayCarry("Heartbeat")).toBe(true);
  });
});

describe("Cooldown", () => {
  it("refuses until the deadline, forgets what expired, and keeps at most `max`", () => {
    const c = new Cooldown(2);
    c.add("a", 100);
    c.add("b", 200);
    expect([c.blocks("a", 99), c.blocks("a", 100), c.blocks("a", 0)]).toEqual([true, false, false]);
    c.add("a", 300);
    c.add("c", 400); // over the bound: b, first to expire, is forgotten
    expect([c.blocks("a", 0), c.blocks("b", 0), c.blocks("c", 0)]).toEqual([true, false, true]);
    c.prune(350);
    expect([c.blocks("a", 0), c.blocks("c", 0)]).toEqual([false, true]);
  });
});

describe("isSlow", () => {
  const limits = { slowChildBytes: 1000, slowChildMs: 2000, maxChildBufferedBytes: 5000 };
  it.each([
    // [buffered, overSince, adding, now, slow, overSince after]
    [1000, null, 0, 10, false, null], // at the bound: not over
    [1000, 5, 0, 10, false, null], // back under: forgotten
    [1001, null, 0, 10, false, 10], // over: since now
    [1001, 10, 0, 2009, false, 10],
    [1001, 10, 0, 2010, true, 10], // over for slowChildMs
    [4000, 10, 1000, 20, false, 10], // at most maxChildBufferedBytes
    [4000, 10, 1001, 20, true, 10], // would pass it
    [900, null, 10_000, 20, false, null], // under: whatever comes next
  ] as [number, number | null, number, number, boolean, number | null][])(
    "buffered %d over since %s, adding %d at %d: slow %s",
    (buffered, overSince, adding, now, slow, after) => {
      const c = { buffered, overSince };
      expect(isSlow(c, adding, now, limits)).toBe(slow);
      expect(c.overSince).toBe(after);
    },
  );
});

describe("resolveSettings", () => {
  it("fills in the documented defaults", () => {
    const s = resolveSettings({ signalUrl: "wss://h:1/signal", track: "t" });
    expect(s).toMatchObject({
      originBase: "wss://h:1",
      rootSource: "origin",
      heartbeatMs: 3333,
      forwardReportMs: 1000,
      parentGraceMs: 1500,
      parentConnectTimeoutMs: 15_000,
      childConnectTimeoutMs: 15_000,
      slowChildBytes: 4 * 1024 * 1024,
      slowChildMs: 3000,
      slowChildCooldownMs: 30_000,
      maxChildBufferedBytes: 12 * 1024 * 1024,
      connectAttempts: 3,
      reconnectInitialMs: 500,
      reconnectMaxMs: 15_000,
      maxObjectBytes: 4 * 1024 * 1024,
    });
    expect(resolveSettings({ signalUrl: "ws://h/signal", track: "t", parentConnectTimeoutMs: 7, peerTimeoutMs: 300 })).toMatchObject({
      childConnectTimeoutMs: 7,
      heartbeatMs: 250,
    });
  });
});

describe("Negotiation", () => {
  const cand = (i: number) => ({ candidate: `candidate:${i}`, sdpMid: "0", sdpMLineIndex: 0 });
  it("holds local candidates until our description went out, remote ones until the remote description is set", () => {
    const n = new Negotiation<string>();
    expect([n.local("l1"), n.local("l2")]).toEqual([null, null]);
    expect(n.remote(cand(1))).toBeNull();
    expect(n.localSent).toBe(false);
    expect(n.described()).toEqual(["l1", "l2"]);
    expect(n.localSent).toBe(true);
    expect(n.local("l3")).toBe("l3");
    expect(n.remoteApplied()).toEqual([cand(1)]);
    expect(n.remote(cand(2))).toEqual(cand(2));
    expect([n.described(), n.remoteApplied()]).toEqual([[], []]);
  });

  it("holds at most MAX_PENDING_CANDIDATES of each", () => {
    const n = new Negotiation<number>();
    for (let i = 0; i < 1000; i++) {
      n.local(i);
      n.remote(cand(i));
    }
    expect(n.described().length).toBe(MAX_PENDING_CANDIDATES);
    expect(n.remoteApplied().map((c) => c.candidate)).toEqual(range(MAX_PENDING_CANDIDATES).map((i) => `candidate:${i}`));
  });
});
