// connect: CONNS authenticated idle connections, opened at RATE per second,
// each held for HOLD seconds. Measures the handshake (ws_connecting) and
// that every connection gets its welcome.
//
//   k6 run -e CONNS=1000 -e RATE=200 -e HOLD=30 bench/k6/connect.js
import { WebSocket } from 'k6/websockets';
import { setTimeout } from 'k6/timers';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { login, ticketURL, isWelcome, num } from './lib.js';

const CONNS = num('CONNS', 1000);
const RATE = num('RATE', 200);
const HOLD = num('HOLD', 30);

const welcomed = new Rate('welcomed');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    connect: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${Math.ceil(CONNS / RATE)}s`,
      preAllocatedVUs: Math.min(CONNS, RATE * (HOLD + 5)),
      maxVUs: CONNS,
      // The last connections start at the end of duration and are held
      // HOLD seconds: k6's default gracefulStop (30s) would cut them short.
      gracefulStop: `${HOLD + 10}s`,
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

/** @param {{token: string}} data */
export default function (data) {
  const url = ticketURL(data.token);
  if (url === null) {
    welcomed.add(false);
    return;
  }
  let opened = false;
  let gotWelcome = false;
  const socket = new WebSocket(url);
  socket.onopen = () => {
    opened = true;
  };
  socket.onmessage = (event) => {
    if (!gotWelcome && event) {
      gotWelcome = isWelcome(event.data);
    }
  };
  socket.onclose = () => {
    check(opened, { 'upgraded (101)': (o) => o });
    welcomed.add(gotWelcome);
  };
  setTimeout(() => socket.close(), HOLD * 1000);
}
