// Opens the -dev demo page in headless Chromium, connects as maggie, prints
// READY once the welcome arrived, then waits for a pushed message that
// contains argv[3] and prints RECEIVED. Exits non-zero on any failure.
const { chromium } = require("playwright-core");

const [base, want] = process.argv.slice(2);
if (!base || !want) {
  console.error("usage: node browser.js <http base url> <text to wait for>");
  process.exit(2);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    page.on("console", (m) => console.error("console:", m.text()));
    await page.goto(base + "/");
    await page.click("button");
    const log = page.locator("#log");
    await log.filter({ hasText: '"type":"welcome"' }).waitFor({ timeout: 20000 });
    console.log("READY");
    await page.locator("#log div", { hasText: want }).waitFor({ timeout: 20000 });
    const line = await page.locator("#log div", { hasText: want }).first().textContent();
    console.log("RECEIVED " + line);
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
