// DESIGN 1.7 in a real browser: the ticket as a subprotocol beside
// turnstile.v1, and an Origin-bound ticket refused from another Origin.
// Prints one JSON line with what the browser saw. Usage:
//   node protocol.js <http base at 127.0.0.1> <same server at localhost>
const { chromium } = require("playwright-core");

const [base, other] = process.argv.slice(2);
if (!base || !other) {
  console.error("usage: node protocol.js <http base url> <same server, another origin>");
  process.exit(2);
}

// In the page: log in, take a ticket (bound to this page's Origin: the
// POST carries it), and either connect with it as a subprotocol or hand it out.
const takeTicket = async () => {
  const post = (path, init) => fetch(path, { method: "POST", ...init }).then((r) => r.json());
  const { token } = await post("/auth", { body: JSON.stringify({ user: "maggie", pwd: "secret" }) });
  return post("/ws_ticket", { headers: { Authorization: "Bearer " + token } });
};

const connect = ([url, protocols]) =>
  new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    const seen = { protocol: null, welcome: null, close: null };
    ws.onopen = () => { seen.protocol = ws.protocol; };
    ws.onmessage = (m) => { seen.welcome = JSON.parse(m.data); ws.close(1000); };
    ws.onclose = (c) => { seen.close = c.code; resolve(seen); };
  });

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(base + "/");
    const first = await page.evaluate(takeTicket);
    const bare = first.url.split("?")[0];
    const viaProtocol = await page.evaluate(connect, [bare, ["turnstile.v1", "turnstile.ticket." + first.ticket]]);

    const second = await page.evaluate(takeTicket);
    const otherPage = await browser.newPage();
    await otherPage.goto(other + "/");
    const crossOrigin = await otherPage.evaluate(connect, [second.url, []]);
    const sameOriginAfter = await page.evaluate(connect, [second.url, []]);
    console.log(JSON.stringify({ viaProtocol, crossOrigin, sameOriginAfter }));
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
