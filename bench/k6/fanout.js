// fanout: CONNS listeners hold a connection while one publisher sends
// MESSAGES broadcasts (or, with TO_USER=1, publishes to the user), one every
// INTERVAL_MS. Each message carries its send time; every listener records
// publish-to-receive latency.
//
//   k6 run -e CONNS=1000 -e MESSAGES=20 -e PUBLISH_KEY=… bench/k6/fanout.js
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { HTTP, USER, PUBLISH_KEY, login, ticketURL, parse, num } from './lib.js';

const CONNS = num('CONNS', 1000);
const MESSAGES = num('MESSAGES', 20);
const INTERVAL_MS = num('INTERVAL_MS', 200);
const CONNECT_S = num('CONNECT_S', 20); // time the listeners get to connect
const TO_USER = __ENV.TO_USER === '1';
const LISTEN_S = CONNECT_S + (MESSAGES * INTERVAL_MS) / 1000 + 10;

const latency = new Trend('delivery_latency', true);
const delivered = new Counter('deliveries');

/** @type {import('k6/options').Options} */
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
      executor: 'per-vu-iterations',
      exec: 'publish',
      vus: 1,
      iterations: 1,
      startTime: `${CONNECT_S}s`,
      maxDuration: `${LISTEN_S}s`,
    },
  },
  thresholds: {
    delivery_latency: ['p(50)<50', 'p(99)<200', 'max<1000'],
    deliveries: [`count>=${CONNS * MESSAGES}`],
    checks: ['rate>0.999'],
  },
};

export function setup() {
  if (PUBLISH_KEY === '') {
    throw new Error('set -e PUBLISH_KEY=… (the server prints it at start with -dev)');
  }
  return { token: login() };
}

/** @param {{token: string}} data */
export function listen(data) {
  const url = ticketURL(data.token);
  if (url === null) {
    return;
  }
  // Close once every message is in, or when the run's time is up.
  let got = 0;
  let opened = false;
  const socket = new WebSocket(url);
  socket.onopen = () => {
    opened = true;
  };
  socket.onmessage = (event) => {
    const msg = event ? parse(event.data) : null;
    if (msg !== null && msg.type === 'message' && msg.data && msg.data.ms) {
      latency.add(Date.now() - msg.data.ms);
      delivered.add(1);
      got++;
      if (got === MESSAGES) {
        socket.close();
      }
    }
  };
  const timeout = setTimeout(() => socket.close(), LISTEN_S * 1000);
  socket.onclose = () => {
    clearTimeout(timeout);
    check(opened, { 'upgraded (101)': (o) => o });
  };
}

export function publish() {
  for (let i = 0; i < MESSAGES; i++) {
    const data = { ms: Date.now(), seq: i };
    const body = TO_USER ? { user: USER, data: data } : { broadcast: true, data: data };
    const res = http.post(`${HTTP}/publish`, JSON.stringify(body), {
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${PUBLISH_KEY}` },
      tags: { name: 'publish' },
    });
    check(res, { 'publish 200': (r) => r.status === 200 });
    sleep(INTERVAL_MS / 1000);
  }
}
