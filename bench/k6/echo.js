// echo: CONNS connections each send a SIZE-byte message every INTERVAL_MS
// for DURATION_S seconds and time the echo. The server must run with -echo.
//
//   k6 run -e CONNS=100 -e DURATION_S=30 bench/k6/echo.js
import ws from 'k6/ws';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { login, ticketURL, num } from './lib.js';

const CONNS = num('CONNS', 100);
const DURATION_S = num('DURATION_S', 30);
const INTERVAL_MS = num('INTERVAL_MS', 100);
const SIZE = num('SIZE', 64);

const rtt = new Trend('echo_rtt', true);

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

export default function (data) {
  const url = ticketURL(data.token);
  if (url === null) {
    return;
  }
  const pad = 'x'.repeat(Math.max(0, SIZE - 30));
  const res = ws.connect(url, null, function (socket) {
    socket.on('open', function () {
      socket.setInterval(function () {
        socket.send(JSON.stringify({ ms: Date.now(), p: pad }));
      }, INTERVAL_MS);
    });
    socket.on('message', function (raw) {
      const msg = JSON.parse(raw);
      if (msg.ms) {
        rtt.add(Date.now() - msg.ms);
      }
    });
    socket.setTimeout(function () {
      socket.close();
    }, DURATION_S * 1000);
  });
  check(res, { 'status 101': (r) => r && r.status === 101 });
}
