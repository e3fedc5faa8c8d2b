// channels: CONNS listeners, each subscribed to PER_CONN of CHANNELS
// channels (spread evenly), while one publisher sends RATE messages per
// second round-robin over the channels for DURATION_S. Each message carries
// its send time; every listener records publish-to-receive latency. A share
// of the listeners (RECONNECT, 0..1) drops its connection at a random moment
// and comes back with a new ticket, resubscribing with its last position:
// it must get every missed message once, in order (or be told
// recovered:false), which the gaps and duplicates counters check.
//
// Uses k6's k6/websockets module (the event-loop WebSocket API).
//
//   k6 run -e CONNS=1000 -e CHANNELS=100 -e PER_CONN=3 -e RATE=200 \
//          -e PUBLISH_KEY=… bench/k6/channels.js
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import http from 'k6/http';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { HTTP, PUBLISH_KEY, login, ticketURL, num } from './lib.js';

const CONNS = num('CONNS', 1000);
const CHANNELS = num('CHANNELS', 100);
const PER_CONN = num('PER_CONN', 3);
const RATE = num('RATE', 200); // publishes per second, all channels together
const CONNECT_S = num('CONNECT_S', 20); // time the listeners get to connect
const DURATION_S = num('DURATION_S', 30); // publishing time
const RECONNECT = num('RECONNECT', 0.2); // share of listeners that reconnect once
const LISTEN_S = CONNECT_S + DURATION_S + 10;

const latency = new Trend('delivery_latency', true);
const delivered = new Counter('deliveries');
const gaps = new Counter('gaps');
const duplicates = new Counter('duplicates');
const recovered = new Counter('recovered');
const unrecovered = new Counter('recovered_false');
const reconnects = new Counter('reconnects');

export const options = {
  scenarios: {
    listeners: {
      executor: 'per-vu-iterations',
      exec: 'listen',
      vus: CONNS,
      iterations: 1,
      maxDuration: `${LISTEN_S + 10}s`,
    },
    publisher: {
      executor: 'constant-arrival-rate',
      exec: 'publish',
      rate: RATE,
      timeUnit: '1s',
      duration: `${DURATION_S}s`,
      preAllocatedVUs: 20,
      maxVUs: 100,
      startTime: `${CONNECT_S}s`,
    },
  },
  thresholds: {
    delivery_latency: ['p(50)<50', 'p(99)<250'],
    gaps: ['count==0'],
    duplicates: ['count==0'],
    checks: ['rate>0.999'],
  },
};

export function setup() {
  if (PUBLISH_KEY === '') {
    throw new Error('set -e PUBLISH_KEY=… (the server prints it at start with -dev)');
  }
  return { token: login() };
}

function channelsOf(vu) {
  const out = [];
  for (let i = 0; i < PER_CONN; i++) {
    out.push(`bench:${(vu * PER_CONN + i) % CHANNELS}`);
  }
  return out;
}

// listen keeps one listener connected until the run ends, reconnecting
// once at a random moment if it is one of the RECONNECT share.
export function listen(data) {
  const channels = channelsOf(__VU);
  const pos = {}; // channel -> {offset, epoch}
  const end = Date.now() + LISTEN_S * 1000;
  let reconnectAt = 0;
  if (Math.random() < RECONNECT) {
    reconnectAt = Date.now() + (CONNECT_S + Math.random() * DURATION_S) * 1000;
  }

  function session() {
    const url = ticketURL(data.token);
    if (url === null) {
      return;
    }
    const ws = new WebSocket(url);
    let id = 0;
    /** @type {any} */
    let timer = null;
    ws.onopen = () => {
      for (const ch of channels) {
        const cmd = { type: 'subscribe', id: ++id, channel: ch };
        if (pos[ch]) {
          cmd.since = { offset: pos[ch].offset, epoch: pos[ch].epoch };
        }
        ws.send(JSON.stringify(cmd));
      }
      const stopAt = reconnectAt > Date.now() ? reconnectAt : end;
      timer = setTimeout(() => ws.close(), Math.max(0, stopAt - Date.now()));
    };
    ws.onmessage = (e) => {
      if (!e || typeof e.data !== 'string') {
        return; // the server sends text frames only
      }
      const m = JSON.parse(e.data);
      if (m.type === 'subscribed') {
        if (m.recovered === true) {
          recovered.add(1);
        } else if (m.recovered === false) {
          unrecovered.add(1);
          pos[m.channel] = { offset: m.offset, epoch: m.epoch };
        } else {
          pos[m.channel] = { offset: m.offset, epoch: m.epoch };
        }
        if (pos[m.channel]) {
          pos[m.channel].epoch = m.epoch;
        }
        return;
      }
      if (m.type !== 'message' || !m.channel || m.channel[0] === '#') {
        return;
      }
      const p = pos[m.channel];
      if (p) {
        if (m.offset <= p.offset) {
          duplicates.add(1);
          return;
        }
        if (m.offset !== p.offset + 1) {
          gaps.add(1);
        }
        p.offset = m.offset;
      }
      delivered.add(1);
      if (m.data && m.data.ms) {
        latency.add(Date.now() - m.data.ms);
      }
    };
    ws.onclose = () => {
      if (timer !== null) {
        clearTimeout(timer);
      }
      if (reconnectAt !== 0 && Date.now() >= reconnectAt && Date.now() < end) {
        reconnectAt = 0;
        reconnects.add(1);
        session();
      }
    };
    ws.onerror = (e) => {
      check(null, { 'no websocket error': () => false });
    };
  }
  session();
}

export function publish() {
  const ch = `bench:${(__VU * 7919 + __ITER) % CHANNELS}`;
  const res = http.post(`${HTTP}/publish`, JSON.stringify({ channel: ch, data: { ms: Date.now() } }), {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${PUBLISH_KEY}` },
    tags: { name: 'publish' },
  });
  check(res, { 'publish 200': (r) => r.status === 200 });
}
