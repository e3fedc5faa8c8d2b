import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Turnstile, UnauthorizedError, TicketError, backoffCap, backoffDelay } from "../dist/index.js";
import { FakeClock, FakeSocket, flush } from "./fakes.js";

let clock;
beforeEach(() => {
  clock = new FakeClock();
  FakeSocket.reset();
});

/** A client over fake sockets whose getTicket hands out t1, t2, … and records every call. */
function client(opts = {}) {
  const calls = [];
  const getTicket = opts.getTicket ?? (async () => {
    calls.push(clock.now());
    const n = calls.length;
    return { ticket: "t" + n, url: "ws://h/ws?ticket=t" + n, expires: Math.floor(clock.now() / 1000) + 30, ...opts.answer };
  });
  const c = new Turnstile({ WebSocket: FakeSocket, clock, random: opts.random ?? (() => 0.5), ...opts, getTicket });
  const states = [];
  c.on("state", (s) => states.push(s));
  return { c, calls, states };
}

test("backoff caps double from min to max and delays are full jitter below the cap", () => {
  const caps = [0, 1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffCap(n, 500, 20000));
  assert.deepEqual(caps, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]);
  assert.equal(backoffDelay(3, 500, 20000, () => 0), 0);
  assert.equal(backoffDelay(3, 500, 20000, () => 0.999999), 3999);
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(4, 500, 20000, Math.random);
    assert.ok(d >= 0 && d < 8000, "delay " + d + " outside [0, 8000)");
    seen.add(d);
  }
  assert.ok(seen.size > 100, "jitter: only " + seen.size + " distinct delays of 200");
});

test("every attempt gets a fresh ticket and waits a jittered, growing, bounded backoff", async () => {
  const { c, calls, states } = client({ minBackoffMs: 500, maxBackoffMs: 4000, random: () => 0.75 });
  c.connect();
  await flush();
  const waits = [];
  for (let i = 0; i < 6; i++) {
    const ws = FakeSocket.last();
    assert.equal(ws.ticket, "t" + (i + 1), "attempt " + (i + 1) + " uses its own ticket");
    ws.fail();
    const s = states[states.length - 1];
    assert.equal(s.state, "disconnected");
    assert.equal(s.reason, "network");
    waits.push(s.retryInMs);
    await clock.advance(s.retryInMs - 1);
    assert.equal(FakeSocket.all.length, i + 1, "no attempt before the backoff ends");
    await clock.advance(1);
  }
  assert.deepEqual(waits, [375, 750, 1500, 3000, 3000, 3000]); // 0.75 × cap, cap 500 → 4000
  assert.equal(calls.length, 7);
  assert.equal(new Set(FakeSocket.all.map((s) => s.ticket)).size, FakeSocket.all.length);
  assert.deepEqual(states.filter((s) => s.state === "connecting").map((s) => s.attempt), [1, 2, 3, 4, 5, 6, 7]);
});

test("states: connecting, connected only on welcome, server close with code and reason", async () => {
  const { c, states } = client();
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  ws.open();
  assert.equal(c.state.state, "connecting", "open alone is not connected: the welcome is");
  ws.push({ type: "welcome", user: "maggie", conn: "c1" });
  assert.equal(c.state.state, "connected");
  ws.serverClose(1011, "internal error");
  assert.deepEqual(states.map((s) => [s.state, s.reason, s.code, s.message]), [
    ["connecting", undefined, undefined, undefined],
    ["connected", undefined, undefined, undefined],
    ["disconnected", "server", 1011, "internal error"],
  ]);
  assert.ok(states[2].retryInMs >= 0 && states[2].retryInMs < 500);
});

test("a ticket refused with 401 is unauthorized: no retry until connect() again", async () => {
  let n = 0;
  const { c, states } = client({ getTicket: async () => { n++; throw new UnauthorizedError("token expired"); } });
  c.connect();
  await clock.advance(120000);
  assert.equal(n, 1, "one ticket call, no retry storm");
  assert.equal(FakeSocket.all.length, 0);
  const last = states[states.length - 1];
  assert.equal(last.state, "disconnected");
  assert.equal(last.reason, "unauthorized");
  assert.equal(last.retryInMs, undefined);
  c.connect();
  await flush();
  assert.equal(n, 2);
});

