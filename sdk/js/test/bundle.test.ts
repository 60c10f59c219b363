import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain ESM build script without types
import { bundle, outfile } from "../scripts/build.mjs";

describe("committed bundle", () => {
  it("dist/meshrelay.js equals a fresh esbuild build (run `npm run build` and commit it)", async () => {
    const fresh: string = await bundle();
    const committed = readFileSync(outfile as string, "utf8");
    expect(committed === fresh, "dist/meshrelay.js is stale: run `npm run build` in sdk/js and commit it").toBe(true);
  });

  it("is one self-contained ESM file exporting MeshPeer", () => {
    const text = readFileSync(join(__dirname, "..", "dist", "meshrelay.js"), "utf8");
    expect(text).toMatch(/export\s*\{[^}]*\bMeshPeer\b/);
    expect(text).not.toMatch(/^\s*import\s/m);
  });
});
