// echo: CONNS connections each send a SIZE-byte message every INTERVAL_MS
// for DURATION_S seconds and time the echo. The server must run with -echo.
//
//   k6 run -e CONNS=100 -e DURATION_S=30 bench/k6/echo.js
import { WebSocket } from 'k6/websockets';
import { setTimeout, setInterval, clearInterval } from 'k6/timers';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { login, ticketURL, parse, num } from './lib.js';

const CONNS = num('CONNS', 100);
const DURATION_S = num('DURATION_S', 30);
const INTERVAL_MS = num('INTERVAL_MS', 100);
const SIZE = num('SIZE', 64);

const rtt = new Trend('echo_rtt', true);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    echo: {
      executor: 'per-vu-iterations',
      vus: CONNS,
      iterations: 1,
      maxDuration: `${DURATION_S + 30}s`,
    },
  },
  thresholds: {
    echo_rtt: ['p(50)<5', 'p(99)<50'],
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
    return;
  }
  const pad = 'x'.repeat(Math.max(0, SIZE - 30));
  let opened = false;
  /** @type {any} */
  let ticker = null;
  const socket = new WebSocket(url);
  socket.onopen = () => {
    opened = true;
    ticker = setInterval(() => {
      socket.send(JSON.stringify({ ms: Date.now(), p: pad }));
    }, INTERVAL_MS);
  };
  socket.onmessage = (event) => {
    const msg = event ? parse(event.data) : null;
    if (msg !== null && msg.ms) {
      rtt.add(Date.now() - msg.ms);
    }
  };
  socket.onclose = () => {
    if (ticker !== null) {
      clearInterval(ticker);
    }
    check(opened, { 'upgraded (101)': (o) => o });
  };
  setTimeout(() => socket.close(), DURATION_S * 1000);
}