test("any error with status 403 counts as unauthorized; 503 retries after Retry-After", async () => {
  let mode = "503";
  let n = 0;
  const { c, states } = client({
    getTicket: async () => {
      n++;
      if (mode === "503") throw new TicketError("full", 503, 7000);
      throw Object.assign(new Error("forbidden"), { status: 403 });
    },
  });
  c.connect();
  await flush();
  let s = states[states.length - 1];
  assert.equal(s.reason, "server");
  assert.equal(s.status, 503);
  assert.equal(s.retryInMs, 7000, "Retry-After is a floor under the backoff");
  mode = "403";
  await clock.advance(7000);
  s = states[states.length - 1];
  assert.equal(s.reason, "unauthorized");
  assert.equal(s.status, 403);
  await clock.advance(60000);
  assert.equal(n, 2);
});

test("1001 shutting down spreads the reconnect over shutdownSpreadMs; 1008 session expired reconnects at once with a new ticket", async () => {
  const { c, calls, states } = client({ random: () => 0.9, shutdownSpreadMs: 5000 });
  c.connect();
  await flush();
  FakeSocket.last().welcome();
  FakeSocket.last().serverClose(1001, "shutting down");
  assert.equal(states[states.length - 1].retryInMs, 4500);
  await clock.advance(4500);
  FakeSocket.last().welcome();
  FakeSocket.last().serverClose(1008, "session expired");
  const s = states[states.length - 1];
  assert.equal(s.reason, "server");
  assert.equal(s.code, 1008);
  assert.ok(s.retryInMs < 500, "session expiry is not a failure to back off from: " + s.retryInMs);
  await clock.advance(s.retryInMs);
  assert.equal(calls.length, 3);
  assert.equal(FakeSocket.last().ticket, "t3");
});

test("positions: kept per channel, sent as since on resubscribe, personal channel via the upgrade URL", async () => {
  const { c } = client();
  const got = [];
  const recovered = [];
  const failed = [];
  const personal = [];
  c.on("message", (m) => personal.push(m));
  c.subscribe("news", {
    onMessage: (m) => got.push(m.offset),
    onRecovered: (e) => recovered.push(e),
    onRecoveryFailed: (e) => failed.push(e),
  });
  c.connect();
  await flush();
  let ws = FakeSocket.last();
  assert.equal(ws.since, null, "first connection: no since");
  ws.welcome({ offset: 3, epoch: "p1" });
  let sub = ws.sentOf("subscribe");
  assert.equal(sub.length, 1);
  assert.equal(sub[0].channel, "news");
  assert.equal(sub[0].since, undefined, "first subscribe has no position to resume from");
  ws.push({ type: "subscribed", id: sub[0].id, channel: "news", offset: 5, epoch: "e1" });
  ws.push({ type: "message", channel: "news", offset: 6, data: "a" });
  ws.push({ type: "message", channel: "news", offset: 7, data: "b" });
  ws.push({ type: "message", channel: "news", offset: 7, data: "b" });
  ws.push({ type: "message", channel: "#maggie", offset: 4, data: "p" });
  assert.deepEqual(got, [6, 7], "a repeated offset is delivered once");
  assert.deepEqual(c.position("news"), { offset: 7, epoch: "e1" });
  assert.deepEqual(c.position("#maggie"), { offset: 4, epoch: "p1" });

  ws.fail();
  await clock.advance(1000);
  ws = FakeSocket.last();
  assert.equal(ws.since, "4:p1", "personal channel resumes through the upgrade URL");
  ws.welcome({ offset: 5, epoch: "p1", recovered: true, missed: 1 });
  ws.push({ type: "message", channel: "#maggie", offset: 5, data: "p2" });
  sub = ws.sentOf("subscribe");
  assert.deepEqual(sub[0].since, { offset: 7, epoch: "e1" });
  ws.push({ type: "subscribed", id: sub[0].id, channel: "news", offset: 9, epoch: "e1", recovered: true, missed: 2 });
  ws.push({ type: "message", channel: "news", offset: 8, data: "c" });
  ws.push({ type: "message", channel: "news", offset: 9, data: "d" });
  assert.deepEqual(got, [6, 7, 8, 9], "recovered messages follow the reply and are not dropped as old");
  assert.deepEqual(recovered, [{ channel: "news", missed: 2 }]);
  assert.deepEqual(personal.filter((m) => m.channel === "#maggie").map((m) => m.offset), [4, 5]);

  ws.serverClose(4001, "disconnected");
  await clock.advance(1000);
  ws = FakeSocket.last();
  ws.welcome({ offset: 0, epoch: "p2", recovered: false });
  sub = ws.sentOf("subscribe");
  assert.deepEqual(sub[0].since, { offset: 9, epoch: "e1" });
  ws.push({ type: "subscribed", id: sub[0].id, channel: "news", offset: 0, epoch: "e2", recovered: false });
  assert.deepEqual(failed, [{ channel: "news" }]);
  assert.deepEqual(c.position("news"), { offset: 0, epoch: "e2" }, "after a lost history the new epoch is the base");
  assert.deepEqual(c.position("#maggie"), { offset: 0, epoch: "p2" });
  ws.push({ type: "message", channel: "news", offset: 1, data: "new" });
  assert.deepEqual(got, [6, 7, 8, 9, 1]);
});

