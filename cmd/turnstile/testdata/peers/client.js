// Node's `ws` client as a real peer of turnstile, driven by peers_test.go.
//
//   node client.js flow <http-base> <user> <pwd> <publish-key>
//     log in, trade the token for a ticket, connect to the URL the server
//     hands out, wait for the welcome, publish to ourselves over HTTP,
//     receive the push, close with 1000.
//   node client.js echo <http-base> <user> <pwd>
//     against a server started with -echo: text, binary, fragmented text and
//     binary, a large message, our ping, the server's pings answered while
//     idle, then a close with code 4000 that must be echoed.
//
// Every step prints one JSON line {"step":…,"ok":true,…} to stdout; the
// first failure prints {"step":…,"ok":false,"error":…} and exits 1.
'use strict';

const WebSocket = require('ws');

const [mode, base, user, pwd, publishKey] = process.argv.slice(2);
const STEP_TIMEOUT_MS = 10000;

function report(step, extra) {
  process.stdout.write(JSON.stringify({ step, ok: true, ...extra }) + '\n');
}

function fail(step, err) {
  process.stdout.write(JSON.stringify({ step, ok: false, error: String(err && err.message || err) }) + '\n');
  process.exit(1);
}

async function postJSON(path, body, bearer) {
  const headers = { 'Content-Type': 'application/json' };
  if (bearer) headers.Authorization = 'Bearer ' + bearer;
  const res = await fetch(base + path, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

// connect logs in, gets a ticket and opens the WebSocket; it resolves with
// the socket and the welcome once it arrives.
async function connect() {
  const auth = await postJSON('/auth', { user, pwd });
  if (!auth.token) throw new Error('no token');
  report('login');
  const tk = await postJSON('/ws_ticket', undefined, auth.token);
  if (!tk.ticket || !tk.url || !tk.url.includes(tk.ticket)) throw new Error('bad ticket answer');
  report('ticket', { urlHasTicket: true });
  const ws = new WebSocket(tk.url);
  const inbox = messageQueue(ws);
  const welcome = await inbox.next('welcome');
  const w = JSON.parse(welcome.data.toString());
  if (w.type !== 'welcome' || w.user !== user || !w.conn) throw new Error('bad welcome ' + welcome.data);
  report('welcome', { user: w.user, conn: w.conn });
  return { ws, inbox };
}

// messageQueue turns 'message' events into awaitable values, in order.
function messageQueue(ws) {
  const queued = [];
  const waiting = [];
  let failure = null;
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiting.length) waiting.shift().resolve(m); else queued.push(m);
  });
  const stop = (err) => {
    failure = err;
    while (waiting.length) waiting.shift().reject(err);
  };
  ws.on('error', stop);
  ws.on('close', (code) => stop(new Error('closed with ' + code)));
  return {
    next(step) {
      if (queued.length) return Promise.resolve(queued.shift());
      if (failure) return Promise.reject(failure);
      return withTimeout(step, new Promise((resolve, reject) => waiting.push({ resolve, reject })));
    },
  };
}

function withTimeout(step, p) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(step + ': timed out')), STEP_TIMEOUT_MS); }),
  ]).finally(() => clearTimeout(timer));
}

function once(ws, event, step) {
  return withTimeout(step, new Promise((resolve) => ws.once(event, (...args) => resolve(args))));
}

function send(ws, data, opts) {
  return new Promise((resolve, reject) => ws.send(data, opts, (err) => (err ? reject(err) : resolve())));
}

async function closeWith(ws, code, reason, step) {
  const closed = once(ws, 'close', step);
  ws.close(code, reason);
  const [gotCode, gotReason] = await closed;
  if (gotCode !== code) throw new Error(`close echoed ${gotCode} ${gotReason}, want ${code}`);
  report(step, { code: gotCode, reason: gotReason.toString() });
}

async function flow() {
  const { ws, inbox } = await connect();
  const out = await postJSON('/publish', { user, data: { hello: 'from node', n: 1 } }, publishKey);
  if (out.recipients < 1) throw new Error('publish reached ' + out.recipients);
  report('publish', { recipients: out.recipients });
  const m = await inbox.next('push');
  const push = JSON.parse(m.data.toString());
  if (m.isBinary || push.type !== 'message' || push.data.hello !== 'from node') throw new Error('bad push ' + m.data);
  report('push', { data: push.data });
  await closeWith(ws, 1000, 'done', 'close');
}

async function expectEcho(inbox, step, data, isBinary) {
  const m = await inbox.next(step);
  const want = Buffer.from(data);
  if (m.isBinary !== isBinary || !Buffer.from(m.data).equals(want)) {
    throw new Error(`${step}: got ${m.isBinary ? 'binary' : 'text'} ${m.data.length} bytes`);
  }
  report(step, { bytes: want.length, binary: isBinary });
}

async function echo() {
  const { ws, inbox } = await connect();

  await send(ws, 'hello, echo');
  await expectEcho(inbox, 'text', 'hello, echo', false);

  const bin = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  await send(ws, bin, { binary: true });
  await expectEcho(inbox, 'binary', bin, true);

  // Fragmented: ws sends one frame per send() and FIN only with fin: true.
  await send(ws, 'frag-one|', { fin: false });
  await send(ws, 'κόσμε|', { fin: false }); // multi-byte text across fragments
  await send(ws, 'frag-three', { fin: true });
  await expectEcho(inbox, 'fragmented text', 'frag-one|κόσμε|frag-three', false);

  const part = Buffer.alloc(3000, 7);
  await send(ws, part, { binary: true, fin: false });
  await send(ws, part, { binary: true, fin: false });
  await send(ws, part, { binary: true, fin: true });
  await expectEcho(inbox, 'fragmented binary', Buffer.concat([part, part, part]), true);

  const large = 'x'.repeat(60000);
  await send(ws, large);
  await expectEcho(inbox, 'large text', large, false);

  // Our ping: the server answers with the same payload.
  const pong = once(ws, 'pong', 'pong');
  ws.ping(Buffer.from('are you there'));
  const [payload] = await pong;
  if (payload.toString() !== 'are you there') throw new Error('pong payload ' + payload);
  report('ping', { payload: payload.toString() });

  // The server's pings: ws answers them itself. Stay silent for longer than
  // the server's idle timeout; only the pongs keep the connection alive.
  const idleMs = Number(process.env.PEER_IDLE_MS || 3000);
  let pings = 0;
  ws.on('ping', () => { pings++; });
  await new Promise((r) => setTimeout(r, idleMs));
  if (ws.readyState !== WebSocket.OPEN) throw new Error('closed while idle');
  if (pings < 1) throw new Error('no ping from the server in ' + idleMs + ' ms');
  report('server pings answered', { pings });
  await send(ws, 'still here');
  await expectEcho(inbox, 'alive after idle', 'still here', false);

  await closeWith(ws, 4000, 'bye from node', 'close');
}

const modes = { flow, echo };
if (!modes[mode]) fail('args', 'usage: node client.js flow|echo <http-base> <user> <pwd> [publish-key]');
modes[mode]().then(() => process.exit(0), (err) => fail('run', err));
