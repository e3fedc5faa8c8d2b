// connect: CONNS authenticated idle connections, opened at RATE per second,
// each held for HOLD seconds. Measures the handshake (ws_connecting) and
// that every connection gets its welcome.
//
//   k6 run -e CONNS=1000 -e RATE=200 -e HOLD=30 bench/k6/connect.js
import ws from 'k6/ws';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { login, ticketURL, isWelcome, num } from './lib.js';

const CONNS = num('CONNS', 1000);
const RATE = num('RATE', 200);
const HOLD = num('HOLD', 30);

const welcomed = new Rate('welcomed');

export const options = {
  scenarios: {
    connect: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${Math.ceil(CONNS / RATE)}s`,
      preAllocatedVUs: Math.min(CONNS, RATE * (HOLD + 5)),
      maxVUs: CONNS,
    },
  },
  thresholds: {
    ws_connecting: ['p(50)<20', 'p(99)<100'],
    welcomed: ['rate>0.999'],
    checks: ['rate>0.999'],
  },
};

export function setup() {
  return { token: login() };
}

export default function (data) {
  const url = ticketURL(data.token);
  if (url === null) {
    welcomed.add(false);
    return;
  }
  let gotWelcome = false;
  const res = ws.connect(url, null, function (socket) {
    socket.on('message', function (msg) {
      if (!gotWelcome) {
        gotWelcome = isWelcome(msg);
      }
    });
    socket.setTimeout(function () {
      socket.close();
    }, HOLD * 1000);
  });
  check(res, { 'status 101': (r) => r && r.status === 101 });
  welcomed.add(gotWelcome);
}
