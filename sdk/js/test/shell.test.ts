// MeshPeer itself, the browser shell, in Node: the `ws` package is its
// WebSocket (the real protocol, to the real server); no RTCPeerConnection is
// needed by a root. What the shell adds to the core is checked here: real
// timers, sockets, and callbacks that throw.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { MeshPeer } from "../src/peer.js";
import { type Server, freePort, payload, publish, startServer } from "./sim/server.js";

let server: Server;
beforeAll(async () => {
  (globalThis as { WebSocket?: unknown }).WebSocket = WebSocket;
  server = await startServer({ rootPeerCount: 1 });
});
afterAll(async () => {
  await server?.stop();
  delete (globalThis as { WebSocket?: unknown }).WebSocket;
});

describe("MeshPeer in Node", { timeout: 20_000 }, () => {
  it("a root whose callbacks all throw still delivers every object once, in order, and counts it", async () => {
    const N = 60;
    const seen: number[] = [];
    let wrongBytes = 0;
    let all!: () => void;
    const done = new Promise<void>((ok) => (all = ok));
    const boom = (what: string) => {
      throw new Error(`integrator bug in ${what}`);
    };
    const peer = new MeshPeer({
      signalUrl: `${server.ws}/signal`,
      track: "shell/throwing",
      peerId: "root",
      onFrame: (id, bytes) => {
        seen.push(Number(id));
        const want = payload(Number(id));
        if (bytes.byteLength !== want.byteLength || bytes.some((b, i) => b !== want[i])) wrongBytes++;
        if (seen.length === N) all();
        boom("onFrame");
      },
      onAssign: () => boom("onAssign"),
      onLost: () => boom("onLost"),
      onError: () => boom("onError"),
      log: () => boom("log"),
    });
    const a = await peer.connect();
    expect(a.role).toBe("Root");
    expect(peer.connected).toBe(true);
    await publish(server, "shell/throwing", N);
    await done;
    expect(seen).toEqual([...Array(N).keys()]);
    expect(wrongBytes).toBe(0);
    expect(peer.stats).toMatchObject({ delivered: N, fromOrigin: N, lost: 0, signalConnects: 1 });
    expect(peer.readingOrigin).toBe(true);
    peer.close();
    expect(peer.connected).toBe(false);
    await expect(peer.connect()).rejects.toThrow("MeshPeer is closed");
  });

  it("a throwing onError still rejects connect() when the signal socket never opens", async () => {
    const port = await freePort(); // nothing listens there
    const errors: string[] = [];
    const peer = new MeshPeer({
      signalUrl: `ws://127.0.0.1:${port}/signal`,
      track: "shell/unreachable",
      reconnectInitialMs: 10,
      reconnectMaxMs: 20,
      onError: (code) => {
        errors.push(code);
        throw new Error("integrator bug in onError");
      },
    });
    await expect(peer.connect()).rejects.toThrow(/^signal_unreachable: .*3 signal connections in a row failed to open/);
    expect(errors).toEqual(["signal_unreachable"]);
    await expect(peer.connect()).rejects.toThrow("MeshPeer is closed");
  });
});
