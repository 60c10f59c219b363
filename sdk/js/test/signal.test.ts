import { describe, expect, it } from "vitest";
import {
  deriveOriginUrl,
  egressUrl,
  isValidPeerId,
  isValidTrack,
  epochOf,
  loopbackOnly,
  nextObjectIdOf,
  parseServerMessage,
  type AssignParentMessage,
} from "../src/signal.js";

describe("signal helpers", () => {
  it("parses AssignParent with the next_object_id extension", () => {
    const m = parseServerMessage(
      '{"type":"AssignParent","peer_id":"a","role":"Relay","parent_id":"b","depth":1,"ice_servers":[],"next_object_id":42}',
    ) as AssignParentMessage;
    expect(m.parent_id).toBe("b");
    expect(nextObjectIdOf(m)).toBe(42n);
    const lvqr = parseServerMessage('{"type":"AssignParent","peer_id":"a","role":"Root","depth":0}') as AssignParentMessage;
    expect(lvqr.parent_id).toBeNull();
    expect(nextObjectIdOf(lvqr)).toBeNull();
    expect(epochOf(lvqr)).toBeNull();
  });

  it("reads next_object_id beyond 2^53 exactly, and the epoch extension", () => {
    const m = parseServerMessage(
      '{"type":"AssignParent","peer_id":"a","role":"Root","parent_id":null,"depth":0,"ice_servers":[],"next_object_id":9007199254740993,"epoch":"9f1c"}',
    ) as AssignParentMessage;
    expect(nextObjectIdOf(m)).toBe(9007199254740993n);
    expect(epochOf(m)).toBe("9f1c");
    // An ice server string that looks like the field does not fool it.
    const tricky = parseServerMessage(
      '{"type":"AssignParent","peer_id":"a","role":"Root","depth":0,"ice_servers":[{"urls":"stun:x","username":"\\"next_object_id\\":7"}],"next_object_id":9007199254740995,"epoch":""}',
    ) as AssignParentMessage;
    expect(nextObjectIdOf(tricky)).toBe(9007199254740995n);
    expect(epochOf(tricky)).toBeNull();
  });

  it("rejects malformed and unknown frames", () => {
    expect(parseServerMessage("nope")).toBeNull();
    expect(parseServerMessage("[]")).toBeNull();
    expect(parseServerMessage('{"type":"Bogus"}')).toBeNull();
    expect(parseServerMessage('{"type":"Offer","from":1}')).toBeNull();
    expect(parseServerMessage('{"type":"Error","code":"mesh_full","reason":"x"}')).toEqual({
      type: "Error",
      code: "mesh_full",
      reason: "x",
    });
  });

  it("derives the origin URL from the signal URL", () => {
    expect(deriveOriginUrl("ws://127.0.0.1:8080/signal")).toBe("ws://127.0.0.1:8080");
    expect(deriveOriginUrl("wss://example.test/relay/signal?token=x")).toBe("wss://example.test/relay");
  });

  it("builds the egress URL with ?from= and keeps track slashes", () => {
    expect(egressUrl("ws://h:1", "live/test", 42n)).toBe("ws://h:1/ws/live/test?from=42");
    expect(egressUrl("ws://h:1/", "demo", null)).toBe("ws://h:1/ws/demo");
    expect(egressUrl("ws://h:1", "a", 0n, "has space")).toBe("ws://h:1/ws/a?from=0&token=has%20space");
    expect(egressUrl("ws://h:1", "a", 0n, "simple-token")).toBe("ws://h:1/ws/a?from=0");
  });

  it("validates ids and tracks like the server", () => {
    expect(isValidPeerId("abc_DEF-123")).toBe(true);
    expect(isValidPeerId("")).toBe(false);
    expect(isValidPeerId("a".repeat(65))).toBe(false);
    expect(isValidPeerId("a b")).toBe(false);
    expect(isValidTrack("live/test")).toBe(true);
    for (const bad of ["", "/a", "a/", "a//b", "a/../b", "a b"]) expect(isValidTrack(bad)).toBe(false);
  });

  it("loopbackOnly keeps only 127.0.0.1 candidates", () => {
    expect(loopbackOnly("candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host generation 0")).toBe(true);
    expect(loopbackOnly("candidate:2 1 udp 2122260223 10.0.0.5 54321 typ host")).toBe(false);
    expect(loopbackOnly("candidate:3 1 udp 2122260223 abcd.local 54321 typ host")).toBe(false);
    expect(loopbackOnly("")).toBe(false);
  });
});
