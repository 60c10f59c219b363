// Shared pieces of the end-to-end tests: the real `meshrelay serve`, a static
// server for the test pages, Debian's chromium through playwright-core, and a
// publisher. Everything listens on and talks to 127.0.0.1 only.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { dirname, join } from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { payload } from "./payload.mjs";

const here = dirname(fileURLToPath(import.meta.url));
export const sdkRoot = join(here, "..");
export const repoRoot = join(sdkRoot, "..", "..");
export const DEBUG = !!process.env.E2E_DEBUG;

export function log(...args) {
  console.log(`[e2e ${new Date().toISOString().slice(11, 23)}]`, ...args);
}

/** Polls `fn` until it returns a truthy value; throws with `message` after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 20_000, intervalMs = 100, message = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}; last: ${String(last?.stack ?? JSON.stringify(last))}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function binaryPath() {
  return process.env.MESHRELAY_BIN ?? join(repoRoot, "target", "release", "meshrelay");
}

/**
 * Starts `meshrelay serve --listen 127.0.0.1:<port> --no-demo <args>` and
 * waits for /healthz. `opts` maps to the planner flags; `port` defaults to a
 * free one.
 */
export async function startServer({ rootPeerCount, maxPeers, demo = false, extraArgs = [], port } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`${bin} not found: run \`cargo build --release -p meshrelay-cli\` first`);
  port ??= await freePort();
  const args = ["serve", "--listen", `127.0.0.1:${port}`, demo ? "--demo" : "--no-demo"];
  if (rootPeerCount !== undefined) args.push("--mesh-root-peer-count", String(rootPeerCount));
  if (maxPeers !== undefined) args.push("--max-peers", String(maxPeers));
  args.push(...extraArgs);
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" } });
  let output = "";
  const keep = (d) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
    if (DEBUG) process.stderr.write(`[server] ${d}`);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  child.on("exit", (code, sig) => (exited = `exit ${code ?? sig}`));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (exited) throw new Error(`meshrelay ${args.join(" ")} ${exited}:\n${output}`);
      const r = await fetch(`${base}/healthz`).catch(() => null);
      return r && r.ok;
    },
    { timeoutMs: 15_000, message: `meshrelay on ${base}/healthz` },
  ).catch((e) => {
    child.kill("SIGKILL");
    throw e;
  });
  log(`meshrelay ${args.join(" ")} up`);
  return {
    port,
    base,
    ws: `ws://127.0.0.1:${port}`,
    logs: () => output,
    async stop() {
      if (exited) return;
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await done;
      clearTimeout(t);
    },
  };
}

/**
 * Serves the test pages (the SDK's and the LVQR-style client's), the fresh
 * SDK bundle and the payload generator on 127.0.0.1.
 */
export async function startStatic() {
  const files = {
    "/page.html": ["text/html", join(here, "page.html")],
    "/page.mjs": ["text/javascript", join(here, "page.mjs")],
    "/lvqr-page.html": ["text/html", join(here, "lvqr-page.html")],
    "/lvqr-page.mjs": ["text/javascript", join(here, "lvqr-page.mjs")],
    "/lvqr-peer.mjs": ["text/javascript", join(here, "lvqr-peer.mjs")],
    "/payload.mjs": ["text/javascript", join(here, "payload.mjs")],
    "/meshrelay.js": ["text/javascript", join(sdkRoot, "dist", "meshrelay.js")],
  };
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, "http://x").pathname];
    if (!f) {
      res.statusCode = 404;
      return res.end();
    }
    res.setHeader("content-type", f[0]);
    res.setHeader("cache-control", "no-store");
    res.end(readFileSync(f[1]));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, stop: () => new Promise((r) => server.close(r)) };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--allow-loopback-in-peer-connection",
    ],
  });
}

/**
 * Registers before/after hooks that start Chromium and the static server
 * once for the calling test file. The returned object's `browser` and
 * `statics` are set once the before hook has run.
 */
export function sharedBrowser() {
  const shared = { browser: null, statics: null };
  before(async () => {
    shared.browser = await launchBrowser();
    shared.statics = await startStatic();
  });
  after(async () => {
    await shared.browser?.close();
    await shared.statics?.stop();
  });
  return shared;
}

/**
 * Runs `fn(server, peers)` with a fresh server; afterwards closes the peers
 * `fn` pushed onto `peers` and stops the server, dumping its log tail when
 * `fn` failed.
 */
