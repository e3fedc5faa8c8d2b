// churn: RATE new sessions per second for DURATION, each a full cycle:
// fresh ticket, connect, welcome, close.
//
//   k6 run -e RATE=200 -e DURATION=30s bench/k6/churn.js
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { check } from 'k6';
import { Trend, Rate } from 'k6/metrics';
import { login, ticketURL, isWelcome, num } from './lib.js';

const RATE = num('RATE', 200);
const DURATION = __ENV.DURATION || '30s';

const cycle = new Trend('cycle_duration', true);
const welcomed = new Rate('welcomed');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    churn: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 100,
      maxVUs: 1000,
    },
  },
  thresholds: {
    cycle_duration: ['p(50)<20', 'p(99)<100'],
    welcomed: ['rate>0.999'],
    checks: ['rate>0.999'],
  },
};

export function setup() {
  return { token: login() };
}

/** @param {{token: string}} data */
export default function (data) {
  const start = Date.now();
  const url = ticketURL(data.token);
  if (url === null) {
    welcomed.add(false);
    return;
  }
  let opened = false;
  let ok = false;
  const socket = new WebSocket(url);
  const timeout = setTimeout(() => socket.close(), 5000);
  socket.onopen = () => {
    opened = true;
  };
  socket.onmessage = (event) => {
    if (!ok && event && isWelcome(event.data)) {
      ok = true;
      cycle.add(Date.now() - start);
    }
    socket.close();
  };
  socket.onclose = () => {
    clearTimeout(timeout);
    check(opened, { 'upgraded (101)': (o) => o });
    welcomed.add(ok);
  };
}
