// Drives Debian's Chromium for the Go browser tests (cmd/turnstile/
// browser_test.go). Reads one JSON command per line on stdin, answers one
// JSON line on stdout: {"ok":true,"value":…} or {"ok":false,"error":"…"}.
//
//   {"op":"open","url":…}                       new page; counts requests and console errors
//   {"op":"route","path":"/auth","status":200,"body":"…"}  answer that path in the browser
//   {"op":"click","sel":…} {"op":"fill","sel":…,"value":…}
//   {"op":"eval","js":"expr"}                    value of a page expression
//   {"op":"wait","js":"expr","timeout":ms}       until the expression is truthy; its value
//   {"op":"stats"}                               {requests:{path:n}, consoleErrors:[…], pageErrors:[…]}
const readline = require("readline");
const { chromium } = require("playwright-core");

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  let page = null;
  const stats = { requests: {}, consoleErrors: [], pageErrors: [] };
  const ops = {
    async open(c) {
      page = await browser.newPage();
      page.on("console", (m) => {
        console.error("console." + m.type() + ": " + m.text());
        if (m.type() === "error") stats.consoleErrors.push(m.text());
      });
      page.on("pageerror", (e) => stats.pageErrors.push(String(e)));
      page.on("request", (r) => {
        const p = new URL(r.url()).pathname;
        stats.requests[p] = (stats.requests[p] || 0) + 1;
      });
      await page.goto(c.url);
      return null;
    },
    async route(c) {
      await page.route("**" + c.path, (r) => r.fulfill({ status: c.status, contentType: "application/json", body: c.body }));
      return null;
    },
    async click(c) { await page.click(c.sel); return null; },
    async fill(c) { await page.fill(c.sel, c.value); return null; },
    async eval(c) { return await page.evaluate(c.js); },
    async wait(c) {
      const h = await page.waitForFunction(c.js, null, { timeout: c.timeout || 20000, polling: 50 });
      return await h.jsonValue();
    },
    async stats() { return stats; },
  };
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let out;
    try {
      const c = JSON.parse(line);
      if (c.op === "quit") break;
      const fn = ops[c.op];
      if (!fn) throw new Error("unknown op " + c.op);
      out = { ok: true, value: (await fn(c)) ?? null };
    } catch (err) {
      out = { ok: false, error: String(err && err.message || err) };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  }
  await browser.close();
  process.exit(0); // stdin, still open, would keep node running
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