test("recoveryFailed and recovered events name the channel, personal one included", async () => {
  const { c } = client();
  const ev = [];
  c.on("recovered", (e) => ev.push(["ok", e.channel, e.missed]));
  c.on("recoveryFailed", (e) => ev.push(["lost", e.channel]));
  c.connect();
  await flush();
  FakeSocket.last().welcome({ offset: 2, epoch: "p1" });
  FakeSocket.last().fail();
  await clock.advance(1000);
  FakeSocket.last().welcome({ offset: 0, epoch: "p9", recovered: false });
  assert.deepEqual(ev, [["lost", "#maggie"]]);
});

test("unsubscribe sends unsubscribe and is not resubscribed; a forbidden subscribe is dropped with onError", async () => {
  const { c } = client();
  const errors = [];
  const a = c.subscribe("a");
  c.subscribe("secret", { onError: (e) => errors.push(e) });
  c.connect();
  await flush();
  let ws = FakeSocket.last();
  ws.welcome();
  const subs = ws.sentOf("subscribe");
  assert.deepEqual(subs.map((s) => s.channel), ["a", "secret"]);
  ws.push({ type: "error", id: subs[1].id, code: "forbidden", reason: "not in your channels" });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "forbidden");
  assert.equal(errors[0].channel, "secret");
  a.unsubscribe();
  a.unsubscribe();
  assert.deepEqual(ws.sentOf("unsubscribe").map((s) => s.channel), ["a"]);
  ws.fail();
  await clock.advance(1000);
  ws = FakeSocket.last();
  ws.welcome();
  assert.deepEqual(ws.sentOf("subscribe"), [], "neither the unsubscribed nor the refused channel comes back");
  assert.throws(() => { c.subscribe("b"); c.subscribe("b"); }, /already subscribed/);
});

test("refresh: a fresh ticket over the socket before the session ends, rescheduled from refreshed", async () => {
  const start = Math.floor(clock.now() / 1000);
  const { c, calls } = client({ answer: { sessionExpires: start + 120 } });
  const refreshed = [];
  c.on("refreshed", (e) => refreshed.push(e.expires));
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  FakeSocket.autoPong = true;
  ws.welcome();
  await clock.advance(89000);
  assert.equal(ws.sentOf("refresh").length, 0, "not yet: 30 s lead before the end at 120 s");
  await clock.advance(1000);
  const r = ws.sentOf("refresh");
  assert.equal(r.length, 1, "refresh sent at 90 s");
  assert.equal(r[0].ticket, "t2", "with a new ticket");
  assert.equal(calls.length, 2);
  ws.push({ type: "refreshed", id: r[0].id, expires: start + 90 + 600 });
  assert.deepEqual(refreshed, [start + 690]);
  const next = clock.next.call({ timers: new Map([...clock.timers].filter(([, t]) => t.at > clock.now() + 60000)) });
  assert.equal(next.at, (start + 690 - 30) * 1000, "next refresh 30 s before the new end");
  assert.equal(c.state.state, "connected");
});

