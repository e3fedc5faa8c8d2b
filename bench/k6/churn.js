// churn: RATE new sessions per second for DURATION, each a full cycle:
// fresh ticket, connect, welcome, close.
//
//   k6 run -e RATE=200 -e DURATION=30s bench/k6/churn.js
import ws from 'k6/ws';
import { check } from 'k6';
import { Trend, Rate } from 'k6/metrics';
import { login, ticketURL, isWelcome, num } from './lib.js';

const RATE = num('RATE', 200);
const DURATION = __ENV.DURATION || '30s';

const cycle = new Trend('cycle_duration', true);
const welcomed = new Rate('welcomed');

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

export default function (data) {
  const start = Date.now();
  const url = ticketURL(data.token);
  if (url === null) {
    welcomed.add(false);
    return;
  }
  let ok = false;
  const res = ws.connect(url, null, function (socket) {
    socket.on('message', function (msg) {
      ok = isWelcome(msg);
      socket.close();
    });
    socket.setTimeout(function () {
      socket.close();
    }, 5000);
  });
  check(res, { 'status 101': (r) => r && r.status === 101 });
  welcomed.add(ok);
  if (ok) {
    cycle.add(Date.now() - start);
  }
}
