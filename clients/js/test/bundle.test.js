// The browser bundle: small, and the copy the Go binary embeds for the -dev
// demo page is exactly what the sources build to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const built = readFileSync(new URL("../dist/turnstile.min.js", import.meta.url));

test("the minified bundle gzips to at most 6 KB", () => {
  const gz = gzipSync(built, { level: 9 }).length;
  console.log(`# bundle: ${built.length} bytes minified, ${gz} bytes gzipped`);
  assert.ok(gz <= 6144, `bundle is ${gz} bytes gzipped, over 6 KB`);
});

test("cmd/turnstile/demo/turnstile.min.js is the current build (else: npm run demo, commit it)", () => {
  const embedded = readFileSync(new URL("../../../cmd/turnstile/demo/turnstile.min.js", import.meta.url));
  assert.ok(embedded.equals(built), "the embedded bundle is stale: run `npm run demo` in clients/js and commit cmd/turnstile/demo/turnstile.min.js");
});