test("a refresh that does not extend the session is not repeated ever faster", async () => {
  const start = Math.floor(clock.now() / 1000);
  const { c } = client({ answer: { sessionExpires: start + 60 } });
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  FakeSocket.autoPong = true;
  ws.welcome();
  // The server answers every refresh with the same end: the token was not renewed.
  const answered = new Set();
  for (let t = 0; t < 59; t++) {
    await clock.advance(1000);
    for (const r of ws.sentOf("refresh")) {
      if (!answered.has(r.id)) { answered.add(r.id); ws.push({ type: "refreshed", id: r.id, expires: start + 60 }); }
    }
  }
  const n = ws.sentOf("refresh").length;
  assert.ok(n >= 2 && n <= 7, n + " refreshes in one minute; want a few, at least 5 s apart");
});

test("refresh without a known session end uses the ticket's expires", async () => {
  const { c } = client({ pingIntervalMs: 1e9 });
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  ws.welcome();
  await clock.advance(14999);
  assert.equal(ws.sentOf("refresh").length, 0);
  await clock.advance(1);
  assert.equal(ws.sentOf("refresh").length, 1, "ticket expires in 30 s: refresh at half of it");
});

test("heartbeat: pings every interval; no frame within the pong timeout means network", async () => {
  const { c, states } = client({ pingIntervalMs: 4000, pongTimeoutMs: 4000 });
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  ws.welcome();
  await clock.advance(4000);
  let pings = ws.sentOf("ping");
  assert.equal(pings.length, 1);
  ws.push({ type: "pong", id: pings[0].id });
  await clock.advance(4000);
  assert.equal(c.state.state, "connected", "answered ping keeps the link");
  assert.equal(ws.sentOf("ping").length, 2);
  await clock.advance(3999);
  assert.equal(c.state.state, "connected");
  await clock.advance(1);
  const s = states[states.length - 1];
  assert.equal(s.state, "disconnected");
  assert.equal(s.reason, "network");
  assert.equal(s.message, "heartbeat timeout");
  assert.ok(ws.closedWith, "the dead socket is closed");
  await clock.advance(1000);
  assert.equal(FakeSocket.all.length, 2, "and a new attempt follows");
});

test("a dead link is noticed within pingInterval + pongTimeout of the last frame by default (≤ 10 s)", async () => {
  const { c } = client();
  c.connect();
  await flush();
  FakeSocket.last().welcome();
  await clock.advance(8000);
  assert.equal(c.state.state, "disconnected");
  assert.equal(c.state.reason, "network");
});

test("a connect that never completes times out as network", async () => {
  const { c } = client({ connectTimeoutMs: 10000 });
  c.connect();
  await clock.advance(9999);
  assert.equal(c.state.state, "connecting");
  await clock.advance(1);
  assert.equal(c.state.reason, "network");
  assert.equal(c.state.message, "connect timeout");
});

test("one connection at a time; disconnect closes and stops retrying", async () => {
  const { c, calls, states } = client();
  c.connect();
  c.connect();
  await flush();
  c.connect();
  assert.equal(FakeSocket.all.length, 1);
  FakeSocket.last().welcome();
  c.connect();
  assert.equal(FakeSocket.all.length, 1);
  c.disconnect();
  assert.deepEqual(FakeSocket.last().closedWith, { code: 1000, reason: undefined });
  assert.equal(states[states.length - 1].reason, "client");
  await clock.advance(60000);
  assert.equal(calls.length, 1);
  assert.equal(FakeSocket.all.length, 1);
});

test("a stale socket's events after a reconnect are ignored", async () => {
  const { c } = client();
  const msgs = [];
  c.on("message", (m) => msgs.push(m.data));
  c.connect();
  await flush();
  const old = FakeSocket.last();
  old.welcome();
  c.disconnect();
  old.push({ type: "message", data: "late" });
  assert.deepEqual(msgs, []);
});

test("a bare ticket string needs options.url; since and ticket are added to it", async () => {
  let n = 0;
  const { c } = client({ url: "wss://push.example/ws", getTicket: () => "tk" + ++n });
  c.connect();
  await flush();
  assert.equal(FakeSocket.last().url, "wss://push.example/ws?ticket=tk1");
});

