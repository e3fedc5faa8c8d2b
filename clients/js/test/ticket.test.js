import { test } from "node:test";
import assert from "node:assert/strict";
import { ticketFromJWT, jwtExpiry, UnauthorizedError, TicketError } from "../dist/index.js";

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims) => b64({ alg: "HS256" }) + "." + b64(claims) + ".sig";

function fakeFetch(status, body, headers = {}) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init });
    return new Response(JSON.stringify(body), { status, headers });
  };
  return { f, calls };
}

test("ticketFromJWT posts the current JWT as a bearer and adds the session end from its exp", async () => {
  const { f, calls } = fakeFetch(200, { ticket: "tk", url: "ws://h/ws?ticket=tk", expires: 100 });
  let n = 0;
  const get = ticketFromJWT("http://h:8080/", () => jwt({ sub: "maggie", exp: 5000 + n++ }), { fetch: f });
  assert.deepEqual(await get(), { ticket: "tk", url: "ws://h/ws?ticket=tk", expires: 100, sessionExpires: 5000 });
  await get();
  assert.equal(calls[0].url, "http://h:8080/ws_ticket");
  assert.equal(calls[0].init.method, "POST");
  assert.equal(calls[0].init.headers.Authorization, "Bearer " + jwt({ sub: "maggie", exp: 5000 }));
  assert.equal(calls[1].init.headers.Authorization, "Bearer " + jwt({ sub: "maggie", exp: 5001 }), "the JWT is asked for on every call");
});

test("ticketFromJWT: 401 and 403 are UnauthorizedError, 503 a TicketError with Retry-After", async () => {
  for (const status of [401, 403]) {
    const { f } = fakeFetch(status, { error: "invalid token" });
    await assert.rejects(ticketFromJWT("http://h", () => "x.y.z", { fetch: f })(), (e) =>
      e instanceof UnauthorizedError && e.status === status && /invalid token/.test(e.message));
  }
  const { f } = fakeFetch(503, { error: "ticket store full" }, { "Retry-After": "3" });
  await assert.rejects(ticketFromJWT("http://h", () => "x.y.z", { fetch: f })(), (e) =>
    e instanceof TicketError && e.status === 503 && e.retryAfterMs === 3000);
});

test("ticketFromJWT without a token is unauthorized without a request", async () => {
  const { f, calls } = fakeFetch(200, {});
  await assert.rejects(ticketFromJWT("http://h", () => null, { fetch: f })(), UnauthorizedError);
  assert.equal(calls.length, 0);
});

test("jwtExpiry reads exp from base64url without padding and tolerates garbage", () => {
  assert.equal(jwtExpiry(jwt({ exp: 1234567890, sub: "ü?>" })), 1234567890);
  assert.equal(jwtExpiry(jwt({ sub: "x" })), undefined);
  assert.equal(jwtExpiry("not a jwt"), undefined);
  assert.equal(jwtExpiry("a.!!!.c"), undefined);
});