export async function withServer(opts, fn) {
  const server = await startServer(opts);
  const peers = [];
  try {
    await fn(server, peers);
  } catch (e) {
    log(`server log tail:\n${server.logs().slice(-6000)}`);
    throw e;
  } finally {
    for (const p of peers) if (!p.closed) await p.close().catch(() => {});
    await server.stop();
  }
}

/** Waits until every non-root peer's DataChannel to its parent is open. */
export async function waitParentsOpen(peers) {
  await waitFor(
    async () => {
      const snaps = await Promise.all(peers.map((p) => p.snapshot()));
      return snaps.every((s) => s.role === "Root" || s.parentConnected);
    },
    { timeoutMs: 20_000, message: `the parent DataChannels of ${peers.map((p) => p.peerId).join(", ")} to open` },
  );
}

/**
 * Opens a test page (`path`, the SDK's by default) in a fresh context (media
 * permission, so Chromium offers 127.0.0.1 host candidates), not yet running
 * a peer.
 */
export async function openPage({ browser, statics }, peerId, path = "/page.html") {
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (DEBUG) log(`[${peerId} console] ${m.text()}`);
  });
  page.on("pageerror", (e) => log(`[${peerId} pageerror] ${e.message}`));
  await page.goto(`${statics.url}${path}`);
  await page.waitForFunction(() => window.ready === true);
  return { context, page };
}

/**
 * Opens one peer (`shared` from sharedBrowser()): a fresh context (media permission, so Chromium offers
 * 127.0.0.1 host candidates), the test page, and a MeshPeer in it.
 */
export async function openPeer(shared, server, { peerId, track, capacity, ...rest }) {
  const { context, page } = await openPage(shared, peerId);
  const cfg = { signalUrl: `${server.ws}/signal`, track, peerId, ...rest };
  if (capacity !== undefined) cfg.capacity = capacity;
  const assignment = await page.evaluate((c) => window.startPeer(c), cfg);
  return {
    peerId,
    context,
    page,
    assignment,
    closed: false,
    snapshot: () => page.evaluate(() => window.snapshot()),
    /** Test hook: as the parent, kill every child connection without telling the server. */
    dropChildLinks: () => page.evaluate(() => window.dropChildLinks()),
    /** Test hook: `{parent, children: {id: address}}`, the local address each link sends from. */
    linkAddresses: () => page.evaluate(() => window.linkAddresses()),
    /** Test hook: send `n` Heartbeats at once on the signal socket. */
    floodSignal: (n) => page.evaluate((k) => window.floodSignal(k), n),
    ids: () => page.evaluate(() => window.rec.ids),
    logs: () => page.evaluate(() => window.rec.logs),
    async close() {
      this.closed = true;
      await page.close();
      await context.close();
    },
  };
}

/**
 * Opens one LVQR-style peer (e2e/lvqr-peer.mjs: what LVQR's browser client
 * does, in a page of its own) and resolves once its first AssignParent is
 * acted on (a root's integrator has its origin socket open). `kind` is
 * "lvqr", which SDK peers' handles do not have.
 */
export async function openLvqrPeer(shared, server, { peerId, track, capacity }) {
  const { context, page } = await openPage(shared, peerId, "/lvqr-page.html");
  const cfg = { signalUrl: `${server.ws}/signal`, track, peerId };
  if (capacity !== undefined) cfg.capacity = capacity;
  const assignment = await page.evaluate((c) => window.startLvqrPeer(c), cfg);
  return {
    peerId,
    kind: "lvqr",
    context,
    page,
    assignment,
    closed: false,
    /** Links, roles, and every object id delivered with its count (see lvqr-page.mjs). */
    snapshot: () => page.evaluate(() => window.lvqrSnapshot()),
    /** Every delivery in arrival order: [object id, link, AssignParents seen before it, bytes]. */
    deliveries: () => page.evaluate(() => window.lvqrDeliveries()),
    async close() {
      this.closed = true;
      await page.close();
      await context.close();
    },
  };
}

/**
 * Publishes objects start..start+count-1 (payload(i)) to /ingest/{track},
 * one every `intervalMs`. The origin numbers a track's objects from 0 and
 * goes on across publisher connections, so `start` must be the number of
 * objects the track already had. `onSent(i)` runs after object i is sent;
 * when it returns true, no more are sent. Resolves, with how many were sent,
 * after the last one (with the socket drained and closed).
 */
