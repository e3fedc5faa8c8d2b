// The browser client (the bundle the demo page embeds) in Node 20, where
// there is no global WebSocket: the ws package's is passed in.
//
//   node sdk.mjs <http-base> <user> <pwd> <publish-key>
//     connect through ticketFromJWT, receive a push to ourselves, subscribe
//     to a channel, be disconnected by POST /disconnect while a message is
//     published, reconnect and recover it, disconnect.
//
// Every step prints one JSON line {"step":…,"ok":true}; a failure prints
// {"step":…,"ok":false,"error":…} and exits 1.
import WebSocket from "ws";
import { Turnstile, ticketFromJWT } from "../../demo/turnstile.min.js";

const [base, user, pwd, publishKey] = process.argv.slice(2);
let step = "login";
const report = (s, extra) => process.stdout.write(JSON.stringify({ step: s, ok: true, ...extra }) + "\n");
const fail = (err) => {
  process.stdout.write(JSON.stringify({ step, ok: false, error: String(err && err.message || err) }) + "\n");
  process.exit(1);
};
setTimeout(() => fail(new Error("timed out")), 20000).unref();

try {
  const auth = await (await fetch(base + "/auth", { method: "POST", body: JSON.stringify({ user, pwd }) })).json();
  report("login");
  step = "connected";
  const client = new Turnstile({ WebSocket, getTicket: ticketFromJWT(base, () => auth.token) });
  const next = (name, pred) => new Promise((resolve) => {
    const off = client.on(name, (e) => { if (pred(e)) { off(); resolve(e); } });
  });
  const connected = next("state", (s) => s.state === "connected");
  let expectDrop = false;
  client.on("state", (s) => {
    if (s.state === "disconnected" && s.reason !== "client" && !(expectDrop && s.code === 4001)) {
      fail(new Error("disconnected: " + JSON.stringify(s)));
    }
  });
  client.connect();
  await connected;
  report("connected");
  step = "message";
  const got = next("message", (m) => m.data === "to-node");
  const post = async (path, body) => {
    const res = await fetch(base + path, { method: "POST", headers: { Authorization: "Bearer " + publishKey }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(path + ": " + res.status);
    return res.json();
  };
  await post("/publish", { user, data: "to-node" });
  await got;
  report("message");

  step = "recovered";
  const news = [];
  const subscribed = new Promise((resolve) => client.subscribe("news", { onSubscribed: resolve, onMessage: (m) => news.push(m.offset) }));
  await subscribed;
  await post("/publish", { channel: "news", data: 1 });
  expectDrop = true;
  const dropped = next("state", (s) => s.state === "disconnected");
  await post("/disconnect", { user });
  await dropped;
  // Both arrive in one burst after the reconnect: listen before it.
  const recovering = next("recovered", (e) => e.channel === "news");
  const second = next("message", (m) => m.channel === "news" && m.offset === 2);
  await post("/publish", { channel: "news", data: 2 });
  const recovered = await recovering;
  await second;
  if (recovered.missed !== 1 || news.join() !== "1,2") throw new Error("recovered " + JSON.stringify(recovered) + ", news offsets " + news);
  report("recovered");
  step = "disconnected";
  client.disconnect();
  if (client.state.reason !== "client") throw new Error("state " + JSON.stringify(client.state));
  report("disconnected");
  process.exit(0);
} catch (err) {
  fail(err);
}