test("a throwing listener does not break the client; its error is rethrown on a fresh task", async () => {
  const { c } = client();
  c.on("state", () => { throw new Error("app bug"); });
  const rethrown = [];
  const real = globalThis.setTimeout;
  globalThis.setTimeout = (fn) => { rethrown.push(fn); return 0; };
  try {
    c.connect();
    await flush();
    FakeSocket.last().welcome();
  } finally {
    globalThis.setTimeout = real;
  }
  assert.equal(c.state.state, "connected");
  assert.ok(rethrown.length >= 2);
  assert.throws(rethrown[0], /app bug/);
});

test("without a global WebSocket the constructor says to pass the ws package's", { skip: globalThis.WebSocket ? "this Node has a global WebSocket" : false }, () => {
  assert.throws(() => new Turnstile({ getTicket: () => "x" }), /pass \{ WebSocket \} from the ws package/);
});

test("disconnect while the socket is still connecting closes it once open (browsers log an error otherwise)", async () => {
  const { c } = client();
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  c.disconnect();
  assert.equal(ws.closedWith, undefined, "not closed while connecting");
  ws.open();
  assert.deepEqual(ws.closedWith, { code: 1000, reason: undefined });
  assert.equal(c.state.state, "disconnected");
});

test("subscribe while connected is sent at once; messages of a channel go to its handler and the client event", async () => {
  const { c } = client();
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  ws.welcome();
  const mine = [];
  const all = [];
  c.on("message", (m) => all.push(m));
  c.subscribe("chat:1", { onMessage: (m) => mine.push(m.data) });
  const [s] = ws.sentOf("subscribe");
  assert.equal(s.channel, "chat:1");
  ws.push({ type: "subscribed", id: s.id, channel: "chat:1", offset: 0, epoch: "e" });
  ws.push({ type: "message", channel: "chat:1", offset: 1, data: "hi" });
  ws.push({ type: "message", data: "to all" });
  assert.deepEqual(mine, ["hi"]);
  assert.deepEqual(all, [{ channel: "chat:1", offset: 1, data: "hi" }, { data: "to all" }]);
});

test("ticketIn protocol: the ticket goes in Sec-WebSocket-Protocol beside turnstile.v1, not in the URL", async () => {
  const { c } = client({ ticketIn: "protocol" });
  c.connect();
  await flush();
  let ws = FakeSocket.last();
  assert.equal(ws.url, "ws://h/ws");
  assert.deepEqual(ws.protocols, ["turnstile.v1", "turnstile.ticket.t1"]);
  ws.welcome({ offset: 2, epoch: "p1" });
  ws.fail();
  await clock.advance(1000);
  ws = FakeSocket.last();
  assert.equal(ws.url, "ws://h/ws?since=2:p1");
  assert.deepEqual(ws.protocols, ["turnstile.v1", "turnstile.ticket.t2"]);
});

test("messages of a channel no longer subscribed are dropped, and its position forgotten", async () => {
  const { c } = client();
  const all = [];
  c.on("message", (m) => all.push(m.channel + "/" + m.offset));
  const sub = c.subscribe("news");
  c.connect();
  await flush();
  const ws = FakeSocket.last();
  ws.welcome();
  const [s] = ws.sentOf("subscribe");
  ws.push({ type: "subscribed", id: s.id, channel: "news", offset: 3, epoch: "e" });
  ws.push({ type: "message", channel: "news", offset: 4, data: 1 });
  sub.unsubscribe();
  ws.push({ type: "message", channel: "news", offset: 5, data: 2 });
  ws.push({ type: "message", channel: "#maggie", offset: 1, data: 3 });
  assert.deepEqual(all, ["news/4", "#maggie/1"]);
  assert.equal(c.position("news"), undefined);
  c.subscribe("news");
  const again = ws.sentOf("subscribe")[1];
  assert.equal(again.since, undefined, "a new subscription starts from now, not from the old position");
});

test("a getTicket answer without a ticket is a failed attempt, retried", async () => {
  let n = 0;
  const { c } = client({ getTicket: async () => (++n === 1 ? { url: "ws://h/ws" } : { ticket: "ok", url: "ws://h/ws?ticket=ok" }) });
  c.connect();
  await flush();
  assert.equal(c.state.state, "disconnected");
  assert.equal(c.state.message, "getTicket returned no ticket");
  assert.equal(FakeSocket.all.length, 0);
  await clock.advance(1000);
  assert.equal(FakeSocket.last().ticket, "ok");
});
