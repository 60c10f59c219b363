// The real `meshrelay serve` for the scenario tests, on 127.0.0.1 only, and
// a publisher for its /ingest/{track}.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The server binary: MESHRELAY_BIN, else the repo's debug build (which
 * scripts/test-all builds before it runs `npm test`). Throws, naming the
 * path, when it is not there: the scenario tests fail rather than skip.
 */
export function serverBinary(): string {
  const bin = process.env.MESHRELAY_BIN ?? resolve(sdkRoot, "..", "..", "target", "debug", "meshrelay");
  if (!existsSync(bin)) {
    throw new Error(`meshrelay binary not found at ${bin}: run \`cargo build -p meshrelay-cli\` at the repo root, or set MESHRELAY_BIN`);
  }
  return bin;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => ok(port));
    });
  });
}

/** A running server. */
export interface Server {
  port: number;
  /** `ws://127.0.0.1:<port>`. */
  ws: string;
  /** `http://127.0.0.1:<port>`. */
  http: string;
  logs(): string;
  stop(): Promise<void>;
}

/** Planner flags of `meshrelay serve`. */
export interface ServerOptions {
  rootPeerCount?: number;
  maxPeers?: number;
  port?: number;
}

/** Starts `meshrelay serve --listen 127.0.0.1:<port> --no-demo` and waits until /healthz answers. */
export async function startServer(opts: ServerOptions = {}): Promise<Server> {
  const bin = serverBinary();
  const port = opts.port ?? (await freePort());
  // A long heartbeat timeout: the peers' clock is virtual and may stand still while the test waits.
  const args = ["serve", "--listen", `127.0.0.1:${port}`, "--no-demo", "--heartbeat-timeout", "120s"];
  if (opts.rootPeerCount !== undefined) args.push("--mesh-root-peer-count", String(opts.rootPeerCount));
  if (opts.maxPeers !== undefined) args.push("--max-peers", String(opts.maxPeers));
  const child: ChildProcess = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "info" } });
  let output = "";
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  let exited: string | null = null;
  const exit = new Promise<void>((ok) => child.once("exit", (code, sig) => ((exited = `exit ${code ?? sig}`), ok())));
  const http = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) throw new Error(`meshrelay ${args.join(" ")} ${exited}:\n${output}`);
    const up = await fetch(`${http}/healthz`).then((r) => r.ok, () => false);
    if (up) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`meshrelay on ${http} did not answer /healthz within 15 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50)); // polling the server's start, not synchronising the test
  }
  return {
    port,
    ws: `ws://127.0.0.1:${port}`,
    http,
    logs: () => output,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exit;
      clearTimeout(t);
    },
  };
}

/** GET /api/v1/mesh. */
export async function getMesh(server: Server): Promise<{
  peer_count: number;
  tracks: { epoch?: string }[];
  peers: { peer_id: string; parent: string | null; role: string }[];
}> {
  const r = await fetch(`${server.http}/api/v1/mesh`);
  if (!r.ok) throw new Error(`/api/v1/mesh: HTTP ${r.status}`);
  return r.json();
}

/** Deterministic payload of object `id`: sizes from 100 B to past 64 KiB (chunked); bytes derived from the id. */
export function payload(id: number): Uint8Array {
  const n = id % 10 === 3 ? 70_000 + ((id * 7919) % 100_000) : 100 + ((id * 131) % 4000);
  const b = new Uint8Array(n);
  let x = Math.imul(id + 1, 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * Publishes payload(start) .. payload(start + count - 1) to /ingest/{track},
 * one binary message each, as fast as the socket takes them; resolves once
 * the socket has closed cleanly.
 */
export async function publish(server: Server, track: string, count: number, start = 0): Promise<void> {
  const ws = new WebSocket(`${server.ws}/ingest/${track}`);
  await new Promise<void>((ok, fail) => {
    ws.once("open", () => ok());
    ws.once("error", fail);
  });
  for (let i = start; i < start + count; i++) {
    await new Promise<void>((ok, fail) => ws.send(payload(i), { binary: true }, (e) => (e ? fail(e) : ok())));
  }
  await new Promise<void>((ok) => {
    ws.once("close", () => ok());
    ws.close(1000);
  });
}
