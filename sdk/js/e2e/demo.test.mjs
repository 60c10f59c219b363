// The demo page as the server serves it (/demo, loading /sdk/meshrelay.js):
// "Add viewer" twice, both viewers receive the built-in demo stream, one
// through the other, and the tree drawn from /api/v1/mesh shows them.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchBrowser, log, startServer, waitFor } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function twoViewers({ extraArgs = [], query = "" } = {}) {
  const server = await startServer({ rootPeerCount: 1, maxPeers: 2, demo: true, extraArgs });
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => log(`[demo pageerror] ${e.message}`));
    await page.goto(`${server.base}/demo${query}`);
    await page.click("#add");
    await waitFor(async () => (await page.locator("#viewers tr").count()) === 1, { message: "first viewer row" });
    await page.click("#add");
    const rows = await waitFor(
      async () => {
        const r = await page.$$eval("#viewers tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
        // role, parent, depth, ..., from parent, from origin, forwarded, last object
        return r.length === 2 && r.every((c) => c[8] && c[8].startsWith("#")) && r.some((c) => Number(c[5]) > 0) ? r : false;
      },
      { timeoutMs: 20_000, message: "both viewers receiving, one from its parent" },
    );
    log(`demo viewers: ${JSON.stringify(rows)}`);
    const roles = rows.map((c) => c[1]);
    assert.equal(roles.filter((r) => r === "Root").length, 1, `one root: ${roles}`);
    assert.ok(roles.some((r) => r === "Relay" || r === "Leaf"), `one relay or leaf: ${roles}`);
    await waitFor(async () => (await page.locator("#tree .node").count()) === 2, { message: "two nodes in the tree" });
    if (process.env.E2E_SCREENSHOT) await page.screenshot({ path: process.env.E2E_SCREENSHOT, fullPage: true });
  } finally {
    await context.close();
    await server.stop();
  }
}

test("demo page: add two viewers on demo/live", () => twoViewers());

test("demo page on a server with subscribe and admin tokens, given in the page's address", () =>
  twoViewers({
    extraArgs: ["--subscribe-token", "sub-t", "--admin-token", "adm-t"],
    query: "?token=sub-t&admin_token=adm-t",
  }));