export async function publish(server, track, count, { intervalMs = 10, onSent, token, start = 0 } = {}) {
  const ws = new WebSocket(`${server.ws}/ingest/${track}`, token ? [`lvqr.bearer.${token}`] : undefined);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  ws.on("message", (d) => log(`ingest said: ${d}`));
  let sent = 0;
  while (sent < count) {
    const i = start + sent;
    await new Promise((resolve, reject) => ws.send(payload(i), { binary: true }, (err) => (err ? reject(err) : resolve())));
    sent++;
    if (onSent && (await onSent(i)) === true) break;
    if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
  }
  await new Promise((resolve, reject) => {
    const late = setTimeout(() => reject(new Error(`/ingest/${track}: no closing handshake within 5 s`)), 5_000);
    ws.once("close", () => {
      clearTimeout(late);
      resolve();
    });
    ws.close(1000);
  });
  return sent;
}

/**
 * Publishes objects from `start`, one every `intervalMs`, until every
 * non-root peer among `peers` receives from its parent only, and resolves
 * with how many it sent. A new parent proves that it covers the stream only
 * by delivering, so a peer re-parented after a stream went quiet keeps its
 * origin reader until objects flow again: this gives them something to
 * flow. Fails after `max` objects.
 */
export async function publishUntilParentsOnly(server, track, peers, start, { intervalMs = 20, max = 500 } = {}) {
  let pending = [];
  const sent = await publish(server, track, max, {
    intervalMs,
    start,
    onSent: async () => {
      const snaps = await Promise.all(peers.map((p) => p.snapshot()));
      pending = snaps.filter((s) => s.role !== "Root" && (!s.parentConnected || s.readingOrigin));
      return pending.length === 0;
    },
  });
  if (pending.length > 0) {
    const why = pending.map((s) => `${s.peerId} (parent ${s.parent}, connected ${s.parentConnected}, reading origin ${s.readingOrigin})`);
    throw new Error(`after ${sent} objects, still not fed by their parent only: ${why.join("; ")}`);
  }
  log(`${peers.map((p) => p.peerId).join(", ")}: fed by their parents only after ${sent} more object${sent === 1 ? "" : "s"}`);
  return sent;
}

export async function getMesh(server) {
  const r = await fetch(`${server.base}/api/v1/mesh`);
  if (!r.ok) throw new Error(`/api/v1/mesh: HTTP ${r.status}`);
  return r.json();
}

/** Waits until every peer delivered up to id count-1. */
export async function waitAllDelivered(peers, count, timeoutMs = 60_000) {
  await waitFor(
    async () => {
      const snaps = await Promise.all(peers.map((p) => p.snapshot()));
      const behind = snaps.filter((s) => s.last === null || s.last < count - 1);
      if (behind.length) return false;
      return snaps;
    },
    {
      timeoutMs,
      intervalMs: 250,
      message: `all ${peers.length} peers to deliver ${count} objects`,
    },
  ).catch(async (e) => {
    for (const p of peers) {
      const s = await p.snapshot().catch(() => null);
      log(`${p.peerId}: ${JSON.stringify(s && { ...s, assigns: s.assigns.slice(-3) })}`);
      const l = await p.logs().catch(() => []);
      log(`${p.peerId} log tail:\n  ${l.slice(-40).join("\n  ")}`);
    }
    throw e;
  });
}

/** Asserts a peer delivered exactly start..count-1, in order, each byte-exact. */
export async function expectExact(assert, peer, count, start = 0) {
  const s = await peer.snapshot();
  const ids = await peer.ids();
  assert.equal(s.badCount, 0, `${peer.peerId}: objects with wrong bytes: ${JSON.stringify(s.bad)}`);
  assert.deepEqual(s.outOfOrder, [], `${peer.peerId}: out-of-order deliveries`);
  assert.equal(ids.length, count - start, `${peer.peerId}: delivered ${ids.length} objects, want ${count - start}`);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== start + i) assert.fail(`${peer.peerId}: delivery ${i} is object ${ids[i]}, want ${start + i}`);
  }
  assert.deepEqual(s.lost, [], `${peer.peerId}: lost objects`);
  return s;
}
